"""The training loop: in-memory batches, exact checkpoints, early stopping, clean interrupts.

For these small models the cost per batch is dominated by Python and framework overhead,
not arithmetic. So the loop shuffles the whole training tensor once per epoch with one
gather and then takes contiguous slices (views, no copies), uses the fused/foreach Adam
step, keeps the running loss on the device (no host sync per batch), and does nothing per
batch beyond forward, backward and step.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from hepae_core.diskfull import writing
from hepae_core.jobdir import atomic_write_bytes

if TYPE_CHECKING:
    from hepae_core.training.augment import Augmenter
    from hepae_core.training.rate_model import RateAware

VAL_BATCH = 65536


@dataclass
class TrainResult:
    """What training did; ``history`` has one dict per epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    epochs_run: int = 0
    train_time_s: float = 0.0
    interrupted: bool = False
    early_stopped: bool = False
    signal_name: str | None = None

    stack_size: int = 1  # the most models this one trained with in a stack (1: alone)

    @property
    def jets_per_s(self) -> float:
        """The model's own training rate, as if alone (a stacked member: see close_epoch)."""
        rates = [h["jets_per_s"] for h in self.history if h.get("jets_per_s")]
        return sum(rates) / len(rates) if rates else float("nan")

    @property
    def stack_jets_per_s(self) -> float:
        """Training jets per second of all the models of its stack together (alone: its own)."""
        rates = [
            h.get("stack_jets_per_s", h["jets_per_s"]) for h in self.history if h.get("jets_per_s")
        ]
        return sum(rates) / len(rates) if rates else float("nan")


def pick_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == "cuda":
        from hepae_core.errors import ConfigError  # one line for the user, not a traceback

        raise ConfigError(
            message="is cuda but this machine has no CUDA device: set auto or cpu, or run "
            "the job on a GPU node (submit --gpus 1)",
            key="train.device",
        )
    return torch.device("cpu")


def allocated_cpus() -> int:
    """CPUs this process may use: the affinity mask, i.e. what the scheduler allocated."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def pick_threads(configured: int | None) -> int:
    """Threads to use: the config, else the scheduler's allocation; never above either.

    The scheduler's allocation is read from ``HEPAE_THREADS`` (set by our job templates),
    ``SLURM_CPUS_PER_TASK`` or ``OMP_NUM_THREADS`` (HTCondor sets it to request_cpus), and
    is capped by the CPUs this process may use. ``train.threads`` can lower it, never
    raise it: a space that sets 8 threads for jobs run 2 at a time on 2 granted cores
    would otherwise run 16 threads on 2 cores, each waiting for the others.
    """
    limit = allocated_cpus()
    for var in ("HEPAE_THREADS", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            limit = min(limit, int(value))
            break
    return max(1, min(configured or limit, limit))


def make_optimizer(model: nn.Module, tcfg: dict[str, Any], device: torch.device):
    """Adam or AdamW; fused kernels where this torch has them for the device."""
    cls = torch.optim.AdamW if tcfg["optimizer"] == "adamw" else torch.optim.Adam
    kwargs = {"lr": tcfg["lr"], "weight_decay": tcfg["weight_decay"]}
    try:
        return cls(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):  # no fused kernel for this device or torch version
        return cls(model.parameters(), foreach=True, **kwargs)


def make_scheduler(optimizer, tcfg: dict[str, Any], steps_per_epoch: int):
    """The learning-rate schedule; stepped per batch (one_cycle) or per epoch (plateau)."""
    if tcfg["schedule"] == "one_cycle":
        # As fastai's fit_one_cycle: warm up for 25 % of the steps from lr/25, then cosine
        # annealing down to lr/1e5.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=tcfg["lr"],
            total_steps=max(1, tcfg["epochs"] * steps_per_epoch),
            pct_start=0.25,
            div_factor=25.0,
            final_div_factor=1e4,
        )
    if tcfg["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=3)
    return None


def save_tensors(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to ``path`` atomically; a full disk raises :class:`DiskFull` (path).

    The payload is serialised in memory first (checkpoints of these models are small), so
    the write to disk is a plain file write whose out-of-space error is an ``OSError``,
    not torch's unnamed ``RuntimeError('unexpected pos ...')``.
    """
    buf = io.BytesIO()
    torch.save(payload, buf)
    with writing(path):
        atomic_write_bytes(path, buf.getvalue())


class _CompiledOrEager(nn.Module):
    """torch.compile'd model that falls back to eager if compiling fails (no compiler)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.eager = model
        self.compiled = torch.compile(model)
        self.failed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.failed:
            try:
                return self.compiled(x)
            except Exception as exc:  # compilation errors surface at the first call
                self.failed = True
                print(f"warning: torch.compile failed, training eagerly ({exc})", file=sys.stderr)
        return self.eager(x)


def compile_or_eager(model: nn.Module) -> nn.Module:
    """The model compiled with torch.compile, with an eager fallback."""
    return _CompiledOrEager(model)


class StopFlag:
    """Set by SIGTERM/SIGUSR1 (walltime warning, preemption); checked between batches."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name

    def install(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def masked_mse(y: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the values where ``m`` is 1 (padded group slots are 0)."""
    return (((y - x) * m) ** 2).sum() / m.sum().clamp(min=1)


@torch.no_grad()
def evaluate_loss(model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean squared error over ``x`` (the values ``mask`` keeps) in eval mode, in large batches."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, x.shape[0], VAL_BATCH):
        xb = x[i : i + VAL_BATCH]
        if mask is None:
            total += F.mse_loss(model(xb), xb, reduction="sum").double()
        else:
            mb = mask[i : i + VAL_BATCH]
            total += (((model(xb) - xb) * mb) ** 2).sum().double()
    model.train()
    n = x.numel() if mask is None else float(mask.sum().item())
    return total.item() / max(1, n)


class Trainer:
    """Train one model, checkpointing to ``checkpoint_path`` so a restart continues exactly.

    Parameters
    ----------
    model
        The autoencoder, already on ``device``.
    x_train, x_val
        Normalised float32 tensors on ``device``.
    tcfg
        The resolved ``train`` section.
    seed
        Seeds the shuffling generator and torch's global RNG (dropout).
    checkpoint_path
        Where the checkpoint lives; ``None`` disables checkpoints.
    on_best
        Called with (epoch, val_loss) when the validation loss improves; saves the model.
    on_epoch
        Called with the epoch's history record (progress display, state file, history).
    m_train, m_val
        For grouped inputs: 1 for the values of real jets, 0 for padded slots (same shape
        as ``x_train``/``x_val``); the loss averages over the real values only.
    norm
        The job's normaliser; needed by ``train.augment`` (hepae_core.training.augment), which
        transforms batches in physical units.

    ``train.rate_lambda`` > 0 trains with the latent quantised in the loop and a learned
    prior's rate (hepae_core.training.rate_model): the loss and ``val_loss`` are then
    ``mse + rate_lambda x bits per jet`` (validation with the latent rounded), and each
    epoch's record adds ``val_mse`` and ``val_bits_per_jet``. Without it, or without
    ``train.augment``, nothing of either runs: the training of before, bit for bit.
    """

    def __init__(
        self,
        model: nn.Module,
        x_train: torch.Tensor,
        x_val: torch.Tensor,
        tcfg: dict[str, Any],
        seed: int,
        checkpoint_path: Path | None = None,
        on_best: Callable[[int, float], None] | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        m_train: torch.Tensor | None = None,
        m_val: torch.Tensor | None = None,
        norm: Any = None,
    ) -> None:
        self.model = model
        self.m_train = m_train
        self.m_val = m_val
        self.x_train = x_train
        self.x_val = x_val
        self.cfg = tcfg
        self.device = x_train.device
        self.checkpoint_path = checkpoint_path
        self.on_best = on_best
        self.on_epoch = on_epoch
        self.batch_size = int(tcfg["batch_size"])
        n = x_train.shape[0]
        self.starts = list(range(0, n, self.batch_size))
        # A last batch of one jet breaks batch norm and adds noise: fold it away.
        if len(self.starts) > 1 and n - self.starts[-1] < 2:
            self.starts.pop()
        # train.rate_lambda / train.augment (docs/rate_aware.md): None when off
        self.rate_lambda = float(tcfg.get("rate_lambda") or 0.0)
        self.rate: RateAware | None = None
        if self.rate_lambda > 0:
            from hepae_core.training.rate_model import FactorisedPrior, RateAware, latent_size

            if m_train is not None:
                raise ValueError("train.rate_lambda needs one jet per input (no data.group)")
            prior = FactorisedPrior(latent_size(model)).to(self.device)
            residual = None
            if tcfg.get("rate_residual_bounds"):
                from hepae_core.training.rate_model import ResidualRate

                if norm is None:
                    raise ValueError("train.rate_residual_bounds needs the normaliser")
                residual = ResidualRate(norm, tcfg["rate_residual_bounds"]).to(self.device)
            mode = tcfg.get("rate_quantise") or "noise"
            self.rate = RateAware(model, prior, mode, residual)
        self.augment: Augmenter | None = None
        if tcfg.get("augment"):
            from hepae_core.training.augment import make

            if m_train is not None or norm is None:
                raise ValueError("train.augment needs one jet per input and the normaliser")
            self.augment = make(norm, tcfg["augment"], seed + 1)
        # the prior's parameters follow the model's in one optimiser
        self.optimizer = make_optimizer(self.rate or model, tcfg, self.device)
        self.scheduler = make_scheduler(self.optimizer, tcfg, len(self.starts))
        self.per_batch_schedule = tcfg["schedule"] == "one_cycle"
        # The compiled module shares its parameters with ``model``; it is used for the
        # training steps only, so evaluation at other batch sizes never recompiles.
        self.forward = compile_or_eager(model) if tcfg.get("compile") else model
        from hepae_core.training.latent_noise import wrap  # train.latent_noise_bits (issue 10)

        self.forward = wrap(self.forward, model, tcfg, lambda: self.epoch)
        torch.manual_seed(seed)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.result = TrainResult()
        self.epoch = 0  # completed epochs
        self.batch = 0  # next batch of the epoch in progress
        self.perm: torch.Tensor | None = None
        self.epoch_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.epoch_time = 0.0
        self.bad_epochs = 0
        self._last_checkpoint = time.monotonic()
        # Models trained at once in the stack that runs this one (hepae_core.training.stacked sets
        # it
        # per epoch); its epoch's time counts 1/stack_size for this model.
        self.stack_size = 1

    # -- checkpoints -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; tensors and plain data only."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "epoch": self.epoch,
            "batch": self.batch,
            "perm": self.perm,
            "epoch_loss": self.epoch_loss.cpu(),
            "epoch_time": self.epoch_time,
            "bad_epochs": self.bad_epochs,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "history": self.result.history,
            "best_epoch": self.result.best_epoch,
            "best_val_loss": self.result.best_val_loss,
            "train_time_s": self.result.train_time_s,
            **self._extra_state(),
        }

    def _extra_state(self) -> dict[str, Any]:
        # only when on: a checkpoint without them is the checkpoint of before
        out: dict[str, Any] = {}
        if self.rate is not None:
            out["rate_prior"] = self.rate.prior.state_dict()
            if self.rate.residual is not None:
                out["rate_residual_prior"] = self.rate.residual.prior.state_dict()
        if self.augment is not None:
            out["augment_rng"] = self.augment.generator.get_state()
        return out

    def model_extra(self) -> dict[str, Any]:
        """What model.pt keeps beside the network: the rate-aware prior (``rate_model``)."""
        if self.rate is None:
            return {}
        mode = self.cfg.get("rate_quantise") or "noise"
        entry = self.rate.prior.to_payload(mode, self.rate_lambda)
        if self.rate.residual is not None:
            entry["residual"] = self.rate.residual.to_payload()
        return {"rate_model": entry}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.batch = int(state["batch"])
        self.perm = state["perm"]
        self.epoch_loss = state["epoch_loss"].to(self.device)
        self.epoch_time = float(state["epoch_time"])
        self.bad_epochs = int(state["bad_epochs"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.result.history = list(state["history"])
        self.result.best_epoch = int(state["best_epoch"])
        self.result.best_val_loss = float(state["best_val_loss"])
        self.result.train_time_s = float(state["train_time_s"])
        if self.rate is not None and "rate_prior" in state:
            self.rate.prior.load_state_dict(state["rate_prior"])
            if self.rate.residual is not None and "rate_residual_prior" in state:
                self.rate.residual.prior.load_state_dict(state["rate_residual_prior"])
        if self.augment is not None and "augment_rng" in state:
            self.augment.generator.set_state(state["augment_rng"])

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        save_tensors(self.checkpoint_path, self.state_dict())
        self._last_checkpoint = time.monotonic()

    def resume(self) -> bool:
        """Load the checkpoint if there is one; True when training continues from it."""
        if self.checkpoint_path is None or not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        self.load_state_dict(state)
        return True

    # -- the loop --------------------------------------------------------------------
    def run(self, stop: StopFlag | None = None) -> TrainResult:
        """Train until the configured epochs, early stopping or a stop signal."""
        epochs = int(self.cfg["epochs"])
        every = self.cfg["checkpoint_every_s"]
        model, opt, sched = self.model, self.optimizer, self.scheduler
        x = self.x_train
        bs = self.batch_size
        model.train()
        if self.rate is not None:
            self.rate.train()
        while self.epoch < epochs:
            if self.batch == 0:
                self.perm = torch.randperm(x.shape[0], generator=self.generator)
                self.epoch_loss.zero_()
                self.epoch_time = 0.0
            assert self.perm is not None  # drawn above, or restored with its batch
            perm = self.perm.to(x.device)
            xs = x[perm]  # one gather per epoch; batches are views
            ms = None if self.m_train is None else self.m_train[perm]
            t0 = time.perf_counter()
            loss_sum = self.epoch_loss
            starts = self.starts
            i = self.batch
            while i < len(starts):
                xb = xs[starts[i] : starts[i] + bs]
                if self.augment is not None:
                    xb = self.augment(xb)
                if self.rate is not None:
                    out, bits = self.rate(xb)
                    loss = F.mse_loss(out, xb) + self.rate_lambda * bits.mean()
                    weight: Any = xb.shape[0]
                elif ms is None:
                    loss = F.mse_loss(self.forward(xb), xb)
                    weight = xb.shape[0]
                else:
                    mb = ms[starts[i] : starts[i] + bs]
                    loss = masked_mse(self.forward(xb), xb, mb)
                    weight = mb.sum() / x.shape[1]  # real values, in units of a full row
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if self.per_batch_schedule:
                    sched.step()
                loss_sum += loss.detach() * weight
                i += 1
                if stop or (every and time.monotonic() - self._last_checkpoint > every):
                    self.batch = i
                    self.epoch_time += time.perf_counter() - t0
                    self.result.train_time_s += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    if i < len(starts):
                        self.save_checkpoint()
                    if stop:
                        return self.interrupted(stop)
            elapsed = time.perf_counter() - t0
            self.epoch_time += elapsed
            self.result.train_time_s += elapsed
            n_seen = self.count_epoch()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            # loss_sum adds each batch's mean squared error weighted by its rows (real
            # values / d for masked groups): dividing by the rows seen gives the mean
            # squared error per value, the unit of val_loss.
            seen = n_seen if ms is None else ms[:n_seen].sum().item() / x.shape[1]
            train_loss = loss_sum.item() / seen
            val_loss, extra = self.validate()
            if self.end_epoch(train_loss, val_loss, n_seen, self.save_checkpoint, extra=extra):
                break
            if stop:
                self.save_checkpoint()
                return self.interrupted(stop)
        self.result.epochs_run = self.epoch
        return self.result

    # The epoch-end steps below are public so that a stack of Trainers
    # (hepae_core.training.stacked) ends each member's epoch through the very same code.

    def validate(self) -> tuple[float, dict[str, float]]:
        """The validation loss the best model is chosen by, and extra history columns (a
        rate-aware model's loss is its mse plus lambda times its bits)."""
        if self.rate is None:
            return evaluate_loss(self.model, self.x_val, self.m_val), {}
        from hepae_core.training.rate_model import evaluate_rate

        mse, bits = evaluate_rate(
            self.model, self.rate.prior, self.x_val, residual=self.rate.residual
        )
        return mse + self.rate_lambda * bits, {"val_mse": mse, "val_bits_per_jet": bits}

    def count_epoch(self) -> int:
        """Count the epoch just trained (the next starts at batch 0); the rows it trained on."""
        self.batch = 0
        self.epoch += 1
        return self.starts[-1] + min(self.batch_size, self.x_train.shape[0] - self.starts[-1])

    def end_epoch(
        self,
        train_loss: float,
        val_loss: float,
        n_seen: int,
        save: Callable[[], None],
        best_context: Callable[[], Any] | None = None,
        extra: dict[str, float] | None = None,
    ) -> bool:
        """Close the epoch (:meth:`close_epoch`), checkpoint with ``save`` when one is due,
        report it (``on_epoch``); True when the patience ran out (early stop)."""
        record = self.close_epoch(train_loss, val_loss, n_seen, best_context, extra)
        every = self.cfg["checkpoint_every_s"]
        if not every or time.monotonic() - self._last_checkpoint > every:
            save()
        if self.on_epoch:
            self.on_epoch(record)
        patience = self.cfg["patience"]
        if patience and self.bad_epochs >= patience:
            self.result.early_stopped = True
            return True
        return False

    def interrupted(self, stop: StopFlag) -> TrainResult:
        """The result of a run stopped by a signal: the epochs run so far and the signal."""
        self.result.epochs_run = self.epoch
        self.result.interrupted = True
        self.result.signal_name = stop.signal_name
        return self.result

    def close_epoch(
        self,
        train_loss: float,
        val_loss: float,
        n_seen: int,
        best_context: Callable[[], Any] | None = None,
        extra: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """The end of an epoch (``self.epoch`` already counts it): step a per-epoch
        schedule, record the epoch in the history, keep the best (``on_best``, inside
        ``best_context()`` when given) and count epochs without improvement; raise on a
        non-finite training loss. Shared by the single run and the members of a stack
        (hepae_core.training.stacked), so both record and select exactly alike."""
        if self.scheduler is not None and not self.per_batch_schedule:
            self.scheduler.step(val_loss)
        k = self.stack_size
        # A member of a stack of k occupied it for 1/k of the epoch's seconds: its own rate,
        # as if alone, is its jets over that share, i.e. the stack's rate per model trained.
        own = n_seen * k / self.epoch_time if self.epoch_time > 0 else 0.0
        record = {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": self.epoch_time,
            "jets_per_s": own,
            **(extra or {}),
        }
        if k > 1:
            record["stack_size"] = k
            record["stack_jets_per_s"] = n_seen * k / self.epoch_time if self.epoch_time else 0.0
            self.result.stack_size = max(self.result.stack_size, k)
        self.result.history.append(record)
        if val_loss < self.result.best_val_loss - self.cfg["min_delta"]:
            self.result.best_val_loss = val_loss
            self.result.best_epoch = self.epoch
            self.bad_epochs = 0
            if self.on_best:
                with best_context() if best_context else contextlib.nullcontext():
                    self.on_best(self.epoch, val_loss)
        else:
            self.bad_epochs += 1
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"the training loss became {train_loss} at epoch {self.epoch}; "
                "lower train.lr or check the inputs"
            )
        return record


def progress_printer(epochs: int, stream=None) -> Callable[[dict[str, float]], None]:
    """A per-epoch reporter: a tqdm bar on a terminal, one log line per epoch otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        bar = tqdm(total=epochs, unit="epoch", file=stream, dynamic_ncols=True)

        def show(rec: dict[str, float]) -> None:
            bar.n = int(rec["epoch"])
            bar.set_postfix(
                loss=f"{rec['train_loss']:.3e}",
                val=f"{rec['val_loss']:.3e}",
                jets_s=f"{rec['jets_per_s']:.0f}",
            )
            if bar.n >= epochs:
                bar.close()

        return show

    def log(rec: dict[str, float]) -> None:
        print(
            f"epoch {int(rec['epoch'])}/{epochs} train_loss {rec['train_loss']:.4e} "
            f"val_loss {rec['val_loss']:.4e} lr {rec['lr']:.2e} "
            f"{rec['seconds']:.1f}s {rec['jets_per_s']:.0f} jets/s",
            file=stream,
            flush=True,
        )

    return log
