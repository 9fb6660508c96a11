"""On-policy runner: the collect → learn loop, logging, evaluation, checkpoints and export.

It is also rsl-rl-lib 5.x's ``OnPolicyRunner``: same constructor ``(env, train_cfg: dict, log_dir, device)``, ``learn``,
``save``/``load`` with rsl_rl's checkpoint keys, ``get_inference_policy``, ``export_policy_to_onnx``/``_jit``,
``add_git_repo_to_log`` and the attributes ``env, cfg, alg, current_learning_iteration, device``, so training scripts
written for rsl_rl (Isaac Lab, mjlab) run unchanged.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rsl_rl.algorithms.ppo import PPO
from rsl_rl.algorithms.ppo_extensions import LOSS_NAMES, build_extensions
from rsl_rl.algorithms.recurrent_ppo import RecurrentPPO
from rsl_rl.env import Env, as_env
from rsl_rl.export import export_jit, export_onnx, inference_policy
from rsl_rl.models.rnn_model import build_model
from rsl_rl.modules.cnn import CNNConfig
from rsl_rl.runners.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    capture_rng_state,
    checkpoint_name,
    iterations_completed,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from rsl_rl.runners.config import RunnerConfig, TrainConfig, train_config_from_dict
from rsl_rl.runners.logger import EpisodeTracker, RunLogger
from rsl_rl.utils import resolve_obs_groups

ExportHook = Callable[["OnPolicyRunner", Path], None]


def build_ppo(
    obs: TensorDict,
    num_envs: int,
    num_actions: int,
    cfg: TrainConfig,
    device: torch.device,
    env: Any = None,
    ppo_class: type[PPO] = PPO,
) -> PPO:
    """Actor, critic and PPO for a config (:class:`RecurrentPPO` if either model is an RNN); ``obs`` gives the groups'
    widths. Also what rsl-rl-lib's ``PPO.construct_algorithm`` builds. ``env``: the user's env object, which RND reads
    its ``step_dt`` from and the symmetry function receives (needed only with ``rnd_cfg`` / ``symmetry_cfg``).
    ``ppo_class``: the feed-forward algorithm class, a subclass of PPO with the same constructor (JSRL's)."""
    image_sets = [name for name, c in (("actor", cfg.actor), ("critic", cfg.critic)) if isinstance(c, CNNConfig)]
    obs_groups = resolve_obs_groups(obs, cfg.obs_groups, ("actor", "critic"), image_sets)
    if cfg.algorithm.rnd_cfg is not None:  # the groups RND reads: rsl-rl-lib's "rnd_state" set
        obs_groups = resolve_obs_groups(obs, obs_groups, ("rnd_state",))
    # Flat widths: an image group [N, C, H, W] counts C·H·W (the layout CNN models read).
    actor_dim = sum(obs[g][0].numel() for g in obs_groups["actor"])
    critic_dim = sum(obs[g][0].numel() for g in obs_groups["critic"])
    args = (cfg.algorithm, obs_groups, num_envs, cfg.num_steps_per_env, device)
    actor = build_model(actor_dim, num_actions, cfg.actor, obs_groups=obs_groups["actor"], obs=obs)
    critic = build_model(
        critic_dim, 1, cfg.critic, actor=False, obs_groups=obs_groups["critic"], obs=obs, share_with=actor
    )
    # After the models, as rsl-rl-lib (its PPO builds RND): the same seed gives the same initial weights.
    ext = build_extensions(cfg.algorithm.rnd_cfg, cfg.algorithm.symmetry_cfg, obs, obs_groups, env, device)
    return RecurrentPPO(actor, critic, *args, **ext) if cfg.recurrent else ppo_class(actor, critic, *args, **ext)


class OnPolicyRunner:
    """Train a PPO policy on a batched env."""

    # rsl-rl-lib's multi-GPU attributes: one process until the scale-out issue lands (WORLD_SIZE > 1 is refused).
    is_distributed: bool = False
    gpu_world_size: int = 1
    gpu_global_rank: int = 0
    gpu_local_rank: int = 0

    def __init__(
        self,
        env: Any,
        train_cfg: dict[str, Any] | RunnerConfig,
        log_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        eval_env: Env | None = None,
        show_progress: bool = True,
    ) -> None:
        world_size = int(os.environ.get("WORLD_SIZE", "1") or "1")
        if world_size > 1:  # torchrun sets it; training each rank alone would silently duplicate work
            raise RuntimeError(
                f"WORLD_SIZE={world_size}: multi-process (torchrun) training is not supported yet; run a single "
                "process (unset WORLD_SIZE or set it to 1)"
            )
        self.env = env
        self.cfg = train_cfg
        self.train_cfg: Any = train_cfg if isinstance(train_cfg, RunnerConfig) else train_config_from_dict(train_cfg)
        self.device = device
        self.torch_device = torch.device(device)
        self.log_dir = str(log_dir) if log_dir is not None else None
        self._env = as_env(env)
        self.eval_env = eval_env
        self.show_progress = show_progress
        cfg = self.train_cfg

        self.alg = self._build_algorithm(self._env.get_observations())
        self.logger = RunLogger(self.log_dir, cfg.logger, cfg.to_dict(), cfg.wandb_project, cfg.run_name)
        self.current_learning_iteration = 0
        self.env_steps = 0
        self.wall_seconds = 0.0
        self.export_hooks: list[ExportHook] = []
        self.checkpoint_infos: dict[str, Any] | None = None
        """``infos`` stored in the checkpoints that ``learn()`` writes (the CLI records the task name)."""
        self.eval_history: list[tuple[int, float]] = []
        self.solved_at: dict[str, float] | None = None
        self._tracker = EpisodeTracker(self._env.num_envs, self.torch_device)
        self._env_state_restored = False
        """``load()`` restored the env's state: the next ``learn()`` must not draw new episode lengths."""

    def _build_algorithm(self, obs: TensorDict) -> Any:
        """Actor, critic and PPO (recurrent PPO if either model is an RNN: the choice is made once, here)."""
        env = self.env  # the user's env, not the adapter: Isaac Lab's mirror functions read env.unwrapped
        alg = build_ppo(obs, self._env.num_envs, self._env.num_actions, self.train_cfg, self.torch_device, env)
        self.obs_groups = alg.obs_groups
        return alg

    # --- training ----------------------------------------------------------------------------------------------------

    def learn(self, num_learning_iterations: int | None = None, init_at_random_ep_len: bool = False) -> None:
        """Run ``num_learning_iterations`` iterations (default ``max_iterations``) of collect → update."""
        cfg, env, alg = self.train_cfg, self._env, self.alg
        iterations = cfg.max_iterations if num_learning_iterations is None else num_learning_iterations
        if init_at_random_ep_len and env.max_episode_length > 0 and not self._env_state_restored:
            # Spread the episodes' time-outs so they do not all land in the same iteration. Not after a resume that
            # restored the env: its episode lengths are already spread, and drawing them again breaks exact resume.
            env.episode_length_buf = torch.randint_like(env.episode_length_buf, high=int(env.max_episode_length))
        self._env_state_restored = False
        raw_obs = env.get_observations()
        obs = raw_obs.to(self.torch_device)
        alg.train_mode()
        start_it = self.current_learning_iteration
        total_it = start_it + iterations
        self.logger.start(start_it, total_it, self.show_progress)
        steps_per_it = cfg.num_steps_per_env * env.num_envs
        move = torch.device(env.device) != self.torch_device
        try:
            for it in range(start_it, total_it):
                t0 = time.perf_counter()
                with torch.inference_mode():
                    for _ in range(cfg.num_steps_per_env):
                        actions = self._act(obs)
                        if move:
                            actions = actions.to(env.device)
                        result = env.step(actions)
                        if move:
                            # Everything, extras included (final_obs, episode statistics); the memo keeps a final_obs
                            # that *is* the observation acted on (the rsl_rl adapter) that same object after the move.
                            result, raw_obs = move_to_device(result, self.torch_device, {id(raw_obs): obs}), result[0]
                        obs, rewards, terminated, truncated, extras = result
                        self._process_env_step(obs, rewards, terminated, truncated, extras)
                        if cfg.check_for_nan:
                            self._tracker.probe(obs, rewards)
                    self._end_collection(obs)
                _synchronize(self.torch_device)
                t1 = time.perf_counter()
                stats = self._update()
                _synchronize(self.torch_device)
                t2 = time.perf_counter()
                self.current_learning_iteration = it + 1
                self.env_steps += steps_per_it
                self.wall_seconds += t2 - t0
                record = self._iteration_record(stats, t1 - t0, t2 - t1, steps_per_it)
                out_of_time = cfg.max_wall_seconds is not None and self.wall_seconds >= cfg.max_wall_seconds
                stop = self._maybe_evaluate(it, it + 1 if out_of_time else total_it, record) or out_of_time
                self.logger.log_iteration(it, record)
                if self.log_dir is not None and it % cfg.save_interval == 0:  # rsl-rl-lib's schedule and names
                    self.save(os.path.join(self.log_dir, checkpoint_name(it + 1)), self.checkpoint_infos)
                if stop:
                    break
        finally:
            self.logger.finish()
        if self.log_dir is not None:
            self.save(
                os.path.join(self.log_dir, checkpoint_name(self.current_learning_iteration)), self.checkpoint_infos
            )
            for hook in self.export_hooks:
                hook(self, Path(self.log_dir))

    # One collected step and the update, as methods so that a runner of several players (adversarial.py) can act,
    # store and update each of them without copying the loop.

    def _act(self, obs: TensorDict) -> torch.Tensor:
        """The actions of every env for ``obs`` (inside inference mode)."""
        return self.alg.act(obs)

    def _process_env_step(
        self,
        obs: TensorDict,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        extras: dict[str, Any],
    ) -> None:
        """Store the step's outcome and track the episode statistics (inside inference mode)."""
        dones = terminated | truncated
        # rsl-rl-lib's call: all episode ends, the time-outs among them in extras.
        self.alg.process_env_step(obs, rewards, dones, {**extras, "time_outs": truncated})
        self._tracker.track(rewards, dones, extras, self.alg.intrinsic_rewards)

    def _update(self) -> dict[str, torch.Tensor]:
        """The iteration's update; statistics as device tensors."""
        return self.alg.update()

    def _end_collection(self, obs: TensorDict) -> None:
        """After the iteration's last env step (inside inference mode): PPO's returns and advantages."""
        self.alg.compute_returns(obs)

    def _algorithm_record(self) -> dict[str, float]:
        """Host values of the algorithm logged every iteration besides its update statistics."""
        rnd = getattr(self.alg, "rnd", None)
        return {
            "learning_rate": float(self.alg.learning_rate),
            "action_std": float(self.alg.get_policy().std().detach().mean()),
            **({"Rnd/weight": float(rnd.weight)} if rnd is not None else {}),  # a Python float: no sync
        }

    def _iteration_record(
        self, stats: dict[str, torch.Tensor], collect_s: float, learn_s: float, steps: int
    ) -> dict[str, float]:
        """Move this iteration's statistics to the host (the one sync of the iteration) and check for NaN."""
        episode = self._tracker.collect()
        losses = dict(zip(stats, torch.stack(list(stats.values())).tolist(), strict=True))
        record: dict[str, float] = {
            "env_steps": float(self.env_steps),
            "wall_seconds": self.wall_seconds,
            "collection_time": collect_s,
            "learning_time": learn_s,
            "steps_per_second": steps / max(collect_s + learn_s, 1e-9),
            # Env steps per second of each phase alone: where the time goes (simulation or learning).
            "Perf/collection_fps": steps / max(collect_s, 1e-9),
            "Perf/learning_fps": steps / max(learn_s, 1e-9),
            **self._algorithm_record(),
            **losses,
            **{f"Loss/{name}": losses[name] for name in LOSS_NAMES if name in losses},  # rsl-rl-lib's tags
            **episode,
        }
        for name, value in episode.items():
            if name.startswith("Counts/") and value > 0:
                self.logger.warn(
                    f"iteration {self.current_learning_iteration}: {name.removeprefix('Counts/')} = {value:g}"
                )
        if episode["nonfinite"]:
            self.logger.warn(
                f"iteration {self.current_learning_iteration}: the env returned non-finite observations or rewards"
            )
        if losses.get("discarded_steps", 0.0) > 0:
            self.logger.warn(
                f"iteration {self.current_learning_iteration}: {int(losses['discarded_steps'])} mini-batches had "
                "non-finite gradients and were discarded"
            )
        # Indexed, not filtered by presence: a loss key an algorithm stopped returning must fail here, not go unchecked.
        if not all(math.isfinite(losses[k]) for k in self.alg.loss_keys):
            raise FloatingPointError(
                f"iteration {self.current_learning_iteration}: non-finite loss {losses}"
                + ("; the env returned non-finite observations or rewards" if episode["nonfinite"] else "")
                + (
                    f"; {int(losses['discarded_steps'])} mini-batches had non-finite gradients and were discarded"
                    if losses.get("discarded_steps")
                    else ""
                )
                + ". Check observations/rewards for NaN or huge magnitudes (enable obs_normalization), "
                "or lower the learning rate."
            )
        return record

    # --- evaluation --------------------------------------------------------------------------------------------------

    def _maybe_evaluate(self, it: int, total_it: int, record: dict[str, float]) -> bool:
        cfg = self.train_cfg
        if self.eval_env is None:
            return False
        due = (cfg.eval_interval > 0 and (it + 1) % cfg.eval_interval == 0) or it + 1 == total_it
        if not due:
            return False
        returns = self.evaluate()
        mean = float(returns.mean())
        record["eval_mean_return"] = mean
        self.eval_history.append((self.current_learning_iteration, mean))
        target = cfg.stop_at_return
        if target is not None and mean >= target and self.solved_at is None:
            self.solved_at = {
                "iteration": self.current_learning_iteration,
                "env_steps": self.env_steps,
                "wall_seconds": self.wall_seconds,
            }
            return True
        return False

    @torch.inference_mode()
    def evaluate(
        self,
        env: Env | None = None,
        max_steps: int | None = None,
        callback: Callable[[Env], None] | None = None,
        policy: Any = None,
    ) -> torch.Tensor:
        """Return ``[num_envs]`` returns of the first episode of every env under the deterministic policy (the
        trained one, or ``policy``: a module mapping the observation TensorDict to actions, with ``reset(dones)``).

        ``callback(env)`` runs after every step (e.g. to render frames); with a callback the loop also stops once every
        env finished its episode (a host sync per step, fine for playing back, avoided in training).
        """
        env = env or self.eval_env
        if env is None:
            raise ValueError("evaluate() needs an env: pass one or construct the runner with eval_env")
        policy = self._inference_policy() if policy is None else policy
        actor = self.alg.get_policy()
        was_training = actor.training
        actor.eval()
        obs = env.reset().to(self.torch_device)
        returns = torch.zeros(env.num_envs, device=self.torch_device)
        active = torch.ones(env.num_envs, dtype=torch.bool, device=self.torch_device)
        for _ in range(max_steps or env.max_episode_length):
            obs, rewards, terminated, truncated, _ = env.step(policy(obs).to(env.device))
            obs = obs.to(self.torch_device)
            returns += torch.where(active, rewards.to(self.torch_device), 0.0)
            done = (terminated | truncated).to(self.torch_device)
            policy.reset(done)
            active &= ~done
            if callback is not None:
                callback(env)
                if not bool(active.any()):
                    break
        actor.train(was_training)
        return returns

    def _inference_policy(self) -> Any:
        """A fresh deterministic policy of the trained actor (with memory for a recurrent one)."""
        return inference_policy(self.alg.get_policy(), self.obs_groups["actor"])

    # --- persistence -------------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], infos: dict[str, Any] | None = None) -> None:
        """Write the full training state atomically (rsl_rl keys plus RNG, env, counters and config)."""
        save_checkpoint(self._checkpoint_state(infos), path)
        self.logger.save_model(str(path), self.current_learning_iteration)  # uploads it for W&B / Neptune runs

    def _checkpoint_state(self, infos: dict[str, Any] | None) -> dict[str, Any]:
        """The checkpoint's content (what :meth:`save` writes)."""
        state = self.alg.state_dict()
        state.update(
            {
                # rsl-rl-lib's "iter": the index of the last completed iteration; ours counts them.
                "iter": self.current_learning_iteration - 1,
                "iterations_completed": self.current_learning_iteration,
                "infos": infos,
                "format": CHECKPOINT_FORMAT,
                "format_version": CHECKPOINT_VERSION,
                "env_steps": self.env_steps,
                "wall_seconds": self.wall_seconds,
                # The logger's step is the iteration ("iter"); what else the logs and summary.json continue from:
                "logger_state": {
                    "last_mean_return": self.logger.last_return,
                    "episode_running": self._tracker.running.clone(),
                    "eval_history": [list(entry) for entry in self.eval_history],
                    "solved_at": self.solved_at,
                },
                "obs_groups": self.obs_groups,
                "config": self.train_cfg.to_dict(),
                "rng": capture_rng_state(),
                "env_state": self._env.state_dict(),
            }
        )
        return state

    def load(
        self,
        path: str | os.PathLike[str],
        load_cfg: dict[str, bool] | None = None,
        strict: bool = True,
        map_location: str | torch.device | None = None,
    ) -> dict[str, Any] | None:
        """Load a checkpoint (ours or rsl_rl's); returns its ``infos``.

        With ``load_cfg["iteration"]`` (the default) it restores the training position: iteration (hence the logger's
        step), counters, RNG, and -- when the checkpoint holds the env's state and the env can load it -- the env,
        the algorithm's per-env memory (hidden states, observation history) and the running episode sums. Memory and
        sums belong to the episodes in progress, so an env that starts afresh starts them afresh too.
        """
        state = load_checkpoint(path, map_location=map_location or self.torch_device)
        self._load_state(state, load_cfg, strict)
        return state.get("infos")

    def _load_state(self, state: dict[str, Any], load_cfg: dict[str, bool] | None, strict: bool) -> None:
        """Restore from a loaded checkpoint ``state`` (the body of :meth:`load`)."""
        load_cfg = dict(load_cfg if load_cfg is not None else self.alg.default_load_cfg(state))
        restore_env = bool(load_cfg.get("iteration", False) and state.get("env_state"))
        logger_state = state.get("logger_state", {})
        self.alg.load_state_dict(state, {**load_cfg, "memory": restore_env}, strict)
        if load_cfg.get("iteration", False):
            self.current_learning_iteration = iterations_completed(state)
            self.env_steps = int(state.get("env_steps", 0))
            self.wall_seconds = float(state.get("wall_seconds", 0.0))
            if "rng" in state:
                restore_rng_state(state["rng"])
            self.logger.last_return = float(logger_state.get("last_mean_return", math.nan))
            self.eval_history = [(int(it), float(ret)) for it, ret in logger_state.get("eval_history", [])]
            self.solved_at = logger_state.get("solved_at")
        if restore_env:
            self._env.load_state_dict(state["env_state"])
            self._env_state_restored = True
            if "episode_running" in logger_state:
                self._tracker.running.copy_(logger_state["episode_running"])

    def get_inference_policy(self, device: str | torch.device | None = None) -> Any:
        """Deterministic policy taking the env's observation TensorDict (or a concatenated tensor); a recurrent one
        carries its hidden state between calls (``policy.reset(dones)`` starts new episodes)."""
        self.alg.eval_mode()
        policy = self._inference_policy()
        return policy.to(device) if device is not None else policy

    def export_policy_to_onnx(
        self, path: str | os.PathLike[str], filename: str = "policy.onnx", verbose: bool = False
    ) -> None:
        export_onnx(self.alg.get_policy(), Path(path) / filename, verbose=verbose)

    def export_policy_to_jit(self, path: str | os.PathLike[str], filename: str = "policy.pt") -> None:
        export_jit(self.alg.get_policy(), Path(path) / filename)

    def add_git_repo_to_log(self, repo_file_path: str) -> None:
        """Record this repository's HEAD and diff in the run directory when training starts."""
        self.logger.git_repos.append(repo_file_path)

    def add_export_hook(self, hook: ExportHook) -> None:
        """Call ``hook(runner, log_dir)`` after the final checkpoint of ``learn()``."""
        self.export_hooks.append(hook)

    def summary(self, task: str) -> dict[str, Any]:
        """The run's ``summary.json`` content."""
        h = self.logger.history
        train_return = self.logger.last_return
        eval_return = self.eval_history[-1][1] if self.eval_history else math.nan
        final = eval_return if self.eval_history else train_return
        return {
            "task": task,
            "iterations": self.current_learning_iteration,
            "env_steps": self.env_steps,
            "wall_seconds": self.wall_seconds,
            "env_steps_per_second": self.env_steps / self.wall_seconds if self.wall_seconds else 0.0,
            "final_mean_return": final,
            "final_mean_return_source": "deterministic evaluation" if self.eval_history else "training episodes",
            "train_mean_return": train_return,
            "eval_mean_return": eval_return,
            "solved_at": self.solved_at,
            # The last iteration in which episodes ended (an off-policy iteration of one step usually has none).
            "mean_episode_length": next(
                (r["mean_episode_length"] for r in reversed(h) if math.isfinite(r["mean_episode_length"])), math.nan
            ),
        }


def move_to_device(value: Any, device: torch.device, moved: dict[int, Any] | None = None) -> Any:
    """``value`` with every tensor on ``device``: tensors and TensorDicts, also inside dicts, lists and tuples; other
    values are returned as they are, and ``value`` itself is not modified.

    ``moved`` maps ``id(original)`` to a copy made already, which is reused instead of copying again: an env's
    ``final_obs`` that is the very observation the policy acted on stays identical to the moved observation.
    """
    if moved is not None and id(value) in moved:
        return moved[id(value)]
    if isinstance(value, torch.Tensor | TensorDictBase):
        return value.to(device)
    if isinstance(value, dict):
        return {key: move_to_device(item, device, moved) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(move_to_device(item, device, moved) for item in value)
    return value


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
