"""Smoke runs of every CLI command, the run directory they write, and their errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsl_rl.cli.main import main


def train(run_dir: Path, *extra: str) -> None:
    args = ["train", "--task", "pendulum", "--run-dir", str(run_dir), "--max-iterations", "4", "--num-envs", "16"]
    assert main([*args, *extra]) == 0


def test_train_writes_the_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    train(run, "--agent.stop-at-return", "1000", "--agent.algorithm.learning-rate", "3e-4", "--seed", "7")
    out = capsys.readouterr().out
    assert "run directory" in out
    summary = json.loads((run / "summary.json").read_text())
    for key in ("task", "iterations", "env_steps", "wall_seconds", "env_steps_per_second", "final_mean_return"):
        assert key in summary
    assert summary["task"] == "pendulum" and summary["iterations"] == 4
    assert summary["env_steps"] == 4 * 16 * 32
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "exported" / "policy.onnx").stat().st_size > 0
    assert (run / "exported" / "policy.pt").stat().st_size > 0
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "pendulum" and config["algorithm"]["learning_rate"] == 3e-4
    state = torch.load(run / "model_4.pt", weights_only=True)
    assert state["infos"] == {"task": "pendulum"} and state["config"]["algorithm"]["learning_rate"] == 3e-4
    assert list(run.glob("events.out.tfevents.*"))


def test_play_export_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    train(run, "--agent.stop-at-return", "1000")
    capsys.readouterr()
    assert main(["play", "--checkpoint", str(run), "--num-envs", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("episode ") == 3 and "mean return over 3 episodes" in out
    # --env-set edits the env config: episodes of 1 step instead of 200 (pendulum rewards are in [-16.3, 0]).
    assert main(["play", "--checkpoint", str(run), "--num-envs", "2", "--env-set", "max_episode_steps=1"]) == 0
    mean = float(capsys.readouterr().out.split("mean return over 2 episodes: ")[1].split()[0])
    assert -16.3 <= mean <= 0.0
    with pytest.raises(SystemExit, match="no field 'nope.x'"):
        main(["play", "--checkpoint", str(run), "--env-set", "nope.x=1"])

    shutil.rmtree(run / "exported")
    assert main(["export", "--checkpoint", str(run / "model_4.pt")]) == 0
    assert (run / "exported" / "policy.onnx").exists() and (run / "exported" / "policy.pt").exists()

    assert (
        main(
            [
                "train",
                "--task",
                "pendulum",
                "--run-dir",
                str(run),
                "--num-envs",
                "16",
                "--max-iterations",
                "6",
                "--resume",
                str(run / "model_4.pt"),
                "--agent.stop-at-return",
                "1000",
            ]
        )
        == 0
    )
    assert json.loads((run / "summary.json").read_text())["iterations"] == 6


def test_deterministic_flag_gives_identical_parameters(tmp_path: Path) -> None:
    for name in ("a", "b"):
        train(tmp_path / name, "--deterministic", "--seed", "11", "--logger", "none", "--agent.stop-at-return", "1000")
    a = torch.load(tmp_path / "a" / "model_4.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model_4.pt", weights_only=True)
    for key in ("actor_state_dict", "critic_state_dict"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])


def test_list_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-tasks"]) == 0
    out = capsys.readouterr().out
    assert "pendulum" in out and "cartpole-swingup" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--task", "pendulm"], "unknown task 'pendulm'; valid tasks: ant, cartpole-balance"),
        (["train"], "--task is required; valid tasks:"),
        (["fly"], "unknown command 'fly'; valid commands: train, play, export, deploy-sim, list-tasks"),
        (["train", "--task", "pendulum", "--device", "tpu"], "--device 'tpu'"),
        (["play", "--checkpoint", "/nonexistent/run"], "checkpoint not found"),
    ],
)
def test_errors_name_the_problem_and_the_choices(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
        print(exit_.code, file=sys.stderr)
    assert code == 2
    assert message in capsys.readouterr().err


def test_bad_config_override_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--task", "pendulum", "--run-dir", str(tmp_path), "--agent.algorithm.optimizer", "lamb"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "optimizer='lamb'; allowed:" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "rsl-rl"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "list-tasks" in result.stdout
