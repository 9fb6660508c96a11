"""Uncertainty sets: RRLS's exact ranges and grid points, the parameter names of every task, and the contact-friction
fact the module documents."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

import tasks.legged  # noqa: F401 -- registers go1-flat
import tasks.manipulation  # noqa: F401 -- registers arm-push, arm-peg
import tasks.rrls  # noqa: F401
from rsl_rl.registry import get_task
from tasks.uncertainty import ForceSet, UncertaintySet, force_set, grid, set_names, uncertainty_set
from tasks.wrappers.params import ModifiedParams

# RRLS's bounds as its code has them (rrls/envs/*.py, ``*ParamsBound``), dimension order included.
RRLS_SETS = {
    "hopper": [{"worldfriction": (0.1, 3.0)}, {"torsomass": (0.1, 3.0)}, {"thighmass": (0.1, 4.0)}],
    "walker2d": [{"worldfriction": (0.1, 4.0)}, {"torsomass": (0.1, 5.0)}, {"thighmass": (0.1, 6.0)}],
    "ant": [{"torsomass": (0.1, 3.0)}, {"frontleftlegmass": (0.01, 3.0)}, {"frontrightlegmass": (0.01, 3.0)}],
    "inverted-pendulum": [{"polemass": (1.0, 31.0)}, {"cartmass": (1.0, 11.0)}],
}
RRLS_EXPLICIT = {
    ("halfcheetah", "1d"): {"worldfriction": (0.1, 3.0)},  # 3 here, 4 in the 2-D and 3-D sets
    ("halfcheetah", "2d"): {"worldfriction": (0.1, 4.0), "torsomass": (0.1, 7.0)},
    ("halfcheetah", "3d"): {"worldfriction": (0.1, 4.0), "torsomass": (0.1, 7.0), "backthighmass": (0.1, 3.0)},
    ("humanoid-standup", "1d"): {"torsomass": (0.1, 16.0)},
    ("humanoid-standup", "2d"): {"torsomass": (0.1, 16.0), "rightfootmass": (0.1, 8.0)},
    ("humanoid-standup", "3d"): {"torsomass": (0.1, 16.0), "leftthighmass": (0.1, 5.0), "rightfootmass": (0.1, 8.0)},
}
for _task, _dims in RRLS_SETS.items():
    for _d in range(1, len(_dims) + 1):
        RRLS_EXPLICIT[(_task, f"{_d}d")] = {k: v for dim in _dims[:_d] for k, v in dim.items()}


def _bodies(*names: str) -> dict[str, tuple[str, list[int]]]:
    """``body_mass`` rows 1, 2, ... in RRLS's ``change_params`` numbering ("" skips a row RRLS has no name for here)."""
    return {n: ("body_mass", [i]) for i, n in enumerate(names, 1) if n}


# RRLS's model indices: (field, rows) each name writes (rrls/envs/*.py ``change_params``); halfcheetah's
# worldfriction writes every geom's sliding friction, Hopper's and Walker2d's the floor's (geom 0).
FLOOR = {"worldfriction": ("geom_friction", [0])}
LEGS = ("thighmass", "legmass", "footmass")
RRLS_INDEX = {
    "hopper": FLOOR | _bodies("torsomass", *LEGS),
    "walker2d": FLOOR | _bodies("torsomass", *LEGS, "leftthighmass", "leftlegmass", "leftfootmass"),
    "ant": _bodies(
        *("torsomass", "frontleftlegmass", "frontleftlegauxmass", "", "frontrightlegmass", "frontrightlegauxmass"),
        *("", "backleftlegmass", "backleftlegauxmass", "", "backrightlegmass", "backrightlegauxmass"),
    ),
    "halfcheetah": {"worldfriction": ("geom_friction", list(range(9)))}
    | _bodies(
        *("torsomass", "backthighmass", "backshinmass", "backfootmass"),
        *("forwardthighmass", "forwardshinmass", "forwardfootmass"),
    ),
    "humanoid-standup": _bodies(
        *("torsomass", "lwaistmass", "pelvismass", "rightthighmass", "rightshinmass", "rightfootmass"),
        *("leftthighmass", "leftshinmass", "leftfootmass", "rightupperarmmass", "rightlowerarmmass"),
        *("leftupperarmmass", "leftlowerarmmass"),
    ),
    "inverted-pendulum": _bodies("cartmass", "polemass"),
}


def build(task: str, num_envs: int = 2) -> Any:
    spec = get_task(task)
    cfg = spec.env_cfg_for("ppo")
    cfg.num_envs = num_envs
    return spec.build(cfg, device="cpu", seed=0)


def rrls_grid(bounds: dict[str, tuple[float, float]], points: int = 10) -> np.ndarray:
    """rrls/evaluate.py's generate_evaluation_set, its formula as RRLS writes it."""
    axes = [np.arange(lo, hi, (hi - lo) / points).tolist() for lo, hi in bounds.values()]
    return np.array(list(itertools.product(*axes)))


@pytest.mark.parametrize(("task", "name"), sorted(RRLS_EXPLICIT))
def test_sets_and_grids_are_rrls_exactly(task: str, name: str) -> None:
    uset = uncertainty_set(task, name)
    expected = RRLS_EXPLICIT[(task, name)]
    assert uset.bounds == expected and uset.names == list(expected)  # dimension order too
    names, values = grid(uset)
    assert names == list(expected)
    assert values.dtype == torch.float64 and values.shape == (10 ** len(expected), len(expected))
    assert np.array_equal(values.numpy(), rrls_grid(expected))  # bit-exact


def test_grid_landmarks_and_inclusive() -> None:
    _, values = grid(uncertainty_set("hopper", "2d"))
    assert values[:, 1].max().item() == pytest.approx(2.71)  # the upper bound 3 is never evaluated
    assert values[:, 0].min().item() == pytest.approx(0.1)
    assert grid(uncertainty_set("hopper", "3d"))[1].shape == (1000, 3)
    assert uncertainty_set("hopper", "2d").bounds["torsomass"][1] < 3.665  # RRLS's nominal mass is outside its set
    _, inclusive = grid(uncertainty_set("walker2d", "1d"), points=5, inclusive=True)
    assert np.array_equal(inclusive[:, 0].numpy(), np.linspace(0.1, 4.0, 5))
    _, two = grid(uncertainty_set("ant", "2d"), points=2)
    assert np.allclose(two.numpy(), [[0.1, 0.01], [0.1, 1.505], [1.55, 0.01], [1.55, 1.505]])  # product order


def test_every_set_has_ten_points_per_dimension() -> None:
    for task in ("hopper", "walker2d", "ant", "halfcheetah", "humanoid-standup", "inverted-pendulum", "go1-flat",
                 "arm-push", "arm-peg"):  # fmt: skip
        for name in set_names(task):
            if name != "force":
                uset = uncertainty_set(task, name)
                assert grid(uset)[1].shape[0] == 10 ** len(uset.bounds), (task, name)


def test_force_sets() -> None:
    expected = {
        "hopper": ("foot",),
        "walker2d": ("leg", "foot_left"),
        "ant": ("torso", "front_left_leg", "front_right_leg"),
        "halfcheetah": ("torso", "bfoot", "ffoot"),
        "humanoid-standup": ("torso", "right_thigh", "left_foot"),
        "inverted-pendulum": ("pole",),
    }
    for task, bodies in expected.items():
        fs = force_set(task)
        assert isinstance(fs, ForceSet) and fs.bodies == bodies and fs.max_force == 3.0
        env = build(task, 1)
        for body in bodies:
            env.sim.body_id(body)  # raises if the model lacks it


def test_errors_name_the_sets() -> None:
    with pytest.raises(KeyError, match="its uncertainty sets: 1d, 2d, 3d"):
        uncertainty_set("hopper", "4d")
    with pytest.raises(KeyError, match="its uncertainty sets: 1d, 2d"):
        uncertainty_set("inverted-pendulum", "force")
    with pytest.raises(KeyError, match="'pendulum' has no uncertainty sets; tasks with sets: hopper"):
        uncertainty_set("pendulum", "1d")
    with pytest.raises(KeyError, match="no force set"):
        force_set("go1-flat")
    with pytest.raises(ValueError, match="points"):
        grid(UncertaintySet("x", {"a": (0.0, 1.0)}), points=0)


@pytest.mark.parametrize("task", sorted(RRLS_INDEX))
def test_aliases_write_rrls_model_indices(task: str) -> None:
    """Each RRLS name, set in world 0 only, changes exactly the (field, rows) RRLS's code writes."""
    env = ModifiedParams(build(task), list(RRLS_INDEX[task]))
    sim = env.unwrapped.sim
    first = torch.tensor([True, False])
    for name, (field, rows) in RRLS_INDEX[task].items():
        before = sim.params[field].clone()
        env.set_params({name: 0.123}, mask=first)
        after = sim.params[field]
        changed = (after != before).reshape(2, after.shape[1], -1).any(-1)
        assert not changed[1].any(), name  # the other world keeps its values
        assert torch.nonzero(changed[0]).flatten().tolist() == rows, name
        col = after[0, rows, 0] if after.dim() == 3 else after[0, rows]
        assert torch.allclose(col, torch.tensor(0.123, dtype=after.dtype)), name
        assert env.get_params()[name][0].item() == pytest.approx(0.123) and name in env.nominal_params()


def test_our_tasks_declare_every_set_parameter() -> None:
    """go1 and the arm tasks resolve all their set names to per-world parameters, with the model's nominal values."""
    nominal = {
        "go1-flat": {"friction": 0.8, "added_mass": 0.0, "motor_strength": 1.0},
        "arm-push": {"blockmass": 0.2, "tablefriction": 1.0},
        "arm-peg": {"pegmass": 0.05, "holefriction": 1.0},
    }
    for task, values in nominal.items():
        names = list(dict.fromkeys(n for s in set_names(task) for n in uncertainty_set(task, s).names))
        env = ModifiedParams(build(task, 2), names)
        assert env.nominal_params() == pytest.approx(values), task
        target = {
            n: torch.tensor([lo, hi]) for n, (lo, hi) in uncertainty_set(task, set_names(task)[-1]).bounds.items()
        }
        env.set_params(target)
        for n, v in env.get_params().items():
            assert torch.allclose(v.float(), target[n]), (task, n)


def test_go1_feet_friction_is_every_foot() -> None:
    env = ModifiedParams(build("go1-flat", 2), ["friction"])
    env.set_params({"friction": torch.tensor([0.3, 1.4])})
    task = env.unwrapped
    feet = task.sim.params["geom_friction"][:, task.foot_geom_ids, 0]
    assert torch.allclose(feet.float(), torch.tensor([[0.3] * 4, [1.4] * 4]))


def test_floor_friction_below_the_foot_friction_changes_nothing() -> None:
    """The documented MuJoCo fact: a contact's friction is the max of its geoms' (Hopper's foot geom: 2.0), so while
    only the foot touches, floor frictions 0.1 and 1.0 give identical physics and 2.5 does not."""
    spec = get_task("hopper")
    cfg = spec.env_cfg_for("ppo")
    cfg.num_envs, cfg.reset_noise_scale = 3, 0.0
    env = ModifiedParams(spec.build(cfg, device="cpu", seed=0), ["worldfriction"])
    env.reset()
    env.set_params({"worldfriction": torch.tensor([0.1, 1.0, 2.5])})
    sim = env.unwrapped.sim
    assert float(env.unwrapped.model.geom_friction[sim.geom_id("foot_geom"), 0]) == 2.0
    generator = torch.Generator().manual_seed(0)
    qpos = []
    for _ in range(50):
        sim.ctrl.copy_((torch.rand(1, 3, generator=generator) * 2 - 1).expand(3, -1).to(sim.ctrl.dtype))
        sim.step()
        qpos.append(sim.qpos.clone())
    q = torch.stack(qpos)
    assert torch.equal(q[:, 0], q[:, 1])  # 0.1 and 1.0: bit-identical
    assert (q[:, 2] - q[:, 1]).abs().max() > 1e-3  # 2.5 > 2.0: the foot's contact changes
