"""One run of a job directory: :class:`~hepae_core.run.jobrun.JobRun` (prepare, train,
evaluate, finish, fail), the single job and the bundle that call it, and model.pt's one
reader and writer.
"""
