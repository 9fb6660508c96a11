"""Uncertainty sets per task: the parameter ranges a robust policy is trained on and evaluated over (RRLS's protocol).

An :class:`UncertaintySet` bounds a few physical parameters, named as the task's ``param_aliases`` name them (for the
six gymnasium tasks, RRLS's own names: ``worldfriction``, ``torsomass`` ...). :func:`grid` spreads a set into the points
``rsl-rl eval-robust`` evaluates: RRLS's ``np.arange(lo, hi, (hi − lo)/points)`` per dimension (the upper bound is
never evaluated; Hopper's torso mass [0.1, 3] tops out at 2.71) in ``itertools.product`` order, so our worst-case and
average returns are taken over RRLS's exact points. A :class:`ForceSet` is RRLS's RARL set: an adversary pushes the
named bodies with x and y world forces within ±``max_force`` N.

The RRLS sets are reproduced as RRLS's code (commit 0c43dc9, ``rrls/envs/*.py``) has them, quirks included:

* HalfCheetah's friction bound is 3 in the 1-D set and 4 in the 2-D and 3-D sets, and its ``worldfriction`` sets the
  sliding friction of every geom (``geom_friction[:, 0]``), not only the floor's as Hopper's and Walker2d's do.
* Hopper's nominal torso mass (3.665 kg) lies outside its own set [0.1, 3]; the nominal point is evaluated apart.
* HumanoidStandup's 3-D set orders its dimensions torso, left thigh, right foot (its 2-D set adds the right foot).
* The planar tasks' y force is out of their plane (no joint moves along y), so only the x part of a force acts there.

Contact friction, measured here (MuJoCo 3, the gymnasium models): a contact's friction is the larger of its two geoms'
(MuJoCo's default for geoms of equal priority), so the floor's value acts only where it exceeds the touching geom's.
Hopper's foot geom has friction 2.0, its other geoms 0.9; Walker2d's feet 1.9, the rest 0.9. Seven Hopper worlds driven
from one state by the same 300 random actions: floor frictions 0.1, 0.5 and 0.9 gave bit-identical trajectories (max
|Δqpos| = 0); 1.0, 1.5 and 2.0 differed from them (0.19, 0.42, 0.67) only once the body touched the ground; over the
first 50 steps, while only the foot touched it, every floor friction up to 2.0 was identical and only 2.5 differed
(0.017). Walker2d alike: 0.1, 0.49, 0.88 and 0.9 identical; up to 1.9 identical while only the feet touch. So on RRLS's
Hopper grid the first three frictions (0.1, 0.39, 0.68) are one and the same environment, and for a hopper that touches
the floor with its foot only, all seven below 2.0 are the nominal one: only 2.13, 2.42 and 2.71 change its physics.
We reproduce the sets faithfully and leave the physics as it is.

Our own tasks' sets (ranges chosen here, the sources named per set): ``go1-flat``/``go1-rough`` widen the training
randomisation of ``reference/legged.md`` and ``tasks/legged/events.py``; the arm tasks vary the object's mass and the
friction of the surface it slides or fits against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class UncertaintySet:
    """Ranges ``[lo, hi]`` of physical parameters (names: the task's ``param_aliases``)."""

    name: str
    """``1d``, ``2d``, ``3d`` or another name the task's table uses."""
    bounds: dict[str, tuple[float, float]]
    """Parameter -> (lower, upper) bound, in the order of the grid's dimensions."""
    description: str = ""
    """Where the numbers come from."""

    @property
    def names(self) -> list[str]:
        return list(self.bounds)


@dataclass(frozen=True)
class ForceSet:
    """RRLS's RARL set: x and y world forces on ``bodies``, each within ±``max_force`` N."""

    name: str
    bodies: tuple[str, ...]
    """Body names of the task's model."""
    max_force: float
    """Bound of each force component, N."""
    description: str = ""


_RRLS = "RRLS rrls/envs/{}.py (commit 0c43dc9)"


def _rrls(module: str, *dims: tuple[str, float, float], force: tuple[str, ...] = ()) -> dict[str, object]:
    """RRLS's nested 1-D/2-D/3-D sets (each adds one dimension to the previous) and its force set."""
    source = _RRLS.format(module)
    table: dict[str, object] = {}
    for d in range(1, len(dims) + 1):
        table[f"{d}d"] = UncertaintySet(f"{d}d", {n: (lo, hi) for n, lo, hi in dims[:d]}, source)
    if force:
        table["force"] = ForceSet("force", force, 3.0, f"{source}, RARL; x and y components")
    return table


_GO1 = {
    "1d": UncertaintySet(
        "1d",
        {"friction": (0.2, 1.6)},
        "foot friction: training draws U[0.5, 1.25] (legged_gym; events.py), mjlab U[0.3, 1.5] (legged.md §3); widened",
    ),
    "2d": UncertaintySet(
        "2d",
        {"friction": (0.2, 1.6), "added_mass": (-1.0, 4.0)},
        "+ base payload, kg: training U[-1, 2] (events.py), legged_gym ±1 (ANYmal ±5); widened upwards",
    ),
    "3d": UncertaintySet(
        "3d",
        {"friction": (0.2, 1.6), "added_mass": (-1.0, 4.0), "motor_strength": (0.7, 1.3)},
        "+ motor torque multiplier: training U[0.9, 1.1] (events.py); widened to ±30 %",
    ),
}

_SETS: dict[str, dict[str, object]] = {
    "hopper": _rrls(
        "hopper", ("worldfriction", 0.1, 3.0), ("torsomass", 0.1, 3.0), ("thighmass", 0.1, 4.0), force=("foot",)
    ),
    "walker2d": _rrls(
        "walker",
        ("worldfriction", 0.1, 4.0),
        ("torsomass", 0.1, 5.0),
        ("thighmass", 0.1, 6.0),
        force=("leg", "foot_left"),
    ),
    "ant": _rrls(
        "ant",
        ("torsomass", 0.1, 3.0),
        ("frontleftlegmass", 0.01, 3.0),
        ("frontrightlegmass", 0.01, 3.0),
        force=("torso", "front_left_leg", "front_right_leg"),
    ),
    "halfcheetah": {
        # RRLS's 1-D friction bound (3) differs from its 2-D/3-D one (4): kept.
        "1d": UncertaintySet("1d", {"worldfriction": (0.1, 3.0)}, _RRLS.format("half_cheetah")),
        **{
            k: v
            for k, v in _rrls(
                "half_cheetah",
                ("worldfriction", 0.1, 4.0),
                ("torsomass", 0.1, 7.0),
                ("backthighmass", 0.1, 3.0),
                force=("torso", "bfoot", "ffoot"),
            ).items()
            if k != "1d"
        },
    },
    "humanoid-standup": {
        **_rrls("humanoid", ("torsomass", 0.1, 16.0), ("rightfootmass", 0.1, 8.0)),
        # RRLS's 3-D set orders its dimensions torso, left thigh, right foot.
        "3d": UncertaintySet(
            "3d",
            {"torsomass": (0.1, 16.0), "leftthighmass": (0.1, 5.0), "rightfootmass": (0.1, 8.0)},
            _RRLS.format("humanoid"),
        ),
        "force": ForceSet("force", ("torso", "right_thigh", "left_foot"), 3.0, _RRLS.format("humanoid") + ", RARL"),
    },
    "inverted-pendulum": _rrls("pendulum", ("polemass", 1.0, 31.0), ("cartmass", 1.0, 11.0), force=("pole",)),
    "go1-flat": dict(_GO1),
    "go1-rough": dict(_GO1),
    "arm-push": {
        "1d": UncertaintySet("1d", {"blockmass": (0.05, 1.0)}, "block mass, kg (nominal 0.2)"),
        "2d": UncertaintySet(
            "2d",
            {"blockmass": (0.05, 1.0), "tablefriction": (0.5, 1.5)},
            "+ the table's friction (nominal 1.0), which sets the block's sliding: a contact takes the larger of its "
            "geoms' frictions, so the block's own (0.5) would act only above 1.0",
        ),
    },
    "arm-peg": {
        "1d": UncertaintySet("1d", {"pegmass": (0.05, 1.0)}, "peg mass (a payload on the flange), kg (nominal 0.05)"),
        "2d": UncertaintySet(
            "2d",
            {"pegmass": (0.05, 1.0), "holefriction": (0.8, 2.0)},
            "+ the hole walls' friction (nominal 1.0; the peg's own 0.8 acts only above the walls')",
        ),
    },
}


def set_names(task: str) -> list[str]:
    """Names of the sets ``task`` has (empty for a task without any)."""
    return list(_SETS.get(task, {}))


def _lookup(task: str, name: str, kind: type) -> object:
    """The set ``name`` of ``task`` if it is a ``kind``; errors name the task's sets of that kind."""
    if task not in _SETS:
        raise KeyError(f"task '{task}' has no uncertainty sets; tasks with sets: {', '.join(_SETS)}")
    table = _SETS[task]
    if not isinstance(table.get(name), kind):
        what = "uncertainty set" if kind is UncertaintySet else "force set"
        known = [k for k, v in table.items() if isinstance(v, kind)]
        raise KeyError(f"task '{task}' has no {what} '{name}'; its {what}s: {', '.join(known) or 'none'}")
    return table[name]


def uncertainty_set(task: str, name: str) -> UncertaintySet:
    """The parameter set ``name`` (``1d``, ``2d``, ``3d`` ...) of the registered task ``task``."""
    found = _lookup(task, name, UncertaintySet)
    assert isinstance(found, UncertaintySet)
    return found


def force_set(task: str, name: str = "force") -> ForceSet:
    """RRLS's RARL force set of ``task``."""
    found = _lookup(task, name, ForceSet)
    assert isinstance(found, ForceSet)
    return found


def grid(uset: UncertaintySet, points: int = 10, inclusive: bool = False) -> tuple[list[str], torch.Tensor]:
    """The set's evaluation points: ``(names, values [P, d])`` (float64), dimensions in ``itertools.product`` order.

    Per dimension ``np.arange(lo, hi, (hi − lo)/points)``, RRLS's rule (``rrls/evaluate.py``): the upper bound is
    excluded, and, as np.arange does, a step that floating point leaves a hair short of dividing the range can give
    ``points + 1`` values (none of the sets here does at 10 points). ``inclusive``: ``np.linspace(lo, hi, points)``,
    both bounds included.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    axes = [
        np.linspace(lo, hi, points) if inclusive else np.arange(lo, hi, (hi - lo) / points)
        for lo, hi in uset.bounds.values()
    ]
    values = np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, len(axes))
    return uset.names, torch.from_numpy(values)
