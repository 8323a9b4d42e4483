"""Jets in: readers of ROOT/HDF5/synthetic samples, cuts, normalisation, grouping, the
prepared split of a job, and the event generator. No torch at import.
"""
