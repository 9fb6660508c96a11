"""Rollout storage preallocated on the device.

Plain tensors ``[T, N, ...]`` rather than a TensorDict. The storage keeps the *concatenated* model inputs (one
``[T, N, D]`` tensor per model) instead of the env's observation groups, so a mini-batch is one row gather per model
and no group concatenation happens inside the update. Measured on 2 CPU cores (4096 envs, obs 48): writing a step is
~13 µs as a slice copy vs ~18 µs through TensorDict ``__setitem__``; either is negligible, the layout is what counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import torch
from tensordict import TensorDict

from rsl_rl.storage.rsl_rl_lib_storage import RslRlLibStorage


class RolloutStorage(RslRlLibStorage):
    """Transitions of ``num_steps`` steps of ``num_envs`` envs.

    ``obs[name]`` holds the flat model inputs (``"actor"``, ``"critic"``) as the env returned them (unnormalised). When
    the critic reads the same observation groups as the actor, both names point at one tensor.

    rsl-rl-lib's interface (``add_transition``, the ``Batch`` generators, its attribute names) comes from
    :class:`~rsl_rl.storage.rsl_rl_lib_storage.RslRlLibStorage`, and so does its constructor form.
    """

    @overload
    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_dims: dict[str, int],
        num_actions: int,
        device: torch.device | str,
        shared_obs: dict[str, str] | None = None,
        training_type: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        training_type: str,
        num_envs: int,
        num_transitions_per_env: int,
        obs: TensorDict,
        actions_shape: Sequence[int],
        device: torch.device | str = "cpu",
    ) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Ours: ``(num_steps, num_envs, obs_dims, num_actions, device, shared_obs=None, training_type=None)``.
        rsl-rl-lib's: ``(training_type, num_envs, num_transitions_per_env, obs, actions_shape, device="cpu")``,
        recognised by its first argument, a string (``"rl"`` or ``"distillation"``), or by the keyword
        ``num_transitions_per_env``. One class serves both so that code written for either constructs it unchanged.
        """
        if (args and isinstance(args[0], str)) or "num_transitions_per_env" in kwargs:
            self._init_rsl_rl_lib(*args, **kwargs)
        else:
            self._init_buffers(*args, **kwargs)

    def _init_buffers(
        self,
        num_steps: int,
        num_envs: int,
        obs_dims: dict[str, int],
        num_actions: int,
        device: torch.device | str,
        shared_obs: dict[str, str] | None = None,
        training_type: str | None = None,
    ) -> None:
        """Our layout; ``training_type`` (None: inferred) only names what rsl-rl-lib's interface serves."""
        self.num_steps, self.num_envs, self.device = num_steps, num_envs, torch.device(device)
        t, n = num_steps, num_envs

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=device)

        self.obs: dict[str, torch.Tensor] = {name: zeros(t, n, d) for name, d in obs_dims.items()}
        for alias, target in (shared_obs or {}).items():
            self.obs[alias] = self.obs[target]
        self.actions = zeros(t, n, num_actions)
        self.action_mean = zeros(t, n, num_actions)
        self.action_std = zeros(t, n, num_actions)
        self.log_prob = zeros(t, n)
        self.values = zeros(t, n)
        self.rewards = zeros(t, n)
        self.dones = zeros(t, n, dtype=torch.bool)
        self.returns = zeros(t, n)
        self.advantages = zeros(t, n)
        self.step = 0
        self._link_rsl_rl_lib_names(training_type)

    def clear(self) -> None:
        self.step = 0

    def flat(self, tensor: torch.Tensor) -> torch.Tensor:
        """View ``[T, N, ...]`` as ``[T·N, ...]``."""
        return tensor.view(self.num_steps * self.num_envs, *tensor.shape[2:])

    def pack(self, names: list[str]) -> tuple[torch.Tensor, dict[str, slice]]:
        """Concatenate the named per-sample fields into one ``[T·N, K]`` table; returns it and each field's columns.

        Names: ``"actor"``, ``"critic"`` (observations) or any ``[T, N]`` / ``[T, N, D]`` attribute.
        """
        parts, columns, start = [], {}, 0
        for name in names:
            tensor = self.obs[name] if name in self.obs else getattr(self, name)
            flat = self.flat(tensor).float()
            flat = flat.unsqueeze(-1) if flat.dim() == 1 else flat
            columns[name] = slice(start, start + flat.shape[1])
            start += flat.shape[1]
            parts.append(flat)
        return torch.cat(parts, dim=1), columns

    def mini_batches(self, num_mini_batches: int, num_epochs: int) -> list[torch.Tensor]:
        """Row indices of every mini-batch: a fresh permutation per epoch, cut into equal parts.

        Rows beyond ``num_mini_batches · (T·N // num_mini_batches)`` are left out of that epoch.
        """
        total = self.num_steps * self.num_envs
        size = total // num_mini_batches
        batches = []
        for _ in range(num_epochs):
            perm = torch.randperm(total, device=self.device)
            batches += [perm[i * size : (i + 1) * size] for i in range(num_mini_batches)]
        return batches

    def env_mini_batches(self, num_mini_batches: int, num_epochs: int) -> list[torch.Tensor]:
        """Env indices of every mini-batch: a fresh permutation of the envs per epoch, cut into equal parts."""
        size = self.num_envs // num_mini_batches
        batches = []
        for _ in range(num_epochs):
            perm = torch.randperm(self.num_envs, device=self.device)
            batches += [perm[i * size : (i + 1) * size] for i in range(num_mini_batches)]
        return batches


class RecurrentRolloutStorage(RolloutStorage):
    """A rollout of recurrent models: the hidden states at the rollout's start plus the done masks; updates take
    mini-batches of whole env trajectories (:meth:`env_mini_batches`: truncated BPTT over the rollout's steps).

    The hidden state of step t is not stored: it is recomputed from ``hidden0`` and ``dones`` during the update.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden0: dict[str, tuple[torch.Tensor, ...]] = {}

    def save_hidden(self, hidden: dict[str, tuple[torch.Tensor, ...]]) -> None:
        """Record each model's hidden state at the rollout's first step (``[layers, N, H]`` each)."""
        self.hidden0 = {name: tuple(h.clone() for h in state) for name, state in hidden.items()}
