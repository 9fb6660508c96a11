"""Symmetry augmentation and mirror loss (Mittal et al. 2024), under rsl-rl-lib 5.5.1's names.

A robot that is left-right symmetric should act symmetrically: with M_s, M_a the mirror maps of observations and
actions, an equivariant policy satisfies π(M_s s) = M_a π(s). The user supplies the maps as one function, called with
keywords exactly as rsl-rl-lib calls it:

    obs_aug, actions_aug = data_augmentation_func(env=env, obs=obs, actions=actions)

``obs`` is a TensorDict of observation groups ``[B, ...]`` (or None), ``actions`` a ``[B, A]`` tensor (or None); the
function returns each input stacked with its k − 1 transformed copies, ``[k·B, ...]``, the original first (None for a
None input). Two uses, independently switchable:

* data augmentation: the PPO losses see every sample and its mirrored copies (advantages, returns, old values and
  old log-probabilities repeated), which doubles (k-folds) the data for free;
* mirror loss: L_sym = mean ‖μ(M_s s) − M_a μ(s)‖² over the mirrored copies, with M_a μ(s) held fixed, added to the
  PPO loss with weight ``mirror_loss_coeff``. With neither switch on, the loss is still computed, detached, for logging.

Algorithms that store flat, concatenated model inputs instead of TensorDicts (ours) convert with :class:`GroupLayout`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from rsl_rl.utils import resolve_callable

AugmentationFunc = Callable[..., tuple[TensorDictBase | None, torch.Tensor | None]]
"""``(env=..., obs=TensorDict | None, actions=Tensor | None) -> (obs_aug | None, actions_aug | None)``."""

REPEATED_BATCH_FIELDS = ("old_actions_log_prob", "values", "advantages", "returns")
"""Per-sample rollout quantities of an rsl-rl-lib mini-batch that augmentation repeats for the mirrored copies."""


class Symmetry:
    """A user mirror function and how the algorithm uses it (augmentation, mirror loss, both, or logging only)."""

    def __init__(
        self,
        env: Any,
        data_augmentation_func: str | Callable,
        use_data_augmentation: bool = False,
        use_mirror_loss: bool = False,
        mirror_loss_coeff: float = 0.0,
    ) -> None:
        """Resolve the mirror function.

        Args:
            env: Passed to the function as ``env=`` (Isaac Lab's functions read the observation layout from
                ``env.unwrapped``): the env object the user gave the runner, not an internal adapter.
            data_augmentation_func: The function itself or its ``"module.path:function"`` name (what Isaac Lab's
                dict configs hold), resolved with :func:`rsl_rl.utils.resolve_callable`.
            use_data_augmentation: Append the mirrored samples to every mini-batch.
            use_mirror_loss: Add ``mirror_loss_coeff`` · L_sym to the policy loss.
            mirror_loss_coeff: Weight of L_sym.
        """
        if data_augmentation_func is None:
            raise ValueError("symmetry_cfg.data_augmentation_func is required: a callable or 'module.path:function'")
        self.env = env
        self.use_data_augmentation = bool(use_data_augmentation)
        self.use_mirror_loss = bool(use_mirror_loss)
        self.mirror_loss_coeff = float(mirror_loss_coeff)
        self.data_augmentation_func: AugmentationFunc = resolve_callable(data_augmentation_func)
        if not (self.use_data_augmentation or self.use_mirror_loss):
            warnings.warn(
                "symmetry_cfg turns on neither use_data_augmentation nor use_mirror_loss: mirror loss logged only",
                stacklevel=2,
            )

    def augment(
        self, obs: TensorDictBase | None = None, actions: torch.Tensor | None = None
    ) -> tuple[TensorDictBase | None, torch.Tensor | None]:
        """Call the user function (``env=, obs=, actions=`` keywords) and check the shapes it returns."""
        obs_aug, actions_aug = self.data_augmentation_func(env=self.env, obs=obs, actions=actions)
        for given, returned, what in ((obs, obs_aug, "obs"), (actions, actions_aug, "actions")):
            if given is None:
                continue
            if returned is None:
                raise ValueError(f"data_augmentation_func returned None for the {what} it was given")
            size, new_size = given.shape[0], returned.shape[0]
            if new_size < size or new_size % size:
                raise ValueError(
                    f"data_augmentation_func returned {new_size} {what} rows for {size}; expected a multiple k·{size}"
                )
        return obs_aug, actions_aug

    # --- rsl-rl-lib's mini-batch interface ----------------------------------------------------------------------------

    def augment_batch(self, batch: Any, original_batch_size: int) -> None:
        """Replace ``batch.observations`` and ``batch.actions`` by [original; mirrored copies] (``[k·B, ...]``) and
        repeat ``old_actions_log_prob``, ``values``, ``advantages``, ``returns`` k times; a no-op unless
        ``use_data_augmentation``. Distribution parameters are not repeated: KL and entropy use the originals."""
        if not self.use_data_augmentation:
            return
        obs, actions = self.augment(obs=batch.observations, actions=batch.actions)
        assert obs is not None and actions is not None  # augment() raises when the function drops them
        k = obs.batch_size[0] // original_batch_size
        if actions.shape[0] != k * original_batch_size:
            raise ValueError(
                f"data_augmentation_func made {k} copies of the observations but "
                f"{actions.shape[0] // original_batch_size} of the actions"
            )
        batch.observations, batch.actions = obs, actions
        for name in REPEATED_BATCH_FIELDS:
            value = getattr(batch, name, None)
            if value is not None:
                setattr(batch, name, value.repeat(k, *([1] * (value.dim() - 1))))

    def compute_loss(
        self, actor: Callable[[TensorDictBase], torch.Tensor], batch: Any, original_batch_size: int
    ) -> torch.Tensor:
        """L_sym of the mini-batch, with ``actor(obs) -> action means``.

        Mirrors ``batch.observations`` first unless :meth:`augment_batch` already did (``batch`` is not modified).
        Detached unless ``use_mirror_loss``, so that it can be logged without training on it.
        """
        obs = batch.observations
        if not self.use_data_augmentation:
            obs, _ = self.augment(obs=obs)
            assert obs is not None  # augment() raises when the function drops them
        loss = self.mirror_loss(actor(obs), original_batch_size)
        return loss if self.use_mirror_loss else loss.detach()

    def mirror_loss(self, mean_actions: torch.Tensor, original_batch_size: int) -> torch.Tensor:
        """L_sym = mean over the copies, samples and action dims of (μ(M_s s) − M_a μ(s))².

        ``mean_actions[k·B, A]``: the actor's means on [original; mirrored] observations. The target M_a μ(s) is built
        from the first B rows and carries no gradient, so only μ(M_s s) is pulled towards it (rsl-rl-lib's choice).
        """
        n = original_batch_size
        _, mirrored = self.augment(actions=mean_actions[:n].detach())
        assert mirrored is not None
        if mirrored.shape[0] != mean_actions.shape[0]:
            raise ValueError(
                f"the actor saw {mean_actions.shape[0] // n} copies of the observations but data_augmentation_func "
                f"made {mirrored.shape[0] // n} of the actions"
            )
        return nn.functional.mse_loss(mean_actions[n:], mirrored[n:])

    # --- flat model inputs (our storage) ------------------------------------------------------------------------------

    def augment_inputs(
        self, layout: GroupLayout, inputs: Mapping[str, torch.Tensor], actions: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """:meth:`augment` for flat model inputs: ``inputs[set] [B, D_set]`` → ``[k·B, D_set]`` for every set of
        ``layout``, and ``actions[B, A]`` → ``[k·B, A]``."""
        obs_aug, actions_aug = self.augment(obs=layout.split(inputs), actions=actions)
        assert obs_aug is not None
        return layout.join(obs_aug), actions_aug


class GroupLayout:
    """Where each observation group sits in the flat inputs of the observation sets an algorithm stores.

    Our PPO stores ``{"actor": [B, D_actor], "critic": [B, D_critic]}``, each the concatenation of its
    ``obs_groups[set]``; a mirror function wants the groups by name. :meth:`split` views the columns back into a
    TensorDict of groups (no copy) and :meth:`join` concatenates a (mirrored) TensorDict into the sets again. A group
    used by several sets is read from the first set that holds it and written to all of them.
    """

    def __init__(self, obs: TensorDictBase, obs_groups: Mapping[str, Sequence[str]]) -> None:
        """``obs``: an observation of the env (for the group widths); ``obs_groups``: the stored sets, e.g.
        ``{"actor": ["policy"], "critic": ["policy", "privileged"]}``."""
        self.sets = {name: list(groups) for name, groups in obs_groups.items()}
        self.columns: dict[str, tuple[str, slice]] = {}
        """group → (the set whose columns it is read from, its columns there)."""
        for name, groups in self.sets.items():
            start = 0
            for group in groups:
                if obs[group].dim() != 2:
                    raise ValueError(f"symmetry needs flat [N, dim] groups; {group!r} has shape {obs[group].shape}")
                width = obs[group].shape[-1]
                self.columns.setdefault(group, (name, slice(start, start + width)))
                start += width

    def split(self, inputs: Mapping[str, torch.Tensor]) -> TensorDict:
        """``inputs[set] [B, D_set]`` → TensorDict of the groups ``[B, D_group]`` (views)."""
        batch = next(iter(inputs.values())).shape[0]
        groups = {group: inputs[name][:, cols] for group, (name, cols) in self.columns.items()}
        return TensorDict(groups, batch_size=[batch])

    def join(self, obs: TensorDictBase) -> dict[str, torch.Tensor]:
        """TensorDict of groups ``[B, D_group]`` → ``{set: [B, D_set]}``."""
        return {
            name: obs[groups[0]] if len(groups) == 1 else torch.cat([obs[g] for g in groups], dim=-1)
            for name, groups in self.sets.items()
        }


def resolve_symmetry_config(alg_cfg: dict, env: Any) -> dict:
    """Complete ``alg_cfg["symmetry_cfg"]`` for :class:`Symmetry` as rsl-rl-lib does: add ``env`` (the mirror function
    reads the observation layout from it). A missing or None ``symmetry_cfg`` becomes None. Returns a new dict; the
    caller's dicts are not modified."""
    symmetry_cfg = alg_cfg.get("symmetry_cfg")
    if symmetry_cfg is None:
        return {**alg_cfg, "symmetry_cfg": None}
    return {**alg_cfg, "symmetry_cfg": {**symmetry_cfg, "env": env}}
