"""Perturbations for tasks that lack them (issue 13): observation noise, action delay and pushes, as wrappers.

Each keeps per-env state on the device, redrawn at each reset of that env (at :meth:`reset` for all, after a step for
the envs it ended, at construction for the episodes already running), from its own generator, saved with that state
by :meth:`state_dict` as ``{"env": inner state, "wrapper": own state}`` for an exact resume.

* :class:`ObservationNoise`: ``o' = o + b + σ·ε``, ``ε ~ N(0, 1)`` per entry and step, bias ``b ~ U(−β, β)`` per env
  and entry, constant within an episode (a miscalibrated sensor). The observation an ended env reached
  (``extras["final_obs"]``) gets the same step's ``σ·ε`` with its ending episode's bias: a value bootstrapped from it
  sees the kind of input the policy saw, and for the envs that did not end it equals the returned observation, as
  the contract has it. Float groups only (name only what the critic should not see clean).
* :class:`ActionDelay`: the action acts ``k`` env steps later, ``k ~ U{lo … hi}`` per env and episode, through the
  ring buffer of ``controllers/actuator.py``. A new episode's first action fills its env's history, so the env acts
  with it until its own delayed actions arrive (zeros would be an arbitrary command, not a held one).
* :class:`PushImpulse`: a shove every ``U(interval_s)`` seconds per env: a velocity change ``Δv``, ``|Δv| ~
  U(velocity)`` in a random direction of the plane of ``axes``, delivered as a force ``F = m·Δv / T`` on the body's
  centre of mass for one env step ``T`` (``m`` the body's subtree mass, from the world's own masses when the task
  varies them). Approximation: this gives the subtree momentum ``m·Δv`` only when nothing else acts on it; contacts,
  the joint to the body's parent and the rotation the push induces take their share, and the push lasts ``T``, not
  an instant (legged_gym's pushes set the velocity directly; a force works on every backend and is physical).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict

from controllers.actuator import ActionDelay as DelayRing
from rsl_rl.env import Env, StepResult
from tasks.task import load_tensors
from tasks.wrappers.adversary import AXES, add_body_forces, restore_body_forces
from tasks.wrappers.base import Wrapper, unwrap


def _generator(device: torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _per_group(value: float | Mapping[str, float], groups: tuple[str, ...], what: str) -> dict[str, float]:
    """``{group: value}``: one float for all groups, or a mapping (omitted groups get 0)."""
    if not isinstance(value, Mapping):
        values = dict.fromkeys(groups, float(value))
    else:
        unknown = set(value) - set(groups)
        if unknown:
            raise KeyError(f"{what} names groups {sorted(unknown)} that are not perturbed; groups: {list(groups)}")
        values = {g: float(value.get(g, 0.0)) for g in groups}
    for g, v in values.items():
        if v < 0:
            raise ValueError(f"{what} of group '{g}' must be >= 0, got {v}")
    return values


class ObservationNoise(Wrapper):
    """Gaussian noise per step plus a per-episode bias on float observation groups (module docstring)."""

    def __init__(
        self,
        env: Env,
        std: float | Mapping[str, float],
        bias: float | Mapping[str, float] = 0.0,
        groups: tuple[str, ...] = ("policy",),
        seed: int = 0,
    ) -> None:
        """``std``: σ per group (or one for all); ``bias``: β, the bias's half-range; ``groups``: the perturbed
        observation groups (a mapping may omit some: 0 there); ``seed``: of the wrapper's generator."""
        super().__init__(env)
        obs = env.get_observations()
        for g in groups:
            if g not in obs:
                raise KeyError(f"ObservationNoise: no observation group '{g}'; groups: {list(obs.keys())}")
            if not obs[g].is_floating_point():
                raise TypeError(
                    f"ObservationNoise: group '{g}' is {obs[g].dtype}; noise is added to float groups only "
                    "(leave image groups out of groups)"
                )
        self.groups = tuple(groups)
        self.std = _per_group(std, self.groups, "std")
        self.bias_range = _per_group(bias, self.groups, "bias")
        self.generator = _generator(self.device, seed)
        self.bias = {g: torch.zeros_like(obs[g]) for g in self.groups}
        self._draw_bias(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))

    def _draw_bias(self, mask: torch.Tensor) -> None:
        for g, beta in self.bias_range.items():
            if beta > 0:
                b = self.bias[g]
                u = torch.rand(b.shape, generator=self.generator, device=self.device, dtype=b.dtype)
                m = mask.view(-1, *([1] * (b.dim() - 1)))
                self.bias[g] = torch.where(m, beta * (2.0 * u - 1.0), b)

    def _noise(self) -> dict[str, torch.Tensor]:
        """This step's ``σ·ε`` per group (nothing drawn where σ = 0)."""
        out = {}
        for g, sigma in self.std.items():
            b = self.bias[g]
            if sigma > 0:
                out[g] = sigma * torch.randn(b.shape, generator=self.generator, device=self.device, dtype=b.dtype)
            else:
                out[g] = torch.zeros_like(b)
        return out

    def _perturb(self, obs: TensorDict, bias: dict[str, torch.Tensor], noise: dict[str, torch.Tensor]) -> TensorDict:
        out = obs.copy()  # shallow: the inner env's TensorDict stays clean
        for g in self.groups:
            out.set(g, obs[g] + bias[g] + noise[g])
        return out

    def reset(self) -> TensorDict:
        self._draw_bias(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._perturb(self.env.reset(), self.bias, self._noise())

    def reset_envs(self, mask: torch.Tensor) -> None:
        inner: Any = self.env  # a BatchedTask's (or a wrapper's) masked reset, beyond the Env contract
        inner.reset_envs(mask)
        self._draw_bias(mask)

    def get_observations(self) -> TensorDict:
        return self._perturb(self.env.get_observations(), self.bias, self._noise())

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = self.env.step(actions)
        noise, ending_bias = self._noise(), dict(self.bias)
        self._draw_bias(terminated | truncated)
        extras = dict(extras)
        if "final_obs" in extras:
            extras["final_obs"] = self._perturb(extras["final_obs"], ending_bias, noise)
        return self._perturb(obs, self.bias, noise), reward, terminated, truncated, extras

    def state_dict(self) -> dict[str, Any]:
        own = {"generator": self.generator.get_state(), "bias": {g: b.clone() for g, b in self.bias.items()}}
        return {"env": self.env.state_dict(), "wrapper": own}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        saved = state["wrapper"]["bias"]
        for g in self.groups:
            if g not in saved or tuple(saved[g].shape) != tuple(self.bias[g].shape):
                raise ValueError(f"ObservationNoise state: no bias of shape {tuple(self.bias[g].shape)} for '{g}'")
            self.bias[g] = saved[g].to(self.device, self.bias[g].dtype).clone()
        self.generator.set_state(state["wrapper"]["generator"].cpu())


class ActionDelay(Wrapper):
    """The action acts ``k`` env steps after it is given, ``k`` drawn per env and episode (module docstring)."""

    def __init__(self, env: Env, steps: int | tuple[int, int], seed: int = 0) -> None:
        """``steps``: a fixed delay, or the range ``(lo, hi)`` (both included) drawn from at each reset; ``seed``: of
        the wrapper's generator."""
        super().__init__(env)
        lo, hi = (steps, steps) if isinstance(steps, int) else steps
        if not 0 <= lo <= hi:
            raise ValueError(f"ActionDelay steps must satisfy 0 <= lo <= hi, got {steps}")
        self.steps = (int(lo), int(hi))
        self.generator = _generator(self.device, seed)
        self.ring = DelayRing(self.num_envs, self.num_actions, hi, self.device)
        self.fresh = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        """``bool[N]``: the env's next action is its episode's first (it fills the env's history)."""
        self._draw_delay(self.fresh)

    def _draw_delay(self, mask: torch.Tensor) -> None:
        lo, hi = self.steps
        delay = torch.randint(lo, hi + 1, (self.num_envs,), generator=self.generator, device=self.device)
        self.ring.set_delay(delay, mask)

    def _begin_episodes(self, mask: torch.Tensor) -> None:
        self.fresh = self.fresh | mask
        self._draw_delay(mask)

    def reset(self) -> TensorDict:
        self._begin_episodes(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self.env.reset()

    def reset_envs(self, mask: torch.Tensor) -> None:
        inner: Any = self.env  # a BatchedTask's (or a wrapper's) masked reset, beyond the Env contract
        inner.reset_envs(mask)
        self._begin_episodes(mask)

    def step(self, actions: torch.Tensor) -> StepResult:
        actions = actions.to(self.ring.buffer.dtype)
        self.ring.reset(self.fresh, actions)
        self.fresh = torch.zeros_like(self.fresh)
        obs, reward, terminated, truncated, extras = self.env.step(self.ring(actions))
        self._begin_episodes(terminated | truncated)
        return obs, reward, terminated, truncated, extras

    def state_dict(self) -> dict[str, Any]:
        ring = {"buffer": self.ring.buffer.clone(), "head": self.ring.head.clone(), "delay": self.ring.delay.clone()}
        own = {**ring, "fresh": self.fresh.clone(), "generator": self.generator.get_state()}
        return {"env": self.env.state_dict(), "wrapper": own}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        own = state["wrapper"]
        load_tensors(self.ring, own, ("buffer", "head", "delay"), "ActionDelay state")
        load_tensors(self, own, ("fresh",), "ActionDelay state")
        self.generator.set_state(own["generator"].cpu())


class PushImpulse(Wrapper):
    """Random shoves of one body at random intervals, as a one-step force ``m·Δv / T`` (module docstring)."""

    def __init__(
        self,
        env: Env,
        body: str,
        velocity: tuple[float, float],
        interval_s: tuple[float, float],
        axes: str = "xy",
        seed: int = 0,
    ) -> None:
        """``body``: the pushed body; ``velocity``: range of ``|Δv|`` (m/s); ``interval_s``: range of the time between
        pushes (s), the first counted from the episode's start; ``axes``: the world axes of the push's direction
        (``"x"``: ±x; ``"xy"``: a horizontal direction); ``seed``: of the wrapper's generator."""
        super().__init__(env)
        task = unwrap(env)
        sim = getattr(task, "sim", None)
        if sim is None:
            raise TypeError(f"PushImpulse needs a MuJoCo task (with .sim); got {type(task).__name__}")
        if not axes or any(a not in AXES for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"PushImpulse axes must be distinct letters of 'xyz', got {axes!r}")
        if not 0 <= velocity[0] <= velocity[1]:
            raise ValueError(f"PushImpulse velocity must satisfy 0 <= lo <= hi, got {velocity}")
        if not 0 < interval_s[0] <= interval_s[1]:
            raise ValueError(f"PushImpulse interval_s must satisfy 0 < lo <= hi, got {interval_s}")
        self.sim, self.velocity, self.interval_s = sim, velocity, interval_s
        body_id = sim.body_id(body)
        self.body_index = torch.tensor([body_id] * len(axes), device=self.device)
        self.axis_index = torch.tensor([AXES[a] for a in axes], device=self.device)
        # The body's subtree: the bodies whose chain of parents reaches it.
        parents = sim.model.body_parentid
        in_subtree = []
        for b in range(sim.model.nbody):
            while b != body_id and b != 0:
                b = int(parents[b])
            in_subtree.append(b == body_id)
        self.in_subtree = torch.tensor(in_subtree, device=self.device)
        self.model_mass = sim.default_param("body_mass")
        self.generator = _generator(self.device, seed)
        self.timer = torch.zeros(self.num_envs, device=self.device)
        """Seconds until each env's next push."""
        self.push_velocity = torch.zeros(self.num_envs, len(axes), device=self.device)
        """``Δv`` ``[N, len(axes)]`` of the last step's pushes (0 where none)."""
        self._draw_timer(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))

    def subtree_mass(self) -> torch.Tensor:
        """``[N]`` (or a scalar): the mass moved by a push, from the worlds' own masses when the task varies them."""
        masses = self.sim.params.get("body_mass", self.model_mass)
        return (masses * self.in_subtree).sum(-1)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(self.num_envs, *shape, generator=self.generator, device=self.device)

    def _draw_timer(self, mask: torch.Tensor) -> None:
        lo, hi = self.interval_s
        self.timer = torch.where(mask, lo + (hi - lo) * self._rand(), self.timer)

    def _directions(self) -> torch.Tensor:
        """Unit vectors ``[N, len(axes)]``, uniform on the circle (sphere) of the axes; ±1 for one axis."""
        k = self.axis_index.numel()
        if k == 1:
            return torch.where(self._rand(1) < 0.5, -1.0, 1.0)
        g = torch.randn(self.num_envs, k, generator=self.generator, device=self.device)
        return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def reset(self) -> TensorDict:
        self._draw_timer(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self.env.reset()

    def reset_envs(self, mask: torch.Tensor) -> None:
        inner: Any = self.env  # a BatchedTask's (or a wrapper's) masked reset, beyond the Env contract
        inner.reset_envs(mask)
        self._draw_timer(mask)

    def step(self, actions: torch.Tensor) -> StepResult:
        dt = self.step_dt
        left = self.timer - dt
        # Due when less than half a step is left: an interval rounds to the nearest step (as the legged tasks' events).
        due = left < 0.5 * dt
        lo, hi = self.velocity
        speed = torch.where(due, lo + (hi - lo) * self._rand(), 0.0)
        self.push_velocity = speed.unsqueeze(-1) * self._directions()
        mass = self.subtree_mass().reshape(-1, 1)
        force = mass * self.push_velocity.to(mass.dtype) / dt  # F = m·Δv / T
        before = add_body_forces(self.sim, self.body_index, self.axis_index, force)
        obs, reward, terminated, truncated, extras = self.env.step(actions)
        restore_body_forces(self.sim, self.body_index, self.axis_index, before)  # one step only
        self.timer = left
        self._draw_timer(due | terminated | truncated)
        extras = dict(extras)
        extras["pushed"] = due
        extras["log"] = {**(extras.get("log") or {}), "push/rate": due.float().mean()}
        return obs, reward, terminated, truncated, extras

    def state_dict(self) -> dict[str, Any]:
        own = {"timer": self.timer.clone(), "generator": self.generator.get_state()}
        return {"env": self.env.state_dict(), "wrapper": own}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        load_tensors(self, state["wrapper"], ("timer",), "PushImpulse state")
        self.generator.set_state(state["wrapper"]["generator"].cpu())
