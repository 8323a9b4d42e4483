"""A stacked member's speed is its own rate as if alone, plus the stack's size and rate."""

from __future__ import annotations

import pytest
import torch

from hepae_core.config import resolve
from hepae_core.training.models import build_model
from hepae_core.training.stacked import StackedTrainer
from hepae_core.training.train import Trainer

SMALL = {"encoder": [16, 8], "latent": 3}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def member(seed: int, epochs: int = 2) -> Trainer:
    gen = torch.Generator().manual_seed(0)
    x, xv = torch.randn(2000, 4, generator=gen), torch.randn(500, 4, generator=gen)
    cfg = resolve({"model": SMALL, "train": {"epochs": epochs, "batch_size": 256}})
    torch.manual_seed(seed)
    return Trainer(build_model(cfg["model"], 4), x, xv, cfg["train"], seed)


def test_member_rate_is_its_share_of_the_stack_time_and_the_stack_rate_is_recorded():
    trs = [member(seed) for seed in range(4)]
    trs[3].cfg["epochs"] = 1  # leaves after one epoch: the stack shrinks to 3
    StackedTrainer(trs).run()
    for tr in trs[:3]:
        h1, h2 = tr.result.history
        # epoch 1 in a stack of 4, epoch 2 in a stack of 3; 2000 jets an epoch
        assert (h1["stack_size"], h2["stack_size"]) == (4, 3)
        assert h1["jets_per_s"] == pytest.approx(2000 * 4 / h1["seconds"])
        assert h2["jets_per_s"] == pytest.approx(2000 * 3 / h2["seconds"])
        assert h1["stack_jets_per_s"] == pytest.approx(2000 * 4 / h1["seconds"])
        assert tr.result.stack_size == 4
        assert tr.result.jets_per_s == pytest.approx((h1["jets_per_s"] + h2["jets_per_s"]) / 2)
        assert tr.result.stack_jets_per_s == pytest.approx(
            (h1["stack_jets_per_s"] + h2["stack_jets_per_s"]) / 2
        )
        assert tr.stack_size == 1  # handed back: alone from now on
    # the members of one epoch share its seconds and report the same rates
    assert len({tr.result.history[0]["jets_per_s"] for tr in trs}) == 1


def test_lone_run_is_a_stack_of_one():
    tr = member(0)
    res = tr.run()
    for h in res.history:
        assert "stack_size" not in h
        assert h["jets_per_s"] == pytest.approx(2000 / h["seconds"])
    assert res.stack_size == 1
    assert res.stack_jets_per_s == res.jets_per_s


def test_watch_shows_a_running_member_s_rate_and_stack(tmp_path):
    import json
    from pathlib import Path

    from gridsearch import watch as W
    from gridsearch.status import JobStatus, _take_state
    from hepae_core.states import JobState

    def js(name: str, d: Path) -> JobStatus:
        """The job as status reads it: its state.json's fields (when it has one)."""
        out = JobStatus(index=0, id=name, name=name, dir=d, state=JobState.RUNNING)
        state = d / "state.json"
        _take_state(out, json.loads(state.read_text()) if state.exists() else {}, str(d))
        out.epoch, out.epochs = 2, 4
        return out

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "state.json").write_text(json.dumps({"jets_per_s": 48000.4, "stack_size": 8}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "state.json").write_text(json.dumps({"jets_per_s": 30000.0}))
    lines = W.render([js("a", tmp_path / "a"), js("b", tmp_path / "b"), js("c", tmp_path)], {})
    assert "a: epoch 2/4, 48,000 jets/s in a stack of 8" in lines[1]
    assert lines[2].endswith("b: epoch 2/4, 30,000 jets/s")
    assert "jets/s" not in lines[3]  # nothing known: nothing shown


def test_summary_speed_line_gives_the_stacks_rate():
    import pandas as pd

    from results.summary import speed_lines

    used = pd.DataFrame(
        {
            "train_jets_per_s": [40000.0, 52000.0, 52000.0],
            "stack_size": [1, 8, 8],
            "stack_jets_per_s": [40000.0, 52000.0, 52000.0],
        }
    )
    (line,) = speed_lines(used)
    assert line == (
        "speed: median 52,000 training jets/s per model; 2 run(s) trained in stacks of up to 8, "
        "stacks at median 52,000 jets/s"
    )
    assert speed_lines(used.drop(columns=["train_jets_per_s"])) == []
