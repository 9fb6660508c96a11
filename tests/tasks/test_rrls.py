"""The gymnasium v5 MuJoCo tasks: parity with gymnasium's own envs (cpu backend), parity of the warp backend with the
cpu backend, and robustness."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rsl_rl.registry import get_task
from tasks.mujoco.sim import SimConfig
from tasks.mujoco.warp_backend import warp_available
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


# Warp vs MuJoCo C. Before every step both are reset to the cpu worlds' state, so each step is compared from the same
# state, along 60 steps of random actions: contact-rich trajectories are chaotic (a 1e-7 change of the Ant's state
# grows to ~1 within 100 steps in MuJoCo C itself), so free-running float32 and float64 runs part ways whatever the
# engine; tests/tasks/test_mujoco_sim.py compares a smooth free-running Hopper. Per task: solver and cone set on both
# backends ('' = the model's) and the tolerance of observations relative to max(1, |obs|), with the measured maxima in
# the comments. Rewards agreed to 1.3e-5, positions and velocities to 7.3e-5.
WARP_CASES: dict[str, tuple[str, str, float]] = {  # gym id: (sim.solver, sim.cone, tolerance)
    "Ant-v5": ("", "elliptic", 5e-3),  # pyramidal cones differ upstream (SimConfig.cone); 6.9e-4 (cfrc_ext)
    "HalfCheetah-v5": ("", "", 1e-3),  # 7.3e-5
    "Hopper-v5": ("", "", 1e-3),  # 2.6e-6
    "Walker2d-v5": ("", "", 1e-3),  # 3.7e-5
    "InvertedPendulum-v5": ("", "", 1e-3),  # 1.2e-7
    # mujoco_warp has no PGS. The split of the contact force among the many simultaneous body-floor contacts is
    # loosely determined: cfrc_ext differs up to 5.7e-4 while the motion agrees to 5e-5.
    "HumanoidStandup-v5": ("newton", "", 5e-3),
}


@pytest.mark.skipif(not warp_available(), reason="mujoco-warp is not installed")
@pytest.mark.parametrize("gym_id", list(WARP_CASES))
def test_warp_backend_matches_cpu_backend(gym_id: str) -> None:
    env_cls, cfg_cls = CASES[gym_id]
    solver, cone, obs_tol = WARP_CASES[gym_id]
    n = 3
    cpu = env_cls(cfg_cls(num_envs=n, sim=SimConfig(backend="cpu", nthread=1, solver=solver, cone=cone)))
    warp = env_cls(cfg_cls(num_envs=n, sim=SimConfig(backend="warp", solver=solver, cone=cone)))
    assert warp.dtype == torch.float32 and cpu.dtype == torch.float64
    everyone = torch.ones(n, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    compared = 0
    for step in range(60):
        state = cpu.sim.qpos.clone(), cpu.sim.qvel.clone()
        for env in (cpu, warp):  # both: a reset also refreshes the fields read before physics (xpos)
            env.sim.reset(everyone, *state)
        actions = 2.0 * torch.rand(n, cpu.num_actions, generator=g) - 1.0
        _, r_cpu, term_cpu, _, x_cpu = cpu.step(actions)
        _, r_warp, term_warp, _, x_warp = warp.step(actions)
        assert torch.equal(term_cpu, term_warp), f"{gym_id} step {step}"
        o_cpu, o_warp = x_cpu["final_obs"]["policy"], x_warp["final_obs"]["policy"].double()
        obs_err = ((o_cpu - o_warp).abs() / o_cpu.abs().clamp_min(1.0)).max().item()
        assert obs_err < obs_tol, f"{gym_id} step {step}: observation error {obs_err:.2e}"
        reward_err = ((r_cpu - r_warp).abs() / r_cpu.abs().clamp_min(1.0)).max().item()
        assert reward_err < 1e-4, f"{gym_id} step {step}: reward error {reward_err:.2e}"
        live = cpu.episode_length_buf > 0  # worlds this step did not reset (a reset draws its own state)
        motion = torch.cat([cpu.sim.qpos - warp.sim.qpos.double(), cpu.sim.qvel - warp.sim.qvel.double()], dim=-1)
        scale = torch.cat([cpu.sim.qpos, cpu.sim.qvel], dim=-1).abs().clamp_min(1.0)
        assert ((motion.abs() / scale)[live].max().item() if live.any() else 0.0) < 1e-3, f"{gym_id} step {step}"
        compared += int(live.sum())
    assert compared > 60  # most steps compare every world


def test_observation_sizes_match_gymnasium() -> None:
    for gym_id, (env_cls, cfg_cls) in CASES.items():
        env = env_cls(cfg_cls(num_envs=3))
        expected = gym.make(gym_id).observation_space.shape
        assert env.get_observations()["policy"].shape == (3, *expected), gym_id  # type: ignore[misc]


@pytest.mark.parametrize(("env_cls", "cfg_cls"), [(HopperEnv, HopperCfg), (AntEnv, AntCfg)])  # both cpu paths
def test_unstable_physics_resets_the_world_and_is_counted(env_cls: Any, cfg_cls: Any) -> None:
    """Worlds blow up again and again -- through MuJoCo's bad-state check (a huge but finite velocity: MuJoCo resets
    the world itself and warns) and through a non-finite state -- in several worlds on both threads, twice in a row,
    and right after a reset. Every blow-up ends exactly that world's episode, earns nothing, is counted once, and no
    NaN reaches observations, rewards or final observations."""
    n = 6
    env = env_cls(cfg_cls(num_envs=n, sim=SimConfig(backend="cpu", nthread=2)))
    counted = blown = 0
    for t in range(24):
        huge = torch.tensor([(t + w) % 6 < 2 for w in range(n)])
        nan = torch.tensor([(t + 3 * w) % 8 == 0 for w in range(n)]) & ~huge
        qvel = env.sim.qvel.clone()
        qvel[huge] = 1e11
        qvel[nan] = float("nan")
        env.sim.reset(huge | nan, env.sim.qpos.clone(), qvel)
        actions = torch.zeros(n, env.num_actions)
        obs, reward, terminated, truncated, extras = env.step(actions)
        assert terminated.tolist() == (huge | nan).tolist(), f"step {t}"
        assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all()
        assert torch.isfinite(extras["final_obs"]["policy"]).all()
        assert (reward[huge | nan] == 0).all()
        assert (env.episode_length_buf[huge | nan] == 0).all()
        counted += int(extras["counts"]["invalid_physics_resets"])
        blown += int((huge | nan).sum())
    assert counted == blown and blown >= 30


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
