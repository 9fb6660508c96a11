"""Wall-clock to solve Pendulum (deterministic evaluation ≥ −200) with SAC: ours (the pendulum task's SAC config)
vs Stable-Baselines3 SAC (defaults + learning rate 1e-3, evaluation of 10 episodes every 1000 steps, ≤ 20,000 steps).

Creates (once) ``bench/.venv-sb3`` with stable-baselines3 and our torch version. Each seed of each library runs in its
own process (``bench/sac_worker.py``), alternating which library goes first, with ``torch.set_num_threads(THREADS)``.
The clock starts before the env and model are built and stops at the first evaluation ≥ −200, evaluation included
(imports are reported separately). Prints seconds and env steps of every run and ends with
``ratio=<ours / SB3 median seconds>`` (lower is better; an unsolved run counts as infinitely slow). Writes every
result to ``bench/results/sac_vs_sb3.json``.

    python bench/sac_vs_sb3.py [--seeds 3] [--threads 2]
    python bench/sac_vs_sb3.py --seeds 1 --max-steps 300      (a tiny check that both sides run)

Reference (measurements.md, 2 threads, quiet machine): SB3 solves in 3,000–4,000 steps, median 32.7 s.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from peer_venv import peer_python

HERE = Path(__file__).parent
SB3_VENV = HERE / ".venv-sb3"
SB3 = "stable-baselines3==2.9.2"
RESULTS = HERE / "results" / "sac_vs_sb3.json"


def sb3_python() -> Path:
    return peer_python(SB3_VENV, SB3, ("gymnasium>=1.0",))


def run(python: Path, which: str, seed: int, threads: int, max_steps: int | None) -> dict[str, Any]:
    """One seed of one library in its own process; the worker's JSON line."""
    cmd = [str(python), str(HERE / "sac_worker.py"), which, str(seed), str(threads)]
    if max_steps is not None:
        cmd.append(str(max_steps))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE).stdout
    return json.loads(out.strip().splitlines()[-1])


def finite_or_none(value: Any) -> Any:
    """NaN/±inf → None, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-steps", type=int, default=None, help="cap the env steps of both sides (tiny checks; default: none)"
    )
    args = parser.parse_args()
    pythons = {"ours": Path(sys.executable), "sb3": sb3_python()}
    results: dict[str, list[dict[str, Any]]] = {"ours": [], "sb3": []}
    for seed in range(args.seeds):
        for which in ("ours", "sb3") if seed % 2 == 0 else ("sb3", "ours"):
            r = run(pythons[which], which, seed, args.threads, args.max_steps)
            results[which].append(r)
            status = (
                f"solved in {r['seconds']:6.2f} s, {r['env_steps']:>9,.0f} env steps"
                if not math.isnan(r["seconds"])
                else f"unsolved after {r['ran_seconds']:6.2f} s, {r['ran_env_steps']:>9,.0f} env steps"
            )
            print(
                f"seed {seed} {which:4s}: {status} (best eval {r['best_eval_return']:.1f}, "
                f"imports {r['import_seconds']:.2f} s)",
                flush=True,
            )
    medians: dict[str, float] = {}
    summary: dict[str, dict[str, float]] = {}
    for which, rows in results.items():
        seconds = [r["seconds"] for r in rows]
        unsolved = sum(math.isnan(s) for s in seconds)
        medians[which] = statistics.median(s if not math.isnan(s) else math.inf for s in seconds)
        steps = statistics.median(r["env_steps"] if not math.isnan(r["env_steps"]) else math.inf for r in rows)
        summary[which] = {"median_seconds": medians[which], "median_env_steps": steps, "unsolved": unsolved}
        print(f"median {which:4s}: {medians[which]:.2f} s, {steps:,.0f} env steps ({unsolved} unsolved)")
    ratio = medians["ours"] / medians["sb3"] if medians["sb3"] > 0 else math.nan
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "sac_vs_sb3",
        "protocol": "Pendulum, wall-clock to a deterministic mean evaluation return >= -200, env and model build "
        "and evaluation included; ours: task SAC config; SB3: SAC defaults + lr 1e-3, eval 10 episodes / 1000 steps",
        "seeds": args.seeds,
        "threads": args.threads,
        "max_steps": args.max_steps,
        "runs": results,
        "summary": summary,
        "ratio": ratio,
    }
    RESULTS.write_text(json.dumps(finite_or_none(record), indent=2) + "\n")
    print(f"wrote {RESULTS}")
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
