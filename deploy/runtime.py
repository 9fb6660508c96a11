"""Torch-free policy runtime for a robot computer: numpy + onnxruntime only.

    runtime = PolicyRuntime("policy.onnx", SafetyConfig(rate_limit=0.2))
    result = runtime.step(observation, timestamp=t_obs)   # or runtime.observation(signals) to assemble it by name
    send(result.action)                                    # result.fault / result.safe say what the safety layer did

Every action passes the safety layer:

* an observation that is not a float array of the policy's shape, holds NaN/inf (or values beyond
  ``max_abs_observation`` when set), or is older than ``max_observation_age_s`` → the safe action (the default pose),
  a fault flag, and the recurrent state is not advanced;
* a policy output that is not finite → the safe action;
* a policy call slower than the watchdog (default: the control period) → ``OVERRUN``; ``max_consecutive_overruns``
  in a row latch safe mode (``LATCHED``) until :meth:`PolicyRuntime.reset`;
* every emitted action, the safe one included, is clipped to ``[low, high]`` (the same clip the task applied in
  training, ``action.limit``) and moves at most ``rate_limit`` per step from the previous one (after
  ``reset(joint_pos=...)``: from the measured pose).

The safe action is action 0: the default pose (``command = default + scale · action``). The runtime feeds the
``last_action`` observation term itself (the previous emitted action, zero after ``reset()``) unless the caller passes
it, and keeps the observation history of a policy that reads one (``metadata["history"]``): ``step`` then takes one
observation, not the stacked history. The metadata and the :class:`SafetyConfig` are checked at construction (a clear
``ValueError``); ``step`` and ``observation`` never raise on bad input. ``rsl-rl-runtime replay`` runs a policy over
logged observations.
"""

from __future__ import annotations

import argparse
import enum
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from deploy.metadata import METADATA_KEY, parse_metadata


class Fault(enum.IntFlag):
    """Why the safety layer intervened (flags combine)."""

    NONE = 0
    BAD_TYPE = 1
    """The observation is not a float32/float64 numpy array."""
    BAD_SHAPE = 2
    """The observation does not have the policy's size."""
    NON_FINITE = 4
    """NaN or inf in the observation."""
    OUT_OF_RANGE = 8
    """An observation value beyond ``max_abs_observation``."""
    STALE = 16
    """The observation is older than ``max_observation_age_s``."""
    MISSING_SIGNAL = 32
    """A named signal the observation needs was not given."""
    BAD_ACTION = 64
    """The policy produced a non-finite action."""
    OVERRUN = 128
    """The policy call took longer than the watchdog allows."""
    LATCHED = 256
    """Too many overruns in a row: safe mode until ``reset()``."""


_NONE = Fault.NONE
_BAD_TYPE, _BAD_SHAPE, _NON_FINITE, _OUT_OF_RANGE, _STALE, _MISSING_SIGNAL, _LATCHED = (
    int(f)
    for f in (
        Fault.BAD_TYPE,
        Fault.BAD_SHAPE,
        Fault.NON_FINITE,
        Fault.OUT_OF_RANGE,
        Fault.STALE,
        Fault.MISSING_SIGNAL,
        Fault.LATCHED,
    )
)


@dataclass
class SafetyConfig:
    """Limits of the safety layer (checked at construction, and again when a runtime starts)."""

    rate_limit: float | None = None
    """Largest change of any action entry between consecutive steps (action units, > 0); None disables."""
    max_observation_age_s: float | None = None
    """Observations older than this (by the timestamp given to ``step``, > 0 s) are rejected; None disables."""
    watchdog_s: float | None = None
    """Longest allowed policy call (> 0 s); None = the policy's control period (no watchdog if that is unknown)."""
    max_consecutive_overruns: int = 3
    """Overruns in a row that latch safe mode (>= 1)."""
    max_abs_observation: float | None = None
    """Observation magnitude considered corrupt (> 0; None: only NaN/inf are rejected)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that is not allowed (a NaN limit would disable its check)."""
        for name in ("rate_limit", "max_observation_age_s", "watchdog_s"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and math.isfinite(value) and value > 0):
                raise ValueError(f"SafetyConfig.{name}={value!r}; allowed: a finite number > 0 or None")
        bound = self.max_abs_observation
        if bound is not None and not (_is_number(bound) and bound > 0):  # NaN fails `> 0`
            raise ValueError(f"SafetyConfig.max_abs_observation={bound!r}; allowed: a number > 0 or None")
        count = self.max_consecutive_overruns
        if not (isinstance(count, (int, np.integer)) and not isinstance(count, bool) and count >= 1):
            raise ValueError(f"SafetyConfig.max_consecutive_overruns={count!r}; allowed: an integer >= 1")


def _is_number(value: Any) -> bool:
    """A real number: int, float or a numpy scalar of either (bool excluded)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(slots=True)
class StepResult:
    """One control step's output."""

    action: np.ndarray
    """float32 ``[action_dim]``, within ``[low, high]``."""
    fault: Fault
    """Flags of what the safety layer found (``Fault.NONE`` if nothing)."""
    safe: bool
    """True if ``action`` is the safe fall-back, not the policy's."""
    policy_seconds: float
    """Duration of the policy call (0 if it was not called)."""


class PolicyRuntime:
    """Runs an exported policy (MLP or recurrent) one control step at a time, behind the safety layer."""

    def __init__(
        self,
        path: str,
        safety: SafetyConfig | None = None,
        threads: int = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.safety = safety or SafetyConfig()
        self.safety.validate()  # the fields may have been edited after construction
        self.clock = clock
        now = clock()
        if not (_is_number(now) and math.isfinite(now)):
            raise ValueError(f"clock() returned {now!r}; allowed: a finite number of seconds")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 -- onnxruntime raises its own exception types
            raise ValueError(f"{path} is not a loadable ONNX policy: {err}") from err
        custom = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in custom:
            raise ValueError(f"{path} has no '{METADATA_KEY}' metadata: export it with `rsl-rl export`")
        self.metadata = parse_metadata(custom[METADATA_KEY], path)
        obs_meta, act_meta = self.metadata["observation"], self.metadata["action"]
        self.obs_dim, self.action_dim = int(obs_meta["dim"]), int(act_meta["dim"])
        self.history = int((self.metadata.get("history") or {}).get("length", 1))
        width = self.session.get_inputs()[0].shape[-1]
        if isinstance(width, int) and width != self.obs_dim * self.history:
            raise ValueError(
                f"{path}: the ONNX policy reads an observation {width} wide; the metadata describes {self.obs_dim} "
                f"values per step × history {self.history}"
            )
        unbounded = lambda values, inf: [inf if v is None else v for v in values]  # noqa: E731
        self.low = np.asarray(unbounded(act_meta["low"], -np.inf), dtype=np.float32)
        self.high = np.asarray(unbounded(act_meta["high"], np.inf), dtype=np.float32)
        self.default = np.asarray(act_meta["default"], dtype=np.float32)
        """The default pose (command units); action 0 commands it."""
        self.scale = np.asarray(act_meta.get("scale", [1.0] * self.action_dim), dtype=np.float32)
        self.safe_action = np.clip(np.zeros(self.action_dim, np.float32), self.low, self.high)
        """The fall-back action: the default pose, within the limits."""
        self.terms = [(t["name"], int(t["size"]), float(t.get("scale", 1.0))) for t in obs_meta["terms"]]
        period = (self.metadata.get("control") or {}).get("period_s")
        self.period = float(period) if period else None
        self.watchdog = self.safety.watchdog_s if self.safety.watchdog_s is not None else self.period
        rate = self.safety.rate_limit
        self.rate = None if rate is None else np.full(self.action_dim, float(rate), dtype=np.float32)

        # I/O binding to preallocated buffers: no allocation per step.
        self._obs = np.zeros((1, self.obs_dim * self.history), dtype=np.float32)
        # observation() assembles straight into the policy's input buffer (into a frame buffer with a history).
        self._assembled = self._obs[0] if self.history == 1 else np.zeros(self.obs_dim, dtype=np.float32)
        self._window = self._obs.reshape(self.history, self.obs_dim)  # the policy's input, oldest frame first
        self._accepted = np.zeros((self.history, self.obs_dim), dtype=np.float32)  # history of accepted frames
        self._slices = []
        # The metadata says the last_action term is the previous (clipped) action: the runtime can feed it itself.
        self._feeds_last_action = act_meta.get("last_action") == "clipped"
        start = 0
        for name, size, scale in self.terms:
            self._slices.append((name, size, scale, slice(start, start + size)))
            if name == "last_action" and size != self.action_dim:
                self._feeds_last_action = False
            start += size
        self._signal_fault = 0  # set by observation() when a signal is unusable, read by the next step(None)
        self._scratch = np.zeros(self.action_dim, dtype=np.float32)
        self._neg_rate = -self.rate if self.rate is not None else np.zeros(self.action_dim, np.float32)
        self._reference = self.safe_action.copy()  # where the rate limiter measures the next change from
        self._out = np.zeros((1, self.action_dim), dtype=np.float32)
        self._action = self._out[0]
        self._binding = self.session.io_binding()
        self._binding.bind_ortvalue_input("obs", ort.OrtValue.ortvalue_from_numpy(self._obs))
        self._binding.bind_ortvalue_output("actions", ort.OrtValue.ortvalue_from_numpy(self._out))
        recurrent = self.metadata.get("recurrent")
        self._state_in: list[np.ndarray] = []
        self._state_out: list[np.ndarray] = []
        if recurrent:
            shape = (int(recurrent["layers"]), 1, int(recurrent["hidden"]))
            for name_in, name_out in zip(recurrent["state_inputs"], recurrent["state_outputs"], strict=True):
                buf_in, buf_out = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
                self._binding.bind_ortvalue_input(name_in, ort.OrtValue.ortvalue_from_numpy(buf_in))
                self._binding.bind_ortvalue_output(name_out, ort.OrtValue.ortvalue_from_numpy(buf_out))
                self._state_in.append(buf_in)
                self._state_out.append(buf_out)
        self.reset()

    # --- control -----------------------------------------------------------------------------------------------------

    def reset(self, joint_pos: Any = None) -> None:
        """Start an episode as training does: zero the recurrent state, the observation history and the last action,
        and clear a latched fault.

        ``joint_pos``: the measured joint positions of a ``joint_position`` policy (command units); the rate limiter
        then moves the first commands from that pose instead of from the default pose.
        """
        reference = self.safe_action
        if joint_pos is not None:
            reference = self._action_of_pose(joint_pos)
        for buf in self._state_in:
            buf.fill(0.0)
        self._history_start = True
        self.last_action = np.zeros(self.action_dim, np.float32)
        """The previous emitted action: what the runtime feeds as the ``last_action`` observation term."""
        self._reference = reference.copy()
        self._signal_fault = 0
        self.overruns = 0
        self.latched = False

    def _action_of_pose(self, joint_pos: Any) -> np.ndarray:
        """The action whose command is ``joint_pos``, within the limits (a clear error for unusable input)."""
        command = self.metadata["action"].get("command", "actuator")
        if command != "joint_position":
            raise ValueError(f"reset(joint_pos=...) needs a joint-position policy; action.command is {command!r}")
        try:
            q = np.asarray(joint_pos, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"joint_pos must be {self.action_dim} numbers, got {joint_pos!r}") from err
        if q.size != self.action_dim:
            raise ValueError(f"joint_pos has {q.size} values; the policy commands {self.action_dim} joints")
        if not np.isfinite(q).all():
            raise ValueError(f"joint_pos must be finite, got {q.tolist()}")
        return np.clip((q - self.default) / self.scale, self.low, self.high).astype(np.float32)

    def observation(self, signals: Mapping[str, Any]) -> np.ndarray | None:
        """Assemble the observation vector from named signals (term names of the metadata), scaled. The
        ``last_action`` term is the runtime's own previous action unless ``signals`` has it.

        Returns None if a signal is missing (``step(None)`` then reports ``MISSING_SIGNAL``), has the wrong size
        (``BAD_SHAPE``) or is not numeric (``BAD_TYPE``); never raises. The vector is a buffer the runtime reuses:
        pass it to :meth:`step` (or copy it) before the next call.
        """
        out = self._assembled
        self._signal_fault = 0
        if not isinstance(signals, Mapping):
            self._signal_fault = _BAD_TYPE
            return None
        for name, size, scale, where in self._slices:
            value = signals.get(name)
            if value is None:
                if self._feeds_last_action and name == "last_action":
                    out[where] = self.last_action
                    continue
                self._signal_fault = _MISSING_SIGNAL
                return None
            if not isinstance(value, np.ndarray):
                try:
                    value = np.asarray(value)
                except (TypeError, ValueError):  # e.g. ragged nested lists
                    self._signal_fault = _BAD_TYPE
                    return None
            if value.dtype.kind not in "fiub":  # strings, objects, complex numbers
                self._signal_fault = _BAD_TYPE
                return None
            if value.size != size:
                self._signal_fault = _BAD_SHAPE
                return None
            out[where] = value.ravel()
            if scale != 1.0:
                out[where] *= scale
        return out

    def step(self, observation: Any, timestamp: float | np.floating[Any] | None = None) -> StepResult:
        """One control step: check the observation, run the policy, apply the safety layer. Never raises.

        A policy with an observation history takes one observation here; the runtime stacks the history.
        """
        # Faults are plain ints on the hot path (IntFlag arithmetic costs microseconds); StepResult gets a Fault.
        code = self._check(observation, timestamp)
        if code or self.latched:
            return self._fallback(Fault(code | (_LATCHED if self.latched else 0)))
        if self.history == 1:
            if observation is not self._assembled:
                self._obs[0] = observation.reshape(-1)
        elif self._history_start:  # training fills the history with an episode's first observation
            self._window[...] = observation.reshape(-1)
        else:
            self._window[:-1] = self._accepted[1:]
            self._window[-1] = observation.reshape(-1)
        start = self.clock()
        self.session.run_with_iobinding(self._binding)
        elapsed = self.clock() - start
        action = self._action
        total = float(action.sum())
        if total - total != 0.0:  # NaN or inf anywhere makes the sum NaN or inf, and x − x ≠ 0
            return self._fallback(Fault.BAD_ACTION, elapsed)
        fault = _NONE
        if self.watchdog is not None and elapsed > self.watchdog:
            self.overruns += 1
            fault = Fault.OVERRUN
            if self.overruns >= self.safety.max_consecutive_overruns:
                self.latched = True
                return self._fallback(Fault.OVERRUN | Fault.LATCHED, elapsed)
        else:
            self.overruns = 0
        # The recurrent state and the history advance only on accepted steps.
        for buf_in, buf_out in zip(self._state_in, self._state_out, strict=True):
            buf_in[...] = buf_out
        if self.history > 1:
            self._accepted[...] = self._window
            self._history_start = False
        return StepResult(self._limit(action), fault, False, elapsed)

    def _check(self, observation: Any, timestamp: Any) -> int:
        """The fault code of an observation (0 if it is fine)."""
        if observation is None:
            code, self._signal_fault = self._signal_fault or _MISSING_SIGNAL, 0
            return code
        if not isinstance(observation, np.ndarray) or observation.dtype.char not in "fd":
            return _BAD_TYPE
        if observation.size != self.obs_dim or observation.ndim not in (1, 2) or observation.shape[-1] != self.obs_dim:
            return _BAD_SHAPE
        # The sum is NaN or inf if any entry is (inf − inf included), and then x − x ≠ 0: one reduction.
        total = float(observation.sum())
        if total - total != 0.0:
            return _NON_FINITE
        bound = self.safety.max_abs_observation
        if bound is not None and not (float(observation.max()) <= bound and float(observation.min()) >= -bound):
            return _OUT_OF_RANGE
        max_age = self.safety.max_observation_age_s
        # A missing, non-numeric or NaN timestamp is stale: `not (age <= max_age)` is true for NaN.
        if max_age is not None and not (_is_number(timestamp) and self.clock() - float(timestamp) <= max_age):
            return _STALE
        return 0

    def _limit(self, action: np.ndarray) -> np.ndarray:
        """Clip to ``[low, high]``, then bound the change from the previous action (preallocated, in place)."""
        out = self._scratch
        np.maximum(action, self.low, out=out)
        np.minimum(out, self.high, out=out)
        if self.rate is not None:
            np.subtract(out, self._reference, out=out)
            np.maximum(out, self._neg_rate, out=out)
            np.minimum(out, self.rate, out=out)
            np.add(self._reference, out, out=out)
        self._reference[...] = out
        self.last_action[...] = out
        return out.copy()

    def _fallback(self, fault: Fault, elapsed: float = 0.0) -> StepResult:
        """The safe action: the default pose, reached within the rate limit."""
        return StepResult(self._limit(self.safe_action), fault, True, elapsed)

    def run(
        self,
        read: Callable[[], tuple[Any, float | None]],
        write: Callable[[StepResult], None],
        steps: int | None = None,
        period: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int:
        """Fixed-rate loop: ``read() -> (observation or signals, timestamp)``, ``write(result)``, every ``period``
        seconds (default: the policy's control period). Returns the number of steps run."""
        period = period or self.period
        if not period:
            raise ValueError("no control period: pass period=... (the policy's metadata has none)")
        next_tick = self.clock()
        count = 0
        while steps is None or count < steps:
            observation, timestamp = read()
            if isinstance(observation, Mapping):
                observation = self.observation(observation)
            write(self.step(observation, timestamp))
            count += 1
            next_tick += period
            delay = next_tick - self.clock()
            if delay > 0:
                sleep(delay)
            else:  # we fell behind: restart the schedule instead of bursting to catch up
                next_tick = self.clock()
        return count


def main(argv: list[str] | None = None) -> int:
    """``rsl-rl-runtime replay``: run a policy over logged observations and save its actions and faults."""
    parser = argparse.ArgumentParser(prog="rsl-rl-runtime", description="torch-free policy runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser("replay", help="run a policy over logged observations (.npy [T, D] or .npz)")
    replay.add_argument("--policy", required=True, help="exported ONNX policy")
    replay.add_argument("--observations", required=True, help=".npy, or .npz with 'observations' [and 'timestamps']")
    replay.add_argument("--out", help=".npz to write actions, faults and safe flags")
    replay.add_argument("--rate-limit", type=float)
    replay.add_argument("--reset-every", type=int, default=0, help="reset the runtime every N steps (episodes)")
    args = parser.parse_args(argv)
    try:
        runtime = PolicyRuntime(args.policy, SafetyConfig(rate_limit=args.rate_limit))
        data = np.load(args.observations)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if isinstance(data, np.lib.npyio.NpzFile):
        observations = data["observations"]
        timestamps = data["timestamps"] if "timestamps" in data.files else None
    else:
        observations, timestamps = data, None
    actions, faults, safe = [], [], []
    for i, obs in enumerate(observations):
        if args.reset_every and i % args.reset_every == 0:
            runtime.reset()
        result = runtime.step(np.asarray(obs), None if timestamps is None else float(timestamps[i]))
        actions.append(result.action)
        faults.append(int(result.fault))
        safe.append(result.safe)
    faulted = int(np.count_nonzero(faults))
    print(f"{len(actions)} steps, {faulted} with faults, {int(np.sum(safe))} safe fall-backs")
    if args.out:
        np.savez(args.out, actions=np.stack(actions), faults=np.asarray(faults), safe=np.asarray(safe))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
