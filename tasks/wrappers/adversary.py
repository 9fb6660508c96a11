"""Adversaries that act through the action (issue 13): a second player's columns appended to the agent's action.

Convention for every adversarial wrapper here (and ``action_robust.py``): a wrapper's action is ``[inner action,
adversary (adversary_dims)]`` -- it takes the LAST ``adversary_dims`` columns of its own action and passes the rest
inward. A stack therefore orders its adversary columns innermost first, after the protagonist's
:func:`protagonist_actions` columns::

    ForceAdversary(DynamicAdversary(task, bounds), ["foot"])
    action = [task action (A) | dynamic adversary (len(bounds)) | force adversary (len(bodies)·len(axes))]

The adversary's reward is ``extras["adversary_reward"] = −reward`` (zero-sum, RRLS's ``adversarial_reward``).
``action_bounds()`` is the inner bounds followed by ``[−1, 1]`` per adversary column; ``deployment_spec()`` stays the
inner env's: a deployed policy is the protagonist.

* :class:`DynamicAdversary` -- RRLS's ``DynamicAdversarial`` for batches: the adversary picks physical parameters every
  step, ``a ∈ [−1, 1] ↦ p = ((1 − a)·lo + (1 + a)·hi) / 2`` (−1 → lo, +1 → hi, exact at both ends), applied before the
  inner step; each env's parameters go back to nominal when its episode starts.
* :class:`ForceAdversary` -- RARL (Pinto et al. 2017) as RRLS sets it up: RRLS has no force wrapper; its ``Force*``
  envs expose per-body force components (``torsoforce_x`` ...) as parameters written to ``xfrc_applied[body, 0:3]``
  (forces only, no torques; world frame, at the body's centre of mass), and its ``RARL`` bound sets give ±3 N on the
  x and y components, driven through ``DynamicAdversarial``. Here the same forces are one wrapper:
  ``F[body, axis] = max_force · clip(a, −1, 1)``, every step. Hopper and Walker2d are planar (x–z): a y force does
  nothing there, as in RRLS's sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult
from tasks.wrappers.base import Wrapper, unwrap
from tasks.wrappers.params import Parameter, resolve_param
from tasks.wrappers.randomization import ParamBounds

AXES = {"x": 0, "y": 1, "z": 2}


def protagonist_actions(env: Any) -> int:
    """Columns of a stack's action that belong to the agent: the task's own ``num_actions`` (the adversaries' columns
    follow them, innermost first)."""
    return unwrap(env).num_actions


def extended_bounds(env: Env, extra: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``env``'s action bounds followed by ``[−1, 1]`` for ``extra`` adversary columns (None if ``env`` has none)."""
    inner = env.action_bounds()
    if inner is None:
        return None
    low, high = inner
    ones = torch.ones(extra, dtype=low.dtype, device=low.device)
    return torch.cat((low, -ones)), torch.cat((high, ones))


def add_body_forces(sim: Any, bodies: torch.Tensor, axes: torch.Tensor, force: torch.Tensor) -> torch.Tensor:
    """Add ``force[N, k]`` to ``sim.xfrc_applied[:, bodies, axes]``; return the entries as they were, for
    :func:`restore_body_forces` after the step. Adding (not overwriting) lets several force wrappers act on the same
    body in any order; restoring exactly (not subtracting) leaves no rounding residue."""
    xfrc = sim.xfrc_applied
    before = xfrc[:, bodies, axes].clone()
    xfrc[:, bodies, axes] = before + force.to(xfrc.dtype)
    return before


def restore_body_forces(sim: Any, bodies: torch.Tensor, axes: torch.Tensor, before: torch.Tensor) -> None:
    sim.xfrc_applied[:, bodies, axes] = before


class DynamicAdversary(Wrapper):
    """An adversary that sets physical parameters every step (module docstring)."""

    def __init__(self, env: Env, bounds: ParamBounds) -> None:
        """``bounds``: ``{parameter: (lo, hi)}``, in the order of the adversary's columns (names as in
        :func:`~tasks.wrappers.params.resolve_param`)."""
        super().__init__(env)
        self.task = unwrap(env)
        if not bounds:
            raise ValueError("DynamicAdversary needs at least one parameter in bounds")
        self.params: dict[str, Parameter] = {}
        lows, highs, nominal = [], [], []
        for spec, (lo, hi) in bounds.items():
            param = resolve_param(env, spec)
            name = spec if isinstance(spec, str) else param.name
            if not lo <= hi:
                raise ValueError(f"bounds of '{name}': lo={lo} > hi={hi}; a parameter needs lo <= hi")
            param.read(self.task)  # resolve (and check) the name now
            self.params[name] = param
            lows.append(float(lo))
            highs.append(float(hi))
            nominal.append(param.nominal(self.task))
        self.adversary_names = tuple(self.params)
        self.adversary_dims = len(self.params)
        self.num_actions = env.num_actions + self.adversary_dims
        # float64: ±1 map to the bounds exactly in a float64 simulator (the warp backend rounds them to float32).
        f64 = {"dtype": torch.float64, "device": self.device}
        self.low, self.high = torch.tensor(lows, **f64), torch.tensor(highs, **f64)
        self.nominal = torch.tensor(nominal, **f64).expand(self.num_envs, -1)

    def unnormalize(self, adversary: torch.Tensor) -> torch.Tensor:
        """Adversary actions ``[N, d]`` → parameter values ``[N, d]``: clip to [−1, 1], −1 → lo, +1 → hi."""
        # A non-finite adversary action would put NaN into the model: NaN → the midpoint, ±inf → the bounds.
        a = torch.nan_to_num(adversary.to(torch.float64), nan=0.0).clamp(-1.0, 1.0)
        return ((1.0 - a) * self.low + (1.0 + a) * self.high) / 2.0

    def _write(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        for i, param in enumerate(self.params.values()):
            param.write(self.task, values[:, i], mask)

    def get_params(self) -> dict[str, torch.Tensor]:
        """Current values ``{name: [N]}``."""
        return {name: p.read(self.task) for name, p in self.params.items()}

    def reset(self) -> TensorDict:
        self._write(self.nominal)
        return self.env.reset()

    def reset_envs(self, mask: torch.Tensor) -> None:
        inner: Any = self.env  # a BatchedTask's (or a wrapper's) masked reset, beyond the Env contract
        inner.reset_envs(mask)
        self._write(self.nominal, mask)

    def step(self, actions: torch.Tensor) -> StepResult:
        d = self.adversary_dims
        values = self.unnormalize(actions[:, -d:])
        self._write(values)  # every step, before the physics (RRLS: set_params, then step)
        obs, reward, terminated, truncated, extras = self.env.step(actions[:, :-d])
        self._write(self.nominal, terminated | truncated)  # a new episode starts from the nominal model
        extras = dict(extras)
        extras["adversary_reward"] = -reward
        logs = {f"adversary/{name}": values[:, i].mean() for i, name in enumerate(self.adversary_names)}
        extras["log"] = {**(extras.get("log") or {}), **logs}
        return obs, reward, terminated, truncated, extras

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return extended_bounds(self.env, self.adversary_dims)

    def state_dict(self) -> dict[str, Any]:
        """The inner env's state (the parameter values live there); the wrapper itself holds none."""
        return {"env": self.env.state_dict(), "wrapper": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])


class ForceAdversary(Wrapper):
    """RARL's adversary: forces on chosen bodies, ``max_force · clip(a, −1, 1)`` per (body, axis), every step."""

    def __init__(self, env: Env, bodies: Sequence[str], max_force: float = 3.0, axes: str = "xy") -> None:
        """``bodies``: names of the pushed bodies; ``max_force``: newtons at |a| = 1; ``axes``: world axes pushed
        along (``"xy"`` as RRLS). Columns: body-major, ``[body0 x, body0 y, body1 x, ...]``."""
        super().__init__(env)
        self.task = unwrap(env)
        sim = getattr(self.task, "sim", None)
        if sim is None:
            raise TypeError(f"ForceAdversary needs a MuJoCo task (with .sim); got {type(self.task).__name__}")
        if not bodies or not axes or any(a not in AXES for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"ForceAdversary needs bodies and distinct axes from 'xyz'; got {list(bodies)}, {axes!r}")
        if len(set(bodies)) != len(bodies):
            raise ValueError(f"ForceAdversary bodies must be distinct; got {list(bodies)}")
        if max_force < 0:
            raise ValueError(f"max_force must be >= 0, got {max_force}")
        ids = [sim.body_id(b) for b in bodies]
        self.adversary_names = tuple(f"{b}_force_{a}" for b in bodies for a in axes)
        self.adversary_dims = len(self.adversary_names)
        self.num_actions = env.num_actions + self.adversary_dims
        self.max_force = float(max_force)
        self.body_index = torch.tensor([i for i in ids for _ in axes], device=sim.device)
        self.axis_index = torch.tensor([AXES[a] for _ in ids for a in axes], device=sim.device)

    def forces(self, adversary: torch.Tensor) -> torch.Tensor:
        """Adversary actions ``[N, k]`` → forces ``[N, k]`` in newtons."""
        return torch.nan_to_num(adversary, nan=0.0).clamp(-1.0, 1.0) * self.max_force  # no NaN reaches the physics

    def step(self, actions: torch.Tensor) -> StepResult:
        d, sim = self.adversary_dims, self.task.sim
        force = self.forces(actions[:, -d:])
        # The force acts for this env step only and is taken off after it: an env that resets starts its episode
        # without it, and the next step applies the next action's force.
        before = add_body_forces(sim, self.body_index, self.axis_index, force)
        obs, reward, terminated, truncated, extras = self.env.step(actions[:, :-d])
        restore_body_forces(sim, self.body_index, self.axis_index, before)
        extras = dict(extras)
        extras["adversary_reward"] = -reward
        extras["log"] = {**(extras.get("log") or {}), "adversary/force_norm": force.norm(dim=-1).mean()}
        return obs, reward, terminated, truncated, extras

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return extended_bounds(self.env, self.adversary_dims)

    def state_dict(self) -> dict[str, Any]:
        """The inner env's state; no force outlives a step, so the wrapper holds none."""
        return {"env": self.env.state_dict(), "wrapper": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
