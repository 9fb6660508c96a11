"""``rsl-rl train-classifier``: train a reward classifier (SERL §4, issue 12) on a demonstration file.

Labels follow SERL: positives are the next observations (``next_obs[group]``) of the steps whose ``success`` flag is
set, negatives the next observations of all other steps. The classifier, its threshold (chosen on a held-out split)
and the held-out report are written to ``--out`` (default ``runs/<task>/<date_time>_classifier/``), with the report
also as ``reward_classifier.json`` beside the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tyro

from rsl_rl.cli.run_support import default_device, get_task_or_exit, make_run_dir, resolve_device
from rsl_rl.modules.reward_classifier import RewardClassifierConfig, train_reward_classifier


@dataclass
class TrainClassifierArgs:
    """Train a success classifier on a demo file's next observations (positives: steps flagged ``success``)."""

    task: str
    """Registered task the demos were recorded on (see ``rsl-rl list-tasks``)."""
    data: Path
    """Demonstration file (``rsl-rl record-demos``; format in ``rsl_rl/storage/demos.py``)."""
    group: str = "policy"
    """Observation group to classify: a vector ``[D]`` or an image ``[C, H, W]``."""
    out: Path | None = None
    """Checkpoint to write (default: runs/<task>/<date_time>_classifier/reward_classifier.pt)."""
    steps: int = RewardClassifierConfig.steps
    """Gradient steps."""
    seed: int = 0
    """Seed of the split, the batches, the augmentation and the initial weights."""
    target_precision: float = RewardClassifierConfig.target_precision
    """Held-out precision the threshold must reach (else the F1-best threshold is used and reported)."""
    device: str = dataclasses.field(default_factory=default_device)
    """cpu, cuda or cuda:N."""


def train_classifier(argv: Sequence[str]) -> int:
    from rsl_rl.storage.demos import load_demos

    args = tyro.cli(TrainClassifierArgs, args=list(argv), prog="rsl-rl train-classifier")
    spec = get_task_or_exit(args.task)
    device = resolve_device(args.device)
    demos = load_demos(args.data, device=device)
    recorded_on = demos.metadata.get("task")
    if recorded_on is not None and recorded_on != spec.name:
        raise ValueError(f"--data {args.data} was recorded on task {recorded_on!r}, not {spec.name!r}")
    if args.group not in demos.next_obs:
        raise ValueError(f"--group {args.group!r} is not in {args.data}; its groups: {sorted(demos.next_obs)}")
    cfg = RewardClassifierConfig(group=args.group, steps=args.steps, target_precision=args.target_precision)
    obs, labels = demos.next_obs[args.group], demos.success
    positives = int(labels.sum())
    if positives < 2 or labels.numel() - positives < 2:
        raise ValueError(
            f"--data {args.data} has {positives} successful and {labels.numel() - positives} other steps; a classifier "
            "needs at least 2 of each (one of each is held out)"
        )
    model, report = train_reward_classifier(obs, labels, cfg, seed=args.seed)
    out = args.out or make_run_dir(spec.name, "classifier", None) / "reward_classifier.pt"
    model.save(out, report)
    record = {
        "task": spec.name,
        "data": str(args.data),
        "group": args.group,
        "seed": args.seed,
        "positives": positives,
        "negatives": labels.numel() - positives,
        **dataclasses.asdict(report),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    reached = "reached" if report.target_reached else "NOT reached: F1-best threshold"
    print(
        f"{spec.name}: reward classifier on group {args.group!r} ({tuple(obs.shape[1:])}, {positives} positives, "
        f"{labels.numel() - positives} negatives, {cfg.steps} steps)\n"
        f"held-out: precision {report.precision:.3f}, recall {report.recall:.3f}, accuracy {report.accuracy:.3f} at "
        f"threshold {report.threshold:.3f} (target precision {cfg.target_precision} {reached}); "
        f"tp {report.true_positives} fp {report.false_positives} tn {report.true_negatives} "
        f"fn {report.false_negatives}\n"
        f"written: {out}",
        file=sys.stdout,
    )
    return 0
