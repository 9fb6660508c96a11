"""When the guide hands over to the learner: the JSRL configuration, the curriculum over switch steps, the per-env
switch state and the combined policy π_h (Uchendu et al. 2023, ``../shared/reference/jsrl.md``).

Per env i the switch keeps, on the device, the steps taken in its current episode ``t_i`` and its switch step
``h_i``; the guide acts while

    t_i < h_i

(strict: ``h`` counts the guide's steps, so h = 0 is the learner alone from the first step and h = H gives the guide
the first H steps; the paper's ``t ≤ h`` with t from 0 would leave one guide step at its final stage h = 0).
``h_i`` is latched when env i starts an episode: the stage's ``h_k`` (curriculum) or a draw h ~ U{0, …, H} (random);
an episode in progress keeps its ``h_i`` when the stage advances. Every update is a ``torch.where`` over all envs:
nothing is read back to the host per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

MODES = ("curriculum", "random")
PPO_GUIDE_STEPS = ("masked", "unmasked")


@dataclass
class JSRLConfig:
    """Jump-start RL: how the guide hands over to the learner (defaults: ``LaurenYTaylor/jsrl-CORL``'s n, tol, w)."""

    mode: str = "curriculum"
    """``"curriculum"``: h goes from H to 0 in ``stages`` steps, each advance gated by evaluations of π_h;
    ``"random"``: every episode draws h ~ U{0, …, H} (no evaluation gate)."""
    horizon: int = 0
    """H, the guide's steps at the first stage and the upper end of the random draws; 0: the env's
    ``max_episode_length``."""
    stages: int = 10
    """n, the curriculum's stages: h_k = round(H·(1 − k/(n − 1))), k = 0 … n − 1 (h_0 = H, h_{n−1} = 0)."""
    tolerance: float = 0.05
    """tol: a stage passes when the moving average of its evaluation returns R̄ ≥ best − tol·|best|."""
    window: int = 5
    """w, the evaluations of a stage averaged into R̄ (a stage is evaluated at least w times)."""
    eval_episodes: int = 0
    """Episodes per evaluation of the combined policy; 0: one per eval env."""
    ppo_guide_steps: str = "masked"
    """PPO only. ``"masked"``: guide steps are out of the policy-gradient loss (and its entropy, KL and clip
    statistics) and in the value targets and GAE; ``"unmasked"``: treated as learner steps, with the learner's
    log-probability of the guide's action as π_old (off-policy: the ratio is biased, expect a KL spike)."""
    seed: int = 0
    """Seed of the generator (on the training device) of the random switch steps."""

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("mode", self.mode, MODES),
            ("ppo_guide_steps", self.ppo_guide_steps, PPO_GUIDE_STEPS),
        ):
            if value not in allowed:
                raise ValueError(f"jsrl.{name}={value!r}; allowed: {list(allowed)}")
        for name in ("horizon", "eval_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"jsrl.{name} must be >= 0, got {getattr(self, name)}")
        if self.stages < 2:
            raise ValueError(f"jsrl.stages must be >= 2 (h goes from H to 0), got {self.stages}")
        if self.window < 1:
            raise ValueError(f"jsrl.window must be >= 1, got {self.window}")
        if not self.tolerance >= 0.0:  # also refuses NaN
            raise ValueError(f"jsrl.tolerance must be >= 0, got {self.tolerance}")


def stage_switch_step(horizon: int, stages: int, stage: int) -> int:
    """h_k = H·(1 − k/(n − 1)) rounded half up, in integers: ⌊(2H(n − 1 − k) + n − 1) / (2(n − 1))⌋."""
    span = stages - 1
    return (2 * horizon * (span - stage) + span) // (2 * span)


class Curriculum:
    """JSRL-Curriculum's gate, on the host (it runs once per evaluation).

    After each evaluation of π_{h_k} with mean return R, R joins the window of the current stage's last ``w``
    returns. Once the window is full, with R̄ its mean, the stage passes when

        R̄ ≥ best − tol·|best|

    and then k ← k + 1, best ← max(best, R̄), and the window is cleared. ``best`` is the highest R̄ with which a stage
    passed, −∞ before the first (so stage 0, h = H, passes after its first w evaluations and sets best to the
    guide-led policy's return). Clearing the window makes every stage earn its pass with w evaluations of its own
    (returns of the previous, more guided stage do not vouch for it); taking the max keeps best from drifting down
    by tol at every stage. At the last stage (h = 0) nothing changes any more.
    """

    def __init__(self, horizon: int, stages: int, tolerance: float, window: int) -> None:
        self.horizon, self.stages, self.tolerance, self.window = horizon, stages, tolerance, window
        self.stage = 0
        self.best = -math.inf
        self.returns: list[float] = []
        """Evaluation returns of the current stage, oldest first (at most ``window``)."""

    @property
    def h(self) -> int:
        """The current stage's switch step h_k."""
        return stage_switch_step(self.horizon, self.stages, self.stage)

    @property
    def finished(self) -> bool:
        """At the last stage: the learner acts alone."""
        return self.stage == self.stages - 1

    def threshold(self) -> float:
        """best − tol·|best| (−∞ before the first pass: −∞ − 0·∞ would be NaN)."""
        return -math.inf if math.isinf(self.best) else self.best - self.tolerance * abs(self.best)

    def observe(self, mean_return: float) -> bool:
        """Record an evaluation of π_{h_k}; returns whether the stage advanced."""
        if self.finished:
            return False
        self.returns = [*self.returns, float(mean_return)][-self.window :]
        if len(self.returns) < self.window:
            return False
        average = sum(self.returns) / len(self.returns)
        if not average >= self.threshold():  # a NaN average never passes
            return False
        self.stage += 1
        self.best = max(self.best, average)
        self.returns = []
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "best": self.best, "returns": list(self.returns)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state["stage"])
        self.best = float(state["best"])
        self.returns = [float(r) for r in state["returns"]]


class EpisodeSwitch:
    """Per-env step counters ``t [N]`` and switch steps ``h [N]`` (long, on ``device``); see the module docstring.

    ``random``: h_i ~ U{0, …, H} drawn from ``generator`` whenever env i starts an episode (at construction and at
    each of its ends); otherwise h_i ← ``stage_h`` (set by :meth:`set_stage_h`) at each of its starts.
    """

    def __init__(self, num_envs: int, horizon: int, random: bool, h: int, device: torch.device, seed: int = 0) -> None:
        self.num_envs, self.horizon, self.random = num_envs, horizon, random
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.stage_h = torch.full((), h, dtype=torch.long, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.h = self._new_switch_steps()

    def _new_switch_steps(self) -> torch.Tensor:
        """``[N]`` switch steps for episodes that start now (all envs drawn: which ones start is not read back)."""
        if self.random:
            return torch.randint(0, self.horizon + 1, (self.num_envs,), generator=self.generator, device=self.device)
        return self.stage_h.expand(self.num_envs).clone()

    def guide_mask(self) -> torch.Tensor:
        """``bool [N]``: the guide acts this step (t_i < h_i)."""
        return self.t < self.h

    def step(self, dones: torch.Tensor) -> None:
        """After an env step: t_i ← 0 and a new h_i where env i's episode ended (terminated | truncated), else
        t_i ← t_i + 1."""
        done = dones.to(device=self.device, dtype=torch.bool)
        self.t = torch.where(done, 0, self.t + 1)
        self.h = torch.where(done, self._new_switch_steps(), self.h)

    def set_stage_h(self, h: int) -> None:
        """The h that episodes starting from now on get (curriculum; a kernel launch, no host sync)."""
        self.stage_h.fill_(h)

    def restart(self) -> None:
        """Every env starts a fresh episode (t = 0, new h). New tensors: those of :meth:`step` are inference
        tensors when collection runs under ``torch.inference_mode``, which cannot change in place outside it."""
        self.t = torch.zeros_like(self.t)
        self.h = self._new_switch_steps()

    def state_dict(self) -> dict[str, Any]:
        return {
            "t": self.t.clone(),
            "h": self.h.clone(),
            "stage_h": int(self.stage_h),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any], episodes: bool = True) -> None:
        """Restore the generator and the stage's h; with ``episodes`` also ``t`` and ``h`` of the episodes in
        progress (when the env's own state was restored), otherwise every env starts afresh."""
        self.generator.set_state(state["generator"].cpu())
        self.set_stage_h(int(state["stage_h"]))
        if episodes:
            self.t = state["t"].to(self.device, torch.long).clone()
            self.h = state["h"].to(self.device, torch.long).clone()
        else:
            self.restart()


Policy = Callable[[TensorDict], torch.Tensor]


class CombinedPolicy:
    """π_h: the guide for the first h_i steps of every episode, then the learner. For evaluation and playing back
    with the runner's ``evaluate`` loop, which calls ``policy(obs)`` before and ``policy.reset(dones)`` after every
    env step: ``reset`` advances the counters (0 for the envs whose episode ended) and resets the learner's memory.
    """

    def __init__(self, learner: Any, guide: Policy, switch: EpisodeSwitch) -> None:
        self.learner, self.guide, self.switch = learner, guide, switch

    def __call__(self, obs: TensorDict) -> torch.Tensor:
        learner = self.learner(obs)
        guide = self.guide(obs).to(device=learner.device, dtype=learner.dtype)
        return torch.where(self.switch.guide_mask().unsqueeze(-1), guide, learner)

    def reset(self, dones: torch.Tensor | None = None) -> None:
        reset = getattr(self.learner, "reset", None)
        if reset is not None:
            reset(dones)
        if dones is None:
            self.switch.restart()
        else:
            self.switch.step(dones)
