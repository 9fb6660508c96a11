"""ModifiedParams on the real hopper: values round-trip, act now or at each env's next reset, and reach the physics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from tasks.wrappers import ModelParam, ModifiedParams

TORSO, FLOOR = "body_mass:torso", "geom_friction:floor:0"


def test_set_get_round_trip_per_env(hopper: Callable[..., Any]) -> None:
    env = ModifiedParams(hopper(), [TORSO, FLOOR])
    nominal = env.nominal_params()
    assert nominal[TORSO] == pytest.approx(3.6651914291880923) and nominal[FLOOR] == pytest.approx(1.0)
    masses = torch.arange(1, 9, dtype=torch.float64) * 0.5
    env.set_params({TORSO: masses, FLOOR: 0.25})
    got = env.get_params()
    assert torch.equal(got[TORSO], masses) and torch.equal(got[FLOOR], torch.full((8,), 0.25, dtype=torch.float64))
    # Only the addressed entries changed: the thigh's mass and the floor's torsional friction stay the model's.
    sim = env.sim
    assert torch.equal(sim.params["body_mass"][:, 2], sim.default_param("body_mass")[2].expand(8))
    assert torch.equal(sim.params["geom_friction"][:, 0, 1], sim.default_param("geom_friction")[0, 1].expand(8))
    _, _, _, _, extras = env.step(torch.zeros(8, 3))
    assert torch.equal(extras["params"][TORSO], masses)


def test_scale_and_add_modes(hopper: Callable[..., Any]) -> None:
    task = hopper()
    nominal = float(task.sim.default_param("body_mass")[1])
    scale, add = ModelParam("body_mass", "torso", mode="scale"), ModelParam("body_mass", "thigh", mode="add")
    env = ModifiedParams(task, [scale, add])
    env.set_params({scale.name: 2.0, add.name: 1.5})
    assert torch.allclose(task.sim.params["body_mass"][:, 1], torch.full((8,), 2 * nominal, dtype=torch.float64))
    assert torch.allclose(env.get_params()[scale.name], torch.full((8,), 2.0, dtype=torch.float64))
    assert torch.allclose(env.get_params()[add.name], torch.full((8,), 1.5, dtype=torch.float64))


def test_at_reset_values_act_only_from_each_envs_next_reset(hopper: Callable[..., Any]) -> None:
    """Three rounds: each round's values appear in an env exactly when that env resets (2nd and 3rd resets too)."""
    env = ModifiedParams(hopper(max_steps=4), [TORSO])
    env.reset()
    g = torch.Generator().manual_seed(0)
    current = env.get_params()[TORSO].clone()
    for round_value in (1.0, 2.0, 3.0):
        mask = torch.ones(8, dtype=torch.bool)
        mask[0] = round_value != 2.0  # env 0 skips the second round: it keeps the first round's value
        env.set_params({TORSO: round_value}, mask=mask, at_reset=True)
        assert torch.equal(env.get_params()[TORSO], current), "at_reset values must not act before a reset"
        pending = mask.clone()
        for _ in range(4):
            _, _, terminated, truncated, _ = env.step(0.3 * torch.randn(8, 3, generator=g))
            done = terminated | truncated
            current = torch.where(done & pending, round_value, current)
            pending &= ~done
            assert torch.equal(env.get_params()[TORSO], current)
        assert not pending.any(), "every env resets within max_episode_steps"
    assert current[0] == 3.0 and (current[1:] == 3.0).all()


def test_a_heavier_torso_changes_the_physics(hopper: Callable[..., Any]) -> None:
    base, heavy = hopper(), ModifiedParams(hopper(), [TORSO])
    heavy.set_params({TORSO: torch.where(torch.arange(8) < 4, 8.0, 3.6651914291880923).double()})
    actions = 0.5 * torch.randn(15, 8, 3, generator=torch.Generator().manual_seed(1))
    for a in actions:
        obs_base, *_ = base.step(a)
        obs_heavy, *_ = heavy.step(a)
    differs = (obs_base["policy"] - obs_heavy["policy"]).abs().amax(dim=-1) > 1e-6
    assert differs[:4].all() and not differs[4:].any()
    # MuJoCo's derived constants follow: the robot's subtree mass grew by the added mass, per world.
    batch = getattr(heavy.sim.backend, "batch", None)
    if batch is None:
        pytest.skip("this backend exposes no per-world model")
    total = [float(batch.get_model(i).body_subtreemass[1]) for i in range(8)]
    nominal_total = float(heavy.sim.model.body_subtreemass[1])
    assert total[0] == pytest.approx(nominal_total + 8.0 - 3.6651914291880923) and total[5] == pytest.approx(
        nominal_total
    )


def test_bad_names_say_what_is_allowed(hopper: Callable[..., Any], pendulum: Callable[..., Any]) -> None:
    task = hopper()
    with pytest.raises(KeyError, match="torso"):
        ModifiedParams(task, ["body_mass:no_such_body"])
    with pytest.raises(KeyError, match="body_mass"):
        ModifiedParams(task, ["dof_damping:thigh_joint"])  # not varied per world by the hopper
    with pytest.raises(KeyError, match="<field>:<element>"):
        ModifiedParams(task, ["no_such_alias"])
    with pytest.raises(ValueError, match="column"):
        ModifiedParams(task, ["geom_friction:floor:7"])
    env = ModifiedParams(task, [TORSO])
    with pytest.raises(KeyError, match="managed"):
        env.set_params({FLOOR: 1.0})
    with pytest.raises(TypeError, match="no simulator"):
        ModifiedParams(pendulum(), [TORSO])


def test_a_declared_alias_addresses_the_same_model_entry(hopper: Callable[..., Any]) -> None:
    task = hopper()
    if "torsomass" not in getattr(task, "param_aliases", {}):
        pytest.skip("the hopper declares no RRLS aliases")
    env = ModifiedParams(task, ["torsomass", TORSO])
    env.set_params({"torsomass": 2.5})
    assert torch.equal(env.get_params()[TORSO], torch.full((8,), 2.5, dtype=torch.float64))
    with pytest.raises(KeyError, match="torsomass"):  # the error lists the task's names
        ModifiedParams(task, ["torso_mass"])
