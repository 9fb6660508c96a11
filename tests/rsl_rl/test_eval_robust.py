"""``rsl-rl eval-robust``: the grid evaluation end to end (PPO and SAC checkpoints), the values in force in every env,
the go1 case where the task's own randomisation must not replace them, and the errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import tasks.legged  # noqa: F401 -- registers go1-flat
import tasks.rrls  # noqa: F401
from rsl_rl.cli.eval_robust import evaluate_grid
from rsl_rl.cli.main import main
from rsl_rl.registry import get_task
from tasks import uncertainty
from tasks.uncertainty import UncertaintySet, grid, uncertainty_set
from tasks.wrappers.params import ModifiedParams


def train_hopper(run: Path, algo: str) -> Path:
    """A 1-2 iteration hopper run with 50-step episodes (the evaluation reruns the checkpoint's env config)."""
    args = ["train", "--task", "hopper", "--algo", algo, "--run-dir", str(run), "--num-envs", "4", "--device", "cpu"]
    assert main([*args, "--max-iterations", "1" if algo == "ppo" else "2", "--env.max-episode-steps", "50"]) == 0
    return run


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_hopper(tmp_path_factory.mktemp("ppo") / "run", "ppo")


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(("set_name", "episodes"), [("1d", 2), ("2d", 1)])
def test_eval_robust_writes_the_grid_report(
    ppo_run: Path, set_name: str, episodes: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval-robust", "--checkpoint", str(ppo_run), "--set", set_name, "--points", "2", "--device", "cpu"]
    assert main([*argv, "--episodes", str(episodes)]) == 0
    out = ppo_run / "robust_eval" / set_name  # the default output directory
    names, values = grid(uncertainty_set("hopper", set_name), points=2)
    rows = read_table(out / "table.csv")
    assert len(rows) == len(values) + 1 and list(rows[0])[:2] == ["point", "nominal"]
    assert [r["nominal"] for r in rows] == ["0"] * len(values) + ["1"]
    for row, point in zip(rows, values.tolist(), strict=False):  # the values read back from each point's envs
        assert [float(row[n]) for n in names] == pytest.approx(point, rel=1e-5)
        assert int(row["episodes"]) == episodes and float(row["mean_length"]) >= 1
    assert float(rows[-1]["torsomass" if set_name == "2d" else "worldfriction"]) == pytest.approx(
        3.6651914 if set_name == "2d" else 1.0
    )  # the nominal row: the model's own values
    summary = json.loads((out / "summary.json").read_text())
    means = [float(r["mean_return"]) for r in rows[:-1]]
    assert summary["worst"] == pytest.approx(min(means), rel=1e-5)
    assert summary["average"] == pytest.approx(sum(means) / len(means), rel=1e-5)
    assert summary["worst"] <= summary["average"]
    assert summary["nominal"] == pytest.approx(float(rows[-1]["mean_return"]), rel=1e-5)
    assert summary["max_param_deviation"] < 1e-6 and summary["unfinished_episodes"] == 0
    assert summary["grid_points"] == len(values) and summary["episodes"] == episodes and not summary["inclusive"]
    assert summary["bounds"] == {n: list(b) for n, b in uncertainty_set("hopper", set_name).bounds.items()}
    assert summary["env_steps"] > 0 and summary["wall_seconds"] > 0 and summary["points"] == 2
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "worst" in capsys.readouterr().out


def test_eval_robust_runs_a_sac_checkpoint(tmp_path: Path) -> None:
    run = train_hopper(tmp_path / "sac", "sac")
    argv = ["eval-robust", "--checkpoint", str(run), "--set", "1d", "--points", "2", "--device", "cpu"]
    assert main([*argv, "--inclusive", "--out", str(tmp_path / "out")]) == 0
    rows = read_table(tmp_path / "out" / "table.csv")
    assert [float(r["worldfriction"]) for r in rows] == pytest.approx([0.1, 3.0, 1.0])  # linspace: bounds included


def test_eval_robust_errors(ppo_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval-robust", "--checkpoint", str(ppo_run), "--device", "cpu"]
    assert main([*argv, "--set", "9d"]) == 2
    assert "task 'hopper' has no uncertainty set '9d'; its uncertainty sets: 1d, 2d, 3d" in capsys.readouterr().err
    assert main([*argv, "--task", "pendulum"]) == 2
    assert "'pendulum' has no uncertainty sets" in capsys.readouterr().err
    # A set on a task without a simulator (pure torch): no per-world parameters to vary.
    monkeypatch.setitem(uncertainty._SETS, "pendulum", {"1d": UncertaintySet("1d", {"body_mass:pole": (1.0, 2.0)})})
    assert main([*argv, "--task", "pendulum", "--points", "2"]) == 2
    assert "cannot vary the parameters of set '1d' per env" in capsys.readouterr().err


def test_go1_grid_values_survive_the_tasks_own_randomisation() -> None:
    """go1 randomises foot friction and payload at startup and motor strength at every reset: the grid's values must
    be the ones in force while the episodes run."""
    names, values = grid(uncertainty_set("go1-flat", "3d"), points=2)
    spec = get_task("go1-flat")
    cfg = spec.env_cfg_for("ppo")
    cfg.num_envs = len(values) + 1
    env = ModifiedParams(spec.build(cfg, device="cpu", seed=0), names)
    nominal = env.nominal_params()
    assert nominal == pytest.approx({"friction": 0.8, "added_mass": 0.0, "motor_strength": 1.0})
    assert not torch.allclose(env.get_params()["motor_strength"].float(), torch.ones(cfg.num_envs))  # randomised

    def standing(obs: object) -> torch.Tensor:
        return torch.zeros(env.num_envs, env.num_actions)

    result = evaluate_grid(env, standing, names, values, episodes=1, nominal=nominal, max_steps=60)
    expected = torch.cat([values, torch.tensor([[0.8, 0.0, 1.0]], dtype=torch.float64)])
    assert torch.allclose(result["in_force"], expected, atol=1e-6)
    assert result["max_param_deviation"] < 1e-6  # read again at step 50 and 60
    assert result["mean"].shape == (8,) and result["worst"] <= result["average"]
    # Without the write after the reset, the reset's own draw of motor strength would be in force.
    env.set_params({"motor_strength": expected[:, 2]}, at_reset=True)
    env.reset()
    assert not torch.allclose(env.get_params()["motor_strength"].float(), expected[:, 2].float())


def test_stepping_only_running_worlds_gives_the_same_returns_with_fewer_physics_steps() -> None:
    """Hopper with a fixed policy that falls at most grid points: the cpu backend steps only the worlds whose first
    episode still runs, and every return and length equals the all-worlds evaluation's (the worlds are independent)."""
    names, values = grid(uncertainty_set("hopper", "3d"), points=2)
    spec = get_task("hopper")
    stepped: list[int] = []

    def run(skip: bool) -> dict[str, Any]:
        cfg = spec.env_cfg()
        cfg.num_envs = len(values) + 1
        env = ModifiedParams(spec.build(cfg, device="cpu", seed=3), names)
        backend = env.unwrapped.sim.backend
        step = backend.step

        def counting(ids: object = None) -> torch.Tensor:
            stepped.append(cfg.num_envs if ids is None else len(ids))  # type: ignore[arg-type]
            return step(ids)  # type: ignore[arg-type]

        backend.step = counting
        lean = torch.tensor([0.3, -0.5, 0.2])  # tips the hopper over within a few dozen steps at most points

        def policy(obs: object) -> torch.Tensor:
            return lean.expand(env.num_envs, 3)

        result = evaluate_grid(
            env, policy, names, values, nominal=env.nominal_params(), check_every=400, skip_finished=skip
        )
        assert env.unwrapped.sim.active_worlds is None  # cleared afterwards
        return result

    full = run(False)
    all_steps = sum(stepped)
    stepped.clear()
    lean = run(True)
    assert torch.equal(full["returns"], lean["returns"]) and torch.equal(full["lengths"], lean["lengths"])
    lengths = full["lengths"]
    assert isinstance(lengths, torch.Tensor) and int(lengths.min()) < int(lengths.max())  # some fell before others
    # Each world was stepped for its own episode (+1: the step that ended it is counted before it ends).
    assert sum(stepped) <= int(lengths.sum()) + len(lengths) < all_steps
