"""Learning regression: real training runs must reach a return threshold within a fixed budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsl_rl.cli.main import main


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_solves_pendulum(tmp_path: Path, seed: int) -> None:
    """Default pendulum config: deterministic evaluation ≥ −200 (gymnasium scale) within 150 iterations."""
    argv = ["train", "--task", "pendulum", "--run-dir", str(tmp_path), "--logger", "none", "--seed", str(seed)]
    assert main([*argv, "--max-iterations", "150"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_mean_return_source"] == "deterministic evaluation"
    assert summary["final_mean_return"] >= -200.0, summary
    assert summary["solved_at"] is not None and summary["iterations"] <= 150


@pytest.mark.slow
def test_ppo_balances_cartpole(tmp_path: Path) -> None:
    argv = ["train", "--task", "cartpole-balance", "--run-dir", str(tmp_path), "--logger", "none"]
    assert main([*argv, "--max-iterations", "40"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_mean_return"] >= 450.0, summary  # 500 = balanced for the whole episode
