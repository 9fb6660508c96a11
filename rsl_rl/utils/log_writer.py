"""The interface of a logging backend, under rsl-rl-lib 5.5's name (``rsl_rl.utils.LogWriter``).

A training config selects a backend with ``logger: {"class_name": "my_pkg.module:MyWriter", **kwargs}``; the logger
constructs it as ``MyWriter(log_dir=<run directory>, **kwargs)`` when training starts and sends it every scalar of every
iteration. Only :meth:`add_scalar` is required: a backend without files to upload (a metrics database, a dashboard)
need not implement the rest.

This module also reads a config's ``logger`` value: which writer it names, and under which ``logger_type``.
"""

from __future__ import annotations

import dataclasses
import pathlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

LOGGER_TYPES = ("tensorboard", "wandb", "neptune", "none")
"""The writers a train config's ``logger`` can name as a plain string."""
_BUILTIN_WRITERS = {"WandbLogWriter": "wandb", "NeptuneLogWriter": "neptune"}


class LogWriter(ABC):
    """A logging backend: scalars every iteration, and optionally the run's config, files, checkpoints and videos
    (the methods other than :meth:`add_scalar` do nothing unless a backend overrides them)."""

    @abstractmethod
    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None:
        """Record ``scalar_value`` under ``tag`` (e.g. ``"Train/mean_reward"``) at iteration ``global_step``."""

    def store_config(self, env_cfg: Any, train_cfg: Any) -> None:
        """Keep the environment's and the training config once, when training starts (``env_cfg`` may be None)."""
        return None

    def save_model(self, model_path: str, it: int) -> None:
        """Upload the checkpoint written at ``model_path`` after iteration ``it``."""
        return None

    def save_file(self, path: str) -> None:
        """Upload a file of the run (the git diffs recorded when training starts)."""
        return None

    def save_video(self, video: pathlib.Path, it: int) -> None:
        """Upload a video found in the run directory (called every iteration for every ``*.mp4`` there)."""
        return None

    def stop(self) -> None:
        """End the run: flush and close what the backend holds open."""
        return None


def config_as_dict(cfg: Any) -> Any:
    """A config as plain data for a backend's :meth:`LogWriter.store_config`: dicts as they are, dataclasses and
    objects with ``to_dict()`` (Isaac Lab's configclasses) converted, anything else as its repr."""
    if isinstance(cfg, dict):
        return cfg
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    return repr(cfg)


class LoggerChoice(str):
    """A ``RunnerConfig.logger`` value made from an rsl-rl-lib config's writer choice that the plain names cannot
    express (``"neptune"``, or ``{"class_name": ..., **kwargs}``).

    ``RunnerConfig.logger`` holds one of a few validated plain names; this value is one of them (``"wandb"`` for
    W&B, else ``"tensorboard"``: the backends write TensorBoard files too) and carries the writer section through the
    config to the logger, which builds that writer. Copies and pickles are the plain name, so configs saved in
    checkpoints stay plain data (loadable with ``weights_only=True``).
    """

    section: dict[str, Any]

    def __new__(cls, kind: str, section: Mapping[str, Any]) -> LoggerChoice:
        choice = super().__new__(cls, kind)
        choice.section = dict(section)
        return choice

    @classmethod
    def from_rsl_rl(cls, logger: str | Mapping[str, Any], cfg: Mapping[str, Any]) -> LoggerChoice:
        """The choice for an rsl-rl-lib ``logger`` value (``"neptune"`` or a dict) of the train config ``cfg``."""
        section = writer_section(logger, cfg)
        assert section is not None, f"logger={logger!r} is a plain name"
        return cls("wandb" if writer_type(section["class_name"]) == "wandb" else "tensorboard", section)

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (str(self),)


def writer_type(class_name: str) -> str:
    """``logger_type`` of a writer class: ``"wandb"``/``"neptune"`` for the built-in writers, else the class name."""
    return _BUILTIN_WRITERS.get(class_name.rsplit(":", 1)[-1].rsplit(".", 1)[-1], class_name)


def writer_section(logger: Any, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``{"class_name": ..., **kwargs}`` section a ``logger`` value names; None for TensorBoard, W&B by name and
    ``"none"``, which the logger builds itself. ``"neptune"`` takes its project from ``cfg["neptune_project"]``."""
    if isinstance(logger, LoggerChoice):
        return dict(logger.section)
    if isinstance(logger, Mapping):
        if "class_name" not in logger:
            raise ValueError(f"logger={dict(logger)!r} has no 'class_name' (e.g. 'WandbLogWriter' or 'my_pkg:Writer')")
        return dict(logger)
    if not isinstance(logger, str) or logger.lower() not in LOGGER_TYPES:
        raise ValueError(f"logger={logger!r}; allowed: {list(LOGGER_TYPES)} or {{'class_name': ..., **kwargs}}")
    if logger.lower() == "neptune":
        return {"class_name": "NeptuneLogWriter", "project_name": cfg.get("neptune_project")}
    return None
