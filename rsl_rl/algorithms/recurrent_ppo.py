"""PPO with a recurrent actor and/or critic (GRU/LSTM), trained by truncated back-propagation through time.

Same run order and losses as :class:`~rsl_rl.algorithms.ppo.PPO`; what changes is where the hidden state lives:

* **Acting** carries each recurrent model's hidden state across steps and iterations and zeroes it for envs whose
  episode ended, by a mask (``h ← h·(1 − d_t)``): no host sync.
* **Storage** keeps the hidden states at the rollout's first step plus the done masks
  (:class:`~rsl_rl.storage.RecurrentRolloutStorage`), not a state per step.
* **Update**: a mini-batch is a group of whole env trajectories of ``num_steps_per_env`` steps; the models re-run the
  sequence from the stored start state, re-zeroing the state where an episode ended inside it, and the gradient flows
  through the whole segment (truncated BPTT at the rollout boundary). Mini-batch size = T · N / num_mini_batches.

A feed-forward model in the pair is run on the same ``[T, B, D]`` batch (its layers broadcast over T), so a recurrent
actor with an MLP critic works, and so does the reverse (rsl_rl #155/#169).

RND works as in PPO. Symmetry is refused, as rsl-rl-lib refuses it: a mirrored trajectory would need hidden states of
its own, re-run from mirrored start states.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.ppo import PPO, PPOConfig
from rsl_rl.extensions import RandomNetworkDistillation, Symmetry
from rsl_rl.models.mlp_model import MLPModel
from rsl_rl.models.rnn_model import (
    Hidden,
    Model,
    initial_hidden,
    model_sequence,
    model_step,
    reset_hidden,
    restore_hidden,
    select_hidden,
)
from rsl_rl.modules.distribution import gaussian_log_prob
from rsl_rl.storage.rollout_storage import RecurrentRolloutStorage


class RecurrentPPO(PPO):
    """PPO over recurrent models; either of ``actor`` and ``critic`` may be an :class:`RNNModel`."""

    storage_class = RecurrentRolloutStorage
    storage: RecurrentRolloutStorage

    def __init__(
        self,
        actor: Model,
        critic: Model,
        cfg: PPOConfig,
        obs_groups: dict[str, list[str]],
        num_envs: int,
        num_steps_per_env: int,
        device: torch.device | str = "cpu",
        rnd: RandomNetworkDistillation | None = None,
        symmetry: Symmetry | None = None,
    ) -> None:
        if symmetry is not None:
            raise ValueError(
                "RecurrentPPO does not support symmetry (algorithm.symmetry_cfg): symmetry augmentation and the mirror "
                "loss need feed-forward actor and critic models"
            )
        if num_envs < cfg.num_mini_batches:
            raise ValueError(
                f"algorithm.num_mini_batches={cfg.num_mini_batches} exceeds num_envs={num_envs}: recurrent "
                "mini-batches are groups of whole env trajectories"
            )
        # PPO's own code paths that call the models directly (act, _final_values, _last_values, update) are all
        # overridden below; the cast only satisfies PPO's attribute types.
        super().__init__(
            cast(MLPModel, actor), cast(MLPModel, critic), cfg, obs_groups, num_envs, num_steps_per_env, device, rnd
        )
        # Not ``models``: that is the method listing the trained networks (compile, multi-process synchronisation).
        self.nets: dict[str, Model] = {"actor": actor, "critic": critic}
        self.hidden: dict[str, Hidden] = {k: initial_hidden(m, num_envs, self.device) for k, m in self.nets.items()}

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Sample actions, advance the hidden states and record the transition. Call under ``inference_mode``."""
        s, t = self.storage, self.storage.step
        if t == 0:
            s.save_hidden(self.hidden)
        self._acted_obs = obs
        actor_obs = self._cat(obs, self.actor_groups)
        mean, self.hidden["actor"] = model_step(self.nets["actor"], actor_obs, self.hidden["actor"])
        std = self.actor.std().expand_as(mean)
        actions = mean + std * torch.randn_like(mean)
        s.obs["actor"][t].copy_(actor_obs)
        if self.shared_obs:
            critic_obs = actor_obs
        else:
            critic_obs = self._cat(obs, self.critic_groups)
            s.obs["critic"][t].copy_(critic_obs)
        values, self.hidden["critic"] = model_step(self.nets["critic"], critic_obs, self.hidden["critic"])
        s.actions[t].copy_(actions)
        s.action_mean[t].copy_(mean)
        s.action_std[t].copy_(std)
        s.log_prob[t].copy_(gaussian_log_prob(actions, mean, std))
        s.values[t].copy_(values.squeeze(-1))
        self.extensions.act(obs, s, t)
        return actions

    def process_env_step(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict,
    ) -> None:
        """PPO's reward/done bookkeeping, then zero the hidden state of every env whose episode ended."""
        super().process_env_step(obs, rewards, dones, extras)
        done = dones.to(torch.bool)
        self.hidden = {name: reset_hidden(state, done) for name, state in self.hidden.items()}

    def _final_values(self, critic_obs: torch.Tensor, bootstrap: torch.Tensor) -> torch.Tensor:
        """V(final_obs) with the critic state reached at this step (before its reset); whole batch, no sync."""
        return model_step(self.nets["critic"], critic_obs, self.hidden["critic"])[0].squeeze(-1)

    def _last_values(self, obs: TensorDict) -> torch.Tensor:
        critic_obs = self._cat(obs, self.critic_groups)
        return model_step(self.nets["critic"], critic_obs, self.hidden["critic"])[0].squeeze(-1)

    def update(self) -> dict[str, torch.Tensor]:
        """Epochs × mini-batches of whole trajectories; the sequence forward re-zeroes states at episode ends."""
        cfg, s = self.cfg, self.storage
        fields = ["actor"] + ([] if self.shared_obs else ["critic"])
        fields += ["actions", "action_mean", "action_std", "log_prob", "values", "returns", "advantages"]
        flat, col = s.pack(fields + self.extensions.fields())
        table = flat.view(s.num_steps, s.num_envs, -1)
        critic_col = col["actor"] if self.shared_obs else col["critic"]
        totals = torch.zeros(6, device=self.device)
        batches = s.env_mini_batches(cfg.num_mini_batches, cfg.num_learning_epochs)
        for envs in batches:
            seq = table[:, envs]  # [T, B, K]
            dones = s.dones[:, envs]
            with self.amp or contextlib.nullcontext():
                mean, _ = model_sequence(
                    self.nets["actor"], seq[..., col["actor"]], select_hidden(s.hidden0["actor"], envs), dones
                )
                values, _ = model_sequence(
                    self.nets["critic"], seq[..., critic_col], select_hidden(s.hidden0["critic"], envs), dones
                )
            rows = seq.reshape(-1, seq.shape[-1])
            size = rows.shape[0]
            advantages = rows[:, col["advantages"]].squeeze(-1)
            if cfg.normalize_advantage_per_mini_batch:
                adv_std, adv_mean = torch.std_mean(advantages)
                advantages = (advantages - adv_mean) / (adv_std + 1e-8)
            self.optimizer.zero_grad(set_to_none=True)
            mean, values = mean.reshape(size, -1).float(), values.reshape(size).float()
            sums = self._backward(rows, col, rows[:, col["actions"]], mean, values, advantages, size)
            totals += self._step_mini_batch(sums, size)
        return self._finish_update(totals, len(batches))

    # --- persistence -------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """PPO's state plus the hidden states reached during collection (``memory``): with the env's state they let
        a resumed run continue exactly where this one stopped."""
        return {**super().state_dict(), "memory": {name: list(state) for name, state in self.hidden.items()}}

    def load_state_dict(
        self, state: dict[str, Any], load_cfg: dict[str, bool] | None = None, strict: bool = True
    ) -> None:
        """PPO's selection, plus the hidden states when ``load_cfg["memory"]`` is set (the runner sets it when it
        restores the env's state too: hidden states belong to the episodes in progress)."""
        super().load_state_dict(state, load_cfg, strict)
        if (load_cfg or {}).get("memory", False) and "memory" in state:
            self.hidden = {name: restore_hidden(h, state["memory"][name], name) for name, h in self.hidden.items()}
