"""Stacked training throughput: K models trained as one stack against K sequential runs.

For each thread count, model shape and batch size, prints the model-jets/s (training jets
per second summed over the models) of one model trained alone with
hepae_core.training.train.Trainer -- K sequential runs go at that same rate, one after the other --
and of K = 1, 2, 4, ..., 64 models trained as one stack with
hepae_core.training.stacked.StackedTrainer, side by side, with the ratio stacked/sequential.

Both are measured through the real training loops (shuffling gather, epoch ends with
validation included) for about ``--seconds`` each after a warm-up, on the same data. The
machine may be shared: every cell is measured ``--rounds`` times, interleaved, and the
best kept; the sequential rate is the best of its row's rounds.

    python benchmarks/stacked.py [--quick] [--device cpu|cuda] [--threads 1 2] [--rounds 2]
    python benchmarks/stacked.py --vmap   # the stack's own pass against torch.func vmap
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from hepae_core.config import resolve
from hepae_core.training.models import build_model
from hepae_core.training.stacked import StackedTrainer
from hepae_core.training.train import StopFlag, Trainer

MODELS = {
    "AE_3D_200 (4D)": ({"preset": "AE_3D_200"}, 4),
    "AE_bn_LeakyReLU (27D)": ({"preset": "AE_bn_LeakyReLU"}, 27),
}
BATCHES_PER_EPOCH = 64  # epochs long enough that their ends weigh as in real training
WARMUP_BATCHES = 3
MIN_BATCHES = 3
CLOCK = "wall"  # or "cpu": the process's CPU time (set by --clock)


class Budget(StopFlag):
    """Stops a training loop after a warm-up and ``seconds`` of timed batches.

    The loops ask the flag once per batch and once per epoch end, so the number of
    batches done follows from the number of questions.
    """

    def __init__(self, seconds: float, device: torch.device) -> None:
        super().__init__()
        self.seconds = seconds
        self.device = device
        self.calls = 0
        self.t0 = 0.0
        self.t1 = 0.0
        self.c0 = 0.0
        self.c1 = 0.0
        self.start_batches = 0

    def _batches(self) -> int:
        return self.calls - self.calls // (BATCHES_PER_EPOCH + 1)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def __bool__(self) -> bool:
        if self.signal_name is not None:
            return True
        self.calls += 1
        done = self._batches()
        if done == WARMUP_BATCHES and not self.t0:
            self._sync()
            self.t0 = time.perf_counter()
            self.c0 = time.process_time()
            self.start_batches = done
        elif (
            self.t0
            and done - self.start_batches >= MIN_BATCHES
            and time.perf_counter() - self.t0 >= self.seconds
        ):
            self._sync()
            self.t1 = time.perf_counter()
            self.c1 = time.process_time()
            self.signal_name = "budget"
            self.timed = done - self.start_batches
        return self.signal_name is not None

    def rate(self, jets_per_batch: int) -> float:
        """Jets per second of wall time, or of the process's CPU time (``CLOCK = "cpu"``)."""
        seconds = self.c1 - self.c0 if CLOCK == "cpu" else self.t1 - self.t0
        return jets_per_batch * self.timed / seconds


def resolved(model_cfg: dict, n_in: int, **train) -> dict:
    return resolve(
        {
            "model": model_cfg,
            "data": {"variables": "27d" if n_in == 27 else "4d"},
            "normalisation": {"kind": "standard"},
            "train": train,
        }
    )


def trainer(model_cfg: dict, n_in: int, bs: int, seed: int, x: torch.Tensor, xv: torch.Tensor):
    cfg = resolved(model_cfg, n_in, batch_size=bs, epochs=1000, lr=1e-3 * (1 + seed % 4))
    torch.manual_seed(seed)
    model = build_model(cfg["model"], n_in).to(x.device)
    return Trainer(model, x, xv, cfg["train"], seed)


def sequential_rate(model_cfg, n_in, bs, x, xv, seconds, device) -> float:
    budget = Budget(seconds, device)
    trainer(model_cfg, n_in, bs, 0, x, xv).run(budget)
    return budget.rate(bs)


def stacked_rate(model_cfg, n_in, bs, k, x, xv, seconds, device) -> float:
    budget = Budget(seconds, device)
    members = [trainer(model_cfg, n_in, bs, seed, x, xv) for seed in range(k)]
    StackedTrainer(members).run(budget)
    return budget.rate(bs * k)


def vmap_rate(model_cfg, n_in, bs, k, x, seconds, device) -> float:
    """Forward and backward of K models with torch.func.stack_module_state + vmap."""
    import copy

    from torch.func import functional_call, stack_module_state

    cfg = resolved(model_cfg, n_in)["model"]
    models = [build_model(cfg, n_in).to(device) for _ in range(k)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    forward = torch.vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))
    xb = x[: bs * k].view(k, bs, n_in)
    step = _autograd_step(lambda: forward(params, buffers, xb), xb, params.values())
    return _rate_of(step, bs * k, seconds, device)


def bmm_rate(model_cfg, n_in, bs, k, x, seconds, device) -> float:
    """Forward and backward of K models with the stack's own pass (no optimiser)."""
    from hepae_core.training.stacked import _Stack

    members = [trainer(model_cfg, n_in, bs, seed, x, x) for seed in range(k)]
    stack = _Stack(members)
    xb = x[: bs * k].view(k, bs, n_in)
    if stack.feature_major:
        xb = xb.transpose(1, 2).contiguous()
    try:
        return _rate_of(lambda: stack.train_step(xb, step=False), bs * k, seconds, device)
    finally:
        stack.release()


def _rate_of(step, jets, seconds, device) -> float:
    for _ in range(WARMUP_BATCHES):
        step()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while n < MIN_BATCHES or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    spent = time.process_time() - c0 if CLOCK == "cpu" else time.perf_counter() - t0
    return jets * n / spent


def _autograd_step(forward, xb, leaves):
    from torch.nn import functional as F

    def step() -> None:
        out = forward()
        F.mse_loss(out, xb, reduction="none").mean(dim=(1, 2)).sum().backward()
        for leaf in leaves:
            leaf.grad = None

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads",
        nargs="+",
        default=["1,2"],
        help="thread counts, all measured in this one run: '1 2' or '1,2' (default both)",
    )
    parser.add_argument("--batch-sizes", default="256,1024")
    parser.add_argument("--ks", default="1,2,4,8,16,32,64", help="stack sizes")
    parser.add_argument("--seconds", type=float, default=0.5, help="timed seconds per cell")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measure every cell this often, interleaved, and keep the best (shared machines)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="rates per second of wall time, or of the process's CPU time: steadier on a "
        "busy shared machine, meaningful for one thread only",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="K = 1,4,16, batch 256, one round (the threads of --threads)",
    )
    parser.add_argument(
        "--vmap",
        action="store_true",
        help="instead: forward+backward of the stack's own pass against torch.func vmap "
        "(AE_3D_200 only: vmap cannot update batch-norm statistics)",
    )
    args = parser.parse_args()
    if args.quick:
        args.batch_sizes, args.ks = "256", "1,4,16"
        args.seconds, args.rounds = 0.3, 1
    global CLOCK
    CLOCK = args.clock
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    ks = [int(k) for k in args.ks.split(",")]
    thread_counts = [int(t) for arg in args.threads for t in arg.split(",") if t]
    print(
        f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
        + f"; model-jets/s per {args.clock} second, ~{args.seconds:g} s per cell after a "
        "warm-up, best of "
        f"{args.rounds} round(s); load average {os.getloadavg()[0]:.1f}"
    )
    names = ("sequential", "stacked") if not args.vmap else ("vmap fw+bw", "stack fw+bw")
    header = (
        f"{'model':22} {'thr':>3} {'bs':>5} {'K':>3} {names[0]:>11} {names[1]:>11} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    best: dict[tuple, tuple[float, int]] = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for name, (model_cfg, n_in) in MODELS.items():
            if args.vmap and "bn" in name:
                continue  # vmap cannot update batch-norm running statistics in place
            for bs in [int(b) for b in args.batch_sizes.split(",")]:
                gen = torch.Generator().manual_seed(0)
                n = bs * max(BATCHES_PER_EPOCH, max(ks))
                x = torch.randn(n, n_in, generator=gen).to(device)
                xv = torch.randn(2048, n_in, generator=gen).to(device)
                base: list[float] = []
                rates: dict[int, list[float]] = {k: [] for k in ks}
                for _ in range(args.rounds):  # interleaved, so a busy spell hits all alike
                    if args.vmap:
                        for k in ks:
                            rates[k].append(
                                bmm_rate(model_cfg, n_in, bs, k, x, args.seconds, device)
                            )
                            base.append(vmap_rate(model_cfg, n_in, bs, k, x, args.seconds, device))
                        continue
                    base.append(sequential_rate(model_cfg, n_in, bs, x, xv, args.seconds, device))
                    for k in ks:
                        rate = stacked_rate(model_cfg, n_in, bs, k, x, xv, args.seconds, device)
                        rates[k].append(rate)
                for i, k in enumerate(ks):
                    # vmap: its own rate per K; sequential: one rate, whatever K
                    ref = max(base[i :: len(ks)]) if args.vmap else max(base)
                    rate = max(rates[k])
                    print(
                        f"{name:22} {threads:>3} {bs:>5} {k:>3} {ref:>11.0f} {rate:>11.0f} "
                        f"{rate / ref:>6.2f}",
                        flush=True,
                    )
                    key = (name, threads, bs)
                    if rate / ref > best.get(key, (0.0, 0))[0]:
                        best[key] = (rate / ref, k)
    print()
    what = "stack / vmap" if args.vmap else "stack / sequential, per model"
    print(f"best K per row (ratio {what}):")
    for (name, threads, bs), (ratio, k) in best.items():
        print(f"  {name:22} threads {threads} batch {bs:>5}: {ratio:.2f}x at K = {k}")


if __name__ == "__main__":
    main()
