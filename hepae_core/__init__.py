"""hepae_core: the science of hepae-gridsearch.

Data readers, normalisations, autoencoder models, the training loop, evaluation, per-run
plots and the entry point that runs one job directory. It knows nothing about schedulers.
Importing the package (or :mod:`hepae_core.config`) does not import torch.
"""

__version__ = "0.1.0"
