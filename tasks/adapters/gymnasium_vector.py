"""Any batched :class:`~rsl_rl.env.Env` as a gymnasium ``VectorEnv``, so gymnasium-based code (SB3, CleanRL, skrl
scripts, gymnasium's vector wrappers) can drive our tasks.

Our envs reset finished worlds themselves, inside ``step``, and report the observation reached before the reset: that
is gymnasium's ``SAME_STEP`` autoreset mode, so ``metadata["autoreset_mode"]`` says so and the final observations go
where gymnasium 1.x puts them in that mode: ``infos["final_obs"]`` (an object array holding each finished env's
observation, ``None`` elsewhere) with the mask ``infos["_final_obs"]``, plus ``infos["final_info"]`` /
``infos["_final_info"]`` (the env's per-env episode statistics, ``extras["episode"]``).

Everything crosses as numpy on the host: one device → host copy per observation group and step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import logger, spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from tensordict import TensorDict

from rsl_rl.env import Env


class GymnasiumVectorEnv(VectorEnv):
    """Expose one of our batched envs as a gymnasium ``VectorEnv`` (numpy in, numpy out, ``SAME_STEP`` autoreset).

    Args:
        env: any :class:`Env` (a pure-torch task, a MuJoCo task, a wrapped or adapted env).
        groups: the observation group(s) to expose: one name gives a ``Box`` observation space, a sequence of names a
            ``Dict`` space keyed by group.

    Observation spaces are unbounded float32 ``Box``\\ es (our tasks declare no observation bounds); the action space is
    the float32 ``Box`` of :meth:`Env.action_bounds`, unbounded where the env declares none. ``reset(seed=s)`` seeds the
    env's random stream (its ``generator``, which every task of this library has), so equal seeds give equal episodes.
    """

    def __init__(self, env: Env, groups: str | Sequence[str] = "policy") -> None:
        self.env = env
        self.num_envs = int(env.num_envs)
        self.groups = (groups,) if isinstance(groups, str) else tuple(groups)
        self._single_group = isinstance(groups, str)
        if not self.groups:
            raise ValueError("groups is empty: name at least one observation group")
        obs = env.get_observations()
        available = list(obs.keys())
        missing = [g for g in self.groups if g not in available]
        if missing:
            raise ValueError(f"observation group(s) {missing} not provided by the env; available groups: {available}")
        boxes: dict[str, spaces.Space[Any]] = {
            g: spaces.Box(-np.inf, np.inf, shape=tuple(obs[g].shape[1:]), dtype=np.float32) for g in self.groups
        }
        self.single_observation_space = boxes[self.groups[0]] if self._single_group else spaces.Dict(boxes)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        bounds = env.action_bounds()
        shape = (int(env.num_actions),)
        if bounds is None:
            low, high = np.full(shape, -np.inf, np.float32), np.full(shape, np.inf, np.float32)
        else:
            low, high = (b.detach().to("cpu", torch.float32).numpy().reshape(shape) for b in bounds)
        self.single_action_space = spaces.Box(low, high, shape=shape, dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        # An instance attribute: the class-level dict of VectorEnv is shared by every vector env.
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
        self.render_mode = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every env; an int ``seed`` first reseeds the env's random stream (``None`` continues it).

        ``options`` are not supported (our envs reset all worlds here and finished ones automatically in ``step``, so
        gymnasium's ``reset_mask`` is never needed).
        """
        super().reset(seed=seed)  # seeds self.np_random, gymnasium's convention
        if options:
            raise ValueError(
                f"reset options {sorted(options)} are not supported: this vector env resets every world on reset() and "
                "finished worlds automatically in step() (autoreset_mode SAME_STEP)"
            )
        if seed is not None:
            generator = getattr(self.env, "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(int(seed))
            else:
                logger.warn(
                    f"{type(self.env).__name__} has no torch.Generator 'generator': reset(seed=...) cannot seed"
                )
        return self._numpy_obs(self.env.reset()), {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env with ``actions[num_envs, num_actions]``; finished envs come back already reset."""
        act = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.env.device)
        expected = (self.num_envs, int(self.env.num_actions))
        if tuple(act.shape) != expected:
            raise ValueError(f"actions have shape {tuple(act.shape)}; expected (num_envs, num_actions) = {expected}")
        obs, reward, terminated, truncated, extras = self.env.step(act)
        terminated_np, truncated_np = _numpy(terminated).astype(bool), _numpy(truncated).astype(bool)
        done = terminated_np | truncated_np
        infos: dict[str, Any] = {}
        if done.any():
            if "final_obs" not in extras:
                raise KeyError(f"{type(self.env).__name__}.step ended episodes without extras['final_obs']")
            final = self._numpy_obs(extras["final_obs"])
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_info: dict[str, Any] = {}
            for i in np.flatnonzero(done):
                final_obs[i] = final[i] if self._single_group else {g: final[g][i] for g in self.groups}
            for name, value in (extras.get("episode") or {}).items():
                final_info[name] = _numpy(value)
                final_info[f"_{name}"] = done.copy()
            infos.update(final_obs=final_obs, _final_obs=done, final_info=final_info, _final_info=done.copy())
        return self._numpy_obs(obs), _numpy(reward).astype(np.float64), terminated_np, truncated_np, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Release the wrapped env (gymnasium's ``close`` calls this once)."""
        self.env.close()

    def _numpy_obs(self, obs: TensorDict) -> Any:
        """The exposed group(s) as float32 numpy: one array, or a dict of arrays keyed by group."""
        arrays = {g: _numpy(obs[g]).astype(np.float32, copy=False) for g in self.groups}
        return arrays[self.groups[0]] if self._single_group else arrays


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A host copy: the env may update its tensors in place at the next step, the caller keeps what it got."""
    return tensor.detach().to("cpu", copy=True).numpy()
