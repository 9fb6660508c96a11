"""Smoke runs of every CLI command, the run directory they write, and their errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import tasks.legged  # noqa: F401 -- registers go1-flat
from deploy.export import read_metadata
from rsl_rl.cli.env_config import FUNCTION_KEY, config_from_data, config_to_data
from rsl_rl.cli.main import main
from rsl_rl.registry import get_task, task_names


def train(run_dir: Path, *extra: str) -> None:
    args = ["train", "--task", "pendulum", "--run-dir", str(run_dir), "--max-iterations", "4", "--num-envs", "16"]
    assert main([*args, *extra]) == 0


def test_train_writes_the_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    train(run, "--agent.stop-at-return", "1000", "--agent.algorithm.learning-rate", "3e-4", "--seed", "7")
    out = capsys.readouterr().out
    assert "run directory" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["wall_seconds"] > 0
    assert summary["env_steps_per_second"] == pytest.approx(summary["env_steps"] / summary["wall_seconds"])
    # Pendulum rewards lie in [-16.3, 0]: a 200-step episode returns within [-3260, 0].
    assert -3260.0 <= summary["final_mean_return"] <= 0.0
    assert summary["task"] == "pendulum" and summary["iterations"] == 4
    assert summary["env_steps"] == 4 * 16 * 32
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "exported" / "policy.onnx").stat().st_size > 0
    assert (run / "exported" / "policy.pt").stat().st_size > 0
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "pendulum" and config["algorithm"]["learning_rate"] == 3e-4
    state = torch.load(run / "model_3.pt", weights_only=True)
    assert state["infos"]["task"] == "pendulum" and state["config"]["algorithm"]["learning_rate"] == 3e-4
    assert state["infos"]["env_cfg"] == config["env"]  # config.json holds the env config the checkpoint stores
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
    assert main(["export", "--checkpoint", str(run / "model_3.pt")]) == 0
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
                str(run / "model_3.pt"),
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
    a = torch.load(tmp_path / "a" / "model_3.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model_3.pt", weights_only=True)
    for key in ("actor_state_dict", "critic_state_dict"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])


def test_list_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-tasks"]) == 0
    out = capsys.readouterr().out
    assert "pendulum" in out and "cartpole-swingup" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--task", "pendulm"],
            "unknown task 'pendulm'; valid tasks: ant, arm-peg, arm-push, arm-reach, cartpole-balance",
        ),
        (["train"], "--task is required; valid tasks:"),
        (["fly"], "unknown command 'fly'; valid commands: train, play, export, deploy-sim, list-tasks"),
        (["train", "--task", "pendulum", "--device", "tpu"], "--device 'tpu'"),
        (["play", "--checkpoint", "/nonexistent/run"], "checkpoint not found"),
        # A mistyped flag is named (tyro once failed to build its own message here, for PPO and SAC alike).
        (["train", "--task", "pendulum", "--agent.algorithm.gama", "0.9"], "--agent.algorithm.gama"),
        (["train", "--task", "pendulum", "--algo", "sac", "--agent.algorithm.gama", "0.9"], "--agent.algorithm.gamma"),
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


# --- the resolved env config in checkpoints (issue 10, item 6) --------------------------------------------------------


def test_env_overrides_reach_checkpoint_config_json_export_play_and_deploy_sim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    # A weaker motor and 3-step episodes: both change what export, play and deploy-sim must rebuild.
    train(run, "--env.max-torque", "0.5", "--env.max-episode-steps", "3", "--agent.stop-at-return", "1000")
    state = torch.load(run / "model_3.pt", weights_only=True)  # plain data: loads without running code
    env = state["infos"]["env_cfg"]
    assert env["max_torque"] == 0.5 and env["max_episode_steps"] == 3 and env["num_envs"] == 16
    assert json.loads((run / "config.json").read_text())["env"] == env
    assert env["rewards"]["angle"]["func"] == {FUNCTION_KEY: "tasks.classic.pendulum:angle_cost"}
    # The export written by `train`, and a fresh `rsl-rl export`: the override is in the metadata.
    for policy in (run / "exported" / "policy.onnx", tmp_path / "again" / "policy.onnx"):
        if not policy.exists():
            assert main(["export", "--checkpoint", str(run), "--out-dir", str(policy.parent)]) == 0
        meta = read_metadata(policy)
        assert meta["action"]["low"] == [-0.5] and meta["action"]["high"] == [0.5]
        assert meta["env_config"]["max_torque"] == 0.5 and meta["env_config"]["max_episode_steps"] == 3
    capsys.readouterr()
    # play runs the stored 3-step episodes (each step costs at most 16.3), and --env-set still edits on top.
    assert main(["play", "--checkpoint", str(run), "--num-envs", "2"]) == 0
    mean = float(capsys.readouterr().out.split("mean return over 2 episodes: ")[1].split()[0])
    assert -3 * 16.3 <= mean <= 0.0
    assert main(["play", "--checkpoint", str(run), "--num-envs", "2", "--env-set", "max_episode_steps=1"]) == 0
    assert float(capsys.readouterr().out.split("mean return over 2 episodes: ")[1].split()[0]) >= -16.3
    # deploy-sim rebuilds the same task from the policy file alone.
    assert main(["deploy-sim", "--policy", str(run / "exported" / "policy.onnx"), "--episodes", "2"]) == 0
    assert "mean length 3," in capsys.readouterr().out
    # --resume continues in the stored env without repeating the overrides; an --env flag still edits it.
    argv = [
        "train",
        "--task",
        "pendulum",
        "--run-dir",
        str(run),
        "--max-iterations",
        "6",
        "--agent.stop-at-return",
        "1e3",
    ]
    assert main([*argv, "--resume", str(run / "model_3.pt"), "--env.max-episode-steps", "4"]) == 0
    env = torch.load(run / "model_5.pt", weights_only=True)["infos"]["env_cfg"]
    assert env["max_torque"] == 0.5 and env["max_episode_steps"] == 4 and env["num_envs"] == 16


@pytest.mark.parametrize("name", task_names())
def test_every_env_config_round_trips_as_plain_data(name: str, tmp_path: Path) -> None:
    spec = get_task(name)
    data = config_to_data(spec.env_cfg())
    torch.save(data, tmp_path / "c.pt")  # what a checkpoint holds ...
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)  # ... loads with weights_only
    assert json.loads(json.dumps(loaded)) == data  # ... and is JSON
    assert config_from_data(spec.env_cfg(), loaded, name) == spec.env_cfg()


def test_overrides_removed_and_added_terms_survive() -> None:
    from tasks.legged import terms
    from tasks.task import RewardTerm

    spec = get_task("go1-flat")
    cfg = spec.env_cfg()
    cfg.robot.action_scale = 0.5
    cfg.robot.stiffness = {"calf": 40.0, ".*": 30.0}
    cfg.robot.default_joint_pos["thigh"] = 0.8
    cfg.commands.lin_vel_x = (0.0, 2.0)
    cfg.height_scan = ((0.0, 0.1), (0.0,))
    del cfg.rewards["lin_vel_z"]
    cfg.rewards["base_height"] = RewardTerm(terms.lin_vel_z_l2, -0.5)  # a term the default config does not list
    cfg.events = {}
    rebuilt = config_from_data(spec.env_cfg(), json.loads(json.dumps(config_to_data(cfg))), "go1-flat")
    assert rebuilt == cfg
    assert rebuilt.rewards["base_height"].func is terms.lin_vel_z_l2
    assert isinstance(rebuilt.commands.lin_vel_x, tuple) and isinstance(rebuilt.height_scan[0], tuple)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["rewards"]["torques"].update(func={FUNCTION_KEY: "os:system"}), "function 'os:system' is not"),
        (lambda d: d["rewards"]["torques"].update(func={FUNCTION_KEY: "builtins:eval"}), "'builtins:eval' is not"),
        # A module the task uses, but a name that is not a function defined there (math imported by the terms).
        (lambda d: d["rewards"]["torques"].update(func={FUNCTION_KEY: "tasks.legged.terms:math"}), "terms:math' is"),
        (lambda d: d["rewards"]["torques"].update(func="tasks.legged.terms:lin_vel_z_l2"), "expected a stored func"),
        (lambda d: d["robot"].update(nope=1), "env.robot: RobotCfg has no field 'nope'"),
        (lambda d: d["robot"].update(action_scale="big"), "env.robot.action_scale: expected a float"),
        (lambda d: d["events"]["push"].update(mode="sometimes"), "env.events['push']: event mode='sometimes'"),
    ],
)
def test_stored_configs_are_checked_and_never_import_code(edit: Any, message: str) -> None:
    spec = get_task("go1-flat")
    data = config_to_data(spec.env_cfg())
    edit(data)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        config_from_data(spec.env_cfg(), data, "go1-flat")


@pytest.mark.parametrize(
    ("command", "not_imported"),
    [
        ("play", ["rsl_rl.cli.main"]),
        ("distill", ["rsl_rl.cli.main", "rsl_rl.cli.play"]),
        ("train_adversarial", ["rsl_rl.cli.main", "rsl_rl.cli.play"]),
        ("eval_robust", ["rsl_rl.cli.main", "rsl_rl.cli.play"]),
        ("bc", ["rsl_rl.cli.main", "rsl_rl.cli.play"]),
    ],
)
def test_commands_import_run_support_not_each_other(command: str, not_imported: list[str]) -> None:
    # A fresh interpreter: this process has imported every command already.
    code = f"import sys, rsl_rl.cli.{command}; print([m for m in {not_imported!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_make_run_dir_names_runs_by_task_date_and_run_name(tmp_path: Path) -> None:
    from rsl_rl.cli.run_support import make_run_dir

    assert make_run_dir("pendulum", "fast", tmp_path / "mine") == tmp_path / "mine"
    stamp = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"
    named = make_run_dir("pendulum", "fast", None)
    assert named.parent == Path("runs") / "pendulum" and re.fullmatch(f"{stamp}_fast", named.name)
    unnamed = make_run_dir("pendulum", "", None)
    assert unnamed.parent == Path("runs") / "pendulum" and re.fullmatch(stamp, unnamed.name)


def test_train_with_domain_randomization_draws_the_set_per_env_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rsl_rl.runners
    from tasks.uncertainty import uncertainty_set
    from tasks.wrappers import DomainRandomization
    from tasks.wrappers.params import resolve_param

    built: dict[str, Any] = {}
    make_runner = rsl_rl.runners.make_runner

    def capture(env: Any, agent: Any, run_dir: Any, device: Any, eval_env: Any = None) -> Any:
        built.update(env=env, eval_env=eval_env)
        return make_runner(env, agent, run_dir, device, eval_env=eval_env)

    monkeypatch.setattr(rsl_rl.runners, "make_runner", capture)
    run = tmp_path / "dr"
    args = ["train", "--task", "hopper", "--run-dir", str(run), "--max-iterations", "1", "--num-envs", "32"]
    assert main([*args, "--domain-randomization", "3d", "--agent.eval-episodes", "2"]) == 0
    env, eval_env = built["env"], built["eval_env"]
    assert isinstance(env, DomainRandomization) and not isinstance(eval_env, DomainRandomization)
    for name, (lo, hi) in uncertainty_set("hopper", "3d").bounds.items():
        values = resolve_param(env, name).read(env)
        assert values.shape == (32,) and bool(((values >= lo) & (values <= hi)).all()), name
        assert float(values.std()) > 0.1 * (hi - lo), f"{name} is not drawn per env"
        nominal = resolve_param(eval_env, name).read(eval_env)  # evaluation keeps the nominal model
        assert torch.allclose(nominal, torch.full_like(nominal, resolve_param(eval_env, name).nominal(eval_env)))
    state = torch.load(run / "model_0.pt", weights_only=True)
    assert state["infos"]["domain_randomization"] == "3d" and state["infos"]["domain_randomization_nominal"] == 0.0

    # --domain-randomization-nominal 1: every env keeps the nominal model (outside Hopper's set); recorded.
    assert main([*args, "--domain-randomization", "3d", "--domain-randomization-nominal", "1"]) == 0
    for name in uncertainty_set("hopper", "3d").bounds:
        param = resolve_param(built["env"], name)
        assert torch.allclose(
            param.read(built["env"]), torch.full((32,), param.nominal(built["env"]), dtype=torch.float64)
        )
    assert torch.load(run / "model_0.pt", weights_only=True)["infos"]["domain_randomization_nominal"] == 1.0
    assert main([*args, "--domain-randomization-nominal", "0.5"]) == 2
    assert "--domain-randomization-nominal needs --domain-randomization SET" in capsys.readouterr().err


def test_train_recurrent_gives_actor_and_critic_memory_and_resume_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rsl_rl.runners.checkpoint import load_checkpoint

    run = tmp_path / "gru"
    train(run, "--recurrent", "gru", "--recurrent-hidden-dim", "8", "--agent.actor.hidden-dims", "16")
    state = load_checkpoint(run)
    for name in ("actor", "critic"):
        section = state["config"][name]
        assert section["class_name"] == "RNNModel" and section["rnn_type"] == "gru", name
        assert section["rnn_hidden_dim"] == 8, name
        weights = state[f"{name}_state_dict"]["rnn.rnn.weight_hh_l0"]
        assert weights.shape == (3 * 8, 8), name  # a GRU's three gates over 8 units
    assert list(state["config"]["actor"]["hidden_dims"]) == [16]  # the MLP settings are kept
    assert state["iter"] == 3  # the last of iterations 0..3
    # Resuming without --recurrent keeps the checkpoint's layer (an MLP would not load its weights).
    assert (
        main(
            [
                "train",
                "--task",
                "pendulum",
                "--run-dir",
                str(tmp_path / "resumed"),
                "--resume",
                str(run),
                "--max-iterations",
                "6",
                "--num-envs",
                "16",
                "--agent.actor.hidden-dims",
                "16",
            ]
        )
        == 0
    )
    resumed = load_checkpoint(tmp_path / "resumed")
    assert resumed["iter"] == 5 and resumed["config"]["critic"]["rnn_hidden_dim"] == 8
    capsys.readouterr()
    base = ["train", "--task", "pendulum", "--run-dir", str(tmp_path / "bad"), "--max-iterations", "1"]
    assert main([*base, "--recurrent", "rnn"]) == 2
    assert "--recurrent 'rnn'; allowed: gru, lstm" in capsys.readouterr().err
    assert main([*base, "--algo", "sac", "--recurrent", "gru"]) == 2
    assert "SAC's networks are feed-forward" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_train_rejects_an_unknown_uncertainty_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--task", "hopper", "--run-dir", str(tmp_path / "r"), "--max-iterations", "1", "--num-envs", "4"]
    assert main([*args, "--domain-randomization", "9d"]) == 2
    err = capsys.readouterr().err
    assert "'9d'" in err and "1d, 2d, 3d" in err
    assert not (tmp_path / "r" / "model_0.pt").exists()
