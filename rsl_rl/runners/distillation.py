"""Distillation runner: OnPolicyRunner's collect → learn loop, logging, evaluation, checkpoints and export, with a
:class:`~rsl_rl.algorithms.distillation.Distillation` student–teacher pair in place of PPO.

The teacher is the actor of a PPO checkpoint of this library (``OnPolicyRunner.save``): its architecture comes from
the checkpoint's saved config, its observation groups from the checkpoint's ``obs_groups["actor"]`` (overridable with
``obs_groups["teacher"]``), its normaliser from its state dict. The student reads ``obs_groups["student"]`` (default:
the env's ``student`` group, else ``policy``: rsl_rl's rule). Evaluation, inference and export use the student.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.distillation import Distillation, DistillationConfig, ObservationHistory
from rsl_rl.env import Env
from rsl_rl.export import inference_policy
from rsl_rl.modules.mlp import ActorConfig
from rsl_rl.modules.rnn import Model, build_model
from rsl_rl.runners.checkpoint import load_checkpoint
from rsl_rl.runners.config import RunnerConfig, _build, ppo_config_from_dict, resolve_obs_groups
from rsl_rl.runners.on_policy import OnPolicyRunner


@dataclass
class DistillationTrainConfig(RunnerConfig):
    """Runner settings plus the distillation algorithm and the student network."""

    teacher_checkpoint: str = ""
    """PPO checkpoint (``model_<it>.pt``) whose actor is the teacher."""
    algorithm: DistillationConfig = field(default_factory=DistillationConfig)
    """Distillation hyperparameters."""
    student: ActorConfig = field(default_factory=ActorConfig)
    """Student network and action distribution; an :class:`RNNConfig` makes it recurrent."""


def distillation_config_from_dict(cfg: dict[str, Any]) -> DistillationTrainConfig:
    """An rsl_rl-style dict: runner keys, an ``algorithm`` section (``class_name: "Distillation"``) and a ``student``
    section with the schema of rsl_rl's ``actor`` (``class_name`` MLPModel/RNNModel, ``distribution_cfg``)."""
    runner_keys = [
        f.name for f in dataclasses.fields(DistillationTrainConfig) if f.name not in ("algorithm", "student")
    ]
    runner = {k: cfg[k] for k in runner_keys if k in cfg}
    runner["obs_groups"] = {k: list(v) for k, v in (runner.get("obs_groups") or {}).items()}
    algorithm = _build(DistillationConfig, dict(cfg.get("algorithm", {})), "algorithm")
    student = ActorConfig()
    if "student" in cfg:  # parsed by the PPO config's actor rules (class_name, rsl_rl distribution defaults)
        student = ppo_config_from_dict({"algorithm": {}, "actor": cfg["student"], "critic": {}}).actor
    return DistillationTrainConfig(**runner, algorithm=algorithm, student=student)


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
        if not train_cfg.teacher_checkpoint:
            raise ValueError("teacher_checkpoint is empty: distillation needs a PPO checkpoint of the teacher")
        super().__init__(env, train_cfg, log_dir, device, eval_env, show_progress)

    def _build_algorithm(self, obs: TensorDict) -> Distillation:
        cfg: DistillationTrainConfig = self.train_cfg
        state = load_checkpoint(cfg.teacher_checkpoint, map_location=self.torch_device)
        teacher_cfg = ppo_config_from_dict(state["config"]).actor if "config" in state else ActorConfig()
        groups = {"teacher": (state.get("obs_groups") or {}).get("actor", ["policy"]), **cfg.obs_groups}
        self.obs_groups = resolve_obs_groups(obs, groups, ("student", "teacher"))
        # The deployable policy is the student: evaluation, export and `rsl-rl play` read the "actor" set.
        self.obs_groups["actor"] = list(self.obs_groups["student"])
        num_actions = self._env.num_actions
        teacher = build_model(sum(obs[g].shape[-1] for g in self.obs_groups["teacher"]), num_actions, teacher_cfg)
        teacher.load_state_dict(state["actor_state_dict"])
        student_dim = sum(obs[g].shape[-1] for g in self.obs_groups["student"]) * cfg.algorithm.history_length
        student = build_model(student_dim, num_actions, cfg.student)
        return Distillation(
            student,
            teacher,
            cfg.algorithm,
            self.obs_groups,
            self._env.num_envs,
            cfg.num_steps_per_env,
            self.torch_device,
        )

    def _inference_policy(self) -> Any:
        length = self.train_cfg.algorithm.history_length
        if length > 1:
            return HistoryInferencePolicy(self.alg.get_policy(), self.obs_groups["student"], length)
        return inference_policy(self.alg.get_policy(), self.obs_groups["student"])

    def teacher_returns(self, env: Env, max_steps: int | None = None) -> torch.Tensor:
        """``[num_envs]`` first-episode returns of the teacher's deterministic policy (the distillation target)."""
        return self.evaluate(env, max_steps, policy=inference_policy(self.alg.teacher, self.obs_groups["teacher"]))
