"""Stacks of the perturbation wrappers keep the env contract, resume exactly, and never synchronise the host."""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tasks.wrappers import (
    ActionDelay,
    DomainRandomization,
    DynamicAdversary,
    ForceAdversary,
    ModifiedParams,
    NoisyActionBlend,
    ObservationNoise,
    ProbabilisticActionReplacement,
    PushImpulse,
    protagonist_actions,
    unwrap,
)

TORSO, FLOOR, THIGH = "body_mass:torso", "geom_friction:floor:0", "body_mass:thigh"


def rrls_stack(task: Any, seed: int = 0) -> Any:
    """Domain randomisation → dynamic adversary → NR-MDP blend → observation noise → action delay."""
    env = DomainRandomization(task, {FLOOR: (0.1, 3.0)}, seed=seed)
    env = DynamicAdversary(env, {TORSO: (0.1, 3.0), THIGH: (0.1, 4.0)})
    env = NoisyActionBlend(env, alpha=0.1)
    env = ObservationNoise(env, std=0.01, bias=0.02, seed=seed + 1)
    return ActionDelay(env, steps=(0, 2), seed=seed + 2)


def test_a_stack_keeps_the_contract_over_several_episodes(hopper: Callable[..., Any]) -> None:
    task = hopper(max_steps=10)
    env = rrls_stack(task)
    assert unwrap(env) is task and protagonist_actions(env) == 3
    assert env.num_actions == (3 + 2) * 2 and env.adversary_dims == 5  # the outermost adversary's (the blend's)
    low, high = env.action_bounds() or (None, None)
    assert low is not None and high is not None and low.shape == high.shape == (10,)
    assert env.deployment_spec() == task.deployment_spec(), "a deployed policy is the protagonist"
    obs = env.reset()
    g = torch.Generator().manual_seed(0)
    episodes = torch.zeros(8, dtype=torch.long)
    for _ in range(32):
        obs, reward, terminated, truncated, extras = env.step(torch.rand(8, 10, generator=g) * 2 - 1)
        assert obs["policy"].shape == (8, 11) and obs["policy"].dtype == torch.float32
        assert reward.shape == (8,) and reward.dtype == torch.float32 and torch.isfinite(reward).all()
        assert terminated.dtype == truncated.dtype == torch.bool and terminated.shape == truncated.shape == (8,)
        assert not (terminated & truncated).any()
        assert extras["final_obs"]["policy"].shape == (8, 11)
        assert torch.equal(extras["adversary_reward"], -reward)
        assert {"randomization/geom_friction:floor:0", "adversary/body_mass:torso"} <= set(extras["log"])
        assert env.episode_length_buf is task.episode_length_buf
        episodes += (terminated | truncated).long()
    assert (episodes >= 3).all()
    env.episode_length_buf = torch.zeros(8, dtype=torch.long)  # written through to the task
    assert not task.episode_length_buf.any()


def test_a_stack_resumes_exactly_from_its_state_dict(hopper: Callable[..., Any]) -> None:
    env = ProbabilisticActionReplacement(rrls_stack(hopper(max_steps=6)), alpha=0.3, seed=4)
    actions = torch.rand(24, 8, 20, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for a in actions[:9]:
        env.step(a)
    state = copy.deepcopy(env.state_dict())

    def run(e: Any) -> list[torch.Tensor]:
        out = []
        for a in actions[9:]:
            obs, reward, terminated, truncated, extras = e.step(a)
            out += [obs["policy"], extras["final_obs"]["policy"], reward, terminated, truncated]
        return out

    expected = run(env)
    other = ProbabilisticActionReplacement(rrls_stack(hopper(max_steps=6, seed=7), seed=50), alpha=0.3, seed=9)
    other.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(run(other), expected, strict=True))


def test_reset_envs_through_a_stack_starts_new_episodes_in_every_wrapper(hopper: Callable[..., Any]) -> None:
    """An outer wrapper that ends episodes itself (RewardClassifierWrapper) calls ``reset_envs(mask)``: each wrapper
    on the way starts those envs' episodes (fresh draws, nominal parameters) and leaves the others alone."""
    task = hopper()
    env = rrls_stack(task)
    env.step(torch.rand(8, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    randomization: Any = env.env.env.env.env
    adversary: Any = env.env.env.env
    noise: Any = env.env
    friction, torso = randomization.get_params()[FLOOR], adversary.get_params()[TORSO]
    bias = noise.bias["policy"].clone()
    mask = torch.arange(8) % 2 == 0
    env.reset_envs(mask)
    assert torch.equal(friction != randomization.get_params()[FLOOR], mask)
    assert torch.equal(torso != adversary.get_params()[TORSO], mask)
    assert torch.equal((bias != noise.bias["policy"]).all(-1), mask)
    assert torch.equal(env.fresh, mask)


def _load_guard() -> Any:
    """The host-sync guard of tests/tasks/test_host_sync.py (imported, not copied)."""
    path = Path(__file__).resolve().parents[1] / "test_host_sync.py"
    spec = importlib.util.spec_from_file_location("_wrapper_host_sync_guard", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_wrapper_steps_and_resets_without_a_host_sync(hopper: Callable[..., Any]) -> None:
    guard = _load_guard()
    assert Path(__file__).resolve().parents[3] / "tasks" in guard.GUARDED, "the wrappers live where the guard looks"
    task = hopper(num_envs=4, max_steps=3)
    env = ModifiedParams(task, ["body_mass:leg"])
    env.set_params({"body_mass:leg": 2.0}, at_reset=True)
    env = PushImpulse(env, "torso", velocity=(0.1, 0.3), interval_s=(0.01, 0.02))
    env = rrls_stack(env)
    env = ForceAdversary(env, ["foot"], max_force=3.0)
    env = ProbabilisticActionReplacement(env, alpha=0.5)
    g = torch.Generator().manual_seed(0)
    actions = [torch.rand(4, env.num_actions, generator=g) * 2 - 1 for _ in range(8)]
    finished = torch.zeros(4, dtype=torch.bool)
    with guard.no_host_sync():
        env.reset()
        env.get_observations()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            finished |= terminated | truncated
    assert finished.all(), "every env went through a reset during the guarded steps"
    assert (task.sim.params["body_mass"][:, 3] == 2.0).all()
