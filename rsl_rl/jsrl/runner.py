"""Jump-start RL runners: the on-policy (PPO) and off-policy (SAC, RLPD) runners with a guide that acts for the first
h_i steps of every env's episode (``schedule.py``) while the learner trains on everything collected.

Every collected step the learner and the guide both act on the whole batch and :class:`EpisodeSwitch` picks per env
(``torch.where``, no host sync); the algorithm stores the applied action:

* PPO (:class:`JSRLPPO`): the applied action, its log-probability under the learner and the learner mask; guide
  steps are masked out of the policy loss and kept for the value targets (``JSRLConfig.ppo_guide_steps``);
* SAC: the guide's transitions go to the replay like any other, its action mapped into the actor's squashed units
  (u = ``actor.from_env(a)``, clipped to [−1, 1] as the env clips a).

Curriculum mode evaluates π_{h_k} on the eval env at the runner's evaluations (every ``eval_interval`` iterations,
after the learner's own evaluation) and advances the stage through :class:`Curriculum`; an episode keeps the h it
started with, so an advance shows in the collected steps from the next episode starts on. Logged each iteration:
``jsrl/stage`` and its ``jsrl/h`` = h_k (the stage the iteration collected in; random mode: the mean h_i of the
episodes in progress), ``jsrl/guide_share`` (fraction of the iteration's steps the guide acted); at evaluations
``jsrl/combined_return`` (mean return of π_{h_k}, deterministic learner) and ``jsrl/best`` (the gate's best).
Checkpoints hold a ``jsrl`` entry (config, curriculum, switch state with its generator) and resume exactly.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, as_env
from rsl_rl.jsrl.guides import Guide
from rsl_rl.jsrl.ppo import JSRLPPO
from rsl_rl.jsrl.schedule import CombinedPolicy, Curriculum, EpisodeSwitch, JSRLConfig
from rsl_rl.runners.config import RunnerConfig, SACTrainConfig, train_config_from_dict
from rsl_rl.runners.off_policy import OffPolicyRunner
from rsl_rl.runners.on_policy_runner import OnPolicyRunner, build_ppo


class JSRLRunner(OnPolicyRunner):
    """What both JSRL runners share: acting, the switch, evaluation of π_h, logging and checkpoints."""

    def __init__(
        self,
        env: Any,
        train_cfg: dict[str, Any] | RunnerConfig,
        guide: Guide,
        jsrl_cfg: JSRLConfig | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        eval_env: Env | None = None,
        show_progress: bool = True,
    ) -> None:
        self.guide = guide
        self.jsrl_cfg = cfg = jsrl_cfg or JSRLConfig()
        # Checked before the base class builds the algorithm and the logger (which may create the run directory).
        horizon = cfg.horizon or int(as_env(env).max_episode_length)
        if horizon < 1:
            raise ValueError("jsrl.horizon=0 takes the env's max_episode_length, which is 0: set jsrl.horizon (steps)")
        runner_cfg = train_cfg if isinstance(train_cfg, RunnerConfig) else train_config_from_dict(train_cfg)
        interval = runner_cfg.eval_interval
        if cfg.mode == "curriculum" and (eval_env is None or interval < 1):
            raise ValueError(
                "jsrl.mode='curriculum' advances on evaluations of the combined policy: pass eval_env and set "
                f"eval_interval >= 1 (got eval_env={'None' if eval_env is None else 'set'}, eval_interval={interval})"
            )
        super().__init__(env, train_cfg, log_dir, device, eval_env, show_progress)
        self.horizon = horizon
        self.curriculum = Curriculum(horizon, cfg.stages, cfg.tolerance, cfg.window)
        random = cfg.mode == "random"
        self.switch = EpisodeSwitch(self._env.num_envs, horizon, random, self.curriculum.h, self.torch_device, cfg.seed)
        self._guide_steps = torch.zeros((), device=self.torch_device)
        self.logger.config["jsrl"] = {**asdict(cfg), "horizon": horizon}

    # --- collection --------------------------------------------------------------------------------------------------

    def _act(self, obs: TensorDict) -> torch.Tensor:
        """Learner and guide on the whole batch; the guide's action where t_i < h_i (stored by the algorithm)."""
        learner = super()._act(obs)
        guide_actions = self.guide(obs).to(device=learner.device, dtype=learner.dtype)
        mask = self.switch.guide_mask()
        self._guide_steps += mask.sum()
        return self._apply_guide(learner, guide_actions, mask)

    def _apply_guide(self, learner: torch.Tensor, guide_actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Store the applied actions in the algorithm's storage; return them."""
        raise NotImplementedError

    def _process_env_step(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        extras: dict[str, Any],
    ) -> None:
        super()._process_env_step(obs, rewards, terminated, truncated, extras)
        self.switch.step(terminated | truncated)

    # --- logging and evaluation --------------------------------------------------------------------------------------

    def _iteration_record(
        self, stats: dict[str, torch.Tensor], collect_s: float, learn_s: float, steps: int
    ) -> dict[str, float]:
        record = super()._iteration_record(stats, collect_s, learn_s, steps)
        share, mean_h = torch.stack([self._guide_steps / steps, self.switch.h.float().mean()]).tolist()
        self._guide_steps.zero_()
        record["jsrl/guide_share"] = share
        if self.jsrl_cfg.mode == "curriculum":
            record.update({"jsrl/stage": float(self.curriculum.stage), "jsrl/h": float(self.curriculum.h)})
        else:
            record["jsrl/h"] = mean_h  # the mean switch step of the episodes in progress
        return record

    def _maybe_evaluate(self, it: int, total_it: int, record: dict[str, float]) -> bool:
        """The learner's evaluation; in curriculum mode then π_{h_k}'s, which feeds the stage gate."""
        stop = super()._maybe_evaluate(it, total_it, record)
        if self.jsrl_cfg.mode != "curriculum" or "eval_mean_return" not in record:  # no evaluation was due
            return stop
        # At h = 0 the combined policy is the learner, just evaluated.
        combined = record["eval_mean_return"] if self.curriculum.h == 0 else float(self.evaluate_combined().mean())
        record["jsrl/combined_return"] = combined
        if self.curriculum.observe(combined):
            self.switch.set_stage_h(self.curriculum.h)  # for the episodes that start from now on
        record["jsrl/best"] = self.curriculum.best
        return stop

    def combined_policy(self, num_envs: int, h: int | None = None, random: bool = False) -> CombinedPolicy:
        """π_h of the deterministic learner for ``num_envs`` envs: h (default the stage's h_k) or, ``random``, a draw
        per episode."""
        switch = EpisodeSwitch(
            num_envs, self.horizon, random, self.curriculum.h if h is None else h, self.torch_device, self.jsrl_cfg.seed
        )
        return CombinedPolicy(self._inference_policy(), self.guide, switch)

    def evaluate_combined(self, env: Env | None = None, h: int | None = None) -> torch.Tensor:
        """Returns of ``jsrl.eval_episodes`` episodes (0: one per env) of π_h (default: the stage's h_k) on ``env``
        (default the eval env), in rounds of the env's batch."""
        env = env or self.eval_env
        if env is None:
            raise ValueError("evaluate_combined() needs an env: pass one or construct the runner with eval_env")
        episodes = self.jsrl_cfg.eval_episodes or env.num_envs
        rounds = -(-episodes // env.num_envs)
        returns = [self.evaluate(env, policy=self.combined_policy(env.num_envs, h)) for _ in range(rounds)]
        return torch.cat(returns)[:episodes]

    # --- persistence -------------------------------------------------------------------------------------------------

    def _checkpoint_state(self, infos: dict[str, Any] | None) -> dict[str, Any]:
        """The algorithm's checkpoint plus ``jsrl``: config, horizon, curriculum (stage, best, window), switch (t, h
        of the episodes in progress, the stage's h, the generator)."""
        state = super()._checkpoint_state(infos)
        state["jsrl"] = {
            "config": asdict(self.jsrl_cfg),
            "horizon": self.horizon,
            "curriculum": self.curriculum.state_dict(),
            "switch": self.switch.state_dict(),
        }
        return state

    def _load_state(self, state: dict[str, Any], load_cfg: dict[str, bool] | None, strict: bool) -> None:
        """With the training position (``load_cfg["iteration"]``): the curriculum and the generator; the episodes'
        t and h when the env's state is restored too. A checkpoint without JSRL (a warm start) leaves them as built."""
        super()._load_state(state, load_cfg, strict)
        saved = state.get("jsrl")
        load_cfg = dict(load_cfg if load_cfg is not None else self.alg.default_load_cfg(state))
        if saved is None or not load_cfg.get("iteration", False):
            return
        if saved["config"]["mode"] != self.jsrl_cfg.mode:
            raise ValueError(f"the checkpoint's jsrl.mode is {saved['config']['mode']!r}, this runner's "
                             f"{self.jsrl_cfg.mode!r}")  # fmt: skip
        self.curriculum.load_state_dict(saved["curriculum"])
        self.switch.load_state_dict(saved["switch"], episodes=bool(state.get("env_state")))

    def summary(self, task: str) -> dict[str, Any]:
        jsrl: dict[str, Any] = {**asdict(self.jsrl_cfg), "horizon": self.horizon}
        if self.jsrl_cfg.mode == "curriculum":
            state = self.curriculum.state_dict()
            # Strict JSON: no best before the first advance is null, not -Infinity.
            state["best"] = state["best"] if math.isfinite(state["best"]) else None
            jsrl.update(state)
        return {**super().summary(task), "jsrl": jsrl}


class JSRLOnPolicyRunner(JSRLRunner):
    """PPO learner with a guide (:class:`JSRLPPO`); a recurrent actor or critic is not supported."""

    alg: JSRLPPO

    def _build_algorithm(self, obs: TensorDict) -> JSRLPPO:
        if self.train_cfg.recurrent:
            raise ValueError("JSRL with a recurrent PPO actor or critic is not supported: use MLP models")
        env = self._env.num_envs, self._env.num_actions
        alg = build_ppo(obs, *env, self.train_cfg, self.torch_device, self.env, ppo_class=JSRLPPO)
        assert isinstance(alg, JSRLPPO)
        alg.guide_steps = self.jsrl_cfg.ppo_guide_steps
        self.obs_groups = alg.obs_groups
        return alg

    def _apply_guide(self, learner: torch.Tensor, guide_actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.alg.apply_guide(guide_actions, mask)


class JSRLOffPolicyRunner(JSRLRunner, OffPolicyRunner):
    """SAC (or RLPD) learner with a guide: the guide's transitions go to the replay."""

    def _apply_guide(self, learner: torch.Tensor, guide_actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # SAC's act stored the learner's squashed u in the current replay row; the guide's rows get from_env(a^g).
        replay, actor = self.alg.storage, self.alg.actor
        stored = replay.actions[replay.row]
        stored.copy_(torch.where(mask.unsqueeze(-1), actor.from_env(guide_actions), stored))
        return torch.where(mask.unsqueeze(-1), guide_actions, learner)


def make_jsrl_runner(
    env: Any,
    train_cfg: dict[str, Any] | RunnerConfig,
    guide: Guide,
    jsrl_cfg: JSRLConfig | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    eval_env: Env | None = None,
    show_progress: bool = True,
) -> JSRLRunner:
    """The JSRL runner a training config asks for: :class:`JSRLOffPolicyRunner` for SAC, else
    :class:`JSRLOnPolicyRunner`."""
    cfg = train_cfg if isinstance(train_cfg, RunnerConfig) else train_config_from_dict(train_cfg)
    runner_cls = JSRLOffPolicyRunner if isinstance(cfg, SACTrainConfig) else JSRLOnPolicyRunner
    return runner_cls(env, cfg, guide, jsrl_cfg, log_dir, device, eval_env, show_progress)
