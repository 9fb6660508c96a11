"""Two-player adversarial training (RARL, Pinto et al. 2017): a PPO protagonist against a PPO or SAC adversary that
maximises −r, on an env whose action is ``[protagonist columns, adversary columns]`` (``tasks/wrappers/adversary.py``:
forces on bodies, or physical parameters mapped from [−1, 1]; the adversary's columns are the last ones).

Every collected step both players act on the same observation, the env steps with the concatenation, the protagonist
stores r and the adversary −r (``extras["adversary_reward"]`` when the env reports it), each in its own rollout storage
or replay, with the single-player runners' termination/truncation handling. Two schedules (:class:`AdversarialConfig`):

* ``alternating`` (RARL): ``protagonist_iterations`` iterations update only the protagonist while the adversary acts
  with frozen parameters, then ``adversary_iterations`` update only the adversary against the frozen protagonist;
  repeat. A frozen player still acts (stochastically, as RARL's rollouts do); its rollout is dropped (PPO) or kept in
  its replay for later updates (SAC), and nothing of it changes, normalisers included.
* ``simultaneous``: both update every iteration.

The protagonist is this runner's own algorithm, so logging (TensorBoard, progress bar, ``curves.png``,
``summary.json``), deterministic evaluation (of the protagonist alone, on a nominal ``eval_env`` without adversary),
checkpoints, exact resume and export are :class:`OnPolicyRunner`'s. The adversary is a second runner
(``self.adversary``, :class:`OnPolicyRunner` or :class:`OffPolicyRunner`) on a view of the env that shows only its own
action columns: it contributes its algorithm, per-step storage, update and statistics (logged under ``Adversary/``).
A checkpoint holds the protagonist under rsl_rl's keys, where ``rsl-rl play`` and ``export`` read it, plus an
``adversary`` entry: the adversary's algorithm state and config, its episode sums, the mode and the phase counters.

``max_iterations`` and the iteration counter (checkpoint names, the logger's step) count every iteration, whichever
player updates in it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult
from rsl_rl.runners.config import RunnerConfig, SACTrainConfig, TrainConfig, train_config_from_dict
from rsl_rl.runners.off_policy import OffPolicyRunner
from rsl_rl.runners.on_policy_runner import OnPolicyRunner, build_ppo

MODES = ("alternating", "simultaneous")
PHASES = ("protagonist", "adversary")
# Run-level entries of the adversary's iteration record: the protagonist's record already holds them.
_RUN_KEYS = frozenset(
    {
        "env_steps",
        "wall_seconds",
        "collection_time",
        "learning_time",
        "steps_per_second",
        "episodes",
        "nonfinite",
        "mean_episode_length",
    }
)


@dataclass
class AdversarialConfig:
    """The two-player schedule."""

    mode: str = "alternating"
    """``"alternating"`` (RARL: the players take turns, each updating for its number of iterations while the other is
    frozen) or ``"simultaneous"`` (both update every iteration)."""
    protagonist_iterations: int = 1
    """Alternating: iterations of a protagonist phase."""
    adversary_iterations: int = 1
    """Alternating: iterations of an adversary phase."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"adversarial mode={self.mode!r}; allowed: {list(MODES)}")
        for name in ("protagonist_iterations", "adversary_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class AdversaryView(Env):
    """The env as the adversary's runner sees it: the same observations and episodes, its own ``dims`` action columns
    with the env's bounds of those columns ([−1, 1] for the force and parameter adversaries, which map them onto
    forces or parameter ranges; [−1, 1] too when the env declares none). The adversarial runner steps the real env
    with both players' actions, so the view itself is never stepped or reset."""

    def __init__(self, env: Env, dims: int) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = dims
        self.device = env.device
        self.max_episode_length = env.max_episode_length
        self.step_dt = getattr(env, "step_dt", 0.0)
        self.cfg = getattr(env, "cfg", None)

    def reset(self) -> TensorDict:
        raise RuntimeError("the adversary's view of the env is not reset: the adversarial runner resets the env")

    def step(self, actions: torch.Tensor) -> StepResult:
        raise RuntimeError("the adversary's view of the env is not stepped: the adversarial runner steps the env")

    def get_observations(self) -> TensorDict:
        return self.env.get_observations()

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        declared = self.env.action_bounds()
        if declared is not None:
            return declared[0][-self.num_actions :], declared[1][-self.num_actions :]
        ones = torch.ones(self.num_actions, device=self.device)
        return -ones, ones


class AdversarialRunner(OnPolicyRunner):
    """Train a PPO protagonist against an adversary (PPO or SAC) that maximises −r."""

    def __init__(
        self,
        env: Any,
        train_cfg: dict[str, Any] | TrainConfig,
        adversary_cfg: dict[str, Any] | TrainConfig | SACTrainConfig,
        log_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        eval_env: Env | None = None,
        show_progress: bool = True,
        schedule: AdversarialConfig | None = None,
        adversary_dims: int | None = None,
    ) -> None:
        """``env``: actions ``[protagonist, adversary]``; ``adversary_dims`` (default ``env.adversary_dims``, which the
        adversary wrappers set) is the width of the adversary's last columns. ``eval_env``: the nominal task, where
        the protagonist is evaluated alone. ``adversary_cfg``: the adversary's training config. An iteration collects
        the protagonist's ``num_steps_per_env`` steps of every env: a PPO adversary's rollout has that length, and a
        SAC adversary keeps its ratio of gradient steps to collected steps (``algorithm.num_updates`` per its
        ``num_steps_per_env``: with 4 per step and 64 steps per iteration, 256 per iteration)."""
        dims = adversary_dims if adversary_dims is not None else getattr(env, "adversary_dims", None)
        if dims is None or not 0 < int(dims) < int(env.num_actions):
            raise ValueError(
                f"adversary_dims={dims}: the env's last adversary_dims of its {env.num_actions} action columns must be "
                "the adversary's (wrap the task in DynamicAdversary or ForceAdversary, or pass adversary_dims)"
            )
        self.adversary_dims = int(dims)
        self.schedule = schedule or AdversarialConfig()
        cfg = train_cfg if isinstance(train_cfg, RunnerConfig) else train_config_from_dict(train_cfg)
        if not isinstance(cfg, TrainConfig):
            raise ValueError(
                "the protagonist trains with PPO: train_cfg must be a PPO config (the adversary may be SAC)"
            )
        super().__init__(env, cfg, log_dir, device, eval_env, show_progress)
        self.cfg = train_cfg
        self.adversary = self._build_adversary(adversary_cfg)
        self.phase = "protagonist"
        """The player that updates in an alternating phase."""
        self.phase_iteration = 0
        """Iterations completed in the current phase."""
        self.phases_completed = 0
        """Alternating phases completed (switches so far)."""
        self.updates = dict.fromkeys(PHASES, 0)
        """Iterations in which each player updated."""
        self._updated = (True, True)
        self._adversary_stats: dict[str, torch.Tensor] = {}
        self.logger.config["adversary"] = self._adversary_record()
        self.logger.loss_curves = (*self.logger.loss_curves, "Adversary/" + self.adversary.alg.loss_keys[0])

    def _build_algorithm(self, obs: TensorDict) -> Any:
        """The protagonist's PPO: it acts on the first ``num_actions − adversary_dims`` columns."""
        num_actions = self._env.num_actions - self.adversary_dims
        alg = build_ppo(obs, self._env.num_envs, num_actions, self.train_cfg, self.torch_device, self.env)
        self.obs_groups = alg.obs_groups
        return alg

    def _build_adversary(self, adversary_cfg: dict[str, Any] | RunnerConfig) -> OnPolicyRunner:
        """The adversary's runner on the adversary's view of the env (built after the protagonist: the same seed gives
        the protagonist the initial weights of a single-player run)."""
        cfg = copy.deepcopy(adversary_cfg)
        cfg = cfg if isinstance(cfg, RunnerConfig) else train_config_from_dict(cfg)
        cfg.logger = "none"  # it logs through this runner, under Adversary/
        view = AdversaryView(self._env, self.adversary_dims)
        steps = self.train_cfg.num_steps_per_env
        if isinstance(cfg, SACTrainConfig):
            # An iteration collects the protagonist's steps: keep the config's gradient steps per collected step (its
            # num_updates per num_steps_per_env). Bounded by the view's action_bounds() unless the config sets them.
            cfg.algorithm.num_updates = max(1, round(cfg.algorithm.num_updates * steps / cfg.num_steps_per_env))
            cfg.num_steps_per_env = steps
            return OffPolicyRunner(view, cfg, None, self.device, show_progress=False)
        cfg.num_steps_per_env = steps  # one rollout of the same steps as the protagonist's
        return OnPolicyRunner(view, cfg, None, self.device, show_progress=False)

    # --- training ----------------------------------------------------------------------------------------------------

    def learn(self, num_learning_iterations: int | None = None, init_at_random_ep_len: bool = False) -> None:
        """:meth:`OnPolicyRunner.learn` with both players; the iterations count every iteration of either phase."""
        self.adversary.alg.train_mode()
        super().learn(num_learning_iterations, init_at_random_ep_len)

    def updating(self) -> tuple[bool, bool]:
        """Whether the protagonist and the adversary update in the current iteration."""
        if self.schedule.mode == "simultaneous":
            return True, True
        return self.phase == "protagonist", self.phase == "adversary"

    def _act(self, obs: TensorDict) -> torch.Tensor:
        # Both players act on the same observation; the adversary's columns come last (the wrappers' convention).
        return torch.cat([self.alg.act(obs), self.adversary.alg.act(obs)], dim=-1)

    def _process_env_step(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        extras: dict[str, Any],
    ) -> None:
        super()._process_env_step(obs, rewards, terminated, truncated, extras)
        adversary_rewards = extras.get("adversary_reward")
        if adversary_rewards is None:
            adversary_rewards = -rewards  # zero-sum: the adversary maximises −r
        # Only what the adversary's storage needs (the env's episode/log terms are the protagonist's to track); its
        # per-step mean reward rides along as a logged scalar, moved to the host with the adversary's statistics.
        own = {"log": {"Adversary/mean_reward": adversary_rewards}}
        if "final_obs" in extras:
            own["final_obs"] = extras["final_obs"]
        self.adversary._process_env_step(obs, adversary_rewards, terminated, truncated, own)

    def _end_collection(self, obs: TensorDict) -> None:
        protagonist, adversary = self.updating()
        if protagonist:
            super()._end_collection(obs)
        if adversary:
            self.adversary._end_collection(obs)

    def _update(self) -> dict[str, torch.Tensor]:
        """Update the scheduled player(s), drop a frozen PPO player's rollout, then advance the schedule."""
        self._updated = protagonist, adversary = self.updating()
        stats = self.alg.update() if protagonist else _skip_update(self)
        self._adversary_stats = self.adversary.alg.update() if adversary else _skip_update(self.adversary)
        for player, updated in zip(PHASES, self._updated, strict=True):
            self.updates[player] += int(updated)
        self._advance_schedule()
        return stats

    def _advance_schedule(self) -> None:
        if self.schedule.mode == "simultaneous":
            return
        self.phase_iteration += 1
        length = (
            self.schedule.protagonist_iterations if self.phase == "protagonist" else self.schedule.adversary_iterations
        )
        if self.phase_iteration >= length:
            self.phase = "adversary" if self.phase == "protagonist" else "protagonist"
            self.phase_iteration = 0
            self.phases_completed += 1

    def _iteration_record(
        self, stats: dict[str, torch.Tensor], collect_s: float, learn_s: float, steps: int
    ) -> dict[str, float]:
        """The protagonist's record (no losses in an iteration it was frozen) plus the adversary's under
        ``Adversary/``: its losses, mean reward (per step) and mean return (per episode) of −r, and the phase."""
        protagonist, adversary = self._updated
        if protagonist:
            record = super()._iteration_record(stats, collect_s, learn_s, steps)
        else:
            # The record checks the algorithm's loss statistics: placeholders, taken out again (it did not update).
            placeholders = {name: torch.zeros(()) for name in self.alg.loss_keys}
            record = super()._iteration_record(placeholders, collect_s, learn_s, steps)
            for name in placeholders:
                record.pop(name)
                record.pop(f"Loss/{name}", None)
        if adversary:
            own = self.adversary._iteration_record(self._adversary_stats, collect_s, learn_s, steps)
        else:  # frozen: its episode statistics only
            own = {**self.adversary._tracker.collect(), **self.adversary._algorithm_record()}
        for key, value in own.items():
            if key not in _RUN_KEYS and not key.startswith("Perf/"):
                record[key if key.startswith("Adversary/") else f"Adversary/{key}"] = value
        record.update(
            {
                # 0: the protagonist updated, 1: the adversary, 0.5: both (simultaneous).
                "Adversary/phase": 0.5 if protagonist and adversary else float(adversary),
                "Adversary/phases_completed": float(self.phases_completed),
                "Adversary/protagonist_updates": float(self.updates["protagonist"]),
                "Adversary/adversary_updates": float(self.updates["adversary"]),
            }
        )
        return record

    # --- persistence -------------------------------------------------------------------------------------------------

    def _adversary_record(self) -> dict[str, Any]:
        """The adversary's settings (``config.json``, checkpoints)."""
        return {
            "algorithm": "SAC" if isinstance(self.adversary, OffPolicyRunner) else "PPO",
            "dims": self.adversary_dims,
            "schedule": asdict(self.schedule),
            "config": self.adversary.train_cfg.to_dict(),
            "obs_groups": self.adversary.obs_groups,
        }

    def _checkpoint_state(self, infos: dict[str, Any] | None) -> dict[str, Any]:
        """The protagonist's checkpoint (rsl_rl's keys) plus ``adversary``: the adversary's algorithm state (model,
        optimiser, counters), config, episode sums, the mode and the phase counters."""
        state = super()._checkpoint_state(infos)
        state["adversary"] = {
            **self._adversary_record(),
            "state": self.adversary.alg.state_dict(),
            "episode_running": self.adversary._tracker.running.clone(),
            "phase": {
                "phase": self.phase,
                "phase_iteration": self.phase_iteration,
                "phases_completed": self.phases_completed,
                "updates": dict(self.updates),
            },
        }
        return state

    def _load_state(self, state: dict[str, Any], load_cfg: dict[str, bool] | None, strict: bool) -> None:
        """The protagonist as :meth:`OnPolicyRunner.load` restores it; the adversary, its episode sums and the phase
        counters from the ``adversary`` entry (a single-player checkpoint starts the adversary afresh)."""
        super()._load_state(state, load_cfg, strict)
        saved = state.get("adversary")
        if saved is None:
            return
        ours = self._adversary_record()["algorithm"]
        if saved["algorithm"] != ours:
            raise ValueError(f"the checkpoint's adversary trains with {saved['algorithm']}, this runner's with {ours}")
        load_cfg = dict(load_cfg if load_cfg is not None else self.alg.default_load_cfg(state))
        restore_env = bool(load_cfg.get("iteration", False) and state.get("env_state"))
        self.adversary.alg.load_state_dict(saved["state"], {**load_cfg, "memory": restore_env}, strict)
        if load_cfg.get("iteration", False):
            phase = saved["phase"]
            self.phase = str(phase["phase"])
            self.phase_iteration = int(phase["phase_iteration"])
            self.phases_completed = int(phase["phases_completed"])
            self.updates = {player: int(phase["updates"][player]) for player in PHASES}
        if restore_env:
            self.adversary._tracker.running.copy_(saved["episode_running"])

    def summary(self, task: str) -> dict[str, Any]:
        """The protagonist's ``summary.json`` content plus the adversary's settings, updates and last statistics."""
        last = next((r for r in reversed(self.logger.history) if "Adversary/mean_reward" in r), {})
        return {
            **super().summary(task),
            "adversary": {
                **{k: v for k, v in self._adversary_record().items() if k != "config"},
                "updates": dict(self.updates),
                "phases_completed": self.phases_completed,
                "final_mean_reward": last.get("Adversary/mean_reward", float("nan")),
            },
        }


def _skip_update(runner: OnPolicyRunner) -> dict[str, torch.Tensor]:
    """A frozen player's turn: an on-policy player drops its rollout (its storage is refilled next iteration); an
    off-policy one keeps its transitions in the replay."""
    if not isinstance(runner, OffPolicyRunner):
        runner.alg.storage.clear()
    return {}
