"""The learner on a CUDA device, the env on the CPU (issue 10): observations, rewards, dones and the extras --
``final_obs`` for the time-out bootstrap, per-env episode statistics -- reach the learner's device, for PPO, recurrent
PPO, distillation and an rsl_rl-style env behind the adapter.

Skipped where torch sees no CUDA device (CI has none); on a GPU machine: ``pytest tests/rsl_rl/test_cuda.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from point_mass import PointMassVecEnv, rsl_rl_train_cfg

from rsl_rl.algorithms.distillation import DistillationConfig
from rsl_rl.modules import ActorConfig, ModelConfig, RNNConfig
from rsl_rl.runners import DistillationRunner, DistillationTrainConfig, OnPolicyRunner, TrainConfig
from tasks.classic.pendulum import PendulumCfg, PendulumEnv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
LEARNER = "cuda"


def cpu_pendulum(seed: int = 0) -> PendulumEnv:
    # 64 envs × 32 steps with random episode starts: ~10 time-outs (final_obs bootstraps) per iteration.
    return PendulumEnv(PendulumCfg(num_envs=64), device="cpu", seed=seed)


def small_ppo_config(recurrent: bool) -> TrainConfig:
    cfg = TrainConfig(num_steps_per_env=32, logger="none", save_interval=1000)
    if recurrent:
        cfg.actor = RNNConfig(rnn_type="gru", rnn_hidden_dim=16, hidden_dims=(32,))
        cfg.critic = RNNConfig(rnn_type="gru", rnn_hidden_dim=16, hidden_dims=(32,))
    else:
        cfg.actor = ActorConfig(hidden_dims=(32, 32))
        cfg.critic = ModelConfig(hidden_dims=(32, 32))
    return cfg


def check_trained_on_cuda(runner: OnPolicyRunner, iterations: int) -> None:
    assert runner.current_learning_iteration == iterations
    params = list(runner.alg.get_policy().parameters())
    assert all(p.is_cuda and torch.isfinite(p).all() for p in params)
    for record in runner.logger.history:
        # Episodes ended in every iteration, and their statistics (moved from the env's device) were logged.
        assert record["episodes"] > 0
        episode = {k: v for k, v in record.items() if k.startswith("Episode/reward/")}
        assert set(episode) == {"Episode/reward/angle", "Episode/reward/velocity", "Episode/reward/torque"}
        assert all(math.isfinite(v) for v in episode.values())


@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_ppo_trains_on_cuda_from_an_env_on_the_cpu(recurrent: bool) -> None:
    torch.manual_seed(0)
    runner = OnPolicyRunner(cpu_pendulum(), small_ppo_config(recurrent), None, LEARNER, show_progress=False)
    runner.learn(3, init_at_random_ep_len=True)
    check_trained_on_cuda(runner, 3)


@pytest.mark.parametrize("student", ["history", "gru"])
def test_distillation_on_cuda_from_an_env_on_the_cpu(tmp_path: Path, student: str) -> None:
    torch.manual_seed(0)
    teacher = OnPolicyRunner(cpu_pendulum(), small_ppo_config(False), None, "cpu", show_progress=False)
    teacher.save(tmp_path / "teacher.pt")
    cfg = DistillationTrainConfig(
        num_steps_per_env=32,
        logger="none",
        teacher_checkpoint=str(tmp_path / "teacher.pt"),
        algorithm=DistillationConfig(history_length=3 if student == "history" else 1),
        student=RNNConfig(rnn_type="gru", rnn_hidden_dim=16, hidden_dims=(32,))
        if student == "gru"
        else ActorConfig(hidden_dims=(32,)),
    )
    runner = DistillationRunner(cpu_pendulum(), cfg, None, LEARNER, show_progress=False)
    runner.learn(2, init_at_random_ep_len=True)
    check_trained_on_cuda(runner, 2)


def test_rsl_rl_env_on_the_cpu_keeps_the_adapters_bootstrap() -> None:
    """The adapter reports the observation acted on as ``final_obs``; after the move it must still be that same
    (moved) object, which selects rsl_rl's γ·V(s_t) bootstrap."""
    env = PointMassVecEnv(num_envs=16, max_episode_length=5, device="cpu")
    runner = OnPolicyRunner(env, rsl_rl_train_cfg(), None, LEARNER, show_progress=False)
    alg = runner.alg
    seen: list[bool] = []
    process = alg.process_env_step

    def spy(obs: Any, rewards: Any, terminated: Any, truncated: Any, extras: dict[str, Any]) -> None:
        seen.append(extras["final_obs"] is alg._acted_obs and extras["final_obs"]["policy"].is_cuda)
        process(obs, rewards, terminated, truncated, extras)

    alg.process_env_step = spy  # type: ignore[method-assign]
    runner.learn(2)
    assert len(seen) == 2 * 8 and all(seen)
    assert all(p.is_cuda and torch.isfinite(p).all() for p in alg.actor.parameters())


def test_sac_trains_on_cuda_from_an_env_on_the_cpu() -> None:
    from rsl_rl.runners import OffPolicyRunner
    from rsl_rl.runners.config import SACTrainConfig

    torch.manual_seed(0)
    cfg = SACTrainConfig(num_steps_per_env=4, logger="none", save_interval=1000)
    cfg.algorithm.batch_size, cfg.algorithm.replay_capacity, cfg.algorithm.num_updates = 256, 64, 4
    runner = OffPolicyRunner(cpu_pendulum(), cfg, None, LEARNER, show_progress=False)
    runner.learn(6, init_at_random_ep_len=True)
    check_trained_on_cuda(runner, 6)
    assert runner.alg.storage.rewards.is_cuda and runner.alg.num_gradient_steps > 0


def test_sac_collection_and_update_never_sync_with_the_host() -> None:
    """SAC on a CUDA pendulum: act, process_env_step and update run under ``set_sync_debug_mode("error")``."""
    from tensordict import TensorDict

    from rsl_rl.algorithms.sac import SAC, SACConfig
    from rsl_rl.modules.sac_models import QEnsemble, SACActorConfig, SACCriticConfig, SquashedGaussianActor

    torch.manual_seed(0)
    env = PendulumEnv(PendulumCfg(num_envs=64), device=LEARNER, seed=0)
    bounds = env.action_bounds()
    assert bounds is not None
    actor = SquashedGaussianActor(3, 1, SACActorConfig(hidden_dims=(32,)), *bounds)
    critic = QEnsemble(3, 1, SACCriticConfig(hidden_dims=(32,), num_critics=4))
    cfg = SACConfig(batch_size=128, num_updates=4, replay_capacity=32, n_step=3, target_critics=2)
    sac = SAC(actor, critic, cfg, {"actor": ["policy"], "critic": ["policy"]}, 64, LEARNER)
    obs: TensorDict = env.reset()
    for warm_up in (True, False):  # allocations and lazy CUDA initialisation happen in the first round
        if not warm_up:
            torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(8):
                with torch.inference_mode():
                    actions = sac.act(obs)
                    obs, rewards, terminated, truncated, extras = env.step(actions)
                    sac.process_env_step(obs, rewards, terminated | truncated, {**extras, "time_outs": truncated})
            sac.update()
        finally:
            torch.cuda.set_sync_debug_mode("default")
