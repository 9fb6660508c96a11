"""What every batched task shares: weighted reward terms, episode bookkeeping and the masked auto-reset step.

A task subclass supplies the physics (``physics_step``), resets (``reset_envs``), observations (``observe``) and
terminations (``terminated``). Rewards are plain functions ``term(env, **params) -> Tensor[N]`` collected with weights
in the config's ``rewards`` dict, so a task variant is a config edit. Nothing here synchronises with the host.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult

_EPISODE_BUFFERS = ("action", "episode_length_buf", "episode_sums")


def load_tensors(owner: Any, state: dict[str, Any], names: tuple[str, ...], where: str = "env state") -> None:
    """Set ``owner.<name>`` from ``state[name]`` for each name, on the owner's device and dtype, checking the shape."""
    for name in names:
        current = getattr(owner, name)
        if name not in state:
            raise ValueError(f"{where} has no '{name}'; it holds {sorted(state)}")
        if tuple(state[name].shape) != tuple(current.shape):
            raise ValueError(
                f"{where} '{name}' has shape {tuple(state[name].shape)}, expected {tuple(current.shape)} "
                "(saved with another task or number of envs?)"
            )
        setattr(owner, name, state[name].to(device=current.device, dtype=current.dtype).clone())


@dataclass
class RewardTerm:
    """One weighted reward term: ``weight · func(env, **params)``."""

    func: Callable[..., torch.Tensor]
    """``func(env, **params) -> Tensor[N]``."""
    weight: float = 1.0
    """Multiplier of the term in the reward sum."""
    params: dict[str, float] = field(default_factory=dict)
    """Keyword arguments of ``func``."""


class BatchedTask(Env):
    """Step logic of a batched task: reward terms, episode sums, time-outs, final observations, masked resets.

    Subclasses set ``num_envs``, ``num_actions``, ``device``, ``max_episode_length``, ``step_dt`` and ``cfg`` (with a
    ``rewards`` dict), call :meth:`init_buffers`, and implement the abstract methods below. ``self.action`` is the
    processed action of the current step, readable by reward terms.
    """

    dtype: torch.dtype = torch.float32
    generator: torch.Generator
    """The task's one random stream (resets, randomisation, noise); saved by :meth:`state_dict`."""

    @abstractmethod
    def process_action(self, actions: torch.Tensor) -> torch.Tensor:
        """Policy output ``[N, A]`` → the action that acts (clipped, scaled ...), stored as ``self.action``."""

    @abstractmethod
    def physics_step(self) -> torch.Tensor:
        """Advance every env with ``self.action``; return ``bool[N]``: the env's state became invalid (NaN ...)."""

    @abstractmethod
    def reset_envs(self, mask: torch.Tensor) -> None:
        """Draw initial states for the envs where ``mask`` and put them there (other envs untouched)."""

    @abstractmethod
    def observe(self) -> TensorDict:
        """Observation groups of the current state."""

    @abstractmethod
    def terminated(self) -> torch.Tensor:
        """``bool[N]``: the current state is terminal."""

    def step_counts(self) -> dict[str, torch.Tensor]:
        """Device scalars summed over an iteration and logged when non-zero (default: none)."""
        return {}

    def init_buffers(self) -> None:
        n = self.num_envs
        self.reward_names = list(self.cfg.rewards)
        # (weight, func, params) per term; a task may rescale weights here (e.g. by the control period).
        self.reward_terms = [(t.weight, t.func, t.params) for t in self.cfg.rewards.values()]
        self.action = torch.zeros(n, self.num_actions, dtype=self.dtype, device=self.device)
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=self.device)
        self.episode_sums = torch.zeros(n, len(self.reward_names), dtype=self.dtype, device=self.device)

    def reset(self) -> TensorDict:
        everything = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self.reset_envs(everything)
        self.action = torch.zeros_like(self.action)
        self.episode_length_buf = torch.zeros_like(self.episode_length_buf)
        self.episode_sums = torch.zeros_like(self.episode_sums)
        return self.observe()

    def get_observations(self) -> TensorDict:
        return self.observe()

    # --- checkpoints (exact resume) ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Episode bookkeeping, the last action and the task's RNG; subclasses add their physics and buffers."""
        state: dict[str, Any] = {name: getattr(self, name).clone() for name in _EPISODE_BUFFERS}
        state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; a tensor of the wrong shape (another num_envs or task) is an error."""
        load_tensors(self, state, _EPISODE_BUFFERS)
        self.generator.set_state(state["generator"].cpu())

    def step(self, actions: torch.Tensor) -> StepResult:
        # A non-finite action (a policy fed a bad observation, a diverged network) is treated like a world that went
        # invalid: its env acts with zeros instead (so no NaN reaches the physics, controllers, delay buffers or the
        # last-action observation), earns nothing and ends its episode as terminated, and the event is counted. Acting
        # on with a sanitised action would hide the fault and keep the env in the state that produced it.
        bad_action = ~torch.isfinite(actions).all(dim=-1)
        actions = torch.where(bad_action.unsqueeze(-1), 0.0, actions)
        self.action = self.process_action(actions)
        unstable = self.physics_step()
        invalid = unstable | bad_action
        terms = torch.stack([weight * func(self, **params) for weight, func, params in self.reward_terms], dim=-1)
        # An invalid env earns nothing and ends its episode; it never leaks NaN.
        terms = torch.where(invalid.unsqueeze(-1), 0.0, terms)
        reward = terms.sum(-1)
        episode_sums = self.episode_sums + terms
        length = self.episode_length_buf + 1
        terminated = self.terminated() | invalid
        truncated = (length >= self.max_episode_length) & ~terminated
        done = terminated | truncated
        # masked_fill keeps each group's dtype (torch.where with a float 0.0 would turn uint8 images into float32).
        final_obs = self.observe().apply(lambda x: x.masked_fill(invalid.view(-1, *([1] * (x.dim() - 1))), 0))
        extras: dict[str, Any] = {
            "final_obs": final_obs,
            "episode": {f"reward/{name}": episode_sums[:, i] for i, name in enumerate(self.reward_names)},
            "counts": {
                "invalid_physics_resets": unstable.sum(),
                "nonfinite_actions": bad_action.sum(),
                **self.step_counts(),
            },
        }
        self.reset_envs(done)
        self.episode_length_buf = torch.where(done, 0, length)
        self.episode_sums = torch.where(done.unsqueeze(-1), 0.0, episode_sums)
        return self.observe(), reward.float(), terminated, truncated, extras
