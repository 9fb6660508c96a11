"""``rsl-rl eval-robust``: a trained policy's return over an uncertainty set's grid (RRLS's evaluation protocol).

One batched env holds every grid point (and the nominal task) × ``--episodes``: each env gets its point's parameters
through :class:`~tasks.wrappers.params.ModifiedParams`, runs its first episode under the deterministic policy, and the
report gives per point the mean return, then the worst case (min over points of the mean), the average (mean over
points) and the nominal return (the unmodified task's parameters, evaluated apart: Hopper's nominal torso mass lies
outside its own set). Writes ``table.csv``, ``summary.json`` and ``heatmap.png`` to ``--out``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro
from tensordict import TensorDict

from rsl_rl.cli.env_config import checkpoint_env_config
from rsl_rl.cli.run_support import (
    acting_runner,
    default_device,
    get_task_or_exit,
    load_checkpoint_file,
    resolve_device,
    seed_everything,
    set_backend,
    task_from_run_dir,
)


@dataclass
class EvalRobustArgs:
    """Evaluate a checkpoint on every point of an uncertainty set's grid (``tasks/uncertainty.py``)."""

    checkpoint: Path
    """Checkpoint file, or a run directory (its latest model_<it>.pt)."""
    task: str | None = None
    """Task (default: the one recorded in the checkpoint)."""
    set: str = "1d"
    """Uncertainty set of the task: 1d, 2d, 3d or another of its names."""
    points: int = 10
    """Grid points per dimension (RRLS: 10 → 10, 100, 1000 points)."""
    inclusive: bool = False
    """Include the upper bounds (np.linspace) instead of RRLS's np.arange, which leaves them out."""
    episodes: int = 1
    """Episodes per grid point. The policy is deterministic, so episodes of one point differ only by the task's
    initial-state noise (±5e-3 for Hopper) and, where the task draws them, commands: one suffices for the gymnasium
    tasks; raise it for go1 (random commands)."""
    device: str = dataclasses.field(default_factory=default_device)
    """cpu, cuda or cuda:N."""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)."""
    seed: int = 0
    """Seed of the env's initial states."""
    out: Path | None = None
    """Output directory (default: <run dir>/robust_eval/<set>)."""
    backend: str | None = None
    """Simulation backend of MuJoCo tasks: cpu or warp."""


def evaluate_grid(
    env: Any,
    policy: Callable[[TensorDict], torch.Tensor],
    names: Sequence[str],
    values: torch.Tensor,
    episodes: int = 1,
    nominal: Mapping[str, float] | None = None,
    check_every: int = 50,
    max_steps: int | None = None,
    skip_finished: bool = True,
) -> dict[str, Any]:
    """Returns of the first episode of every env, env ``r·episodes + k`` at row ``r`` of ``values [P, d]`` (then the
    ``nominal`` values as row P, if given). ``env``: a :class:`ModifiedParams` managing ``names``, with exactly
    ``(P [+1]) · episodes`` envs.

    The values are set before the initial reset (so it starts from them), again right after it (a task's own
    reset-time randomisation, e.g. go1's motor strength, must not replace them) and pending for each env's next reset.
    The host checks every ``check_every`` steps whether all first episodes have ended; no other sync per step.
    ``skip_finished``: on a CPU env whose simulator takes a set of worlds to step (``sim.active_worlds``, the cpu
    backend), only the worlds whose first episode is still running are stepped, after every step (the host owns the
    data: no sync). The worlds are independent, so the returns are those of stepping all of them.
    Returns ``returns``/``lengths`` ``[rows, episodes]``, ``in_force`` ``[rows, d]`` (read back after the first step),
    ``max_param_deviation`` (largest |value in force − target| of a running episode, read at every check), ``mean``
    per grid point, ``worst``, ``average``, ``nominal_return``, ``steps``, ``env_steps``, ``wall_seconds``.
    """
    rows = values.to(torch.float64)
    if nominal is not None:
        rows = torch.cat([rows, torch.tensor([[float(nominal[n]) for n in names]], dtype=torch.float64)])
    if env.num_envs != rows.shape[0] * episodes:
        message = f"{rows.shape[0]} rows x {episodes} episodes need as many envs; the env has {env.num_envs}"
        raise ValueError(f"evaluate_grid: {message}")
    start = time.perf_counter()
    target = rows.to(env.device, torch.float32).repeat_interleave(episodes, dim=0)  # [N, d]
    per_env = {name: target[:, j] for j, name in enumerate(names)}
    env.set_params(per_env, at_reset=True)
    env.reset()
    env.set_params(per_env)
    env.set_params(per_env, at_reset=True)  # a later reset keeps them (those episodes are not counted)
    obs = env.get_observations()  # observed under the values now in force
    n = env.num_envs
    returns = torch.zeros(n, device=env.device)
    lengths = torch.zeros(n, dtype=torch.long, device=env.device)
    active = torch.ones(n, dtype=torch.bool, device=env.device)
    limit = max_steps or env.max_episode_length  # every first episode ends by its time limit
    task = getattr(env, "unwrapped", env)
    sim = getattr(task, "sim", None) if skip_finished and env.device.type == "cpu" else None
    if sim is not None and not hasattr(sim, "active_worlds"):
        sim = None
    deviation = torch.zeros((), device=env.device)
    in_force = target
    steps = 0
    try:
        with torch.no_grad():
            while steps < limit:
                obs, reward, terminated, truncated, _ = env.step(policy(obs).to(env.device))
                returns += torch.where(active, reward.float(), 0.0)
                lengths += active.long()
                done = terminated | truncated
                reset = getattr(policy, "reset", None)
                if reset is not None:
                    reset(done)
                active &= ~done
                steps += 1
                if sim is not None:  # a CPU env: reading ``active`` costs no device sync
                    sim.active_worlds = active.nonzero().squeeze(-1).numpy()
                if steps == 1 or steps % check_every == 0 or steps == limit:
                    params = env.get_params()
                    now = torch.stack([params[name].float() for name in names], -1)
                    if steps == 1:
                        in_force = now.clone()
                    live = (active | (steps == 1)).unsqueeze(-1)
                    deviation = torch.maximum(deviation, torch.where(live, (now - target).abs(), 0.0).max())
                    if steps % check_every == 0 and not bool(active.any()):
                        break
    finally:
        if sim is not None:
            sim.active_worlds = None
    P = values.shape[0]
    ret = returns.reshape(-1, episodes).cpu().double()
    mean = ret[:P].mean(-1)
    return {
        "names": list(names),
        "values": values.cpu(),
        "returns": ret,
        "lengths": lengths.reshape(-1, episodes).cpu(),
        "in_force": in_force.reshape(-1, episodes, len(names)).mean(1).cpu().double(),
        "max_param_deviation": float(deviation),
        "unfinished_episodes": int(active.sum()),
        "mean": mean,
        "worst": float(mean.min()),
        "worst_index": int(mean.argmin()),
        "average": float(mean.mean()),
        "nominal_return": float(ret[P].mean()) if nominal is not None else None,
        "steps": steps,
        "env_steps": steps * n,
        "wall_seconds": time.perf_counter() - start,
    }


def plot_grid(result: dict[str, Any], path: Path, title: str) -> None:
    """1-D: return along the parameter; 2-D: the grid as an image; d ≥ 3: one panel per pair of dimensions, the mean
    over the others (top row) and their min (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, values, mean = result["names"], result["values"].numpy(), result["mean"].numpy()
    axes_values = [np.unique(values[:, j]) for j in range(len(names))]
    nominal = result["nominal_return"]
    if len(names) == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(values[:, 0], mean, "o-", label="mean return")
        if nominal is not None:
            ax.axhline(nominal, color="gray", ls="--", label="nominal")
        ax.set_xlabel(names[0])
        ax.set_ylabel("return")
        ax.legend()
    else:
        cube = mean.reshape([len(a) for a in axes_values])  # itertools.product order = C order
        pairs = list(itertools.combinations(range(len(names)), 2))
        reductions = [("mean", np.mean)] if len(names) == 2 else [("mean", np.mean), ("min", np.min)]
        fig, grid = plt.subplots(len(reductions), len(pairs), figsize=(4.5 * len(pairs), 3.8 * len(reductions)),
                                 squeeze=False)  # fmt: skip
        for (label, reduce), row in zip(reductions, grid, strict=True):
            for (a, b), ax in zip(pairs, row, strict=True):
                others = tuple(k for k in range(len(names)) if k not in (a, b))
                image = reduce(cube, axis=others) if others else cube
                im = ax.imshow(image.T, origin="lower", aspect="auto", cmap="viridis",
                               extent=(-0.5, len(axes_values[a]) - 0.5, -0.5, len(axes_values[b]) - 0.5))  # fmt: skip
                ax.set_xticks(range(len(axes_values[a])), [f"{v:.3g}" for v in axes_values[a]], rotation=60)
                ax.set_yticks(range(len(axes_values[b])), [f"{v:.3g}" for v in axes_values[b]])
                ax.set_xlabel(names[a])
                ax.set_ylabel(names[b])
                ax.set_title(f"{label} over the rest" if others else "mean return")
                fig.colorbar(im, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(result: dict[str, Any], out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``table.csv`` (a row per grid point, then the nominal row), ``summary.json``, ``heatmap.png``."""
    out.mkdir(parents=True, exist_ok=True)
    names, P = result["names"], result["values"].shape[0]
    ret, lengths, in_force = result["returns"], result["lengths"], result["in_force"]
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["point", "nominal", *names, "mean_return", "min_return", "mean_length", "episodes"])
        for r in range(ret.shape[0]):
            row = [r, int(r >= P), *(f"{float(v):.6g}" for v in in_force[r])]
            row += [
                f"{float(ret[r].mean()):.6g}",
                f"{float(ret[r].min()):.6g}",
                f"{float(lengths[r].float().mean()):.6g}",
            ]
            writer.writerow([*row, ret.shape[1]])
    worst = result["values"][result["worst_index"]]
    summary = {
        **meta,
        "parameters": names,
        "grid_points": P,
        "worst": result["worst"],
        "worst_point": {n: float(v) for n, v in zip(names, worst, strict=True)},
        "average": result["average"],
        "nominal": result["nominal_return"],
        "max_param_deviation": result["max_param_deviation"],
        "unfinished_episodes": result["unfinished_episodes"],
        "steps": result["steps"],
        "env_steps": result["env_steps"],
        "wall_seconds": result["wall_seconds"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_grid(result, out / "heatmap.png", f"{meta['task']} {meta['set']}: worst {result['worst']:.1f}, "
                                            f"average {result['average']:.1f}")  # fmt: skip
    return summary


def eval_robust(argv: Sequence[str]) -> int:
    from tasks.uncertainty import grid, uncertainty_set
    from tasks.wrappers.params import ModifiedParams

    args = tyro.cli(EvalRobustArgs, args=list(argv), prog="rsl-rl eval-robust")
    if args.episodes < 1 or args.points < 1:
        raise ValueError(f"--episodes and --points must be >= 1, got {args.episodes} and {args.points}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    path, state = load_checkpoint_file(args.checkpoint)
    task = args.task or (state.get("infos") or {}).get("task") or task_from_run_dir(path)
    if task is None:
        print("error: the checkpoint does not record its task; pass --task NAME", file=sys.stderr)
        return 2
    spec = get_task_or_exit(task)
    uset = uncertainty_set(task, args.set)  # KeyError naming the task's sets
    names, values = grid(uset, args.points, args.inclusive)
    seed_everything(args.seed)
    env_cfg = checkpoint_env_config(spec, state)
    env_cfg.num_envs = (values.shape[0] + 1) * args.episodes
    set_backend(env_cfg, args.backend, spec.name)
    base = spec.build(env_cfg, device=device, seed=args.seed)
    try:
        env = ModifiedParams(base, names)
        nominal = env.nominal_params()
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"task '{task}' cannot vary the parameters of set '{args.set}' per env: {err}") from err
    policy = acting_runner(env, spec, state, path, device).get_inference_policy(device)
    result = evaluate_grid(env, policy, names, values, args.episodes, nominal)
    out = args.out or path.parent / "robust_eval" / args.set
    meta = {
        "task": task,
        "checkpoint": str(path),
        "set": args.set,
        "bounds": {n: list(b) for n, b in uset.bounds.items()},
        "set_description": uset.description,
        "points": args.points,
        "inclusive": args.inclusive,
        "episodes": args.episodes,
        "nominal_values": nominal,
        "seed": args.seed,
    }
    summary = write_report(result, out, meta)
    env.close()
    _print_table(result, summary, out)
    return 0


def _print_table(result: dict[str, Any], summary: dict[str, Any], out: Path) -> None:
    """The ten worst points, then worst / average / nominal."""
    names, values, mean = result["names"], result["values"], result["mean"]
    order = torch.argsort(mean)[:10].tolist()
    print("  ".join(f"{n:>14s}" for n in [*names, "mean return"]))
    for i in order:
        print("  ".join(f"{float(v):14.4g}" for v in [*values[i], mean[i]]))
    if len(mean) > len(order):
        print(f"  ... ({len(mean)} points; the {len(order)} worst shown)")
    nominal = "n/a" if summary["nominal"] is None else f"{summary['nominal']:.2f}"
    print(f"{summary['task']} {summary['set']}: worst {summary['worst']:.2f}, average {summary['average']:.2f}, "
          f"nominal {nominal} over {summary['grid_points']} points x {summary['episodes']} episode(s) "
          f"({summary['env_steps']:,} env steps, {summary['wall_seconds']:.1f} s); wrote {out}")  # fmt: skip
