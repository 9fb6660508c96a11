"""Task throughput of this checkout against another one (a previous commit): did a change slow the tasks down?

Each measurement is a subprocess that builds the task (cpu backend, N envs, its default config), steps it with random
actions for a warm-up and then for a timed stretch, and prints env-steps per second. The parent alternates the two
checkouts for several rounds (so drifts of the machine hit both alike) and prints the medians and ``ratio=``
(this checkout / baseline, higher is better; 1.0 = unchanged).

    git worktree add /tmp/base <commit>
    python bench/task_throughput.py --baseline /tmp/base [--tasks ant go1-flat] [--envs 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# Runs inside the subprocess, with the checkout under test first on sys.path.
MEASURE = """
import sys, time, torch
torch.set_num_threads({threads})
from rsl_rl.registry import get_task
spec = get_task({task!r})
cfg = spec.env_cfg()
cfg.num_envs = {envs}
cfg.sim.backend = "cpu"
cfg.sim.nthread = {threads}
env = spec.build(cfg, seed=0)
g = torch.Generator().manual_seed(0)
actions = [torch.rand(env.num_envs, env.num_actions, generator=g) * 2 - 1 for _ in range(16)]
with torch.inference_mode():
    for i in range({warmup}):
        env.step(actions[i % 16])
    start = time.perf_counter()
    for i in range({steps}):
        env.step(actions[i % 16])
    rate = {steps} * env.num_envs / (time.perf_counter() - start)
print("RATE", rate)
"""


def measure(checkout: Path, task: str, args: argparse.Namespace) -> float:
    code = MEASURE.format(threads=args.threads, task=task, envs=args.envs, warmup=args.warmup, steps=args.steps)
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RATE ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"measurement of {task} in {checkout} failed:\n{out.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="checkout to compare with (git worktree)")
    parser.add_argument("--tasks", nargs="+", default=["ant", "go1-flat"])
    parser.add_argument("--envs", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    for task in args.tasks:
        ours: list[float] = []
        base: list[float] = []
        for _ in range(args.rounds):
            ours.append(measure(HERE, task, args))
            base.append(measure(args.baseline.resolve(), task, args))
        a, b = statistics.median(ours), statistics.median(base)
        print(f"{task}: {args.envs} envs, env-steps/s ours {a:,.0f} (runs {[round(x) for x in ours]}) vs baseline "
              f"{b:,.0f} (runs {[round(x) for x in base]})")  # fmt: skip
        print(f"{task} ratio={a / b:.3f}")


if __name__ == "__main__":
    main()
