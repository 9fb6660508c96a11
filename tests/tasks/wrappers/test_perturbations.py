"""ObservationNoise, ActionDelay and PushImpulse: the statistics, timing and physics they document."""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mujoco
import pytest
import torch
from tensordict import TensorDict

from rsl_rl.env import StepResult
from tasks.wrappers import ActionDelay, ObservationNoise, PushImpulse, Wrapper, unwrap

# --- ObservationNoise ---------------------------------------------------------------------------------------------


def test_noise_has_the_documented_mean_and_std(pendulum: Callable[..., Any]) -> None:
    env = ObservationNoise(pendulum(num_envs=64), std=0.2, seed=0)
    noise = []
    for _ in range(50):
        obs, *_ = env.step(torch.zeros(64, 1))
        noise.append(obs["policy"] - unwrap(env).get_observations()["policy"])
    noise = torch.stack(noise)  # 9600 samples
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 0.2) < 0.01
    assert float(noise[1:].sub(noise[:-1]).abs().mean()) > 0.1, "fresh noise every step"


def test_bias_is_constant_within_an_episode_and_redrawn_at_reset(
    pendulum: Callable[..., Any], probe: type[Any]
) -> None:
    spy = probe(pendulum(max_steps=5))
    env = ObservationNoise(spy, std=0.0, bias=0.5, seed=0)
    bias = env.get_observations()["policy"] - unwrap(env).get_observations()["policy"]
    resets = 0
    for _ in range(16):
        obs, _, terminated, truncated, extras = env.step(torch.zeros(8, 1))
        done = terminated | truncated
        now = obs["policy"] - unwrap(env).get_observations()["policy"]
        assert torch.allclose(now[~done], bias[~done], atol=1e-6), "constant within an episode"
        assert ((now[done] - bias[done]).abs() > 1e-4).all(), "redrawn at the reset"
        # The final observation carries the ending episode's bias (the same for envs that did not end).
        assert torch.allclose(extras["final_obs"]["policy"] - spy.final_obs[-1]["policy"], bias, atol=1e-6)
        assert (now.abs() <= 0.5 + 1e-6).all()
        resets += int(done.sum())
        bias = now
    assert resets >= 16


class WithImage(Wrapper):
    """Adds a uint8 camera group to the observations (pixel tasks have one)."""

    def _add(self, obs: TensorDict) -> TensorDict:
        out = obs.copy()
        out.set("image", torch.full((self.num_envs, 3, 4, 4), 7, dtype=torch.uint8))
        return out

    def reset(self) -> TensorDict:
        return self._add(self.env.reset())

    def get_observations(self) -> TensorDict:
        return self._add(self.env.get_observations())

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = self.env.step(actions)
        return self._add(obs), reward, terminated, truncated, {**extras, "final_obs": self._add(extras["final_obs"])}


def test_image_groups_are_refused_when_named_and_untouched_otherwise(pendulum: Callable[..., Any]) -> None:
    with pytest.raises(TypeError, match=r"'image' is torch.uint8.*float groups only"):
        ObservationNoise(WithImage(pendulum()), std=0.1, groups=("policy", "image"))
    with pytest.raises(KeyError, match="groups"):
        ObservationNoise(pendulum(), std=0.1, groups=("critic",))
    env = ObservationNoise(WithImage(pendulum()), std=0.1)
    obs, _, _, _, extras = env.step(torch.zeros(8, 1))
    assert obs["image"].dtype == torch.uint8 and (obs["image"] == 7).all()
    assert extras["final_obs"]["image"].dtype == torch.uint8


# --- ActionDelay ----------------------------------------------------------------------------------------------------


def _episode_histories(env: Any, actions: torch.Tensor) -> None:
    """Step ``env`` (an ActionDelay stack) and check every env acts with its action from ``delay`` steps ago within
    its episode (the episode's first action before that)."""
    delay = env.ring.delay.clone()
    history: list[list[torch.Tensor]] = [[] for _ in range(env.num_envs)]
    for a in actions:
        for i in range(env.num_envs):
            history[i].append(a[i])
        _, _, terminated, truncated, _ = env.step(a)
        applied = unwrap(env).action
        for i in range(env.num_envs):
            want = history[i][max(len(history[i]) - 1 - int(delay[i]), 0)]
            assert torch.equal(applied[i], want.to(applied.dtype)), f"env {i}, delay {int(delay[i])}"
        done = terminated | truncated
        for i in range(env.num_envs):
            if done[i]:
                history[i] = []
        delay = env.ring.delay.clone()


def test_an_action_acts_exactly_k_steps_later(pendulum: Callable[..., Any]) -> None:
    env = ActionDelay(pendulum(max_steps=7), steps=3)
    actions = torch.linspace(-1.9, 1.9, 20 * 8).reshape(20, 8, 1)
    _episode_histories(env, actions)
    assert (env.ring.delay == 3).all()


def test_delays_drawn_per_env_and_episode_from_the_range(pendulum: Callable[..., Any]) -> None:
    env = ActionDelay(pendulum(num_envs=16, max_steps=6), steps=(1, 4), seed=2)
    seen = set()
    for _ in range(3):
        seen |= set(env.ring.delay.tolist())
        _episode_histories(env, torch.rand(6, 16, 1, generator=torch.Generator().manual_seed(len(seen))) * 3 - 1.5)
    assert seen == {1, 2, 3, 4}


def test_delay_zero_is_the_identity(pendulum: Callable[..., Any]) -> None:
    plain, env = pendulum(max_steps=5), ActionDelay(pendulum(max_steps=5), steps=0)
    for a in torch.randn(12, 8, 1, generator=torch.Generator().manual_seed(0)):
        out_plain, out = plain.step(a), env.step(a)
        assert all(torch.equal(x, y) for x, y in zip(out_plain[1:4], out[1:4], strict=True))
        assert torch.equal(out_plain[0]["policy"], out[0]["policy"])
    with pytest.raises(ValueError, match="lo <= hi"):
        ActionDelay(pendulum(), steps=(3, 1))


# --- PushImpulse ----------------------------------------------------------------------------------------------------


def test_pushes_come_at_the_interval_and_are_cleared(hopper: Callable[..., Any], probe: type[Any]) -> None:
    spy = probe(hopper(max_steps=12))
    env = PushImpulse(spy, "torso", velocity=(0.2, 0.4), interval_s=(0.04, 0.04), axes="xy")  # 5 steps of 8 ms
    sim = unwrap(env).sim
    torso = sim.body_id("torso")
    step_in_episode = torch.zeros(8, dtype=torch.long)
    pushes = 0
    for _ in range(30):
        _, _, terminated, truncated, extras = env.step(torch.zeros(8, 3))
        step_in_episode += 1
        assert torch.equal(extras["pushed"], step_in_episode % 5 == 0)
        force = spy.forces[-1][:, torso, :2]
        mass = float(sim.model.body_subtreemass[torso])
        assert torch.allclose(force, mass * env.push_velocity.double() / env.step_dt, rtol=1e-5)
        speed = env.push_velocity.norm(dim=-1)
        assert ((speed >= 0.2 - 1e-6) & (speed <= 0.4 + 1e-6) | ~extras["pushed"]).all()
        assert not sim.xfrc_applied.any(), "a push lasts one step"
        step_in_episode = torch.where(terminated | truncated, 0, step_in_episode)
        pushes += int(extras["pushed"].sum())
    assert pushes >= 8 * 5


def _com_velocity(sim: Any, body: int) -> torch.Tensor:
    """Velocity ``[N, 3]`` of the centre of mass of ``body``'s subtree, per world (MuJoCo's mj_subtreeVel)."""
    data = mujoco.MjData(sim.model)
    out = []
    for i in range(sim.num_worlds):
        data.qpos[:], data.qvel[:] = sim.qpos[i].numpy(), sim.qvel[i].numpy()
        mujoco.mj_forward(sim.model, data)
        mujoco.mj_subtreeVel(sim.model, data)
        out.append(torch.from_numpy(data.subtree_linvel[body].copy()))
    return torch.stack(out)


def test_a_push_changes_the_robots_velocity_by_about_dv(hopper: Callable[..., Any]) -> None:
    """The first step (the hopper starts just above the floor: no contact) pushes every env along ±x; against an
    unpushed twin, the robot's centre of mass gains Δv."""
    plain = hopper()
    env = PushImpulse(hopper(), "torso", velocity=(0.5, 1.5), interval_s=(0.004, 0.004), axes="x", seed=3)
    plain.step(torch.zeros(8, 3))
    _, _, _, _, extras = env.step(torch.zeros(8, 3))
    assert extras["pushed"].all()
    torso = plain.sim.body_id("torso")
    gained = _com_velocity(env.sim, torso) - _com_velocity(plain.sim, torso)
    dv = env.push_velocity[:, 0].double()
    assert (dv.abs() >= 0.5 - 1e-6).all() and (dv > 0).any() and (dv < 0).any()
    assert torch.allclose(gained[:, 0], dv, rtol=0.02, atol=0)
    assert gained[:, 1:].abs().max() < 1e-3 * dv.abs().min()
