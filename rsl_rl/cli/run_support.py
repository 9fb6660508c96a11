"""What every ``rsl-rl`` command shares: devices, seeding, task lookup, checkpoints, run directories and the export
record. The commands (``main.py``, ``play.py``, ``distill.py``) import from here and never from each other."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsl_rl.cli.env_config import config_to_data
from rsl_rl.registry import TaskSpec, get_task
from rsl_rl.runners.checkpoint import checkpoint_name, latest_checkpoint, load_checkpoint

# --- devices and seeds ----------------------------------------------------------------------------------------------


def default_device() -> str:
    """``cuda`` when CUDA is available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str) -> torch.device:
    """Validate ``cpu``, ``cuda`` or ``cuda:N``."""
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise SystemExit(f"error: --device {device!r} is not a device; allowed: cpu, cuda, cuda:N") from err
    if dev.type not in ("cpu", "cuda"):
        raise SystemExit(f"error: --device {device!r}; allowed: cpu, cuda, cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda requested but CUDA is not available on this machine; use --device cpu")
    return dev


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; with ``deterministic`` also force deterministic torch kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


# --- tasks ----------------------------------------------------------------------------------------------------------


def task_from_argv(argv: Sequence[str], flag: str = "--task") -> str | None:
    """The value of ``flag`` in ``argv`` (read before tyro parses, since it decides the other flags' defaults)."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    return None


def get_task_or_exit(name: str) -> TaskSpec:
    """The registered task ``name``; exits with the list of valid names if there is none."""
    try:
        return get_task(name)
    except KeyError as err:
        raise SystemExit(f"error: {err.args[0]}") from err


def set_backend(env_cfg: Any, backend: str | None, task: str) -> None:
    """Apply ``--backend`` to a simulated task's config (validated by SimConfig)."""
    if backend is None:
        return
    if not hasattr(env_cfg, "sim"):
        raise ValueError(f"--backend applies to simulated (MuJoCo) tasks; '{task}' has no simulator")
    env_cfg.sim.backend = backend
    env_cfg.sim.__post_init__()


# --- checkpoints and run directories --------------------------------------------------------------------------------


def load_checkpoint_file(checkpoint: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file (a run directory's latest ``model_<it>.pt``) and its state, loaded on the CPU."""
    path = latest_checkpoint(checkpoint) if checkpoint.is_dir() else checkpoint
    return path, load_checkpoint(path, map_location="cpu")


def task_from_run_dir(path: Path) -> str | None:
    """The task recorded in the ``config.json`` beside checkpoint ``path``, if any."""
    config = path.parent / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("task")
    return None


def acting_runner(env: Any, spec: TaskSpec, state: dict[str, Any], path: Path, device: torch.device) -> Any:
    """A runner of the checkpoint's training config on ``env`` with its actor loaded (for play and record-demos).
    An RLPD run's demo file is not needed to act, so it is not opened (it may have moved since training)."""
    from rsl_rl.runners import SACTrainConfig, make_runner
    from rsl_rl.runners.config import train_config_from_dict

    cfg = train_config_from_dict(state["config"]) if "config" in state else spec.train_cfg()
    if isinstance(cfg, SACTrainConfig):
        cfg.algorithm.demos = ""
    runner = make_runner(env, cfg, None, device, show_progress=False)
    runner.load(path, load_cfg={"actor": True})
    return runner


def set_config_field(cfg: Any, assignment: str) -> None:
    """Apply ``a.b.c=VALUE`` (a Python literal) to nested config dataclasses, re-validating what it touched
    (``--env-set`` of play, deploy-sim and record-demos)."""
    path, sep, text = assignment.partition("=")
    if not sep:
        raise SystemExit(f"error: --env-set {assignment!r}: expected FIELD.PATH=VALUE")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word is a string
    *parents, name = path.strip().split(".")
    target: Any = cfg
    for part in parents:
        target = getattr(target, part, None)
    fields = {f.name for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else set()
    if name not in fields:
        raise SystemExit(f"error: --env-set: the env config has no field '{path}'")
    setattr(target, name, tuple(value) if isinstance(value, list) else value)
    post_init = getattr(target, "__post_init__", None)
    if post_init is not None:
        post_init()


def make_run_dir(task_name: str, run_name: str | None, run_dir: Path | None) -> Path:
    """``run_dir`` if given, else ``runs/<task>/<date_time>[_<run_name>]``."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return Path(run_dir or Path("runs") / task_name / (stamp + (f"_{run_name}" if run_name else "")))


# --- end of a run ---------------------------------------------------------------------------------------------------


def export_actor(
    runner: Any, spec: TaskSpec, checkpoint: Path, out_dir: Path, env_cfg: Any, history_length: int = 1
) -> Any:
    """ONNX + TorchScript of the runner's deployable policy (a distillation's student), metadata, parity check."""
    from deploy.export import export_policy, policy_metadata

    actor = runner.alg.get_policy()
    env = runner._env
    metadata = policy_metadata(
        actor,
        list(runner.obs_groups["actor"]),
        env.deployment_spec(),
        getattr(env, "step_dt", None),
        getattr(env_cfg, "decimation", 1),
        spec.name,
        checkpoint,
        runner.current_learning_iteration,
        str(checkpoint.parent),
        # A history student reads ``history_length`` stacked steps of its groups, oldest first (the runtime stacks
        # them as the metadata says).
        history=history_length,
        env_config=config_to_data(env_cfg),
    )
    return export_policy(actor, out_dir, metadata)


def export_record(report: Any) -> dict[str, Any]:
    """What ``summary.json`` says about the deployment export."""
    return {
        "onnx": str(report.onnx),
        "torchscript": str(report.torchscript),
        "parity_max_abs_diff": max(report.max_abs_diff_onnx, report.max_abs_diff_torchscript),
        "parity_samples": report.samples,
    }


def finish_run(runner: Any, summary: dict[str, Any], title: str, *envs: Any) -> None:
    """Write the summary and the curves, close the logger and the envs."""
    runner.logger.write_summary(summary)
    runner.logger.write_curves(title)
    runner.logger.close()
    for env in envs:
        env.close()


def learn_and_export(runner: Any, spec: TaskSpec, args: Any, env_cfg: Any, run_dir: Path) -> Any:
    """Resume from ``args.resume`` if given, train the rest of ``max_iterations`` and export the final checkpoint to
    ``<run_dir>/exported``; the export report. Shared by ``train`` and ``train-adversarial``."""
    import sys

    agent = runner.train_cfg
    resumed = args.resume is not None
    if resumed:
        runner.load(args.resume)
        print(f"resumed from {args.resume} at iteration {runner.current_learning_iteration}", file=sys.stderr)
    remaining = agent.max_iterations - runner.current_learning_iteration if resumed else agent.max_iterations
    runner.learn(max(remaining, 0), init_at_random_ep_len=args.init_at_random_ep_len and not resumed)
    checkpoint = run_dir / checkpoint_name(runner.current_learning_iteration)
    if agent.recurrent:  # deploy.export.export_checkpoint rebuilds MLP actors only
        return export_actor(runner, spec, checkpoint, run_dir / "exported", env_cfg)
    from deploy.export import export_checkpoint

    return export_checkpoint(checkpoint, run_dir / "exported")
