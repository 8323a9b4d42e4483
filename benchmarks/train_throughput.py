"""Training throughput: our loop against a plain DataLoader(TensorDataset) loop, side by side.

Prints jets/s of one warm epoch for each model, batch size and thread count, for:
  hepae      hepae_core.training.train.Trainer (one gather per epoch, views, fused Adam)
  compiled   the same with train.compile: true (torch.compile of the model)
  slicing    a plain loop over index slices with torch's default Adam
  dataloader DataLoader(TensorDataset(x), shuffle=True) with torch's default Adam
  stacked    K models as one stack (hepae_core.training.stacked, ``--stack K``, default 8): each
             model's own rate as if alone (the stack's model-jets/s), a warm epoch
  fastai     the seeds' recipe: a fastai Learner (DataLoaders.from_dsets of a
             TensorDataset, MSE loss, fit_one_cycle), its training phase of a warm epoch;
             measured only where fastai is installed (it is not a dependency of this
             project: ``pip install --no-deps fastai fastcore fastprogress fasttransform
             fastdownload plum-dispatch`` beside torch, see docs/bundles.md)
and the ratios hepae/dataloader and compiled/dataloader (target >= 1.5), stacked/dataloader
and stacked/fastai (the stacked recipe per model against the seeds' one: target >= 4 for
the 4D model). Also the thesis-era reference shape 4-200-200-20-3 (tanh) at batch size 256.

    python benchmarks/train_throughput.py [--jets N] [--device cpu|cuda] [--stack K] [--rounds R]

Every cell is measured ``--rounds`` times (default 3), the loops taking turns, and the best
kept: one warm epoch of a shared machine varies by a third from run to run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from hepae_core.config import resolve
from hepae_core.data.jets import load_jets
from hepae_core.data.normalise import Normaliser
from hepae_core.training.models import build_model
from hepae_core.training.stacked import StackedTrainer
from hepae_core.training.train import Trainer

MODELS = {
    "AE_3D_200 (4D)": ({"preset": "AE_3D_200"}, "4d"),
    "AE_bn_LeakyReLU z=18 (27D)": ({"preset": "AE_bn_LeakyReLU", "latent": 18}, "27d"),
    "4-200-200-20-3 tanh (thesis)": ({"encoder": [200, 200, 20], "latent": 3}, "4d"),
}


def data_4d(n: int) -> torch.Tensor:
    cfg = resolve({"data": {"max_jets": n}})
    jets = load_jets(cfg)
    return torch.from_numpy(
        Normaliser.fit("custom_4d", jets.variables, jets.values).forward(jets.values)
    )


def data_27d(n: int) -> torch.Tensor:
    # Throughput does not depend on the values; normal noise of the right shape is enough.
    return torch.randn(n, 27, generator=torch.Generator().manual_seed(0))


#: "wall": jets per second of wall time; "cpu": per second of this process's CPU time (a
#: steadier figure on a busy shared machine, meaningful for one thread; set by --clock)
CLOCK = "wall"


class EpochClock:
    """The process's CPU seconds between epoch ends (a trainer's ``on_epoch`` hook)."""

    def __init__(self) -> None:
        self.marks = [time.process_time()]

    def __call__(self, _record=None) -> None:
        self.marks.append(time.process_time())

    def last(self) -> float:
        return self.marks[-1] - self.marks[-2]


def epoch_rate_hepae(model_cfg, x, bs, device, compile_model=False) -> float:
    cfg = job_config(model_cfg, x, batch_size=bs, epochs=3, compile=compile_model)
    model = fresh_model(model_cfg, x, device)
    clock = EpochClock()
    t = Trainer(model, x.to(device), x[:1000].to(device), cfg["train"], 0, on_epoch=clock)
    res = t.run()
    if CLOCK == "cpu":  # the last epoch's CPU seconds (its validation of 1,000 jets too)
        return x.shape[0] / clock.last()
    return res.history[-1]["jets_per_s"]  # a warm epoch (compiled before the first ends)


def epoch_rate_stacked(model_cfg, x, bs, device, k: int) -> float:
    """Per model, K models trained as one stack: a member's rate of its warm epoch."""
    cfg = job_config(model_cfg, x, batch_size=bs, epochs=2)
    xd, xv = x.to(device), x[:1000].to(device)
    members = []
    clock = EpochClock()
    for seed in range(k):
        torch.manual_seed(seed)
        model = build_model(cfg["model"], x.shape[1]).to(device)
        members.append(
            Trainer(model, xd, xv, cfg["train"], seed, on_epoch=clock if seed == 0 else None)
        )
    StackedTrainer(members).run()
    if CLOCK == "cpu":  # per model: the stack's epoch counts 1/K for each
        return x.shape[0] * k / clock.last()
    return members[0].result.history[-1]["jets_per_s"]


def fastai_version() -> str | None:
    """The installed fastai's version, or None (the benchmark then says so)."""
    try:
        import fastai
        from fastai.basics import Learner  # noqa: F401 (the part the recipe needs)
    except Exception:  # not installed, or a dependency missing
        return None
    return str(fastai.__version__)


def epoch_rate_fastai(model_cfg, x, bs, device, epochs=2) -> float:
    """The seeds' recipe: fastai Learner + fit_one_cycle; jets/s of a warm epoch's training."""
    import fastai.callback.progress  # (adds Learner.no_bar)
    import fastai.callback.schedule  # noqa: F401 (adds Learner.fit_one_cycle)
    from fastai.basics import Callback, DataLoaders, Learner
    from torch import nn

    xv = x[:1000]
    dls = DataLoaders.from_dsets(
        TensorDataset(x, x), TensorDataset(xv, xv), bs=bs, shuffle=True, device=device
    )
    seconds: list[float] = []

    class Clock(Callback):  # the training phase of each epoch (validation left out)
        def before_train(self) -> None:
            self.t0 = time.process_time() if CLOCK == "cpu" else time.perf_counter()

        def after_train(self) -> None:
            now = time.process_time() if CLOCK == "cpu" else time.perf_counter()
            seconds.append(now - self.t0)

    learn = Learner(dls, fresh_model(model_cfg, x, device), loss_func=nn.MSELoss(), cbs=Clock())
    with learn.no_bar(), learn.no_logging():  # no drawing: the recipe's own work only
        learn.fit_one_cycle(epochs, lr_max=1e-3)
    n = len(dls.train) * bs  # fastai drops the last partial training batch
    return n / seconds[-1]


def _plain_epochs(model, batches_fn, opt, device, epochs=2) -> float:
    rate = 0.0
    for _ in range(epochs):
        n = 0
        t0 = time.perf_counter()
        c0 = time.process_time()
        for xb in batches_fn():
            xb = xb.to(device, non_blocking=True)
            loss = F.mse_loss(model(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += xb.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        spent = time.process_time() - c0 if CLOCK == "cpu" else time.perf_counter() - t0
        rate = n / spent
    return rate


def job_config(model_cfg: dict, x: torch.Tensor, **train) -> dict:
    """A resolved config for this model on ``x`` (4 or 27 columns)."""
    return resolve(
        {
            "model": model_cfg,
            "data": {"variables": "27d" if x.shape[1] == 27 else "4d"},
            "normalisation": {"kind": "standard"},
            "train": train,
        }
    )


def fresh_model(model_cfg: dict, x: torch.Tensor, device: torch.device):
    """The model with the same initial weights for every loop compared."""
    torch.manual_seed(0)
    return build_model(job_config(model_cfg, x)["model"], x.shape[1]).to(device)


def epoch_rate_slicing(model_cfg, x, bs, device) -> float:
    model = fresh_model(model_cfg, x, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xd = x.to(device)

    def batches():
        idx = torch.randperm(x.shape[0], device=device)
        for i in range(0, x.shape[0], bs):
            yield xd[idx[i : i + bs]]

    return _plain_epochs(model, batches, opt, device)


def epoch_rate_dataloader(model_cfg, x, bs, device) -> float:
    model = fresh_model(model_cfg, x, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x), batch_size=bs, shuffle=True)
    return _plain_epochs(model, lambda: (b for (b,) in loader), opt, device)


def _not_measured() -> float:
    return float("nan")


def best_of_rounds(measure: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Each rate measured ``rounds`` times, the loops taking turns (a slow spell of a shared
    machine falls on all of them alike), and the best of each kept."""
    best = dict.fromkeys(measure, float("nan"))
    for _ in range(max(1, rounds)):
        for name, rate in measure.items():
            value = rate()
            if not best[name] >= value:  # NaN-safe: the first value, then the larger
                best[name] = value
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=100_000, help="training jets per epoch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--stack", type=int, default=8, help="models per stack (0: none)")
    parser.add_argument(
        "--no-compile", action="store_true", help="leave out the torch.compile column (slow)"
    )
    parser.add_argument("--batch-sizes", default="256,1024,4096")
    parser.add_argument("--no-fastai", action="store_true", help="leave out the fastai column")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure every cell this many times, the loops taking turns, and keep the best",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="jets per second of wall time or of the process's CPU time (steadier on a busy "
        "machine; for one thread)",
    )
    parser.add_argument(
        "--models", default="", help="comma list of substrings of the model names (default all)"
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = args.clock
    device = torch.device(args.device)
    x4 = data_4d(args.jets)
    x27 = data_27d(args.jets // 2)
    fa = None if args.no_fastai else fastai_version()
    print(
        f"torch {torch.__version__}, device {device}, {args.jets} 4D jets, "
        f"{args.jets // 2} 27D jets; jets/s ({args.clock} clock) of a warm epoch, best of "
        f"{args.rounds} round(s); "
        + (
            f"fastai {fa}"
            if fa
            else "fastai not measured"
            + ("" if args.no_fastai else " (not installed: pip install --no-deps fastai ...)")
        )
    )
    header = (
        f"{'model':30} {'thr':>3} {'bs':>5} {'hepae':>9} {'compiled':>9} "
        f"{'slicing':>9} {'dataloader':>10} {'ratio':>6} {'ratio_c':>7} "
        f"{f'stack{args.stack}':>9} {'ratio_s':>7} {'fastai':>8} {'stack/fa':>8}"
    )
    print(header)
    print("-" * len(header))
    ratios, ratios_c, ratios_s, ratios_f = [], [], [], []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, (model_cfg, variables) in MODELS.items():
            if args.models and not any(m in name for m in args.models.split(",")):
                continue
            x = x27 if variables == "27d" else x4
            sizes = [256] if "thesis" in name else [int(b) for b in args.batch_sizes.split(",")]
            for bs in sizes:
                cell = (model_cfg, x, bs, device)
                measure = {
                    "ours": partial(epoch_rate_hepae, *cell),
                    "compiled": (
                        _not_measured
                        if args.no_compile
                        else partial(epoch_rate_hepae, *cell, compile_model=True)
                    ),
                    "plain": partial(epoch_rate_slicing, *cell),
                    "loader": partial(epoch_rate_dataloader, *cell),
                    "stacked": (
                        partial(epoch_rate_stacked, *cell, args.stack)
                        if args.stack
                        else _not_measured
                    ),
                    "fast": partial(epoch_rate_fastai, *cell) if fa else _not_measured,
                }
                best = best_of_rounds(measure, args.rounds)
                ours, compiled, plain = best["ours"], best["compiled"], best["plain"]
                loader, stacked, fast = best["loader"], best["stacked"], best["fast"]
                ratios.append(ours / loader)
                ratios_c.append(compiled / loader)
                ratios_s.append(stacked / loader)
                ratios_f.append(stacked / fast)
                print(
                    f"{name:30} {threads:>3} {bs:>5} {ours:>9.0f} {compiled:>9.0f} "
                    f"{plain:>9.0f} {loader:>10.0f} {ours / loader:>6.2f} "
                    f"{compiled / loader:>7.2f} {stacked:>9.0f} {stacked / loader:>7.2f} "
                    f"{fast:>8.0f} {stacked / fast:>8.2f}",
                    flush=True,
                )
    print(
        f"minimum ratio hepae/dataloader: {min(ratios):.2f}, "
        f"compiled/dataloader: {min(ratios_c):.2f} (target >= 1.5)"
    )
    if args.stack:
        print(
            f"stacked ({args.stack} models) per model / dataloader: "
            + ", ".join(f"{r:.2f}" for r in ratios_s)
        )
        if fa:
            print(
                f"stacked ({args.stack} models) per model / fastai recipe: "
                + ", ".join(f"{r:.2f}" for r in ratios_f)
                + " (target >= 4 for the 4D model)"
            )
        else:
            print("stacked / fastai recipe: not measured, fastai is not installed here")


if __name__ == "__main__":
    main()
