"""Isaac Gym tasks (IsaacGymEnvs ``VecTask``, legged_gym ``BaseTask``) as this library's :class:`~rsl_rl.env.Env`.

Isaac Gym itself is never imported here: a task object arrives already built by the user's code, and the adapter
only reads its torch buffers and calls ``step``/``reset``. Importing this module therefore works without Isaac Gym.

Two return conventions of ``step(actions)`` exist in the wild; the adapter detects which one on the first step:

* IsaacGymEnvs ``VecTask``: ``(obs_dict, rew, dones, extras)`` with ``obs_dict = {"obs": ..., "states": ...}``
  (``"states"`` only when the task has ``num_states > 0``); older tasks return a bare ``obs`` tensor instead.
* legged_gym: ``(obs, privileged_obs, rew, dones, extras)``, ``privileged_obs`` None without privileged observations.

Observation groups: ``policy`` is ``obs``; ``critic`` is ``states`` / ``privileged_obs`` when the task has them and is
absent otherwise; any other key of an ``obs_dict`` keeps its own name.

Final observations: Isaac Gym tasks do not report the observation an env reached before its automatic reset. As in
:class:`~rsl_rl.env.RslRlEnvAdapter`, ``extras["final_obs"]`` is the observation the policy acted on (``s_t``), so the
time-out bootstrap ``γ·V(final_obs)`` becomes rsl_rl's own approximation ``γ·V(s_t)``, the value these tasks were tuned
with. Many IsaacGymEnvs tasks reset finished envs at the start of the *next* step (``reset_idx`` in
``pre_physics_step``): there the observation returned for a finished env is its last one, and the policy's next action
is applied to the freshly reset state -- the same behaviour those tasks have under rl_games.

Time-outs: ``extras["time_outs"]`` when the task reports it (VecTask always; legged_gym with ``send_timeouts``). Else
a finished env counts as timed out when its episode reached ``max_episode_length - 1`` steps, VecTask's own rule
(``progress_buf >= max_episode_length - 1``). VecTask applies that rule *after* ``post_physics_step``, so a task that
resets inside ``post_physics_step`` (IsaacGymEnvs' AnymalTerrain) reports ``time_outs`` that are always False: pass
``time_outs_from_episode_length=True`` for such a task, or every time-out becomes a termination.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult

REQUIRED = ("num_envs", "num_actions", "max_episode_length", "device", "obs_buf", "step", "reset")
"""What every Isaac Gym task has and the adapter reads; plus an episode counter (``progress_buf`` or
``episode_length_buf``)."""

STEP_FORMS = (
    "(obs_dict, rew, dones, extras) with obs_dict = {'obs': Tensor, 'states': Tensor (optional)} [IsaacGymEnvs]",
    "(obs, rew, dones, extras) with obs a Tensor [older VecTask]",
    "(obs, privileged_obs | None, rew, dones, extras) [legged_gym]",
)

BUFFERS = ("obs_buf", "states_buf", "privileged_obs_buf", "rew_buf")
"""Task buffers that tasks overwrite in place on the next step; returned tensors that *are* one of them are copied."""

Groups = dict[str, torch.Tensor]
Unpacked = tuple[Groups, torch.Tensor, torch.Tensor, Mapping[str, Any]]


class IsaacGymEnvAdapter(Env):
    """Expose an Isaac Gym ``VecTask``-style task as an :class:`Env` (see the module docstring for the conventions).

    Tensors come back on the task's ``rl_device`` (IsaacGymEnvs) or ``device`` (legged_gym). ``step`` never
    synchronises with the host: the form is detected from Python objects, time-outs and the split are tensor ops.
    """

    def __init__(self, task: Any, time_outs_from_episode_length: bool = False) -> None:
        """``time_outs_from_episode_length``: ignore the task's ``extras["time_outs"]`` and apply VecTask's
        episode-length rule here, where the counter before the step is still known (see the module docstring)."""
        missing = [name for name in REQUIRED if not hasattr(task, name)]
        if not (hasattr(task, "progress_buf") or hasattr(task, "episode_length_buf")):
            missing.append("progress_buf or episode_length_buf")
        if missing:
            hint = ""
            if hasattr(task, "get_observations") and not hasattr(task, "obs_buf"):
                hint = " An rsl_rl-style env (Isaac Lab, mjlab) goes through rsl_rl.env.RslRlEnvAdapter instead."
            raise TypeError(
                f"IsaacGymEnvAdapter needs an Isaac Gym VecTask-style task; {type(task).__name__} lacks "
                f"{', '.join(missing)}. Expected: {', '.join(REQUIRED)} and progress_buf (IsaacGymEnvs) or "
                f"episode_length_buf (legged_gym).{hint}"
            )
        self.task = task
        self.num_envs = int(task.num_envs)
        self.num_actions = int(task.num_actions)
        # IsaacGymEnvs simulates on `device` but returns observations and rewards on `rl_device`.
        self.device = torch.device(getattr(task, "rl_device", task.device))
        max_len = task.max_episode_length  # legged_gym: a float from np.ceil; some tasks: a tensor
        self.max_episode_length = int(max_len.max()) if isinstance(max_len, torch.Tensor) else int(max_len)
        self.step_dt = _step_dt(task)
        self.cfg = getattr(task, "cfg", None)
        self.time_outs_from_episode_length = time_outs_from_episode_length
        self._counter = "progress_buf" if hasattr(task, "progress_buf") else "episode_length_buf"
        self._unpack: Callable[[tuple[Any, ...]], Unpacked] | None = None
        self._form_length = 0
        self._obs: TensorDict | None = None

    @property
    def episode_length_buf(self) -> torch.Tensor:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The task's own counter, so that the runner's ``init_at_random_ep_len`` spreads the task's time-outs."""
        return getattr(self.task, self._counter)

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        getattr(self.task, self._counter)[:] = value  # in place: the task's jit functions may hold the buffer

    def reset(self) -> TensorDict:
        """Call the task's ``reset``: VecTask returns ``obs_dict``, legged_gym ``(obs, privileged_obs)``."""
        out = self.task.reset()
        if out is None:
            groups = self._groups_from_buffers()
        elif isinstance(out, tuple) and len(out) == 2:
            groups = self._groups(out[0], out[1])
        else:
            groups = self._groups(out, None)
        self._obs = TensorDict(groups, batch_size=[self.num_envs], device=self.device)
        return self._obs

    def get_observations(self) -> TensorDict:
        """The last observations; before the first step the task's ``reset()``, which is how Isaac Gym training
        scripts obtain the first observations (reading ``obs_buf`` earlier would give zeros for most tasks)."""
        return self._obs if self._obs is not None else self.reset()

    def step(self, actions: torch.Tensor) -> StepResult:
        acted = self.get_observations()
        # The counter before the step: a task that resets inside `step` zeroes it for finished envs.
        before = self.episode_length_buf.clone()
        out = self.task.step(actions)
        if self._unpack is None:
            self._unpack = self._detect_form(out)
        elif not isinstance(out, tuple) or len(out) != self._form_length:
            raise TypeError(f"{type(self.task).__name__}.step() changed its return form; {self._forms_message(out)}")
        groups, rewards, dones, extras = self._unpack(out)
        obs = TensorDict(groups, batch_size=[self.num_envs], device=self.device)
        dones = dones.reshape(self.num_envs).to(torch.bool)
        time_outs = None if self.time_outs_from_episode_length else extras.get("time_outs")
        if time_outs is None:
            time_outs = self._timed_out(before)
        time_outs = time_outs.reshape(self.num_envs).to(torch.bool)
        terminated = dones & ~time_outs
        truncated = dones & time_outs
        out_extras: dict[str, Any] = {"final_obs": acted}
        logs = _logs(extras)
        if logs:
            out_extras["log"] = logs
        self._obs = obs
        return obs, self._own(rewards).reshape(self.num_envs), terminated, truncated, out_extras

    def close(self) -> None:
        """Isaac Gym tasks rarely define ``close``; the simulator is released with the process."""
        close = getattr(self.task, "close", None)
        if callable(close):
            close()

    # --- helpers, in the order ``step`` uses them --------------------------------------------------------------------

    def _detect_form(self, out: Any) -> Callable[[tuple[Any, ...]], Unpacked]:
        """Choose the unpacking for the task's return form once, on the first step."""
        if isinstance(out, tuple) and len(out) == 4 and isinstance(out[0], dict | torch.Tensor):
            self._form_length = 4
            return self._unpack_vectask
        if isinstance(out, tuple) and len(out) == 5 and isinstance(out[0], torch.Tensor):
            self._form_length = 5
            return self._unpack_legged_gym
        raise TypeError(f"{type(self.task).__name__}.step() returned an unsupported form; {self._forms_message(out)}")

    def _forms_message(self, out: Any) -> str:
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        return f"allowed forms: {'; '.join(STEP_FORMS)}. Got {got}."

    def _unpack_vectask(self, out: tuple[Any, ...]) -> Unpacked:
        obs, rewards, dones, extras = out
        return self._groups(obs, None), rewards, dones, extras

    def _unpack_legged_gym(self, out: tuple[Any, ...]) -> Unpacked:
        obs, privileged, rewards, dones, extras = out
        return self._groups(obs, privileged), rewards, dones, extras

    def _groups(self, obs: Any, privileged: torch.Tensor | None) -> Groups:
        """``obs`` (a VecTask ``obs_dict`` or a tensor) and legged_gym's ``privileged_obs`` as observation groups."""
        if isinstance(obs, torch.Tensor):
            groups = {"policy": obs}
        elif isinstance(obs, dict) and "obs" in obs:
            names = {"obs": "policy", "states": "critic"}
            groups = {names.get(str(key), str(key)): value for key, value in obs.items()}
        else:
            raise TypeError(
                f"{type(self.task).__name__} returned observations as {type(obs).__name__}"
                f"{' without the key obs' if isinstance(obs, dict) else ''}; allowed: a Tensor or a dict "
                "{'obs': Tensor, 'states': Tensor (optional)}."
            )
        if privileged is not None:
            groups["critic"] = privileged
        return {name: self._own(value) for name, value in groups.items()}

    def _groups_from_buffers(self) -> Groups:
        """For a task whose ``reset()`` returns nothing: its observation buffers (``states_buf`` is allocated by
        every VecTask, so it counts only with ``num_states > 0``)."""
        privileged = getattr(self.task, "privileged_obs_buf", None)
        if privileged is None and int(getattr(self.task, "num_states", 0) or 0) > 0:
            privileged = self.task.states_buf
        return self._groups(self.task.obs_buf, privileged)

    def _own(self, value: torch.Tensor) -> torch.Tensor:
        """A copy if ``value`` is one of the task's buffers, which the task overwrites in place on its next step
        (``rew_buf[:] = ...``) while callers may still hold this step's result (replay, ``final_obs``)."""
        if any(value is getattr(self.task, name, None) for name in BUFFERS):
            value = value.clone()
        return value.to(self.device)

    def _timed_out(self, before: torch.Tensor) -> torch.Tensor:
        """VecTask's rule ``progress_buf >= max_episode_length - 1`` for tasks that do not report ``time_outs``.

        The episode's length is the counter after the step, or the counter before it plus one where the task reset
        the env inside ``step`` (counter back to 0). Tasks that reset at the start of the next step keep the counter
        until then, so reading it after the step is right for them, also for an episode that ends on its first step.
        """
        after = self.episode_length_buf
        length = torch.where(after > 0, after, before + 1)
        return length >= self.max_episode_length - 1


def _step_dt(task: Any) -> float:
    """Seconds per policy step: ``step_dt`` if the task has it, else ``dt`` times VecTask's ``control_freq_inv``
    (physics steps per policy step). legged_gym's ``dt`` already includes its decimation and it has no
    ``control_freq_inv``."""
    if hasattr(task, "step_dt"):
        return float(task.step_dt)
    return float(getattr(task, "dt", 0.0)) * int(getattr(task, "control_freq_inv", 1))


def _logs(extras: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars for the logger: legged_gym's ``extras["episode"]`` (per-term means over the envs reset this step),
    ``extras["log"]``, and top-level scalars of VecTask's extras (``consecutive_successes``)."""
    logs: dict[str, Any] = {}
    for key in ("episode", "log"):
        for name, value in (extras.get(key) or {}).items():
            logs[name if "/" in name else f"Episode/{name}"] = value
    for name, value in extras.items():
        scalar = isinstance(value, float | int) and not isinstance(value, bool)
        if name != "time_outs" and (scalar or (isinstance(value, torch.Tensor) and value.ndim == 0)):
            logs[name] = value
    return logs
