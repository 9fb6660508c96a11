"""Demonstration files: recorded transitions for RLPD-style learning, reward classifiers and analysis.

A demo file is a ``.npz`` written with ``numpy.savez_compressed`` and read with
``numpy.load(path, allow_pickle=False)``, so loading one never runs code. ``T`` is the number of steps, ``A`` the
number of actions:

=====================  =============  =================================================================================
key                    shape, dtype   meaning
=====================  =============  =================================================================================
``format``             0-d str        ``"rsl_rl_forge.demos"``
``version``            0-d int64      ``1``
``metadata``           0-d str        JSON object: ``task``, ``source`` (``"scripted"``, a checkpoint path, ``"human"``
                                      ...), ``num_episodes``, ``created`` (ISO time), ``step_dt``, ``action_low`` /
                                      ``action_high`` (when known), ``obs_groups`` ``{name: {"shape", "dtype"}}``
``obs/<group>``        [T, ...]       observation group acted on (float32, or uint8 for images)
``next_obs/<group>``   [T, ...]       the observation the step reached, *before* an automatic reset (same groups)
``actions``            [T, A] f32     the action actually applied (env units, after clipping to the bounds)
``rewards``            [T] f32        reward of the step
``terminated``         [T] bool       the step reached a terminal state (no bootstrap)
``truncated``          [T] bool       the episode was cut here (time limit): bootstrap from ``next_obs``
``success``            [T] bool       the task's success signal at ``next_obs`` (``extras["success"]``), else False
``intervention``       [T] bool       the action came from a human/scripted override of a running policy
``episode``            [T] int64      episode index: 0, 1, 2, ... non-decreasing, each episode's steps contiguous
=====================  =============  =================================================================================

:func:`load_demos` checks all of it and raises :class:`DemoFileError` naming what is wrong.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEMO_FORMAT = "rsl_rl_forge.demos"
DEMO_VERSION = 1
FLAG_KEYS = ("terminated", "truncated", "success", "intervention")
"""Per-step bool arrays."""
_OBS_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))


class DemoFileError(ValueError):
    """A demonstration file (or the data to be written as one) breaks the format; the message names what."""


@dataclass
class DemoData:
    """The steps of a demo file as tensors (first dimension ``T``), episodes contiguous and in order."""

    obs: dict[str, torch.Tensor]
    """Group → observation acted on ``[T, ...]``."""
    next_obs: dict[str, torch.Tensor]
    """Group → observation the step reached (before any automatic reset) ``[T, ...]``."""
    actions: torch.Tensor
    """Applied actions ``[T, A]`` in env units."""
    rewards: torch.Tensor
    """``[T]`` float."""
    terminated: torch.Tensor
    """``[T]`` bool: terminal state, no bootstrap."""
    truncated: torch.Tensor
    """``[T]`` bool: episode cut (time limit), bootstrap from ``next_obs``."""
    success: torch.Tensor
    """``[T]`` bool: the task's success signal at ``next_obs``."""
    intervention: torch.Tensor
    """``[T]`` bool: the action overrode the policy's."""
    episode: torch.Tensor
    """``[T]`` int64 episode index (0, 1, ... non-decreasing)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The file's metadata (JSON)."""

    @property
    def num_steps(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode[-1]) + 1 if self.num_steps else 0

    @property
    def episode_success(self) -> torch.Tensor:
        """``[E]`` bool: some step of the episode reported success."""
        hits = torch.zeros(self.num_episodes, dtype=torch.long, device=self.success.device)
        return hits.index_add_(0, self.episode, self.success.long()) > 0

    def select_episodes(self, keep: torch.Tensor) -> DemoData:
        """The episodes where ``keep`` (``[E]`` bool) is set, renumbered 0, 1, ... (and ``num_episodes``)."""
        rows = keep[self.episode]
        renumber = torch.cumsum(keep.long(), 0) - 1
        return DemoData(
            obs={k: v[rows] for k, v in self.obs.items()},
            next_obs={k: v[rows] for k, v in self.next_obs.items()},
            actions=self.actions[rows],
            rewards=self.rewards[rows],
            terminated=self.terminated[rows],
            truncated=self.truncated[rows],
            success=self.success[rows],
            intervention=self.intervention[rows],
            episode=renumber[self.episode[rows]],
            metadata={**self.metadata, "num_episodes": int(keep.sum())},
        )

    def to(self, device: torch.device | str) -> DemoData:
        """A copy on ``device``."""
        return DemoData(
            {k: v.to(device) for k, v in self.obs.items()},
            {k: v.to(device) for k, v in self.next_obs.items()},
            *(getattr(self, name).to(device) for name in ("actions", "rewards", *FLAG_KEYS, "episode")),
            metadata=dict(self.metadata),
        )


def save_demos(path: str | os.PathLike[str], data: DemoData) -> Path:
    """Validate ``data`` and write it atomically (a temporary file in the same directory, then ``os.replace``).

    Float observations are stored as float32, uint8 ones (images) as they are. The metadata gets ``num_episodes``,
    ``obs_groups`` and, when absent, ``created``. Returns the path written.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for prefix, groups in (("obs", data.obs), ("next_obs", data.next_obs)):
        for name, value in groups.items():
            array = value.detach().cpu().numpy()
            arrays[f"{prefix}/{name}"] = array if array.dtype == np.uint8 else array.astype(np.float32)
    arrays["actions"] = data.actions.detach().cpu().numpy().astype(np.float32)
    arrays["rewards"] = data.rewards.detach().cpu().numpy().astype(np.float32)
    for name in FLAG_KEYS:
        arrays[name] = getattr(data, name).detach().cpu().numpy().astype(bool)
    arrays["episode"] = data.episode.detach().cpu().numpy().astype(np.int64)
    metadata = dict(data.metadata)
    metadata.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    metadata["num_episodes"] = data.num_episodes
    metadata["obs_groups"] = {
        name: {"shape": list(arrays[f"obs/{name}"].shape[1:]), "dtype": str(arrays[f"obs/{name}"].dtype)}
        for name in data.obs
    }
    arrays["format"] = np.array(DEMO_FORMAT)
    arrays["version"] = np.array(DEMO_VERSION, dtype=np.int64)
    arrays["metadata"] = np.array(json.dumps(metadata))
    _validate(arrays, f"demo data for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_demos(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> DemoData:
    """Read and validate a demo file (never unpickles); :class:`DemoFileError` names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"demo file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise DemoFileError(f"{path}: not a readable .npz demo file ({err})") from err
    metadata = _validate(arrays, str(path))
    groups = [key.removeprefix("obs/") for key in arrays if key.startswith("obs/")]

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    return DemoData(
        obs={g: tensor(arrays[f"obs/{g}"]) for g in groups},
        next_obs={g: tensor(arrays[f"next_obs/{g}"]) for g in groups},
        actions=tensor(arrays["actions"]),
        rewards=tensor(arrays["rewards"]),
        terminated=tensor(arrays["terminated"]),
        truncated=tensor(arrays["truncated"]),
        success=tensor(arrays["success"]),
        intervention=tensor(arrays["intervention"]),
        episode=tensor(arrays["episode"]),
        metadata=metadata,
    )


def _validate(arrays: dict[str, np.ndarray], where: str) -> dict[str, Any]:
    """Check ``arrays`` against the format; return the parsed metadata."""

    def fail(message: str) -> DemoFileError:
        return DemoFileError(f"{where}: {message}")

    required = ("format", "version", "metadata", "actions", "rewards", *FLAG_KEYS, "episode")
    missing = [key for key in required if key not in arrays]
    if missing:
        raise fail(f"missing key(s) {missing}; a demo file holds {list(required)} and obs/<group>, next_obs/<group>")
    fmt = arrays["format"]
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != DEMO_FORMAT:
        raise fail(f"format is {fmt!r}, expected the 0-d string {DEMO_FORMAT!r}")
    version = arrays["version"]
    if version.shape != () or version.dtype != np.int64:
        raise fail(f"version must be a 0-d int64, got shape {version.shape} dtype {version.dtype}")
    if int(version) != DEMO_VERSION:
        raise fail(f"version {int(version)} is not supported (this library reads version {DEMO_VERSION})")
    meta = arrays["metadata"]
    if meta.shape != () or meta.dtype.kind != "U":
        raise fail(f"metadata must be a 0-d string (JSON), got shape {meta.shape} dtype {meta.dtype}")
    try:
        metadata = json.loads(str(meta))
    except json.JSONDecodeError as err:
        raise fail(f"metadata is not valid JSON ({err})") from err
    if not isinstance(metadata, dict):
        raise fail(f"metadata must be a JSON object, got {type(metadata).__name__}")

    obs = sorted(k.removeprefix("obs/") for k in arrays if k.startswith("obs/"))
    next_obs = sorted(k.removeprefix("next_obs/") for k in arrays if k.startswith("next_obs/"))
    if not obs:
        raise fail("no observation groups (keys obs/<group>)")
    if obs != next_obs:
        raise fail(f"obs groups {obs} and next_obs groups {next_obs} differ")
    unknown = sorted(set(arrays) - set(required) - {f"obs/{g}" for g in obs} - {f"next_obs/{g}" for g in obs})
    if unknown:
        raise fail(f"unknown key(s) {unknown}")

    steps = arrays["actions"].shape[0] if arrays["actions"].ndim else -1
    for key, array in arrays.items():
        if key in ("format", "version", "metadata"):
            continue
        if array.ndim == 0 or array.shape[0] != steps:
            raise fail(f"'{key}' has shape {array.shape} but 'actions' has {steps} steps: every key needs [T, ...]")
    for group in obs:
        a, b = arrays[f"obs/{group}"], arrays[f"next_obs/{group}"]
        if a.dtype not in _OBS_DTYPES or b.dtype != a.dtype or a.shape != b.shape:
            raise fail(
                f"obs/{group} ({a.dtype}, {a.shape}) and next_obs/{group} ({b.dtype}, {b.shape}) must share a shape "
                "and a dtype, float32 or uint8"
            )
    expected = {"actions": (np.float32, 2), "rewards": (np.float32, 1), "episode": (np.int64, 1)}
    expected.update({name: (np.bool_, 1) for name in FLAG_KEYS})
    for key, (dtype, ndim) in expected.items():
        if arrays[key].dtype != dtype or arrays[key].ndim != ndim:
            raise fail(
                f"'{key}' must be {np.dtype(dtype)} with {ndim} dimension(s), got {arrays[key].dtype} "
                f"{arrays[key].shape}"
            )

    floats = ["actions", "rewards"] + [f"{p}/{g}" for p in ("obs", "next_obs") for g in obs]
    for key in floats:
        array = arrays[key]
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise fail(f"'{key}' holds non-finite values (NaN or inf) at step(s) {_bad_steps(array)}")

    episode = arrays["episode"]
    if steps > 0:
        step = np.diff(episode)
        if episode[0] != 0 or ((step != 0) & (step != 1)).any():
            first = int(np.flatnonzero((step != 0) & (step != 1))[0]) + 1 if episode[0] == 0 else 0
            raise fail(
                f"episode ids must be 0, 1, 2, ... in order with each episode's steps contiguous; step {first} has id "
                f"{int(episode[first])} after {int(episode[first - 1]) if first else 'the start'}"
            )
    count = int(episode[-1]) + 1 if steps > 0 else 0
    if "num_episodes" in metadata and metadata["num_episodes"] != count:
        raise fail(f"metadata says num_episodes={metadata['num_episodes']} but the file holds {count} episodes")
    return metadata


def _bad_steps(array: np.ndarray) -> list[int]:
    """The first few steps of ``array`` ``[T, ...]`` holding a non-finite value."""
    bad = ~np.isfinite(array.reshape(array.shape[0], -1)).all(-1)
    return [int(i) for i in np.flatnonzero(bad)[:5]]
