"""Weights & Biases backend (rsl-rl-lib 5.5's ``WandbLogWriter``): every scalar goes to TensorBoard event files in the
run directory and to a W&B run.

Selected by ``logger: "wandb"`` or ``logger: {"class_name": "WandbLogWriter", "project_name": ...}``. Without
``WANDB_MODE`` and without credentials (``WANDB_API_KEY`` or ``~/.netrc``) the run is written offline instead of
failing, and can be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Literal

from torch.utils.tensorboard import SummaryWriter

from rsl_rl.utils.log_writer import LogWriter, config_as_dict

_MODES: dict[str, Literal["online", "offline", "disabled"]] = {
    "online": "online",
    "run": "online",
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
}


class WandbLogWriter(SummaryWriter, LogWriter):
    """TensorBoard writer that also logs every scalar to a W&B run, and uploads config, checkpoints and videos."""

    def __init__(self, log_dir: str, project_name: str | None = None, run_name: str | None = None) -> None:
        """Start a W&B run named ``run_name`` (default: the run directory's name) under ``log_dir/wandb``.

        The entity is ``WANDB_USERNAME`` when set (rsl-rl-lib's convention), else the account's default.
        """
        try:
            import wandb
        except ImportError as err:
            raise ImportError("logging to Weights & Biases needs the wandb package: pip install wandb") from err
        super().__init__(log_dir, flush_secs=10)
        self.wandb = wandb
        self.run = wandb.init(
            project=project_name,
            entity=os.environ.get("WANDB_USERNAME"),
            name=run_name or pathlib.Path(log_dir).name,
            dir=str(log_dir),
            config={"log_dir": str(log_dir)},
            mode=_wandb_mode(),
        )
        self.logged_videos: set[str] = set()
        """Names of the videos uploaded so far: each is uploaded once, although it is offered every iteration."""

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        """Write the scalar to the event file and log it to W&B at step ``global_step`` (the iteration)."""
        super().add_scalar(tag, scalar_value, global_step, walltime, new_style, double_precision)
        self.run.log({tag: float(scalar_value)}, step=global_step)

    def store_config(self, env_cfg: Any, train_cfg: Any) -> None:
        """Record both configs in the run's config, as ``train_cfg`` and ``env_cfg``."""
        values = {"train_cfg": config_as_dict(train_cfg)}
        if env_cfg is not None:
            values["env_cfg"] = config_as_dict(env_cfg)
        self.run.config.update(values, allow_val_change=True)

    def save_model(self, model_path: str, it: int) -> None:
        """Add the checkpoint to the run's files (uploaded as it changes; with an offline run, at ``wandb sync``)."""
        self.run.save(str(model_path), base_path=os.path.dirname(model_path))

    def save_file(self, path: str) -> None:
        self.run.save(str(path), base_path=os.path.dirname(path))

    def save_video(self, video: pathlib.Path, it: int) -> None:
        """Log each video file once, at the iteration it first appears."""
        if video.name in self.logged_videos:
            return
        self.run.log({"video": self.wandb.Video(str(video), format="mp4")}, step=it)
        self.logged_videos.add(video.name)

    def stop(self) -> None:
        """Finish the W&B run and close the event file."""
        self.run.finish()
        self.close()


def _wandb_mode() -> Literal["online", "offline", "disabled"] | None:
    """The mode ``WANDB_MODE`` asks for; offline (with a warning) when unset and no credentials are configured."""
    mode = os.environ.get("WANDB_MODE")
    if mode is None:
        if os.environ.get("WANDB_API_KEY") or (pathlib.Path.home() / ".netrc").exists():
            return None  # wandb's own default: online with the stored credentials
        warnings.warn("no W&B credentials found: logging offline (upload later with `wandb sync`)", stacklevel=3)
        return "offline"
    if mode not in _MODES:
        raise ValueError(f"WANDB_MODE={mode!r}; allowed: {sorted(_MODES)}")
    return _MODES[mode]
