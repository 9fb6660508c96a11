"""A training run's curve against wall-clock, read from its TensorBoard events: the value of one scalar (default the
legged task's tracking fraction) at each minute mark, as the mean of the last ``--window`` iterations up to it.

    python bench/training_curve.py RUN_DIR [RUN_DIR ...] [--tag Episode/tracking/fraction] [--minutes 2 6 10 14 20 30]
                                   [--threshold 0.8]

Wall-clock is the runner's training time (collection + update, ``Perf/wall_seconds``), as in bench/RESULTS.md. Several
runs print side by side (e.g. SAC and PPO on go1-flat), with the first time each reached ``--threshold``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def series(run: Path, tag: str) -> tuple[list[float], list[float]]:
    """``(wall seconds, value)`` per iteration of ``run``."""
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    wall = {e.step: e.value for e in acc.Scalars("Perf/wall_seconds")}
    values = {e.step: e.value for e in acc.Scalars(tag)}
    steps = sorted(set(wall) & set(values))
    return [wall[s] for s in steps], [values[s] for s in steps]


def at(wall: list[float], values: list[float], seconds: float, window: int) -> float:
    """Mean of the last ``window`` finite values up to ``seconds`` (NaN before the first)."""
    upto = [v for w, v in zip(wall, values, strict=True) if w <= seconds and math.isfinite(v)]
    return sum(upto[-window:]) / len(upto[-window:]) if upto else math.nan


def first_reaching(wall: list[float], values: list[float], threshold: float, window: int) -> float:
    """Wall-clock seconds at which the ``window`` mean first reaches ``threshold`` (NaN if never)."""
    finite = [(w, v) for w, v in zip(wall, values, strict=True) if math.isfinite(v)]
    for i in range(len(finite)):
        recent = [v for _, v in finite[max(0, i - window + 1) : i + 1]]
        if sum(recent) / len(recent) >= threshold:
            return finite[i][0]
    return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--tag", default="Episode/tracking/fraction")
    parser.add_argument("--minutes", type=float, nargs="+", default=[2, 6, 10, 14, 20, 30])
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    curves = {run: series(run, args.tag) for run in args.runs}
    print("| wall-clock | " + " | ".join(run.name for run in args.runs) + " |")
    print("|---" * (len(args.runs) + 1) + "|")
    for minute in args.minutes:
        cells = [f"{at(*curves[run], minute * 60, args.window):.2f}" for run in args.runs]
        print(f"| {minute:g} min | " + " | ".join(cells) + " |")
    reached = [first_reaching(*curves[run], args.threshold, args.window) / 60 for run in args.runs]
    print(f"| first ≥ {args.threshold:g} | " + " | ".join(f"{m:.1f} min" for m in reached) + " |")
    ends = [f"{curves[run][0][-1] / 60:.1f} min" if curves[run][0] else "-" for run in args.runs]
    print("| run length | " + " | ".join(ends) + " |")


if __name__ == "__main__":
    main()
