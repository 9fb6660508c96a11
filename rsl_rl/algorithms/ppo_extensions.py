"""Random network distillation and symmetry inside PPO: what each of PPO's hook points adds when rsl-rl-lib's
``rnd_cfg`` / ``symmetry_cfg`` are set (the modules themselves are :mod:`rsl_rl.extensions`).

PPO holds one :class:`PPOExtensions` and calls it at the points below; without RND and symmetry every call returns
its input unchanged or does nothing, so PPO runs exactly as it would without the hooks:

* ``__init__``: the storage gets an ``"rnd"`` input (the ``rnd_state`` groups), or an alias of a model input that reads
  the same groups;
* ``act``: store the RND state s_t; build the :class:`~rsl_rl.extensions.GroupLayout` the mirror function needs, once;
* ``process_env_step``: r_t ← r_t + r_int(o_{t+1}), the bonus of the observation the step returned (as rsl-rl-lib;
  for an env that finished, the first observation of its next episode), before the time-out bootstrap;
* each (micro-)batch chunk of n rows, before the forward pass: symmetry augmentation, the model inputs and actions
  become [originals; k − 1 mirrored copies] (``k·n`` rows);
* each chunk, after the PPO loss: + (n/size)·(L_RND + c·L_sym), ``size`` the mini-batch's rows, so that the chunks add
  up to the mini-batch means (L_sym only with ``use_mirror_loss``; otherwise it is computed for the log only);
* each mini-batch, after PPO's step: step RND's own optimiser;
* the end of the update: fold the rollout's RND states into RND's normaliser; mean losses ``rnd`` and ``symmetry``.

Nothing here reads a tensor on the host: the loss sums stay on the device until the runner's one sync per iteration.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDictBase

from rsl_rl.extensions import (
    GroupLayout,
    RandomNetworkDistillation,
    Symmetry,
    resolve_rnd_config,
    resolve_symmetry_config,
)
from rsl_rl.storage.rollout_storage import RolloutStorage
from rsl_rl.utils import resolve_callable

LOSS_NAMES = ("rnd", "symmetry")
"""Keys of the statistics :meth:`PPOExtensions.finish_update` adds to PPO's (rsl-rl-lib's ``loss_dict`` keys)."""


class PPOExtensions:
    """RND and/or symmetry as PPO uses them over its flat rollout storage."""

    def __init__(
        self,
        rnd: RandomNetworkDistillation | None,
        symmetry: Symmetry | None,
        stored_sets: dict[str, list[str]],
        device: torch.device,
    ) -> None:
        """``stored_sets``: the model inputs PPO stores and their observation groups, ``{"actor": [...]}`` or
        ``{"actor": [...], "critic": [...]}``."""
        self.rnd = rnd
        self.symmetry = symmetry
        self.sets = {name: list(groups) for name, groups in stored_sets.items()}
        self.rnd_source = "rnd"
        """The stored input that holds the RND state: ``"rnd"``, or a model input that reads the same groups."""
        if rnd is not None:
            rnd_groups = list(rnd.obs_groups["rnd_state"])
            self.rnd_source = next((name for name, groups in self.sets.items() if groups == rnd_groups), "rnd")
        self.layout: GroupLayout | None = None
        self.sums = torch.zeros(len(LOSS_NAMES), device=device)
        """Sums over this update's mini-batches of the mean RND loss and the mean mirror loss."""

    # --- rollout ------------------------------------------------------------------------------------------------------

    def storage_inputs(self, widths: dict[str, int]) -> tuple[dict[str, int], dict[str, str]]:
        """The rollout storage's inputs: the widths of the stored sets (of ``widths``: actor, critic) and RND's
        ``num_states``, and the aliases of those that share a stored tensor (a critic or an RND state that reads the
        actor's groups)."""
        dims = {name: widths[name] for name in self.sets}
        aliases = {name: "actor" for name in widths if name not in self.sets}
        if self.rnd is not None and self.rnd_source != "rnd":
            aliases["rnd"] = self.rnd_source
        elif self.rnd is not None:
            dims["rnd"] = self.rnd.num_states
        return dims, aliases

    def fields(self) -> list[str]:
        """Storage fields the update must pack besides PPO's own."""
        return ["rnd"] if self.rnd is not None and self.rnd_source == "rnd" else []

    def act(self, obs: TensorDictBase, storage: RolloutStorage, t: int) -> None:
        """Record the RND state of step ``t``; build the group layout from the first observation."""
        if self.rnd is not None and self.rnd_source == "rnd":
            storage.obs["rnd"][t].copy_(self.rnd.get_rnd_state(obs))
        if self.symmetry is not None and self.layout is None:
            self.layout = GroupLayout(obs, self.sets)

    def add_intrinsic_reward(
        self, obs: TensorDictBase, rewards: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(r + r_int(obs), r_int(obs))`` with RND (``obs``: what the step returned), else ``(r, None)``."""
        if self.rnd is None:
            return rewards, None
        intrinsic = self.rnd.get_intrinsic_reward(obs)
        return rewards + intrinsic, intrinsic

    # --- update -------------------------------------------------------------------------------------------------------

    def augment(
        self, inputs: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """With symmetry data augmentation: each ``[n, D]`` model input and the actions ``[n, A]`` as
        ``[k·n, ...]``, the originals first; otherwise unchanged."""
        if self.symmetry is None or not self.symmetry.use_data_augmentation:
            return inputs, actions
        augmented, augmented_actions = self.symmetry.augment_inputs(self._layout(), inputs, actions)
        assert augmented_actions is not None  # Symmetry.augment raises when the function drops them
        rows = augmented["actor"].shape[0]
        if augmented_actions.shape[0] != rows:
            n = actions.shape[0]
            raise ValueError(
                f"data_augmentation_func made {rows // n} copies of the observations but "
                f"{augmented_actions.shape[0] // n} of the actions"
            )
        return augmented, augmented_actions

    def add_chunk_loss(
        self,
        loss: torch.Tensor,
        actor: Callable[[torch.Tensor], torch.Tensor],
        rows: torch.Tensor,
        col: dict[str, slice],
        mean: torch.Tensor,
        size: int,
    ) -> torch.Tensor:
        """``loss`` + (n/size)·(L_RND + c·L_sym) of a chunk: ``rows [n, K]`` of the packed table (``col``: field →
        columns), ``mean [k·n, A]`` the actor's means on the (augmented) inputs, ``size`` the mini-batch's rows.

        L_RND (rsl-rl-lib: on the original samples) trains only RND's predictor, which its own optimiser steps.
        """
        if self.rnd is None and self.symmetry is None:
            return loss
        weight = rows.shape[0] / size
        rnd_loss = mirror = torch.zeros((), device=rows.device)
        if self.rnd is not None:
            rnd_loss = self.rnd.compute_loss(rows[:, col[self.rnd_source]])
            loss = loss + weight * rnd_loss
        if self.symmetry is not None:
            mirror = self._mirror_loss(actor, rows, col, mean)
            if self.symmetry.use_mirror_loss:
                loss = loss + weight * self.symmetry.mirror_loss_coeff * mirror
        self.sums += weight * torch.stack([rnd_loss, mirror]).detach()
        return loss

    def _mirror_loss(
        self,
        actor: Callable[[torch.Tensor], torch.Tensor],
        rows: torch.Tensor,
        col: dict[str, slice],
        mean: torch.Tensor,
    ) -> torch.Tensor:
        """L_sym = mean (μ(M_s s) − M_a μ(s))² over the mirrored copies. Without data augmentation the actor runs on
        the mirrored copies here (with gradients only when the loss trains)."""
        assert self.symmetry is not None
        n = rows.shape[0]
        if mean.shape[0] == n:
            mirrored, _ = self.symmetry.augment_inputs(self._layout(), {name: rows[:, col[name]] for name in self.sets})
            with torch.set_grad_enabled(self.symmetry.use_mirror_loss and torch.is_grad_enabled()):
                mean = torch.cat([mean, actor(mirrored["actor"][n:]).float()])
        return self.symmetry.mirror_loss(mean, n)

    def step(self) -> None:
        """After PPO's optimiser step: RND's predictor step on the gradients the mini-batch's chunks accumulated."""
        if self.rnd is not None:
            self.rnd.optimizer.step()
            self.rnd.optimizer.zero_grad(set_to_none=True)

    def finish_update(self, storage: RolloutStorage, num_batches: int) -> dict[str, torch.Tensor]:
        """After the last mini-batch: RND's state normaliser sees the rollout (as PPO's normalisers do, only now);
        returns the mean losses of the configured extensions as device tensors."""
        stats: dict[str, torch.Tensor] = {}
        if self.rnd is not None:
            self.rnd.update_normalization(storage.flat(storage.obs["rnd"]))
            stats["rnd"] = self.sums[0] / num_batches
        if self.symmetry is not None:
            stats["symmetry"] = self.sums[1] / num_batches
        if stats:
            self.sums.zero_()
        return stats

    def _layout(self) -> GroupLayout:
        if self.layout is None:
            raise RuntimeError("symmetry needs the observation layout, which act() records: update() came first")
        return self.layout

    # --- persistence and modes ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """RND under rsl-rl-lib's checkpoint keys, plus the weight schedule's step (ours: rsl-rl-lib restarts it)."""
        if self.rnd is None:
            return {}
        return {
            "rnd_state_dict": self.rnd.state_dict(),
            "rnd_optimizer_state_dict": self.rnd.optimizer.state_dict(),
            "rnd_update_counter": self.rnd.update_counter,
        }

    def load_state_dict(self, state: Mapping[str, Any], load_cfg: Mapping[str, bool], strict: bool) -> None:
        """Load RND unless ``load_cfg["rnd"]`` is False; a checkpoint trained without RND leaves it as built."""
        if self.rnd is None or not load_cfg.get("rnd", True) or "rnd_state_dict" not in state:
            return
        self.rnd.load_state_dict(state["rnd_state_dict"], strict=strict)
        if "rnd_optimizer_state_dict" in state:
            self.rnd.optimizer.load_state_dict(state["rnd_optimizer_state_dict"])
        if "rnd_update_counter" in state:
            self.rnd.update_counter = int(state["rnd_update_counter"])

    def models(self) -> list[torch.nn.Module]:
        """RND's predictor and target (compiled, and synchronised across processes, with PPO's models)."""
        return [] if self.rnd is None else [self.rnd.predictor, self.rnd.target]

    def train(self, mode: bool) -> None:
        if self.rnd is not None:
            self.rnd.train(mode)


# --- configuration and construction -----------------------------------------------------------------------------------


def build_extensions(
    rnd_cfg: dict[str, Any] | None,
    symmetry_cfg: dict[str, Any] | None,
    obs: TensorDictBase,
    obs_groups: dict[str, list[str]],
    env: Any,
    device: torch.device,
) -> dict[str, Any]:
    """PPO's ``rnd`` and ``symmetry`` arguments, built as rsl-rl-lib builds them: RND's state width from ``obs``
    and its weight times ``env``'s step_dt; the mirror function called with ``env=env`` (the user's env object)."""
    alg_cfg = {"rnd_cfg": rnd_cfg, "symmetry_cfg": symmetry_cfg}
    rnd = None
    if rnd_cfg is not None:
        if env is None:
            raise ValueError("algorithm.rnd_cfg needs the env (RND scales its weight by env step_dt): pass env=")
        rnd = RandomNetworkDistillation(device=device, **resolve_rnd_config(alg_cfg, obs, obs_groups, env)["rnd_cfg"])
    resolved = resolve_symmetry_config(alg_cfg, env)["symmetry_cfg"]
    return {"rnd": rnd, "symmetry": None if resolved is None else Symmetry(**resolved)}


def checked_extension_configs(
    rnd_cfg: Mapping[str, Any] | None, symmetry_cfg: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Copies of ``PPOConfig.rnd_cfg`` and ``symmetry_cfg`` with their keys checked against the modules' arguments,
    and a mirror function given as a callable replaced by its ``"module:function"`` name: the config is saved in
    every checkpoint, which must load with ``torch.load(weights_only=True)`` (no pickled functions)."""
    rnd = _checked("rnd_cfg", rnd_cfg, RandomNetworkDistillation, ("num_states", "obs_groups", "device"))
    symmetry = _checked("symmetry_cfg", symmetry_cfg, Symmetry, ("env",))
    if symmetry is not None and callable(symmetry["data_augmentation_func"]):
        symmetry["data_augmentation_func"] = _callable_name(symmetry["data_augmentation_func"])
    return rnd, symmetry


def _checked(name: str, cfg: Mapping[str, Any] | None, cls: type, filled: tuple[str, ...]) -> dict[str, Any] | None:
    """A deep copy of ``cfg`` whose keys ``cls.__init__`` accepts and that holds every argument without a default
    (those in ``filled`` are filled in when the module is built)."""
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ValueError(f"algorithm.{name} must be a dict or None, got {type(cfg).__name__}")
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self")
    valid = [key for key in params if key not in filled]
    unknown = sorted(set(cfg) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in algorithm.{name}; valid keys: {valid}")
    missing = [key for key in valid if params[key].default is inspect.Parameter.empty and cfg.get(key) is None]
    if missing:
        raise ValueError(f"algorithm.{name} lacks {missing} (valid keys: {valid})")
    return {key: value if callable(value) else copy.deepcopy(value) for key, value in cfg.items()}


def _callable_name(func: Callable[..., Any]) -> str:
    """``"module:qualified.name"`` of a function importable under that name; an error for anything else."""
    name = f"{getattr(func, '__module__', None)}:{getattr(func, '__qualname__', None)}"
    try:
        found = resolve_callable(name) is func
    except (ImportError, AttributeError, ValueError, TypeError):
        found = False
    if not found:
        raise ValueError(
            f"algorithm.symmetry_cfg.data_augmentation_func={func!r} has no importable name: define it at module "
            "level or give it as 'module.path:function' (the config is saved with every checkpoint, which holds "
            "names, not pickled functions)"
        )
    return name
