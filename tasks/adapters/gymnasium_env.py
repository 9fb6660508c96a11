"""Gymnasium envs and vector envs as a batched :class:`~rsl_rl.env.Env`, so our PPO and SAC train them unchanged.

Gymnasium 1.x vector envs reset finished sub-envs in one of three ``autoreset_mode``\\ s (see
``gymnasium.vector.AutoresetMode``; https://farama.org/Vector-Autoreset-Mode):

* ``SAME_STEP``: ``step`` returns the post-reset observation and puts the observation each finished env reached in
  ``infos["final_obs"]`` (an object array, ``None`` for envs that did not finish) with the mask ``infos["_final_obs"]``.
* ``NEXT_STEP`` (gymnasium's default): ``step`` returns the final observation; the *next* ``step`` of that env ignores
  its action, resets it and returns reward 0 with both flags false. That extra step is not a transition: a learner fed
  with it would credit the action to a reset.
* ``DISABLED``: the user must reset finished envs (``reset(options={"reset_mask": ...})``) before stepping them again.

Our contract has one semantics: ``step`` returns post-reset observations and ``extras["final_obs"]``. ``SAME_STEP`` maps
onto it directly. ``NEXT_STEP`` and ``DISABLED`` are handled alike: the observation ``step`` returns is the final one,
and the finished envs are reset at once through ``reset_mask`` (which also cancels ``NEXT_STEP``'s pending reset step),
so no reset step ever reaches the learner. Envs this adapter makes itself use ``SAME_STEP``: one call per step.

Gymnasium runs on the host, so the host sync the rest of the library avoids is unavoidable here; the adapter keeps it to
one numpy → torch conversion per observation group and step (two on steps where an episode ends: obs and final obs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult

GymnasiumSource: TypeAlias = "str | gym.Env | Callable[[], gym.Env] | VectorEnv"
"""What :class:`GymnasiumEnv` wraps: an env id, one env, a factory of envs, or a vector env."""
VECTORIZATION_MODES = ("sync", "async")
EPISODE_SUM_PREFIX = "reward_"
"""Numeric per-env info entries with this prefix (MuJoCo's ``reward_forward``, ``reward_ctrl`` ...) are summed over
each episode and reported as ``extras["episode"]["reward/forward"]`` ..., the names our tasks give their reward
terms' episode sums."""


class GymnasiumEnv(Env):
    """A gymnasium env id, env, env factory or vector env as a batched torch :class:`Env`.

    Observations form one TensorDict group per entry of a ``Dict`` observation space (the Dict's keys name the groups)
    or, for a ``Box`` space, the single group ``obs_group`` (default ``policy``); every group is float32. Actions must
    come from a ``Box`` space of shape ``(A,)``; they are clipped to the box before stepping (non-finite entries act as
    0, counted in ``extras["counts"]["nonfinite_actions"]``), as our own tasks clip theirs.

    Args:
        env: a registered id (made with ``gymnasium.make_vec``), a ``gymnasium.Env`` (``num_envs`` must be 1: an
            instance cannot be copied), a callable returning a new ``gymnasium.Env``, or a
            ``gymnasium.vector.VectorEnv`` (used as it is, in whatever autoreset mode it declares).
        num_envs: parallel envs to make (default 1); for a vector env, None or its own ``num_envs``.
        vectorization_mode: ``"sync"`` (one process) or ``"async"`` (one worker process per env) when the adapter makes
            the vector env.
        autoreset_mode: the mode of a vector env the adapter makes (``SAME_STEP`` costs one call per step).
        seed: seed of the first reset (env ``i`` gets ``seed + i``, gymnasium's rule); later resets continue the envs'
            random streams. None: unseeded.
        device: torch device of the returned tensors.
        obs_group: group name of a ``Box`` observation.
        **make_kwargs: passed to ``gymnasium.make_vec`` with an id (e.g. ``max_episode_steps``, ``render_mode``,
            ``wrappers``, or the env's own arguments).

    ``episode_length_buf`` counts the steps of every env's current episode; unlike our tasks' buffer, writing it does
    not move gymnasium's own ``TimeLimit`` (so ``learn(init_at_random_ep_len=True)`` does not spread the time-outs).
    """

    def __init__(
        self,
        env: GymnasiumSource,
        num_envs: int | None = None,
        *,
        vectorization_mode: str = "sync",
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        seed: int | None = 0,
        device: torch.device | str = "cpu",
        obs_group: str = "policy",
        **make_kwargs: Any,
    ) -> None:
        self.vector_env = _vectorize(env, num_envs, vectorization_mode, _parse_autoreset(autoreset_mode), make_kwargs)
        vec = self.vector_env
        self.num_envs = int(vec.num_envs)
        self.device = torch.device(device)
        self.autoreset_mode = _declared_autoreset(vec)
        self.cfg = vec.spec
        """gymnasium's ``EnvSpec`` of the vector env (id and make arguments), or None."""
        self._groups = _observation_groups(vec.single_observation_space, obs_group)
        self._action_low, self._action_high, self._action_dtype = _box_actions(vec.single_action_space)
        self.num_actions = int(self._action_low.shape[0])
        self.max_episode_length = _max_episode_steps(vec)
        self.step_dt = float(_sub_env_attr(vec, "dt", 0.0))
        self.episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._episode_sums: dict[str, np.ndarray] = {}
        self._seed = seed
        self._obs = self.reset()

    # --- Env ---------------------------------------------------------------------------------------------------------

    def reset(self) -> TensorDict:
        """Reset every env: with ``seed`` the first time, continuing the envs' random streams afterwards."""
        obs, _ = self.vector_env.reset(seed=self._seed)
        self._seed = None
        self.episode_length_buf.zero_()
        self._episode_sums.clear()
        self._obs = self._tensordict(self._group_arrays(obs))
        return self._obs

    def get_observations(self) -> TensorDict:
        return self._obs

    def step(self, actions: torch.Tensor) -> StepResult:
        n, a = self.num_envs, self.num_actions
        act = actions.detach().to("cpu", torch.float32).numpy()
        if act.shape != (n, a):
            raise ValueError(f"actions have shape {act.shape}; expected (num_envs, num_actions) = {(n, a)}")
        finite = np.isfinite(act)
        act = np.clip(np.where(finite, act, 0.0), self._action_low, self._action_high).astype(self._action_dtype)
        obs, reward, terminated, truncated, info = self.vector_env.step(act)
        terminated = np.asarray(terminated, dtype=bool)
        # gymnasium sets both flags when an env terminates on its time limit's last step: that is a terminal state.
        truncated = np.asarray(truncated, dtype=bool) & ~terminated
        done = terminated | truncated
        any_done = bool(done.any())

        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            arrays = self._group_arrays(obs)
            final_arrays = self._same_step_final(arrays, info, done) if any_done else arrays
            self._add_episode_sums(info, ~done)  # at finished envs the top-level info is the reset's
            self._add_episode_sums(info.get("final_info", {}), done)
        else:
            # NEXT_STEP / DISABLED: this is the final observation; reset the finished envs now, so that NEXT_STEP's
            # reset step (action ignored, reward 0) never happens.
            final_arrays = self._group_arrays(obs)
            arrays = final_arrays
            self._add_episode_sums(info, np.ones_like(done))
            if any_done:
                obs, _ = self.vector_env.reset(options={"reset_mask": done.copy()})
                arrays = self._group_arrays(obs)

        self._obs = self._tensordict(arrays)
        done_t = torch.from_numpy(done).to(self.device)
        self.episode_length_buf += 1
        self.episode_length_buf.masked_fill_(done_t, 0)
        extras: dict[str, Any] = {"final_obs": self._tensordict(final_arrays) if any_done else self._obs}
        if any_done and self._episode_sums:
            extras["episode"] = {
                f"reward/{key.removeprefix(EPISODE_SUM_PREFIX)}": self._tensor(sums.astype(np.float32))
                for key, sums in self._episode_sums.items()
            }
            for sums in self._episode_sums.values():
                sums[done] = 0.0
        if not finite.all():
            extras["counts"] = {"nonfinite_actions": torch.tensor(int((~finite).any(-1).sum()), device=self.device)}
        rewards = self._tensor(np.asarray(reward, dtype=np.float32))
        return self._obs, rewards, self._tensor(terminated), self._tensor(truncated), extras

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The ``Box`` action space's bounds when all are finite (SAC maps its squashed output onto them), else None."""
        if not (np.isfinite(self._action_low).all() and np.isfinite(self._action_high).all()):
            return None
        return self._tensor(self._action_low.astype(np.float32)), self._tensor(self._action_high.astype(np.float32))

    def deployment_spec(self) -> dict[str, Any]:
        """Observation layout and the action box actions are clipped to (``None``: unbounded), for exported policies."""
        obs = self._obs
        return {
            "observation": {name: [(name, int(obs[name][0].numel()))] for name, _ in self._groups},
            "action": {
                "low": [float(v) if np.isfinite(v) else None for v in self._action_low],
                "high": [float(v) if np.isfinite(v) else None for v in self._action_high],
            },
        }

    def render(self, worlds: tuple[int, ...] = (0,), width: int = 640, height: int = 480) -> Any:
        """Frames ``uint8 [len(worlds), H, W, 3]`` of the chosen envs. gymnasium fixes the image size when the env is
        made (MuJoCo: ``width=``/``height=`` make arguments), so ``width`` and ``height`` are not used here."""
        if self.vector_env.render_mode != "rgb_array":
            raise NotImplementedError(
                f"rendering needs a gymnasium env made with render_mode='rgb_array'; "
                f"this one has render_mode={self.vector_env.render_mode!r}"
            )
        frames = self.vector_env.render()
        if frames is None:
            raise NotImplementedError("the gymnasium vector env returned no frames")
        return np.stack([np.asarray(frames[i]) for i in worlds])

    def close(self) -> None:
        self.vector_env.close()

    # --- numpy <-> torch ---------------------------------------------------------------------------------------------

    def _group_arrays(self, obs: Any) -> dict[str, np.ndarray]:
        """One float32 array ``[N, ...]`` per group, copied: a vector env made with ``copy=False`` reuses its buffer."""
        return {name: np.array(obs if key is None else obs[key], dtype=np.float32) for name, key in self._groups}

    def _same_step_final(
        self, arrays: dict[str, np.ndarray], info: dict[str, Any], done: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The post-reset observation with the rows of finished envs replaced by ``infos["final_obs"]``."""
        if "final_obs" not in info:
            raise RuntimeError(
                f"{self.vector_env} declares autoreset_mode SAME_STEP but reported finished envs without "
                "infos['final_obs'] (gymnasium >= 1.0 provides it): the final observation is unknown"
            )
        rows = np.flatnonzero(np.asarray(info["_final_obs"], dtype=bool) & done)
        finals = info["final_obs"]
        out = {}
        for name, key in self._groups:
            array = arrays[name].copy()
            if rows.size:
                array[rows] = np.stack([finals[i] if key is None else finals[i][key] for i in rows])
            out[name] = array
        return out

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def _tensordict(self, arrays: dict[str, np.ndarray]) -> TensorDict:
        groups = {name: self._tensor(a.reshape(self.num_envs, 1) if a.ndim == 1 else a) for name, a in arrays.items()}
        return TensorDict(groups, batch_size=[self.num_envs], device=self.device)

    def _add_episode_sums(self, info: dict[str, Any], rows: np.ndarray) -> None:
        """Add this step's ``reward_*`` info entries of the envs in ``rows`` (and present in the info) to the sums."""
        for key, value in info.items():
            if not key.startswith(EPISODE_SUM_PREFIX):
                continue
            array = np.asarray(value)
            if array.shape != (self.num_envs,) or array.dtype.kind not in "biuf":
                continue
            present = np.asarray(info.get(f"_{key}", True), dtype=bool) & rows
            sums = self._episode_sums.setdefault(key, np.zeros(self.num_envs, dtype=np.float64))
            sums += np.where(present, array, 0.0)


# --- construction helpers ---------------------------------------------------------------------------------------------


def _parse_autoreset(mode: AutoresetMode | str) -> AutoresetMode:
    """An ``AutoresetMode``, its value (``"SameStep"``) or its name (``"same_step"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    for candidate in AutoresetMode:
        if mode in (candidate.value, candidate.name, candidate.name.lower()):
            return candidate
    allowed = [m.name for m in AutoresetMode] + [m.value for m in AutoresetMode]
    raise ValueError(f"autoreset_mode={mode!r}; allowed: {allowed}")


def _vectorize(
    env: GymnasiumSource,
    num_envs: int | None,
    vectorization_mode: str,
    autoreset_mode: AutoresetMode,
    make_kwargs: dict[str, Any],
) -> VectorEnv:
    """The vector env to drive: ``env`` itself, or one made from an id, an instance or a factory."""
    if vectorization_mode not in VECTORIZATION_MODES:
        raise ValueError(f"vectorization_mode={vectorization_mode!r}; allowed: {list(VECTORIZATION_MODES)}")
    if isinstance(env, VectorEnv):
        if num_envs is not None and num_envs != env.num_envs:
            raise ValueError(f"num_envs={num_envs} but the given vector env has num_envs={env.num_envs}")
        if make_kwargs:
            raise TypeError(f"make arguments {sorted(make_kwargs)} apply to an env id only, not to a vector env")
        return env
    n = 1 if num_envs is None else int(num_envs)
    if n < 1:
        raise ValueError(f"num_envs must be >= 1, got {n}")
    vector_kwargs: dict[str, Any] = {"autoreset_mode": autoreset_mode}
    if isinstance(env, str):
        return gym.make_vec(
            env, num_envs=n, vectorization_mode=vectorization_mode, vector_kwargs=vector_kwargs, **make_kwargs
        )
    if make_kwargs:
        raise TypeError(f"make arguments {sorted(make_kwargs)} apply to an env id only; configure the env yourself")
    if isinstance(env, gym.Env):
        if n != 1 or vectorization_mode != "sync":
            raise ValueError(
                "a gymnasium.Env instance is one env in this process: use num_envs=1 and vectorization_mode='sync', "
                "or pass a factory (a callable returning a new env) or an env id"
            )
        instance = env
        return SyncVectorEnv([lambda: instance], **vector_kwargs)
    if callable(env):
        cls = SyncVectorEnv if vectorization_mode == "sync" else AsyncVectorEnv
        return cls([env] * n, **vector_kwargs)
    raise TypeError(
        "env must be a gymnasium env id (str), a gymnasium.Env, a callable returning one, or a "
        f"gymnasium.vector.VectorEnv; got {type(env).__name__}"
    )


def _declared_autoreset(vec: VectorEnv) -> AutoresetMode:
    """The vector env's ``metadata["autoreset_mode"]``; NEXT_STEP (gymnasium's default) when it declares none.

    Assuming NEXT_STEP is safe for a DISABLED env too: the adapter handles both by resetting finished envs at once.
    """
    mode = vec.metadata.get("autoreset_mode")
    if mode is None:
        gym.logger.warn(f"{vec} declares no metadata['autoreset_mode']; assuming gymnasium's default NEXT_STEP")
        mode = AutoresetMode.NEXT_STEP
    mode = _parse_autoreset(mode)
    inner = vec.unwrapped
    if mode is AutoresetMode.NEXT_STEP and isinstance(inner, AsyncVectorEnv) and not inner.shared_memory:
        # gymnasium 1.4's async worker clears its pending-reset flag on reset(reset_mask) only with shared memory;
        # without it the env would still insert a reset step (reward 0, action ignored) after our reset.
        raise ValueError(
            "an AsyncVectorEnv with autoreset_mode NEXT_STEP needs shared_memory=True (gymnasium's worker keeps a "
            "pending reset after reset(options={'reset_mask': ...}) otherwise); or use SAME_STEP or DISABLED"
        )
    return mode


def _observation_groups(space: spaces.Space, obs_group: str) -> list[tuple[str, str | None]]:
    """``(group name, Dict key or None)`` per observation group; only Box and Dict-of-Box spaces are supported."""
    allowed = "supported: Box, or a Dict whose entries are all Box (each entry becomes an observation group)"
    if isinstance(space, spaces.Box):
        return [(obs_group, None)]
    if isinstance(space, spaces.Dict):
        bad = {key: type(sub).__name__ for key, sub in space.spaces.items() if not isinstance(sub, spaces.Box)}
        if bad:
            raise ValueError(f"observation space Dict has non-Box entries {bad}; {allowed}")
        return [(str(key), str(key)) for key in space.spaces]
    raise ValueError(f"observation space {space} ({type(space).__name__}) is not supported; {allowed}")


def _box_actions(space: spaces.Space) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """``(low, high, dtype)`` of a ``Box`` action space of shape ``(A,)``."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(
            f"action space {space} ({type(space).__name__}) is not supported: only Box action spaces of shape (A,) "
            "(continuous actions) are; Discrete, MultiDiscrete, MultiBinary and nested spaces are not"
        )
    return np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64), space.dtype


def _sub_env_attr(vec: VectorEnv, name: str, default: Any) -> Any:
    """Attribute ``name`` of the first sub-env (through its wrappers), or ``default`` when unavailable."""
    get_attr = getattr(vec, "get_attr", None)
    if get_attr is None:
        return getattr(vec, name, default)
    try:
        return get_attr(name)[0]
    except AttributeError:
        return default


def _max_episode_steps(vec: VectorEnv) -> int:
    """The sub-envs' time limit (their spec's ``max_episode_steps``, make overrides included); 0 when none."""
    sub_spec = _sub_env_attr(vec, "spec", None)
    if sub_spec is not None:
        return int(sub_spec.max_episode_steps or 0)
    # A vector env without sub-envs (a vector entry point) records a make override in its spec's kwargs.
    spec = vec.spec
    return 0 if spec is None else int(spec.kwargs.get("max_episode_steps", spec.max_episode_steps) or 0)
