"""The runner: rsl_rl compatibility, logging, checkpoints, resume, export."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from point_mass import PointMassVecEnv, rsl_rl_train_cfg
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensordict import TensorDict, TensorDictBase

from rsl_rl.cli.run_support import seed_everything
from rsl_rl.runners import OnPolicyRunner, TrainConfig
from rsl_rl.runners.checkpoint import load_checkpoint
from rsl_rl.runners.on_policy_runner import move_to_device
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
    assert sorted(p.name for p in tmp_path.glob("model_*.pt")) == ["model_0.pt", "model_2.pt"]

    state = torch.load(tmp_path / "model_2.pt", weights_only=True)
    assert {"actor_state_dict", "critic_state_dict", "optimizer_state_dict", "iter", "infos"} <= set(state)
    assert state["iter"] == 2 and state["iterations_completed"] == 3  # rsl-rl-lib: iter = last index

    policy = runner.get_inference_policy(device="cpu")
    obs = env.get_observations()
    actions = policy(obs)
    assert actions.shape == (env.num_envs, env.num_actions)

    # A second runner loads the checkpoint and continues from its iteration.
    other = OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(), log_dir=None, device="cpu", show_progress=False)
    infos = other.load(str(tmp_path / "model_2.pt"))
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
    first.learn(3)  # writes model_2.pt (rsl-rl-lib names by the last index) at the end
    # A fresh process: new env, new runner, other global RNG state; the checkpoint restores all of it.
    resumed = pendulum_runner(None, seed=999)
    resumed.load(tmp_path / "model_2.pt")
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


# --- env and learner on different devices ----------------------------------------------------------------------------


def _layout(value: Any) -> Any:
    """``value`` with every tensor replaced by its type, dtype and shape (and a TensorDict's batch size)."""
    if isinstance(value, TensorDictBase):
        return ("TensorDict", tuple(value.batch_size), {k: _layout(v) for k, v in value.items()})
    if isinstance(value, torch.Tensor):
        return ("Tensor", value.dtype, tuple(value.shape))
    if isinstance(value, dict):
        return {k: _layout(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_layout(v) for v in value)
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, TensorDictBase):
        return [t for t in value.values(include_nested=True, leaves_only=True) if isinstance(t, torch.Tensor)]
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def test_move_to_device_moves_every_tensor_of_nested_extras_and_nothing_else() -> None:
    """The runner moves the env's extras to the learner's device (issue 10: final_obs and episode statistics stayed on
    the env's device). No CUDA here, so the target is the meta device: every tensor must land there, the layout
    (keys, dtypes, shapes, batch sizes) and the non-tensor values stay as they were, and the input is not modified."""
    obs = TensorDict({"policy": torch.randn(4, 3)}, batch_size=[4])
    final = TensorDict(
        {"policy": torch.randn(4, 3), "nested": TensorDict({"height": torch.randn(4, 7)}, batch_size=[4])},
        batch_size=[4],
    )
    extras: dict[str, Any] = {
        "final_obs": final,
        "acted_on": obs,
        "episode": {"reward/alive": torch.ones(4), "deeper": {"steps": torch.arange(4)}},
        "log": {"/terrain/level": 2.5, "Episode/speed": torch.tensor(1.0, dtype=torch.float64)},
        "counts": {"invalid_worlds": torch.tensor(3)},
        "time_outs": torch.zeros(4, dtype=torch.bool),
        "pairs": [torch.ones(2), 3, ("name", torch.zeros(1))],
        "name": "hopper",
        "none": None,
    }
    before = _layout(extras)
    moved_obs = obs.to("meta")
    moved = move_to_device(extras, torch.device("meta"), {id(obs): moved_obs})
    assert _layout(moved) == before
    assert len(_tensors(moved)) == len(_tensors(extras)) == 10
    assert all(t.device.type == "meta" for t in _tensors(moved))
    assert moved["final_obs"].device == torch.device("meta")
    # An object moved already (the observation the policy acted on) is reused, not copied again.
    assert moved["acted_on"] is moved_obs
    assert moved["name"] is extras["name"] and moved["none"] is None and moved["log"]["/terrain/level"] == 2.5
    # The env's own extras are untouched.
    assert _layout(extras) == before and all(t.device.type == "cpu" for t in _tensors(extras))


# --- resume: episode lengths, logger step and logged statistics ------------------------------------------------------


def test_resume_does_not_rerandomise_episode_lengths(tmp_path: Path) -> None:
    """A training script passes ``init_at_random_ep_len=True`` to every ``learn()``, resumed or not (rsl_rl's
    scripts do): the restored env state holds the episode lengths, which must not be drawn again."""
    straight = pendulum_runner(None, seed=7)
    straight.learn(6, init_at_random_ep_len=True)
    first = pendulum_runner(tmp_path, seed=7)
    first.learn(3, init_at_random_ep_len=True)
    resumed = pendulum_runner(None, seed=999)
    resumed.load(tmp_path / "model_2.pt")
    resumed.learn(3, init_at_random_ep_len=True)
    assert torch.equal(resumed._env.episode_length_buf, straight._env.episode_length_buf)
    assert all(torch.equal(a, b) for a, b in zip(parameters(straight), parameters(resumed), strict=True))


def test_env_without_state_is_still_spread_on_resume(tmp_path: Path) -> None:
    """An env that cannot save its state (rsl_rl-style envs behind the adapter) starts fresh on resume: its
    episode lengths are spread again, as on a fresh start."""
    first = OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(), log_dir=str(tmp_path), device="cpu")
    first.learn(2)
    env = PointMassVecEnv(max_episode_length=1000)
    resumed = OnPolicyRunner(env, rsl_rl_train_cfg(), log_dir=None, device="cpu", show_progress=False)
    resumed.load(tmp_path / "model_1.pt")
    resumed.learn(1, init_at_random_ep_len=True)
    assert env.episode_length_buf.unique().numel() > 1


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_resumed_run_continues_the_logger_without_duplicate_steps(tmp_path: Path) -> None:
    """Resumed into the same run directory from a checkpoint older than the last logged iteration (a crash after
    model_4.pt, written after 5 iterations): TensorBoard holds every iteration once, and the resumed iterations log
    what the uninterrupted run logged (episode returns included: episodes in progress keep their running sums)."""
    straight_dir, run_dir = tmp_path / "straight", tmp_path / "run"

    def runner(log_dir: Path, seed: int) -> OnPolicyRunner:
        r = pendulum_runner(log_dir, seed)
        r.train_cfg.logger, r.train_cfg.save_interval = "tensorboard", 4
        r.logger.kind = "tensorboard"
        return r

    straight = runner(straight_dir, seed=11)
    straight.learn(8, init_at_random_ep_len=True)
    straight.logger.close()
    first = runner(run_dir, seed=11)
    first.learn(6, init_at_random_ep_len=True)  # logs iterations 0..5, saves model_0.pt, model_4.pt, model_5.pt
    first.logger.close()
    resumed = runner(run_dir, seed=999)
    resumed.load(run_dir / "model_4.pt")
    resumed.learn(3, init_at_random_ep_len=True)
    resumed.logger.close()
    for tag in ("Loss/value_function", "Train/mean_reward", "Train/mean_episode_length", "Policy/mean_std"):
        logged, expected = scalars(run_dir, tag), scalars(straight_dir, tag)
        assert [step for step, _ in logged] == [step for step, _ in expected], tag
        assert logged == expected, tag
    assert [step for step, _ in scalars(run_dir, "Perf/total_fps")] == list(range(8))


def test_episode_tracker_keeps_a_nan_inside_its_own_episode() -> None:
    """A NaN reward or episode statistic of one env spoils that env's episode only: not the episodes other envs end
    at the same step, and not that env's next episodes (NaN·0 = NaN, so masks must select, not multiply)."""
    from rsl_rl.runners.logger import EpisodeTracker

    nan = float("nan")
    tracker = EpisodeTracker(3, torch.device("cpu"))
    # Env 0 is mid-episode with a NaN reward and a NaN statistic; envs 1 and 2 end episodes of return 1 and 3.
    tracker.track(
        torch.tensor([nan, 1.0, 3.0]),
        torch.tensor([False, True, True]),
        {"episode": {"x": torch.tensor([nan, 2.0, 4.0])}},
    )
    first = tracker.collect()
    assert first["mean_return"] == 2.0 and first["Episode/x"] == 3.0 and first["mean_episode_length"] == 1.0
    tracker.track(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([True, False, False]), {})
    assert math.isnan(tracker.collect()["mean_return"])  # env 0's own episode is NaN
    for _ in range(2):  # its next episodes, the second and the third, are clean again
        tracker.track(torch.tensor([5.0, 0.0, 0.0]), torch.tensor([True, False, False]), {})
        assert tracker.collect()["mean_return"] == 5.0


def test_resume_keeps_the_evaluation_history_for_the_summary(tmp_path: Path) -> None:
    def runner(log_dir: Path | None, seed: int) -> OnPolicyRunner:
        r = pendulum_runner(log_dir, seed)
        r.eval_env = PendulumEnv(PendulumCfg(num_envs=4, max_episode_steps=20), seed=seed + 1)
        r.train_cfg.eval_interval = 2
        return r

    first = runner(tmp_path, seed=2)
    first.learn(4, init_at_random_ep_len=True)  # evaluations after iterations 2 and 4; episodes end
    assert [it for it, _ in first.eval_history] == [2, 4]
    resumed = runner(None, seed=999)
    resumed.load(tmp_path / "model_3.pt")
    assert resumed.eval_history == first.eval_history
    assert math.isfinite(first.logger.last_return) and resumed.logger.last_return == first.logger.last_return
    resumed.learn(2)
    assert [it for it, _ in resumed.eval_history] == [2, 4, 6]
    assert resumed.summary("pendulum")["eval_mean_return"] == resumed.eval_history[-1][1]
