"""Task registry: tasks register themselves; packages announce them through the ``rsl_rl.tasks`` entry-point group.

A package that ships tasks declares, in its ``setup.py``/``pyproject.toml``::

    entry_points={"rsl_rl.tasks": ["my_robots = my_package.tasks"]}

and the module ``my_package.tasks`` calls :func:`register` for each task when imported. Nothing is imported until a
task is looked up, so ``rsl-rl list-tasks`` stays fast and a broken third-party package only breaks its own tasks.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env

ENTRY_POINT_GROUP = "rsl_rl.tasks"


@dataclass(frozen=True)
class TaskSpec:
    """How to build a task: its env class, its env config and the training config it is tuned for."""

    name: str
    """Registry name, e.g. ``"pendulum"``."""
    make_env: Callable[..., Env]
    """``make_env(cfg, device=..., seed=...)`` → Env."""
    env_cfg: Callable[[], Any]
    """Factory of the default env config dataclass (it has a ``num_envs`` field)."""
    train_cfg: Callable[[], Any]
    """Factory of the default :class:`rsl_rl.runners.TrainConfig`."""
    description: str = ""
    """One line for ``rsl-rl list-tasks``."""
    sac_train_cfg: Callable[[], Any] | None = None
    """Factory of the task's :class:`rsl_rl.runners.SACTrainConfig` (``--algo sac``); None: the generic defaults."""
    sac_env_cfg: Callable[[], Any] | None = None
    """Factory of the env config SAC is tuned with, where it differs from ``env_cfg`` (e.g. fewer envs); None: the
    same."""
    scripted_policy: Callable[[Env], Callable[[TensorDict], torch.Tensor]] | None = None
    """Factory of a scripted controller acting on the observation batch (``controller(obs) -> actions [N, A]``, env
    units); ``rsl-rl record-demos --source scripted`` uses it. None: the task has none."""
    jsrl_horizon: int = 0
    """Jump-start RL's H when ``--jsrl.horizon`` is not given: the typical episode length of a guide that succeeds
    (jsrl.md: H = the guide's typical episode length); 0: the env's episode length."""

    def env_cfg_for(self, algo: str) -> Any:
        """The default env config of the task when trained with ``algo``."""
        if algo == "sac" and self.sac_env_cfg is not None:
            return self.sac_env_cfg()
        return self.env_cfg()

    def agent_cfg(self, algo: str) -> Any:
        """The default training config of ``algo`` (``"ppo"`` or ``"sac"``) for this task."""
        if algo == "ppo":
            return self.train_cfg()
        if algo == "sac":
            if self.sac_train_cfg is not None:
                return self.sac_train_cfg()
            from rsl_rl.runners.config import SACTrainConfig

            return SACTrainConfig()
        raise ValueError(f"--algo {algo!r}; allowed: ppo, sac")

    def build(self, cfg: Any, device: str | torch.device = "cpu", seed: int = 0) -> Env:
        return self.make_env(cfg, device=torch.device(device), seed=seed)


_TASKS: dict[str, TaskSpec] = {}
_loaded = False


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task; registering the same name twice with a different spec is an error."""
    existing = _TASKS.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"task '{spec.name}' is already registered by {existing.make_env!r}")
    _TASKS[spec.name] = spec
    return spec


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            importlib.import_module(ep.value.split(":")[0])
        except Exception as err:  # a broken plug-in must not hide every other task
            warnings.warn(f"could not load tasks from entry point '{ep.name}' ({ep.value}): {err}", stacklevel=2)


def task_names() -> list[str]:
    _load_entry_points()
    return sorted(_TASKS)


def get_task(name: str) -> TaskSpec:
    """Look up a task; an unknown name raises with the list of valid ones."""
    _load_entry_points()
    if name not in _TASKS:
        valid = ", ".join(sorted(_TASKS)) or "(none registered: is the package installed with `pip install -e .`?)"
        raise KeyError(f"unknown task '{name}'; valid tasks: {valid}")
    return _TASKS[name]
