"""Checkpoint files: atomic writes, safe loads (no code execution), RNG state capture.

A checkpoint is a plain ``torch.save`` dict of tensors, numbers, strings, lists and dicts, so ``torch.load`` runs with
``weights_only=True``: a crafted file can fail to load but cannot execute code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsl_rl.atomic import atomic_write, load_weights_only

CHECKPOINT_FORMAT = "rsl_rl_forge.checkpoint"
CHECKPOINT_VERSION = 2
"""2: models list their parameters in rsl-rl-lib's order (distribution, MLP, RNN); optimiser states of version 1
are reordered on load (``rsl_rl.algorithms.optimizer_state``)."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` atomically with ``torch.save``."""
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device | None = None) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a clear error for a missing, damaged or unsafe file."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    state = load_weights_only(path, "checkpoint", map_location)
    if not isinstance(state, dict) or not ({"actor_state_dict", "student_state_dict"} & set(state)):
        raise ValueError(
            f"{path} is not a policy checkpoint: expected a dict with 'actor_state_dict' (RL) or 'student_state_dict' "
            "(distillation)"
        )
    return state


def checkpoint_name(iterations: int) -> str:
    """``model_<i>.pt`` after ``iterations`` completed iterations: ``i`` is the index of the last one, as rsl-rl-lib
    names them (its ``iter`` key holds the same index)."""
    return f"model_{iterations - 1}.pt"


def iterations_completed(state: dict[str, Any]) -> int:
    """How many iterations a checkpoint's training had completed: ours say so; rsl-rl-lib's ``iter`` is the index of the
    last one (so one more); checkpoints of our format 1 stored the count under ``iter``."""
    if "iterations_completed" in state:
        return int(state["iterations_completed"])
    if state.get("format") == CHECKPOINT_FORMAT and int(state.get("format_version", 1)) < 2:
        return int(state.get("iter", 0))
    return int(state.get("iter", -1)) + 1


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path:
    """The ``model_<iteration>.pt`` with the highest iteration in ``run_dir`` (or its ``checkpoints/``)."""
    run_dir = Path(run_dir)
    candidates = [*run_dir.glob("model_*.pt"), *run_dir.glob("checkpoints/model_*.pt")]

    def iteration(p: Path) -> int:
        stem = p.stem.removeprefix("model_")
        return int(stem) if stem.isdigit() else -1

    candidates = [p for p in candidates if iteration(p) >= 0]
    if not candidates:
        raise FileNotFoundError(f"no model_<iteration>.pt checkpoint in {run_dir}")
    return max(candidates, key=iteration)


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states as checkpoint-safe values."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
