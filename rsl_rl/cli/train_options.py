"""The ``train`` command's options (``TrainOptions``) and the dataclass that adds a task's env and training configs
to them (``train_args_type``): shared by ``train`` and ``train-adversarial``, so neither imports the other.

Jump-start RL (issue 15) is ``--guide SOURCE --jsrl MODE [--jsrl.FIELD VALUE ...]``. tyro gives a nested dataclass
``--jsrl.FIELD`` flags but cannot also give the bare ``--jsrl MODE``: :func:`expand_jsrl_flag` rewrites it into
``--jsrl.mode MODE`` before parsing, so both spellings work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsl_rl.cli.env_config import checkpoint_env_config
from rsl_rl.cli.run_support import default_device
from rsl_rl.jsrl.schedule import JSRLConfig
from rsl_rl.modules.rnn import RNN_TYPES, RNNConfig
from rsl_rl.registry import TaskSpec
from rsl_rl.runners.config import TrainConfig, train_config_from_dict


@dataclass
class JSRLOptions(JSRLConfig):
    """Jump-start RL (``--guide`` acts for the first h steps of every episode, then the learner): ``--jsrl MODE`` is
    short for ``--jsrl.mode MODE``. The other fields are :class:`rsl_rl.jsrl.JSRLConfig`'s."""

    mode: str = ""
    """curriculum (h from H to 0 in stages, each advance gated by evaluations of the combined policy) or random (h
    drawn per episode); empty: no JSRL. Needs --guide."""
    horizon: int = 0
    """H, the guide's steps at the first stage and the upper end of the random draws; 0: the task's own H (its
    guide's typical episode length: 100 on point-maze) or, for a task without one, the episode length."""

    def __post_init__(self) -> None:
        if self.mode:  # empty: JSRL is off, nothing to validate
            super().__post_init__()

    def config(self) -> JSRLConfig:
        """The validated :class:`JSRLConfig` these options describe."""
        return JSRLConfig(**dataclasses.asdict(self))


def expand_jsrl_flag(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--jsrl MODE`` / ``--jsrl=MODE`` spelled ``--jsrl.mode MODE`` (what tyro parses)."""
    return [
        "--jsrl.mode" if arg == "--jsrl" else "--jsrl.mode=" + arg[7:] if arg.startswith("--jsrl=") else arg
        for arg in argv
    ]


@dataclass
class TrainOptions:
    """Options shared by every task's ``train`` command."""

    task: str
    """Registered task name (see ``rsl-rl list-tasks``)."""
    algo: str = "ppo"
    """ppo or sac: which of the task's training configs (``agent``) to train with (a resumed run: the checkpoint's)."""
    run_dir: Path | None = None
    """Run directory (default: runs/<task>/<date_time>)."""
    seed: int = 0
    """Seed of torch, numpy, python and the env."""
    device: str = dataclasses.field(default_factory=default_device)
    """cpu, cuda or cuda:N."""
    num_envs: int | None = None
    """Parallel envs (overrides env.num_envs)."""
    max_iterations: int | None = None
    """Training iterations (overrides agent.max_iterations)."""
    deterministic: bool = False
    """Deterministic torch kernels: two runs with the same seed give identical parameters (CPU)."""
    logger: str | None = None
    """tensorboard, wandb or none (overrides agent.logger)."""
    resume: Path | None = None
    """Checkpoint file or run directory to continue training from (full state, exact resume)."""
    init_at_random_ep_len: bool = True
    """Start envs at random points of their episodes so time-outs spread over iterations (fresh runs only)."""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)."""
    reward_classifier: Path | None = None
    """Train on a learned reward (SERL): a classifier written by ``rsl-rl train-classifier`` replaces the env's reward
    with its success and ends episodes on success. Evaluation keeps the task's own reward, so runs on the learned and
    the true reward compare on the same measure."""
    backend: str | None = None
    """Simulation backend of MuJoCo tasks: cpu or warp (default: warp on CUDA, cpu otherwise)."""
    domain_randomization: str | None = None
    """Train under domain randomisation over one of the task's uncertainty sets (``tasks/uncertainty.py``: 1d, 2d,
    3d ...): each parameter drawn uniformly per env at every reset, as RRLS's DomainRandomization. Evaluation keeps
    the task's nominal parameters."""
    domain_randomization_nominal: float = 0.0
    """With --domain-randomization: the probability that an env keeps the task's nominal parameters at a reset
    instead of drawing from the set (for sets that exclude the nominal point, e.g. Hopper's torso mass)."""
    recurrent: str | None = None
    """gru or lstm: PPO's actor and critic read their observations through a recurrent layer of
    --recurrent-hidden-dim units before their MLPs (trained with BPTT over each rollout). A policy whose observation
    hides the dynamics, e.g. the masses under --domain-randomization, can then infer them from its history. A resumed
    recurrent run keeps its checkpoint's recurrent layer when this is not given."""
    recurrent_hidden_dim: int = 64
    """Units of the --recurrent layer."""
    guide: str | None = None
    """Jump-start RL's guide (with --jsrl MODE): a checkpoint file or run directory (its latest checkpoint; PPO, SAC
    or ``rsl-rl bc``), an exported .onnx file, or ``scripted`` (the task's scripted controller). A resumed JSRL run
    re-reads the guide its checkpoint records unless this is given again."""
    jsrl: JSRLOptions = dataclasses.field(default_factory=JSRLOptions)
    """Jump-start RL: --jsrl curriculum|random, and its settings."""


def make_recurrent(agent: Any, kind: str, hidden_dim: int) -> None:
    """Make ``agent``'s (a PPO :class:`TrainConfig`) actor and critic recurrent in place: an :class:`RNNConfig` of
    ``kind`` (gru, lstm) and ``hidden_dim`` units that keeps each model's MLP, normalisation and distribution
    settings."""
    if not isinstance(agent, TrainConfig):
        raise ValueError("--recurrent: only PPO's actor and critic can be recurrent (SAC's networks are feed-forward)")
    if kind not in RNN_TYPES:
        raise ValueError(f"--recurrent {kind!r}; allowed: {', '.join(RNN_TYPES)}")
    if hidden_dim < 1:
        raise ValueError(f"--recurrent-hidden-dim must be >= 1, got {hidden_dim}")
    for name in ("actor", "critic"):
        model = getattr(agent, name)
        kept = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.name in _RNN_KEPT}
        setattr(agent, name, RNNConfig(**kept, rnn_type=kind, rnn_hidden_dim=hidden_dim))


_RNN_KEPT = ("hidden_dims", "activation", "obs_normalization", "distribution_cfg")


def checkpoint_recurrent(path: Path) -> tuple[str, int] | None:
    """``(rnn_type, rnn_hidden_dim)`` of the recurrent actor of the checkpoint at ``path`` (file or run directory), or
    None when its actor is an MLP."""
    from rsl_rl.runners.checkpoint import load_checkpoint

    state = load_checkpoint(path, map_location="cpu")
    actor = train_config_from_dict(state["config"]).actor if "config" in state else None
    return (actor.rnn_type, actor.rnn_hidden_dim) if isinstance(actor, RNNConfig) else None


def apply_recurrent(args: Any) -> None:
    """Apply ``--recurrent`` to ``args.agent``; a resume without it takes the checkpoint's recurrent layer."""
    kind, hidden_dim = args.recurrent, args.recurrent_hidden_dim
    if kind is None and args.resume is not None:
        kind, hidden_dim = checkpoint_recurrent(args.resume) or (None, hidden_dim)
    if kind is not None:
        make_recurrent(args.agent, kind, hidden_dim)


def train_args_type(spec: TaskSpec, resume: str | None = None, algo: str | None = None) -> type:
    """A dataclass = TrainOptions + ``env`` (the task's env config) + ``agent`` (its training config for ``algo``).
    With ``resume``, the env config defaults to the one the checkpoint was trained with (``--env.*`` flags still edit
    it), and the algorithm to the checkpoint's."""
    env_cfg = spec.env_cfg_for(algo or "ppo")
    if resume is not None:
        from rsl_rl.runners.checkpoint import load_checkpoint

        state = load_checkpoint(resume, map_location="cpu")
        env_cfg = checkpoint_env_config(spec, state)
        if algo is None:
            algorithm = str(((state.get("config") or {}).get("algorithm") or {}).get("class_name", "PPO"))
            algo = "sac" if algorithm.rsplit(".", 1)[-1].rsplit(":", 1)[-1] == "SAC" else "ppo"
    train_cfg = spec.agent_cfg(algo or "ppo")
    return dataclasses.make_dataclass(
        "TrainArgs",
        [
            ("env", type(env_cfg), dataclasses.field(default_factory=lambda: env_cfg)),
            ("agent", type(train_cfg), dataclasses.field(default_factory=lambda: train_cfg)),
        ],
        bases=(TrainOptions,),
    )
