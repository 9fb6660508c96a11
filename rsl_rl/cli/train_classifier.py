"""``rsl-rl train-classifier``: train a reward classifier (SERL §4, issue 12) on one or more demonstration files.

Labels follow SERL: positives are the next observations (``next_obs[group]``) of the steps whose ``success`` flag is
set, negatives the next observations of all other steps. Several ``--data`` files are pooled: the HIL-SERL remedy for
a policy that hacks the classifier is to add the learner's own failures as negatives -- record the hacking policy's
episodes on the true task (``rsl-rl record-demos --source RUN``, whose ``success`` flags are the task's) and train again
on the demonstrations plus that file. The states the old classifier called "success" but the task did not are then
negatives (bench/RESULTS.md, "SERL pieces"). The classifier, its threshold (chosen on a held-out split)
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

import torch
import tyro

from rsl_rl.cli.run_support import default_device, get_task_or_exit, make_run_dir, resolve_device
from rsl_rl.modules.reward_classifier import RewardClassifierConfig, train_reward_classifier


@dataclass
class TrainClassifierArgs:
    """Train a success classifier on a demo file's next observations (positives: steps flagged ``success``)."""

    task: str
    """Registered task the demos were recorded on (see ``rsl-rl list-tasks``)."""
    data: tuple[Path, ...]
    """Demonstration files (``rsl-rl record-demos``; format in ``rsl_rl/storage/demos.py``), pooled: e.g. the
    scripted demos and a recording of a policy's failures (negatives wherever the task reported no success)."""
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
    if not args.data:
        raise ValueError("--data needs at least one demo file")
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    for path in args.data:
        demos = load_demos(path, device=device)
        recorded_on = demos.metadata.get("task")
        if recorded_on is not None and recorded_on != spec.name:
            raise ValueError(f"--data {path} was recorded on task {recorded_on!r}, not {spec.name!r}")
        if args.group not in demos.next_obs:
            raise ValueError(f"--group {args.group!r} is not in {path}; its groups: {sorted(demos.next_obs)}")
        part = demos.next_obs[args.group]
        if parts and part.shape[1:] != parts[0][0].shape[1:]:
            raise ValueError(
                f"--data {path}: group {args.group!r} has shape {tuple(part.shape[1:])}, but {args.data[0]} has "
                f"{tuple(parts[0][0].shape[1:])}: record every file with the same env settings"
            )
        parts.append((part, demos.success))
    cfg = RewardClassifierConfig(group=args.group, steps=args.steps, target_precision=args.target_precision)
    obs = torch.cat([part for part, _ in parts])
    labels = torch.cat([success for _, success in parts])
    data_names = ", ".join(str(path) for path in args.data)
    positives = int(labels.sum())
    if positives < 2 or labels.numel() - positives < 2:
        raise ValueError(
            f"--data {data_names} has {positives} successful and {labels.numel() - positives} other steps; a "
            "classifier needs at least 2 of each (one of each is held out)"
        )
    model, report = train_reward_classifier(obs, labels, cfg, seed=args.seed)
    out = args.out or make_run_dir(spec.name, "classifier", None) / "reward_classifier.pt"
    model.save(out, report)
    record = {
        "task": spec.name,
        "data": [str(path) for path in args.data],
        "steps_per_file": [int(success.numel()) for _, success in parts],
        "positives_per_file": [int(success.sum()) for _, success in parts],
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
