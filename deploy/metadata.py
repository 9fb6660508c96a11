"""The metadata schema of exported policies, shared by the exporter and the torch-free runtime (no torch here).

What the action entries mean (schema 2):

* ``command = default + scale · action`` per entry; ``action.command`` says what that command is: ``joint_position``
  (a joint target for the robot's PD loop, gains ``kp``/``kd``) or ``actuator`` (the actuator's own input: torque,
  force, a MuJoCo ``ctrl``). The default pose is action 0.
* ``action.limit = "clip"``: the task clips every policy output to ``[low, high]`` before it acts, in training exactly
  as the runtime does on the robot (``null`` bound = unbounded).
* ``action.last_action``: what the observation term ``last_action`` holds, if the policy observes one: ``"clipped"``,
  the previous step's action after that clip (zero at the start of an episode); ``null`` if the policy does not.
* ``history``: ``null``, or ``{"length": k, "order": "oldest_first", "episode_start": "repeat_first"}`` for a policy
  that reads its last ``k`` observations (``observation.dim`` values each) stacked oldest first; the first
  observation of an episode fills the whole history. The runtime keeps that history itself.
"""

from __future__ import annotations

import json
import math
from typing import Any

SCHEMA_VERSION = 2
METADATA_KEY = "rsl_rl_forge.metadata"
REQUIRED = ("schema", "inputs", "outputs", "observation", "action")
COMMANDS = ("joint_position", "actuator")
LIMITS = ("clip",)
LAST_ACTION = ("clipped", None)
HISTORY_ORDER = "oldest_first"
HISTORY_START = "repeat_first"


def parse_metadata(text: str, source: str = "policy") -> dict[str, Any]:
    """Decode and check the metadata JSON; errors name the file and the missing, malformed or unsupported entry."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: the embedded metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{source}: the embedded metadata is not a JSON object")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"{source}: metadata lacks {missing}")
    if not isinstance(meta["schema"], int) or meta["schema"] > SCHEMA_VERSION:
        raise ValueError(f"{source}: metadata schema {meta['schema']} is newer than this runtime ({SCHEMA_VERSION})")
    _check_action(meta["action"], source)
    _check_observation(meta["observation"], source)
    _check_history(meta.get("history"), source)
    return meta


def _check_action(action: Any, source: str) -> None:
    dim = action.get("dim") if isinstance(action, dict) else None
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{source}: action.dim must be an integer >= 1, got {dim!r}")
    for key in ("default", "low", "high", "scale", "kp", "kd"):
        if key not in action and key in ("kp", "kd", "scale"):
            continue
        values = action.get(key)
        if not isinstance(values, list) or len(values) != dim:
            raise ValueError(f"{source}: action.{key} must have {dim} entries")
        for i, v in enumerate(values):
            if key in ("low", "high") and v is None:  # null: unbounded
                continue
            if not _finite(v) or (key == "scale" and v == 0):
                raise ValueError(f"{source}: action.{key}[{i}] is {v!r}; allowed: {_allowed(key)}")
    for i, (lo, hi) in enumerate(zip(action["low"], action["high"], strict=True)):
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{source}: action.low[{i}] = {lo} > action.high[{i}] = {hi} (inverted limits)")
    for key, allowed, default in (("command", COMMANDS, "actuator"), ("limit", LIMITS, "clip")):
        if action.get(key, default) not in allowed:
            raise ValueError(f"{source}: action.{key}={action[key]!r}; allowed: {', '.join(map(repr, allowed))}")
    if action.get("last_action") not in LAST_ACTION:
        raise ValueError(f"{source}: action.last_action={action['last_action']!r}; allowed: 'clipped', null")


def _check_observation(observation: Any, source: str) -> None:
    dim = observation.get("dim") if isinstance(observation, dict) else None
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{source}: observation.dim must be an integer >= 1, got {dim!r}")
    terms = observation.get("terms", [])
    sizes: list[int] = []
    for t in terms:
        size = t.get("size") if isinstance(t, dict) else None
        if not isinstance(size, int) or size < 1 or not isinstance(t.get("name"), str):
            raise ValueError(f"{source}: every observation term needs a name and an integer size >= 1, got {t!r}")
        sizes.append(size)
    if terms and sum(sizes) != dim:
        raise ValueError(f"{source}: the observation terms add up to {sum(sizes)} but observation.dim is {dim}")
    for t in terms:
        if not _finite(t.get("scale", 1.0)):
            raise ValueError(f"{source}: observation term {t['name']!r} has scale {t['scale']!r}; allowed: finite")


def _check_history(history: Any, source: str) -> None:
    if history is None:
        return
    length = history.get("length") if isinstance(history, dict) else None
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"{source}: history.length must be an integer >= 1, got {length!r}")
    if history.get("order", HISTORY_ORDER) != HISTORY_ORDER:
        raise ValueError(f"{source}: history.order={history['order']!r}; allowed: {HISTORY_ORDER!r}")
    if history.get("episode_start", HISTORY_START) != HISTORY_START:
        raise ValueError(f"{source}: history.episode_start={history['episode_start']!r}; allowed: {HISTORY_START!r}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _allowed(key: str) -> str:
    if key in ("low", "high"):
        return "a finite number, or null (unbounded)"
    return "a finite number other than 0" if key == "scale" else "a finite number"
