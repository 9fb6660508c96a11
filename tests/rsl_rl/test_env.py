"""The env contract and the rsl_rl 5.x adapter."""

from __future__ import annotations

import torch
from point_mass import PointMassVecEnv

from rsl_rl.env import Env, RslRlEnvAdapter, VecEnv, as_env


def test_vec_env_is_rsl_rl_abstract_base() -> None:
    assert VecEnv.__abstractmethods__ == frozenset({"get_observations", "step"})
    env = PointMassVecEnv()
    assert isinstance(env, VecEnv)
    assert isinstance(as_env(env), RslRlEnvAdapter)


def test_adapter_splits_dones_and_reports_previous_obs_as_final() -> None:
    env = PointMassVecEnv(num_envs=8, max_episode_length=3)
    adapter = as_env(env)
    assert isinstance(adapter, Env)
    obs = adapter.get_observations()
    actions = torch.zeros(8, 2)
    for _ in range(2):
        obs, *_ = adapter.step(actions)
    before = obs["policy"].clone()
    _, reward, terminated, truncated, extras = adapter.step(actions)
    # Every env times out at step 3 (none left |x| > 4 with zero actions): truncated, not terminated.
    assert truncated.all() and not terminated.any()
    assert reward.shape == (8,)
    # The adapter cannot see the pre-reset state; it reports s_t, which turns the bootstrap into rsl_rl's γ·V(s_t).
    assert torch.equal(extras["final_obs"]["policy"], before)
    assert set(extras["log"]) == {"/custom/distance", "Episode/speed"}


def test_adapter_marks_terminations() -> None:
    env = PointMassVecEnv(num_envs=4, max_episode_length=100)
    env.pos[0] = torch.tensor([3.99, 0.0])
    env.vel[0] = torch.tensor([5.0, 0.0])
    adapter = as_env(env)
    adapter.get_observations()
    _, _, terminated, truncated, _ = adapter.step(torch.zeros(4, 2))
    assert terminated.tolist() == [True, False, False, False]
    assert not truncated.any()
