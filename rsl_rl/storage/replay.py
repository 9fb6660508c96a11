"""Replay storage for off-policy learning on batched envs, preallocated on the env's device.

Layout ``[capacity_per_env, num_envs, ...]``: every env owns one column, written one row per step as a ring, so the
``n`` consecutive steps of an n-step return are consecutive rows of one column. Stored per step ``t``: the observation
sets (``actor``, and ``critic`` when the critic reads other groups) as a TensorDict, the squashed action ``u_t``, the
reward, ``terminated`` and ``truncated``, and -- for steps that ended an episode -- the observation reached before the
automatic reset (``final_obs``), from which a time-out is bootstrapped. Rows are addressed by *logical* step
``τ`` (0, 1, 2, … since the start); step ``τ`` lives in row ``τ mod capacity``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from tensordict import TensorDict


def available_memory(device: torch.device) -> int:
    """Bytes a new allocation can take: free GPU memory, or the machine's available RAM on a CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # neither Linux nor POSIX: no check
        return 1 << 62


class ReplayStorage:
    """Ring buffer of transitions, one column per env; n-step windows are sampled uniformly over complete ones."""

    def __init__(
        self,
        capacity_per_env: int,
        num_envs: int,
        obs_dims: dict[str, int],
        num_actions: int,
        device: torch.device | str = "cpu",
        verbose: bool = True,
    ) -> None:
        if capacity_per_env < 2 or num_envs < 1:
            raise ValueError(
                f"replay needs capacity_per_env >= 2 and num_envs >= 1, got {capacity_per_env}, {num_envs}"
            )
        self.capacity = int(capacity_per_env)
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.obs_dims = dict(obs_dims)
        per_step = 4 * (2 * sum(obs_dims.values()) + num_actions + 1) + 2  # float32 obs ×2 (final), action, reward
        need = per_step * self.capacity * self.num_envs
        free = available_memory(self.device)
        message = (
            f"replay: {self.capacity:,} steps × {self.num_envs:,} envs = {self.capacity * self.num_envs:,} transitions,"
            f" {need / 2**30:.2f} GiB on {self.device}"
        )
        if need > free:
            raise MemoryError(
                f"{message}, but only {free / 2**30:.2f} GiB are free: lower algorithm.replay_capacity (steps per env) "
                "or the number of envs"
            )
        if verbose:
            print(message, file=sys.stderr)
        c, n = self.capacity, self.num_envs
        kw: dict[str, Any] = {"device": self.device}
        self.obs = TensorDict({k: torch.zeros(c, n, d, **kw) for k, d in obs_dims.items()}, batch_size=[c, n], **kw)
        self.final_obs = TensorDict(
            {k: torch.zeros(c, n, d, **kw) for k, d in obs_dims.items()}, batch_size=[c, n], **kw
        )
        self.actions = torch.zeros(c, n, num_actions, **kw)
        self.rewards = torch.zeros(c, n, **kw)
        self.terminated = torch.zeros(c, n, dtype=torch.bool, **kw)
        self.truncated = torch.zeros(c, n, dtype=torch.bool, **kw)
        self._obs_finite = torch.ones(n, dtype=torch.bool, device=self.device)
        self.step = 0
        """Steps written per env since the start (a host int: sampling needs no device sync)."""
        self._env_index = torch.arange(n, device=self.device)

    @property
    def row(self) -> int:
        """Row the current step is written to."""
        return self.step % self.capacity

    @property
    def size(self) -> int:
        """Stored steps per env."""
        return min(self.step, self.capacity)

    def add_observation(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """First half of step ``t``: the observation sets to act on; returns them as stored (non-finite entries
        zeroed), which is what the policy should act on."""
        r = self.row
        finite = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        for key, value in obs.items():
            # A non-finite observation would poison every batch that samples it for as long as it stays stored:
            # it is stored as zeros, and the step as a termination (add_outcome).
            finite &= torch.isfinite(value).all(-1)
            torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0, out=self.obs[key][r])
        self._obs_finite = finite
        return {key: self.obs[key][r] for key in obs}

    def add_action(self, actions: torch.Tensor) -> None:
        """The squashed actions ``[N, A]`` taken at step ``t``."""
        self.actions[self.row].copy_(actions)

    def add_outcome(
        self,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        final_obs: dict[str, torch.Tensor] | None,
    ) -> None:
        """Second half of step ``t``: reward, episode ends and, where one ended, the final observations; advance."""
        r = self.row
        # A step whose reward or observation is not finite is stored as a terminated step with reward 0: nothing
        # non-finite enters the replay, and no target bootstraps through it.
        done = terminated | truncated
        finite = torch.isfinite(rewards) & self._obs_finite
        if final_obs is not None:
            for key, value in final_obs.items():
                # torch.where: rows of envs that did not finish may hold anything, NaN included.
                finite &= torch.isfinite(value).all(-1) | ~done
                clean = torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)
                self.final_obs[key][r].copy_(torch.where(done.unsqueeze(-1), clean, 0.0))
        self.rewards[r].copy_(torch.where(finite, rewards, 0.0))
        self.terminated[r].copy_(terminated | ~finite)
        self.truncated[r].copy_(truncated & ~self.terminated[r])
        self.step += 1

    def num_windows(self, n: int) -> int:
        """Complete n-step windows per env: start ``τ`` with every step up to ``τ + n`` observed and not overwritten."""
        oldest = max(0, self.step - self.capacity)
        return max(0, self.step - n - oldest)

    def sample(self, batch_size: int, n: int, gamma: float) -> dict[str, Any]:
        """``batch_size`` uniform n-step windows (env and start drawn on the device; no host sync).

        Returns ``obs`` (observation set → ``[B, D]``), ``actions [B, A]``, ``returns [B]``, ``discounts [B]`` and
        ``next_obs`` (set → ``[B, D]``): the final observation of the step that ended the window's episode, else the
        observation after its ``n``-th step.
        """
        # Imported here: rsl_rl.algorithms imports this module (SAC), so a module-level import would make
        # `from rsl_rl.storage import ...` as a program's first import circular.
        from rsl_rl.algorithms.losses import n_step_returns

        count = self.num_windows(n)
        if count < 1:
            raise RuntimeError(f"replay holds no complete {n}-step window yet ({self.step} steps stored per env)")
        oldest = max(0, self.step - self.capacity)
        start = oldest + torch.randint(count, (batch_size,), device=self.device)
        env = torch.randint(self.num_envs, (batch_size,), device=self.device)
        rows = (start.unsqueeze(0) + torch.arange(n + 1, device=self.device).unsqueeze(1)) % self.capacity  # [n+1, B]
        window = rows[:n]
        returns, discounts, end, ended = n_step_returns(
            self.rewards[window, env], self.terminated[window, env], self.truncated[window, env], gamma
        )
        first = rows[0]
        end_row = rows.gather(0, end.unsqueeze(0)).squeeze(0)
        next_obs = {}
        for key in self.obs_dims:
            after = self.obs[key][rows[n], env]
            final = self.final_obs[key][end_row, env]
            next_obs[key] = torch.where(ended.unsqueeze(-1), final, after)
        return {
            "obs": {key: self.obs[key][first, env] for key in self.obs_dims},
            "actions": self.actions[first, env],
            "returns": returns,
            "discounts": discounts,
            "next_obs": next_obs,
        }

    def recent(self, steps: int) -> dict[str, torch.Tensor]:
        """The observation sets of the last ``steps`` steps, ``[steps·N, D]`` each (for the normalisers)."""
        rows = torch.arange(self.step - steps, self.step, device=self.device) % self.capacity
        return {key: self.obs[key][rows].reshape(-1, d) for key, d in self.obs_dims.items()}

    def state_dict(self) -> dict[str, Any]:
        """Every stored tensor and the step counter (for an exact resume with the replay)."""
        return {
            "step": self.step,
            "capacity": self.capacity,
            "obs": self.obs.to_dict(),
            "final_obs": self.final_obs.to_dict(),
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "truncated": self.truncated,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity or state["rewards"].shape != self.rewards.shape:
            raise ValueError(
                f"the checkpoint's replay is {tuple(state['rewards'].shape)} (steps × envs); this run's is "
                f"{tuple(self.rewards.shape)}: resume with the same replay_capacity and number of envs"
            )
        for key in self.obs_dims:
            self.obs[key].copy_(state["obs"][key])
            self.final_obs[key].copy_(state["final_obs"][key])
        for name in ("actions", "rewards", "terminated", "truncated"):
            getattr(self, name).copy_(state[name])
        self.step = int(state["step"])

    def clear(self) -> None:
        """Forget every stored step (the buffers are kept)."""
        self.step = 0
