"""Sim-to-sim: the exported file, run by the torch-free runtime, reproduces the trained policy's return."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.sim2sim import run_sim2sim
from rsl_rl.cli.main import main
from rsl_rl.registry import get_task
from rsl_rl.runners import OnPolicyRunner, train_config_from_dict
from rsl_rl.runners.checkpoint import latest_checkpoint, load_checkpoint


@pytest.mark.slow
def test_sim2sim_reproduces_training_return(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--task", "pendulum", "--run-dir", str(run), "--logger", "none", "--seed", "3"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_mean_return"] >= -200.0

    # The torch policy on 16 episodes of a seeded env ...
    spec = get_task("pendulum")
    cfg = spec.env_cfg()
    cfg.num_envs = 16
    env = spec.build(cfg, seed=7)
    state = load_checkpoint(latest_checkpoint(run))
    runner = OnPolicyRunner(env, train_config_from_dict(state["config"]), None, "cpu", show_progress=False)
    runner.load(latest_checkpoint(run), load_cfg={"actor": True})
    torch_return = float(runner.evaluate(env).mean())

    # ... and the exported ONNX file through the runtime and its safety layer, on the same initial states.
    report = run_sim2sim(str(run / "exported" / "policy.onnx"), episodes=16, seed=7)
    assert report.task == "pendulum" and report.faults == {} and report.safe_steps == 0
    assert report.mean_return == pytest.approx(torch_return, abs=0.5)

    assert main(["deploy-sim", "--policy", str(run / "exported" / "policy.onnx"), "--episodes", "4"]) == 0
    assert "mean return" in capsys.readouterr().out
