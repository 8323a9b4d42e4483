"""Stacked training: K autoencoders of identical layer shapes trained as one.

A grid search trains many tiny models whose cost per batch is mostly framework overhead.
Stacking K of them turns K small matrix products into one batched product (``baddbmm`` on
parameters of shape ``[K, out, in]``), so the per-batch overhead is paid once for K models.

Each member is a :class:`hepae_core.training.train.Trainer` built exactly as for a single job; the
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from hepae_core.training.train import VAL_BATCH, StopFlag, Trainer, save_tensors

#: Parameters of a stack start at multiples of this many floats (64 bytes).
_ALIGN = 16

#: Member rows per validation chunk at most (memory: rows x widest layer x 4 bytes).
_VAL_ROWS = 4 * VAL_BATCH


# ----------------------------------------------------------------------------- grouping


def _layers(model: nn.Module) -> list[nn.Module]:
    return [*cast(nn.Sequential, model.encoder), *cast(nn.Sequential, model.decoder)]


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

    The stack runs its own forward and backward pass (no autograd graph): the network is
    a chain of linear, batch-norm, activation and dropout layers whose derivatives are a
    few kernels each, and writing them out lets every tensor keep the layout its next
    kernel wants and every gradient land where the optimiser reads it:

    - activations are ``[K, B, C]`` (member-major, as a lone run's ``[B, C]`` per
      member); a linear layer that feeds a batch norm writes its output batch-major
      (``[B, K, C]`` memory, seen as ``[K, B, C]``), so the norm is one
      ``F.batch_norm`` over ``[B, K*C]`` with no layout copy in either direction;
    - gradients are written straight into one ``[K, P]`` buffer laid out as the
      parameters (``out=`` views), so each member's Adam step is one fused call on one
      flat row, with nothing to zero, accumulate or gather;
    - every sum over the batch is taken on a member's own contiguous block, as a lone
      run takes it, so a member's numbers never depend on the other members (nor on K).
    """

    def __init__(self, trainers: list[Trainer]) -> None:
        self.trainers = trainers
        k = len(trainers)
        self.k = k
        ref = trainers[0]
        device = ref.device
        layers0 = _layers(ref.model)
        self.shapes = [tuple(p.shape) for p in ref.model.parameters()]
        sizes = [math.prod(s) for s in self.shapes]
        # Each parameter starts on a 64-byte boundary of its row, as a tensor of its own
        # would: the products that write gradients there round as for an aligned
        # tensor, whatever the member's row (and so whatever K).
        self.offsets = [0, *itertools.accumulate(-(-n // _ALIGN) * _ALIGN for n in sizes)]
        self.sizes = sizes
        n_par = self.offsets[-1]
        self.n_par = n_par
        self.p = torch.empty(k, n_par, device=device)
        self.m = torch.zeros(k, n_par, device=device)
        self.v = torch.zeros(k, n_par, device=device)
        # Every entry is written by each backward pass (out= views), so never zeroed.
        self.g = torch.zeros(k, n_par, device=device)
        self.steps: list[torch.Tensor] = []
        self._adopt(trainers)

        self.dropout = torch.tensor(
            [_dropout_rate(tr.model) for tr in trainers], device=device
        ).view(k, 1, 1)
        self.any_dropout = bool((self.dropout > 0).any())
        member_layers = [
            [x for x in _layers(tr.model) if not isinstance(x, nn.Dropout)] for tr in trainers
        ]
        self._work: dict[tuple, torch.Tensor] = {}
        self.feature_major = any(isinstance(x, nn.BatchNorm1d) for x in layers0)
        self.plan: list[_Op] = []
        self._build_plan(layers0, member_layers)

    def _adopt(self, trainers: list[Trainer]) -> None:
        """Make each member's parameters and Adam moments views of its row of the stack's
        buffers, copying what it has (a resumed member's moments and step count)."""
        sizes = self.sizes
        device = self.p.device
        for row, tr in enumerate(trainers):
            params = list(tr.model.parameters())
            opt = tr.optimizer
            step = None
            for j, param in enumerate(params):
                sl = slice(self.offsets[j], self.offsets[j] + sizes[j])
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
                sl = slice(self.offsets[j], self.offsets[j] + sizes[j])
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

    def _build_plan(self, layers0: list[nn.Module], member_layers: list[list[nn.Module]]) -> None:
        """The stack's forward plan from the first member's layers: a linear op per Linear,
        a batch norm taking its linear layer's bias and its activation in place, dropout
        after each activation where a member has any."""
        kept = [x for x in layers0 if not isinstance(x, nn.Dropout)]
        j = 0
        for li, layer in enumerate(kept):
            if isinstance(layer, nn.Linear):
                self.plan.append(_Linear(self, j, first=not self.plan))
                j += 2
            elif isinstance(layer, nn.BatchNorm1d):
                bn = _BatchNorm(self, j, [ls[li] for ls in member_layers], layer)
                last = self.plan[-1] if self.plan else None
                if isinstance(last, _Linear) and last.fm:
                    # The norm subtracts the batch mean: the linear layer's bias cancels
                    # in its output, so it is added to the statistics only (one pass less).
                    last.bias_to_norm = True
                    bn.bias = last.b.squeeze(2)
                self.plan.append(bn)
                j += 2
            else:
                act = _Activation(self, layer)
                last = self.plan[-1] if self.plan else None
                if isinstance(last, _BatchNorm) and last.act is None:
                    last.act = act  # applied in place on the batch norm's own output
                else:
                    self.plan.append(act)
                if self.any_dropout:
                    self.plan.append(_Dropout(self, self.dropout))

    def buffer(self, op: object, role: str, shape: tuple[int, int]) -> torch.Tensor:
        """A [K, *shape] work tensor of layer ``op``, kept for the next batch of its size."""
        key = (id(op), role, shape)
        t = self._work.get(key)
        if t is None:
            t = torch.empty((self.k, *shape), device=self.p.device)
            self._work[key] = t
        return t

    def view(self, buf: torch.Tensor, j: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Parameter ``j`` of every member: a ``[K, *shape]`` view of ``buf`` ([K, P])."""
        strides = _contiguous_strides(shape)
        return buf.as_strided((self.k, *shape), (self.n_par, *strides), self.offsets[j])

    # -- forward and backward -----------------------------------------------------------
    def run(self, h: torch.Tensor, train: bool, tape: list | None = None) -> torch.Tensor:
        """Reconstruct ``h`` with every member at once, in the stack's layout.

        [K, B, D], or [K, D, B] when :attr:`feature_major`. With a ``tape`` (training),
        each layer appends what its backward pass needs.
        """
        for op in self.plan:
            h = op.forward(h, train, tape)
        return h

    @torch.no_grad()
    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Reconstruct ``x`` [K, B, D] with every member at once (a tensor of its own)."""
        if self.feature_major:
            return self.run(x.transpose(1, 2), train).transpose(1, 2).clone()
        return self.run(x, train).clone()

    @torch.no_grad()
    def train_step(self, xb: torch.Tensor, step: bool = True) -> torch.Tensor:
        """One training batch ``xb`` (as :meth:`run` takes it): forward, backward, and
        each member's Adam step (``step=False``: gradients only, in :attr:`g`).

        Returns each member's mean squared error of this batch ([K]).
        """
        tape: list = []
        out = self.run(xb, True, tape)
        losses = F.mse_loss(out, xb, reduction="none").mean(dim=(1, 2))
        # d(mean squared error)/d out as mse_loss's backward computes it: (2/n) * diff.
        # The last linear layer's backward needs its input only: its output is free.
        diff = out.sub_(xb) if isinstance(self.plan[-1], _Linear) else out - xb
        g = diff.mul_(2.0 / (xb.shape[1] * xb.shape[2]))
        for op in reversed(self.plan):
            g = op.backward(g, tape.pop())
        if step:
            self.step()
        return losses

    # -- the optimiser step ----------------------------------------------------------
    def step(self) -> None:
        """One Adam/AdamW step per member, with its own hyperparameters, fused kernel.

        The kernel and its scalars are those of the member's own ``fused=True`` optimiser
        (elementwise: one flat row gives the values of the per-parameter lists), so the
        step adds no difference to a single run.
        """
        for row, tr in enumerate(self.trainers):
            group = tr.optimizer.param_groups[0]
            beta1, beta2 = group["betas"]
            step = self.steps[row]
            step += 1  # the step count the member's parameters share
            fused = (
                torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
            )
            fused(
                [self.p[row]],
                [self.g[row]],
                [self.m[row]],
                [self.v[row]],
                [],
                [step],
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
                        buf = layer._buffers[name]
                        assert buf is not None  # (why_not_stackable: running statistics)
                        layer._buffers[name] = buf.clone()


class _Op:
    """One layer of the stack: ``forward`` on [K, B, C], ``backward`` from what it taped.

    Every tensor a layer makes lives in the stack's workspace (:meth:`_Stack.buffer`),
    reused batch after batch: fresh megabyte-sized tensors would cost their page faults
    on every batch (a third of a step's time, measured).
    """

    def forward(self, h: torch.Tensor, train: bool, tape: list | None) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, g: torch.Tensor, saved: Any) -> torch.Tensor:
        raise NotImplementedError


class _Linear(_Op):
    """``y = h W^T + b`` per member, one batched product for all members.

    Member-major rows ([K, B, C], as a lone run's [B, C] per member), or, in a stack
    with batch norm, feature-major ([K, C, B]: ``y = W h + b``).
    """

    def __init__(self, stack: _Stack, j: int, first: bool) -> None:
        out_f, in_f = stack.shapes[j]
        self.stack = stack
        self.fm = stack.feature_major
        self.w = stack.view(stack.p, j, (out_f, in_f))
        self.b = stack.view(stack.p, j + 1, (out_f,)).unsqueeze(2 if self.fm else 1)
        self.gw = stack.view(stack.g, j, (out_f, in_f))
        self.gb = stack.view(stack.g, j + 1, (out_f,))
        self.out_f, self.in_f = out_f, in_f
        self.first = first  # its input needs no gradient
        self.bias_to_norm = False  # the batch norm after it accounts for the bias

    def forward(self, h, train, tape):
        if self.fm:
            y = self.stack.buffer(self, "y", (self.out_f, h.shape[2]))
            if self.bias_to_norm:
                torch.bmm(self.w, h, out=y)
            else:
                torch.baddbmm(self.b, self.w, h, out=y)
        else:
            y = self.stack.buffer(self, "y", (h.shape[1], self.out_f))
            torch.baddbmm(self.b, h, self.w.transpose(1, 2), out=y)
        if tape is not None:
            tape.append(h)
        return y

    def backward(self, g, h):
        # Gradients are contiguous member blocks, as in a lone run: the products and the
        # bias's sum over the batch round as there, whatever K.
        g = g.contiguous()
        if self.fm:
            torch.bmm(g, h.transpose(1, 2), out=self.gw)
            self.gb.copy_(g.sum(2))
            if self.first:
                return g
            gin = self.stack.buffer(self, "gin", (self.in_f, g.shape[2]))
            return torch.bmm(self.w.transpose(1, 2), g, out=gin)
        # dW = g^T h: what autograd computes for a linear layer's weight (mm(g.t(), h))
        torch.bmm(g.transpose(1, 2), h, out=self.gw)
        self.gb.copy_(g.sum(1))  # (sum's out= would not write through a strided view)
        if self.first:
            return g
        gin = self.stack.buffer(self, "gin", (g.shape[1], self.in_f))
        return torch.bmm(g, self.w, out=gin)


class _BatchNorm(_Op):
    """BatchNorm1d per member and channel, on feature-major [K, C, B] activations.

    Each (member, channel) is one contiguous row of B values, so the statistics and the
    two sums of the backward pass are fast row reductions, each row's the same whatever
    K. Computed as BatchNorm1d defines it (biased variance to normalise, unbiased for the
    running variance); an activation after it is applied in place on its output.
    """

    def __init__(self, stack: _Stack, j: int, layers: list[nn.Module], bn: nn.BatchNorm1d):
        k = stack.k
        c = bn.num_features
        device = stack.p.device
        self.stack = stack
        self.c = c
        self.w = stack.view(stack.p, j, (c,))
        self.b = stack.view(stack.p, j + 1, (c,))
        self.gw = stack.view(stack.g, j, (c,))
        self.gb = stack.view(stack.g, j + 1, (c,))
        assert bn.momentum is not None  # (why_not_stackable)
        self.momentum, self.eps = float(bn.momentum), bn.eps
        # Running statistics packed channel-major ([K*C]); each member's buffers become
        # views of its slice.
        self.rm = torch.empty(k * c, device=device)
        self.rv = torch.empty(k * c, device=device)
        self.nbt = torch.empty(k, dtype=torch.long, device=device)
        for row, layer in enumerate(layers):
            self.rm[row * c : (row + 1) * c].copy_(cast(torch.Tensor, layer.running_mean))
            self.rv[row * c : (row + 1) * c].copy_(cast(torch.Tensor, layer.running_var))
            self.nbt[row].copy_(cast(torch.Tensor, layer.num_batches_tracked))
            layer._buffers["running_mean"] = self.rm[row * c : (row + 1) * c]
            layer._buffers["running_var"] = self.rv[row * c : (row + 1) * c]
            layer._buffers["num_batches_tracked"] = self.nbt[row]
        self.act: _Activation | None = None
        # The bias of the linear layer before, when that layer left it out of ``h``
        # (a [K, C] view of the stack's parameters).
        self.bias: torch.Tensor | None = None

    def forward(self, h, train, tape):
        k, c, n = h.shape
        ws = self.stack
        x = h.reshape(k * c, n)
        gamma, beta = self.w.reshape(-1, 1), self.b.reshape(-1, 1)
        xc = ws.buffer(self, "xc", (c, n)).view(k * c, n)
        if train:
            mean = x.mean(1)
            torch.sub(x, mean.unsqueeze(1), out=xc)
            sq = ws.buffer(self, "tmp", (c, n)).view(k * c, n)
            var = torch.mul(xc, xc, out=sq).sum(1).div_(n)  # biased, as the norm uses it
            m = self.momentum
            if self.bias is not None:
                mean = mean + self.bias.reshape(-1)  # the mean of the layer's real output
            self.rm.mul_(1 - m).add_(mean, alpha=m)
            self.rv.mul_(1 - m).add_(var * (n / max(1, n - 1)), alpha=m)
            self.nbt.add_(1)
        else:
            rm = self.rm.unsqueeze(1)
            torch.sub(x, rm if self.bias is None else rm - self.bias.reshape(-1, 1), out=xc)
            var = self.rv
        invstd = torch.rsqrt(var + self.eps).unsqueeze(1)
        y = ws.buffer(self, "y", (c, n))
        torch.addcmul(beta, xc, invstd * gamma, out=y.view(k * c, n))
        act_saved = None
        if self.act is not None:
            y, act_saved = self.act.apply(y)
        if tape is not None:
            tape.append((xc, invstd, gamma, act_saved))
        return y

    def backward(self, g, saved):
        xc, invstd, gamma, act_saved = saved
        k, c, n = g.shape
        if self.act is not None:
            g = self.act.grad(g, act_saved, out=g)  # the stack's buffer: in place
        dy = g.reshape(k * c, n)
        # The gradients of a training-mode batch norm per row; with xc = x - mean:
        #   dbeta = sum(dy), dgamma = invstd * sum(dy * xc),
        #   dx = gamma * invstd * (dy - dbeta / n - xc * invstd * dgamma / n).
        sum_dy = dy.sum(1, keepdim=True)
        prod = self.stack.buffer(self, "tmp", (c, n)).view(k * c, n)
        dgamma = torch.mul(dy, xc, out=prod).sum(1, keepdim=True).mul_(invstd)
        a = gamma * invstd
        dx = self.stack.buffer(self, "dx", (c, n))
        torch.addcmul(sum_dy * a * (-1.0 / n), dy, a, out=dx.view(k * c, n))
        dx.view(k * c, n).addcmul_(xc, a * invstd * dgamma * (-1.0 / n))
        self.gw.copy_(dgamma.view(k, c))
        self.gb.copy_(sum_dy.view(k, c))
        return dx


class _Activation(_Op):
    """An elementwise activation; in place where its derivative needs only its output."""

    def __init__(self, stack: _Stack, layer: nn.Module) -> None:
        self.stack = stack
        self.layer = layer
        self.fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        # deriv(grad, saved, out): the input's gradient, written into ``out``
        self.deriv: Callable[..., torch.Tensor] | None = None
        aten = torch.ops.aten
        if isinstance(layer, nn.Tanh):
            self.fn = _fast_tanh_
            self.deriv = lambda g, y, out: aten.tanh_backward.grad_input(g, y, grad_input=out)
        elif isinstance(layer, nn.ReLU):
            self.fn = torch.relu_
            self.deriv = lambda g, y, out: aten.threshold_backward.grad_input(
                g, y, 0, grad_input=out
            )
        elif isinstance(layer, nn.LeakyReLU) and layer.negative_slope > 0:
            slope = layer.negative_slope
            self.fn = lambda h: F.leaky_relu_(h, slope)
            self.deriv = lambda g, y, out: aten.leaky_relu_backward.grad_input(
                g, y, slope, True, grad_input=out
            )
        elif isinstance(layer, nn.ELU) and layer.alpha >= 0:
            alpha = layer.alpha
            self.fn = lambda h: F.elu_(h, alpha)
            self.deriv = lambda g, y, out: aten.elu_backward.grad_input(
                g, alpha, 1, 1, True, y, grad_input=out
            )
        elif isinstance(layer, nn.SiLU):  # from its input: not in place
            self.deriv = lambda g, x, out: aten.silu_backward.grad_input(g, x, grad_input=out)

    def apply(self, h: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The activation of ``h`` (which the stack owns) and what its derivative needs."""
        if self.fn is not None:
            y = self.fn(h)
            return y, y
        if self.deriv is not None:
            return self.layer(h), h
        # Any other module: its own autograd, on this piece only.
        with torch.enable_grad():
            x = h.detach().requires_grad_(True)
            y = self.layer(x)
        return y.detach(), (x, y)

    def grad(self, g: torch.Tensor, saved: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        """The input's gradient from the output's ``g``; in place on ``g`` when it is
        the stack's own buffer (``out``)."""
        if self.deriv is not None:
            return self.deriv(g, saved, g.new_empty(g.shape) if out is None else out)
        x, y = saved
        (gx,) = torch.autograd.grad(y, x, g)
        return gx

    def forward(self, h, train, tape):
        y, saved = self.apply(h)
        if tape is not None:
            tape.append(saved)
        return y

    def backward(self, g, saved):
        return self.grad(g, saved, out=g)


def _fast_tanh_(h: torch.Tensor) -> torch.Tensor:
    """tanh in place as 2 sigmoid(2h) - 1: four cheap passes instead of torch's tanh.

    torch 2.13's float tanh runs at 0.28 G values/s on the development CPU, its sigmoid at
    1.7 (measured side by side): the tanh of a stack of AE_3D_200 models took a fifth of
    its step. The two agree to a few float32 ulps of 1 (absolute), so a member trains as
    its lone run to float32 rounding, no longer bit for bit (tests: 1e-5 on the losses).
    """
    return torch.sigmoid(h.mul_(2), out=h).mul_(2).sub_(1)


class _Dropout(_Op):
    """Dropout with a per-member rate ([K, 1, 1]); masks from torch's global generator."""

    def __init__(self, stack: _Stack, rate: torch.Tensor) -> None:
        self.stack = stack
        self.keep = 1.0 - rate

    def forward(self, h, train, tape):
        if not train:
            return h
        mask = self.stack.buffer(self, "mask", h.shape[1:])
        torch.bernoulli(self.keep.expand(h.shape), out=mask).div_(self.keep)
        if tape is not None:
            tape.append(mask)
        return torch.mul(h, mask, out=self.stack.buffer(self, "y", h.shape[1:]))

    def backward(self, g, mask):
        return g.mul_(mask)


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
    """Train several :class:`~hepae_core.training.train.Trainer` members as one stack.

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
        fm = stack.feature_major  # the jets as [K, d, n]: a batch is [K, d, B]
        x_val = torch.stack([tr.x_val.t() if fm else tr.x_val for tr in members])
        loss_sum = torch.stack([tr.epoch_loss for tr in members]).to(device)
        xs = torch.empty((k, d, n) if fm else (k, n, d), device=device)
        while True:
            if ref.batch == 0:
                for tr in members:
                    tr.perm = torch.randperm(n, generator=tr.generator)
                    tr.epoch_time = 0.0
                loss_sum.zero_()
            self._gather_epoch(members, xs, fm)
            t0 = time.perf_counter()
            i = ref.batch
            per_batch = [tr for tr in members if tr.per_batch_schedule]
            while i < len(starts):
                xb = (
                    xs[..., starts[i] : starts[i] + bs] if fm else xs[:, starts[i] : starts[i] + bs]
                )
                losses = stack.train_step(xb)
                for tr in per_batch:
                    tr.scheduler.step()
                loss_sum += (losses * xb.shape[2 if fm else 1]).double()
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
                            tr.interrupted(stop)
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
                    tr.interrupted(stop)
                return finished, True
            if finished:
                return finished, False

    @staticmethod
    def _gather_epoch(members: list[Trainer], xs: torch.Tensor, fm: bool) -> None:
        """Each member's training jets in its epoch's order into its row of ``xs`` (one
        gather per member and epoch; feature-major rows for a batch-norm stack)."""
        for row, tr in enumerate(members):
            perm = cast(torch.Tensor, tr.perm).to(xs.device)
            if fm:
                xs[row] = tr.x_train[perm].t()
            else:
                torch.index_select(tr.x_train, 0, perm, out=xs[row])

    @torch.no_grad()
    def _val_losses(self, stack: _Stack, x_val: torch.Tensor) -> list[float]:
        """Each member's mean squared error on its validation jets, eval mode.

        ``x_val`` is [K, n, d], or [K, d, n] in a feature-major stack.
        """
        fm = stack.feature_major
        k = x_val.shape[0]
        n, d = (x_val.shape[2], x_val.shape[1]) if fm else x_val.shape[1:]
        chunk = max(1, min(VAL_BATCH, _VAL_ROWS // k))
        total = torch.zeros(k, dtype=torch.float64, device=x_val.device)
        for i in range(0, n, chunk):
            xb = x_val[..., i : i + chunk] if fm else x_val[:, i : i + chunk]
            out = stack.run(xb, train=False)
            if fm:  # back to [K, rows, d]: each member's sum runs as a lone run's
                out, xb = out.transpose(1, 2).contiguous(), xb.transpose(1, 2).contiguous()
            # Per member, the reduction a single run does (same summation order).
            for row in range(k):
                total[row] += F.mse_loss(out[row], xb[row], reduction="sum").double()
        return (total / max(1, n * d)).tolist()

    @staticmethod
    def _end_epoch(tr: Trainer, loss_sum: float, val_loss: float) -> bool:
        """One member's epoch end, through the Trainer's own steps (count, close, checkpoint,
        report, patience) as a single run takes them; True when the member is finished."""
        n_seen = tr.count_epoch()
        train_loss = loss_sum / n_seen  # batch means weighted by rows: per-value MSE
        tr.result.epochs_run = tr.epoch
        save = partial(save_member_checkpoint, tr)
        early = tr.end_epoch(train_loss, val_loss, n_seen, save, lambda: own_storage(tr.model))
        return early or tr.epoch >= int(tr.cfg["epochs"])
