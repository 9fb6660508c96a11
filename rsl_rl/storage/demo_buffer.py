"""Demonstration and intervention buffer for RLPD's symmetric sampling, on the learner's device.

It holds what the replay (``replay.py``) holds -- observation sets (``actor``, and ``critic`` when the critic reads
other groups), squashed actions ``u``, rewards, ``terminated``/``truncated`` -- as one column of transitions, and it
samples the same n-step windows with the same semantics: a window stops at the first step that ends its episode; a
termination bootstraps nothing, a truncation bootstraps from the observation that step reached. Unlike the replay it
keeps that observation (``next_obs``) for every row, since its rows do not all come from one env in order.

Rows ``[0, num_fixed)`` are a demo file's episodes in order; every episode's last step ends it (one recorded without
either flag -- cut short -- is stored as truncated). Rows ``[num_fixed, num_fixed + ring_capacity)`` are a ring of
intervention transitions (HIL-SERL: an override of the policy's action is stored here *and* in the online replay).
Transitions of parallel envs arrive interleaved, so each is stored as a one-step segment (truncated unless it
terminated): its window is the one-step target. Writes and draws never wait for the device: the ring's fill is a device
counter, and envs that did not intervene write to a spare row that is never sampled.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict


class DemoBuffer:
    """Fixed demonstration episodes followed by a ring of intervention transitions; uniform n-step window draws."""

    def __init__(
        self,
        obs: dict[str, torch.Tensor],
        next_obs: dict[str, torch.Tensor],
        actions: torch.Tensor,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        episode_end: torch.Tensor,
        intervention: torch.Tensor,
        ring_capacity: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        """The fixed rows: observation sets ``[T, D]``, squashed actions ``[T, A]``, ``rewards``, ``terminated``,
        ``truncated``, ``episode_end`` (last step of its episode) and ``intervention`` marks ``[T]``.
        ``ring_capacity`` more rows are kept for :meth:`add_transitions`."""
        self.device = torch.device(device)
        self.num_fixed = int(rewards.shape[0])
        self.ring_capacity = int(ring_capacity)
        if self.num_fixed < 1:
            raise ValueError("the demo buffer needs at least one demonstration step")
        rows = self.num_fixed + self.ring_capacity + 1  # + a spare row that masked-out writes land in
        self.spare = rows - 1
        kw: dict[str, Any] = {"device": self.device}
        self.obs_dims = {key: int(value.shape[-1]) for key, value in obs.items()}
        self.obs = TensorDict({k: torch.zeros(rows, d, **kw) for k, d in self.obs_dims.items()}, batch_size=[rows])
        self.next_obs = TensorDict({k: torch.zeros(rows, d, **kw) for k, d in self.obs_dims.items()}, batch_size=[rows])
        self.actions = torch.zeros(rows, actions.shape[-1], **kw)
        self.rewards = torch.zeros(rows, **kw)
        self.terminated = torch.zeros(rows, dtype=torch.bool, **kw)
        self.truncated = torch.zeros(rows, dtype=torch.bool, **kw)
        self.intervention = torch.zeros(rows, dtype=torch.bool, **kw)
        fixed = slice(0, self.num_fixed)
        for key in self.obs_dims:
            self.obs[key][fixed] = obs[key].to(self.device, torch.float32)
            self.next_obs[key][fixed] = next_obs[key].to(self.device, torch.float32)
        self.actions[fixed] = actions.to(self.device, torch.float32)
        self.rewards[fixed] = rewards.to(self.device, torch.float32)
        terminated = terminated.to(self.device, torch.bool)
        self.terminated[fixed] = terminated
        # An episode's last step always ends its windows: a time-out, or a recording cut short, bootstraps from its
        # next_obs; nothing bootstraps into the next episode's first step.
        self.truncated[fixed] = (truncated.to(self.device, torch.bool) | episode_end.to(self.device)) & ~terminated
        self.intervention[fixed] = intervention.to(self.device, torch.bool)
        self.ring_written = torch.zeros((), dtype=torch.long, **kw)
        """Intervention transitions written since the start (a device counter: writing needs no host sync)."""

    @property
    def count(self) -> torch.Tensor:
        """Rows that hold a transition (device scalar)."""
        return self.num_fixed + torch.clamp(self.ring_written, max=self.ring_capacity)

    def add_transitions(
        self,
        mask: torch.Tensor,
        obs: dict[str, torch.Tensor],
        next_obs: dict[str, torch.Tensor],
        actions: torch.Tensor,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """Store the transitions of the envs where ``mask`` ``[N]`` is set, as intervention rows: observation sets
        ``[N, D]``, the next observation (before an automatic reset), squashed actions ``[N, A]``, ``rewards`` and
        ``terminated`` ``[N]``. Non-finite values are stored as a termination with reward 0, as the replay does."""
        if self.ring_capacity < mask.shape[0]:
            raise ValueError(
                f"the demo buffer keeps {self.ring_capacity} intervention rows, fewer than the {mask.shape[0]} envs "
                "that may intervene at once: raise algorithm.demo_capacity"
            )
        mask = mask.to(torch.bool)
        # Masked envs take consecutive ring slots in env order; the others write to the spare row.
        slot = self.num_fixed + (self.ring_written + torch.cumsum(mask.long(), 0) - 1) % self.ring_capacity
        rows = torch.where(mask, slot, self.spare)
        finite = torch.isfinite(rewards)
        for key in self.obs_dims:
            finite &= torch.isfinite(obs[key]).all(-1) & torch.isfinite(next_obs[key]).all(-1)
            self.obs[key][rows] = torch.nan_to_num(obs[key], nan=0.0, posinf=0.0, neginf=0.0)
            self.next_obs[key][rows] = torch.nan_to_num(next_obs[key], nan=0.0, posinf=0.0, neginf=0.0)
        self.actions[rows] = actions.float()
        self.rewards[rows] = torch.where(finite, rewards.float(), 0.0)
        ended = terminated.to(torch.bool) | ~finite
        self.terminated[rows] = ended
        self.truncated[rows] = ~ended  # a one-step segment: bootstrap from its next observation
        self.intervention[rows] = True
        self.ring_written += mask.sum()

    def windows(self, start: torch.Tensor, n: int, gamma: float) -> dict[str, Any]:
        """The n-step windows starting at rows ``start`` ``[B]``: ``obs``, ``actions``, ``returns``, ``discounts``,
        ``next_obs`` as :meth:`ReplayStorage.sample` returns them, and the rows' ``intervention`` marks."""
        from rsl_rl.algorithms.losses import n_step_returns  # rsl_rl.algorithms imports the storage package

        rows = (start.unsqueeze(0) + torch.arange(n, device=self.device).unsqueeze(1)).clamp(max=self.spare)  # [n, B]
        returns, discounts, end, _ = n_step_returns(
            self.rewards[rows], self.terminated[rows], self.truncated[rows], gamma
        )
        last = rows.gather(0, end.unsqueeze(0)).squeeze(0)  # the step that ended the window, else its n-th
        return {
            "obs": {key: self.obs[key][start] for key in self.obs_dims},
            "actions": self.actions[start],
            "returns": returns,
            "discounts": discounts,
            "next_obs": {key: self.next_obs[key][last] for key in self.obs_dims},
            "intervention": self.intervention[start],
        }

    def sample(self, batch_size: int, n: int, gamma: float) -> dict[str, Any]:
        """``batch_size`` windows with starts drawn uniformly over the stored rows (on the device, no host sync)."""
        count = self.count
        start = torch.minimum((torch.rand(batch_size, device=self.device) * count).long(), count - 1)
        return self.windows(start, n, gamma)

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_fixed": self.num_fixed,
            "ring_capacity": self.ring_capacity,
            "ring_written": self.ring_written.clone(),
            "obs": self.obs.to_dict(),
            "next_obs": self.next_obs.to_dict(),
            **{name: getattr(self, name) for name in ("actions", "rewards", "terminated", "truncated", "intervention")},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (int(state["num_fixed"]), int(state["ring_capacity"])) != (self.num_fixed, self.ring_capacity):
            raise ValueError(
                f"the checkpoint's demo buffer holds {state['num_fixed']} demo steps and {state['ring_capacity']} "
                f"intervention rows; this run's {self.num_fixed} and {self.ring_capacity}: resume with the same demo "
                "file and algorithm.demo_capacity"
            )
        for key in self.obs_dims:
            self.obs[key].copy_(state["obs"][key])
            self.next_obs[key].copy_(state["next_obs"][key])
        for name in ("actions", "rewards", "terminated", "truncated", "intervention"):
            getattr(self, name).copy_(state[name])
        self.ring_written.copy_(state["ring_written"])
