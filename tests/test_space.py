"""Space files: parsing, axes, rules, and the errors a user sees."""

import time

import pytest
from conftest_gs import write

from gridsearch.errors import GridsearchError
from gridsearch.space import expand
from gridsearch.spacefile import load_space


def space(tmp_path, text):
    return load_space(write(tmp_path / "space.yaml", text))


def test_grid_zip_repeat_product_and_order(tmp_path):
    s = space(
        tmp_path,
        """\
        name: s
        base: {seed: 10}
        grid:
          model.latent: [2, 3]
          train.lr: [1e-2, 1e-3]
        zip:
          model.encoder: [[8], [16, 8]]
          train.batch_size: [256, 512]
        repeat: 2
        """,
    )
    assert s.keys == ["model.latent", "train.lr", "model.encoder", "train.batch_size", "seed"]
    pts = expand(s)
    assert len(pts) == s.count() == 2 * 2 * 2 * 2
    # YAML 1.2 floats: 1e-2 is a number, not a string
    assert pts[0].params == {
        "model.latent": 2,
        "train.lr": 0.01,
        "model.encoder": [8],
        "train.batch_size": 256,
        "seed": 10,
    }
    assert pts[1].params["seed"] == 11  # repeat varies fastest
    assert pts[0].raw["model"] == {"latent": 2, "encoder": [8]}
    assert [p.index for p in pts] == list(range(16))


def test_include_exclude_rules(tmp_path):
    s = space(
        tmp_path,
        """\
        name: s
        base: {data: {variables: 27d}, normalisation: {kind: standard}}
        grid:
          model.latent: [8, 12, 14, 20]
          train.batch_size: [1024, 2048, 4096, 8192]
        include:
          - {model.latent: {ge: 14}, train.batch_size: [1024, 2048, 4096]}
          - {model.latent: {lt: 14}, train.batch_size: {in: [4096, 8192]}}
        exclude:
          - {model.latent: 20, train.batch_size: 1024}
        """,
    )
    got = {(p.params["model.latent"], p.params["train.batch_size"]) for p in expand(s)}
    assert got == {
        (8, 4096), (8, 8192), (12, 4096), (12, 8192),
        (14, 1024), (14, 2048), (14, 4096), (20, 2048), (20, 4096),
    }  # fmt: skip


def test_rules_see_preset_values(tmp_path):
    s = space(
        tmp_path,
        """\
        name: s
        grid:
          model.preset: [AE_3D_200, AE_big]
          train.lr: [1e-2, 1e-3]
        exclude:
          - {model.encoder: {eq: [8, 6, 4]}, train.lr: 1e-2}
        """,
    )
    got = [(p.params["model.preset"], p.params["train.lr"]) for p in expand(s)]
    assert got == [("AE_3D_200", 0.01), ("AE_3D_200", 0.001), ("AE_big", 0.001)]


@pytest.mark.parametrize(
    "text, where, words",
    [
        ("name: s\ngrid:\n  train.lr: [1e-3\n", ":4", "flow sequence at line 3"),
        ("name: s\ngrid:\n  train.lr: [1]\n bad: 1\n", ":4", "not valid YAML"),
        ("name: s\ngrid:\n  train.lrr: [1]\n", ":3", "did you mean 'train.lr'"),
        ("name: s\ngrid:\n  trian.lr: [1]\n", ":3", "did you mean 'train.lr'"),
        ("name: s\ngrid: {}\n", ":2", "is empty"),
        ("name: s\ngrid:\n  train.lr: []\n", ":3", "empty list"),
        ("name: s\ngrid:\n  train.lr: 0.1\n", ":3", "must be a list"),
        ("name: s\n", "space.yaml", "no axes"),
        ("name: s\ngrdi:\n  train.lr: [1]\n", ":2", "did you mean 'grid'"),
        ("name: ../x\ngrid:\n  train.lr: [1]\n", ":1", "short name"),
        ("name: s\ngrid:\n  train.lr: [1]\n  train.lr: [2]\n", ":4", "given twice"),
        ("name: s\ngrid:\n  name: [a, b]\n", ":3", "given by gridsearch"),
        (
            "name: s\nzip:\n  train.lr: [1, 2]\n  model.latent: [1]\n",
            ":2",
            "same length",
        ),
        (
            "name: s\ngrid:\n  seed: [1]\nrepeat: 2\n",
            ":3",
            "axis of both",
        ),
        (
            "name: s\ngrid:\n  train.lr: [1]\nexclude:\n  - {model.latent: {lower: 3}}\n",
            ":5",
            "unknown operator",
        ),
        ("- a\n- b\n", "space.yaml", "must be a mapping"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path, text, where, words):
    path = write(tmp_path / "space.yaml", text)
    with pytest.raises(GridsearchError) as exc:
        expand(load_space(path))
    msg = str(exc.value)
    assert str(path) in msg and where in msg and words in msg, msg
    assert "\n" not in msg


def test_huge_grid_is_refused_before_expanding(tmp_path):
    axes = (
        "\n".join(
            f"  train.{k}: [{', '.join(str(i + 1) for i in range(10))}]"
            for k in ("epochs", "batch_size", "patience")
        )
        + "\n  model.latent: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
    )
    axes += (
        "\n  seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n  data.max_jets: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
    )
    axes += "\n  train.threads: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
    s = space(tmp_path, f"name: s\ngrid:\n{axes}\n")
    assert s.count() == 10**7
    t = time.perf_counter()
    with pytest.raises(GridsearchError, match="10,000,000 points"):
        expand(s, max_points=5000, yes=True)
    assert time.perf_counter() - t < 0.5


def test_max_points_needs_yes(tmp_path):
    s = space(tmp_path, "name: s\ngrid:\n  seed: [0, 1, 2, 3, 4, 5]\n")
    with pytest.raises(GridsearchError, match="--yes"):
        expand(s, max_points=5)
    assert len(expand(s, max_points=5, yes=True)) == 6


def test_rules_that_leave_nothing(tmp_path):
    s = space(tmp_path, "name: s\ngrid:\n  seed: [0, 1]\nexclude:\n  - {seed: [0, 1]}\n")
    with pytest.raises(GridsearchError, match="leave no point"):
        expand(s)


def test_recursive_alias_is_an_error_not_a_crash(tmp_path):
    from gridsearch.plan import plan

    path = write(tmp_path / "space.yaml", "name: s\ngrid:\n  seed: &a [1, *a]\n")
    with pytest.raises(GridsearchError, match="expects an integer"):
        plan(path, tmp_path / "c")
