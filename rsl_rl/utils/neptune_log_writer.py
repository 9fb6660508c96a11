"""Neptune backend (rsl-rl-lib 5.5's ``NeptuneLogWriter``): every scalar goes to TensorBoard event files in the run
directory and to a Neptune run.

Selected by ``logger: "neptune"`` (project from ``neptune_project``) or
``logger: {"class_name": "NeptuneLogWriter", "project_name": ...}``. The ``neptune`` package is optional: it is imported
when the writer is constructed, and its absence is reported then, with how to install it.
"""

from __future__ import annotations

import importlib
import os
import pathlib
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from rsl_rl.utils.log_writer import LogWriter, config_as_dict

INSTALL_HINT = "logging to Neptune needs the neptune package: pip install neptune"


class NeptuneLogWriter(SummaryWriter, LogWriter):
    """TensorBoard writer that also logs every scalar to a Neptune run, and uploads config, checkpoints and files."""

    def __init__(self, log_dir: str, project_name: str) -> None:
        """Start a Neptune run in ``$NEPTUNE_USERNAME/project_name``, authenticated by ``$NEPTUNE_API_TOKEN``."""
        try:
            neptune = importlib.import_module("neptune")
        except ImportError as err:
            raise ImportError(INSTALL_HINT) from err
        token, user = os.environ.get("NEPTUNE_API_TOKEN"), os.environ.get("NEPTUNE_USERNAME")
        for name, value in (("NEPTUNE_API_TOKEN", token), ("NEPTUNE_USERNAME", user)):
            if not value:
                raise KeyError(f"logging to Neptune needs the environment variable {name} (export {name}=...)")
        super().__init__(log_dir, flush_secs=10)
        self.run = neptune.init_run(project=f"{user}/{project_name}", api_token=token)
        self.run["log_dir"].log(pathlib.Path(log_dir).name)
        # Neptune reads "a/b/c" as a field path: a scalar tag that extends another tag's path cannot be stored.
        self.name_map = {
            "Train/mean_reward/time": "Train/mean_reward_time",
            "Train/mean_episode_length/time": "Train/mean_episode_length_time",
        }

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        """Write the scalar to the event file and append it to the Neptune series of that tag."""
        super().add_scalar(tag, scalar_value, global_step, walltime, new_style, double_precision)
        self.run[self.name_map.get(tag, tag)].log(float(scalar_value), step=global_step)

    def store_config(self, env_cfg: Any, train_cfg: Any) -> None:
        self.run["train_cfg"] = config_as_dict(train_cfg)
        if env_cfg is not None:
            self.run["env_cfg"] = config_as_dict(env_cfg)

    def save_model(self, model_path: str, it: int) -> None:
        self.run[f"model/saved_model_{it}"].upload(model_path)

    def save_file(self, path: str) -> None:
        self.run[f"git_diff/{pathlib.Path(path).stem}"].upload(path)

    def stop(self) -> None:
        """Stop the Neptune run and close the event file."""
        self.run.stop()
        self.close()
