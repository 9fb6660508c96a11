"""Training observability: episode statistics on the device, a progress bar, TensorBoard, W&B, summary and curves.

Per step the logger only adds tensors (no host sync); once per iteration it moves every statistic to the host in one
transfer.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from tensordict import TensorDict

from rsl_rl.atomic import atomic_write


class EpisodeTracker:
    """Running episode returns/lengths and per-term episode statistics, accumulated as device tensors.

    Reads the env's ``extras``: ``episode`` (per-env values averaged over finished episodes), ``log`` (scalars averaged
    over the steps reporting them) and ``counts`` (scalars summed over the iteration, e.g. worlds reset after their
    physics became invalid; the runner prints non-zero counts once per iteration).
    """

    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.device = device
        # Row 0: running return, row 1: running length of every env's current episode.
        self.running = torch.zeros(2, num_envs, device=device)
        # Sums over this iteration's finished episodes (return, length, count) and the NaN probe.
        self.totals = torch.zeros(4, device=device)
        self.episode: dict[str, torch.Tensor] = {}
        self.log: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def track(self, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]) -> None:
        """Add one step: ``rewards[N]``, ``dones[N]`` (terminated or truncated) and the env's extras."""
        self.running[0] += rewards
        self.running[1] += 1.0
        # Masks select (torch.where), never multiply: a NaN of an env mid-episode must not spoil the episodes other
        # envs end now, nor outlive its own episode (NaN·0 = NaN).
        self.totals[:2] += torch.where(dones, self.running, 0.0).sum(-1)
        self.totals[2] += dones.sum()
        self.running.masked_fill_(dones, 0.0)
        for name, value in (extras.get("episode") or {}).items():
            contribution = torch.where(dones, value.to(self.running.dtype), 0.0).sum()
            acc = self.episode.get(name)
            self.episode[name] = contribution if acc is None else acc + contribution
        for name, value in (extras.get("counts") or {}).items():
            acc = self.counts.get(name)
            self.counts[name] = value if acc is None else acc + value
        for name, value in (extras.get("log") or {}).items():
            value = torch.as_tensor(value, device=self.device).float().mean()
            pair = torch.stack([value, torch.ones((), device=self.device)])
            acc = self.log.get(name)
            self.log[name] = pair if acc is None else acc + pair

    def probe(self, obs: TensorDict, rewards: torch.Tensor) -> None:
        """Fold observations and rewards into a sum that becomes non-finite iff any of them is (2 ops per group)."""
        total = rewards.sum()
        for value in obs.values():
            if isinstance(value, torch.Tensor):
                total = total + value.sum()
        self.totals[3:].add_(total)

    def collect(self) -> dict[str, float]:
        """Means over this iteration's finished episodes (NaN when none finished), then reset the sums."""
        names = ["return_sum", "length_sum", "count", "probe"]
        tensors = [self.totals]
        for name, value in self.episode.items():
            names.append(f"episode/{name}")
            tensors.append(value.reshape(1))
        for name, pair in self.log.items():
            names += [f"log/{name}", f"logcount/{name}"]
            tensors.append(pair)
        for name, value in self.counts.items():
            names.append(f"count/{name}")
            tensors.append(value.float().reshape(1))
        values = torch.cat(tensors).tolist()  # the one host transfer of the iteration
        raw = dict(zip(names, values, strict=True))
        count = raw["count"]
        out = {
            "mean_return": raw["return_sum"] / count if count else math.nan,
            "mean_episode_length": raw["length_sum"] / count if count else math.nan,
            "episodes": count,
            "nonfinite": float(not math.isfinite(raw["probe"])),
        }
        for name in self.episode:
            out[f"Episode/{name}"] = raw[f"episode/{name}"] / count if count else math.nan
        for name in self.log:
            key = name if "/" in name else f"Episode/{name}"
            out[key] = raw[f"log/{name}"] / max(raw[f"logcount/{name}"], 1.0)
        for name in self.counts:
            out[f"Counts/{name}"] = raw[f"count/{name}"]
        self.totals.zero_()
        self.episode.clear()
        self.log.clear()
        self.counts.clear()
        return out


class RunLogger:
    """Progress bar, TensorBoard/W&B writers, per-iteration history, ``summary.json`` and the curves PNG."""

    def __init__(
        self, log_dir: str | None, logger: str, config: dict[str, Any], wandb_project: str, run_name: str
    ) -> None:
        self.log_dir = Path(log_dir) if log_dir else None
        self.kind = logger if self.log_dir else "none"
        self.config = config
        self.wandb_project = wandb_project
        self.run_name = run_name
        self.history: list[dict[str, float]] = []
        self.writer: Any = None
        self.wandb_run: Any = None
        self.progress: Any = None
        self.git_repos: list[str] = []
        self.last_return = math.nan
        self.loss_curves: tuple[str, ...] = ("value_function", "surrogate", "entropy")
        """Record keys plotted in the losses panel of ``curves.png``."""

    # --- lifecycle ---------------------------------------------------------------------------------------------------

    def start(self, start_it: int, total_it: int, show_progress: bool) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(
                self.log_dir / "config.json",
                lambda f: f.write(json.dumps(self.config, indent=2, default=repr).encode()),
            )
            self._write_git_status()
            if self.kind == "tensorboard" and self.writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=start_it)
            elif self.kind == "wandb" and self.wandb_run is None:
                self.wandb_run = _init_wandb(self.log_dir, self.wandb_project, self.run_name, self.config)
        if show_progress:
            from tqdm import tqdm

            self.progress = tqdm(
                total=total_it, initial=start_it, unit="it", dynamic_ncols=True, file=sys.stderr, mininterval=0.5
            )

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.finish()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None

    # --- per iteration -----------------------------------------------------------------------------------------------

    def log_iteration(self, it: int, record: dict[str, float]) -> None:
        """Record one iteration: ``record`` holds env_steps, wall_seconds, timings, losses and episode statistics."""
        if not math.isnan(record.get("mean_return", math.nan)):
            self.last_return = record["mean_return"]
        record = {"iteration": it, **record, "last_mean_return": self.last_return}
        self.history.append(record)
        scalars = _scalar_names(record)
        if self.writer is not None:
            for name, value in scalars.items():
                if not math.isnan(value):
                    self.writer.add_scalar(name, value, it)
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in scalars.items() if not math.isnan(v)}, step=it)
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

    # --- run directory outputs ---------------------------------------------------------------------------------------

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.log_dir is None:
            return
        text = json.dumps(summary, indent=2, default=float)
        atomic_write(self.log_dir / "summary.json", lambda f: f.write(text.encode()))

    def write_curves(self, title: str) -> Path | None:
        """Plot mean return against env steps and wall-clock, and the losses, into ``curves.png``."""
        if self.log_dir is None or not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        h = self.history
        steps = [r["env_steps"] for r in h]
        wall = [r["wall_seconds"] for r in h]
        ret = [r["last_mean_return"] for r in h]
        evals = [(r["env_steps"], r["wall_seconds"], r["eval_mean_return"]) for r in h if "eval_mean_return" in r]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        axes[0].plot(steps, ret, label="train (stochastic)")
        axes[1].plot(wall, ret, label="train (stochastic)")
        if evals:
            axes[0].plot([e[0] for e in evals], [e[2] for e in evals], "o-", label="eval (deterministic)")
            axes[1].plot([e[1] for e in evals], [e[2] for e in evals], "o-", label="eval (deterministic)")
        axes[0].set_xlabel("env steps")
        axes[1].set_xlabel("wall-clock seconds")
        for ax in axes[:2]:
            ax.set_ylabel("mean episode return")
            ax.grid(alpha=0.3)
            ax.legend()
        for key in self.loss_curves:
            axes[2].plot(steps, [r.get(key, math.nan) for r in h], label=key)
        axes[2].set_yscale("symlog")
        axes[2].set_xlabel("env steps")
        axes[2].set_title("losses")
        axes[2].legend()
        axes[2].grid(alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
        path = self.log_dir / "curves.png"

        def write(f: Any) -> None:
            fig.savefig(f, format="png", dpi=90)

        atomic_write(path, write)
        plt.close(fig)
        return path

    def _write_git_status(self) -> None:
        """Record ``git rev-parse HEAD`` and ``git diff`` of every registered repository into the run directory."""
        assert self.log_dir is not None
        for repo_file in self.git_repos:
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
                diff = subprocess.run(
                    ["git", "diff", "HEAD"], cwd=top, capture_output=True, text=True, timeout=10
                ).stdout
            except (OSError, ValueError, subprocess.SubprocessError):
                continue  # not a git checkout (e.g. an installed wheel): nothing to record
            name = Path(top).name or "repo"
            text = f"--- git status of {top} ---\nHEAD {head}\n\n{diff}"
            (self.log_dir / f"git_{name}.diff").write_text(text)


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


def _init_wandb(log_dir: Path, project: str, run_name: str, config: dict[str, Any]) -> Any:
    """Start a W&B run; without ``WANDB_MODE`` and without credentials it runs offline rather than failing."""
    import wandb

    mode = os.environ.get("WANDB_MODE")
    if mode is None and not os.environ.get("WANDB_API_KEY") and not (Path.home() / ".netrc").exists():
        mode = "offline"
        warnings.warn("no W&B credentials found: logging offline (sync later with `wandb sync`)", stacklevel=2)
    modes: dict[str | None, Literal["online", "offline", "disabled"] | None] = {
        None: None,
        "online": "online",
        "run": "online",
        "offline": "offline",
        "dryrun": "offline",
        "disabled": "disabled",
    }
    if mode not in modes:
        raise ValueError(f"WANDB_MODE={mode!r}; allowed: online, offline, disabled")
    name = run_name or log_dir.name
    return wandb.init(project=project, name=name, dir=str(log_dir), config=config, mode=modes[mode])
