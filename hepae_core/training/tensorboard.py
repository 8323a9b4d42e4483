"""Per-epoch scalars for TensorBoard (``train.tensorboard: true``), with the optional extra.

The event files go to ``tensorboard/`` in the job dir: ``tensorboard --logdir CAMPAIGN/jobs``
then shows every job of a campaign side by side. They are TensorBoard's own append-only
logs (not replaced atomically like the job's other files); a resumed job appends to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hepae_core.errors import ConfigError
from hepae_core.jobdir import CONFIG

TENSORBOARD_DIR = "tensorboard"
INSTALL_HINT = "pip install 'hepae-gridsearch[tensorboard]'"


class EpochScalars:
    """Writes one epoch's train/val loss and learning rate to a SummaryWriter."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def __call__(self, rec: dict[str, float]) -> None:
        step = int(rec["epoch"])
        self.writer.add_scalar("loss/train", rec["train_loss"], step)
        self.writer.add_scalar("loss/val", rec["val_loss"], step)
        if "lr" in rec:
            self.writer.add_scalar("lr", rec["lr"], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_scalars(job_dir: Path, cfg: dict[str, Any]) -> EpochScalars | None:
    """The job's TensorBoard writer, or None when ``train.tensorboard`` is off.

    Raises ConfigError (exit 2, before any epoch) when it is on and the optional
    ``tensorboard`` package is missing.
    """
    if not cfg["train"].get("tensorboard"):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            source=str(Path(job_dir) / CONFIG),
            key="train.tensorboard",
            message="needs the optional 'tensorboard' package, which is not installed: "
            f"{INSTALL_HINT}, or set train.tensorboard: false",
        ) from None
    return EpochScalars(SummaryWriter(log_dir=str(Path(job_dir) / TENSORBOARD_DIR)))
