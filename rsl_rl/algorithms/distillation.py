"""Teacher → student distillation (DAgger-style, as rsl_rl's ``Distillation``), in run order:
``act → process_env_step → compute_returns (nothing) → update → state_dict/load_state_dict``.

The student acts: it samples from its own Gaussian, so it visits the states its own mistakes lead to; the frozen
teacher labels every visited state with its mean (and std). Additions to rsl_rl, each optional:

* ``teacher_rollout_prob`` β: with probability β per env and step the teacher's mean action is executed instead
  (GKD's data mixing / DAgger's β), annealed linearly to 0 over ``teacher_rollout_anneal_iterations``.
* Gaussian KL losses (forward, reverse, adaptive) that also train the student's std, which PPO fine-tuning needs
  (``losses.py``; rsl_rl matches means only). The teacher's std is its own or ``teacher_std``.
* Student memory: an observation history (``history_length`` stacked observations, refilled at episode start) for an
  MLP student, or an :class:`RNNModel` student trained by truncated BPTT over chunks of ``gradient_length`` steps.

As in PPO, a mini-batch whose gradients are not finite (a NaN label of the teacher, say) is skipped, counted and left
out of the loss statistics; an iteration that skipped every mini-batch reports a NaN loss, which the runner turns into
an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.losses import adaptive_kl_loss, forward_kl_loss, huber_loss, mse_loss, reverse_kl_loss
from rsl_rl.algorithms.optimizers import (
    OPTIMIZERS,
    format_1_order,
    is_format_1,
    load_optimizer_state,
    make_optimizer,
    step_if_finite,
)
from rsl_rl.algorithms.rsl_rl_lib_api import RslRlLibAlgorithm
from rsl_rl.models.rnn_model import (
    Hidden,
    Model,
    RNNModel,
    initial_hidden,
    model_sequence,
    model_step,
    reset_hidden,
    restore_hidden,
    select_hidden,
)
from rsl_rl.storage.rollout_storage import RecurrentRolloutStorage
from rsl_rl.utils.class_names import short_class_name

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(student_mean [B, A], teacher_mean [B, A], teacher_std [B, A])`` of one mini-batch, with the graph attached."""
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(student_mean [B, A], student_std [A], teacher_mean [B, A], teacher_std [B, A]) → [B]``."""


def _on_means(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LossFn:
    return lambda s_mean, s_std, t_mean, t_std: fn(s_mean, t_mean)


LOSSES: dict[str, LossFn] = {
    "mse": _on_means(mse_loss),
    "huber": _on_means(huber_loss),
    "kl_forward": forward_kl_loss,
    "kl_reverse": reverse_kl_loss,
    "kl_adaptive": adaptive_kl_loss,
}


@dataclass
class DistillationConfig:
    """Distillation hyperparameters (rsl_rl's ``algorithm`` section with ``class_name: "Distillation"``)."""

    class_name: str = "Distillation"
    """Algorithm name; only ``"Distillation"``."""
    num_learning_epochs: int = 5
    """Passes over the rollout per update (rsl_rl: 1; Isaac Lab configs: 5)."""
    num_mini_batches: int = 4
    """Mini-batches per epoch: of samples for an MLP student, of whole env trajectories for a recurrent one."""
    gradient_length: int = 15
    """Recurrent student: BPTT chunk length in steps, one optimiser step per chunk (rsl_rl: 15); 0 = whole rollout."""
    learning_rate: float = 1e-3
    """Adam learning rate (rsl_rl and Isaac Lab: 1e-3)."""
    max_grad_norm: float | None = 1.0
    """Global-norm gradient clip; None = no clipping."""
    optimizer: str = "adam"
    """One of adam, adamw, sgd, rmsprop."""
    loss: str = "mse"
    """``mse``/``huber`` on means (std not trained), ``kl_forward`` KL(T‖S), ``kl_reverse`` KL(S‖T), ``kl_adaptive``."""
    huber_delta: float = 1.0
    """δ of the Huber loss."""
    teacher_std: float | None = None
    """KL losses: fixed teacher std for every action dim; None = the teacher's own std."""
    teacher_rollout_prob: float = 0.0
    """Initial probability β of executing the teacher's action instead of the student's (per env and step)."""
    teacher_rollout_anneal_iterations: int = 50
    """β decays linearly from ``teacher_rollout_prob`` to 0 over this many iterations."""
    history_length: int = 1
    """Student input = the last k student observations stacked (oldest first); 1 = the current one only."""

    def __post_init__(self) -> None:
        short_class_name(self.class_name, ["Distillation"], "algorithm.class_name")
        self.optimizer = self.optimizer.lower()
        if self.loss not in LOSSES:
            raise ValueError(f"algorithm.loss={self.loss!r}; allowed: {list(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"algorithm.optimizer={self.optimizer!r}; allowed: {list(OPTIMIZERS)}")
        for field_name in ("num_learning_epochs", "num_mini_batches", "history_length"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"algorithm.{field_name} must be >= 1, got {getattr(self, field_name)}")
        if self.gradient_length < 0 or self.teacher_rollout_anneal_iterations < 0:
            raise ValueError("algorithm.gradient_length and teacher_rollout_anneal_iterations must be >= 0")
        if not 0.0 <= self.teacher_rollout_prob <= 1.0:
            raise ValueError(f"algorithm.teacher_rollout_prob must lie in [0, 1], got {self.teacher_rollout_prob}")
        if self.learning_rate <= 0.0 or (self.teacher_std is not None and self.teacher_std <= 0.0):
            raise ValueError("algorithm.learning_rate and teacher_std must be > 0")


DISTILLATION_LOSS = "Loss/distillation"
"""The name of the loss statistic of :meth:`Distillation.update`."""


class ObservationHistory:
    """The last ``length`` observations of every env, ``[N, length·D]`` oldest first; an env that starts an episode
    has its history refilled with its first observation (no stale frames of the previous episode)."""

    def __init__(self, num_envs: int, length: int, dim: int, device: torch.device | str | None) -> None:
        self.buffer = torch.zeros(num_envs, length, dim, device=device)
        self.start = torch.ones(num_envs, dtype=torch.bool, device=device)

    def push(self, obs: torch.Tensor) -> torch.Tensor:
        """Append ``obs[N, D]``; returns the stacked history ``[N, length·D]``."""
        new = obs.unsqueeze(1)
        filled = torch.where(self.start.view(-1, 1, 1), new.expand_as(self.buffer), self.buffer)
        self.buffer = torch.cat([filled[:, 1:], new], dim=1)
        self.start = torch.zeros_like(self.start)
        return self.buffer.flatten(1)

    def reset(self, dones: torch.Tensor) -> None:
        """Mark envs whose episode ended; their next push refills the history."""
        self.start = self.start | dones.to(torch.bool).reshape(-1)  # any dtype: Isaac Lab passes long dones

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stacked observations and the refill flags, for exact resume."""
        return {"buffer": self.buffer.clone(), "start": self.start.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor] | None) -> None:
        """Restore :meth:`state_dict`'s output; an error names the mismatch if it does not fit."""
        if state is None:
            raise ValueError("the checkpoint holds no observation history: it was written with history_length=1")
        if state["buffer"].shape != self.buffer.shape:
            raise ValueError(
                f"the checkpoint's observation history has shape {tuple(state['buffer'].shape)}, this run's "
                f"{tuple(self.buffer.shape)}: exact resume needs the checkpoint's num_envs and history_length"
            )
        self.buffer = state["buffer"].to(self.buffer.device).clone()
        self.start = state["start"].to(self.start.device).clone()


class Distillation(RslRlLibAlgorithm):
    """Train ``student`` to imitate a frozen ``teacher`` on the states the student visits."""

    # rsl-rl-lib's hyperparameter attributes, forwarded to self.cfg (rsl_rl_lib_api.py).
    config_aliases = ("num_learning_epochs", "gradient_length", "max_grad_norm")
    teacher_loaded: bool = False
    """Whether the teacher holds trained weights (from ``teacher_checkpoint`` or a loaded PPO checkpoint)."""

    loss_keys: tuple[str, ...] = (DISTILLATION_LOSS,)
    """Statistics of :meth:`update` that must be finite; the runner checks them once per iteration."""

    def __init__(
        self,
        student: Model,
        teacher: Model,
        cfg: DistillationConfig,
        obs_groups: dict[str, list[str]],
        num_envs: int,
        num_steps_per_env: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.student = student.to(self.device)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        self.obs_groups = {name: list(groups) for name, groups in obs_groups.items()}
        self.student_groups = list(obs_groups["student"])
        self.teacher_groups = list(obs_groups["teacher"])
        self.recurrent = isinstance(student, RNNModel)
        if self.recurrent and num_envs < cfg.num_mini_batches:
            raise ValueError(f"algorithm.num_mini_batches={cfg.num_mini_batches} exceeds num_envs={num_envs}")
        if student.obs_dim % cfg.history_length:
            raise ValueError(f"student obs_dim {student.obs_dim} is not a multiple of history_length")
        self.history = (
            ObservationHistory(num_envs, cfg.history_length, student.obs_dim // cfg.history_length, self.device)
            if cfg.history_length > 1
            else None
        )
        self.storage = RecurrentRolloutStorage(
            num_steps_per_env, num_envs, {"student": student.obs_dim}, student.output_dim, self.device
        )
        self.hidden: dict[str, Hidden] = {
            "student": initial_hidden(student, num_envs, self.device),
            "teacher": initial_hidden(teacher, num_envs, self.device),
        }
        self.learning_rate = torch.tensor(float(cfg.learning_rate), device=self.device)
        self.optimizer = make_optimizer(cfg.optimizer, list(self.student.parameters()), self.learning_rate)
        self.loss_fn: LossFn = (
            _on_means(partial(huber_loss, delta=cfg.huber_delta)) if cfg.loss == "huber" else LOSSES[cfg.loss]
        )
        self.iteration = 0
        self.teacher_rollout_prob = cfg.teacher_rollout_prob

    def _cat(self, obs: TensorDict, groups: list[str]) -> torch.Tensor:
        return obs[groups[0]] if len(groups) == 1 else torch.cat([obs[g] for g in groups], dim=-1)

    def teacher_std(self) -> torch.Tensor:
        """The std the teacher labels with, ``[A]``: its own, or the configured fixed one."""
        if self.cfg.teacher_std is not None:
            return torch.full((self.student.output_dim,), self.cfg.teacher_std, device=self.device)
        return self.teacher.std()

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Student samples, teacher labels (executed instead with probability β). Call under ``inference_mode``."""
        s, t = self.storage, self.storage.step
        if t == 0:
            s.save_hidden({"student": self.hidden["student"]})
        student_obs = self._cat(obs, self.student_groups)
        if self.history is not None:
            student_obs = self.history.push(student_obs)
        mean, self.hidden["student"] = model_step(self.student, student_obs, self.hidden["student"])
        actions = mean + self.student.std() * torch.randn_like(mean)
        teacher_obs = self._cat(obs, self.teacher_groups)
        teacher_mean, self.hidden["teacher"] = model_step(self.teacher, teacher_obs, self.hidden["teacher"])
        if self.teacher_rollout_prob > 0.0:  # a Python float: no host sync
            use_teacher = torch.rand(mean.shape[0], 1, device=self.device) < self.teacher_rollout_prob
            actions = torch.where(use_teacher, teacher_mean, actions)
        s.obs["student"][t].copy_(student_obs)
        s.action_mean[t].copy_(teacher_mean)
        s.action_std[t].copy_(self.teacher_std().expand_as(teacher_mean))
        return actions

    def process_env_step(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict[str, Any],
    ) -> None:
        """Record episode ends; reset the memories (hidden states, history) of envs whose episode ended."""
        done = dones.to(torch.bool)
        self.storage.dones[self.storage.step].copy_(done)
        self.hidden = {name: reset_hidden(state, done) for name, state in self.hidden.items()}
        if self.history is not None:
            self.history.reset(done)
        self.storage.step += 1

    def compute_returns(self, obs: TensorDict) -> None:
        """Nothing to compute: the labels were recorded while acting (kept for the runner's loop)."""

    def update(self) -> dict[str, torch.Tensor]:
        """Epochs × mini-batches of the distillation loss; returns mean statistics as device tensors."""
        s = self.storage
        table, col = s.pack(["student", "action_mean", "action_std"])
        sums = torch.zeros(4, device=self.device)  # loss, mean |μ_S − μ_T|, applied batches, discarded batches
        update = self._update_sequences if self.recurrent else self._update_samples
        params = list(self.student.parameters())
        for student_mean, teacher_mean, teacher_std in update(table, col):
            std = self.student.std()
            loss = self.loss_fn(student_mean, std, teacher_mean, teacher_std).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            discarded = step_if_finite(self.optimizer, [params], self.cfg.max_grad_norm, self.device)
            with torch.no_grad():
                error = (student_mean - teacher_mean).abs().mean()
                stats = torch.stack([loss.detach(), error, torch.ones((), device=self.device)])
                # torch.where, not a product: a discarded batch's loss is NaN or inf, and NaN·0 is NaN.
                sums += torch.cat([torch.where(discarded > 0, 0.0, stats), discarded.reshape(1)])
        self.student.update_normalization(s.flat(s.obs["student"]))
        s.clear()
        self.iteration += 1
        anneal = self.cfg.teacher_rollout_anneal_iterations
        progress = min(self.iteration / anneal, 1.0) if anneal > 0 else 1.0
        beta = self.teacher_rollout_prob
        self.teacher_rollout_prob = self.cfg.teacher_rollout_prob * (1.0 - progress)
        # Means over the applied mini-batches: 0/0 = NaN when every one was discarded, which the runner reports.
        return {
            DISTILLATION_LOSS: sums[0] / sums[2],
            "Loss/mean_abs_error": sums[1] / sums[2],
            "Distillation/teacher_rollout_prob": torch.tensor(beta, device=self.device),
            "discarded_steps": sums[3],
        }

    def _update_samples(self, table: torch.Tensor, col: dict[str, slice]) -> Iterator[Batch]:
        """Feed-forward student: random mini-batches of single samples."""
        for idx in self.storage.mini_batches(self.cfg.num_mini_batches, self.cfg.num_learning_epochs):
            rows = table[idx]
            yield self.student(rows[:, col["student"]]), rows[:, col["action_mean"]], rows[:, col["action_std"]]

    def _update_sequences(self, table: torch.Tensor, col: dict[str, slice]) -> Iterator[Batch]:
        """Recurrent student: whole env trajectories, cut into BPTT chunks of ``gradient_length`` steps; the state
        flows (detached) from one chunk into the next and is zeroed where an episode ended."""
        s = self.storage
        seq_table = table.view(s.num_steps, s.num_envs, -1)
        length = self.cfg.gradient_length or s.num_steps
        for envs in s.env_mini_batches(self.cfg.num_mini_batches, self.cfg.num_learning_epochs):
            hidden = select_hidden(s.hidden0["student"], envs)
            for start in range(0, s.num_steps, length):
                seq = seq_table[start : start + length, envs]
                mean, hidden = model_sequence(
                    self.student, seq[..., col["student"]], hidden, s.dones[start:, envs][: seq.shape[0]]
                )
                hidden = tuple(h.detach() for h in hidden)
                rows = seq.reshape(-1, seq.shape[-1])
                yield mean.reshape(rows.shape[0], -1), rows[:, col["action_mean"]], rows[:, col["action_std"]]

    # --- persistence -------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """rsl-rl-lib's keys -- the student under ``student_state_dict``, the teacher under ``teacher_state_dict`` --
        plus the optimiser and schedule, and the per-env memory (``memory``: hidden states, observation history) that
        an exact resume needs."""
        memory: dict[str, Any] = {name: list(state) for name, state in self.hidden.items()}
        if self.history is not None:
            memory["history"] = self.history.state_dict()
        return {
            "student_state_dict": self.student.state_dict(),
            "teacher_state_dict": self.teacher.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "learning_rate": float(self.learning_rate),
            "distillation_iteration": self.iteration,
            "memory": memory,
        }

    def default_load_cfg(self, state: dict[str, Any]) -> dict[str, bool]:
        """What a load without ``load_cfg`` restores (rsl-rl-lib's rule): from an RL checkpoint (no student, no
        teacher weights) only the teacher -- its actor; from a distillation checkpoint everything."""
        if "teacher_state_dict" not in state and "student_state_dict" not in state:
            return {"teacher": True, "iteration": False}
        return {"student": True, "teacher": True, "optimizer": True, "iteration": True}

    def load_state_dict(
        self, state: dict[str, Any], load_cfg: dict[str, bool] | None = None, strict: bool = True
    ) -> None:
        """Load what ``load_cfg`` selects (keys ``student`` (``actor`` in checkpoints of format 1), ``teacher``,
        ``optimizer``; None: :meth:`default_load_cfg`), and ``memory``, which the runner sets when it restores the
        env's state too: the memory belongs to the episodes in progress."""
        load_cfg = load_cfg if load_cfg is not None else self.default_load_cfg(state)
        rl_checkpoint = "teacher_state_dict" not in state and "student_state_dict" not in state
        if (load_cfg.get("student") or load_cfg.get("actor")) and not rl_checkpoint:
            student = state["student_state_dict"] if "student_state_dict" in state else state["actor_state_dict"]
            self.student.load_state_dict(student, strict=strict)
        if load_cfg.get("teacher", False):
            teacher = state["actor_state_dict"] if rl_checkpoint else state["teacher_state_dict"]
            self.teacher.load_state_dict(teacher, strict=strict)
            self.teacher_loaded = True
        if load_cfg.get("optimizer", False) and "optimizer_state_dict" in state and not rl_checkpoint:
            order = format_1_order(self.student) if is_format_1(state) else None
            load_optimizer_state(self.optimizer, state["optimizer_state_dict"], self.learning_rate, order)
            self.learning_rate.fill_(float(state.get("learning_rate", self.cfg.learning_rate)))
            self.iteration = int(state.get("distillation_iteration", 0))
            anneal = self.cfg.teacher_rollout_anneal_iterations
            progress = min(self.iteration / anneal, 1.0) if anneal > 0 else 1.0
            self.teacher_rollout_prob = self.cfg.teacher_rollout_prob * (1.0 - progress)
        if load_cfg.get("memory", False) and "memory" in state:
            memory = state["memory"]
            self.hidden = {name: restore_hidden(h, memory[name], name) for name, h in self.hidden.items()}
            if self.history is not None:
                self.history.load_state_dict(memory.get("history"))

    def get_policy(self) -> Model:
        """The student (the policy that gets deployed)."""
        return self.student

    def models(self) -> list[torch.nn.Module]:
        return [self.student]

    @staticmethod
    def construct_algorithm(obs: TensorDict, env: Any, cfg: dict[str, Any], device: str) -> Distillation:
        """rsl-rl-lib's factory: the distillation a ``train_cfg`` dict describes (``student``/``teacher`` sections);
        the teacher's weights come from ``teacher_checkpoint`` or a later ``load``. Resolves ``cfg["obs_groups"]``."""
        from rsl_rl.runners.distillation_runner import build_distillation, distillation_config_from_dict

        train_cfg = distillation_config_from_dict(cfg)
        alg = build_distillation(obs, int(env.num_envs), int(env.num_actions), train_cfg, torch.device(device))
        cfg["obs_groups"] = {name: list(groups) for name, groups in alg.obs_groups.items()}
        alg.compile(cfg.get("torch_compile_mode"))
        return alg

    def train_mode(self) -> None:
        self.student.train()

    def eval_mode(self) -> None:
        self.student.eval()
