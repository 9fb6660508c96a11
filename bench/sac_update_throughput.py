"""SAC update throughput on CPU: gradient steps per second (critic + actor + temperature, one Polyak update each) of
ours vs Stable-Baselines3 2.9.2 at batch 4096 and 32768, same networks on both sides.

Networks: actor and two critics MLP 256-256 ReLU, no LayerNorm (SB3 has none), obs dim 48, action dim 12 (a
legged-robot shape), actions in [−1, 1]; ours with ``policy_delay=1`` and ``n_step=1`` as SB3 does. Both replays hold
65,536 random transitions (``bench/sac_update_worker.py``). Each (library, batch size) runs in its own process —
ours in this venv, SB3 in ``bench/.venv-sb3`` (created once) — with ``torch.set_num_threads(THREADS)``: one call of
``UPDATES`` gradient steps (default: 20 at batch 4096, 5 at 32768) warms up, a second one is timed. Libraries
alternate which goes first; ``REPEATS`` rounds, medians reported. Ends with ``ratio=<ours / SB3 steps/s>`` per batch
size (higher is better). Writes every result to ``bench/results/sac_update_throughput.json``.

    python bench/sac_update_throughput.py [--repeats 3] [--threads 2] [--batch-sizes 4096 32768] [--updates K]
    python bench/sac_update_throughput.py --repeats 1 --updates 2 --batch-sizes 256      (a tiny check)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from peer_venv import peer_python

HERE = Path(__file__).parent
SB3_VENV = HERE / ".venv-sb3"
SB3 = "stable-baselines3==2.9.2"
RESULTS = HERE / "results" / "sac_update_throughput.json"
SAMPLES_PER_CALL = 81_920
"""Default timed call: about this many sampled transitions (20 steps at batch 4096, 5 at 32768)."""


def sb3_python() -> Path:
    return peer_python(SB3_VENV, SB3, ("gymnasium>=1.0",))


def run(python: Path, which: str, batch: int, updates: int, threads: int) -> dict[str, Any]:
    """One (library, batch size) measurement in its own process; the worker's JSON line."""
    cmd = [str(python), str(HERE / "sac_update_worker.py"), which, str(batch), str(updates), str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE).stdout
    return json.loads(out.strip().splitlines()[-1])


def default_updates(batch: int) -> int:
    return max(5, SAMPLES_PER_CALL // batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--updates",
        type=int,
        default=None,
        help=f"gradient steps per timed call and per warm-up (default: max(5, {SAMPLES_PER_CALL} / batch size))",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4096, 32768])
    args = parser.parse_args()
    pythons = {"ours": Path(sys.executable), "ours-bf16": Path(sys.executable), "sb3": sb3_python()}
    sides = ("ours", "ours-bf16", "sb3")
    results: dict[int, dict[str, list[dict[str, Any]]]] = {b: {s: [] for s in sides} for b in args.batch_sizes}
    updates = {b: args.updates or default_updates(b) for b in args.batch_sizes}
    for repeat in range(args.repeats):
        for i, batch in enumerate(args.batch_sizes):
            for which in sides if (repeat + i) % 2 == 0 else sides[::-1]:
                r = run(pythons[which], which, batch, updates[batch], args.threads)
                results[batch][which].append(r)
                print(
                    f"repeat {repeat} batch {batch:>6} {which:9s}: {r['steps_per_second']:8.2f} steps/s "
                    f"({r['seconds']:.2f} s for {updates[batch]} steps, warm-up {r['warmup_seconds']:.2f} s)",
                    flush=True,
                )
    summary: dict[str, dict[str, float]] = {}
    for batch, by_side in results.items():
        medians = {which: statistics.median(r["steps_per_second"] for r in rows) for which, rows in by_side.items()}
        ratio, ratio_bf16 = medians["ours"] / medians["sb3"], medians["ours-bf16"] / medians["sb3"]
        summary[str(batch)] = {**medians, "ratio": ratio, "ratio_bf16": ratio_bf16}
        print(
            f"batch {batch:>6}: ours {medians['ours']:8.2f} steps/s (bf16 autocast {medians['ours-bf16']:.2f}), "
            f"SB3 {medians['sb3']:8.2f} steps/s ({batch * medians['ours']:,.0f} vs {batch * medians['sb3']:,.0f} "
            "samples/s)"
        )
        print(f"batch {batch} ratio={ratio:.3f} (fp32, same arithmetic as SB3) ratio_bf16={ratio_bf16:.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "sac_update_throughput",
        "protocol": "median SAC gradient steps/s (critic + actor + alpha + Polyak), actor and 2 critics MLP "
        "256-256 ReLU, no LayerNorm, obs 48, actions 12, random replay of 65536 transitions, CPU",
        "repeats": args.repeats,
        "updates": {str(b): k for b, k in updates.items()},
        "threads": args.threads,
        "runs": {str(b): by_side for b, by_side in results.items()},
        "summary": summary,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
