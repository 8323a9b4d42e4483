"""Stacked training: each member trains as it would alone, fails alone, resumes exactly."""

from __future__ import annotations

import math

import pytest
import torch

from hepae_core.config import resolve
from hepae_core.data.jets import load_jets
from hepae_core.data.normalise import Normaliser
from hepae_core.training.models import build_model
from hepae_core.training.stacked import StackedTrainer, group_stackable, layer_signature
from hepae_core.training.train import StopFlag, Trainer

SMALL = {"encoder": [16, 8], "latent": 3}
SMALL_BN = {"encoder": [16, 8], "latent": 3, "batch_norm": True, "activation": "leaky_relu"}

# Members of one stack differ in what a grid search varies: lr, weight decay, optimiser,
# schedule, epochs and seed.
TRAINS = [
    ({"lr": 1e-3}, 0),
    ({"lr": 3e-3, "weight_decay": 1e-4, "optimizer": "adamw", "schedule": "one_cycle"}, 1),
    ({"lr": 1e-2, "schedule": "plateau", "weight_decay": 1e-3, "epochs": 2}, 2),
]


@pytest.fixture(scope="module")
def jets() -> tuple[torch.Tensor, torch.Tensor]:
    cfg = resolve({"data": {"max_jets": 4000}})
    data = load_jets(cfg)
    norm = Normaliser.fit("custom_4d", data.variables, data.values)
    x = torch.from_numpy(norm.forward(data.values))
    return x[:3000].contiguous(), x[3000:].contiguous()


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def member(jets, train: dict, seed: int, model: dict = SMALL, ckpt=None) -> Trainer:
    """A trainer built exactly as a single job builds it (seed before the model)."""
    cfg = resolve({"model": model, "train": {"epochs": 3, "batch_size": 256, **train}})
    torch.manual_seed(seed)
    net = build_model(cfg["model"], 4)
    return Trainer(net, jets[0], jets[1], cfg["train"], seed, ckpt)


def losses(tr: Trainer) -> list[tuple[float, float, float]]:
    return [(h["train_loss"], h["val_loss"], h["lr"]) for h in tr.result.history]


def val_losses(tr: Trainer) -> list[float]:
    return [h["val_loss"] for h in tr.result.history]


def test_stack_gives_each_member_its_single_run(jets):
    alone = []
    for train, seed in TRAINS:
        tr = member(jets, train, seed)
        tr.run()
        alone.append(tr)
    stacked = [member(jets, train, seed) for train, seed in TRAINS]
    outcomes = StackedTrainer(stacked).run()
    assert [o.state for o in outcomes] == ["done"] * 3
    for a, s in zip(alone, stacked, strict=True):
        # Same epochs (the plateau member left the stack after its 2), same lr records
        # (own schedule), same best epoch; losses equal to float32 rounding. On this CPU
        # they come out bit-identical for these shapes; other BLAS builds may round the
        # batched product differently, hence the tolerance.
        assert len(s.result.history) == len(a.result.history) == a.cfg["epochs"]
        assert [h["lr"] for h in s.result.history] == [h["lr"] for h in a.result.history]
        assert s.result.best_epoch == a.result.best_epoch
        assert val_losses(s) == pytest.approx(val_losses(a), rel=1e-5)
        for p, q in zip(s.model.parameters(), a.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_batch_norm_members_match_within_tolerance(jets):
    """Batch norm stacks too, but drifts: the bias before a batch norm has a gradient of
    pure rounding noise (the norm removes it), which Adam scales up to full-size steps, so
    the runs differ by a few per mille after three epochs."""
    trains = TRAINS[:2]
    alone = []
    for train, seed in trains:
        tr = member(jets, train, seed, SMALL_BN)
        tr.run()
        alone.append(tr)
    stacked = [member(jets, train, seed, SMALL_BN) for train, seed in trains]
    StackedTrainer(stacked).run()
    for a, s in zip(alone, stacked, strict=True):
        assert val_losses(s) == pytest.approx(val_losses(a), rel=5e-2)
        rm_a = a.model.encoder[1].running_mean
        rm_s = s.model.encoder[1].running_mean
        torch.testing.assert_close(rm_s, rm_a, rtol=5e-2, atol=5e-2)


def test_first_step_moves_each_member_by_its_own_lr(jets):
    """Hand-worked: Adam's first step is lr * g / (|g| + eps) ~ lr in size for every
    parameter whose gradient is far above eps, whatever the gradient."""
    lrs = [1e-3, 7e-3]
    trs = [member(jets, {"lr": lr, "epochs": 1}, 0) for lr in lrs]
    before = [[p.detach().clone() for p in tr.model.parameters()] for tr in trs]

    class AfterOneBatch(StopFlag):
        def __bool__(self) -> bool:
            return True  # checked after the first batch: stop there

    StackedTrainer(trs).run(AfterOneBatch())
    for lr, tr, b in zip(lrs, trs, before, strict=True):
        steps = torch.cat(
            [(p.detach() - q).abs().flatten() for p, q in zip(tr.model.parameters(), b)]
        )
        moved = steps[steps > 0]
        assert moved.numel() > 0.99 * steps.numel()
        assert torch.median(moved).item() == pytest.approx(lr, rel=1e-3)
        assert moved.max().item() <= lr * (1 + 1e-5)


def test_diverging_member_fails_alone_and_the_others_are_unchanged(jets):
    good = [({"lr": 1e-3}, 0), ({"lr": 3e-3}, 1)]
    reference = [member(jets, t, s) for t, s in good]
    StackedTrainer(reference).run()

    trs = [member(jets, good[0][0], 0), member(jets, {"lr": 1e30}, 5), member(jets, good[1][0], 1)]
    outcomes = StackedTrainer(trs).run()
    assert [o.state for o in outcomes] == ["done", "failed", "done"]
    assert isinstance(outcomes[1].error, FloatingPointError)
    assert "nan" in str(outcomes[1].error)
    assert trs[1].result.epochs_run == 1  # dropped from the stack after its first epoch
    # A NaN member does not touch the others' arithmetic: bit-identical to the stack
    # without it.
    assert val_losses(trs[0]) == val_losses(reference[0])
    assert val_losses(trs[2]) == val_losses(reference[1])


def test_early_stopped_member_is_frozen(jets):
    # patience 1 with min_delta 1 (no epoch improves by a whole unit): stops after 2 epochs.
    trs = [member(jets, {"patience": 1, "min_delta": 1.0, "epochs": 5}, 0), member(jets, {}, 1)]
    StackedTrainer(trs).run()
    assert trs[0].result.early_stopped and trs[0].result.epochs_run == 2
    assert len(trs[1].result.history) == 3
    alone = member(jets, {}, 1)
    alone.run()
    assert val_losses(trs[1]) == pytest.approx(val_losses(alone), rel=1e-5)


class StopAfter(StopFlag):
    """A stop flag raised after ``n`` batches, as a walltime signal would arrive."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __bool__(self) -> bool:
        self.n -= 1
        if self.n < 0:
            self.signal_name = "SIGUSR1"
        return self.signal_name is not None


@pytest.mark.parametrize("model", [SMALL, SMALL_BN], ids=["plain", "batch_norm"])
def test_resumed_stack_equals_uninterrupted(jets, tmp_path, model):
    trains = [({"lr": 1e-3, "epochs": 3}, 0), ({"lr": 2e-3, "schedule": "one_cycle"}, 1)]
    whole = [member(jets, t, s, model) for t, s in trains]
    StackedTrainer(whole).run()

    ckpts = [tmp_path / f"m{i}.pt" for i in range(len(trains))]
    first = [member(jets, t, s, model, c) for (t, s), c in zip(trains, ckpts, strict=True)]
    outcomes = StackedTrainer(first).run(StopAfter(17))  # inside epoch 2 (12 batches/epoch)
    assert [o.state for o in outcomes] == ["interrupted"] * 2
    assert all(tr.epoch == 1 and tr.batch == 5 for tr in first)

    resumed = [member(jets, t, s, model, c) for (t, s), c in zip(trains, ckpts, strict=True)]
    assert all(tr.resume() for tr in resumed)
    StackedTrainer(resumed).run()
    for w, r in zip(whole, resumed, strict=True):
        assert losses(r) == losses(w)  # bit for bit, train and validation, every epoch
        for p, q in zip(r.model.parameters(), w.model.parameters(), strict=True):
            assert torch.equal(p, q)
        for b, c in zip(r.model.buffers(), w.model.buffers(), strict=True):
            assert torch.equal(b, c)


def test_member_checkpoint_resumes_alone_in_a_single_trainer(jets, tmp_path):
    """A member interrupted in a stack is rerun alone (and the reverse works too)."""
    ckpt = tmp_path / "m.pt"
    trs = [member(jets, {}, 0, ckpt=ckpt), member(jets, {"lr": 3e-3}, 1)]
    StackedTrainer(trs).run(StopAfter(15))
    state = torch.load(ckpt, weights_only=True)
    # A copy of the member, not a view of the stack's buffers: the size of one model.
    n_params = sum(p.numel() for p in trs[0].model.parameters())
    assert sum(v.numel() for v in state["model"].values()) < n_params + 100
    alone = member(jets, {}, 0, ckpt=ckpt)
    assert alone.resume() and (alone.epoch, alone.batch) == (1, 3)
    result = alone.run()
    assert result.epochs_run == 3 and math.isfinite(result.best_val_loss)
    whole = member(jets, {}, 0)
    whole.run()
    assert val_losses(alone) == pytest.approx(val_losses(whole), rel=1e-5)


def test_grouping(jets):
    trs = [
        member(jets, {}, 0),
        member(jets, {"lr": 1e-2}, 1),
        member(jets, {"compile": True}, 2),
        member(jets, {}, 3, {"encoder": [32, 8], "latent": 3}),
        member(jets, {"batch_size": 512}, 4),
        member(jets, {"lr": 1e-4}, 5, {**SMALL, "dropout": 0.2}),
    ]
    groups, alone = group_stackable(trs)
    assert groups[0] == [0, 1, 5]  # dropout differs only in rate: it stacks
    assert sorted(map(tuple, groups[1:])) == [(2,), (3,), (4,)]
    assert list(alone) == [2] and "compile" in alone[2]
    assert layer_signature(trs[0].model) != layer_signature(trs[3].model)
    # Split into stacks of nearly equal size under a cap.
    five = [member(jets, {"lr": 1e-3 * (i + 1)}, i) for i in range(5)]
    assert group_stackable(five, max_members=2)[0] == [[0, 1], [2, 3], [4]]
    assert group_stackable(five, max_members=1)[0] == [[0], [1], [2], [3], [4]]
    assert group_stackable(five)[0] == [[0, 1, 2, 3, 4]]


def test_stack_limit_follows_the_cache_budget(jets):
    """Hand-worked: AE_3D_200 widths 200+100+50+3+50+100+200+4 = 707, plus 4 inputs;
    batch 256 x 711 x 12 bytes = 2,184,192 bytes per member; 24 MiB / that = 11.5 -> 11;
    at batch 1024, 8,736,768 bytes: 2.9 -> 2."""
    from hepae_core.training.stacked import stack_limit

    ae = member(jets, {"batch_size": 256}, 0, {"preset": "AE_3D_200"})
    assert stack_limit(ae) == 11
    big_batch = member(jets, {"batch_size": 1024}, 0, {"preset": "AE_3D_200"})
    assert stack_limit(big_batch) == 2
    assert stack_limit(member(jets, {}, 0)) == 64  # tiny models: the cap


def test_dropout_member_trains_and_others_stay_exact(jets):
    plain_alone = member(jets, {}, 0)
    plain_alone.run()
    trs = [member(jets, {}, 0), member(jets, {"lr": 2e-3}, 1, {**SMALL, "dropout": 0.3})]
    outcomes = StackedTrainer(trs).run()
    assert [o.state for o in outcomes] == ["done", "done"]
    assert val_losses(trs[0]) == pytest.approx(val_losses(plain_alone), rel=1e-5)
    dropout_alone = member(jets, {"lr": 2e-3}, 1, {**SMALL, "dropout": 0.3})
    dropout_alone.run()
    # Different masks (the stack's generator), same statistics: close, not equal.
    assert val_losses(trs[1])[-1] == pytest.approx(val_losses(dropout_alone)[-1], rel=0.3)


def test_stacked_forward_is_each_members_own_forward(jets):
    """Batch norm statistics per member: each member sees only its own batch."""
    from hepae_core.training.stacked import _Stack

    trs = [member(jets, {}, seed, SMALL_BN) for seed in (0, 1, 2)]
    x = torch.stack([jets[0][:256], jets[0][256:512] * 3 + 1, jets[0][512:768] - 2])
    copies = []
    for tr in trs:
        twin = build_model(resolve({"model": SMALL_BN})["model"], 4)
        twin.load_state_dict(tr.model.state_dict())
        copies.append(twin.train())
    stack = _Stack(trs)
    # The stack's batch norm sums its statistics in float32 (torch's kernel in float64):
    # a few float32 ulps of the outputs (measured 4e-6 at most on values up to ~10).
    tol = {"rtol": 1e-5, "atol": 1e-5}
    try:
        out = stack.forward(x, train=True)
        for k, twin in enumerate(copies):
            torch.testing.assert_close(out[k], twin(x[k]), **tol)
            # running statistics updated from the member's own batch only
            torch.testing.assert_close(
                trs[k].model.encoder[1].running_mean, twin.encoder[1].running_mean
            )
        with torch.no_grad():
            out = stack.forward(x, train=False)
        for k, twin in enumerate(copies):
            torch.testing.assert_close(out[k], twin.eval()(x[k]), **tol)
    finally:
        stack.release()


def test_member_already_at_its_last_epoch_is_done_without_training(jets):
    finished = member(jets, {"epochs": 1}, 0)
    finished.run()
    before = [p.detach().clone() for p in finished.model.parameters()]
    finished.result.epochs_run = 0  # as after loading a checkpoint of its last epoch
    other = member(jets, {"epochs": 1}, 1)
    outcomes = StackedTrainer([finished, other]).run()
    assert [o.state for o in outcomes] == ["done", "done"]
    assert finished.result.epochs_run == 1 and other.result.epochs_run == 1
    for p, q in zip(finished.model.parameters(), before, strict=True):
        assert torch.equal(p, q)


def test_saved_best_model_holds_only_its_member(jets, tmp_path):
    """torch.save of a view writes its whole buffer: the stack lends copies for saving."""
    trs = [member(jets, {"epochs": 1}, 0, SMALL_BN), member(jets, {"epochs": 1}, 1, SMALL_BN)]
    path = tmp_path / "best.pt"
    trs[0].on_best = lambda epoch, loss: torch.save(trs[0].model.state_dict(), path)
    StackedTrainer(trs).run()
    saved = torch.load(path, weights_only=True)
    for name, t in saved.items():
        assert t.untyped_storage().nbytes() == t.numel() * t.element_size(), name
        torch.testing.assert_close(t, trs[0].model.state_dict()[name])


def test_members_the_stack_would_train_wrongly_run_alone(jets):
    """A masked (grouped) loss and latent noise live in the single loop only."""
    plain = member(jets, {}, 0)
    noisy = member(jets, {"latent_noise_bits": 8}, 1)
    masked = member(jets, {}, 2)
    masked.m_train = torch.ones_like(jets[0])
    groups, alone = group_stackable([plain, noisy, masked, member(jets, {}, 3)])
    assert groups[0] == [0, 3]
    assert "latent_noise_bits" in alone[1] and "masked loss" in alone[2]


@pytest.mark.parametrize(
    "model",
    [
        SMALL,
        SMALL_BN,
        {**SMALL, "activation": "relu"},
        {**SMALL, "activation": "elu"},
        {**SMALL, "activation": "silu"},
        {**SMALL_BN, "activation": "tanh", "latent_activation": True},
    ],
    ids=["tanh", "bn_leaky", "relu", "elu", "silu", "bn_tanh_latent"],
)
def test_hand_written_backward_gives_autograd_s_gradients(jets, model):
    """The stack's own backward pass: each member's gradients are autograd's."""
    from hepae_core.training.stacked import _Stack

    trs = [member(jets, {}, seed, model) for seed in (0, 1)]
    twins = []
    for tr in trs:
        twin = build_model(resolve({"model": model})["model"], 4)
        twin.load_state_dict(tr.model.state_dict())
        twins.append(twin.train())
    x = torch.stack([jets[0][:256], jets[0][256:512]])
    stack = _Stack(trs)
    try:
        xb = x.transpose(1, 2).contiguous() if stack.feature_major else x
        stack.train_step(xb)
        for row, twin in enumerate(twins):
            torch.nn.functional.mse_loss(twin(x[row]), x[row]).backward()
            for j, p in enumerate(twin.parameters()):
                got = stack.g[row, stack.offsets[j] : stack.offsets[j] + p.numel()]
                torch.testing.assert_close(got.view(p.shape), p.grad, rtol=1e-4, atol=1e-6)
    finally:
        stack.release()
