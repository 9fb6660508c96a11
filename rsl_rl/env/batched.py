"""The environment contract: batched torch environments on one device.

Two interfaces meet here:

* :class:`Env` is this library's contract. ``step`` returns ``terminated`` and ``truncated`` separately and, for every
  env that finished, the observation it reached *before* the automatic reset (``extras["final_obs"]``), so that a
  time-limit truncation can be bootstrapped from the exact value ``V(s_{T+1})``.
* :class:`~rsl_rl.env.vec_env.VecEnv` (in ``vec_env.py``, the module path rsl-rl-lib has) is rsl-rl-lib 5.x's
  abstract base, which Isaac Lab and mjlab environments subclass. It reports a
  single ``dones`` flag plus ``extras["time_outs"]`` and no final observation. :class:`RslRlEnvAdapter` turns such an
  env into an :class:`Env`; the runner applies it automatically.

``extras`` keys understood by the runner (all optional):

* ``"final_obs"``: TensorDict ``[N]`` -- observation before the reset; rows of envs that did not finish are ignored.
* ``"episode"``: dict ``name -> Tensor[N]`` -- per-env episode statistics (e.g. a reward term's episode sum), read only
  for envs that finished at this step and averaged over finished episodes by the logger.
* ``"log"``: dict ``name -> float | Tensor[]`` -- scalars (curriculum level, ...) averaged over the steps that report
  them.
* ``"counts"``: dict ``name -> Tensor[]`` -- events summed over an iteration (e.g. worlds reset because their physics
  became non-finite); non-zero totals are reported once per iteration.
* ``"success"``: bool ``[N]`` -- the task's success at the observation each env reached (before any reset); stored by
  ``rsl-rl record-demos`` and used to label reward-classifier data.
* ``"intervention"``: bool ``[N]`` and ``"intervention_action"``: ``[N, A]`` (env units) -- envs whose action a human or
  scripted override replaced this step; SAC/RLPD store those transitions in the replay and the demo buffer (HIL-SERL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from tensordict import TensorDict

StepResult = tuple[TensorDict, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]
"""``(obs, reward[N], terminated[N] bool, truncated[N] bool, extras)``."""


class Env(ABC):
    """Batched environment contract.

    Attributes every implementation sets: ``num_envs``, ``num_actions``, ``device``, ``max_episode_length`` (steps),
    ``episode_length_buf`` (``Tensor[N]`` long, steps since the last reset), ``step_dt`` (seconds per env step) and
    ``cfg`` (the task's config object).

    Envs reset finished worlds themselves, by masks, without the host learning how many finished.
    """

    num_envs: int
    num_actions: int
    device: torch.device
    max_episode_length: int
    episode_length_buf: torch.Tensor
    step_dt: float
    cfg: Any

    @abstractmethod
    def reset(self) -> TensorDict:
        """Reset every env and return the observation groups (batch size ``[num_envs]``)."""

    @abstractmethod
    def step(self, actions: torch.Tensor) -> StepResult:
        """Advance every env by one step with ``actions[num_envs, num_actions]``.

        Returns the observations after automatic reset of finished envs, ``reward[N]``, ``terminated[N]`` (a terminal
        state: no bootstrap), ``truncated[N]`` (time limit and not terminated: bootstrap from ``final_obs``) and extras.
        """

    @abstractmethod
    def get_observations(self) -> TensorDict:
        """Return the current observation groups without stepping."""

    def state_dict(self) -> dict[str, Any]:
        """Return the env's full state (tensors and RNG), for exact resume. Optional: empty means not supported."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        if state:
            raise NotImplementedError(f"{type(self).__name__} does not implement load_state_dict")

    def deployment_spec(self) -> dict[str, Any]:
        """Optional: what a deployed policy needs to know about this env, embedded in exported policies.

        ``{"observation": {group: [(term name, size), ...]}, "action": {"names": [...], "default": [...],
        "scale": [...], "low": [...], "high": [...], "kp": [...], "kd": [...], "command": "joint_position" | "actuator",
        "limit": "clip", "last_action": "clipped" | None}}`` -- every key optional. The terms of a group are listed in
        the order the group concatenates them; ``low``/``high`` are the bounds the env clips actions to in training
        (the runtime clips to the same). ``deploy/metadata.py`` says what each entry means.
        """
        return {}

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Optional: ``(low, high)`` ``[num_actions]`` that the env clips actions to; SAC maps its squashed output onto
        them. Default: the ``low``/``high`` of :meth:`deployment_spec` when every entry is finite, else None."""
        action = self.deployment_spec().get("action", {})
        low, high = action.get("low"), action.get("high")
        if low is None or high is None or any(v is None for v in (*low, *high)):
            return None
        low_t = torch.tensor([float(v) for v in low], device=self.device)
        high_t = torch.tensor([float(v) for v in high], device=self.device)
        if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
            return None
        return low_t, high_t

    def render(self, worlds: tuple[int, ...] = (0,), width: int = 640, height: int = 480) -> Any:
        """Optional: RGB frames ``uint8 [len(worlds), height, width, 3]`` of the chosen envs (numpy)."""
        raise NotImplementedError(f"{type(self).__name__} cannot render")

    def close(self) -> None:  # noqa: B027 -- optional hook, most envs hold nothing to release
        """Release simulator resources."""


class RslRlEnvAdapter(Env):
    """Expose an rsl_rl 5.x style env (``get_observations``, ``step -> (obs, rew, dones, extras)``) as an :class:`Env`.

    Such envs do not return the observation reached before an automatic reset. The adapter therefore reports the
    observation the policy acted on (``s_t``) as ``final_obs``, so that bootstrapping a time-out from
    ``V(final_obs)`` becomes rsl_rl's own approximation ``r_t += γ·V(s_t)`` (rsl_rl #151). An env that can report its
    true final observation should implement :class:`Env` directly to get the exact bootstrap.
    """

    def __init__(self, env: Any) -> None:
        for attr in ("num_envs", "num_actions", "get_observations", "step"):
            if not hasattr(env, attr):
                raise TypeError(
                    f"RslRlEnvAdapter needs an rsl_rl-style env with '{attr}'; got {type(env).__name__}. "
                    "Expected attributes: num_envs, num_actions, max_episode_length, device, get_observations(), "
                    "step()."
                )
        self.env = env
        self.num_envs = int(env.num_envs)
        self.num_actions = int(env.num_actions)
        self.device = torch.device(getattr(env, "device", "cpu"))
        max_len = getattr(env, "max_episode_length", 0)
        self.max_episode_length = int(max_len.max()) if isinstance(max_len, torch.Tensor) else int(max_len)
        self.step_dt = float(getattr(env, "step_dt", 0.0))
        self.cfg = getattr(env, "cfg", None)
        self._obs: TensorDict | None = None

    @property
    def episode_length_buf(self) -> torch.Tensor:  # type: ignore[override]
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.episode_length_buf = value

    def reset(self) -> TensorDict:
        if hasattr(self.env, "reset"):
            out = self.env.reset()
            # Isaac Lab returns (obs, extras); plain envs may return obs or nothing.
            if isinstance(out, tuple):
                out = out[0]
            if isinstance(out, TensorDict):
                self._obs = out
                return out
        return self.get_observations()

    def get_observations(self) -> TensorDict:
        self._obs = _as_tensordict(self.env.get_observations(), self.num_envs)
        return self._obs

    def step(self, actions: torch.Tensor) -> StepResult:
        prev_obs = self._obs if self._obs is not None else self.get_observations()
        obs, rewards, dones, extras = self.env.step(actions)
        obs = _as_tensordict(obs, self.num_envs)
        dones = dones.to(torch.bool)
        time_outs = extras.get("time_outs")
        time_outs = torch.zeros_like(dones) if time_outs is None else time_outs.to(torch.bool).reshape(dones.shape)
        truncated = dones & time_outs
        terminated = dones & ~time_outs
        out_extras: dict[str, Any] = {"final_obs": prev_obs}
        # Isaac Lab and mjlab put already-averaged scalars under "log" (or "episode" in older versions).
        logs: dict[str, Any] = {}
        for key in ("log", "episode"):
            for name, value in (extras.get(key) or {}).items():
                logs[name if "/" in name else f"Episode/{name}"] = value
        if logs:
            out_extras["log"] = logs
        self._obs = obs
        return obs, rewards.reshape(-1), terminated, truncated, out_extras

    def close(self) -> None:
        if hasattr(self.env, "close"):
            self.env.close()


def split_dones(dones: torch.Tensor, extras: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """rsl-rl-lib's ``(dones, extras["time_outs"])`` → ``(terminated, truncated)``, both bool ``[N]``.

    ``dones`` of any dtype (Isaac Lab's are long); a time-out that is also a done is a truncation (bootstrapped), as in
    rsl-rl-lib; without ``time_outs`` every done is a termination.
    """
    done = dones.to(torch.bool).reshape(-1)
    time_outs = extras.get("time_outs")
    truncated = done & time_outs.to(torch.bool).reshape(-1) if time_outs is not None else torch.zeros_like(done)
    return done & ~truncated, truncated


def _as_tensordict(obs: Any, num_envs: int) -> TensorDict:
    """Accept a TensorDict, a dict of tensors or a bare tensor (treated as the ``policy`` group)."""
    if isinstance(obs, TensorDict):
        return obs
    if isinstance(obs, torch.Tensor):
        return TensorDict({"policy": obs}, batch_size=[num_envs])
    if isinstance(obs, dict):
        return TensorDict(dict(obs), batch_size=[num_envs])
    raise TypeError(f"observations must be a TensorDict, a dict of tensors or a tensor; got {type(obs).__name__}")


def as_env(env: Any) -> Env:
    """Return ``env`` if it implements :class:`Env`, else wrap an rsl_rl-style env in :class:`RslRlEnvAdapter`."""
    return env if isinstance(env, Env) else RslRlEnvAdapter(env)
