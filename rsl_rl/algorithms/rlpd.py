"""RLPD (Ball et al. 2023) on our SAC: learning with demonstrations and human interventions (SERL, HIL-SERL).

RLPD adds no new loss. It is SAC with
* **symmetric sampling**: every critic and actor batch is ``demo_ratio`` (0.5) demonstration windows and the rest
  online windows (``sample_batch``), drawn from a :class:`~rsl_rl.storage.demo_buffer.DemoBuffer` filled from a demo
  file (``rsl_rl/storage/demos.py``);
* the critic recipe SAC already has: N = 10 LayerNorm critics, a random subset of M = 2 for the target, the actor on
  their mean, no entropy term in the backup, a high update-to-data ratio -- :func:`rlpd_preset` sets them
  (``../shared/reference/serl.md`` §1–3);
* **interventions** (HIL-SERL §8): an env (or wrapper) that overrode the policy's action reports
  ``extras["intervention"]`` (bool ``[N]``) and ``extras["intervention_action"]`` (the applied action ``[N, A]``, env
  units). The transition is stored with that action in the online replay, marked in :attr:`RLPD.intervened`, and in
  the demo buffer, so the 50/50 sampling weights corrections up.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.sac import SAC, SACConfig
from rsl_rl.env.batched import split_dones
from rsl_rl.modules.sac_models import QEnsemble, SquashedGaussianActor
from rsl_rl.storage.demo_buffer import DemoBuffer
from rsl_rl.storage.demos import DemoData, load_demos

if TYPE_CHECKING:
    from rsl_rl.runners.config import SACTrainConfig


def rlpd_preset(cfg: SACTrainConfig, num_actions: int, demos: str, updates_per_step: int = 10) -> SACTrainConfig:
    """``cfg`` (a task's SAC config: its groups, bounds, envs and replay stay) with RLPD's hyperparameters: batch 256
    = 128 demo + 128 online, ``updates_per_step`` critic updates per env step (RLPD's G; the actor once per round),
    1-step targets, γ 0.99, τ 0.005, Adam 3e-4, initial α 0.01, target entropy −|A|/2, no entropy backup; 10 critics
    with LayerNorm, the target over a random 2, the actor on their mean; 256×2 ReLU networks."""
    cfg = copy.deepcopy(cfg)
    cfg.algorithm = dataclasses.replace(
        cfg.algorithm,
        demos=demos,
        demo_ratio=0.5,
        batch_size=256,
        num_updates=updates_per_step,
        policy_delay=updates_per_step,
        n_step=1,
        gamma=0.99,
        tau=0.005,
        actor_learning_rate=3e-4,
        critic_learning_rate=3e-4,
        alpha_learning_rate=3e-4,
        init_alpha=0.01,
        learn_alpha=True,
        target_entropy=-num_actions / 2.0,
        entropy_backup=False,
        target_critics=2,
        actor_q_reduction="mean",
    )
    cfg.actor = dataclasses.replace(cfg.actor, hidden_dims=(256, 256), activation="relu")
    cfg.critic = dataclasses.replace(
        cfg.critic, class_name="QEnsemble", hidden_dims=(256, 256), activation="relu", num_critics=10, layer_norm=True
    )
    return cfg


class RLPD(SAC):
    """SAC whose batches are part demonstrations (``cfg.demos``), and which stores interventions in both buffers."""

    def __init__(
        self,
        actor: SquashedGaussianActor,
        critic: QEnsemble,
        cfg: SACConfig,
        obs_groups: dict[str, list[str]],
        num_envs: int,
        device: torch.device | str = "cpu",
        demos: DemoData | None = None,
        env_obs: TensorDict | None = None,
    ) -> None:
        """``demos``: the demonstrations (default: loaded from ``cfg.demos``); ``env_obs``: an observation of the env,
        against which the demos' groups are checked (shapes and dtypes)."""
        super().__init__(actor, critic, cfg, obs_groups, num_envs, device)
        if demos is None:
            if not cfg.demos:
                raise ValueError("RLPD needs demonstrations: set algorithm.demos to a demo file (rsl-rl record-demos)")
            demos = load_demos(cfg.demos)
        source = cfg.demos or "the demonstrations"
        self._check_demos(demos, env_obs, source)
        demos = demos.to(self.device)
        ends = torch.ones_like(demos.episode, dtype=torch.bool)
        ends[:-1] = demos.episode[1:] != demos.episode[:-1]
        self.demo_buffer = DemoBuffer(
            self._demo_sets(demos.obs),
            self._demo_sets(demos.next_obs),
            self.actor.from_env(demos.actions.to(self.device, torch.float32)),
            demos.rewards,
            demos.terminated if cfg.bootstrap_timeouts else demos.terminated | demos.truncated,
            demos.truncated,
            ends,
            demos.intervention,
            cfg.demo_capacity,
            self.device,
        )
        self.num_demo_steps = demos.num_steps
        self.proportional = cfg.demo_ratio == 0.0
        """demo_ratio 0: the demos are merely in the buffer (the baseline RLPD is compared with): every stored row,
        demo or online, is equally likely, so the demos' share of a batch shrinks as the replay fills."""
        self.demo_batch = round(cfg.batch_size * cfg.demo_ratio)
        self.online_batch = cfg.batch_size - self.demo_batch
        if not self.proportional and (self.demo_batch < 1 or self.online_batch < 1):
            raise ValueError(
                f"algorithm.batch_size={cfg.batch_size} with demo_ratio={cfg.demo_ratio} leaves no demo or no online "
                "rows"
            )
        self.intervened = torch.zeros(cfg.replay_capacity, num_envs, dtype=torch.bool, device=self.device)
        """Marks the online replay's rows (``[replay_capacity, num_envs]``, aligned with it) whose action was an
        intervention."""

    def _check_demos(self, demos: DemoData, env_obs: TensorDict | None, source: str) -> None:
        """The demos must carry every group SAC reads, shaped as the env's, and the env's number of actions."""
        needed = sorted(set(self.actor_groups) | set(self.critic_groups))
        missing = [g for g in needed if g not in demos.obs]
        if missing:
            raise ValueError(
                f"algorithm.demos={source}: the demos lack observation group(s) {missing} that SAC reads (they hold "
                f"{sorted(demos.obs)}); record them from this task"
            )
        if env_obs is not None:
            for g in needed:
                ours, theirs = tuple(env_obs[g].shape[1:]), tuple(demos.obs[g].shape[1:])
                if ours != theirs:
                    raise ValueError(
                        f"algorithm.demos={source}: observation group '{g}' is {list(theirs)} per step in the demos "
                        f"but {list(ours)} in this env (recorded from another task or env config?)"
                    )
        if demos.actions.shape[-1] != self.actor.output_dim:
            raise ValueError(
                f"algorithm.demos={source}: the demos have {demos.actions.shape[-1]} actions, this env "
                f"{self.actor.output_dim}"
            )
        if demos.num_steps == 0:
            raise ValueError(f"algorithm.demos={source}: the demo file holds no steps")

    def _demo_sets(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The observation sets of demo groups ``[T, ...]``, laid out as the replay stores them."""
        sets = {"actor": torch.cat([obs[g].flatten(1).float() for g in self.actor_groups], -1)}
        if not self.shared_obs:
            sets["critic"] = torch.cat([obs[g].flatten(1).float() for g in self.critic_groups], -1)
        return sets

    # --- collection --------------------------------------------------------------------------------------------------

    def process_env_step(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict[str, Any],
        intervention: torch.Tensor | None = None,
        intervention_actions: torch.Tensor | None = None,
    ) -> None:
        """SAC's step, plus interventions: ``intervention`` ``[N]`` bool and the applied ``intervention_actions``
        ``[N, A]`` (env units), or ``extras["intervention"]`` and ``extras["intervention_action"]``."""
        mask = extras.get("intervention") if intervention is None else intervention
        if mask is not None:
            actions = extras.get("intervention_action") if intervention_actions is None else intervention_actions
            if actions is None:
                raise KeyError(
                    "an intervention mask needs the applied actions: extras['intervention_action'] [N, A] (env units)"
                )
            self._store_intervention(obs, rewards, dones, extras, mask.to(self.device, torch.bool), actions)
        super().process_env_step(obs, rewards, dones, extras)

    def _store_intervention(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict[str, Any],
        mask: torch.Tensor,
        actions: torch.Tensor,
    ) -> None:
        """Overwrite the replay's action of the step being stored where ``mask``, mark it, copy it to the demos."""
        row = self.storage.row
        u = self.actor.from_env(actions.to(self.device, torch.float32))
        self.storage.actions[row] = torch.where(mask.unsqueeze(-1), u, self.storage.actions[row])
        self.intervened[row] = mask
        terminated, truncated = split_dones(dones, extras)
        if not self.cfg.bootstrap_timeouts:
            terminated = terminated | truncated
        next_obs = self._sets(obs)
        final_obs = extras.get("final_obs")
        if final_obs is not None:  # the observation reached before an automatic reset
            done = (terminated | truncated).unsqueeze(-1)
            next_obs = {k: torch.where(done, v, next_obs[k]) for k, v in self._sets(final_obs).items()}
        current = {key: self.storage.obs[key][row] for key in next_obs}
        self.demo_buffer.add_transitions(mask, current, next_obs, u, rewards, terminated)

    # --- update ------------------------------------------------------------------------------------------------------

    def sample_batch(self) -> dict[str, Any]:
        """RLPD's symmetric sampling: ``online_batch`` replay windows, then ``demo_batch`` demo windows; ``demo``
        ``[B]`` marks the latter. With ``demo_ratio`` 0 the split follows the rows stored: demo share
        D / (D + online transitions), from host counters (no sync), rounded per batch."""
        cfg = self.cfg
        if self.proportional:
            online_rows = self.storage.size * self.storage.num_envs
            self.demo_batch = round(cfg.batch_size * self.num_demo_steps / (self.num_demo_steps + online_rows))
            self.online_batch = cfg.batch_size - self.demo_batch
        parts = []
        if self.online_batch:
            parts.append(self.storage.sample(self.online_batch, cfg.n_step, cfg.gamma))
        if self.demo_batch:
            parts.append(self.demo_buffer.sample(self.demo_batch, cfg.n_step, cfg.gamma))
        batch: dict[str, Any] = {
            key: {k: torch.cat([p[key][k] for p in parts]) for k in parts[0][key]} for key in ("obs", "next_obs")
        }
        for key in ("actions", "returns", "discounts"):
            batch[key] = torch.cat([p[key] for p in parts])
        batch["demo"] = torch.arange(cfg.batch_size, device=self.device) >= self.online_batch
        return batch

    # --- persistence -------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """SAC's state; with ``save_replay`` also the demo buffer (its interventions) and the intervention marks."""
        state = super().state_dict()
        if self.cfg.save_replay:
            state["demo_buffer"] = self.demo_buffer.state_dict()
            state["intervened"] = self.intervened.clone()
        return state

    def load_state_dict(
        self, state: dict[str, Any], load_cfg: dict[str, bool] | None = None, strict: bool = True
    ) -> None:
        super().load_state_dict(state, load_cfg, strict)
        if (load_cfg or {}).get("memory", False) and "demo_buffer" in state:
            self.demo_buffer.load_state_dict(state["demo_buffer"])
            self.intervened.copy_(state["intervened"])
