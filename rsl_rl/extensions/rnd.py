"""Random Network Distillation (Burda et al. 2018; Schwarke et al. 2023), under rsl-rl-lib 5.5.1's names.

A frozen, randomly initialised *target* network f and a trained *predictor* f̂ embed the RND state s (the observation
groups of ``obs_groups["rnd_state"]``, concatenated). The predictor is trained by regression on the states the policy
visits, so its error shrinks where the agent has been and stays large on novel states; that error is the curiosity
bonus added to the extrinsic reward:

    r_int(s) = w(k) · ‖f̂(s̃) − f(s̃)‖₂ / σ_R          loss(s) = mean_j (f̂_j(s̃) − f_j(s̃))²

with s̃ the (optionally) normalised state, σ_R the (optional) running std of the discounted intrinsic return and w(k)
the weight schedule at call k. The module has its own Adam optimiser; the algorithm steps it beside its own.

Everything the rollout calls stays on the device: the schedule is plain Python arithmetic on a call counter, and the
normalisers update and divide with tensor ops (no ``.item()``, no branching on tensor values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import torch
from tensordict import TensorDictBase
from torch import nn

from rsl_rl.modules import MLP, EmpiricalDiscountedVariationNormalization, EmpiricalNormalization

NORMALIZATION_UNTIL = 10**8
"""Samples after which rsl-rl-lib's RND normalisers stop learning (their ``until``)."""

WEIGHT_SCHEDULE_PARAMS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "step": ("final_step", "final_value"),
    "linear": ("initial_step", "final_step", "final_value"),
}
"""Keys each ``weight_schedule["mode"]`` needs besides ``mode``."""


class RandomNetworkDistillation(nn.Module):
    """Predictor and frozen target networks, their normalisers, the weight schedule and the predictor's optimiser.

    ``get_intrinsic_reward`` runs once per env step (call it under ``torch.inference_mode``); ``compute_loss`` once
    per mini-batch with ``optimizer`` stepped after it; ``update_normalization`` once per iteration with the rollout's
    states. Each of the three takes rsl-rl-lib's observation TensorDict or, for algorithms that store flat inputs,
    the already concatenated RND state ``[B, num_states]``.
    """

    def __init__(
        self,
        num_states: int,
        obs_groups: dict,
        num_outputs: int,
        predictor_hidden_dims: tuple[int, ...] | list[int],
        target_hidden_dims: tuple[int, ...] | list[int],
        activation: str = "elu",
        state_normalization: bool = False,
        reward_normalization: bool = False,
        weight: float = 0.0,
        weight_schedule: dict | None = None,
        learning_rate: float = 1e-3,
        device: str | torch.device = "cpu",
    ) -> None:
        """Build the networks on ``device``.

        Args:
            num_states: Width of the RND state (``resolve_rnd_config`` fills it from ``obs_groups["rnd_state"]``).
            obs_groups: The algorithm's observation sets; ``obs_groups["rnd_state"]`` lists the groups to concatenate.
            num_outputs: Embedding width of both networks.
            predictor_hidden_dims: Hidden widths of the predictor; ``-1`` means ``num_states``.
            target_hidden_dims: Hidden widths of the target; ``-1`` means ``num_states``.
            activation: Hidden activation of both networks.
            state_normalization: Normalise the state by running mean/std before both networks.
            reward_normalization: Divide the bonus by the running std of its discounted sum (Burda et al. §2.4).
            weight: w of the bonus (``resolve_rnd_config`` has already multiplied it by the env's ``step_dt``).
            weight_schedule: ``{"mode": "constant"}``, ``{"mode": "step", "final_step", "final_value"}`` or
                ``{"mode": "linear", "initial_step", "final_step", "final_value"}``; None is constant.
            learning_rate: Adam learning rate of the predictor.
            device: Device of the networks and normalisers.
        """
        super().__init__()
        self.num_states = int(num_states)
        self.obs_groups = obs_groups
        self.num_outputs = int(num_outputs)
        self.initial_weight = float(weight)
        self.weight = self.initial_weight
        """The weight applied by the last ``get_intrinsic_reward`` call (logged as ``Rnd/weight``)."""
        self.device = device
        self.state_normalization = state_normalization
        self.reward_normalization = reward_normalization
        self.update_counter = 0
        """Calls of ``get_intrinsic_reward`` so far: the step k of the weight schedule."""

        # Registered in rsl-rl-lib's order and under its names, so the state dicts of the two load into each other.
        self.state_normalizer: EmpiricalNormalization | nn.Identity = (
            EmpiricalNormalization(self.num_states, until=NORMALIZATION_UNTIL) if state_normalization else nn.Identity()
        )
        # r / σ_R with R̄_t = 0.99·R̄_{t−1} + r_t (Burda et al. §2.4; rsl-rl-lib's γ, independent of PPO's).
        self.reward_normalizer: EmpiricalDiscountedVariationNormalization | nn.Identity = (
            EmpiricalDiscountedVariationNormalization([], until=NORMALIZATION_UNTIL)
            if reward_normalization
            else nn.Identity()
        )

        self.weight_scheduler_params: dict[str, Any] = {}
        self.weight_scheduler: Callable[..., float] | None = None
        if weight_schedule is not None:
            self.weight_scheduler_params = _check_weight_schedule(weight_schedule)
            self.weight_scheduler = getattr(self, f"_{self.weight_scheduler_params['mode']}_weight_schedule")

        self.predictor = MLP(self.num_states, self.num_outputs, predictor_hidden_dims, activation)
        self.target = MLP(self.num_states, self.num_outputs, target_hidden_dims, activation)
        # The target is a fixed random function: no gradients, never in training mode.
        self.target.requires_grad_(False)
        self.to(device)
        self.target.eval()
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=learning_rate)

    # --- rollout ------------------------------------------------------------------------------------------------------

    def get_intrinsic_reward(self, obs: TensorDictBase | torch.Tensor) -> torch.Tensor:
        """The weighted bonus ``[N]`` of the states ``obs`` reached; advances the weight schedule by one step.

        r_int = w(k) · ‖f̂(s̃) − f(s̃)‖₂, divided by σ_R when reward normalisation is on (which, in training mode,
        first folds this step into σ_R).
        """
        self.update_counter += 1
        with torch.no_grad():
            state = self.state_normalizer(self._state(obs))
            error = torch.linalg.vector_norm(self.predictor(state) - self.target(state), dim=-1)
            reward = self.reward_normalizer(error)
        if self.weight_scheduler is not None:
            self.weight = self.weight_scheduler(step=self.update_counter, **self.weight_scheduler_params)
        else:
            self.weight = self.initial_weight
        return reward * self.weight

    # --- update -------------------------------------------------------------------------------------------------------

    def compute_loss(self, obs: TensorDictBase | torch.Tensor) -> torch.Tensor:
        """Predictor loss of a mini-batch: mean over samples and outputs of (f̂(s̃) − f(s̃))²; only f̂ gets gradients."""
        with torch.no_grad():
            state = self.state_normalizer(self._state(obs))
            target = self.target(state)
        return nn.functional.mse_loss(self.predictor(state), target)

    def update_normalization(self, obs: TensorDictBase | torch.Tensor) -> None:
        """Fold a batch of states ``[B, num_states]`` into the state normaliser: in training mode only, and until it
        has seen ``NORMALIZATION_UNTIL`` samples (rsl-rl-lib's limit), both checked without a host sync."""
        if isinstance(self.state_normalizer, EmpiricalNormalization):
            self.state_normalizer.update(self._state(obs))

    # --- helpers ------------------------------------------------------------------------------------------------------

    def get_rnd_state(self, obs: TensorDictBase) -> torch.Tensor:
        """Concatenate the groups of ``obs_groups["rnd_state"]`` into ``[..., num_states]``."""
        return torch.cat([obs[group] for group in self.obs_groups["rnd_state"]], dim=-1)

    def _state(self, obs: TensorDictBase | torch.Tensor) -> torch.Tensor:
        return obs if isinstance(obs, torch.Tensor) else self.get_rnd_state(obs)

    def forward(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not a network to call: use ``get_intrinsic_reward`` or ``compute_loss``."""
        raise RuntimeError("RandomNetworkDistillation has no forward(); call get_intrinsic_reward or compute_loss")

    def train(self, mode: bool = True) -> RandomNetworkDistillation:
        """Training mode for the predictor and the normalisers (they learn statistics only then); the target stays
        in evaluation mode."""
        super().train(mode)
        self.target.eval()
        return self

    def eval(self) -> RandomNetworkDistillation:
        """Evaluation mode: the normalisers stop learning."""
        return self.train(False)

    # --- weight schedules: w(k) at call k of get_intrinsic_reward -----------------------------------------------------

    def _constant_weight_schedule(self, step: int, **kwargs: Any) -> float:
        """w(k) = w₀."""
        return self.initial_weight

    def _step_weight_schedule(self, step: int, final_step: int, final_value: float, **kwargs: Any) -> float:
        """w(k) = w₀ for k < final_step, final_value from then on."""
        return self.initial_weight if step < final_step else final_value

    def _linear_weight_schedule(
        self, step: int, initial_step: int, final_step: int, final_value: float, **kwargs: Any
    ) -> float:
        """w(k) = w₀ before initial_step, final_value from final_step, linear in between:
        w₀ + (final_value − w₀)·(k − initial_step)/(final_step − initial_step)."""
        if step < initial_step:
            return self.initial_weight
        if step >= final_step:  # equal to rsl-rl-lib's rule at k = final_step, and no 0/0 when the two steps coincide
            return final_value
        fraction = (step - initial_step) / (final_step - initial_step)
        return self.initial_weight + (final_value - self.initial_weight) * fraction


def _check_weight_schedule(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schedule`` with its mode checked (or, when a dataclass config dropped it, inferred from the keys)."""
    params = dict(schedule)
    if "mode" not in params:
        params["mode"] = "linear" if "initial_step" in params else "step" if "final_step" in params else "constant"
    mode = params["mode"]
    if mode not in WEIGHT_SCHEDULE_PARAMS:
        raise ValueError(f"rnd_cfg.weight_schedule.mode={mode!r}; allowed: {list(WEIGHT_SCHEDULE_PARAMS)}")
    missing = [key for key in WEIGHT_SCHEDULE_PARAMS[mode] if key not in params]
    if missing:
        raise ValueError(f"rnd_cfg.weight_schedule (mode {mode!r}) lacks {missing}")
    return params


def resolve_rnd_config(alg_cfg: dict, obs: TensorDictBase, obs_groups: dict[str, list[str]], env: Any) -> dict:
    """Complete ``alg_cfg["rnd_cfg"]`` for :class:`RandomNetworkDistillation` as rsl-rl-lib does.

    Adds ``num_states`` (the summed widths of the ``obs_groups["rnd_state"]`` groups, each ``[N, D]``) and
    ``obs_groups``, and multiplies ``weight`` by the env's ``step_dt`` so the bonus is per second of simulated time
    (the weight a user writes does not change with the control rate). A missing or None ``rnd_cfg`` becomes None.
    Returns a new dict; the caller's dicts are not modified, so resolving twice never scales the weight twice.
    """
    rnd_cfg = alg_cfg.get("rnd_cfg")
    if rnd_cfg is None:
        return {**alg_cfg, "rnd_cfg": None}
    if "rnd_state" not in obs_groups:
        raise KeyError(
            f"obs_groups has no 'rnd_state' set (it has {list(obs_groups)}); list the observation groups RND reads, "
            "e.g. obs_groups['rnd_state'] = ['policy']"
        )
    num_states = 0
    for group in obs_groups["rnd_state"]:
        shape = tuple(obs[group].shape)
        if len(shape) != 2:
            raise ValueError(f"RND reads flat [num_envs, dim] observations; group {group!r} has shape {shape}")
        num_states += shape[-1]
    resolved = dict(rnd_cfg)
    resolved["num_states"] = num_states
    resolved["obs_groups"] = obs_groups
    resolved["weight"] = float(resolved.get("weight", 0.0)) * _step_dt(env)
    return {**alg_cfg, "rnd_cfg": resolved}


def _step_dt(env: Any) -> float:
    """Seconds per env step: ``env.unwrapped.step_dt`` (Isaac Lab, mjlab) or ``env.step_dt`` (ours), looking through
    wrappers that keep the wrapped env as ``.env`` (an adapter that does not know the step reports 0)."""
    current = env
    for _ in range(16):
        for holder in (getattr(current, "unwrapped", None), current):
            step_dt = getattr(holder, "step_dt", None)
            if step_dt is not None and float(step_dt) > 0.0:
                return float(step_dt)
        current = getattr(current, "env", None)
        if current is None:
            break
    raise ValueError(
        f"RND scales its weight by the env's step_dt, but {type(env).__name__} has neither env.unwrapped.step_dt nor "
        "env.step_dt > 0"
    )
