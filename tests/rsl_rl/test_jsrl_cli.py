"""Jump-start RL on the command line (issue 15): ``rsl-rl train --guide ... --jsrl ...`` with PPO and SAC, guides from
the scripted controller, a run directory, an ONNX file and ``rsl-rl bc``; resume, play with and without the combined
policy, the curves, and the errors."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rsl_rl.cli.main import main
from rsl_rl.runners.checkpoint import load_checkpoint
from tasks.classic.pendulum import PendulumCfg, PendulumEnv, swing_up_controller

ENVS = ["--num-envs", "16", "--device", "cpu"]
FAST_CURRICULUM = ["--jsrl.stages", "3", "--jsrl.window", "1", "--jsrl.tolerance", "10"]
"""A wide gate: the stage advances at every evaluation of the combined policy."""


def train(run: Path, *extra: str) -> None:
    assert main(["train", "--task", "pendulum", "--run-dir", str(run), *ENVS, *extra]) == 0


def scalars(run: Path, tag: str) -> list[float]:
    acc = EventAccumulator(str(run))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]  # IHDR's width


def scripted_returns(num_envs: int, seed: int) -> torch.Tensor:
    """Returns of the scripted swing-up on the env ``rsl-rl play --num-envs N --seed S`` builds."""
    env = PendulumEnv(PendulumCfg(num_envs=num_envs), device="cpu", seed=seed)
    controller, obs, total = swing_up_controller(env), env.reset(), torch.zeros(num_envs)
    for _ in range(env.max_episode_length):
        obs, reward, *_ = env.step(controller(obs))
        total += reward
    return total


def played_returns(out: str) -> list[float]:
    return [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("episode ")]


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny plain PPO run (a checkpoint and its ONNX export) to serve as a guide."""
    run = tmp_path_factory.mktemp("prior") / "run"
    train(run, "--max-iterations", "2", "--logger", "none")
    return run


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``rsl-rl bc`` on 16 episodes of the scripted controller."""
    root = tmp_path_factory.mktemp("bc")
    demos = root / "demos.npz"
    record = ["record-demos", "--task", "pendulum", "--source", "scripted", "--episodes", "16", "--out", str(demos)]
    assert main([*record, *ENVS]) == 0
    assert main(["bc", "--task", "pendulum", "--data", str(demos), "--out", str(root / "bc"), "--device", "cpu"]) == 0
    return root / "bc"


def _no_constants(name: str) -> None:
    raise ValueError(f"summary.json holds {name}, which is not JSON")


@pytest.mark.parametrize(
    ("algo", "mode"), [("ppo", "curriculum"), ("ppo", "random"), ("sac", "curriculum"), ("sac", "random")]
)
def test_train_with_the_scripted_guide_records_and_logs_jsrl(tmp_path: Path, algo: str, mode: str) -> None:
    run = tmp_path / "run"
    schedule = ["--max-iterations", "4", "--agent.eval-interval", "1"]
    if algo == "sac":  # one env step per iteration
        schedule = ["--max-iterations", "30", "--agent.eval-interval", "10", "--agent.algorithm.batch-size", "64"]
    jsrl = ["--jsrl", mode] if mode == "curriculum" else [f"--jsrl={mode}"]  # both spellings
    train(run, "--algo", algo, "--guide", "scripted", *jsrl, *FAST_CURRICULUM, *schedule)
    summary = json.loads((run / "summary.json").read_text(), parse_constant=_no_constants)  # strict JSON
    assert summary["algorithm"] == algo.upper() and summary["jsrl"]["mode"] == mode
    assert ("stage" in summary["jsrl"]) == (mode == "curriculum")
    assert summary["jsrl"]["guide"] == {"kind": "scripted", "source": "scripted"}
    assert summary["jsrl"]["horizon"] == 200 and summary["jsrl"]["stages"] == 3
    state = load_checkpoint(run / f"model_{summary['iterations'] - 1}.pt")
    assert state["infos"]["task"] == "pendulum"
    assert state["infos"]["jsrl"]["guide"]["kind"] == "scripted" and state["infos"]["jsrl"]["config"]["mode"] == mode
    assert state["jsrl"]["config"]["mode"] == mode
    assert json.loads((run / "config.json").read_text())["jsrl"]["guide"]["source"] == "scripted"
    shares = scalars(run, "jsrl/guide_share")
    assert len(shares) == summary["iterations"] and max(shares) > 0.0
    assert summary["jsrl"]["final_guide_share"] == pytest.approx(shares[-1])
    if mode == "curriculum":
        assert summary["jsrl"]["stage"] == 2  # advanced at every evaluation, up to the last stage (h = 0)
        assert scalars(run, "jsrl/h")[0] == 200.0 and scalars(run, "jsrl/combined_return")
    assert png_width(run / "curves.png") > 1500  # the fourth panel: h and the guide's share
    # The exported policy is the learner alone (one input 'obs': the actor's groups).
    assert (run / "exported" / "policy.onnx").stat().st_size > 0


@pytest.mark.parametrize(("flags", "horizon"), [((), 100), (("--jsrl.horizon", "7"), 7)])
def test_the_tasks_own_horizon_applies_unless_one_is_given(
    tmp_path: Path, flags: tuple[str, ...], horizon: int
) -> None:
    """point-maze declares H = 100 (its guide's typical episode length, not the 500-step episode); ``--jsrl.horizon``
    replaces it, and the checkpoint records the H used, so a resume keeps it. (Pendulum, without one: 200 above.)"""
    run = tmp_path / "run"
    cmd = ["train", "--task", "point-maze", "--run-dir", str(run), *ENVS, "--max-iterations", "1", "--logger", "none"]
    cmd += ["--agent.num-steps-per-env", "8", "--agent.eval-episodes", "16", "--guide", "scripted", "--jsrl", "random"]
    assert main([*cmd, *flags]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["jsrl"]["horizon"] == horizon
    state = load_checkpoint(run / f"model_{summary['iterations'] - 1}.pt")
    assert state["jsrl"]["config"]["horizon"] == horizon == state["jsrl"]["horizon"]


def test_guides_from_a_run_directory_and_an_onnx_file(tmp_path: Path, prior_run: Path) -> None:
    base = ["--max-iterations", "2", "--logger", "none", "--jsrl", "random"]
    train(tmp_path / "ckpt", "--guide", str(prior_run), *base)
    recorded = load_checkpoint(tmp_path / "ckpt")["infos"]["jsrl"]["guide"]
    # A run directory is recorded as the checkpoint it resolved to: a later checkpoint there does not replace it.
    assert recorded == {"kind": "checkpoint", "source": str((prior_run / "model_1.pt").resolve())}
    onnx = prior_run / "exported" / "policy.onnx"
    train(tmp_path / "onnx", "--guide", str(onnx), *base)
    recorded = load_checkpoint(tmp_path / "onnx")["infos"]["jsrl"]["guide"]
    assert recorded == {"kind": "onnx", "source": str(onnx.resolve())}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--guide", "/nonexistent/guide.pt", "--jsrl", "curriculum"], "--guide /nonexistent/guide.pt: no such file"),
        (["--jsrl", "random"], "--jsrl needs --guide"),
        (["--jsrl.stages", "3"], "--jsrl needs --guide"),
        (["--guide", "scripted"], "--guide needs --jsrl curriculum|random"),
        (["--guide", "scripted", "--jsrl", "curriculum", "--agent.eval-interval", "0"], "--agent.eval-interval N >= 1"),
        (["--task", "cartpole-balance", "--guide", "scripted", "--jsrl", "random"], "tasks with one: arm-peg"),
    ],
)
def test_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    task = [] if "--task" in extra else ["--task", "pendulum"]
    argv = ["train", *task, "--run-dir", str(tmp_path / "run"), *ENVS, "--max-iterations", "1", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_unknown_mode_is_refused_with_the_allowed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--task", "pendulum", "--guide", "scripted", "--jsrl", "sometimes", *ENVS])
    assert "jsrl.mode='sometimes'; allowed: ['curriculum', 'random']" in capsys.readouterr().err


def test_bc_reproduces_the_scripted_controller_and_guides_plays_and_exports(
    tmp_path: Path, bc_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = json.loads((bc_run / "summary.json").read_text())
    assert summary["heldout_episodes"] == 3 and summary["heldout_steps"] == 600
    # The controller switches from energy pumping to a PD balance: its kink bounds the fit, not the data.
    assert summary["heldout_mse"] < 0.1 and summary["heldout_unexplained_variance"] < 0.3
    state = load_checkpoint(bc_run / "model_0.pt")
    assert state["infos"]["bc"]["heldout_mse"] == summary["heldout_mse"]
    assert state["config"]["actor"]["obs_normalization"] is True
    capsys.readouterr()
    assert main(["play", "--checkpoint", str(bc_run), "--num-envs", "8", "--device", "cpu"]) == 0
    cloned = torch.tensor(played_returns(capsys.readouterr().out))
    scripted = scripted_returns(8, seed=0)
    assert (cloned - scripted).abs().max() < 0.05 * scripted.abs().mean()  # the same swing-ups
    assert main(["export", "--checkpoint", str(bc_run), "--out-dir", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "policy.onnx").stat().st_size > 0
    run = tmp_path / "guided"
    train(run, "--guide", str(bc_run), "--jsrl", "curriculum", "--max-iterations", "2", "--logger", "none")
    assert json.loads((run / "summary.json").read_text())["jsrl"]["guide"]["kind"] == "checkpoint"


def test_bc_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bc", "--task", "pendulum", "--data", str(tmp_path / "none.npz"), "--device", "cpu"]) == 2
    assert "demo file not found" in capsys.readouterr().err
    assert main(["bc", "--data", str(tmp_path / "x.npz"), "--holdout", "1.5", "--device", "cpu"]) == 2
    assert "--holdout must lie in (0, 1)" in capsys.readouterr().err


def test_resume_continues_the_curriculum_with_the_recorded_guide(
    tmp_path: Path, prior_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guide = tmp_path / "guide.onnx"
    shutil.copy(prior_run / "exported" / "policy.onnx", guide)
    run = tmp_path / "run"
    gate = ["--jsrl.window", "1", "--jsrl.tolerance", "10", "--agent.eval-interval", "1", "--logger", "none"]
    train(run, "--guide", str(guide), "--jsrl", "curriculum", *gate, "--max-iterations", "2")
    assert load_checkpoint(run / "model_1.pt")["jsrl"]["curriculum"]["stage"] == 2
    # No --guide or --jsrl: both come from the checkpoint (--agent.* flags are the task's unless given again).
    resume = ["--resume", str(run / "model_1.pt"), "--agent.eval-interval", "1", "--logger", "none"]
    train(run, *resume, "--max-iterations", "4")
    state = load_checkpoint(run / "model_3.pt")
    assert state["jsrl"]["curriculum"]["stage"] == 4 and state["jsrl"]["config"]["window"] == 1
    assert state["infos"]["jsrl"]["guide"]["source"] == str(guide.resolve())
    guide.unlink()
    capsys.readouterr()
    assert main(["train", "--task", "pendulum", "--run-dir", str(run), *ENVS, *resume, "--max-iterations", "5"]) == 2
    assert f"the guide the resumed checkpoint records, {guide.resolve()}, no longer exists" in capsys.readouterr().err
    # --guide given again replaces the recorded one.
    train(run, *resume, "--max-iterations", "5", "--guide", str(prior_run / "exported" / "policy.onnx"))
    assert load_checkpoint(run / "model_4.pt")["jsrl"]["curriculum"]["stage"] == 5


def test_play_runs_the_learner_alone_or_the_combined_policy(
    tmp_path: Path, prior_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    train(run, "--guide", "scripted", "--jsrl", "curriculum", "--max-iterations", "1", "--logger", "none")
    play = ["play", "--checkpoint", str(run), "--num-envs", "4", "--device", "cpu"]
    capsys.readouterr()
    assert main(play) == 0
    out = capsys.readouterr().out
    assert "learner alone" in out
    learner = played_returns(out)
    assert main([*play, "--jsrl-combined"]) == 0
    out = capsys.readouterr().out
    # Stage 0 (no evaluation passed the 5-evaluation window yet): h = H, the guide acts the whole episode.
    assert "scripted guide for h = 200 (stage 0 of 0..9), then learner" in out
    combined = torch.tensor(played_returns(out))
    assert torch.allclose(combined, scripted_returns(4, seed=0), atol=0.006)  # printed to 0.01
    assert not torch.allclose(combined, torch.tensor(learner), atol=1.0)
    assert main(["play", "--checkpoint", str(prior_run), "--device", "cpu", "--jsrl-combined"]) == 2
    assert "--jsrl-combined: the checkpoint is not of a JSRL run" in capsys.readouterr().err


def test_train_adversarial_refuses_a_guide(capsys: pytest.CaptureFixture[str]) -> None:
    argv: list[Any] = ["train-adversarial", "--task", "hopper", "--guide", "scripted", "--jsrl.mode", "random"]
    assert main(argv) == 2
    assert "--guide/--jsrl (jump-start RL) are not supported by train-adversarial" in capsys.readouterr().err


def test_a_guide_of_another_task_is_refused(
    tmp_path: Path, prior_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--task", "cartpole-balance", "--guide", str(prior_run), "--jsrl", "random", *ENVS]
    assert main([*argv, "--run-dir", str(tmp_path / "run"), "--max-iterations", "1"]) == 2
    assert "its actor does not fit task 'cartpole-balance'" in capsys.readouterr().err
