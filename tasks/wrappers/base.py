"""The base of every wrapper here: an :class:`~rsl_rl.env.Env` that holds another and passes everything through.

A subclass overrides what it changes (``step``, ``reset``, ``num_actions`` ...) and nothing else; every other attribute
(``reset_envs``, ``episode_sums``, ``sim`` ...) is read from the wrapped env, so wrappers compose in any order and an
outer wrapper still reaches the task's own machinery. :func:`unwrap` gives the task at the bottom of a stack.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult


def unwrap(env: Any) -> Any:
    """The innermost env of a wrapper stack (the task itself)."""
    while isinstance(env, Wrapper):
        env = env.env
    return env


class Wrapper(Env):
    """Pass-through wrapper; subclasses override what they change."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = env.num_actions
        self.device = env.device
        self.max_episode_length = env.max_episode_length
        self.step_dt = env.step_dt
        self.cfg = env.cfg

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes this object lacks: the wrapped env's (``self.env`` itself is set in __init__;
        # reading it before, e.g. while unpickling, must not recurse).
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def unwrapped(self) -> Any:
        return unwrap(self)

    @property
    def episode_length_buf(self) -> torch.Tensor:  # type: ignore[override]
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.episode_length_buf = value

    def reset(self) -> TensorDict:
        return self.env.reset()

    def step(self, actions: torch.Tensor) -> StepResult:
        return self.env.step(actions)

    def get_observations(self) -> TensorDict:
        return self.env.get_observations()

    def state_dict(self) -> dict[str, Any]:
        return self.env.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state)

    def deployment_spec(self) -> dict[str, Any]:
        return self.env.deployment_spec()

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.env.action_bounds()

    def render(self, worlds: tuple[int, ...] = (0,), width: int = 640, height: int = 480) -> Any:
        return self.env.render(worlds, width, height)

    def close(self) -> None:
        self.env.close()
