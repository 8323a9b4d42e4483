"""model.pt, written and read in one place (torch): per-jet, grouped and two-stage models.

A model.pt is a ``torch.save`` of plain data and tensors (never pickled classes):
``format`` (:data:`MODEL_FORMAT`), ``model_config``, ``variables``, ``normalisation``,
``state_dict``, ``epoch``, ``val_loss``; grouped and two-stage models add ``group``,
``n_inputs``, ``stage1`` (the stage-1 model's ``model_config`` and ``state_dict``) and
``feature_normalisation`` (hepae_core.training.two_stage).

:func:`save_model` writes it (atomically, a full disk raising DiskFull naming it);
:func:`read_payload` reads and checks it; :func:`build_network` turns a ``model_config``
and ``state_dict`` into an AutoEncoder in eval mode. :func:`load_model` (the job, the
evaluation) and :func:`stage1_from_payload` (a two-stage model's first stage) both build
through it, so every torch reader of a model.pt reads it alike.

The compression codec (``hepae_core.codecs.codec.AutoencoderCodec.from_bytes``) loads grouped and
two-stage models through :func:`load_model` too; for per-jet models it reads the same file
with ``codec.read_model_file``, which rebuilds the tensors as numpy arrays without
importing torch (compress/decompress stay torch-free), and checks the same
:data:`MODEL_FORMAT`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hepae_core.errors import HepaeError

#: The ``format`` value of every model.pt this package writes.
MODEL_FORMAT = "hepae-model-1"


def save_model(
    path: Path,
    model: Any,
    cfg: dict[str, Any],
    norm: Any,
    epoch: int,
    val_loss: float,
    extra: dict[str, Any] | None = None,
) -> None:
    """The model with everything needed to use it: architecture, normalisation, variables.

    ``extra`` adds the keys of grouped and two-stage models (``group``, ``n_inputs``,
    ``stage1``, ``feature_normalisation``; see hepae_core.training.two_stage).
    """
    from hepae_core.training.train import save_tensors

    payload = {
        "format": MODEL_FORMAT,
        "model_config": cfg["model"],
        "variables": list(norm.variables),
        "normalisation": norm.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": epoch,
        "val_loss": val_loss,
        **(extra or {}),
    }
    save_tensors(path, payload)


def read_payload(source: str | Path | bytes, name: str | None = None) -> dict[str, Any]:
    """The model.pt at ``source`` (a path, or the file's bytes named ``name``) as a dict.

    Raises HepaeError (exit 2) when it is not a model saved by hepae_core.
    """
    import torch

    where = name or str(source)
    fh = io.BytesIO(source) if isinstance(source, bytes) else source
    payload = torch.load(fh, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise HepaeError(source=where, key=None, message="is not a model saved by hepae_core")
    return payload


def build_network(model_config: dict[str, Any], n_inputs: int, state_dict: dict[str, Any]) -> Any:
    """An AutoEncoder of ``model_config`` with ``state_dict`` loaded, in eval mode."""
    from hepae_core.training.models import build_model

    model = build_model(model_config, n_inputs)
    model.load_state_dict(state_dict)
    model.eval()
    return model


def load_model(
    source: str | Path | bytes, allow_grouped: bool = False, name: str | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Load a saved model: returns (model in eval mode, normaliser, payload).

    ``source`` is a path, or the file's bytes named ``name`` (a model stored in a
    compressed file). Grouped and two-stage models (several jets per input) are refused
    unless ``allow_grouped``: code that feeds one jet at a time cannot use them.
    """
    from hepae_core.data.normalise import Normaliser

    payload = read_payload(source, name)
    if payload.get("group") and not allow_grouped:
        raise HepaeError(
            source=name or str(source),
            key="data.group",
            message="is a grouped (collective) model taking several jets per input; this "
            "command handles one jet per input (see docs/collective.md)",
        )
    n_inputs = payload.get("n_inputs", len(payload["variables"]))
    model = build_network(payload["model_config"], n_inputs, payload["state_dict"])
    return model, Normaliser.from_dict(payload["normalisation"]), payload


def stage1_from_payload(payload: dict[str, Any]) -> tuple[Any, Any]:
    """The stage-1 (per-jet) model a two-stage model.pt carries, and its normaliser."""
    from hepae_core.data.normalise import Normaliser

    s1 = payload["stage1"]
    model = build_network(s1["model_config"], len(payload["variables"]), s1["state_dict"])
    return model, Normaliser.from_dict(payload["normalisation"])
