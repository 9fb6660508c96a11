"""Distillation runner: OnPolicyRunner's collect → learn loop, logging, evaluation, checkpoints and export, with a
:class:`~rsl_rl.algorithms.distillation.Distillation` student–teacher pair in place of PPO.

The teacher is the actor of a PPO checkpoint. Two ways to give it:

* rsl-rl-lib's (Isaac Lab, mjlab): a ``teacher`` model section in the config, then ``runner.load(ppo_checkpoint)``
  before ``learn()``: a checkpoint without student weights loads into the teacher only (``alg.teacher_loaded``).
* ours: ``teacher_checkpoint``, a PPO checkpoint of this library (or rsl-rl-lib's): loaded at construction; without a
  ``teacher`` section its architecture comes from the checkpoint's saved config and its observation groups from the
  checkpoint's ``obs_groups["actor"]`` (overridable with ``obs_groups["teacher"]``).

The student reads ``obs_groups["student"]`` (default: the env's ``student`` group, else ``policy``: rsl_rl's rule).
Evaluation, inference and export use the student.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.distillation import Distillation, DistillationConfig, ObservationHistory
from rsl_rl.env import Env
from rsl_rl.export import inference_policy
from rsl_rl.models.rnn_model import Model, build_model
from rsl_rl.modules.mlp import ActorConfig
from rsl_rl.runners.checkpoint import load_checkpoint
from rsl_rl.runners.config import RunnerConfig, _build, _runner_section, ppo_config_from_dict
from rsl_rl.runners.on_policy_runner import OnPolicyRunner
from rsl_rl.utils import resolve_obs_groups


@dataclass
class DistillationTrainConfig(RunnerConfig):
    """Runner settings plus the distillation algorithm and the student network."""

    teacher_checkpoint: str = ""
    """PPO checkpoint (``model_<it>.pt``) whose actor is the teacher, loaded at construction; empty: the teacher comes
    from a later ``runner.load(checkpoint)`` (rsl-rl-lib's way), and ``teacher`` must describe its network."""
    algorithm: DistillationConfig = field(default_factory=DistillationConfig)
    """Distillation hyperparameters."""
    student: ActorConfig = field(default_factory=ActorConfig)
    """Student network and action distribution; an :class:`RNNConfig` makes it recurrent."""
    teacher: ActorConfig | None = None
    """Teacher network (rsl-rl-lib's ``teacher`` section); None: the architecture saved in ``teacher_checkpoint``."""


def distillation_config_from_dict(cfg: dict[str, Any]) -> DistillationTrainConfig:
    """An rsl_rl-style dict: runner keys, an ``algorithm`` section (``class_name: "Distillation"``) and a ``student``
    section with the schema of rsl_rl's ``actor`` (``class_name`` MLPModel/RNNModel, ``distribution_cfg``)."""
    runner = _runner_section(cfg)  # the PPO runner's keys, with rsl-rl-lib's logger spellings mapped
    if cfg.get("teacher_checkpoint"):
        runner["teacher_checkpoint"] = str(cfg["teacher_checkpoint"])
    alg = dict(cfg.get("algorithm", {}))
    for key in ("rnd_cfg", "symmetry_cfg"):  # rsl-rl-lib writes them as None for distillation; set, they are errors
        if alg.pop(key, None) is not None:
            raise ValueError(f"algorithm.{key} is not supported by distillation (as in rsl-rl-lib)")
    if "loss_type" in alg:  # rsl-rl-lib's name; ours adds KL losses under `loss`
        alg["loss"] = alg.pop("loss_type")
    algorithm = _build(DistillationConfig, alg, "algorithm")
    # Model sections are parsed by the PPO config's actor rules (class_name, rsl-rl-lib distribution defaults).
    student = _actor_section(cfg["student"]) if "student" in cfg else ActorConfig()
    teacher = _actor_section(cfg["teacher"]) if cfg.get("teacher") is not None else None
    return DistillationTrainConfig(**runner, algorithm=algorithm, student=student, teacher=teacher)


def _actor_section(section: dict[str, Any]) -> ActorConfig:
    return ppo_config_from_dict({"algorithm": {}, "actor": section, "critic": {}}).actor


def build_distillation(
    obs: TensorDict, num_envs: int, num_actions: int, cfg: DistillationTrainConfig, device: torch.device
) -> Distillation:
    """Student, teacher (with ``teacher_checkpoint``'s weights when given) and the algorithm; also what rsl-rl-lib's
    ``Distillation.construct_algorithm`` builds. ``obs_groups["actor"]`` is the student's: the deployable policy."""
    state: dict[str, Any] = {}
    if cfg.teacher_checkpoint:
        state = load_checkpoint(cfg.teacher_checkpoint, map_location=device)
    teacher_cfg = cfg.teacher
    if teacher_cfg is None:
        teacher_cfg = ppo_config_from_dict(state["config"]).actor if "config" in state else ActorConfig()
    groups = {"teacher": (state.get("obs_groups") or {}).get("actor", ["policy"]), **cfg.obs_groups}
    if not state and "teacher" not in cfg.obs_groups:
        del groups["teacher"]  # rsl-rl-lib's rule: the env's "teacher" group, else "policy"
    obs_groups = resolve_obs_groups(obs, groups, ("student", "teacher"))
    obs_groups["actor"] = list(obs_groups["student"])  # evaluation, export and `rsl-rl play` read the "actor" set
    teacher = build_model(sum(obs[g].shape[-1] for g in obs_groups["teacher"]), num_actions, teacher_cfg)
    if state:
        teacher.load_state_dict(state["actor_state_dict"])
    student_dim = sum(obs[g].shape[-1] for g in obs_groups["student"]) * cfg.algorithm.history_length
    student = build_model(student_dim, num_actions, cfg.student)
    alg = Distillation(student, teacher, cfg.algorithm, obs_groups, num_envs, cfg.num_steps_per_env, device)
    alg.teacher_loaded = bool(state)
    return alg


class HistoryInferencePolicy(torch.nn.Module):
    """Deterministic policy of an MLP student over a stacked observation history."""

    def __init__(self, actor: Model, obs_groups: list[str], history_length: int) -> None:
        super().__init__()
        self.actor, self.obs_groups, self.length = actor, list(obs_groups), history_length
        self.history: ObservationHistory | None = None

    def forward(self, obs: TensorDict | torch.Tensor) -> torch.Tensor:
        x = obs if isinstance(obs, torch.Tensor) else torch.cat([obs[g] for g in self.obs_groups], dim=-1)
        if self.history is None or self.history.buffer.shape[0] != x.shape[0]:
            self.history = ObservationHistory(x.shape[0], self.length, x.shape[-1], x.device)
        return self.actor(self.history.push(x))

    def reset(self, dones: torch.Tensor | None = None) -> None:
        if dones is None or self.history is None:
            self.history = None
        else:
            self.history.reset(dones)


class DistillationRunner(OnPolicyRunner):
    """Distil a PPO teacher into a student on a batched env (rsl_rl's ``DistillationRunner``)."""

    alg: Distillation

    def __init__(
        self,
        env: Any,
        train_cfg: dict[str, Any] | DistillationTrainConfig,
        log_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        eval_env: Env | None = None,
        show_progress: bool = True,
    ) -> None:
        if isinstance(train_cfg, dict):
            train_cfg = distillation_config_from_dict(train_cfg)
        if not train_cfg.teacher_checkpoint and train_cfg.teacher is None:
            raise ValueError(
                "distillation needs a teacher: a 'teacher' model section (then runner.load(ppo_checkpoint) before "
                "learn(), as in rsl-rl-lib) or teacher_checkpoint (a PPO checkpoint loaded at construction)"
            )
        super().__init__(env, train_cfg, log_dir, device, eval_env, show_progress)

    def _build_algorithm(self, obs: TensorDict) -> Distillation:
        alg = build_distillation(obs, self._env.num_envs, self._env.num_actions, self.train_cfg, self.torch_device)
        self.obs_groups = alg.obs_groups
        return alg

    def learn(self, num_learning_iterations: int | None = None, init_at_random_ep_len: bool = False) -> None:
        if not self.alg.teacher_loaded:
            raise ValueError(
                "the teacher has no trained weights: give teacher_checkpoint, or runner.load(ppo_checkpoint) first"
            )
        super().learn(num_learning_iterations, init_at_random_ep_len)

    def _inference_policy(self) -> Any:
        length = self.train_cfg.algorithm.history_length
        if length > 1:
            return HistoryInferencePolicy(self.alg.get_policy(), self.obs_groups["student"], length)
        return inference_policy(self.alg.get_policy(), self.obs_groups["student"])

    def teacher_returns(self, env: Env, max_steps: int | None = None) -> torch.Tensor:
        """``[num_envs]`` first-episode returns of the teacher's deterministic policy (the distillation target)."""
        return self.evaluate(env, max_steps, policy=inference_policy(self.alg.teacher, self.obs_groups["teacher"]))
