"""gridsearch: plan, submit, follow and rerun hyperparameter scans of hepae_core jobs.

It treats a job as a directory with config.yaml that ``python -m hepae_core.job DIR`` runs,
and knows nothing about neural networks (it never imports torch).
"""

__version__ = "0.1.0"
