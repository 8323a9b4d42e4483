"""Compressed files and the codecs they are made with: the codec interface and registry,
the autoencoder file codec, the error-bounded predictive codecs, the checksummed container,
entropy coding, quantisers and the numerical helpers of the baselines.
"""
