"""Jump-start RL on the command line (issue 15): the guide ``--guide`` names, the plan of a fresh or resumed JSRL run,
its runner, and the combined policy ``rsl-rl play --jsrl-combined`` runs. Shared by ``train`` (``main.py``) and
``play`` (``play.py``), which do not import each other.

A JSRL run records its guide in the checkpoints' ``infos["jsrl"]`` as ``{"kind": "scripted" | "checkpoint" | "onnx",
"source": "scripted" | absolute path}`` (a run directory is recorded as the checkpoint file it resolved to, so a later
checkpoint in that directory does not silently replace the guide). ``--resume`` of a JSRL run re-reads the guide and
the JSRL config from the checkpoint: resuming needs no flags beyond ``--resume``, and the curriculum continues from
the checkpoint's stage. ``--guide`` given again replaces the recorded source (a moved file); ``--jsrl.*`` flags given
again replace those fields. A recorded guide file that no longer exists is an error naming it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rsl_rl.cli.train_options import JSRLOptions
from rsl_rl.env import Env
from rsl_rl.jsrl import (
    CombinedPolicy,
    EpisodeSwitch,
    Guide,
    JSRLConfig,
    JSRLRunner,
    guide_from_checkpoint,
    guide_from_onnx,
    make_jsrl_runner,
    stage_switch_step,
)
from rsl_rl.registry import TaskSpec, get_task, task_names
from rsl_rl.runners.checkpoint import latest_checkpoint, load_checkpoint

SCRIPTED = "scripted"
GUIDE_CHOICES = "a checkpoint file or run directory, an exported .onnx file, or 'scripted'"


@dataclass(frozen=True)
class JSRLPlan:
    """What a JSRL training run uses: the guide's source (``"scripted"`` or a path) and the validated config."""

    guide: str
    config: JSRLConfig


def jsrl_plan(guide: str | None, options: JSRLOptions, resume: str | os.PathLike[str] | None) -> JSRLPlan | None:
    """The JSRL plan of ``train``'s ``--guide``, ``--jsrl`` and ``--resume`` options (None: plain training).

    A resumed JSRL checkpoint supplies the guide and the config; explicit flags replace what they name. Otherwise
    ``--guide`` and ``--jsrl MODE`` come together, and ``--jsrl.*`` settings need both."""
    defaults = dataclasses.asdict(JSRLOptions())
    given = {k: v for k, v in dataclasses.asdict(options).items() if v != defaults[k]}
    state = load_checkpoint(resume, map_location="cpu") if resume is not None else {}
    saved = state.get("jsrl")
    if saved is not None:
        recorded = ((state.get("infos") or {}).get("jsrl") or {}).get("guide") or {}
        source = guide or recorded.get("source")
        if source is None:
            raise ValueError(
                f"the resumed checkpoint is of a JSRL run but records no guide: pass --guide ({GUIDE_CHOICES})"
            )
        if guide is None and source != SCRIPTED and not Path(source).exists():
            raise FileNotFoundError(
                f"the guide the resumed checkpoint records, {source}, no longer exists: pass --guide again "
                f"({GUIDE_CHOICES})"
            )
        return JSRLPlan(source, JSRLConfig(**{**saved["config"], **given}))
    if guide is None and not given:
        return None
    if guide is None:
        raise ValueError(f"--jsrl needs --guide: {GUIDE_CHOICES}")
    if not options.mode:
        raise ValueError("--guide needs --jsrl curriculum|random (how the guide hands over to the learner)")
    return JSRLPlan(guide, options.config())


def build_guide(source: str, spec: TaskSpec, env: Env, device: torch.device) -> tuple[Guide, dict[str, str]]:
    """The guide ``source`` names, acting on ``env``'s observations, and its record for the checkpoints' infos."""
    if source == SCRIPTED:
        if spec.scripted_policy is None:
            have = [name for name in task_names() if get_task(name).scripted_policy is not None]
            raise ValueError(
                f"--guide scripted: task '{spec.name}' has no scripted controller; tasks with one: {', '.join(have)}"
            )
        return spec.scripted_policy(env), {"kind": "scripted", "source": SCRIPTED}
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--guide {source}: no such file or directory; a guide is {GUIDE_CHOICES}")
    if path.suffix == ".onnx":
        return guide_from_onnx(path, _onnx_obs_groups(path)), {"kind": "onnx", "source": str(path.resolve())}
    file = latest_checkpoint(path) if path.is_dir() else path
    try:
        guide = guide_from_checkpoint(file, env, device)
    except RuntimeError as err:  # torch's size mismatch when the actor was built for other observations or actions
        raise ValueError(f"--guide {file}: its actor does not fit task '{spec.name}' ({err})") from err
    return guide, {"kind": "checkpoint", "source": str(file.resolve())}


def _onnx_obs_groups(path: Path) -> list[str]:
    """The observation groups an exported policy reads, in order (its metadata; ``policy`` for a file without)."""
    from deploy.export import read_metadata

    try:
        metadata = read_metadata(path)
    except KeyError:  # not written by deploy.export: the actor's usual group
        return ["policy"]
    if int(metadata.get("observation", {}).get("history", 1) or 1) != 1:
        raise ValueError(f"--guide {path}: a history student's policy cannot guide (it needs per-env memory)")
    return list(metadata["observation"]["groups"])


def make_guided_runner(
    plan: JSRLPlan,
    spec: TaskSpec,
    env: Env,
    agent: Any,
    run_dir: str | os.PathLike[str],
    device: torch.device,
    eval_env: Env,
) -> tuple[JSRLRunner, dict[str, Any]]:
    """The JSRL runner (PPO or SAC, as ``agent`` is) of ``plan`` on ``env``, and what its checkpoints' ``infos["jsrl"]``
    record: the guide and the config (the curriculum's state is the checkpoint's own ``jsrl`` entry)."""
    if plan.config.mode == "curriculum" and agent.eval_interval < 1:
        raise ValueError(
            "--jsrl curriculum advances on evaluations of the combined policy: set --agent.eval-interval N >= 1 "
            f"(the task's config has {agent.eval_interval})"
        )
    guide, record = build_guide(plan.guide, spec, env, device)
    config = plan.config
    if config.horizon == 0 and spec.jsrl_horizon > 0:  # the task's H; recorded, so a resume keeps it
        config = dataclasses.replace(config, horizon=spec.jsrl_horizon)
    runner = make_jsrl_runner(env, agent, guide, config, run_dir, device, eval_env)
    runner.logger.config["jsrl"]["guide"] = record  # config.json
    return runner, {"guide": record, "config": dataclasses.asdict(runner.jsrl_cfg), "horizon": runner.horizon}


def jsrl_summary(runner: Any, infos: dict[str, Any]) -> dict[str, Any]:
    """What ``summary.json``'s ``jsrl`` entry adds to the runner's: the guide and the last iteration's guide share."""
    share = next((r["jsrl/guide_share"] for r in reversed(runner.logger.history) if "jsrl/guide_share" in r), None)
    return {"guide": infos["guide"], "final_guide_share": share}


def combined_policy(
    state: dict[str, Any], learner: Any, spec: TaskSpec, env: Env, device: torch.device
) -> tuple[CombinedPolicy, str]:
    """π_h of a JSRL checkpoint on ``env``: its guide for the first h steps of every episode (curriculum: the
    checkpoint's stage's h_k; random: h drawn per episode, as in training), then ``learner`` (its deterministic
    policy). Returns the policy and a line describing it."""
    saved = state.get("jsrl")
    record = ((state.get("infos") or {}).get("jsrl") or {}).get("guide")
    if saved is None or record is None:
        raise ValueError("--jsrl-combined: the checkpoint is not of a JSRL run (rsl-rl train --guide ... --jsrl ...)")
    source = record["source"]
    if source != SCRIPTED and not Path(source).exists():
        raise FileNotFoundError(f"--jsrl-combined: the guide the checkpoint records, {source}, no longer exists")
    guide, _ = build_guide(source, spec, env, device)
    cfg, horizon = JSRLConfig(**saved["config"]), int(saved["horizon"])
    stage = int(saved["curriculum"]["stage"])
    h = stage_switch_step(horizon, cfg.stages, stage)
    random = cfg.mode == "random"
    switch = EpisodeSwitch(env.num_envs, horizon, random, h, device, cfg.seed)
    steps = f"h ~ U{{0..{horizon}}} per episode" if random else f"h = {h} (stage {stage} of 0..{cfg.stages - 1})"
    return CombinedPolicy(learner, guide, switch), f"combined policy: {record['kind']} guide for {steps}, then learner"
