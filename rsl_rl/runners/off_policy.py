"""Off-policy runner: SAC on batched envs with everything the on-policy runner gives.

The collect → learn loop, logging (TensorBoard/W&B, progress bar, ``curves.png``, ``summary.json``), deterministic
evaluation, checkpoints with exact resume, inference policy and export are the on-policy runner's own code; this
class only builds SAC (RLPD when ``algorithm.demos`` names a demo file), skips PPO's return computation and logs
SAC's quantities. One iteration collects
``num_steps_per_env`` steps of every env into the replay, then runs ``algorithm.num_updates`` gradient steps.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.rlpd import RLPD
from rsl_rl.algorithms.sac import SAC
from rsl_rl.env import Env
from rsl_rl.modules.sac_models import build_critic, build_sac_actor, vector_width
from rsl_rl.runners.config import SACTrainConfig, train_config_from_dict
from rsl_rl.runners.on_policy_runner import OnPolicyRunner
from rsl_rl.utils import resolve_obs_groups


class OffPolicyRunner(OnPolicyRunner):
    """Train a SAC policy on a batched env (same constructor, ``learn``, ``save``/``load``, ``evaluate`` and exports
    as :class:`OnPolicyRunner`)."""

    alg: SAC

    def __init__(
        self,
        env: Any,
        train_cfg: dict[str, Any] | SACTrainConfig,
        log_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        eval_env: Env | None = None,
        show_progress: bool = True,
    ) -> None:
        cfg = train_cfg if isinstance(train_cfg, SACTrainConfig) else train_config_from_dict(train_cfg)
        if not isinstance(cfg, SACTrainConfig):
            raise ValueError(
                f"OffPolicyRunner trains SAC; algorithm.class_name={cfg.algorithm.class_name!r} needs OnPolicyRunner"
            )
        super().__init__(env, cfg, log_dir, device, eval_env, show_progress)
        self.cfg = train_cfg
        self.logger.loss_curves = ("Loss/critic", "Loss/actor", "Policy/alpha")

    def _build_algorithm(self, obs: TensorDict) -> SAC:
        cfg: SACTrainConfig = self.train_cfg
        # Image groups [N, C, H, W] pass here; the actor reads them flat (C·H·W, row-major) through its CNN when it
        # has a cnn_cfg, and build_sac_actor / vector_width reject them with SAC's own reasons otherwise.
        self.obs_groups = resolve_obs_groups(obs, cfg.obs_groups, ("actor", "critic"), ("actor", "critic"))
        critic_dim = vector_width(obs, self.obs_groups["critic"])
        num_actions = self._env.num_actions
        low, high = self._action_bounds(num_actions, cfg.algorithm.action_bounds)
        actor = build_sac_actor(obs, self.obs_groups["actor"], num_actions, cfg.actor, low, high)
        critic = build_critic(critic_dim, num_actions, cfg.critic)
        args = (actor, critic, cfg.algorithm, self.obs_groups, self._env.num_envs, self.torch_device)
        if cfg.algorithm.demos:  # RLPD: batches half demonstrations (rsl_rl/algorithms/rlpd.py)
            return RLPD(*args, env_obs=obs)
        return SAC(*args)

    def _action_bounds(self, num_actions: int, given: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``algorithm.action_bounds`` when set; else the env's declared bounds; else an error that says so."""
        if given is not None:
            return torch.full((num_actions,), given[0]), torch.full((num_actions,), given[1])
        declared = self._env.action_bounds() if isinstance(self._env, Env) else None
        if declared is None:
            raise ValueError(
                f"{type(self.env).__name__} declares no finite action bounds (Env.action_bounds()), which SAC maps its "
                "squashed actions onto; set algorithm.action_bounds=(low, high) for every action"
            )
        low, high = declared
        return low.detach().float().cpu(), high.detach().float().cpu()

    def _end_collection(self, obs: TensorDict) -> None:
        """Nothing: SAC's targets are computed per sampled batch."""

    def _algorithm_record(self) -> dict[str, float]:
        return {"learning_rate": float(self.alg.cfg.critic_learning_rate)}

    def _iteration_record(
        self, stats: dict[str, torch.Tensor], collect_s: float, learn_s: float, steps: int
    ) -> dict[str, float]:
        record = super()._iteration_record(stats, collect_s, learn_s, steps)
        record["Perf/gradient_steps_per_second"] = record["gradient_steps"] / max(learn_s, 1e-9)
        return record
