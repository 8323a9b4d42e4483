"""Stacked training: K autoencoders of identical layer shapes trained as one.

A grid search trains many tiny models whose cost per batch is mostly framework overhead.
Stacking K of them turns K small matrix products into one batched product (``baddbmm`` on
parameters of shape ``[K, out, in]``), so the per-batch overhead is paid once for K models.

Each member is a :class:`hepae_core.train.Trainer` built exactly as for a single job; the
stack only replaces its loop. The trainer keeps the member's bookkeeping (its real torch
optimiser and scheduler for the learning rate and betas, its shuffling generator, epoch,
batch, history, best epoch, early-stopping counter), so a member's checkpoint has the very
format of a single job's checkpoint: a member interrupted in a stack resumes alone with
``python -m hepae_core.job`` and a single job's checkpoint resumes inside a stack.

What the stack shares, and what not
-----------------------------------
- Parameters live in one buffer ``[K, P]`` (a row per member, P parameters per model); the
  member's own modules and optimiser state are views of its row, so ``model.state_dict()``
  and ``optimizer.state_dict()`` always show the current values.
- Each member gets its own Adam/AdamW step: the same fused kernel torch's ``fused=True``
  optimiser calls, with the member's own lr, betas and weight decay (read from its
  optimiser, which its own scheduler drives: one-cycle per batch, plateau per epoch).
- Each member shuffles with its own generator (the permutation a single run would draw) and
  gathers its own epoch tensor; the stack takes batch ``i`` of every member at once.
- Early stopping, best-model selection, NaN detection and checkpoints are per member. A
  member that stops (early, at its own ``train.epochs``, or diverged) is dropped from the
  stack at the epoch's end, so it costs nothing afterwards.
- Batch norm: per member and channel, as ``BatchNorm1d`` (statistics over the batch).
- Dropout: a per-member rate; the masks come from torch's global generator, which the stack
  shares, so a member with dropout is statistically, not bitwise, equal to a single run.
  Members without dropout are unaffected by it.

Bit-identical to a single run?
------------------------------
Not in general. The optimiser step is the same kernel with the same scalars, so it adds no
difference; but a batched matrix product sums its dot products in a different blocking
order than the 2-D product of ``nn.Linear``, so activations and gradients differ in the
last bits of float32 and the runs drift apart slowly (measured: see docs/bundles.md and
tests/test_stacked.py for the tolerance). Within a stack, everything is deterministic:
resuming an interrupted stack gives bit-for-bit the uninterrupted result.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hepae_core.train import VAL_BATCH, StopFlag, Trainer, save_tensors

#: Member rows per validation chunk at most (memory: rows x widest layer x 4 bytes).
_VAL_ROWS = 4 * VAL_BATCH


# ----------------------------------------------------------------------------- grouping


def _layers(model: nn.Module) -> list[nn.Module]:
    return [*model.encoder, *model.decoder]


def layer_signature(model: nn.Module) -> tuple:
    """What two models must share to be stacked: layer types, shapes and activations.

    Dropout layers are left out: a per-member rate (0 for none) is applied after each
    activation, so models differing only in dropout stack together.
    """
    sig: list[tuple] = []
    for layer in _layers(model):
        if isinstance(layer, nn.Dropout):
            continue
        if isinstance(layer, nn.Linear):
            sig.append(("linear", layer.in_features, layer.out_features, layer.bias is not None))
        elif isinstance(layer, nn.BatchNorm1d):
            bn = layer
            stats = bn.track_running_stats
            sig.append(("bn", bn.num_features, bn.eps, bn.momentum, bn.affine, stats))
        else:
            sig.append(("act", repr(layer)))
    return tuple(sig)


def why_not_stackable(trainer: Trainer) -> str | None:
    """A reason this member cannot join a stack, or None when it can."""
    if trainer.cfg.get("compile"):
        return "train.compile is set (a compiled model is trained alone)"
    if trainer.m_train is not None:
        return "grouped inputs with padded slots (a masked loss the stack does not compute)"
    if trainer.cfg.get("latent_noise_bits"):
        return "train.latent_noise_bits is set (latent noise is added by the single loop)"
    if getattr(trainer, "rate", None) is not None or getattr(trainer, "augment", None) is not None:
        return "train.rate_lambda or train.augment is set (applied by the single loop)"
    if trainer.cfg["optimizer"] not in ("adam", "adamw"):  # pragma: no cover - schema
        return f"optimizer {trainer.cfg['optimizer']} has no stacked step"
    for layer in _layers(trainer.model):
        if isinstance(layer, nn.BatchNorm1d) and (
            not layer.affine or not layer.track_running_stats or layer.momentum is None
        ):
            return "a batch norm layer without affine/running statistics"
    if trainer.x_train.dtype != torch.float32:
        return f"training data of dtype {trainer.x_train.dtype}"
    return None


def stack_key(trainer: Trainer) -> tuple:
    """Members with equal keys can be trained in one stack.

    Same layers, batch size, data shapes, device, and the same position in the epoch
    (members resumed from checkpoints taken at different batches run in different stacks).
    """
    return (
        layer_signature(trainer.model),
        trainer.batch_size,
        tuple(trainer.x_train.shape),
        tuple(trainer.x_val.shape),
        str(trainer.device),
        trainer.batch,
    )


#: Most members in one stack.
MAX_STACK = 64

#: On a CPU a stack stops paying once its activations outgrow the caches: measured on a
#: core with 2 MiB of L2 (benchmarks/stacked.py, docs/bundles.md), the gain held while
#: K x batch x (inputs + sum of layer widths) x 12 bytes stayed within about 24 MiB, and
#: turned into a loss well beyond (AE_bn_LeakyReLU at batch 1024: 0.78x at K = 8).
CPU_STACK_BYTES = 24 * 2**20


def stack_limit(trainer: Trainer) -> int:
    """The most members worth stacking with this one on its device (cache heuristic)."""
    if trainer.device.type != "cpu":
        return MAX_STACK
    widths = [
        layer.out_features for layer in _layers(trainer.model) if isinstance(layer, nn.Linear)
    ]
    per_member = trainer.batch_size * (trainer.x_train.shape[1] + sum(widths)) * 12
    return max(1, min(MAX_STACK, CPU_STACK_BYTES // per_member))


def group_stackable(
    trainers: Sequence[Trainer], max_members: int | None = None
) -> tuple[list[list[int]], dict[int, str]]:
    """Indices grouped into stacks, and the reason each unstackable one runs alone.

    Groups keep the input order; a group of one is a plain single training. Members that
    could share a stack are split into stacks of at most ``max_members`` (default:
    :func:`stack_limit`), of nearly equal sizes.
    """
    groups: dict[tuple, list[int]] = {}
    alone: dict[int, str] = {}
    for i, tr in enumerate(trainers):
        reason = why_not_stackable(tr)
        if reason:
            alone[i] = reason
            continue
        groups.setdefault(stack_key(tr), []).append(i)
    out: list[list[int]] = []
    for group in groups.values():
        limit = max_members or stack_limit(trainers[group[0]])
        n_stacks = math.ceil(len(group) / max(1, limit))
        size, extra = divmod(len(group), n_stacks)
        start = 0
        for s in range(n_stacks):
            end = start + size + (1 if s < extra else 0)
            out.append(group[start:end])
            start = end
    out.extend([i] for i in alone)
    return out, alone


# ----------------------------------------------------------------------------- the stack


def _dropout_rate(model: nn.Module) -> float:
    for layer in _layers(model):
        if isinstance(layer, nn.Dropout):
            return float(layer.p)
    return 0.0


def _clone(obj: Any) -> Any:
    """A deep copy of tensors in plain containers (a view would save its whole buffer)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_clone(v) for v in obj)
    return obj


def save_member_checkpoint(trainer: Trainer) -> None:
    """The member's checkpoint, in the single-job format, holding copies, not views."""
    if trainer.checkpoint_path is None:
        return
    # the single job's writer: atomic, and a full disk is a DiskFull naming the file
    save_tensors(trainer.checkpoint_path, _clone(trainer.state_dict()))
    trainer._last_checkpoint = time.monotonic()


@contextlib.contextmanager
def own_storage(model: nn.Module) -> Iterator[None]:
    """Lend the member's modules copies of their tensors for a while (saving the model).

    Inside a stack they are views of the stack's buffers, and torch.save writes a view's
    whole buffer: every member's weights in each model.pt.
    """
    tensors = [*model.parameters(), *model.buffers()]
    views = [t.data for t in tensors]
    for t, v in zip(tensors, views, strict=True):
        t.data = v.clone()
    try:
        yield
    finally:
        for t, v in zip(tensors, views, strict=True):
            t.data = v


class _Stack:
    """The packed parameters, gradients, Adam moments and batch-norm buffers of K members.

    Building it copies each member's current values in and turns the member's parameters,
    optimiser state and buffers into views of its row; :meth:`release` gives a member
    back its own storage.
    """

    def __init__(self, trainers: list[Trainer]) -> None:
        self.trainers = trainers
        k = len(trainers)
        ref = trainers[0]
        device = ref.device
        layers0 = _layers(ref.model)
        self.shapes = [tuple(p.shape) for p in ref.model.parameters()]
        sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [0, *itertools.accumulate(sizes)]
        n_par = self.offsets[-1]
        self.n_par = n_par
        self.p = torch.empty(k, n_par, device=device)
        self.m = torch.zeros(k, n_par, device=device)
        self.v = torch.zeros(k, n_par, device=device)
        self.steps: list[torch.Tensor] = []
        for row, tr in enumerate(trainers):
            params = list(tr.model.parameters())
            opt = tr.optimizer
            step = None
            for j, param in enumerate(params):
                sl = slice(self.offsets[j], self.offsets[j + 1])
                self.p[row, sl].copy_(param.detach().reshape(-1))
                st = opt.state.get(param)
                if st:
                    self.m[row, sl].copy_(st["exp_avg"].reshape(-1))
                    self.v[row, sl].copy_(st["exp_avg_sq"].reshape(-1))
                    step = st["step"]
            # As torch's fused optimiser keeps it: float32, on the parameters' device.
            step_t = torch.zeros((), dtype=torch.float32, device=device)
            if step is not None:
                step_t.copy_(step)
            self.steps.append(step_t)
            for j, param in enumerate(params):
                sl = slice(self.offsets[j], self.offsets[j + 1])
                param.data = self.p[row, sl].view(self.shapes[j])
                param.grad = None
                opt.state[param] = {
                    "step": step_t,
                    "exp_avg": self.m[row, sl].view(self.shapes[j]),
                    "exp_avg_sq": self.v[row, sl].view(self.shapes[j]),
                }
            # The scheduler checks once that the optimiser stepped before it; the stack
            # steps it through the fused kernel, not through optimizer.step().
            opt._opt_called = True

        # The stacked leaves share storage with the member rows: [K, *shape] views with the
        # row stride P. Their gradients are left to autograd (fresh tensors each batch,
        # no zeroing and no accumulation pass) and read per member as views.
        self.leaves: list[torch.Tensor] = []
        for j, shape in enumerate(self.shapes):
            strides = _contiguous_strides(shape)
            leaf = self.p.as_strided((k, *shape), (n_par, *strides), self.offsets[j])
            self.leaves.append(leaf.detach().requires_grad_(True))

        def views(buf: torch.Tensor, row: int) -> list[torch.Tensor]:
            return [
                buf[row, self.offsets[j] : self.offsets[j + 1]].view(shape)
                for j, shape in enumerate(self.shapes)
            ]

        self.rows = [
            (views(self.p, r), views(self.m, r), views(self.v, r), [self.steps[r]] * len(sizes))
            for r in range(k)
        ]

        # The layer plan from the first member; batch-norm buffers packed channel-major
        # ([K*C]) because F.batch_norm takes them flat.
        self.plan: list[tuple] = []
        self.bn_buffers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.dropout = torch.tensor(
            [_dropout_rate(tr.model) for tr in trainers], device=device
        ).view(k, 1, 1)
        self.any_dropout = bool((self.dropout > 0).any())
        member_layers = [
            [x for x in _layers(tr.model) if not isinstance(x, nn.Dropout)] for tr in trainers
        ]
        j = 0
        for li, layer in enumerate(x for x in layers0 if not isinstance(x, nn.Dropout)):
            if isinstance(layer, nn.Linear):
                self.plan.append(("linear", j, j + 1))
                j += 2
            elif isinstance(layer, nn.BatchNorm1d):
                c = layer.num_features
                rm = torch.empty(k * c, device=device)
                rv = torch.empty(k * c, device=device)
                nbt = torch.empty(k, dtype=torch.long, device=device)
                for row, layers in enumerate(member_layers):
                    bn = layers[li]
                    rm[row * c : (row + 1) * c].copy_(bn.running_mean)
                    rv[row * c : (row + 1) * c].copy_(bn.running_var)
                    nbt[row].copy_(bn.num_batches_tracked)
                    bn._buffers["running_mean"] = rm[row * c : (row + 1) * c]
                    bn._buffers["running_var"] = rv[row * c : (row + 1) * c]
                    bn._buffers["num_batches_tracked"] = nbt[row]
                self.bn_buffers.append((rm, rv, nbt))
                self.plan.append(("bn", j, j + 1, len(self.bn_buffers) - 1, layer, None))
                j += 2
            elif self.plan and self.plan[-1][0] == "bn":
                # Applied inside the batch norm step, on its [B, K*C] output: in place on a
                # view would make autograd copy the whole activation back in backward.
                self.plan[-1] = (*self.plan[-1][:-1], _inplace(layer))
                if self.any_dropout:
                    self.plan.append(("drop",))
            else:
                self.plan.append(("act", _inplace(layer)))
                if self.any_dropout:
                    self.plan.append(("drop",))

    # -- forward -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Reconstruct ``x`` of shape [K, B, D] with every member at once."""
        leaves = self.leaves
        h = x
        for op in self.plan:
            kind = op[0]
            if kind == "linear":
                w, b = leaves[op[1]], leaves[op[2]]
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            elif kind == "act":
                h = op[1](h)
            elif kind == "bn":
                w, b = leaves[op[1]], leaves[op[2]]
                rm, rv, nbt = self.bn_buffers[op[3]]
                bn = op[4]
                k, n, c = h.shape
                # [K, B, C] -> [B, K*C]: the statistics of each (member, channel) column
                # are those BatchNorm1d computes for that member alone.
                flat = h.transpose(0, 1).reshape(n, k * c)
                flat = F.batch_norm(
                    flat, rm, rv, w.reshape(-1), b.reshape(-1), train, bn.momentum, bn.eps
                )
                if train:
                    nbt.add_(1)
                if op[5] is not None:
                    flat = op[5](flat)
                h = flat.view(n, k, c).transpose(0, 1)
            elif train:  # dropout, per-member rate
                keep = 1.0 - self.dropout
                h = h * torch.bernoulli(keep.expand(h.shape)).div_(keep)
        return h

    # -- the optimiser step ----------------------------------------------------------
    def step(self) -> None:
        """One Adam/AdamW step per member, with its own hyperparameters, fused kernel.

        The kernel and its scalars are those of the member's own ``fused=True`` optimiser,
        so the step adds no difference to a single run.
        """
        grads = [leaf.grad for leaf in self.leaves]
        for row, (tr, (p, m, v, steps)) in enumerate(zip(self.trainers, self.rows, strict=True)):
            group = tr.optimizer.param_groups[0]
            beta1, beta2 = group["betas"]
            steps[0] += 1  # one step count per member, shared by its parameters
            fused = (
                torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
            )
            fused(
                p,
                [g[row] for g in grads],
                m,
                v,
                [],
                steps,
                amsgrad=False,
                lr=float(group["lr"]),
                beta1=float(beta1),
                beta2=float(beta2),
                weight_decay=float(group["weight_decay"]),
                eps=float(group["eps"]),
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )
        for leaf in self.leaves:
            leaf.grad = None

    # -- handing members back ------------------------------------------------------------
    def release(self) -> None:
        """Give every member its own storage again (the stack's buffers can be freed)."""
        for tr in self.trainers:
            tr.stack_size = 1
            opt = tr.optimizer
            for param in tr.model.parameters():
                param.data = param.data.clone()
                param.grad = None
                st = opt.state.get(param)
                if st:
                    opt.state[param] = {key: val.clone() for key, val in st.items()}
            for layer in _layers(tr.model):
                if isinstance(layer, nn.BatchNorm1d):
                    for name in ("running_mean", "running_var", "num_batches_tracked"):
                        layer._buffers[name] = layer._buffers[name].clone()


def _inplace(layer: nn.Module):
    """The activation as a function; in place where autograd allows it (saves memory
    traffic on the stack's large activations: the values are the same)."""
    if isinstance(layer, nn.Tanh):
        return torch.tanh_
    if isinstance(layer, nn.ReLU):
        return torch.relu_
    if isinstance(layer, nn.LeakyReLU) and layer.negative_slope > 0:
        slope = layer.negative_slope
        return lambda h: F.leaky_relu_(h, slope)
    if isinstance(layer, nn.ELU):
        alpha = layer.alpha
        return lambda h: F.elu_(h, alpha)
    return layer


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= size
    return tuple(reversed(strides))


# ----------------------------------------------------------------------------- training


@dataclass
class MemberOutcome:
    """How one member's training ended: ``done``, ``interrupted`` or ``failed``."""

    state: str
    error: BaseException | None = None


class StackedTrainer:
    """Train several :class:`~hepae_core.train.Trainer` members as one stack.

    The members must share :func:`stack_key` (see :func:`group_stackable`). Each
    member's ``on_best``/``on_epoch`` callbacks and checkpoint path are used as a single
    run would use them. A member whose epoch-end work raises (a NaN loss, a full disk in
    its callback) fails alone: its outcome holds the exception and the others go on.
    """

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        if not trainers:
            raise ValueError("a stack needs at least one member")
        keys = {stack_key(tr) for tr in trainers}
        if len(keys) != 1:
            raise ValueError("members of a stack need equal layers, batch size, data shapes")
        for tr in trainers:
            reason = why_not_stackable(tr)
            if reason:
                raise ValueError(f"member cannot be stacked: {reason}")
        self.trainers = list(trainers)
        self.outcomes: list[MemberOutcome | None] = [None] * len(self.trainers)
        every = [tr.cfg["checkpoint_every_s"] for tr in self.trainers]
        every = [e for e in every if e]
        self.checkpoint_every_s = min(every) if every else None

    def run(self, stop: StopFlag | None = None) -> list[MemberOutcome]:
        """Train until every member is done, failed, or a stop signal arrives."""
        active = [i for i, tr in enumerate(self.trainers) if tr.epoch < int(tr.cfg["epochs"])]
        for i, tr in enumerate(self.trainers):
            if i not in active:  # resumed from its last epoch's checkpoint: nothing to train
                tr.result.epochs_run = tr.epoch
                self.outcomes[i] = MemberOutcome("done")
        while active:
            members = [self.trainers[i] for i in active]
            stack = _Stack(members)
            try:
                finished, interrupted = self._run_stack(stack, members, stop)
            finally:
                stack.release()
            for pos, outcome in finished.items():
                self.outcomes[active[pos]] = outcome
            active = [i for pos, i in enumerate(active) if pos not in finished]
            if interrupted:  # every member still active has written its checkpoint
                for i in active:
                    self.outcomes[i] = MemberOutcome("interrupted")
                break
        return [o or MemberOutcome("done") for o in self.outcomes]

    # -- one stack until its membership changes ---------------------------------------
    def _run_stack(
        self, stack: _Stack, members: list[Trainer], stop: StopFlag | None
    ) -> tuple[dict[int, MemberOutcome], bool]:
        """Run epochs until a member leaves or a stop signal; (who left, interrupted)."""
        ref = members[0]
        k = len(members)
        device = ref.device
        bs = ref.batch_size
        starts = ref.starts
        n, d = ref.x_train.shape
        every = self.checkpoint_every_s
        for tr in members:  # an epoch's seconds count 1/k for each member (its speed)
            tr.stack_size = k
        x_val = torch.stack([tr.x_val for tr in members])
        loss_sum = torch.stack([tr.epoch_loss for tr in members]).to(device)
        xs = torch.empty(k, n, d, device=device)
        while True:
            if ref.batch == 0:
                for tr in members:
                    tr.perm = torch.randperm(n, generator=tr.generator)
                    tr.epoch_time = 0.0
                loss_sum.zero_()
            for row, tr in enumerate(members):  # one gather per member and epoch
                torch.index_select(tr.x_train, 0, tr.perm.to(device), out=xs[row])
            t0 = time.perf_counter()
            i = ref.batch
            per_batch = [tr for tr in members if tr.per_batch_schedule]
            while i < len(starts):
                xb = xs[:, starts[i] : starts[i] + bs]
                out = stack.forward(xb, train=True)
                losses = F.mse_loss(out, xb, reduction="none").mean(dim=(1, 2))
                losses.sum().backward()
                stack.step()
                for tr in per_batch:
                    tr.scheduler.step()
                loss_sum += (losses.detach() * xb.shape[1]).double()
                i += 1
                if stop or (every and time.monotonic() - ref._last_checkpoint > every):
                    elapsed = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    for row, tr in enumerate(members):
                        tr.batch = i
                        tr.epoch_time += elapsed
                        tr.result.train_time_s += elapsed
                        tr.epoch_loss = loss_sum[row].clone()
                        if i < len(starts):
                            save_member_checkpoint(tr)
                        if stop:
                            tr.result.epochs_run = tr.epoch
                            tr.result.interrupted = True
                            tr.result.signal_name = stop.signal_name
                    if stop:
                        return {}, True
            elapsed = time.perf_counter() - t0
            if device.type == "cuda":
                torch.cuda.synchronize()
            vals = self._val_losses(stack, x_val)
            sums = loss_sum.tolist()
            finished: dict[int, MemberOutcome] = {}
            for row, tr in enumerate(members):
                tr.epoch_time += elapsed
                tr.result.train_time_s += elapsed
                tr.epoch_loss = loss_sum[row].clone()
                try:
                    ended = self._end_epoch(tr, sums[row], vals[row])
                except Exception as exc:  # this member fails; the others go on
                    finished[row] = MemberOutcome("failed", exc)
                    continue
                if ended:
                    finished[row] = MemberOutcome("done")
            if stop:
                for row, tr in enumerate(members):
                    if row in finished:
                        continue
                    save_member_checkpoint(tr)
                    tr.result.epochs_run = tr.epoch
                    tr.result.interrupted = True
                    tr.result.signal_name = stop.signal_name
                return finished, True
            if finished:
                return finished, False

    @torch.no_grad()
    def _val_losses(self, stack: _Stack, x_val: torch.Tensor) -> list[float]:
        """Each member's mean squared error on its validation jets, eval mode."""
        k, n, d = x_val.shape
        chunk = max(1, min(VAL_BATCH, _VAL_ROWS // k))
        total = torch.zeros(k, dtype=torch.float64, device=x_val.device)
        for i in range(0, n, chunk):
            xb = x_val[:, i : i + chunk]
            out = stack.forward(xb, train=False)
            # Per member, the reduction a single run does (same summation order).
            for row in range(k):
                total[row] += F.mse_loss(out[row], xb[row], reduction="sum").double()
        return (total / max(1, n * d)).tolist()

    @staticmethod
    def _end_epoch(tr: Trainer, loss_sum: float, val_loss: float) -> bool:
        """The single trainer's epoch-end steps for one member; True when it is finished.

        Mirrors the end of :meth:`hepae_core.train.Trainer.run` line by line, so a member
        records, saves and stops exactly where a single run would.
        """
        cfg = tr.cfg
        x = tr.x_train
        starts, bs = tr.starts, tr.batch_size
        tr.batch = 0
        tr.epoch += 1
        n_seen = starts[-1] + min(bs, x.shape[0] - starts[-1])
        train_loss = loss_sum / n_seen  # batch means weighted by rows: per-value MSE
        tr.result.epochs_run = tr.epoch
        record = tr.close_epoch(train_loss, val_loss, n_seen, lambda: own_storage(tr.model))
        every = cfg["checkpoint_every_s"]
        if not every or time.monotonic() - tr._last_checkpoint > every:
            save_member_checkpoint(tr)
        if tr.on_epoch:
            tr.on_epoch(record)
        if cfg["patience"] and tr.bad_epochs >= cfg["patience"]:
            tr.result.early_stopped = True
            return True
        return tr.epoch >= int(cfg["epochs"])
