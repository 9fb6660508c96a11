"""The runner: rsl_rl compatibility, logging, checkpoints, resume, export."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from point_mass import PointMassVecEnv, rsl_rl_train_cfg
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rsl_rl.cli.main import seed_everything
from rsl_rl.runners import OnPolicyRunner, TrainConfig
from rsl_rl.runners.checkpoint import load_checkpoint
from tasks.classic.pendulum import PendulumCfg, PendulumEnv


def test_rsl_rl_style_script_runs_unchanged(tmp_path: Path) -> None:
    """What an Isaac Lab / mjlab train script does with rsl_rl's OnPolicyRunner."""
    env = PointMassVecEnv()
    train_cfg = rsl_rl_train_cfg()
    runner = OnPolicyRunner(env, train_cfg, log_dir=str(tmp_path), device="cpu")
    runner.add_git_repo_to_log(__file__)
    assert runner.env is env and runner.cfg is train_cfg and runner.device == "cpu"
    runner.learn(num_learning_iterations=3, init_at_random_ep_len=True)
    assert runner.current_learning_iteration == 3
    assert sorted(p.name for p in tmp_path.glob("model_*.pt")) == ["model_2.pt", "model_3.pt"]

    state = torch.load(tmp_path / "model_3.pt", weights_only=True)
    assert {"actor_state_dict", "critic_state_dict", "optimizer_state_dict", "iter", "infos"} <= set(state)
    assert state["iter"] == 3

    policy = runner.get_inference_policy(device="cpu")
    obs = env.get_observations()
    actions = policy(obs)
    assert actions.shape == (env.num_envs, env.num_actions)

    # A second runner loads the checkpoint and continues from its iteration.
    other = OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(), log_dir=None, device="cpu", show_progress=False)
    infos = other.load(str(tmp_path / "model_3.pt"))
    assert infos is None and other.current_learning_iteration == 3
    assert torch.equal(other.get_inference_policy()(obs), actions)


def test_tensorboard_scalars_and_per_term_logs(tmp_path: Path) -> None:
    runner = OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(), log_dir=str(tmp_path), device="cpu")
    runner.learn(3)
    runner.logger.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {"Train/mean_reward", "Loss/value_function", "Loss/surrogate", "Loss/learning_rate", "Perf/total_fps"}
    assert expected <= tags
    assert {"/custom/distance", "Episode/speed", "Perf/collection_time", "Perf/learning_time"} <= tags
    assert len(acc.Scalars("Perf/total_fps")) == 3


def test_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    runner = OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(logger="wandb"), log_dir=str(tmp_path), device="cpu")
    runner.learn(2)
    runner.logger.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the offline run holds no .wandb data file"


def pendulum_runner(log_dir: Path | None, seed: int) -> OnPolicyRunner:
    seed_everything(seed, deterministic=True)
    env = PendulumEnv(PendulumCfg(num_envs=16), seed=seed)
    cfg = TrainConfig(num_steps_per_env=8, save_interval=1000, logger="none")
    cfg.actor.hidden_dims = cfg.critic.hidden_dims = (32, 32)
    cfg.algorithm.num_mini_batches = 2
    cfg.algorithm.num_learning_epochs = 2
    return OnPolicyRunner(env, cfg, log_dir, "cpu", show_progress=False)


def parameters(runner: OnPolicyRunner) -> list[torch.Tensor]:
    return [*runner.alg.actor.state_dict().values(), *runner.alg.critic.state_dict().values()]


def test_save_load_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight = pendulum_runner(None, seed=5)
    straight.learn(6)

    first = pendulum_runner(tmp_path, seed=5)
    first.learn(3)  # writes model_3.pt at the end
    # A fresh process: new env, new runner, other global RNG state; the checkpoint restores all of it.
    resumed = pendulum_runner(None, seed=999)
    resumed.load(tmp_path / "model_3.pt")
    assert resumed.current_learning_iteration == 3
    resumed.learn(3)

    assert resumed.current_learning_iteration == 6 and resumed.env_steps == straight.env_steps
    assert all(torch.equal(a, b) for a, b in zip(parameters(straight), parameters(resumed), strict=True))
    assert resumed.alg.learning_rate.item() == straight.alg.learning_rate.item()
    state = straight.alg.optimizer.state_dict()["state"]
    other = resumed.alg.optimizer.state_dict()["state"]
    assert all(torch.equal(state[k]["exp_avg"], other[k]["exp_avg"]) for k in state)


def test_determinism_and_seed_sensitivity() -> None:
    a, b, c = pendulum_runner(None, 1), None, None
    a.learn(3)
    b = pendulum_runner(None, 1)
    b.learn(3)
    c = pendulum_runner(None, 2)
    c.learn(3)
    assert all(torch.equal(x, y) for x, y in zip(parameters(a), parameters(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(parameters(a), parameters(c), strict=True))


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = pendulum_runner(None, seed=0)
    path = tmp_path / "model.pt"
    runner.save(path)
    good = path.read_bytes()
    runner.learn(1)

    def crash(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        runner.save(path)
    assert path.read_bytes() == good  # the last good checkpoint is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind
    monkeypatch.undo()
    load_checkpoint(path)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_loading_untrusted_checkpoint_never_runs_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "model_1.pt"
    with open(bad, "wb") as f:
        pickle.dump({"actor_state_dict": _Exploit()}, f, protocol=2)  # the protocol torch.save writes
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(bad)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "model_2.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        load_checkpoint(tmp_path / "model_2.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_onnx_and_torchscript_exports_match_torch(tmp_path: Path) -> None:
    runner = OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(), log_dir=None, device="cpu", show_progress=False)
    runner.learn(2)  # trains the observation normaliser, which the export must bake in
    runner.export_policy_to_onnx(tmp_path, "policy.onnx")
    runner.export_policy_to_jit(tmp_path, "policy.pt")
    obs = torch.randn(1000, 4) * 3
    expected = runner.get_inference_policy()(obs).detach().numpy()
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    assert [i.name for i in session.get_inputs()] == ["obs"]
    assert [o.name for o in session.get_outputs()] == ["actions"]
    (onnx_out,) = session.run(None, {"obs": obs.numpy()})
    assert np.abs(onnx_out - expected).max() <= 1e-5
    jit = torch.jit.load(str(tmp_path / "policy.pt"))
    assert np.abs(jit(obs).detach().numpy() - expected).max() <= 1e-6


class NaNRewardEnv(PointMassVecEnv):
    def step(self, actions: torch.Tensor):  # type: ignore[no-untyped-def]
        obs, reward, dones, extras = super().step(actions)
        return obs, torch.full_like(reward, float("nan")), dones, extras


def test_non_finite_env_output_gives_a_diagnosis_not_a_silent_nan() -> None:
    runner = OnPolicyRunner(NaNRewardEnv(), rsl_rl_train_cfg(), log_dir=None, device="cpu", show_progress=False)
    with pytest.raises(FloatingPointError, match="non-finite observations or rewards"):
        runner.learn(2)
    # The discarded mini-batches left the policy intact.
    assert all(torch.isfinite(p).all() for p in runner.alg.actor.parameters())


def test_max_wall_seconds_stops_training_after_the_iteration_that_reaches_it() -> None:
    runner = pendulum_runner(None, 0)
    runner.train_cfg.max_wall_seconds = 1e-9  # any iteration takes longer
    runner.learn(50)
    assert runner.current_learning_iteration == 1
    runner.train_cfg.max_wall_seconds = None
    runner.learn(2)
    assert runner.current_learning_iteration == 3
