"""The off-policy runner: SAC from dict configs and the CLI, exact resume, export parity, bounds, asymmetric critics,
non-finite env output, and learning Pendulum for real."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from point_mass import PointMassVecEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rsl_rl.cli.main import main
from rsl_rl.cli.run_support import seed_everything
from rsl_rl.registry import get_task
from rsl_rl.runners import OffPolicyRunner, OnPolicyRunner, SACTrainConfig, make_runner, train_config_from_dict
from rsl_rl.runners.checkpoint import load_checkpoint
from tasks.classic.pendulum import PendulumCfg, PendulumEnv


def small_sac_cfg(**algorithm: Any) -> SACTrainConfig:
    cfg = get_task("pendulum").agent_cfg("sac")
    cfg.logger = "none"
    cfg.save_interval = 1000
    cfg.algorithm = dataclasses.replace(cfg.algorithm, batch_size=64, num_updates=2, replay_capacity=40, **algorithm)
    cfg.actor.hidden_dims = cfg.critic.hidden_dims = (16, 16)
    return cfg


def pendulum_runner(seed: int, **algorithm: Any) -> OffPolicyRunner:
    seed_everything(seed, deterministic=True)
    env = PendulumEnv(PendulumCfg(num_envs=6), seed=seed)
    runner = make_runner(env, small_sac_cfg(**algorithm), None, "cpu", show_progress=False)
    assert isinstance(runner, OffPolicyRunner)
    return runner


def parameters(runner: OffPolicyRunner) -> list[torch.Tensor]:
    alg = runner.alg
    return [
        *alg.actor.state_dict().values(),
        *alg.critic.state_dict().values(),
        *alg.critic_target.state_dict().values(),
        alg.log_alpha.detach(),
    ]


def test_resume_with_the_replay_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    # 30 iterations of 6 envs into 40 replay rows: the ring wraps around before and after the checkpoint.
    straight = pendulum_runner(3, save_replay=True)
    straight.learn(60)
    first = pendulum_runner(3, save_replay=True)
    first.learn(30)
    first.save(tmp_path / "model_30.pt")
    resumed = pendulum_runner(999, save_replay=True)
    resumed.load(tmp_path / "model_30.pt")
    assert resumed.alg.storage.step == 30 and resumed.alg.collected_steps == 30
    resumed.learn(30)
    assert (
        resumed.current_learning_iteration == 60 and resumed.alg.num_gradient_steps == straight.alg.num_gradient_steps
    )
    assert all(torch.equal(a, b) for a, b in zip(parameters(straight), parameters(resumed), strict=True))
    assert torch.equal(straight.alg.storage.rewards, resumed.alg.storage.rewards)
    adam, other = (r.alg.critic_optimizer.state_dict()["state"] for r in (straight, resumed))
    assert all(torch.equal(adam[k]["exp_avg_sq"], other[k]["exp_avg_sq"]) for k in adam)


def test_resume_without_the_replay_refills_it_with_the_policy_not_random_actions(tmp_path: Path) -> None:
    first = pendulum_runner(3, random_steps=20)
    first.learn(25)
    first.save(tmp_path / "model_25.pt")
    assert "replay" not in load_checkpoint(tmp_path / "model_25.pt")
    resumed = pendulum_runner(4, random_steps=20)
    resumed.load(tmp_path / "model_25.pt")
    assert resumed.alg.storage.step == 0 and resumed.alg.collected_steps == 25
    assert not resumed.alg.ready()  # no update on an empty replay
    resumed.learn(10)
    # The refilled actions came from the policy: the same observations give the policy's action distribution, and
    # no uniform-random row (random_steps = 20 < 25 collected) was written.
    assert resumed.alg.storage.step == 10 and resumed.alg.num_gradient_steps > first.alg.num_gradient_steps


def test_dict_config_with_class_name_sac_selects_the_off_policy_runner_and_names_unknown_keys() -> None:
    cfg = {
        "num_steps_per_env": 1,
        "obs_groups": {"actor": ["policy"], "critic": ["policy", "critic"]},
        "algorithm": {"class_name": "SAC", "batch_size": 32, "num_updates": 2, "replay_capacity": 16},
        "actor": {"hidden_dims": [16], "init_std": 0.3},
        "critic": {"hidden_dims": [16], "num_critics": 3},
        "logger": "none",
    }
    parsed = train_config_from_dict(cfg)
    assert isinstance(parsed, SACTrainConfig) and parsed.critic.num_critics == 3
    with pytest.raises(KeyError, match="n_steps.*valid keys"):
        train_config_from_dict({**cfg, "algorithm": {"class_name": "SAC", "n_steps": 3}})
    env = PointMassVecEnv(num_envs=8)  # an rsl_rl VecEnv: no bounds of its own
    with pytest.raises(ValueError, match="algorithm.action_bounds"):
        make_runner(env, cfg, None, "cpu", show_progress=False)
    cfg["algorithm"]["action_bounds"] = [-1.0, 1.0]
    runner = make_runner(env, cfg, None, "cpu", show_progress=False)
    assert isinstance(runner, OffPolicyRunner) and not isinstance(make_runner(env, _ppo_dict(), None), OffPolicyRunner)
    # Asymmetric: the critics read policy + privileged groups, the actor the policy group only.
    assert runner.alg.critic.obs_dim == 4 + 6 and runner.alg.actor.obs_dim == 4
    runner.learn(6)
    assert runner.alg.num_gradient_steps > 0
    assert torch.equal(runner.alg.actor.action_high, torch.ones(2))


def _ppo_dict() -> dict[str, Any]:
    from point_mass import rsl_rl_train_cfg

    return rsl_rl_train_cfg(logger="none")


class NaNPointMass(PointMassVecEnv):
    """Point masses whose rewards are NaN at steps 3, 5 and 7 and whose observations are inf at step 6."""

    def __init__(self) -> None:
        super().__init__(num_envs=8)
        self.t = 0

    def step(self, actions: torch.Tensor) -> Any:
        obs, reward, dones, extras = super().step(actions)
        self.t += 1
        if self.t in (3, 5, 7):
            reward[self.t % 8] = float("nan")
        if self.t == 6:
            obs["policy"][2, 0] = float("inf")
        return obs, reward, dones, extras


def test_non_finite_env_output_never_reaches_the_networks(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = small_sac_cfg(action_bounds=(-1.0, 1.0))
    cfg.obs_groups = {"actor": ["policy"], "critic": ["policy", "critic"]}
    runner = OffPolicyRunner(NaNPointMass(), cfg, None, "cpu", show_progress=False)
    runner.learn(20)
    assert all(torch.isfinite(p).all() for p in parameters(runner))
    history = runner.logger.history
    assert all(np.isfinite(h["Loss/critic"]) for h in history)
    flagged = [h["iteration"] for h in history if h["nonfinite"] > 0]
    assert {2, 4, 5, 6} <= set(flagged)  # the first, second and third NaN reward and the inf observation
    assert "non-finite observations or rewards" in capsys.readouterr().err
    storage = runner.alg.storage
    assert torch.isfinite(storage.obs["actor"]).all() and torch.isfinite(storage.actions).all()
    assert torch.isfinite(storage.rewards).all() and int(storage.terminated.sum()) >= 4


def test_export_is_the_bounded_deterministic_action_with_runtime_parity(tmp_path: Path) -> None:
    from deploy.export import export_checkpoint

    runner = pendulum_runner(0)
    runner.checkpoint_infos = {"task": "pendulum"}
    runner.learn(20)
    runner.save(tmp_path / "model_20.pt", runner.checkpoint_infos)
    report = export_checkpoint(tmp_path / "model_20.pt", tmp_path / "exported")
    assert report.max_abs_diff_onnx <= 1e-5 and report.max_abs_diff_torchscript <= 1e-5
    session = ort.InferenceSession(str(report.onnx), providers=["CPUExecutionProvider"])
    obs = (np.random.default_rng(0).standard_normal((256, 3)) * 5).astype(np.float32)
    onnx_actions = np.asarray(session.run(None, {"obs": obs})[0])
    policy = runner.get_inference_policy()
    with torch.no_grad():
        torch_actions = policy(torch.from_numpy(obs)).numpy()
    assert np.abs(onnx_actions - torch_actions).max() < 1e-5
    assert onnx_actions.min() >= -2.0 and onnx_actions.max() <= 2.0  # the pendulum's torque limit
    assert report.metadata["action"]["low"] == [-2.0] and report.metadata["action"]["high"] == [2.0]


def test_legged_task_bounds_come_from_its_joint_limits() -> None:
    spec = get_task("go1-flat")
    env_cfg = spec.env_cfg_for("sac")
    assert env_cfg.only_positive_rewards and not spec.env_cfg().only_positive_rewards  # see tasks/legged/__init__.py
    env_cfg.num_envs = 2
    env = spec.build(env_cfg, seed=0)
    cfg = spec.agent_cfg("sac")
    cfg.logger = "none"
    cfg.algorithm.replay_capacity = 8
    runner = make_runner(env, cfg, None, "cpu", show_progress=False)
    bounds = env.action_bounds()
    assert bounds is not None
    low, high = (b.float() for b in bounds)
    clip = env_cfg.action_clip
    assert (low > -clip).all() and (high < clip).all()  # the joint ranges in action units, inside ±action_clip
    actor = runner.alg.actor
    assert torch.allclose(actor.to_env(-torch.ones(12)), low) and torch.allclose(actor.to_env(torch.ones(12)), high)
    # u = 0 is action 0, the default pose, although the joint ranges are not symmetric about it.
    assert torch.equal(actor.to_env(torch.zeros(12)), torch.zeros(12)) and not torch.allclose(low, -high)
    assert runner.alg.critic.obs_dim > actor.obs_dim  # the privileged critic
    env.close()


def scalars(log_dir: Path, tag: str) -> list[float]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def test_cli_trains_sac_then_resumes_plays_and_exports(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--task", "pendulum", "--algo", "sac", "--run-dir", str(run), "--num-envs", "8", "--threads", "1"]
    assert main([*args, "--max-iterations", "30", "--agent.eval-interval", "15", "--agent.stop-at-return", "0"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algorithm"] == "SAC" and summary["iterations"] == 30 and summary["exported"]["parity_samples"] > 0
    assert summary["mean_episode_length"] > 0  # from the last iteration in which episodes ended, not NaN
    assert len(scalars(run, "Loss/critic")) == 30 and scalars(run, "Replay/fill")[-1] > 0
    assert len(scalars(run, "Policy/alpha")) == 30 and (run / "curves.png").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["algorithm"]["class_name"] == "SAC"
    # Resume: the algorithm comes from the checkpoint, no --algo needed.
    assert main([*args[:3], *args[5:], "--resume", str(run / "model_29.pt"), "--max-iterations", "40"]) == 0
    assert json.loads((run / "summary.json").read_text())["iterations"] == 40
    assert main(["play", "--checkpoint", str(run), "--num-envs", "2"]) == 0
    assert main(["export", "--checkpoint", str(run), "--out-dir", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "policy.onnx").is_file()
    assert main(["train", "--task", "pendulum", "--algo", "td3"]) == 2


def test_sac_learns_pendulum_with_the_task_defaults() -> None:
    """Real training: the task's SAC config reaches a deterministic return ≥ −200 (bench/RESULTS.md: ~5 s)."""
    torch.set_num_threads(1)
    seed_everything(0)
    spec = get_task("pendulum")
    cfg = spec.agent_cfg("sac")
    cfg.logger = "none"
    env_cfg = spec.env_cfg_for("sac")  # as the CLI does
    env = spec.build(env_cfg, seed=0)
    eval_env = spec.build(dataclasses.replace(env_cfg, num_envs=cfg.eval_episodes), seed=10_000)
    runner = make_runner(env, cfg, None, "cpu", eval_env=eval_env, show_progress=False)
    runner.learn(init_at_random_ep_len=True)
    assert runner.solved_at is not None, runner.eval_history[-5:]
    assert isinstance(runner, OnPolicyRunner)  # the off-policy runner is one


def test_explicit_action_bounds_override_the_envs() -> None:
    runner = pendulum_runner(0, action_bounds=(-1.0, 1.0))  # the pendulum declares ±2
    assert torch.equal(runner.alg.actor.to_env(torch.ones(1)), torch.ones(1))
