"""The runners' side of logging: episode statistics on the device, and the logger with the run directory's summary
and curves (writers, history and progress bar are :class:`rsl_rl.utils.logger.Logger`'s).

Per step the tracker only adds tensors (no host sync); once per iteration it moves every statistic to the host in one
transfer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.atomic import atomic_write
from rsl_rl.utils.log_writer import LoggerChoice
from rsl_rl.utils.logger import Logger


class EpisodeTracker:
    """Running episode returns/lengths and per-term episode statistics, accumulated as device tensors.

    Reads the env's ``extras``: ``episode`` (per-env values averaged over finished episodes), ``log`` (scalars averaged
    over the steps reporting them) and ``counts`` (scalars summed over the iteration, e.g. worlds reset after their
    physics became invalid; the runner prints non-zero counts once per iteration).

    With RND's intrinsic rewards the returns are extrinsic plus intrinsic (rsl-rl-lib's ``Train/mean_reward``), and the
    two parts are also summed apart (``Rnd/mean_extrinsic_reward``, ``Rnd/mean_intrinsic_reward``).
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
        # With RND: running extrinsic and intrinsic returns [2, N], and their sums over the finished episodes [2]
        # (allocated here: the first step runs in inference mode, whose tensors cannot be reset in place outside it).
        self.rnd_running = torch.zeros(2, num_envs, device=device)
        self.rnd_totals = torch.zeros(2, device=device)
        self.intrinsic = False
        """Whether intrinsic rewards were tracked: only then are the ``Rnd/`` statistics reported."""

    def track(
        self,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict[str, Any],
        intrinsic_rewards: torch.Tensor | None = None,
    ) -> None:
        """Add one step: ``rewards[N]``, ``dones[N]`` (terminated or truncated), the env's extras and RND's
        ``intrinsic_rewards[N]`` (None without RND)."""
        if intrinsic_rewards is not None:
            self._track_intrinsic(rewards, intrinsic_rewards, dones)
            rewards = rewards + intrinsic_rewards
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

    def _track_intrinsic(self, rewards: torch.Tensor, intrinsic: torch.Tensor, dones: torch.Tensor) -> None:
        self.intrinsic = True
        self.rnd_running += torch.stack([rewards, intrinsic])
        self.rnd_totals += torch.where(dones, self.rnd_running, 0.0).sum(-1)
        self.rnd_running.masked_fill_(dones, 0.0)

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
        if self.intrinsic:
            names += ["Rnd/mean_extrinsic_reward", "Rnd/mean_intrinsic_reward"]
            tensors.append(self.rnd_totals)
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
        if self.intrinsic:
            for name in ("Rnd/mean_extrinsic_reward", "Rnd/mean_intrinsic_reward"):
                out[name] = raw[name] / count if count else math.nan
            self.rnd_totals.zero_()
        self.totals.zero_()
        self.episode.clear()
        self.log.clear()
        self.counts.clear()
        return out


class RunLogger(Logger):
    """:class:`~rsl_rl.utils.logger.Logger` under the constructor this library's runners call, plus the run
    directory's ``summary.json`` and ``curves.png``.

    rsl-rl-lib's constructor takes the environment's size and device for its per-step episode sums; these runners keep
    their episode statistics in an :class:`EpisodeTracker` and pass the logger only the run's settings.
    """

    def __init__(
        self, log_dir: str | None, logger: str, config: dict[str, Any], wandb_project: str, run_name: str
    ) -> None:
        # The writer section an rsl-rl-lib dict config named travels in ``logger`` (RunnerConfig.logger is a plain
        # name); in ``config`` it becomes rsl-rl-lib's ``cfg["logger"]`` again, as the logger and config.json read it.
        section = logger.section if isinstance(logger, LoggerChoice) else None
        config.update(logger=section or str(logger), wandb_project=wandb_project, run_name=run_name)
        super().__init__(log_dir, config)
        self.loss_curves: tuple[str, ...] = ("value_function", "surrogate", "entropy")
        """Record keys plotted in the losses panel of ``curves.png``."""

    # --- run directory outputs ---------------------------------------------------------------------------------------

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.log_dir is None:
            return
        text = json.dumps(summary, indent=2, default=float)
        atomic_write(Path(self.log_dir) / "summary.json", lambda f: f.write(text.encode()))

    def write_curves(self, title: str) -> Path | None:
        """Plot mean return against env steps and wall-clock, and the losses, into ``curves.png``; a jump-start RL
        run (``jsrl/*`` records) adds the combined policy's evaluations and a panel of h and the guide's share."""
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
        jsrl = any("jsrl/guide_share" in r for r in h)
        fig, axes = plt.subplots(1, 4 if jsrl else 3, figsize=(20 if jsrl else 15, 4))
        axes[0].plot(steps, ret, label="train (stochastic)")
        axes[1].plot(wall, ret, label="train (stochastic)")
        if evals:
            axes[0].plot([e[0] for e in evals], [e[2] for e in evals], "o-", label="eval (deterministic)")
            axes[1].plot([e[1] for e in evals], [e[2] for e in evals], "o-", label="eval (deterministic)")
        if jsrl:
            _plot_jsrl(axes[0], axes[3], h, steps)
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
        path = Path(self.log_dir) / "curves.png"

        def write(f: Any) -> None:
            fig.savefig(f, format="png", dpi=90)

        atomic_write(path, write)
        plt.close(fig)
        return path


def _plot_jsrl(returns: Any, panel: Any, history: list[dict[str, Any]], steps: list[float]) -> None:
    """Jump-start RL: the combined policy π_h's evaluations beside the returns; the guide's share of the collected
    steps (left axis) and the switch step h (right axis; the curriculum's stage in the legend) against env steps."""
    combined = [
        (x, r["jsrl/combined_return"]) for x, r in zip(steps, history, strict=True) if "jsrl/combined_return" in r
    ]
    if combined:
        returns.plot([c[0] for c in combined], [c[1] for c in combined], "s--", label="eval π_h (guide then learner)")
    panel.plot(steps, [r.get("jsrl/guide_share", math.nan) for r in history], color="C0", label="guide share")
    panel.set_ylim(-0.02, 1.02)
    panel.set_ylabel("guide's share of steps")
    panel.set_xlabel("env steps")
    panel.grid(alpha=0.3)
    twin = panel.twinx()
    stages = {int(r["jsrl/stage"]) for r in history if "jsrl/stage" in r}
    label = f"h (stage {min(stages)} to {max(stages)})" if stages else "h (mean of the episodes' draws)"
    twin.plot(steps, [r.get("jsrl/h", math.nan) for r in history], color="C1", drawstyle="steps-post", label=label)
    twin.set_ylabel("switch step h")
    lines = panel.get_lines() + twin.get_lines()
    panel.legend(lines, [line.get_label() for line in lines])
    panel.set_title("jump-start RL")
