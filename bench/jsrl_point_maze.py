"""Jump-start RL on ``point-maze`` (issue 15): env steps to a success threshold for JSRL-curriculum, JSRL-random and
PPO from scratch, the final learner's success against the guide's, and the KL of PPO with guide steps masked vs not.

Every run is the CLI, one after another (nothing beside them), with the task's PPO config (256 envs × 64 steps per
iteration; the learner alone evaluated deterministically on 64 episodes every 10 iterations; training stops when that
success rate first reaches the task's ``stop_at_return`` 0.9, above the guide's ~0.7):

    rsl-rl train --task point-maze --seed S --threads T --run-dir DIR --max-iterations M \\
        [--guide scripted --jsrl curriculum|random --jsrl.horizon 100 [--jsrl.ppo-guide-steps unmasked]]

H = 100 is the guide's typical episode length (a successful guide episode takes ~96 steps; jsrl.md: "H = the guide's
typical episode length"); the other JSRL settings are the defaults (10 stages, tolerance 0.05, window 5). Env steps
to the threshold are the training steps (guide steps included) at the evaluation that first reached it; runs that
never reach it within M iterations count as "> steps done". A run directory that holds a finished run (with its
``process_seconds.txt``) is reused, so an interrupted invocation continues where it stopped.

After each run its exported ONNX policy (the learner alone, deterministic, observation normalisation baked in) and
the scripted guide play the first episode of 512 fresh envs (seed 10,000 + S, the same envs for both) through
onnxruntime: the final success against the guide's. The KL column is PPO's logged ``Loss/kl`` (mean KL(π_old‖π_new)
of the rows in the policy loss): its maximum over the run and over the first ``--kl-window`` iterations.

    OMP_NUM_THREADS=2 .venv/bin/python bench/jsrl_point_maze.py [--seeds 0 1 2 3 4] [--threads 2]
        [--variants curriculum random scratch unmasked] [--max-iterations 300] [--unmasked-seeds 0 1]

Writes ``bench/results/jsrl_point_maze.json`` and prints a markdown table; ends with
``ratio=<median env steps to threshold from scratch / median with JSRL-curriculum>`` (``ratio>=`` when scratch
never reached it: its steps done are a lower bound).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.classic.point_maze import PointMazeCfg, PointMazeEnv, point_maze_guide  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "curriculum": ["--guide", "scripted", "--jsrl", "curriculum", "--jsrl.horizon", "100"],
    "random": ["--guide", "scripted", "--jsrl", "random", "--jsrl.horizon", "100"],
    "scratch": [],
    "unmasked": [
        *("--guide", "scripted", "--jsrl", "curriculum", "--jsrl.horizon", "100"),
        *("--jsrl.ppo-guide-steps", "unmasked"),
    ],
}
CHECK_ENVS, CHECK_SEED = 512, 10_000


def first_episode_success(env: PointMazeEnv, policy: Any) -> float:
    """Share of the ``env.num_envs`` first episodes that reach the goal under ``policy(obs) -> actions``."""
    obs = env.reset()
    done = torch.zeros(env.num_envs, dtype=torch.bool)
    success = torch.zeros(env.num_envs, dtype=torch.bool)
    for _ in range(env.max_episode_length):
        obs, _, terminated, truncated, extras = env.step(policy(obs))
        success |= (terminated | truncated) & ~done & extras["success"]
        done |= terminated | truncated
        if bool(done.all()):
            break
    return float(success.float().mean())


def onnx_policy(path: Path) -> Any:
    """The exported learner as ``policy(obs) -> actions`` on a TensorDict batch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def act(obs: Any) -> torch.Tensor:
        actions = session.run(None, {name: obs["policy"].numpy().astype(np.float32)})[0]
        return torch.from_numpy(np.asarray(actions))

    return act


def kl_stats(run_dir: Path, window: int) -> dict[str, float]:
    """Max of ``Loss/kl`` over the run and over its first ``window`` iterations, and the first-window mean."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    kl = [e.value for e in sorted(acc.Scalars("Loss/kl"), key=lambda e: e.step)]
    head = kl[:window]
    return {"kl_max": max(kl), "kl_max_head": max(head), "kl_mean_head": statistics.mean(head), "iterations": len(kl)}


def run(variant: str, seed: int, threads: int, max_iterations: int, out: Path, kl_window: int) -> dict[str, Any]:
    run_dir = out / f"{variant}_s{seed}"
    cmd = [str(Path(sys.executable).parent / "rsl-rl"), "train", "--task", "point-maze", "--seed", str(seed)]
    cmd += ["--threads", str(threads), "--run-dir", str(run_dir), "--max-iterations", str(max_iterations)]
    cmd += ["--logger", "tensorboard", *VARIANTS[variant]]
    timing = run_dir / "process_seconds.txt"
    if not timing.exists():  # a finished run of an earlier invocation is reused (its time recorded beside it)
        start = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        timing.write_text(f"{time.perf_counter() - start}\n")
    process_s = float(timing.read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    solved = summary["solved_at"]
    check = PointMazeEnv(PointMazeCfg(num_envs=CHECK_ENVS), seed=CHECK_SEED + seed)
    learner = first_episode_success(check, onnx_policy(run_dir / "exported" / "policy.onnx"))
    guide_env = PointMazeEnv(PointMazeCfg(num_envs=CHECK_ENVS), seed=CHECK_SEED + seed)
    guide = first_episode_success(guide_env, point_maze_guide(guide_env))
    result = {
        "variant": variant,
        "seed": seed,
        "solved": solved is not None,
        "env_steps": solved["env_steps"] if solved else summary["env_steps"],
        "train_seconds": solved["wall_seconds"] if solved else summary["wall_seconds"],
        "process_seconds": process_s,
        "final_success": learner,
        "guide_success": guide,
        **kl_stats(run_dir, kl_window),
    }
    print(json.dumps(result), flush=True)
    return result


def steps_cell(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "—"
    values = [r["env_steps"] / 1e6 for r in rows]
    marks = ["" if r["solved"] else ">" for r in rows]
    return ", ".join(f"{m}{v:.2f}" for m, v in zip(marks, values, strict=True))


def median_steps(rows: list[dict[str, Any]]) -> tuple[float, bool]:
    """Median env steps to the threshold and whether it is exact (every run at or below the median solved)."""
    values = sorted(r["env_steps"] for r in rows)
    median = statistics.median(values)
    exact = all(r["solved"] for r in rows if r["env_steps"] <= median)
    return median, exact


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-iterations", type=int, default=300, help="budget per run (4.9 M env steps at 300)")
    parser.add_argument("--unmasked-seeds", type=int, nargs="*", default=[0, 1], help="seeds of the KL comparison")
    parser.add_argument("--kl-window", type=int, default=30, help="iterations of the first-window KL statistics")
    parser.add_argument("--out", type=Path, default=Path("/tmp/jsrl_point_maze"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: list[dict[str, Any]] = []
    for seed in args.seeds:
        for variant in args.variants:  # every seed runs each variant in turn: drift in the machine hits all alike
            if variant == "unmasked" and seed not in args.unmasked_seeds:
                continue
            results.append(run(variant, seed, args.threads, args.max_iterations, args.out, args.kl_window))
    by = {v: [r for r in results if r["variant"] == v] for v in args.variants}
    print(
        "\n| variant | env steps to success ≥ 0.9 (M), per seed | median (M) | train s (median) | final success "
        "(mean) | guide (mean) | KL max first 30 it (mean) | KL max run (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for variant, rows in by.items():
        median, exact = median_steps(rows)
        print(
            f"| {variant} | {steps_cell(rows)} | {'' if exact else '>'}{median / 1e6:.2f} "
            f"| {statistics.median(r['train_seconds'] for r in rows):.1f} "
            f"| {statistics.mean(r['final_success'] for r in rows):.3f} "
            f"| {statistics.mean(r['guide_success'] for r in rows):.3f} "
            f"| {statistics.mean(r['kl_max_head'] for r in rows):.4f} "
            f"| {statistics.mean(r['kl_max'] for r in rows):.4f} |"
        )
    out = ROOT / "bench" / "results" / "jsrl_point_maze.json"
    out.write_text(
        json.dumps({"threads": args.threads, "max_iterations": args.max_iterations, "runs": results}, indent=1)
    )
    if "curriculum" in by and "scratch" in by:
        jsrl, _ = median_steps(by["curriculum"])
        scratch, exact = median_steps(by["scratch"])
        ratio = scratch / jsrl if jsrl > 0 else math.inf
        print(f"ratio{'=' if exact else '>='}{ratio:.2f}")


if __name__ == "__main__":
    main()
