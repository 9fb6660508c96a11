"""DynamicAdversary and ForceAdversary on the real hopper: the adversary's columns map to parameters and forces as
documented, act every step, and end with the episode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from tasks.wrappers import DynamicAdversary, ForceAdversary, protagonist_actions, unwrap

TORSO, FLOOR = "body_mass:torso", "geom_friction:floor:0"


def test_dynamic_adversary_maps_minus_one_to_lo_and_one_to_hi(hopper: Callable[..., Any]) -> None:
    env = DynamicAdversary(hopper(), {TORSO: (0.1, 3.0), FLOOR: (0.5, 2.0)})
    assert env.num_actions == 5 and env.adversary_dims == 2 and env.adversary_names == (TORSO, FLOOR)
    assert protagonist_actions(env) == 3
    adversary = torch.tensor([-1.0, 1.0, 0.0, -5.0, 5.0, 0.5, -0.5, 1.0]).unsqueeze(-1).expand(8, 2)
    _, _, terminated, truncated, _ = env.step(torch.cat((torch.zeros(8, 3), adversary), dim=-1))
    assert not (terminated | truncated).any()
    got = env.get_params()
    expected = {
        TORSO: [0.1, 3.0, 1.55, 0.1, 3.0, 2.275, 0.825, 3.0],
        FLOOR: [0.5, 2.0, 1.25, 0.5, 2.0, 1.625, 0.875, 2.0],
    }
    for name, values in expected.items():
        want = torch.tensor(values, dtype=torch.float64)
        assert torch.equal(got[name][[0, 1, 3, 4, 7]], want[[0, 1, 3, 4, 7]]), "±1 and clipped values are exact"
        assert torch.allclose(got[name], want, rtol=0, atol=1e-12)


def test_dynamic_adversary_acts_every_step_and_resets_to_nominal(hopper: Callable[..., Any]) -> None:
    env = DynamicAdversary(hopper(max_steps=4), {TORSO: (0.1, 3.0)})
    nominal = torch.full((8,), 3.6651914291880923, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    env.reset()
    assert torch.equal(env.get_params()[TORSO], nominal)
    for _ in range(9):
        a = torch.rand(8, 4, generator=g) * 2 - 1
        _, reward, terminated, truncated, extras = env.step(a)
        done = terminated | truncated
        want = torch.where(done, nominal, ((1 - a[:, 3].double()) * 0.1 + (1 + a[:, 3].double()) * 3.0) / 2)
        assert torch.allclose(env.get_params()[TORSO], want, rtol=1e-6, atol=0)
        assert torch.equal(extras["adversary_reward"], -reward)
    low, high = env.action_bounds() or (None, None)
    assert low is not None and high is not None
    assert low.tolist() == [-1.0] * 4 and high.tolist() == [1.0] * 4


def test_dynamic_adversary_changes_the_physics(hopper: Callable[..., Any]) -> None:
    light, heavy = (DynamicAdversary(hopper(), {TORSO: (0.5, 10.0)}) for _ in range(2))
    actions = 0.5 * torch.randn(10, 8, 3, generator=torch.Generator().manual_seed(1))
    for a in actions:
        obs_light, *_ = light.step(torch.cat((a, -torch.ones(8, 1)), -1))
        obs_heavy, *_ = heavy.step(torch.cat((a, torch.ones(8, 1)), -1))
    assert ((obs_light["policy"] - obs_heavy["policy"]).abs().amax(-1) > 1e-4).all()


def test_force_adversary_writes_scaled_clipped_forces_on_its_bodies(
    hopper: Callable[..., Any], probe: type[Any]
) -> None:
    spy = probe(hopper())
    env = ForceAdversary(spy, ["foot", "torso"], max_force=3.0, axes="xz")
    assert env.num_actions == 3 + 4 and env.adversary_dims == 4
    assert env.adversary_names == ("foot_force_x", "foot_force_z", "torso_force_x", "torso_force_z")
    sim = unwrap(env).sim
    foot, torso = sim.body_id("foot"), sim.body_id("torso")
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        adversary = 3 * torch.rand(8, 4, generator=g) - 1.5  # beyond ±1 too: clipped
        _, reward, _, _, extras = env.step(torch.cat((torch.zeros(8, 3), adversary), -1))
        applied, want = spy.forces[-1], torch.zeros(8, sim.model.nbody, 6, dtype=torch.float64)
        force = adversary.clamp(-1, 1).double() * 3.0
        want[:, foot, 0], want[:, foot, 2], want[:, torso, 0], want[:, torso, 2] = force.unbind(-1)
        assert torch.allclose(applied, want, rtol=1e-6, atol=0)
        assert torch.equal(spy.actions[-1], torch.zeros(8, 3)), "the protagonist's columns pass inward"
        assert not sim.xfrc_applied.any(), "the force acts for its step only"
        assert torch.equal(extras["adversary_reward"], -reward)


def test_a_force_changes_the_trajectory_and_zero_force_changes_nothing(hopper: Callable[..., Any]) -> None:
    plain = hopper()
    env = ForceAdversary(hopper(), ["torso"], max_force=50.0, axes="x")
    push = torch.tensor([0.0, 1.0] * 4).unsqueeze(-1)
    actions = 0.5 * torch.randn(10, 8, 3, generator=torch.Generator().manual_seed(1))
    for a in actions:
        obs_plain, *_ = plain.step(a)
        obs, *_ = env.step(torch.cat((a, push), -1))
    diff = (obs_plain["policy"] - obs["policy"]).abs().amax(-1)
    assert (diff[0::2] == 0).all() and (diff[1::2] > 1e-3).all()


def test_force_adversary_checks_its_arguments(hopper: Callable[..., Any], pendulum: Callable[..., Any]) -> None:
    with pytest.raises(KeyError, match="torso"):
        ForceAdversary(hopper(), ["no_such_body"])
    with pytest.raises(ValueError, match="axes"):
        ForceAdversary(hopper(), ["torso"], axes="xw")
    with pytest.raises(TypeError, match="MuJoCo"):
        ForceAdversary(pendulum(), ["torso"])
