"""The gymnasium v5 MuJoCo tasks on the cpu backend: parity with gymnasium's own envs, and robustness."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rsl_rl.registry import get_task
from tasks.mujoco.sim import SimConfig
from tasks.rrls.ant import AntCfg, AntEnv
from tasks.rrls.half_cheetah import HalfCheetahCfg, HalfCheetahEnv
from tasks.rrls.hopper import HopperCfg, HopperEnv, Walker2dCfg, Walker2dEnv
from tasks.rrls.humanoid_standup import HumanoidStandupCfg, HumanoidStandupEnv
from tasks.rrls.inverted_pendulum import InvertedPendulumCfg, InvertedPendulumEnv

CASES: dict[str, tuple[Any, Any]] = {
    "Ant-v5": (AntEnv, AntCfg),
    "HalfCheetah-v5": (HalfCheetahEnv, HalfCheetahCfg),
    "Hopper-v5": (HopperEnv, HopperCfg),
    "Walker2d-v5": (Walker2dEnv, Walker2dCfg),
    "InvertedPendulum-v5": (InvertedPendulumEnv, InvertedPendulumCfg),
    "HumanoidStandup-v5": (HumanoidStandupEnv, HumanoidStandupCfg),
}


@pytest.mark.parametrize("gym_id", list(CASES))
def test_parity_with_gymnasium(gym_id: str) -> None:
    """Same initial state and actions → same observations, rewards and terminations (1e-5) for 250 steps per world.

    When gymnasium's episode ends, both sides are put in gymnasium's next initial state and the comparison goes on.
    """
    env_cls, cfg_cls = CASES[gym_id]
    n = 2
    env = env_cls(cfg_cls(num_envs=n, sim=SimConfig(backend="cpu", nthread=1)))
    refs = [gym.make(gym_id) for _ in range(n)]
    rng = np.random.default_rng(0)

    def start_from_gymnasium(i: int) -> np.ndarray:
        obs, _ = refs[i].reset(seed=int(rng.integers(1 << 30)))
        data = refs[i].unwrapped.data  # type: ignore[attr-defined]
        mask = torch.zeros(n, dtype=torch.bool)
        mask[i] = True
        qpos, qvel = env.sim.qpos.clone(), env.sim.qvel.clone()
        qpos[i], qvel[i] = torch.from_numpy(data.qpos), torch.from_numpy(data.qvel)
        env.sim.reset(mask, qpos, qvel)
        return obs

    first = [start_from_gymnasium(i) for i in range(n)]
    ours = env.get_observations()["policy"].numpy()
    for i in range(n):
        np.testing.assert_allclose(ours[i], first[i], rtol=1e-5, atol=1e-5)
    low, high = refs[0].action_space.low, refs[0].action_space.high  # type: ignore[attr-defined]
    for step in range(250):
        actions = rng.uniform(low, high, size=(n, len(low))).astype(np.float32)
        _, reward, terminated, truncated, extras = env.step(torch.from_numpy(actions))
        final = extras["final_obs"]["policy"].numpy()
        for i in range(n):
            obs, ref_reward, ref_terminated, _, _ = refs[i].step(actions[i])
            np.testing.assert_allclose(final[i], obs, rtol=1e-5, atol=1e-5, err_msg=f"{gym_id} step {step}")
            assert reward[i].item() == pytest.approx(ref_reward, rel=1e-5, abs=1e-5)
            assert bool(terminated[i]) == ref_terminated
            assert not truncated[i]
            if ref_terminated:
                start_from_gymnasium(i)


def test_observation_sizes_match_gymnasium() -> None:
    for gym_id, (env_cls, cfg_cls) in CASES.items():
        env = env_cls(cfg_cls(num_envs=3))
        expected = gym.make(gym_id).observation_space.shape
        assert env.get_observations()["policy"].shape == (3, *expected), gym_id  # type: ignore[misc]


@pytest.mark.parametrize(("env_cls", "cfg_cls"), [(HopperEnv, HopperCfg), (AntEnv, AntCfg)])  # both cpu paths
def test_unstable_physics_resets_the_world_and_is_counted(env_cls: Any, cfg_cls: Any) -> None:
    env = env_cls(cfg_cls(num_envs=4, sim=SimConfig(backend="cpu", nthread=1)))
    mask = torch.tensor([False, False, True, False])
    qvel = env.sim.qvel.clone()
    qvel[2] = float("nan")  # a world whose state blew up
    env.sim.reset(mask, env.sim.qpos.clone(), qvel)
    obs, reward, terminated, truncated, extras = env.step(torch.zeros(4, env.num_actions))
    assert terminated.tolist() == [False, False, True, False]
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all()
    assert torch.isfinite(extras["final_obs"]["policy"]).all()
    assert extras["counts"]["invalid_physics_resets"].item() == 1
    assert env.episode_length_buf[2].item() == 0


def test_truncation_after_max_episode_steps() -> None:
    env = HalfCheetahEnv(HalfCheetahCfg(num_envs=2, max_episode_steps=5))
    for step in range(5):
        _, _, terminated, truncated, _ = env.step(torch.zeros(2, 6))
        assert not terminated.any()
        assert truncated.all() == (step == 4)


def test_actions_are_clipped_to_the_control_range() -> None:
    env = HalfCheetahEnv(HalfCheetahCfg(num_envs=1))
    env.step(torch.full((1, 6), 5.0))
    assert env.action.max().item() == 1.0
    assert env.sim.ctrl.max().item() == 1.0


@pytest.mark.parametrize("name", ["ant", "halfcheetah", "hopper", "walker2d", "inverted-pendulum", "humanoid-standup"])
def test_registered(name: str) -> None:
    spec = get_task(name)
    env = spec.build(spec.env_cfg(), seed=0)
    assert env.num_envs == spec.env_cfg().num_envs
    env.step(torch.zeros(env.num_envs, env.num_actions))
    env.close()
