"""Training observability under rsl-rl-lib 5.5's API (``rsl_rl.utils.logger.Logger``): the run's writer (TensorBoard,
W&B, Neptune or a user's :class:`~rsl_rl.utils.log_writer.LogWriter`), the per-iteration history and progress bar,
``config.json`` and the git state of the code.

Two protocols drive one :class:`Logger`, and both end in :meth:`Logger.log_iteration`, so writers and history see the
same records:

- this library's runners: ``start`` → ``log_iteration`` every iteration (episode statistics already reduced on the
  device, one host transfer per iteration) → ``finish`` / ``close``;
- runners written for rsl-rl-lib (frameworks subclass it): ``init_logging_writer`` → ``process_env_step`` every step →
  ``log`` every iteration → ``save_model`` → ``stop_logging_writer``. ``process_env_step`` keeps finished episodes on
  the device too; they reach the host buffers ``rewbuffer``/``lenbuffer`` when those are read or at ``log``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import statistics
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import torch

import rsl_rl
from rsl_rl.atomic import atomic_write
from rsl_rl.utils.log_writer import LOGGER_TYPES, LogWriter, writer_section, writer_type
from rsl_rl.utils.utils import resolve_callable

_EPISODE_BUFFER = 100  # rsl-rl-lib's window: mean reward and length over the last 100 finished episodes
_BUILTIN_WRITERS = ("WandbLogWriter", "NeptuneLogWriter")  # bare names rsl-rl-lib configs use for its writers


class _EpisodeBuffer:
    """A deque attribute of :class:`Logger` (rsl-rl-lib's ``rewbuffer`` ...): reading or replacing it first moves the
    episodes finished on the device since the last access to the host."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, logger: Logger | None, owner: type | None = None) -> Any:
        if logger is None:
            return self
        logger._flush_episodes()
        return logger._buffers[self.name]

    def __set__(self, logger: Logger, value: deque[float]) -> None:
        logger._flush_episodes()
        logger._buffers[self.name] = value


class Logger:
    """The run's writer, history and progress bar, and rsl-rl-lib's episode buffers (see the module docstring)."""

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None,
        cfg: dict[str, Any],
        env_cfg: Any = None,
        num_envs: int = 0,
        is_distributed: bool = False,
        gpu_world_size: int = 1,
        gpu_global_rank: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        """``cfg`` is the train config as a dict (its ``logger``, ``wandb_project``, ``run_name``,
        ``num_steps_per_env``); ``num_envs`` and ``device`` size the episode sums (0: from the first step)."""
        self.log_dir = os.fspath(log_dir) if log_dir else None
        self.cfg = cfg
        self.env_cfg = env_cfg
        self.num_envs = num_envs
        self.gpu_world_size = gpu_world_size
        self.device = device
        self.disable_logs = is_distributed and gpu_global_rank != 0
        """Only the rank-0 process of a multi-GPU run writes logs."""
        spec = cfg.get("logger") or "tensorboard"
        self.writer_cfg = writer_section(spec, cfg)
        """The writer's ``{"class_name": ..., **kwargs}`` section; None for TensorBoard, W&B by name or none."""
        self.logger_type = writer_type(self.writer_cfg["class_name"]) if self.writer_cfg else str(spec).lower()
        """``"tensorboard"``, ``"wandb"``, ``"neptune"``, ``"none"`` or a custom writer's class name."""
        self.kind = self.logger_type if self.log_dir and not self.disable_logs else "none"
        """The writer ``start()`` builds: ``logger_type``, or ``"none"`` (no run directory, or not rank 0)."""
        if self.writer_cfg and self.writer_cfg["class_name"] not in _BUILTIN_WRITERS:
            resolve_callable(self.writer_cfg["class_name"])  # a wrong path fails now, not after the env is built
        self.writer: Any = None
        self.git_status_repos: list[str] = [rsl_rl.__file__]
        """Files inside the repositories whose HEAD and diff are recorded in the run directory."""
        self.tot_timesteps = 0
        self.tot_time = 0.0
        self.history: list[dict[str, float]] = []
        self.last_return = math.nan
        self.progress: Any = None
        self._purge_step: int | None = None
        # rsl-rl-lib's per-step protocol: episode sums per env, and the finished episodes not yet moved to the host.
        self.ep_extras: list[dict[str, Any]] = []
        self._finished: list[torch.Tensor] = []
        self._intrinsic = False
        self._buffers: dict[str, deque[float]] = {
            name: deque(maxlen=_EPISODE_BUFFER) for name in ("rewbuffer", "lenbuffer", "erewbuffer", "irewbuffer")
        }
        self._reset_episode_sums(num_envs, device)

    @property
    def config(self) -> dict[str, Any]:
        """The train config (``cfg``); entries added before ``start()`` are recorded in ``config.json``."""
        return self.cfg

    @property
    def git_repos(self) -> list[str]:
        """``git_status_repos`` under this library's earlier name."""
        return self.git_status_repos

    # --- lifecycle ---------------------------------------------------------------------------------------------------

    def start(self, start_it: int, total_it: int, show_progress: bool) -> None:
        """Open the writer (TensorBoard drops events from ``start_it`` on: a resumed run re-logs them) and the bar."""
        self._purge_step = start_it
        self.init_logging_writer()
        if show_progress:
            from tqdm import tqdm

            self.progress = tqdm(
                total=total_it, initial=start_it, unit="it", dynamic_ncols=True, file=sys.stderr, mininterval=0.5
            )

    def init_logging_writer(self) -> None:
        """Write ``config.json`` and the git state into the run directory and build the writer (once); a
        :class:`LogWriter` also receives the configs and the git diffs."""
        if self.log_dir is None or self.disable_logs:
            return
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.cfg, indent=2, default=repr)
        atomic_write(Path(self.log_dir) / "config.json", lambda f: f.write(text.encode()))
        files = self._write_git_status()
        if self.writer is not None or self.kind == "none":
            return
        self.writer = self._make_writer()
        if isinstance(self.writer, LogWriter):
            self.writer.store_config(self.env_cfg, self.cfg)
            for path in files:
                self.writer.save_file(path)

    def _make_writer(self) -> Any:
        assert self.log_dir is not None
        if self.writer_cfg is not None:
            kwargs = dict(self.writer_cfg)
            name = kwargs.pop("class_name")
            if name == "WandbLogWriter":
                from rsl_rl.utils.wandb_log_writer import WandbLogWriter as cls
            elif name == "NeptuneLogWriter":
                from rsl_rl.utils.neptune_log_writer import NeptuneLogWriter as cls
            else:
                cls = resolve_callable(name)
            return cls(log_dir=self.log_dir, **kwargs)
        if self.kind == "wandb":
            from rsl_rl.utils.wandb_log_writer import WandbLogWriter

            return WandbLogWriter(self.log_dir, self.cfg.get("wandb_project"), self.cfg.get("run_name") or None)
        if self.kind != "tensorboard":
            raise ValueError(f"logger kind {self.kind!r}; allowed: {list(LOGGER_TYPES)}")
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=self.log_dir, purge_step=self._purge_step, flush_secs=10)

    def finish(self) -> None:
        """End of a ``learn()``: close the progress bar and flush the writer (it stays open for the next one)."""
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        if self.writer is not None and hasattr(self.writer, "flush"):
            self.writer.flush()

    def close(self) -> None:
        """End of the run: :meth:`finish` and :meth:`stop_logging_writer`."""
        self.finish()
        self.stop_logging_writer()

    def save_model(self, path: str, it: int) -> None:
        """Upload the checkpoint at ``path`` through a :class:`LogWriter` (W&B, Neptune); TensorBoard keeps none."""
        if isinstance(self.writer, LogWriter):
            self.writer.save_model(path, it)

    def stop_logging_writer(self) -> None:
        """Finish the writer's run (W&B, Neptune) or close its event file; a later ``start()`` opens a new one."""
        if self.writer is None:
            return
        if isinstance(self.writer, LogWriter):
            self.writer.stop()
        elif hasattr(self.writer, "close"):
            self.writer.close()
        self.writer = None

    # --- per iteration -----------------------------------------------------------------------------------------------

    def log_iteration(self, it: int, record: dict[str, float]) -> None:
        """Record one iteration: ``record`` holds env_steps, wall_seconds, timings, losses and episode statistics
        (keys with a ``/`` are written as they are, the others under rsl_rl's names)."""
        if not math.isnan(record.get("mean_return", math.nan)):
            self.last_return = record["mean_return"]
        record = {"iteration": it, **record, "last_mean_return": self.last_return}
        self.history.append(record)
        self.tot_timesteps = int(record.get("env_steps", self.tot_timesteps))
        self.tot_time = float(record.get("wall_seconds", self.tot_time))
        if self.writer is not None:
            for name, value in _scalar_names(record).items():
                if not math.isnan(value):
                    self.writer.add_scalar(name, value, it)
            if isinstance(self.writer, LogWriter) and self.log_dir is not None:
                for video in sorted(Path(self.log_dir).rglob("*.mp4")):  # e.g. Isaac Lab's --video recordings
                    self.writer.save_video(video, it)
        if self.progress is not None:
            ret = f"{self.last_return:.1f}" if not math.isnan(self.last_return) else "n/a"
            eval_ret = record.get("eval_mean_return")
            eval_part = f" | eval {eval_ret:.1f}" if eval_ret is not None and not math.isnan(eval_ret) else ""
            self.progress.set_postfix_str(
                f"{record['steps_per_second']:,.0f} steps/s | collect {record['collection_time']:.2f}s "
                f"learn {record['learning_time']:.2f}s | return {ret}{eval_part}",
                refresh=False,
            )
            self.progress.update(1)

    def warn(self, message: str) -> None:
        if self.progress is not None:
            self.progress.write(f"warning: {message}", file=sys.stderr)
        else:
            print(f"warning: {message}", file=sys.stderr)

    # --- rsl-rl-lib's per-step protocol ------------------------------------------------------------------------------

    def process_env_step(
        self,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict[str, Any],
        intrinsic_rewards: torch.Tensor | None = None,
    ) -> None:
        """Add one env step: ``rewards[N]``, ``dones[N]``, the env's extras (``episode`` or ``log``: per-term values
        averaged at :meth:`log`) and RND's ``intrinsic_rewards[N]``. No host synchronisation."""
        if self.writer is None:  # as rsl-rl-lib: episodes are tracked for a writer only
            return
        if "episode" in extras:
            self.ep_extras.append(extras["episode"])
        elif "log" in extras:
            self.ep_extras.append(extras["log"])
        rewards = rewards.reshape(-1)
        if self.cur_reward_sum.shape[0] != rewards.shape[0]:
            self._reset_episode_sums(rewards.shape[0], rewards.device)
        if intrinsic_rewards is not None:
            self._intrinsic = True
            self.cur_ereward_sum += rewards
            self.cur_ireward_sum += intrinsic_rewards.reshape(-1)
            self.cur_reward_sum += rewards + intrinsic_rewards.reshape(-1)
        else:
            self.cur_reward_sum += rewards
        self.cur_episode_length += 1
        done = dones.reshape(-1) > 0
        sums = (self.cur_reward_sum, self.cur_episode_length, self.cur_ereward_sum, self.cur_ireward_sum)
        self._finished.append(torch.stack([done.to(self.cur_reward_sum.dtype), *sums]))
        for total in sums:
            total.masked_fill_(done, 0.0)

    def _reset_episode_sums(self, num_envs: int, device: str | torch.device) -> None:
        self.num_envs, self.device = num_envs, device
        zeros = [torch.zeros(num_envs, dtype=torch.float, device=device) for _ in range(4)]
        self._flush_episodes()  # the finished episodes of the old sums
        self.cur_reward_sum, self.cur_episode_length, self.cur_ereward_sum, self.cur_ireward_sum = zeros

    def _flush_episodes(self) -> None:
        """Move the episodes finished since the last call to the host buffers (one transfer)."""
        if not self._finished:
            return
        steps = torch.stack(self._finished)  # [T, 5, N]: done, return, length, extrinsic, intrinsic
        self._finished.clear()
        done = steps[:, 0] > 0
        # Step by step, envs in index order within a step: the order rsl-rl-lib appends them in.
        rows = steps[:, 1:].transpose(1, 2)[done][-_EPISODE_BUFFER:].tolist()
        for ret, length, extrinsic, intrinsic in rows:
            self._buffers["rewbuffer"].append(ret)
            self._buffers["lenbuffer"].append(length)
            if self._intrinsic:
                self._buffers["erewbuffer"].append(extrinsic)
                self._buffers["irewbuffer"].append(intrinsic)

    rewbuffer = _EpisodeBuffer("Returns of the last 100 finished episodes (extrinsic plus intrinsic), oldest first.")
    lenbuffer = _EpisodeBuffer("Lengths (steps) of the last 100 finished episodes.")
    erewbuffer = _EpisodeBuffer("Extrinsic returns of the last 100 finished episodes (when RND adds intrinsic ones).")
    irewbuffer = _EpisodeBuffer("Intrinsic returns of the last 100 finished episodes (when RND adds them).")

    def log(
        self,
        it: int,
        start_it: int,
        total_it: int,
        collect_time: float,
        learn_time: float,
        loss_dict: dict[str, Any],
        learning_rate: float,
        action_std: torch.Tensor | float,
        rnd_weight: float | None,
        print_minimal: bool = False,
        width: int = 80,
        pad: int = 40,
    ) -> None:
        """Log iteration ``it`` of an rsl-rl-lib style loop to the writer and print a report of ``width`` columns
        (labels right-aligned in ``pad``; ``print_minimal`` leaves out the per-term episode values)."""
        if self.writer is None:
            return
        steps = int(self.cfg["num_steps_per_env"]) * self.num_envs * self.gpu_world_size
        iteration_time = collect_time + learn_time
        extras = self._episode_extras()
        record: dict[str, float] = {
            "env_steps": float(self.tot_timesteps + steps),
            "wall_seconds": self.tot_time + iteration_time,
            "collection_time": collect_time,
            "learning_time": learn_time,
            "steps_per_second": steps / max(iteration_time, 1e-9),
            "learning_rate": float(learning_rate),
            "action_std": float(torch.as_tensor(action_std).float().mean()),
            **{f"Loss/{key}": float(value) for key, value in loss_dict.items()},
            **{key if "/" in key else f"Episode/{key}": value for key, value in extras.items()},
        }
        if self.rewbuffer:
            record["mean_return"] = statistics.mean(self.rewbuffer)
            record["mean_episode_length"] = statistics.mean(self.lenbuffer)
        if self.erewbuffer:
            record["Rnd/mean_extrinsic_reward"] = statistics.mean(self.erewbuffer)
            record["Rnd/mean_intrinsic_reward"] = statistics.mean(self.irewbuffer)
            if rnd_weight is not None:
                record["Rnd/weight"] = float(rnd_weight)
        self.log_iteration(it, record)
        from rsl_rl.utils.wandb_log_writer import WandbLogWriter  # lazy: it imports TensorBoard

        if "mean_return" in record and not isinstance(self.writer, WandbLogWriter):
            # Against training time as the step (W&B steps must only increase, so it gets none of these).
            self.writer.add_scalar("Train/mean_reward/time", record["mean_return"], int(self.tot_time))
            self.writer.add_scalar("Train/mean_episode_length/time", record["mean_episode_length"], int(self.tot_time))
        print(self._report(it, start_it, total_it, record, loss_dict, {} if print_minimal else extras, width, pad))

    def _report(
        self,
        it: int,
        start_it: int,
        total_it: int,
        record: dict[str, float],
        loss_dict: dict[str, Any],
        extras: dict[str, float],
        width: int,
        pad: int,
    ) -> str:
        """The console report of :meth:`log`: ``width`` columns, labels right-aligned in ``pad``."""
        rows = [("Run name:", str(self.cfg["run_name"]))] if self.cfg.get("run_name") else []
        rows += [
            ("Total steps:", f"{self.tot_timesteps}"),
            ("Steps per second:", f"{record['steps_per_second']:.0f}"),
            ("Collection time:", f"{record['collection_time']:.3f}s"),
            ("Learning time:", f"{record['learning_time']:.3f}s"),
            *[(f"Mean {key} loss:", f"{float(value):.4f}") for key, value in loss_dict.items()],
        ]
        if "mean_return" in record:
            rows += [("Mean reward:", f"{record['mean_return']:.2f}")]
            rows += [("Mean episode length:", f"{record['mean_episode_length']:.2f}")]
        rows += [("Mean action std:", f"{record['action_std']:.2f}")]
        rows += [(f"{key}:" if "/" in key else f"Mean episode {key}:", f"{v:.4f}") for key, v in extras.items()]
        done_it = it + 1 - start_it
        eta = self.tot_time / max(done_it, 1) * (total_it - start_it - done_it)
        footer = [
            ("Iteration time:", f"{record['collection_time'] + record['learning_time']:.2f}s"),
            ("Time elapsed:", str(datetime.timedelta(seconds=int(self.tot_time)))),
            ("ETA:", str(datetime.timedelta(seconds=int(eta)))),
        ]
        lines = ["#" * width, f" Learning iteration {it}/{total_it} ".center(width), ""]
        lines += [f"{label:>{pad}} {value}" for label, value in rows]
        lines += ["-" * width, *(f"{label:>{pad}} {value}" for label, value in footer)]
        return "\n".join(lines)

    def _episode_extras(self) -> dict[str, float]:
        """Mean of every per-term value collected since the last call (one host transfer), then clear them."""
        keys = list(dict.fromkeys(key for values in self.ep_extras for key in values))
        means = []
        for key in keys:
            parts = [torch.as_tensor(v[key], device=self.device).float() for v in self.ep_extras if key in v]
            means.append(torch.cat([part.reshape(-1) for part in parts]).mean())
        self.ep_extras.clear()
        return dict(zip(keys, torch.stack(means).tolist(), strict=True)) if means else {}

    # --- code state --------------------------------------------------------------------------------------------------

    def _write_git_status(self) -> list[str]:
        """Write ``git rev-parse HEAD`` and ``git diff`` of every registered repository (once each) into the run
        directory as ``git_<repo>.diff``; returns the files written."""
        assert self.log_dir is not None
        written: list[str] = []
        seen: set[str] = set()
        for repo_file in self.git_status_repos:
            repo = Path(repo_file).resolve()
            repo = repo if repo.is_dir() else repo.parent
            try:
                top, head = subprocess.run(
                    ["git", "rev-parse", "--show-toplevel", "HEAD"],
                    cwd=repo,
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout.split()
                if top in seen:
                    continue
                diff = subprocess.run(
                    ["git", "diff", "HEAD"], cwd=top, capture_output=True, text=True, timeout=10
                ).stdout
            except (OSError, ValueError, subprocess.SubprocessError):
                continue  # not a git checkout (e.g. an installed wheel): nothing to record
            seen.add(top)
            path = Path(self.log_dir) / f"git_{Path(top).name or 'repo'}.diff"
            path.write_text(f"--- git status of {top} ---\nHEAD {head}\n\n{diff}")
            written.append(str(path))
        return written


def _scalar_names(record: dict[str, Any]) -> dict[str, float]:
    """Map a history record onto rsl_rl-style scalar names."""
    mapping = {
        "mean_return": "Train/mean_reward",
        "mean_episode_length": "Train/mean_episode_length",
        "eval_mean_return": "Eval/mean_return",
        "steps_per_second": "Perf/total_fps",
        "wall_seconds": "Perf/wall_seconds",
        "env_steps": "Perf/env_steps",
        "collection_time": "Perf/collection_time",
        "learning_time": "Perf/learning_time",
        "learning_rate": "Loss/learning_rate",
        "action_std": "Policy/mean_std",
        "value_function": "Loss/value_function",
        "surrogate": "Loss/surrogate",
        "entropy": "Loss/entropy",
        "kl": "Loss/kl",
        "clip_fraction": "Loss/clip_fraction",
    }
    out = {tag: float(record[key]) for key, tag in mapping.items() if key in record}
    out.update({k: float(v) for k, v in record.items() if "/" in k})
    return out
