"""Wall-clock to solve Pendulum (deterministic evaluation ≥ −200): ours (task default config) vs Stable-Baselines3 PPO
with rl-baselines3-zoo's tuned settings (4 envs, evaluation of 10 episodes every 1000 steps).

Creates (once) ``bench/.venv-sb3`` with stable-baselines3 and our torch version. Each seed of each library runs in its
own process, alternating libraries, with ``torch.set_num_threads(2)``. The clock starts before the env and model are
built and stops at the first evaluation ≥ −200, evaluation included (imports are reported separately). Ends with
``ratio=<ours / SB3 median seconds>`` (lower is better).

    python bench/pendulum_solve.py [--seeds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from peer_venv import peer_python

HERE = Path(__file__).parent
SB3_VENV = HERE / ".venv-sb3"
SB3 = "stable-baselines3==2.9.2"


def sb3_python() -> Path:
    return peer_python(SB3_VENV, SB3, ("gymnasium>=1.0",))


def run(python: Path, which: str, seed: int, threads: int) -> dict[str, float]:
    cmd = [str(python), str(HERE / "pendulum_worker.py"), which, str(seed), str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    pythons = {"ours": Path(sys.executable), "sb3": sb3_python()}
    results: dict[str, list[dict[str, float]]] = {"ours": [], "sb3": []}
    for seed in range(args.seeds):
        for which in ("ours", "sb3") if seed % 2 == 0 else ("sb3", "ours"):
            r = run(pythons[which], which, seed, args.threads)
            results[which].append(r)
            print(
                f"seed {seed} {which:4s}: solved in {r['seconds']:6.2f} s, {r['env_steps']:>9,.0f} env steps "
                f"(imports {r['import_seconds']:.2f} s)",
                flush=True,
            )
    medians = {}
    for which, rows in results.items():
        seconds = [r["seconds"] for r in rows]
        unsolved = sum(math.isnan(s) for s in seconds)
        medians[which] = statistics.median(s if not math.isnan(s) else math.inf for s in seconds)
        steps = statistics.median(r["env_steps"] for r in rows)
        print(f"median {which:4s}: {medians[which]:.2f} s, {steps:,.0f} env steps ({unsolved} unsolved)")
    print(f"ratio={medians['ours'] / medians['sb3']:.3f}")


if __name__ == "__main__":
    main()
