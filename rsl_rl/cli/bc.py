"""``rsl-rl bc``: behaviour cloning of a deterministic MLP actor on a demo file (``rsl-rl record-demos``), written as a
PPO checkpoint, so that ``play``, ``export``, ``record-demos --source`` and ``train --guide`` (jump-start RL, issue 15)
take it like any trained policy.

    rsl-rl bc --task NAME --data DEMOS.npz [--out DIR] [--steps N] [--hidden-dims 64 64] [--seed S]

* The actor is the task's PPO actor config with ``--hidden-dims`` (default: the task's), an MLP on the task's actor
  observation groups, its observation normaliser fit once on the training demos (the statistics a deployed policy
  divides by are those of the data it was cloned from, not of a later run), its Gaussian head's std ``--std``: a
  guide, ``play`` and ``export`` act with the mean; a PPO run that starts from the checkpoint explores with that std.
* Loss: mean squared error of the mean action against the applied (clipped) demo action, Adam with a cosine-decayed
  learning rate on random mini-batches.
* Whole episodes are held out (``--holdout``, a fraction of them): states of one episode are strongly correlated, so a
  held-out step of a training episode would flatter the fit. The held-out MSE and its fraction of the actions'
  variance (1 − R²) are printed, stored in the checkpoint's ``infos["bc"]`` and in ``summary.json``.

The run directory holds ``model_0.pt`` (one "iteration": the cloning) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import tyro

from rsl_rl.atomic import atomic_write
from rsl_rl.cli.env_config import config_from_data, config_to_data
from rsl_rl.cli.run_support import default_device, get_task_or_exit, make_run_dir, resolve_device, seed_everything
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ActorConfig, ModelConfig
from rsl_rl.runners.checkpoint import checkpoint_name
from rsl_rl.storage.demos import DemoData, load_demos


@dataclass
class BCArgs:
    """Clone the actions of a demo file with a deterministic MLP actor; write it as a PPO checkpoint."""

    data: Path
    """Demo file (.npz) written by ``rsl-rl record-demos``."""
    task: str | None = None
    """Registered task (default: the one the demo file records)."""
    out: Path | None = None
    """Run directory (default: runs/<task>/<date_time>_bc)."""
    steps: int = 3000
    """Gradient steps."""
    batch_size: int = 256
    """Demo steps per gradient step."""
    learning_rate: float = 3e-3
    """Adam's initial learning rate (cosine-decayed to 0 over the steps)."""
    hidden_dims: tuple[int, ...] | None = None
    """Hidden layer widths of the actor (default: the task's PPO actor's)."""
    holdout: float = 0.2
    """Fraction of the episodes held out to measure the fit (at least one)."""
    std: float = 0.1
    """Std of the checkpoint's Gaussian head: unused by a guide, play and export (the mean acts); the exploration
    of a PPO run started from the checkpoint."""
    seed: int = 0
    """Seed of the initial weights, the split and the mini-batches."""
    device: str = dataclasses.field(default_factory=default_device)
    """cpu, cuda or cuda:N."""


def bc(argv: Sequence[str]) -> int:
    args = tyro.cli(BCArgs, args=list(argv), prog="rsl-rl bc")
    if args.steps < 1 or args.batch_size < 1:
        raise ValueError(f"--steps and --batch-size must be >= 1, got {args.steps}, {args.batch_size}")
    if not 0.0 < args.holdout < 1.0:
        raise ValueError(f"--holdout must lie in (0, 1), got {args.holdout}")
    device = resolve_device(args.device)
    seed_everything(args.seed)
    demos = load_demos(args.data)
    task = args.task or demos.metadata.get("task")
    if task is None:
        raise ValueError(f"{args.data} records no task: pass --task NAME")
    spec = get_task_or_exit(task)
    # The env the demos were recorded in (record-demos stores its config), when they are of this task: play, export
    # and a guided run rebuild it from the checkpoint.
    recorded = demos.metadata.get("env_cfg") if task == demos.metadata.get("task") else None
    env_cfg = config_from_data(spec.env_cfg(), recorded, task) if recorded else spec.env_cfg()
    env_cfg.num_envs = 1  # the runner needs an env for the observation layout only
    env = spec.build(env_cfg, device=device, seed=args.seed)
    runner = _bc_runner(env, spec.agent_cfg("ppo"), args, device)
    groups = list(runner.obs_groups["actor"])
    x, y = _inputs(demos, groups, env, device), demos.actions.to(device, torch.float32)
    train, held = _split_episodes(demos, args.holdout, args.seed)
    train, held = train.to(device), held.to(device)
    actor = runner.alg.actor
    actor.train()
    actor.update_normalization(x[train])
    losses = fit(actor, x[train], y[train], args.steps, args.batch_size, args.learning_rate, args.seed)
    actor.eval()
    with torch.no_grad():
        train_mse, held_mse = (float((actor(x[rows]) - y[rows]).square().mean()) for rows in (train, held))
        variance = float(y[held].var(dim=0, unbiased=False).mean())
    stats = {
        "data": str(args.data.resolve()),
        "episodes": demos.num_episodes,
        "heldout_episodes": int(demos.episode[held.cpu()].unique().numel()),
        "train_steps": int(train.numel()),
        "heldout_steps": int(held.numel()),
        "steps": args.steps,
        "final_loss": losses[-1],
        "train_mse": train_mse,
        "heldout_mse": held_mse,
        "heldout_unexplained_variance": held_mse / variance if variance > 0 else math.nan,
        "obs_groups": groups,
    }
    run_dir = make_run_dir(spec.name, "bc", args.out)
    runner.current_learning_iteration = 1
    checkpoint = run_dir / checkpoint_name(1)
    runner.save(checkpoint, {"task": spec.name, "env_cfg": config_to_data(env_cfg), "bc": stats})
    summary = {"task": spec.name, "algorithm": "behaviour cloning", "checkpoint": str(checkpoint), **stats}
    text = json.dumps(summary, indent=2, default=float)
    atomic_write(run_dir / "summary.json", lambda f: f.write(text.encode()))
    env.close()
    print(
        f"{spec.name}: cloned {stats['train_steps']:,} steps of {demos.num_episodes} episodes in {args.steps} steps; "
        f"MSE train {train_mse:.4g}, held-out {held_mse:.4g} ({stats['heldout_unexplained_variance']:.2%} of the "
        f"actions' variance, {stats['heldout_steps']:,} steps); wrote {checkpoint}"
    )
    return 0


def _bc_runner(env: Any, cfg: Any, args: BCArgs, device: torch.device) -> Any:
    """A PPO runner of the task's config whose actor is an MLP with ``args.hidden_dims``, a normaliser and std
    ``args.std`` (a recurrent or CNN model of the task's config is replaced by an MLP)."""
    from rsl_rl.runners import make_runner

    task_actor = cfg.actor
    plain = type(task_actor) is ActorConfig
    hidden = args.hidden_dims or (task_actor.hidden_dims if plain else (256, 256))
    activation = task_actor.activation if plain else "elu"
    cfg.actor = ActorConfig(
        hidden_dims=hidden,
        activation=activation,
        obs_normalization=True,
        distribution_cfg=DistributionConfig(init_std=args.std),
    )
    if type(cfg.critic) is not ModelConfig:  # an RNN critic would make the checkpoint a recurrent PPO's
        cfg.critic = ModelConfig(hidden_dims=hidden, activation=activation)
    cfg.logger = "none"
    cfg.__post_init__()
    return make_runner(env, cfg, None, device, show_progress=False)


def _inputs(demos: DemoData, groups: list[str], env: Any, device: torch.device) -> torch.Tensor:
    """``[T, D]``: the actor's groups of the demos' observations, concatenated as the actor reads them."""
    obs = env.get_observations()
    missing = [g for g in groups if g not in demos.obs]
    if missing:
        raise ValueError(f"the demo file lacks the actor's observation group(s) {missing}; it has {list(demos.obs)}")
    for g in groups:
        if demos.obs[g].dim() != 2:
            shape = tuple(demos.obs[g].shape[1:])
            raise ValueError(f"observation group '{g}' is an image {shape}: bc clones MLP actors")
        if demos.obs[g].shape[1] != obs[g].shape[-1]:
            raise ValueError(
                f"observation group '{g}': the demos have width {demos.obs[g].shape[1]}, the task {obs[g].shape[-1]}"
            )
    return torch.cat([demos.obs[g].to(device, torch.float32) for g in groups], dim=-1)


def _split_episodes(demos: DemoData, holdout: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of the training and the held-out steps: a random ``holdout`` fraction of whole episodes (at least
    one) is held out."""
    episodes = demos.num_episodes
    if episodes < 2:
        raise ValueError(f"the demo file holds {episodes} episode(s): bc holds whole episodes out, it needs >= 2")
    generator = torch.Generator().manual_seed(seed)
    count = min(max(1, round(holdout * episodes)), episodes - 1)
    held_out = torch.zeros(episodes, dtype=torch.bool)
    held_out[torch.randperm(episodes, generator=generator)[:count]] = True
    rows = held_out[demos.episode.cpu()]
    return (~rows).nonzero().squeeze(-1), rows.nonzero().squeeze(-1)


def fit(
    actor: Any, x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, learning_rate: float, seed: int
) -> list[float]:
    """Minimise the mean squared error of ``actor(x)`` ``[B, A]`` against ``y`` on random mini-batches of ``x``
    ``[T, D]``; the MLP only (the normaliser is fit, the std is set). Returns the loss every step (one host
    transfer at the end)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    optimizer = torch.optim.Adam(actor.mlp.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = torch.empty(steps, device=x.device)
    for step in range(steps):
        rows = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=generator, device=x.device)
        loss = (actor(x[rows]) - y[rows]).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses[step] = loss.detach()
    return losses.tolist()
