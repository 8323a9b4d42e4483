"""Models and their training: the architectures, the Trainer, the stacked trainer,
augmentation, the rate model of rate-aware training, grouped and two-stage models.
"""
