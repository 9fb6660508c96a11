"""Soft Actor-Critic (Haarnoja et al. 2018) for thousands of batched envs, in run order:
``act → process_env_step → update → state_dict/load_state_dict``.

What makes it work on many parallel envs (``../shared/reference/offpolicy.md``), each a config field:

* the actor's tanh output is mapped onto the env's action bounds (``SquashedGaussianActor``; the legged task derives
  them from its joint limits), with a small initial σ (RSL-RL-SAC's fixes 1 and 2);
* time-outs bootstrap from the final observation, terminations do not (fix 3), inside n-step returns (fix 4) taken
  from each env's contiguous replay column (``ReplayStorage``);
* N critics with LayerNorm; the target is the minimum over a random subset of M target critics (REDQ; M = N = 2 is
  clipped double Q), Polyak-averaged; a categorical (C51) ensemble is a config switch
  (``rsl_rl/modules/categorical.py``);
* many critic updates per collected batch, the actor and α every ``policy_delay``-th one, large batches;
* automatic temperature toward a target entropy (default ``−|A|``), or a fixed α; the entropy term in the backup can
  be switched off.

Built to avoid host syncs inside collection and the update loop: counters that decide control flow (steps stored,
updates done) are host integers known without reading the device, and statistics stay device tensors until the
runner reads them once per iteration (tests/rsl_rl/test_cuda.py checks it under CUDA's sync debug mode; it has not
yet run on a GPU). ``compile=True`` compiles the two loss computations (CUDA graphs on a GPU).
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.losses import sac_actor_loss, temperature_loss
from rsl_rl.algorithms.optimizers import load_optimizer_state, step_if_finite
from rsl_rl.algorithms.rsl_rl_lib_api import RslRlLibAlgorithm
from rsl_rl.env.batched import split_dones
from rsl_rl.modules.normalization import EmpiricalNormalization
from rsl_rl.modules.sac_models import BackupTerms, QEnsemble, SquashedGaussianActor
from rsl_rl.storage.replay import ReplayStorage
from rsl_rl.utils.class_names import short_class_name

Q_REDUCTIONS = ("min", "mean")
SAC_OPTIMIZERS = ("adam", "adamw")


@dataclass
class SACConfig:
    """SAC hyperparameters (the ``algorithm`` section of a SAC config). Defaults follow the reference sheet's many-env
    recipes scaled to a CPU; tasks set their own in their agent configs."""

    class_name: str = "SAC"
    """Algorithm name; only ``"SAC"``."""
    gamma: float = 0.99
    """Discount factor γ."""
    n_step: int = 3
    """Steps of the n-step return (1 = the one-step TD target)."""
    tau: float = 0.05
    """Polyak rate of the target critics: θ' ← θ' + τ (θ − θ'), after every critic update."""
    batch_size: int = 4096
    """Transitions per gradient step (tens of thousands on a GPU)."""
    num_updates: int = 8
    """Critic updates per iteration (one iteration collects num_steps_per_env steps of every env)."""
    policy_delay: int = 2
    """The actor and α are updated after every ``policy_delay``-th critic update."""
    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    alpha_learning_rate: float = 3e-4
    """Adam learning rate of log α."""
    optimizer: str = "adam"
    """``"adam"`` or ``"adamw"`` (FastTD3 uses AdamW with weight decay 0.1)."""
    weight_decay: float = 0.0
    """Weight decay of the actor and critic optimisers (AdamW)."""
    max_grad_norm: float = 0.0
    """Global-norm gradient clip of actor and critics (0: none). Steps with non-finite gradients are always skipped."""
    init_alpha: float = 0.1
    """Initial temperature α."""
    learn_alpha: bool = True
    """Tune α toward ``target_entropy``; False keeps α = init_alpha."""
    target_entropy: float | None = None
    """Target entropy of the squashed policy (in [−1, 1] action units); None: −|A|."""
    entropy_backup: bool = True
    """Keep −α log π in the TD target (soft Q); False backs up plain Q (the actor keeps its entropy term)."""
    target_critics: int = 0
    """M: the target is the min over a random subset of M target critics (REDQ); 0: all N (clipped double Q)."""
    actor_q_reduction: str = "min"
    """How the actor reduces the N critics: ``"min"`` (SAC) or ``"mean"`` (REDQ, FastSAC)."""
    replay_capacity: int = 1024
    """Replay rows per env (the replay holds replay_capacity × num_envs transitions)."""
    random_steps: int = 0
    """Steps per env taken with uniform random actions at the start of training."""
    learning_starts: int = 0
    """Steps per env collected before the first update (at least n_step + 1 are always needed)."""
    action_bounds: tuple[float, float] | None = None
    """(low, high) for every action, instead of the env's own bounds (``Env.action_bounds()``); None: the env's, which
    it must then declare."""
    bootstrap_timeouts: bool = True
    """Bootstrap time-outs from the final observation (RSL-RL-SAC's fix 3); False treats them as terminations (the
    ablation)."""
    save_replay: bool = False
    """Store the replay in checkpoints (exact resume); otherwise a resumed run refills it."""
    compile: bool = False
    """torch.compile the loss computations (CUDA graphs on a GPU)."""
    use_mixed_precision: bool = False
    """Run the networks of the update under bfloat16 autocast (losses, targets and parameters stay float32)."""
    demos: str = ""
    """Demo file (``rsl_rl/storage/demos.py``): train RLPD-style, every batch mixing in demonstrations
    (``rsl_rl/algorithms/rlpd.py``); "" trains plain SAC."""
    demo_ratio: float = 0.5
    """Fraction of every batch drawn from the demonstrations (RLPD's symmetric sampling: 0.5); 0: the demos are merely
    in the buffer, every stored row equally likely (the baseline RLPD is compared with)."""
    demo_capacity: int = 20_000
    """Demo-buffer rows for intervention transitions besides the file's (a ring; the file's demos are kept)."""

    def __post_init__(self) -> None:
        short_class_name(self.class_name, ["SAC"], "algorithm.class_name")
        self.optimizer = self.optimizer.lower()
        if self.optimizer not in SAC_OPTIMIZERS:
            raise ValueError(f"algorithm.optimizer={self.optimizer!r}; allowed: {list(SAC_OPTIMIZERS)}")
        if self.actor_q_reduction not in Q_REDUCTIONS:
            raise ValueError(f"algorithm.actor_q_reduction={self.actor_q_reduction!r}; allowed: {list(Q_REDUCTIONS)}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ValueError(f"algorithm.gamma must lie in [0, 1] and tau in (0, 1]; got {self.gamma}, {self.tau}")
        for field_name in ("n_step", "batch_size", "num_updates", "policy_delay"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"algorithm.{field_name} must be >= 1, got {getattr(self, field_name)}")
        if self.replay_capacity < self.n_step + 2:
            raise ValueError(
                f"algorithm.replay_capacity={self.replay_capacity} must exceed n_step + 1 = {self.n_step + 1}"
            )
        for field_name in ("actor_learning_rate", "critic_learning_rate", "alpha_learning_rate", "init_alpha"):
            if getattr(self, field_name) <= 0.0:
                raise ValueError(f"algorithm.{field_name} must be > 0, got {getattr(self, field_name)}")
        if self.target_critics < 0 or self.random_steps < 0 or self.learning_starts < 0 or self.max_grad_norm < 0:
            raise ValueError("algorithm.target_critics, random_steps, learning_starts and max_grad_norm must be >= 0")
        if not 0.0 <= self.demo_ratio < 1.0 or self.demo_capacity < 0:
            raise ValueError(
                f"algorithm.demo_ratio={self.demo_ratio} must lie in [0, 1) and demo_capacity={self.demo_capacity} "
                "be >= 0"
            )
        if self.action_bounds is not None:
            self.action_bounds = (float(self.action_bounds[0]), float(self.action_bounds[1]))
            if not self.action_bounds[0] < self.action_bounds[1]:
                raise ValueError(f"algorithm.action_bounds={self.action_bounds}; need low < high")


class SAC(RslRlLibAlgorithm):
    """SAC over named observation groups: the actor reads ``obs_groups["actor"]``, the critics ``["critic"]``."""

    loss_keys: tuple[str, ...] = ("Loss/critic", "Loss/actor")
    """Statistics of :meth:`update` that must be finite; the runner checks them once per iteration."""

    def __init__(
        self,
        actor: SquashedGaussianActor,
        critic: QEnsemble,
        cfg: SACConfig,
        obs_groups: dict[str, list[str]],
        num_envs: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.actor = actor.to(self.device)
        self.critic = critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_groups = list(obs_groups["actor"])
        self.critic_groups = list(obs_groups["critic"])
        self.shared_obs = self.actor_groups == self.critic_groups
        dims = {"actor": actor.obs_dim} if self.shared_obs else {"actor": actor.obs_dim, "critic": critic.obs_dim}
        self.storage = ReplayStorage(cfg.replay_capacity, num_envs, dims, actor.output_dim, self.device)
        self.critic_key = "actor" if self.shared_obs else "critic"
        if cfg.target_critics > critic.num_critics:
            raise ValueError(
                f"algorithm.target_critics={cfg.target_critics} exceeds critic.num_critics={critic.num_critics}"
            )
        self.num_target = cfg.target_critics or critic.num_critics
        self.target_entropy = -float(actor.output_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device, requires_grad=cfg.learn_alpha)
        self.learning_rate = torch.tensor(cfg.critic_learning_rate, device=self.device)
        # log α is a second parameter group of the actor's optimiser: one fused step updates both (the actor's loss
        # uses a detached α, so each group only gets its own loss's gradient).
        actor_groups: list[dict[str, Any]] = [
            {"params": list(self.actor.parameters()), "lr": torch.tensor(cfg.actor_learning_rate, device=self.device)}
        ]
        if cfg.learn_alpha:
            lr = torch.tensor(cfg.alpha_learning_rate, device=self.device)
            actor_groups.append({"params": [self.log_alpha], "lr": lr, "weight_decay": 0.0})
        self.actor_optimizer = self._optimizer(actor_groups, cfg.actor_learning_rate, cfg.weight_decay)
        self.critic_optimizer = self._optimizer(self.critic.parameters(), cfg.critic_learning_rate, cfg.weight_decay)
        self.collected_steps = 0
        """Steps per env collected since the start (decides random actions and learning_starts; survives resume)."""
        self.num_gradient_steps = 0
        """Critic updates since the start (decides the actor's turn)."""
        self._unnormalized_steps = 0
        self.amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if cfg.use_mixed_precision else None
        self._critic_loss = torch.compile(self._critic_loss_eager) if cfg.compile else self._critic_loss_eager
        self._actor_loss = torch.compile(self._actor_loss_eager) if cfg.compile else self._actor_loss_eager

    def _optimizer(self, params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """Fused Adam/AdamW with a device-tensor learning rate (no host sync, ~6x faster than the loop on CPU)."""
        cls = torch.optim.AdamW if self.cfg.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=torch.tensor(lr, device=self.device), weight_decay=weight_decay, fused=True)

    def _cat(self, obs: TensorDict, groups: list[str]) -> torch.Tensor:
        # flatten(1): an image group [N, C, H, W] is stored C·H·W row-major, the flat layout the CNN actor reads.
        return obs[groups[0]].flatten(1) if len(groups) == 1 else torch.cat([obs[g].flatten(1) for g in groups], -1)

    def _sets(self, obs: TensorDict) -> dict[str, torch.Tensor]:
        sets = {"actor": self._cat(obs, self.actor_groups)}
        if not self.shared_obs:
            sets["critic"] = self._cat(obs, self.critic_groups)
        return sets

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    # --- collection --------------------------------------------------------------------------------------------------

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Sample env actions for ``obs`` (uniform within the bounds during ``random_steps``) and store ``(s_t, u_t)``.
        Call under ``torch.inference_mode``."""
        stored = self.storage.add_observation(self._sets(obs))  # non-finite entries zeroed: the actor stays finite
        if self.collected_steps < self.cfg.random_steps:
            u = torch.rand(obs.batch_size[0], self.actor.output_dim, device=self.device) * 2.0 - 1.0
        else:
            u, _ = self.actor.sample(stored["actor"])
        self.storage.add_action(u)
        return self.actor.to_env(u)

    def process_env_step(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict[str, Any],
    ) -> None:
        """Store reward, episode ends and the final observations of the envs that finished (``dones`` all ends,
        ``extras["time_outs"]`` the time-outs among them, ``extras["final_obs"]`` the observations before the reset).
        """
        terminated, truncated = split_dones(dones, extras)
        final_obs = extras.get("final_obs")
        if not self.cfg.bootstrap_timeouts:
            terminated = terminated | truncated
        self.storage.add_outcome(
            rewards, terminated, truncated, self._sets(final_obs) if final_obs is not None else None
        )
        self.collected_steps += 1
        self._unnormalized_steps += 1

    # --- update ------------------------------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether the replay holds a complete n-step window and ``learning_starts`` steps were collected."""
        return self.storage.num_windows(self.cfg.n_step) > 0 and self.collected_steps >= self.cfg.learning_starts

    def update(self) -> dict[str, torch.Tensor]:
        """``num_updates`` critic updates (the actor and α every ``policy_delay``-th); mean statistics as device
        tensors. Before the replay is ready nothing is updated and the statistics are 0."""
        cfg = self.cfg
        self._update_normalization()
        # Sums of: critic loss, actor loss, alpha loss, Q mean, policy entropy; critic steps, actor steps, discarded.
        totals = torch.zeros(8, device=self.device)
        critic_tries = actor_tries = 0
        if self.ready():
            for _ in range(cfg.num_updates):
                batch = self.sample_batch()
                totals += self._update_critic(batch)
                critic_tries += 1
                self.num_gradient_steps += 1
                if self.num_gradient_steps % cfg.policy_delay == 0:
                    totals += self._update_actor(batch["obs"])
                    actor_tries += 1
        # Means over the applied steps. Steps tried and all discarded give 0/0 = NaN, which the runner reports; no
        # step tried (replay not ready, or not the actor's turn) gives 0.
        critic_steps = totals[5] if critic_tries else torch.ones((), device=self.device)
        actor_steps = totals[6] if actor_tries else torch.ones((), device=self.device)
        return {
            "Loss/critic": totals[0] / critic_steps,
            "Loss/actor": totals[1] / actor_steps,
            "Loss/alpha": totals[2] / actor_steps,
            "Q/mean": totals[3] / critic_steps,
            "Policy/entropy": totals[4] / actor_steps,
            "Policy/alpha": self.alpha,
            # fill_ with a Python number launches a kernel; torch.tensor(number, device=cuda) would copy and sync.
            "Replay/fill": torch.empty((), device=self.device).fill_(self.storage.size / self.storage.capacity),
            "gradient_steps": totals[5],
            "discarded_steps": totals[7],
        }

    def sample_batch(self) -> dict[str, Any]:
        """One batch of ``batch_size`` n-step windows (RLPD draws part of it from demonstrations)."""
        return self.storage.sample(self.cfg.batch_size, self.cfg.n_step, self.cfg.gamma)

    def _update_normalization(self) -> None:
        """Fold the steps collected since the last update into the observation normalisers (before any gradient
        step, so sampled observations are normalised with statistics that include them)."""
        steps = min(self._unnormalized_steps, self.storage.size)
        self._unnormalized_steps = 0
        critic_normalizes = isinstance(self.critic.obs_normalizer, EmpiricalNormalization)
        if steps == 0 or not (self.actor.obs_normalization or critic_normalizes):
            return
        recent = self.storage.recent(steps)
        self.actor.update_normalization(recent["actor"])
        if critic_normalizes:
            self.critic.update_normalization(recent[self.critic_key])
            # The target critics normalise with the online statistics (they are not Polyak-averaged).
            self.critic_target.obs_normalizer.load_state_dict(self.critic.obs_normalizer.state_dict())

    def _critic_loss_eager(
        self, batch: dict[str, Any], members: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The TD loss of one batch and its Q values ``[N, B]``."""
        with torch.no_grad():
            next_u, next_log_prob = self.actor.sample(batch["next_obs"]["actor"])
            alpha = self.alpha if self.cfg.entropy_backup else torch.zeros((), device=self.device)
            backup = BackupTerms(batch["returns"], batch["discounts"], next_log_prob, alpha)
            target = self.critic_target.target(batch["next_obs"][self.critic_key], next_u, members, backup)
        return self.critic.td_loss(batch["obs"][self.critic_key], batch["actions"], target)

    def _update_critic(self, batch: dict[str, Any]) -> torch.Tensor:
        cfg = self.cfg
        members = None
        if self.num_target < self.critic.num_critics:  # REDQ: a fresh random subset per update
            members = torch.randperm(self.critic.num_critics, device=self.device)[: self.num_target]
        with self.amp or contextlib.nullcontext():
            loss, q = self._critic_loss(batch, members)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        discarded = step_if_finite(
            self.critic_optimizer, [list(self.critic.parameters())], cfg.max_grad_norm or None, self.device
        )
        with torch.no_grad():
            online = list(self.critic.parameters())
            torch._foreach_lerp_(list(self.critic_target.parameters()), online, cfg.tau)  # pyright: ignore
            # torch.where, not a product: a discarded step's statistics are NaN or inf, and NaN·0 is NaN.
            kept = discarded == 0
            zero = torch.zeros((), device=self.device)
            loss, q_mean = torch.where(kept, loss.detach(), 0.0), torch.where(kept, q.detach().mean(), 0.0)
            return torch.stack([loss, zero, zero, q_mean, zero, kept.float(), zero, discarded])

    def _actor_loss_eager(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor loss and the log-probabilities ``[B]`` of its sampled actions."""
        u, log_prob = self.actor.sample(obs["actor"])
        q = self.critic(obs[self.critic_key], u)
        return sac_actor_loss(log_prob, q, self.alpha, self.cfg.actor_q_reduction), log_prob

    def _update_actor(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One actor (and α) step on the observations of the critic's batch (as SAC does)."""
        cfg = self.cfg
        self.critic.requires_grad_(False)  # the actor's loss must not build gradients of the critics
        try:
            with self.amp or contextlib.nullcontext():
                loss, log_prob = self._actor_loss(obs)
            alpha_loss = torch.zeros((), device=self.device)
            if cfg.learn_alpha:
                alpha_loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            self.actor_optimizer.zero_grad(set_to_none=True)
            (loss + alpha_loss).backward()
        finally:
            self.critic.requires_grad_(True)
        groups = [list(self.actor.parameters())] + ([[self.log_alpha]] if cfg.learn_alpha else [])
        discarded = step_if_finite(self.actor_optimizer, groups, cfg.max_grad_norm or None, self.device)
        with torch.no_grad():
            kept = discarded == 0
            zero = torch.zeros((), device=self.device)
            loss, alpha_loss = torch.where(kept, loss.detach(), 0.0), torch.where(kept, alpha_loss.detach(), 0.0)
            entropy = torch.where(kept, -log_prob.detach().mean(), 0.0)
            return torch.stack([zero, loss, alpha_loss, zero, entropy, zero, kept.float(), discarded])

    # --- persistence -------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks (normalisers and action bounds included), target critics, α, optimisers, counters; the replay
        too with ``save_replay``."""
        state: dict[str, Any] = {
            "actor_state_dict": self.actor.state_dict(),
            "critic_state_dict": self.critic.state_dict(),
            "critic_target_state_dict": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "optimizer_state_dict": {
                "actor": self.actor_optimizer.state_dict(),
                "critic": self.critic_optimizer.state_dict(),
            },
            "sac_counters": {"collected_steps": self.collected_steps, "gradient_steps": self.num_gradient_steps},
        }
        if self.cfg.save_replay:
            state["replay"] = self.storage.state_dict()
        return state

    def load_state_dict(
        self, state: dict[str, Any], load_cfg: dict[str, bool] | None = None, strict: bool = True
    ) -> None:
        """Load what ``load_cfg`` selects (``actor``, ``critic``, ``optimizer``; all by default). With ``memory``
        (the runner restores the env as well) the replay is restored when the checkpoint holds one."""
        load_cfg = load_cfg or {"actor": True, "critic": True, "optimizer": True}
        if load_cfg.get("actor", False):
            self.actor.load_state_dict(state["actor_state_dict"], strict=strict)
        if load_cfg.get("critic", False) and "critic_state_dict" in state:
            self.critic.load_state_dict(state["critic_state_dict"], strict=strict)
            target = state.get("critic_target_state_dict", state["critic_state_dict"])
            self.critic_target.load_state_dict(target, strict=strict)
            with torch.no_grad():
                self.log_alpha.copy_(state.get("log_alpha", self.log_alpha))
        if load_cfg.get("optimizer", False) and "optimizer_state_dict" in state:
            optimizers = state["optimizer_state_dict"]
            for name, optimizer in (("actor", self.actor_optimizer), ("critic", self.critic_optimizer)):
                load_optimizer_state(optimizer, optimizers[name])
                # Each group's lr is the saved value now: keep them device tensors.
                for group in optimizer.param_groups:
                    group["lr"] = torch.as_tensor(group["lr"], device=self.device)
            counters = state.get("sac_counters", {})
            self.collected_steps = int(counters.get("collected_steps", 0))
            self.num_gradient_steps = int(counters.get("gradient_steps", 0))
        if load_cfg.get("memory", False) and "replay" in state:
            self.storage.load_state_dict(state["replay"])
            self._unnormalized_steps = 0

    def get_policy(self) -> SquashedGaussianActor:
        """The actor; its ``forward`` is the deterministic bounded action."""
        return self.actor

    def models(self) -> list[torch.nn.Module]:
        return [self.actor, self.critic]

    def train_mode(self) -> None:
        self.actor.train()
        self.critic.train()

    def eval_mode(self) -> None:
        self.actor.eval()
        self.critic.eval()
