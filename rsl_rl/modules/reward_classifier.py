"""Learned reward classifier (SERL §4, issue 12): a binary success classifier over one observation group.

SERL replaces a hand-written success check by a classifier trained on labelled observations: positives are the *next*
observations of successful transitions, negatives all others; the reward is ``1[success]`` and a success ends the
episode (``tasks/wrappers/reward_classifier.py``). SERL's network: frozen ResNet-10 → Dense 256 → Dropout 0.1 →
LayerNorm → ReLU → Dense 1 (logit); BCE, Adam 1e-4, batches of 128 positives + 128 negatives, random-crop augmentation.

Here, per observation group:

* a state vector ``[N, D]``: empirical normalisation (statistics of the training split, then fixed) → the head;
* an image ``[N, C, H, W]`` (uint8 in [0, 255] or float in [0, 1]): DrQ random shift in training (pad 4 by edge
  replication, random crop back, per sample) → :class:`~rsl_rl.modules.cnn.CNN` → the head. The encoder may be loaded
  from a local state-dict file and frozen (SERL freezes its pretrained ResNet); nothing is ever downloaded.

The head is SERL's block ``Dense → Dropout → LayerNorm → ReLU`` per entry of ``hidden_dims``, then ``Dense(1)``.

The decision threshold is chosen on a held-out, stratified validation split (:func:`choose_threshold`): the smallest
threshold whose validation precision reaches ``target_precision``, which gives the largest recall among those; if no
threshold reaches it, the F1-best threshold (the report says which). The default 0.97 is the project's faithfulness
criterion (held-out recall ≥ 0.95 at precision ≥ 0.97).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsl_rl.atomic import atomic_write, load_weights_only
from rsl_rl.modules.cnn import CNN, default_cnn_cfg, is_per_group, validate_cnn_cfg
from rsl_rl.modules.normalization import EmpiricalNormalization

CHECKPOINT_FORMAT = "rsl_rl_forge.reward_classifier"
CHECKPOINT_VERSION = 1


@dataclass
class RewardClassifierConfig:
    """Network and training of a reward classifier (defaults: SERL's, see the module docstring)."""

    group: str = "policy"
    """Observation group the classifier reads: a vector ``[N, D]`` or an image ``[N, C, H, W]``."""
    hidden_dims: tuple[int, ...] = (256,)
    """Widths of the head's Dense → Dropout → LayerNorm → ReLU blocks (SERL: one block of 256)."""
    cnn_cfg: dict[str, Any] = field(default_factory=default_cnn_cfg)
    """Image groups: :class:`~rsl_rl.modules.cnn.CNN` keyword arguments of the encoder (one encoder, flattened)."""
    dropout: float = 0.1
    """Dropout probability in each head block, in [0, 1)."""
    learning_rate: float = 1e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Samples per gradient step, half positives and half negatives (SERL: 128 + 128); even, ≥ 2."""
    steps: int = 1000
    """Gradient steps. SERL runs 100 (HIL-SERL 150) on a frozen pretrained encoder; heads and encoders trained from
    scratch need more."""
    val_fraction: float = 0.2
    """Fraction of each class held out for choosing the threshold and reporting precision/recall, in (0, 1)."""
    target_precision: float = 0.97
    """Validation precision the threshold must reach, in (0, 1]."""
    augment: bool = True
    """Image groups: DrQ random shift during training (ignored for vectors)."""
    augment_pad: int = 4
    """Image groups: pixels of edge padding before the random crop (DrQ, SERL: 4)."""
    encoder_path: str | None = None
    """Image groups: a local file holding the encoder's state dict (``torch.save``), loaded before training."""
    freeze_encoder: bool = False
    """Keep the loaded encoder fixed (SERL freezes its pretrained ResNet); needs ``encoder_path``."""

    def __post_init__(self) -> None:
        if not isinstance(self.group, str) or not self.group:
            raise ValueError(f"group={self.group!r}; need the name of an observation group")
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        if not self.hidden_dims or min(self.hidden_dims) <= 0:
            raise ValueError(f"hidden_dims={self.hidden_dims}; need at least one positive width")
        if is_per_group(self.cnn_cfg):
            raise ValueError("cnn_cfg must be one encoder's CNN arguments, not {group: kwargs}: a classifier reads one")
        validate_cnn_cfg(self.cnn_cfg, "cnn_cfg")
        if self.cnn_cfg.get("flatten", True) is not True:
            raise ValueError("cnn_cfg['flatten'] must be True: the head reads a feature vector")
        checks = {
            "dropout": (0.0 <= self.dropout < 1.0, "[0, 1)"),
            "learning_rate": (self.learning_rate > 0.0, "> 0"),
            "batch_size": (self.batch_size >= 2 and self.batch_size % 2 == 0, "an even integer >= 2"),
            "steps": (self.steps >= 1, "an integer >= 1"),
            "val_fraction": (0.0 < self.val_fraction < 1.0, "(0, 1)"),
            "target_precision": (0.0 < self.target_precision <= 1.0, "(0, 1]"),
            "augment_pad": (self.augment_pad >= 0, "an integer >= 0"),
        }
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: {allowed}")
        if self.freeze_encoder and self.encoder_path is None:
            raise ValueError("freeze_encoder=True needs encoder_path (freezing a random encoder learns nothing)")


@dataclass
class RewardClassifierReport:
    """What training measured; precision, recall, accuracy and the counts are on the held-out validation split."""

    threshold: float
    """Decision threshold on the success probability (success where ``p >= threshold``)."""
    threshold_logit: float
    """The same threshold as a logit (what :meth:`RewardClassifier.predict_success` compares)."""
    target_precision: float
    """Precision the threshold was chosen to reach."""
    target_reached: bool
    """Whether some threshold reached it on the validation split (else the threshold is the F1-best)."""
    precision: float
    recall: float
    accuracy: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    train_positives: int
    train_negatives: int
    batch_positive_fraction: float
    """Fraction of positives over every training batch (balanced sampling: 0.5)."""
    final_loss: float
    """Mean BCE over the last (up to) 50 training steps."""
    steps: int


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation: pad ``images [B, C, H, W]`` (float) by ``pad`` pixels replicating the edge, then crop a random
    ``H × W`` window per sample (an integer shift in ``[-pad, pad]`` per axis)."""
    if pad == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offset = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=images.device)
    rows = offset[:, :1] + torch.arange(h, device=images.device)  # [B, H]
    cols = offset[:, 1:] + torch.arange(w, device=images.device)  # [B, W]
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    # Advanced indices around a slice: the result is [B, H, W, C].
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


class RewardClassifier(nn.Module):
    """``obs[N, ...]`` of one group → success logit ``[N]``; :meth:`predict_success` applies the chosen threshold."""

    def __init__(self, cfg: RewardClassifierConfig, obs_shape: tuple[int, ...] | list[int]) -> None:
        """``obs_shape``: the group's shape per sample, ``[D]`` or ``[C, H, W]``."""
        super().__init__()
        self.cfg = cfg
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.is_image = len(self.obs_shape) == 3
        if len(self.obs_shape) not in (1, 3):
            raise ValueError(f"group {cfg.group!r} has shape {list(self.obs_shape)} per sample; need [D] or [C, H, W]")
        self.normalizer: EmpiricalNormalization | None = None
        self.encoder: CNN | None = None
        if self.is_image:
            c, h, w = self.obs_shape
            self.encoder = CNN((h, w), c, **cfg.cnn_cfg)
            assert isinstance(self.encoder.output_dim, int)  # flatten=True is validated
            width = self.encoder.output_dim
        else:
            self.normalizer = EmpiricalNormalization(self.obs_shape[0])
            width = self.obs_shape[0]
        blocks: list[nn.Module] = []
        for hidden in cfg.hidden_dims:  # SERL: Dense → Dropout → LayerNorm → ReLU
            blocks += [nn.Linear(width, hidden), nn.Dropout(cfg.dropout), nn.LayerNorm(hidden), nn.ReLU()]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*blocks)
        self.threshold_logit: torch.Tensor
        self.register_buffer("threshold_logit", torch.zeros(()))  # p ≥ 0.5 until training chooses one (SERL's rule)
        self.encoder_frozen = False
        self.generator: torch.Generator | None = None
        """Random stream of the augmentation (training sets it; None: torch's global one)."""

    @property
    def threshold(self) -> float:
        """Decision threshold on the success probability."""
        return float(torch.sigmoid(self.threshold_logit.double()))

    def train(self, mode: bool = True) -> RewardClassifier:
        super().train(mode)
        if self.encoder is not None and self.encoder_frozen:
            self.encoder.eval()  # a frozen encoder's norm statistics stay fixed too
        return self

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Success logits ``[N]`` of ``obs[N, *obs_shape]`` (augmented in training mode)."""
        if self.encoder is not None:
            x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
            if self.training and self.cfg.augment:
                x = random_shift(x, self.cfg.augment_pad, self.generator)
            x = self.encoder(x)
        else:
            assert self.normalizer is not None
            x = self.normalizer(obs.float())
        return self.head(x).squeeze(-1)

    @torch.no_grad()
    def success_probability(self, obs: torch.Tensor) -> torch.Tensor:
        """``σ(logit)`` ``[N]``, in evaluation mode (no dropout, no augmentation)."""
        return torch.sigmoid(self._eval_logits(obs))

    @torch.no_grad()
    def predict_success(self, obs: torch.Tensor) -> torch.Tensor:
        """``bool [N]``: the probability reaches the chosen threshold (compared as logits: no host sync)."""
        return self._eval_logits(obs) >= self.threshold_logit

    @torch.no_grad()
    def judge(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`predict_success` and :meth:`success_probability` from one forward pass."""
        logits = self._eval_logits(obs)
        return logits >= self.threshold_logit, torch.sigmoid(logits)

    @torch.no_grad()
    def _eval_logits(self, obs: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(part) for part in obs.split(chunk)]) if obs.shape[0] else obs.new_zeros(0).float()
        finally:
            self.train(was_training)

    # --- pretrained encoder --------------------------------------------------------------------------------------

    def load_encoder(self, path: str | Path, freeze: bool = False) -> None:
        """Load the CNN encoder's weights from a local ``torch.save`` file: the encoder's state dict (keys as in
        ``self.encoder.state_dict()``, optionally prefixed ``encoder.``) or a reward-classifier checkpoint. Loaded with
        ``weights_only=True``; never downloads. With ``freeze`` the encoder is not trained."""
        if self.encoder is None:
            raise ValueError(f"encoder_path: group {self.cfg.group!r} is a vector; only image groups have an encoder")
        state = load_weights_only(path, "encoder file", "cpu")
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            state = state.get("state_dict", {})
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} is not an encoder state dict (a dict of parameter name -> tensor)")
        if any(str(k).startswith("encoder.") for k in state):  # saved from a whole classifier: keep its encoder
            state = {k[len("encoder.") :]: v for k, v in state.items() if str(k).startswith("encoder.")}
        own = self.encoder.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        shapes = [
            f"{k}: file {list(state[k].shape)} vs model {list(own[k].shape)}"
            for k in sorted(set(own) & set(state))
            if state[k].shape != own[k].shape
        ]
        problems = [
            f"{name} {items}"
            for name, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", shapes),
            )
            if items
        ]
        if problems:
            raise ValueError(
                f"{path} does not fit this classifier's encoder (cnn_cfg {self.cfg.cnn_cfg}, input "
                f"{list(self.obs_shape)}): {'; '.join(problems)}"
            )
        self.encoder.load_state_dict(state)
        if freeze:
            self.encoder.requires_grad_(False)
            self.encoder_frozen = True
            self.train(self.training)

    # --- checkpoints ---------------------------------------------------------------------------------------------

    def save(self, path: str | Path, report: RewardClassifierReport | None = None) -> Path:
        """Write a checkpoint dict (config, network state dict, normaliser, threshold, report) atomically."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": asdict(self.cfg),
            "obs_shape": list(self.obs_shape),
            "state_dict": {k: v for k, v in state.items() if not k.startswith("normalizer.")},
            "normalizer": {k[len("normalizer.") :]: v for k, v in state.items() if k.startswith("normalizer.")} or None,
            "threshold": self.threshold,
            "report": asdict(report) if report is not None else None,
        }
        return atomic_write(path, lambda f: torch.save(checkpoint, f))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> RewardClassifier:
        """Rebuild a classifier from :meth:`save`'s file (``weights_only=True``: loading never runs code); the
        encoder file named in its config is not read again (its weights are in the checkpoint). Evaluation mode."""
        checkpoint = load_weights_only(path, "reward classifier checkpoint", "cpu")
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a reward classifier checkpoint (no 'format': {CHECKPOINT_FORMAT!r})")
        if checkpoint.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint version {checkpoint.get('version')}, this code reads 1")
        known = {f.name for f in fields(RewardClassifierConfig)}
        cfg = RewardClassifierConfig(**{k: v for k, v in checkpoint["config"].items() if k in known})
        model = cls(cfg, checkpoint["obs_shape"])
        state = dict(checkpoint["state_dict"])
        state.update({f"normalizer.{k}": v for k, v in (checkpoint.get("normalizer") or {}).items()})
        try:
            model.load_state_dict(state)
        except RuntimeError as err:  # keys or shapes that do not match the saved config
            raise ValueError(f"{path}: the saved weights do not fit the saved config: {err}") from err
        return model.to(device).eval()


# --- training ------------------------------------------------------------------------------------------------------


def balanced_batch_indices(
    positives: torch.Tensor, negatives: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``batch_size // 2`` indices drawn uniformly (with replacement) from ``positives`` and as many from
    ``negatives`` (index tensors ``[P]``, ``[M]``): every batch is 50/50 whatever the class ratio of the data."""
    half = batch_size // 2
    pos = positives[torch.randint(0, positives.numel(), (half,), generator=generator, device=positives.device)]
    neg = negatives[torch.randint(0, negatives.numel(), (half,), generator=generator, device=negatives.device)]
    return torch.cat([pos, neg])


def stratified_split(
    labels: torch.Tensor, val_fraction: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices of ``labels [M]`` bool: each class is shuffled and ``round(val_fraction · n)``
    of it (at least 1, leaving at least 1) held out, so both splits keep the class ratio."""
    train, val = [], []
    for cls in (True, False):
        idx = torch.nonzero(labels == cls).squeeze(-1)
        idx = idx[torch.randperm(idx.numel(), generator=generator, device=idx.device)]
        n_val = min(max(round(val_fraction * idx.numel()), 1), idx.numel() - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train), torch.cat(val)


def choose_threshold(scores: torch.Tensor, labels: torch.Tensor, target_precision: float) -> tuple[float, bool]:
    """Threshold on ``scores [M]`` (success where ``score >= threshold``) for ``labels [M]`` bool.

    Candidates are the distinct scores. Returns ``(threshold, True)`` for the smallest candidate whose precision
    reaches ``target_precision`` (recall only grows as the threshold falls, so this is the highest recall at that
    precision), else ``(F1-best candidate, False)``.
    """
    if not bool(labels.any()):
        raise ValueError("choose_threshold needs at least one positive label")
    order = torch.argsort(scores.double(), descending=True)
    s, y = scores.double()[order], labels[order].to(torch.bool)
    tp = y.double().cumsum(0)
    fp = (~y).double().cumsum(0)
    # A cut is valid only after the last of equal scores: `score >= t` takes all of them or none.
    last = torch.ones_like(y)
    last[:-1] = s[1:] != s[:-1]
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    reached = last & (precision >= target_precision - 1e-12)
    if bool(reached.any()):
        return float(s[torch.nonzero(reached)[-1, 0]]), True
    f1 = torch.where(last, 2 * precision * recall / (precision + recall).clamp_min(1e-12), -1.0)
    return float(s[int(torch.argmax(f1))]), False


def train_reward_classifier(
    obs: torch.Tensor, labels: torch.Tensor, cfg: RewardClassifierConfig, seed: int = 0
) -> tuple[RewardClassifier, RewardClassifierReport]:
    """Train a classifier on ``obs [M, *shape]`` (one group) with success ``labels [M]`` (bool), on ``obs.device``.

    Stratified hold-out split, balanced batches, BCE with Adam, threshold chosen on the held-out split. Deterministic
    for a seed: parameters, dropout, batches and augmentation draw from RNGs seeded here, and torch's global RNG is
    left as it was. Returns the classifier in evaluation mode and the report of the held-out split.
    """
    labels = labels.reshape(-1).to(device=obs.device, dtype=torch.bool)
    if obs.shape[0] != labels.shape[0]:
        raise ValueError(f"obs has {obs.shape[0]} samples, labels {labels.shape[0]}")
    if obs.is_floating_point() and not bool(torch.isfinite(obs).all()):
        raise ValueError("obs holds NaN or inf")
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos < 2 or n_neg < 2:
        raise ValueError(f"need at least 2 positives and 2 negatives (one of each held out), got {n_pos} and {n_neg}")
    device = obs.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        generator = torch.Generator(device=device).manual_seed(seed)
        train_idx, val_idx = stratified_split(labels, cfg.val_fraction, generator)
        model = RewardClassifier(cfg, tuple(obs.shape[1:])).to(device)
        if cfg.encoder_path is not None:
            model.load_encoder(cfg.encoder_path, cfg.freeze_encoder)
        if model.normalizer is not None:  # statistics of the training split only, then fixed
            model.normalizer.update(obs[train_idx].float())
        positives, negatives = train_idx[labels[train_idx]], train_idx[~labels[train_idx]]
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
        model.generator = generator
        model.train()
        # Kept on the device: no host sync inside the loop.
        positive_sum, loss_tail = torch.zeros((), device=device), torch.zeros((), device=device)
        tail = min(50, cfg.steps)
        for step in range(cfg.steps):
            idx = balanced_batch_indices(positives, negatives, cfg.batch_size, generator)
            target = labels[idx].float()
            loss = F.binary_cross_entropy_with_logits(model(obs[idx]), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            positive_sum += target.mean()
            if step >= cfg.steps - tail:
                loss_tail += loss.detach()
        model.generator = None
        model.eval()
        scores = model._eval_logits(obs[val_idx])
    val_labels = labels[val_idx]
    threshold_logit, reached = choose_threshold(scores, val_labels, cfg.target_precision)
    model.threshold_logit.fill_(threshold_logit)
    predicted = scores >= model.threshold_logit
    tp = int((predicted & val_labels).sum())
    fp = int((predicted & ~val_labels).sum())
    fn = int((~predicted & val_labels).sum())
    tn = int((~predicted & ~val_labels).sum())
    report = RewardClassifierReport(
        threshold=model.threshold,
        threshold_logit=threshold_logit,
        target_precision=cfg.target_precision,
        target_reached=reached,
        precision=tp / (tp + fp) if tp + fp else math.nan,
        recall=tp / (tp + fn),
        accuracy=(tp + tn) / val_labels.numel(),
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
        train_positives=int(positives.numel()),
        train_negatives=int(negatives.numel()),
        batch_positive_fraction=float(positive_sum) / cfg.steps,
        final_loss=float(loss_tail) / tail,
        steps=cfg.steps,
    )
    return model, report
