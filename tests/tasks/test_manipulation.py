"""The arm tasks (tasks/manipulation): env contract, randomisation with masked resets, sparse rewards and termination,
the scripted controllers' success rates in real physics, images, determinism, and the warp backend."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rsl_rl.registry import get_task
from tasks.manipulation.peg import PegCfg, PegEnv
from tasks.manipulation.push import PushCfg, PushEnv
from tasks.manipulation.reach import ReachCfg, ReachEnv
from tasks.manipulation.scripted import peg_controller, push_controller, reach_controller
from tasks.mujoco.config import SimConfig
from tasks.mujoco.warp_backend import warp_available

CPU = SimConfig(backend="cpu", nthread=1)
TASKS: dict[str, tuple[Any, Any, Any, int]] = {
    # name: env class, config class, scripted controller, size of the policy group
    "arm-reach": (ReachEnv, ReachCfg, reach_controller, 21),
    "arm-push": (PushEnv, PushCfg, push_controller, 29),
    "arm-peg": (PegEnv, PegCfg, peg_controller, 21),
}


def _make(name: str, n: int, seed: int = 0, **overrides: Any) -> Any:
    env_cls, cfg_cls, _, _ = TASKS[name]
    return env_cls(cfg_cls(num_envs=n, sim=overrides.pop("sim", CPU), **overrides), seed=seed)


@pytest.mark.parametrize("name", list(TASKS))
def test_env_contract(name: str) -> None:
    n = 3
    env = _make(name, n)
    spec = get_task(name)
    assert spec.scripted_policy is TASKS[name][2] and spec.sac_train_cfg is not None
    # Seconds per env step (the policy period: videos, demo metadata, RND use it), not per physics step.
    assert env.step_dt == pytest.approx(0.1) and env.sim.dt == pytest.approx(0.002)
    obs = env.reset()
    assert set(obs.keys()) == {"policy", "critic"}  # no image group unless asked
    policy_dim = TASKS[name][3]
    assert obs["policy"].shape == (n, policy_dim) and obs["policy"].dtype == torch.float32
    assert obs["critic"].shape[0] == n and obs["critic"].shape[1] > policy_dim + 14  # + joints + privileged state
    assert torch.equal(obs["critic"][:, :policy_dim], obs["policy"])
    assert sum(size for _, size in env.observation_terms()) == policy_dim
    assert env.num_actions == 6
    low, high = env.action_bounds()
    assert torch.equal(low, -torch.ones(6)) and torch.equal(high, torch.ones(6))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        obs, reward, terminated, truncated, extras = env.step(2 * torch.rand(n, 6, generator=generator) - 1)
        for group in ("policy", "critic"):
            assert torch.isfinite(obs[group]).all()
        assert reward.shape == (n,) and reward.dtype == torch.float32 and torch.isfinite(reward).all()
        assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
        assert extras["success"].shape == (n,) and extras["success"].dtype == torch.bool
    # The tool stays within the safety box's reach and near pointing down after random actions.
    tilt = obs["policy"][:, 3:9]
    assert (tilt[:, 0] > 0.9).all() and (tilt[:, 4] < -0.9).all()  # x axis ≈ +x, y axis ≈ −y


def test_randomisation_differs_across_envs_and_episodes_and_resets_are_masked() -> None:
    env = _make("arm-peg", 4)
    hole = env.hole_pos().clone()
    ee = env.sim.site_pose("ee")[0].clone()
    assert torch.unique(hole[:, 0]).numel() == 4 and torch.unique(hole[:, 1]).numel() == 4
    assert (hole[:, :2] - torch.tensor([0.5, 0.0])).abs().max() <= env.cfg.hole_range + 1e-9
    # The tip starts above the hole's region: within the start range (and the linearised IK's error) of its axis.
    offset = ee - hole
    assert (offset[:, :2].abs() < env.cfg.start_range + 0.004).all()
    assert ((offset[:, 2] > 0.025) & (offset[:, 2] < 0.055)).all()
    mask = torch.tensor([True, False, True, False])
    env.reset_envs(mask)
    new_hole = env.hole_pos()
    assert torch.equal(new_hole[~mask], hole[~mask])  # untouched
    assert (new_hole[mask] - hole[mask]).abs().amax(dim=-1).gt(1e-4).all()  # a new episode, a new hole
    # Reach targets: different per env, redrawn for reset envs only, in the box above the table.
    reach = _make("arm-reach", 4)
    goal = reach.goal.clone()
    assert torch.unique(goal[:, 2]).numel() == 4 and (goal[:, 2] >= 0.15).all()
    reach.reset_envs(mask)
    assert torch.equal(reach.goal[~mask], goal[~mask]) and not torch.equal(reach.goal[mask], goal[mask])


def _run_scripted(name: str, n: int, episodes: int, **overrides: Any) -> tuple[float, list[Any]]:
    """Run the task's scripted controller until ``episodes`` episodes ended; returns the success rate of the ended
    episodes and every step's (reward, terminated, truncated, success)."""
    env = _make(name, n, **overrides)
    controller = TASKS[name][2](env)
    obs = env.get_observations()
    ended, successes, trace = 0, 0, []
    while ended < episodes:
        obs, reward, terminated, truncated, extras = env.step(controller(obs))
        trace.append((reward, terminated, truncated, extras["success"]))
        done = terminated | truncated
        ended += int(done.sum())
        successes += int((done & extras["success"]).sum())
    return successes / ended, trace


def test_peg_scripted_inserts_and_success_terminates_with_sparse_reward() -> None:
    """Measured: 32/32 within ~11 policy steps."""
    rate, trace = _run_scripted("arm-peg", 32, 32)
    assert rate >= 0.8, rate
    for reward, terminated, truncated, success in trace:
        assert set(reward.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(terminated, success)  # the episode ends exactly on success, as a termination
        assert torch.equal(reward, success.float())
        assert not (truncated & terminated).any()
    assert any(t.any() for _, t, _, _ in trace)


def test_push_scripted_pushes_the_block_to_the_goal() -> None:
    """Measured: 32/32 (every block starts 8-14 cm from its goal)."""
    env = _make("arm-push", 4)
    start = (env.block_pose()[0][:, :2] - env.goal).norm(dim=-1)
    assert (start > env.cfg.success_radius + 0.02).all()  # nothing is solved at the start
    rate, trace = _run_scripted("arm-push", 32, 32)
    assert rate >= 0.7, rate
    for reward, terminated, _, success in trace:
        assert set(reward.unique().tolist()) <= {0.0, 1.0} and torch.equal(reward, success.float())
        assert torch.equal(terminated, success)


def test_reach_scripted_reaches_and_the_reward_is_dense() -> None:
    """Measured: 32/32 within 1 cm at the end of 40-step episodes."""
    rate, trace = _run_scripted("arm-reach", 32, 32, max_episode_steps=40)
    assert rate >= 0.8, rate
    first, last = trace[0][0], trace[-1][0]
    assert (first < 0).all() and (last > 0.9).mean(dtype=torch.float32) > 0.8  # −distance early, bonus at the end
    assert not any(t.any() for _, t, _, _ in trace)  # reaching does not end the episode


def test_image_group_when_asked() -> None:
    pytest.importorskip("mujoco")
    try:
        env = _make("arm-push", 2, image_size=32, cameras=("front", "wrist"))
        obs = env.reset()
    except RuntimeError as err:  # no OpenGL platform on this machine
        pytest.skip(str(err))
    image = obs["image"]
    assert image.shape == (2, 6, 32, 32) and image.dtype == torch.uint8
    assert image.float().std() > 5  # a scene, not a blank frame
    assert not torch.equal(image[0, :3], image[0, 3:])  # two different cameras
    obs, _, _, _, extras = env.step(torch.zeros(2, 6))
    assert obs["image"].shape == (2, 6, 32, 32)
    # The observation before a reset keeps the image's dtype (it was promoted to float32, so demo files with images
    # were refused for mixing uint8 and float32).
    assert extras["final_obs"]["image"].dtype == torch.uint8
    with pytest.raises(ValueError, match="cameras entry 'top'"):
        PushCfg(image_size=32, cameras=("top",))


def test_same_seed_same_episodes() -> None:
    actions = 2 * torch.rand(4, 2, 6, generator=torch.Generator().manual_seed(1)) - 1
    runs = []
    for _ in range(2):
        env = _make("arm-push", 2, seed=7)
        observations = [env.get_observations()["critic"]]
        for a in actions:
            observations.append(env.step(a)[0]["critic"])
        runs.append(torch.stack(observations))
    assert torch.equal(runs[0], runs[1])
    other = _make("arm-push", 2, seed=8).get_observations()["critic"]
    assert not torch.equal(other, runs[0][0])


@pytest.mark.skipif(not warp_available(), reason="mujoco-warp is not installed")
def test_warp_backend_runs_the_peg_task_like_cpu() -> None:
    """2 worlds, 3 policy steps of the scripted controller on MuJoCo Warp (float32) against the cpu backend: the tip
    follows the same path within 2 mm."""
    n = 2
    cpu = _make("arm-peg", n, seed=3)
    warp = _make("arm-peg", n, seed=3, sim=SimConfig(backend="warp"))
    assert warp.dtype == torch.float32
    # The same start (float32 and float64 draws differ): the cpu worlds' state and controller posture on warp.
    everyone = torch.ones(n, dtype=torch.bool)
    warp.sim.reset(everyone, cpu.sim.qpos.float(), cpu.sim.qvel.float())
    warp.controller.posture.copy_(cpu.controller.posture)
    ctl_cpu, ctl_warp = peg_controller(cpu), peg_controller(warp)
    obs_cpu, obs_warp = cpu.get_observations(), warp.get_observations()
    obs_warp = warp.get_observations()
    torch.testing.assert_close(obs_warp["policy"][:, :3], obs_cpu["policy"][:, :3], atol=1e-5, rtol=0)
    for _ in range(3):
        obs_cpu = cpu.step(ctl_cpu(obs_cpu))[0]
        obs_warp = warp.step(ctl_warp(obs_warp))[0]
        assert torch.isfinite(obs_warp["critic"]).all()
        torch.testing.assert_close(obs_warp["policy"][:, :3], obs_cpu["policy"][:, :3].float(), atol=2e-3, rtol=0)
        torch.testing.assert_close(warp.hole_pos(), cpu.hole_pos().float(), atol=1e-4, rtol=0)
