"""rsl-rl-lib 5.x's rollout-storage interface, mixed into :class:`~rsl_rl.storage.RolloutStorage`.

Code written against rsl-rl-lib (its algorithms, their subclasses, symmetry or RND add-ons) fills a storage one
:class:`Transition` at a time through :meth:`add_transition` and reads it back as :class:`Batch` objects from
:meth:`generator`, :meth:`mini_batch_generator` or :meth:`recurrent_mini_batch_generator`. Our algorithms write the
buffers in place and read :meth:`RolloutStorage.pack`; this mixin serves the former from the same buffers.

Two constructions give a storage with this interface:

* **rsl-rl-lib's** ``RolloutStorage(training_type, num_envs, num_transitions_per_env, obs, actions_shape, device)``
  (:meth:`_init_rsl_rl_lib`) lays the buffers out as rsl-rl-lib does, so its algorithms' arithmetic on them works
  unchanged: per-step scalars ``[T, N, 1]``, ``dones`` as uint8, ``observations`` a TensorDict of the env's groups, the
  distribution parameters allocated at the first transition (their number and shapes are the policy's business).
* **ours** (what our PPO and distillation build) keeps its ``[T, N]`` layout; rsl-rl-lib's extra names are views of
  our buffers (:meth:`_link_rsl_rl_lib_names`), so they cost no memory: ``observations`` wraps ``obs`` (the model
  inputs ``actor``/``critic``/``student``, not the env's groups), ``actions_log_prob`` is ``log_prob[..., None]``,
  ``distribution_params`` is ``(action_mean, action_std)`` and, for distillation, ``privileged_actions`` is
  ``action_mean`` (where our distillation stores the teacher's mean). Names both libraries use (``rewards``,
  ``values``, ``returns``, ``advantages``, ``dones``) keep our layout; the generators give rsl-rl-lib's either way.

Per-step hidden states (``saved_hidden_state_a``/``_c``) are allocated only when a transition brings them. Our
recurrent algorithms keep just the state at the rollout's start (``hidden0``), because an episode that starts inside
the rollout starts from a zero state; the recurrent generator rebuilds trajectory-start states from that.

Deliberate difference: the generators draw their mini-batches from :meth:`RolloutStorage.mini_batches` /
:meth:`~RolloutStorage.env_mini_batches`, a fresh permutation per epoch (rsl-rl-lib reuses one sample permutation
for every epoch and takes env blocks in order), so from the same seed they draw exactly what our algorithms draw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
from tensordict import TensorDict

from rsl_rl.utils.utils import split_and_pad_trajectories

if TYPE_CHECKING:
    from rsl_rl.modules.rnn import HiddenState

TRAINING_TYPES = ("rl", "distillation")


@dataclass
class Transition:
    """One step of every env, filled field by field by an rsl-rl-lib algorithm, then handed to ``add_transition``."""

    observations: TensorDict | None = None
    """Observation groups ``[N, ...]`` the policy acted on."""
    actions: torch.Tensor | None = None
    """Actions taken ``[N, *actions_shape]``."""
    rewards: torch.Tensor | None = None
    """Rewards ``[N]`` (a time-out's bootstrap already folded in by the algorithm)."""
    dones: torch.Tensor | None = None
    """Episode ends ``[N]``, any dtype."""
    values: torch.Tensor | None = None
    """RL: critic values ``[N, 1]``."""
    actions_log_prob: torch.Tensor | None = None
    """RL: log-probability of the actions ``[N]``."""
    distribution_params: tuple[torch.Tensor, ...] | None = None
    """RL: parameters of the action distribution, e.g. ``(mean, std)``, each ``[N, ...]``."""
    privileged_actions: torch.Tensor | None = None
    """Distillation: the teacher's actions ``[N, *actions_shape]``."""
    hidden_states: tuple[HiddenState, HiddenState] = (None, None)
    """Recurrent models: the (actor, critic) states the step started from; None for a feed-forward model."""

    def clear(self) -> None:
        """Reset every field, ready for the next step."""
        for field in fields(self):
            setattr(self, field.name, field.default)


@dataclass
class Batch:
    """One mini-batch from a generator; fields a training type or model kind does not use stay None."""

    observations: TensorDict | None = None
    """Observation groups: ``[B]`` samples, or ``[T, E]`` zero-padded trajectories (recurrent generator)."""
    actions: torch.Tensor | None = None
    """Actions taken ``[B, A]`` (recurrent: ``[T, B_envs, A]``, like the other RL fields)."""
    values: torch.Tensor | None = None
    """Critic values at collection ``[B, 1]``."""
    advantages: torch.Tensor | None = None
    """Advantages ``[B, 1]``."""
    returns: torch.Tensor | None = None
    """Return targets ``[B, 1]``."""
    old_actions_log_prob: torch.Tensor | None = None
    """Log-probabilities at collection ``[B, 1]``."""
    old_distribution_params: tuple[torch.Tensor, ...] | None = None
    """Distribution parameters at collection, each ``[B, ...]``."""
    hidden_states: tuple[HiddenState, HiddenState] = (None, None)
    """Recurrent: (actor, critic) states at each trajectory's start, ``[layers, E, H]`` (a pair for an LSTM)."""
    masks: torch.Tensor | None = None
    """Recurrent: ``[T, E]`` validity of the padded trajectory steps."""
    privileged_actions: torch.Tensor | None = None
    """Distillation: the teacher's actions ``[N, A]``."""
    dones: torch.Tensor | None = None
    """Distillation: episode ends ``[N, 1]`` uint8."""


class RslRlLibStorage:
    """rsl-rl-lib's ``RolloutStorage`` members; the buffers and samplers come from our ``RolloutStorage``."""

    Transition = Transition
    Batch = Batch

    if TYPE_CHECKING:  # provided by RolloutStorage
        num_steps: int
        num_envs: int
        device: torch.device
        step: int
        obs: dict[str, torch.Tensor]
        actions: torch.Tensor
        action_mean: torch.Tensor
        action_std: torch.Tensor
        log_prob: torch.Tensor
        values: torch.Tensor
        rewards: torch.Tensor
        dones: torch.Tensor
        returns: torch.Tensor
        advantages: torch.Tensor

        def mini_batches(self, num_mini_batches: int, num_epochs: int) -> list[torch.Tensor]: ...
        def env_mini_batches(self, num_mini_batches: int, num_epochs: int) -> list[torch.Tensor]: ...

    # --- construction ------------------------------------------------------------------------------------------------

    def _init_rsl_rl_lib(
        self,
        training_type: str,
        num_envs: int,
        num_transitions_per_env: int,
        obs: TensorDict,
        actions_shape: Sequence[int],
        device: torch.device | str = "cpu",
    ) -> None:
        """rsl-rl-lib's constructor: buffers in its layout for ``obs``'s groups (``[N, ...]`` each, dtype kept)."""
        self.training_type = _checked_training_type(training_type)
        self.num_steps = self.num_transitions_per_env = t = int(num_transitions_per_env)
        self.num_envs = n = int(num_envs)
        self.device = torch.device(device)
        self.actions_shape = tuple(actions_shape)

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=self.device)

        self.obs = {key: zeros(t, *value.shape, dtype=value.dtype) for key, value in obs.items()}
        self.actions = zeros(t, n, *self.actions_shape)
        self.rewards = zeros(t, n, 1)
        self.dones = zeros(t, n, 1, dtype=torch.uint8)
        self.privileged_actions = zeros(t, n, *self.actions_shape) if self.training_type == "distillation" else None
        self.distribution_params = None
        if self.training_type == "rl":
            self.values, self.returns, self.advantages = zeros(t, n, 1), zeros(t, n, 1), zeros(t, n, 1)
            self.log_prob = self.actions_log_prob = zeros(t, n, 1)
        self.saved_hidden_state_a = self.saved_hidden_state_c = None
        self.step = 0

    def _link_rsl_rl_lib_names(self, training_type: str | None) -> None:
        """Our layout under rsl-rl-lib's names: views of our buffers, nothing allocated.

        ``training_type`` None means ``"distillation"`` for a storage of ``student`` inputs, else ``"rl"``.
        """
        inferred = "distillation" if "student" in self.obs else "rl"
        self.training_type = _checked_training_type(training_type or inferred)
        self.num_transitions_per_env = self.num_steps
        self.actions_shape = tuple(self.actions.shape[2:])
        self.actions_log_prob = self.log_prob.unsqueeze(-1)
        rl = self.training_type == "rl"
        self.distribution_params = (self.action_mean, self.action_std) if rl else None
        self.privileged_actions = None if rl else self.action_mean
        self.saved_hidden_state_a = self.saved_hidden_state_c = None

    @property
    def observations(self) -> TensorDict:
        """``obs`` as a ``[T, N]`` TensorDict of the same tensors (no copy; built on access, so it can never go stale,
        not even in a deep copy of the storage)."""
        return TensorDict(self.obs, batch_size=[self.num_steps, self.num_envs], device=self.device)

    # --- writing -----------------------------------------------------------------------------------------------------

    def add_transition(self, transition: Transition) -> None:
        """Write ``transition`` into the current step and advance; every stored observation key must be in it."""
        if self.step >= self.num_transitions_per_env:
            raise OverflowError(f"the rollout holds {self.num_transitions_per_env} steps: call clear() before adding")
        observations = transition.observations
        if observations is None:
            raise ValueError("transition.observations is None")
        written: set[int] = set()
        for key, buffer in self.obs.items():
            if id(buffer) in written:  # ours: "critic" may be the "actor" tensor itself
                continue
            if key not in observations:
                raise KeyError(f"transition.observations lacks {key!r}; this storage holds {list(self.obs)}")
            buffer[self.step].copy_(observations[key])
            written.add(id(buffer))
        self._put(self.actions, transition.actions, "actions")
        self._put(self.rewards, transition.rewards, "rewards")
        self._put(self.dones, transition.dones, "dones")
        if self.privileged_actions is not None:
            self._put(self.privileged_actions, transition.privileged_actions, "privileged_actions")
        if self.training_type == "rl":
            self._put(self.values, transition.values, "values")
            self._put(self.actions_log_prob, transition.actions_log_prob, "actions_log_prob")
            self._put_distribution_params(transition.distribution_params)
        self.saved_hidden_state_a = self._put_hidden(self.saved_hidden_state_a, transition.hidden_states[0])
        self.saved_hidden_state_c = self._put_hidden(self.saved_hidden_state_c, transition.hidden_states[1])
        self.step += 1

    def _put(self, buffer: torch.Tensor, value: torch.Tensor | None, name: str) -> None:
        """``buffer[step] ← value``; ``[N]`` and ``[N, 1]`` fit either layout (reshape, not broadcast)."""
        if value is None:
            raise ValueError(f"transition.{name} is None; a {self.training_type!r} storage needs it")
        buffer[self.step].copy_(value.reshape(buffer.shape[1:]))

    def _put_distribution_params(self, params: tuple[torch.Tensor, ...] | None) -> None:
        if params is None:
            raise ValueError("transition.distribution_params is None; an 'rl' storage needs it")
        if self.distribution_params is None:  # rsl-rl-lib's layout: shaped by the first transition
            t = self.num_transitions_per_env
            self.distribution_params = tuple(torch.zeros(t, *p.shape, device=self.device) for p in params)
        if len(params) != len(self.distribution_params):
            raise ValueError(
                f"transition.distribution_params has {len(params)} tensors; this storage holds "
                f"{len(self.distribution_params)} (ours: a Gaussian's mean and std)"
            )
        for buffer, value in zip(self.distribution_params, params, strict=True):
            self._put(buffer, value, "distribution_params")

    def _put_hidden(
        self, saved: list[torch.Tensor] | None, state: HiddenState | tuple[()]
    ) -> list[torch.Tensor] | None:
        """Record one model's state at this step (a GRU's tensor or an LSTM's pair, ``[layers, N, H]`` each),
        allocating ``[T, layers, N, H]`` buffers the first time; returns the buffers."""
        if state is None or (isinstance(state, tuple) and not state):
            return saved
        parts = state if isinstance(state, tuple) else (state,)
        if saved is None:
            saved = [torch.zeros(self.num_transitions_per_env, *p.shape, device=self.device) for p in parts]
        for buffer, part in zip(saved, parts, strict=True):
            buffer[self.step].copy_(part)
        return saved

    # --- reading -----------------------------------------------------------------------------------------------------

    def _column(self, tensor: torch.Tensor) -> torch.Tensor:
        """A per-step scalar in rsl-rl-lib's ``[T, N, 1]`` layout (a view of ours ``[T, N]``)."""
        return tensor.reshape(self.num_steps, self.num_envs, 1)

    def _lib_dones(self) -> torch.Tensor:
        """``dones`` as rsl-rl-lib's uint8 ``[T, N, 1]``; ours are bool, reinterpreted (same byte, no copy)."""
        dones = self._column(self.dones)
        return dones.view(torch.uint8) if dones.dtype == torch.bool else dones

    def _require(self, training_type: str, method: str) -> None:
        if self.training_type != training_type:
            raise ValueError(f"{method}() serves a {training_type!r} storage; this one is {self.training_type!r}")

    def generator(self) -> Iterator[Batch]:
        """Distillation: one batch per step, in order (observations, teacher actions, dones of that step)."""
        self._require("distillation", "generator")
        assert self.privileged_actions is not None
        observations, dones = self.observations, self._lib_dones()
        for t in range(self.num_transitions_per_env):
            yield Batch(observations=observations[t], privileged_actions=self.privileged_actions[t], dones=dones[t])

    def mini_batch_generator(self, num_mini_batches: int, num_epochs: int = 8) -> Iterator[Batch]:
        """RL, feed-forward models: ``num_epochs × num_mini_batches`` batches of ``T·N // num_mini_batches`` samples
        drawn from the flattened rollout; each epoch uses every sample at most once (all of them when it divides)."""
        self._require("rl", "mini_batch_generator")
        if self.distribution_params is None:
            raise RuntimeError("the storage holds no transition yet")
        observations = self.observations.flatten(0, 1)
        actions = self.actions.flatten(0, 1)
        values, returns, advantages, log_prob = (
            self._column(x).flatten(0, 1) for x in (self.values, self.returns, self.advantages, self.actions_log_prob)
        )
        params = tuple(p.flatten(0, 1) for p in self.distribution_params)
        for idx in self.mini_batches(num_mini_batches, num_epochs):
            yield Batch(
                observations=observations[idx],
                actions=actions[idx],
                values=values[idx],
                advantages=advantages[idx],
                returns=returns[idx],
                old_actions_log_prob=log_prob[idx],
                old_distribution_params=tuple(p[idx] for p in params),
            )

    def recurrent_mini_batch_generator(self, num_mini_batches: int, num_epochs: int = 8) -> Iterator[Batch]:
        """RL, recurrent models: batches of ``N // num_mini_batches`` whole envs, ``num_epochs × num_mini_batches``.

        Observations come as each env's episodes cut apart and zero-padded to ``T`` steps (``[T, E]``, env by env)
        with their ``masks``, and ``hidden_states`` hold each episode's start state; the other fields stay
        ``[T, B_envs, ...]`` in the same env order (``unpad_trajectories`` maps the model outputs onto them).
        Syncs the host: the episode lengths decide the split.
        """
        self._require("rl", "recurrent_mini_batch_generator")
        if self.distribution_params is None:
            raise RuntimeError("the storage holds no transition yet")
        t, n = self.num_steps, self.num_envs
        dones = self._column(self.dones).reshape(t, n).to(torch.bool)
        padded, masks = split_and_pad_trajectories(self.observations, dones)
        # An episode starts at step 0 and after every done; episodes are numbered env by env.
        starts = torch.ones(t, n, dtype=torch.bool, device=self.device)
        starts[1:] = dones[:-1]
        start_env, start_step = starts.transpose(0, 1).nonzero(as_tuple=True)
        per_env = starts.sum(0)
        first_of_env = torch.cumsum(per_env, 0) - per_env
        hidden = (self._start_states("a", start_env, start_step), self._start_states("c", start_env, start_step))
        values, returns, advantages, log_prob = (
            self._column(x) for x in (self.values, self.returns, self.advantages, self.actions_log_prob)
        )
        for envs in self.env_mini_batches(num_mini_batches, num_epochs):
            # The episodes of `envs`, in the order of `envs`: env e's run first_of_env[e] … + per_env[e].
            counts = per_env[envs]
            shift = first_of_env[envs] - (torch.cumsum(counts, 0) - counts)
            episodes = torch.arange(int(counts.sum()), device=self.device) + torch.repeat_interleave(shift, counts)
            yield Batch(
                observations=padded[:, episodes],
                actions=self.actions[:, envs],
                values=values[:, envs],
                advantages=advantages[:, envs],
                returns=returns[:, envs],
                old_actions_log_prob=log_prob[:, envs],
                old_distribution_params=tuple(p[:, envs] for p in self.distribution_params),
                hidden_states=(_select_states(hidden[0], episodes), _select_states(hidden[1], episodes)),
                masks=masks[:, episodes],
            )

    def _start_states(self, which: str, env: torch.Tensor, step: torch.Tensor) -> list[torch.Tensor] | None:
        """Model ``which``'s (``"a"`` actor/student, ``"c"`` critic) state at every episode start, ``[layers, E, H]``
        per part: the recorded per-step states if transitions brought them, else ours from ``hidden0`` -- the
        rollout's start state for episodes starting at step 0, zeros for the others (a state is zeroed at a done)."""
        saved = self.saved_hidden_state_a if which == "a" else self.saved_hidden_state_c
        if saved is not None:
            return [h[step, :, env].transpose(0, 1) for h in saved]  # [T, layers, N, H] -> [layers, E, H]
        hidden0: dict[str, tuple[torch.Tensor, ...]] = getattr(self, "hidden0", {})
        names = ("actor", "student") if which == "a" else ("critic",)
        state = next((hidden0[name] for name in names if name in hidden0), ())
        if not state:
            return None
        at_rollout_start = (step == 0).view(1, -1, 1)
        return [torch.where(at_rollout_start, h[:, env], 0.0) for h in state]


def _select_states(states: list[torch.Tensor] | None, episodes: torch.Tensor) -> HiddenState:
    """The chosen episodes' start states as rsl-rl-lib passes them: a GRU's tensor, an LSTM's pair, or None."""
    if states is None:
        return None
    chosen = [h[:, episodes].contiguous() for h in states]
    return chosen[0] if len(chosen) == 1 else (chosen[0], chosen[1])


def _checked_training_type(training_type: str) -> str:
    if training_type not in TRAINING_TYPES:
        raise ValueError(f"training_type={training_type!r}; allowed: {list(TRAINING_TYPES)}")
    return training_type
