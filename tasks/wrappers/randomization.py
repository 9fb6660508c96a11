"""Domain randomisation (RRLS's ``DomainRandomization``, issue 13): every env draws its physical parameters anew at
each of its resets, from its own uncertainty set, so a policy trained on the batch sees the whole set.

Per parameter ``p`` with bounds ``[lo, hi]`` and ``u ~ U(0, 1)`` drawn per env:

    uniform      p = lo + (hi − lo) · u
    log-uniform  p = exp(log lo + (log hi − log lo) · u)      (lo > 0: equal odds for every factor of 2, for masses
                                                              or frictions that span orders of magnitude)

With ``nominal_fraction = q > 0`` each draw keeps, per env and with probability ``q``, the unmodified task's values
(``Parameter.nominal``, the nominal point ``eval-robust`` reports) instead of drawing: ``p = nominal`` if ``v < q``
(``v ~ U(0, 1)`` per env), else the draw above. A set need not contain its task's nominal point (Hopper's RRLS set
spans torso masses 0.1-3 kg; the model's is 3.67 kg), so a policy randomised only over the set never trains at it;
mixing in nominal episodes does (on Hopper at 1 M steps it raised the nominal return only from 564 to 757-837, against
vanilla's 3,366: bench/RESULTS.md).

A ``sample_fn(num_envs, generator) -> {name: Tensor[N]}`` replaces the draw (RRLS's ``randomize_fn``), e.g. to sample
a grid or a correlated set; it must use the generator it is given, so that a resumed run draws the same values.

When: for every env at construction and at :meth:`reset`, and after each step for the envs that step ended
(terminated or truncated). The inner env resets an ended env inside its step, so its new values act from the first
physics step of the new episode (the reset state itself was placed under the old values; on MuJoCo only the derived
quantities of that one ``mj_forward`` are affected). Draws come from the wrapper's own generator on the env's device
(in :meth:`state_dict`), and writes are masked: the host never learns which envs reset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult
from tasks.wrappers.base import Wrapper, unwrap
from tasks.wrappers.params import Parameter, resolve_param

SampleFn = Callable[[int, torch.Generator], Mapping[str, torch.Tensor]]
# ``{parameter: (lo, hi)}``, keyed by names, Parameter objects or both (Mapping's key type is invariant).
ParamBounds = (
    Mapping[str, tuple[float, float]]
    | Mapping[Parameter, tuple[float, float]]
    | Mapping[str | Parameter, tuple[float, float]]
)


class DomainRandomization(Wrapper):
    """Draw every managed parameter per env at each reset of that env (module docstring)."""

    def __init__(
        self,
        env: Env,
        bounds: ParamBounds,
        *,
        log_uniform: bool | Collection[str] = False,
        sample_fn: SampleFn | None = None,
        nominal_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        """``bounds``: ``{parameter: (lo, hi)}`` (an alias, a ``"<field>:<element>[:<column>]"`` address or a
        :class:`Parameter`); ``log_uniform``: True for all, or the names drawn log-uniformly; ``sample_fn``: replaces
        the draw; ``nominal_fraction``: the probability that an env keeps the task's nominal values at a draw
        (module docstring); ``seed``: of the wrapper's generator."""
        super().__init__(env)
        self.task = unwrap(env)
        if not bounds:
            raise ValueError("DomainRandomization needs at least one parameter in bounds")
        self.params: dict[str, Parameter] = {}
        self.bounds: dict[str, tuple[float, float]] = {}
        for spec, (lo, hi) in bounds.items():
            param = resolve_param(env, spec)
            name = spec if isinstance(spec, str) else param.name
            param.read(self.task)  # resolve (and check) the name now: nothing is built inside a step
            if not lo <= hi:
                raise ValueError(f"bounds of '{name}': lo={lo} > hi={hi}; a parameter needs lo <= hi")
            self.params[name], self.bounds[name] = param, (float(lo), float(hi))
        logs = set(self.bounds) if log_uniform is True else set() if log_uniform is False else set(log_uniform)
        unknown = logs - set(self.bounds)
        if unknown:
            raise KeyError(f"log_uniform names {sorted(unknown)} without bounds; parameters: {list(self.bounds)}")
        for name in logs:
            if self.bounds[name][0] <= 0:
                raise ValueError(
                    f"log-uniform '{name}' needs lo > 0 (log of the bounds), got lo={self.bounds[name][0]}"
                )
        self.log_uniform = logs
        if not 0.0 <= nominal_fraction <= 1.0:
            raise ValueError(f"nominal_fraction must lie in [0, 1], got {nominal_fraction}")
        self.nominal_fraction = float(nominal_fraction)
        self.nominal = {
            name: torch.full((self.num_envs,), param.nominal(self.task), dtype=torch.float64, device=self.device)
            for name, param in self.params.items()
        }
        self.sample_fn = sample_fn
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.randomize()  # the episodes already running (a task resets itself when it is built) are drawn too

    # --- the draw ----------------------------------------------------------------------------------------------------

    def sample(self) -> dict[str, torch.Tensor]:
        """A fresh draw ``{name: [N]}`` for every env (the caller keeps the rows of the envs that reset)."""
        drawn = self._draw()
        if self.nominal_fraction > 0.0:
            v = torch.rand(self.num_envs, generator=self.generator, device=self.device)
            keep = v < self.nominal_fraction
            drawn = {k: torch.where(keep, self.nominal[k].to(x.dtype), x) for k, x in drawn.items()}
        return drawn

    def _draw(self) -> dict[str, torch.Tensor]:
        """The set's draw (``sample_fn``'s, or uniform / log-uniform in the bounds) ``{name: [N]}``."""
        if self.sample_fn is not None:
            drawn = dict(self.sample_fn(self.num_envs, self.generator))
            if set(drawn) != set(self.params):
                raise KeyError(f"sample_fn returned {sorted(drawn)}; the parameters are {sorted(self.params)}")
            return drawn
        out: dict[str, torch.Tensor] = {}
        for name, (lo, hi) in self.bounds.items():
            u = torch.rand(self.num_envs, generator=self.generator, device=self.device, dtype=torch.float64)
            if name in self.log_uniform:
                log_lo, log_hi = math.log(lo), math.log(hi)
                out[name] = torch.exp(log_lo + (log_hi - log_lo) * u)
            else:
                out[name] = lo + (hi - lo) * u
        return out

    def randomize(self, mask: torch.Tensor | None = None) -> None:
        """Draw and write new values for the envs where ``mask`` (all if None)."""
        for name, values in self.sample().items():
            self.params[name].write(self.task, values, mask)

    def get_params(self) -> dict[str, torch.Tensor]:
        """Current values ``{name: [N]}``."""
        return {name: p.read(self.task) for name, p in self.params.items()}

    # --- the env contract --------------------------------------------------------------------------------------------

    def reset(self) -> TensorDict:
        self.randomize()  # before the reset, so the initial states are placed under the new values
        return self.env.reset()

    def reset_envs(self, mask: torch.Tensor) -> None:
        """An outer wrapper that ends episodes itself (``RewardClassifierWrapper``) reaches the draw through this."""
        inner: Any = self.env  # a BatchedTask's (or a wrapper's) masked reset, beyond the Env contract
        inner.reset_envs(mask)
        self.randomize(mask)

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = self.env.step(actions)
        self.randomize(terminated | truncated)
        extras = dict(extras)
        current = self.get_params()
        extras["log"] = {**(extras.get("log") or {}), **{f"randomization/{k}": v.mean() for k, v in current.items()}}
        return obs, reward, terminated, truncated, extras

    def state_dict(self) -> dict[str, Any]:
        """The inner env's state (the parameter values live there) and the generator."""
        return {"env": self.env.state_dict(), "wrapper": {"generator": self.generator.get_state()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        self.generator.set_state(state["wrapper"]["generator"].cpu())
