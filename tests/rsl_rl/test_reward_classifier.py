"""Reward classifier (issue 12, SERL §4): balanced batches, stratified split, threshold selection, DrQ augmentation,
learning on real pendulum states and pixel-pendulum images, pretrained encoders from local files, checkpoints that load
without running code, and the ``rsl-rl train-classifier`` command on demo files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from tensordict import TensorDict

from rsl_rl.cli.main import main
from rsl_rl.modules.reward_classifier import (
    RewardClassifier,
    RewardClassifierConfig,
    balanced_batch_indices,
    choose_threshold,
    random_shift,
    stratified_split,
    train_reward_classifier,
)
from rsl_rl.storage.demos import DemoData, save_demos
from tasks.classic.pendulum import PendulumCfg, PendulumEnv
from tasks.classic.pixel_pendulum import PixelPendulumCfg, PixelPendulumEnv

SMALL_CNN = {"output_channels": [16, 16], "kernel_size": [6, 3], "stride": [3, 2]}


# --- real pendulum data --------------------------------------------------------------------------------------------


def upright_and_slow(state: torch.Tensor) -> torch.Tensor:
    """Pendulum success from ``(cos θ, sin θ, θ̇)``: |θ| < 0.2 rad and |θ̇| < 1 rad/s."""
    return (torch.atan2(state[:, 1], state[:, 0]).abs() < 0.2) & (state[:, 2].abs() < 1.0)


def reached_obs(done: torch.Tensor, final_obs: TensorDict, obs: TensorDict) -> TensorDict:
    """The observation each env reached: ``final_obs`` where its episode ended, else ``obs``."""
    return final_obs.apply(lambda f, o: torch.where(done.view(-1, *([1] * (f.dim() - 1))), f, o), obs)


def rollouts(env: Any, steps: int, seed: int) -> dict[str, torch.Tensor]:
    """``[N, T, ...]`` tensors of real rollouts: half the envs run a noisy PD controller toward upright (so the data
    holds many successes and near misses), half act uniformly at random. ``next_obs`` is the observation each step
    reached (the final observation where the episode ended)."""
    g = torch.Generator().manual_seed(seed)
    n = env.num_envs
    scripted = (torch.arange(n) % 2 == 0).unsqueeze(-1)
    obs = env.reset()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "next_obs", "state", "actions", "rewards", "done")}
    out.update(terminated=[], truncated=[])
    for _ in range(steps):
        state = obs["critic"] if "critic" in obs else obs["policy"]
        theta = torch.atan2(state[:, 1], state[:, 0])
        pd = (-10.0 * theta - 2.0 * state[:, 2]).unsqueeze(-1) + torch.randn(n, 1, generator=g)
        actions = torch.where(scripted, pd, 4.0 * torch.rand(n, 1, generator=g) - 2.0).clamp(-2.0, 2.0)
        next_obs, reward, terminated, truncated, extras = env.step(actions)
        reached = reached_obs(terminated | truncated, extras["final_obs"], next_obs)
        for key, value in (("obs", obs["policy"]), ("next_obs", reached["policy"]), ("actions", actions)):
            out[key].append(value)
        out["state"].append(reached["critic"] if "critic" in reached else reached["policy"])
        out["rewards"].append(reward)
        out["terminated"].append(terminated)
        out["truncated"].append(truncated)
        obs = next_obs
    data = {k: torch.stack(v, dim=1) for k, v in out.items() if v}
    data["success"] = upright_and_slow(data["state"].flatten(0, 1)).view(n, steps)
    return data


def flat(data: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    return data[key].flatten(0, 1)


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255.0).round().to(torch.uint8)


def pendulum_cfg(cls: type = PendulumCfg) -> Any:
    return cls(num_envs=32, init_angle=1.0, init_velocity=2.0, max_episode_steps=100)


@pytest.fixture(scope="module")
def states() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Training rollouts and independent test rollouts (other seed) of the state pendulum."""
    return rollouts(PendulumEnv(pendulum_cfg(), seed=0), 150, 0), rollouts(PendulumEnv(pendulum_cfg(), seed=1), 150, 1)


@pytest.fixture(scope="module")
def images() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    cfg = pendulum_cfg(PixelPendulumCfg)
    return rollouts(PixelPendulumEnv(cfg, seed=0), 100, 0), rollouts(PixelPendulumEnv(cfg, seed=1), 100, 1)


def precision_recall(predicted: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    tp = int((predicted & labels).sum())
    return tp / max(int(predicted.sum()), 1), tp / int(labels.sum())


# --- configuration -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("dropout", 1.0, r"dropout=1.0; allowed: \[0, 1\)"),
        ("batch_size", 255, "batch_size=255; allowed: an even integer >= 2"),
        ("val_fraction", 0.0, r"val_fraction=0.0; allowed: \(0, 1\)"),
        ("target_precision", 1.5, r"target_precision=1.5; allowed: \(0, 1\]"),
        ("learning_rate", 0.0, "learning_rate=0.0; allowed: > 0"),
        ("steps", 0, "steps=0; allowed: an integer >= 1"),
        ("hidden_dims", (), "hidden_dims=()"),
        ("cnn_cfg", {"output_channels": [8]}, "cnn_cfg needs 'kernel_size'"),
        ("cnn_cfg", {"output_channels": [8], "kernel_size": 3, "bogus": 1}, r"unknown key\(s\) \['bogus'\] in cnn_cfg"),
        ("freeze_encoder", True, "freeze_encoder=True needs encoder_path"),
    ],
)
def test_config_errors_name_the_field_and_the_allowed_values(field: str, value: Any, match: str) -> None:
    with pytest.raises((ValueError, KeyError), match=match):
        RewardClassifierConfig(**{field: value})


def test_defaults_are_serls() -> None:
    cfg = RewardClassifierConfig()
    assert (cfg.learning_rate, cfg.batch_size, cfg.dropout, cfg.hidden_dims, cfg.augment_pad) == (
        1e-4,
        256,
        0.1,
        (256,),
        4,
    )
    head = RewardClassifier(cfg, (2, 24, 24)).head
    assert [type(m) for m in head] == [torch.nn.Linear, torch.nn.Dropout, torch.nn.LayerNorm, torch.nn.ReLU] + [
        torch.nn.Linear
    ]
    assert head[0].out_features == 256 and head[-1].out_features == 1


# --- batches, split, threshold -------------------------------------------------------------------------------------


def test_balanced_batches_are_half_positive_under_1_to_20_imbalance() -> None:
    labels = torch.zeros(2100, dtype=torch.bool)
    labels[torch.randperm(2100, generator=torch.Generator().manual_seed(0))[:100]] = True  # 100 : 2000
    positives, negatives = torch.nonzero(labels).squeeze(-1), torch.nonzero(~labels).squeeze(-1)
    g = torch.Generator().manual_seed(1)
    seen = torch.zeros(2100, dtype=torch.bool)
    for _ in range(50):
        idx = balanced_batch_indices(positives, negatives, 256, g)
        assert idx.shape == (256,) and int(labels[idx].sum()) == 128
        seen[idx] = True
    assert seen[labels].all()  # every positive is drawn (uniform with replacement), not a fixed subset

    # What training did: the report counts the positives of the batches it actually used.
    x = torch.randn(2100, 3)
    _, report = train_reward_classifier(x, labels, RewardClassifierConfig(steps=20, hidden_dims=(8,)), seed=0)
    assert report.batch_positive_fraction == 0.5
    assert (report.train_positives, report.train_negatives) == (80, 1600)


def test_stratified_split_keeps_the_class_ratio_and_is_a_partition() -> None:
    labels = torch.arange(1050) < 50
    train, val = stratified_split(labels, 0.2, torch.Generator().manual_seed(0))
    assert int(labels[val].sum()) == 10 and int((~labels[val]).sum()) == 200
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(1050))
    tiny = torch.tensor([True, True, False, False, False])
    _, val = stratified_split(tiny, 0.01)
    assert int(tiny[val].sum()) == 1 and int((~tiny[val]).sum()) == 1  # at least one of each class held out


def test_threshold_is_the_smallest_reaching_the_target_precision() -> None:
    # Cut after each score: precision 1, 1, 2/3, 3/4, 4/5, 4/6, 5/7, 5/8, 5/9, 5/10.
    scores = torch.tensor([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.3, 0.2, 0.1])
    labels = torch.tensor([1, 1, 0, 1, 1, 0, 1, 0, 0, 0], dtype=torch.bool)
    assert choose_threshold(scores, labels, 0.75) == (pytest.approx(0.7), True)  # precision 0.8, recall 0.8
    assert choose_threshold(scores, labels, 0.97) == (pytest.approx(0.9), True)  # precision 1, recall 0.4
    assert choose_threshold(scores, labels, 0.5) == (pytest.approx(0.1), True)  # everything: precision 0.5
    for target in (0.75, 0.97, 0.81, 0.7):
        threshold, _ = choose_threshold(scores, labels, target)
        assert precision_recall(scores >= threshold, labels)[0] >= target
        for lower in scores[scores < threshold]:  # every smaller cut misses the target
            assert precision_recall(scores >= lower, labels)[0] < target
    # Equal scores are one cut: 0.8 would include the negative tied with the positive.
    tied = torch.tensor([0.9, 0.8, 0.8, 0.1])
    assert choose_threshold(tied, torch.tensor([True, True, False, False]), 0.9) == (pytest.approx(0.9), True)
    # Unreachable target: the F1-best cut (0.6: precision 0.5, recall 1, F1 2/3), reported as not reached.
    worst = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert choose_threshold(worst, torch.tensor([False, True, False, True]), 0.97) == (pytest.approx(0.6), False)


# --- augmentation --------------------------------------------------------------------------------------------------


def test_random_shift_is_an_integer_shift_of_the_edge_padded_image() -> None:
    images = torch.rand(64, 2, 12, 12)
    out = random_shift(images, 4, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    padded = F.pad(images, (4, 4, 4, 4), mode="replicate")
    shifts = []
    for b in range(64):
        match = [
            (r, c) for r in range(9) for c in range(9) if torch.equal(padded[b, :, r : r + 12, c : c + 12], out[b])
        ]
        assert match, f"sample {b} is not a crop of its padded image"
        shifts.append(match[0])
    assert len(set(shifts)) > 20  # per-sample shifts over the whole range
    assert {r for r, _ in shifts} == set(range(9)) and {c for _, c in shifts} == set(range(9))
    assert torch.equal(random_shift(images, 0), images)


def test_the_cnn_augments_in_training_only() -> None:
    model = RewardClassifier(RewardClassifierConfig(cnn_cfg=SMALL_CNN), (2, 24, 24))
    seen: list[torch.Tensor] = []
    assert model.encoder is not None
    model.encoder.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].clone()))
    x = torch.randint(0, 256, (32, 2, 24, 24), dtype=torch.uint8)
    x[:, :, :, :12] = 0  # structure, so that a shift changes the image
    model.train()
    model(x)
    changed = (seen[-1] != x.float() / 255.0).flatten(1).any(-1)
    assert changed.float().mean() > 0.8  # 1/81 of the samples draw a zero shift
    model.eval()
    model(x)
    assert torch.equal(seen[-1], x.float() / 255.0)
    model.train()  # the inference calls never augment, whatever the mode
    p1, p2 = model.success_probability(x), model.success_probability(x)
    assert torch.equal(p1, p2) and torch.equal(seen[-1], x.float() / 255.0) and model.training
    no_aug = RewardClassifier(RewardClassifierConfig(cnn_cfg=SMALL_CNN, augment=False), (2, 24, 24)).train()
    assert no_aug.encoder is not None
    no_aug.encoder.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].clone()))
    no_aug(x)
    assert torch.equal(seen[-1], x.float() / 255.0)


# --- learning on real rollouts -------------------------------------------------------------------------------------


def test_state_classifier_learns_upright_and_slow(states: Any) -> None:
    """SERL defaults (Adam 1e-4, 128 + 128, one 256 block), 1000 steps. Measured (seed 0): held-out precision 0.972,
    recall 1.0 at threshold 0.81; on independent rollouts precision 0.977, recall 0.997."""
    train, test = states
    labels = flat(train, "success")
    assert 0.1 < labels.float().mean() < 0.4  # real rollouts with both classes
    model, report = train_reward_classifier(flat(train, "next_obs"), labels, RewardClassifierConfig(), seed=0)
    assert report.target_reached and report.precision >= 0.95 and report.recall >= 0.9
    assert report.true_positives + report.false_negatives == round(0.2 * int(labels.sum()))
    precision, recall = precision_recall(model.predict_success(flat(test, "next_obs")), flat(test, "success"))
    assert precision >= 0.95 and recall >= 0.9


def test_cnn_classifier_learns_upright_and_slow_from_pixels(images: Any) -> None:
    """A 16/16-channel CNN on 2 stacked 24×24 frames (uint8), Adam 1e-3, 400 steps of 64 + 64. Measured (seed 0):
    held-out precision 0.974, recall 1.0; independent rollouts precision 0.955, recall 0.999 (seeds 1, 2: 0.947 /
    0.986 and 0.925 / 0.977)."""
    train, test = images
    cfg = RewardClassifierConfig(cnn_cfg=SMALL_CNN, learning_rate=1e-3, batch_size=128, steps=400)
    model, report = train_reward_classifier(as_uint8(flat(train, "next_obs")), flat(train, "success"), cfg, seed=0)
    assert report.target_reached and report.precision >= 0.95 and report.recall >= 0.9
    predicted = model.predict_success(as_uint8(flat(test, "next_obs")))
    precision, recall = precision_recall(predicted, flat(test, "success"))
    assert precision >= 0.9 and recall >= 0.95
    # float images in [0, 1] and their uint8 encoding get the same verdicts (up to rounding at the threshold)
    same = model.predict_success(flat(test, "next_obs")) == predicted
    assert same.float().mean() > 0.99


def test_training_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    x = torch.randint(0, 256, (200, 2, 12, 12), dtype=torch.uint8)
    y = torch.arange(200) % 4 == 0
    cfg = RewardClassifierConfig(
        cnn_cfg={"output_channels": [4], "kernel_size": 3, "stride": 2}, steps=5, batch_size=16
    )
    rng = torch.get_rng_state()
    a, report_a = train_reward_classifier(x, y, cfg, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)
    b, report_b = train_reward_classifier(x, y, cfg, seed=3)
    c, _ = train_reward_classifier(x, y, cfg, seed=4)
    assert report_a == report_b
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


def test_bad_training_data_is_refused() -> None:
    cfg = RewardClassifierConfig(steps=1)
    with pytest.raises(ValueError, match="at least 2 positives and 2 negatives"):
        train_reward_classifier(torch.randn(10, 3), torch.arange(10) == 0, cfg)
    with pytest.raises(ValueError, match="NaN or inf"):
        train_reward_classifier(torch.full((10, 3), torch.nan), torch.arange(10) < 5, cfg)
    with pytest.raises(ValueError, match="obs has 10 samples, labels 9"):
        train_reward_classifier(torch.randn(10, 3), torch.arange(9) < 5, cfg)
    with pytest.raises(ValueError, match=r"shape \[3, 4\] per sample; need \[D\] or \[C, H, W\]"):
        train_reward_classifier(torch.randn(10, 3, 4), torch.arange(10) < 5, cfg)


# --- pretrained encoders -------------------------------------------------------------------------------------------


def test_encoder_loads_from_a_local_file_and_can_be_frozen(images: Any, tmp_path: Path) -> None:
    train, _ = images
    x, y = as_uint8(flat(train, "next_obs"))[:1000], flat(train, "success")[:1000]
    cfg = RewardClassifierConfig(cnn_cfg=SMALL_CNN, learning_rate=1e-3, batch_size=64, steps=30)
    source, _ = train_reward_classifier(x, y, cfg, seed=0)
    assert source.encoder is not None
    path = tmp_path / "encoder.pt"
    torch.save(source.encoder.state_dict(), path)

    frozen_cfg = RewardClassifierConfig(**{**cfg.__dict__, "encoder_path": str(path), "freeze_encoder": True})
    frozen, _ = train_reward_classifier(x, y, frozen_cfg, seed=1)
    assert frozen.encoder is not None and frozen.encoder_frozen
    for name, value in source.encoder.state_dict().items():
        assert torch.equal(frozen.encoder.state_dict()[name], value), name  # loaded, and not trained
    with torch.random.fork_rng():  # the initial weights of that run: training seeds torch with its seed first
        torch.manual_seed(1)
        initial = RewardClassifier(frozen_cfg, x.shape[1:]).state_dict()
    assert not torch.equal(initial["encoder.0.weight"], frozen.state_dict()["encoder.0.weight"])  # it was loaded
    assert not torch.equal(initial["head.0.weight"], frozen.state_dict()["head.0.weight"])  # the head trained

    tuned, _ = train_reward_classifier(x, y, RewardClassifierConfig(**{**frozen_cfg.__dict__, "freeze_encoder": False}))
    assert not torch.equal(tuned.state_dict()["encoder.0.weight"], source.state_dict()["encoder.0.weight"])

    # A whole classifier checkpoint is also an encoder source.
    source.save(tmp_path / "classifier.pt")
    model = RewardClassifier(cfg, x.shape[1:])
    model.load_encoder(tmp_path / "classifier.pt")
    assert torch.equal(model.state_dict()["encoder.0.weight"], source.state_dict()["encoder.0.weight"])


def test_a_wrong_encoder_file_gives_a_clear_error(tmp_path: Path) -> None:
    model = RewardClassifier(RewardClassifierConfig(cnn_cfg=SMALL_CNN), (2, 24, 24))
    other = RewardClassifier(RewardClassifierConfig(cnn_cfg={**SMALL_CNN, "output_channels": [8, 16]}), (2, 24, 24))
    assert other.encoder is not None
    torch.save(other.encoder.state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(ValueError, match="encoder") as err:
        model.load_encoder(tmp_path / "narrow.pt")
    assert "shape mismatches ['0.bias: file [8] vs model [16]', '0.weight: file [8, 2, 6, 6] vs model" in str(err.value)
    assert "missing" not in str(err.value)
    RewardClassifier(RewardClassifierConfig(), (3,)).save(tmp_path / "state.pt")  # no encoder in it
    with pytest.raises(ValueError, match=r"missing keys \['0.bias', '0.weight', '2.bias', '2.weight'\]; unexpected"):
        model.load_encoder(tmp_path / "state.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a loadable encoder file"):
        model.load_encoder(tmp_path / "garbage.pt")
    with pytest.raises(FileNotFoundError, match="encoder file not found"):
        model.load_encoder(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="only image groups have an encoder"):
        RewardClassifier(RewardClassifierConfig(), (3,)).load_encoder(tmp_path / "narrow.pt")


# --- checkpoints ---------------------------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this would create a directory: a stand-in for arbitrary code in a crafted file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("shape", [(3,), (2, 24, 24)])
def test_checkpoint_round_trip(shape: tuple[int, ...], tmp_path: Path) -> None:
    x = torch.rand(300, *shape) if len(shape) == 1 else torch.randint(0, 256, (300, *shape), dtype=torch.uint8)
    y = torch.arange(300) % 3 == 0
    cfg = RewardClassifierConfig(cnn_cfg=SMALL_CNN, steps=5, batch_size=32)
    model, report = train_reward_classifier(x + (0 if len(shape) > 1 else 5.0), y, cfg, seed=0)
    path = model.save(tmp_path / "sub" / "clf.pt", report)
    assert [p.name for p in path.parent.iterdir()] == ["clf.pt"]  # no temporary file left
    raw = torch.load(path, weights_only=True)  # plain data: loads without unpickling code
    assert raw["threshold"] == pytest.approx(report.threshold) and raw["report"]["precision"] == report.precision
    assert (raw["normalizer"] is None) == (len(shape) == 3)
    loaded = RewardClassifier.load(path)
    assert not loaded.training and loaded.threshold == pytest.approx(model.threshold)
    probe = x + (0 if len(shape) > 1 else 5.0)
    assert torch.equal(loaded.success_probability(probe), model.success_probability(probe))
    assert torch.equal(loaded.predict_success(probe), model.predict_success(probe))
    if loaded.normalizer is not None:  # the training statistics came along (inputs were shifted by 5)
        assert model.normalizer is not None and torch.equal(loaded.normalizer.mean, model.normalizer.mean)
        assert loaded.normalizer.mean.min() > 4.0


def test_loading_never_runs_code_and_names_wrong_files(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    torch.save({"format": "rsl_rl_forge.reward_classifier", "payload": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="could run code"):
        RewardClassifier.load(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"actor_state_dict": {}}, tmp_path / "policy.pt")
    with pytest.raises(ValueError, match="not a reward classifier checkpoint"):
        RewardClassifier.load(tmp_path / "policy.pt")


def test_a_failed_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = RewardClassifier(RewardClassifierConfig(), (3,))
    path = model.save(tmp_path / "clf.pt")
    before = path.read_bytes()

    def broken_save(obj: Any, f: Any) -> None:
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["clf.pt"]


# --- the command ---------------------------------------------------------------------------------------------------


def demo_file(data: dict[str, torch.Tensor], path: Path, task: str, images: bool = False) -> Path:
    """Write rollouts ``[N, T, ...]`` as a demo file: env by env, episodes numbered in order."""
    n, steps = data["rewards"].shape
    done = data["terminated"] | data["truncated"]
    local = done.long().cumsum(1) - done.long()  # episode index within each env (a step ends its own episode)
    offset = torch.cat([torch.zeros(1, dtype=torch.long), (local[:, -1] + 1).cumsum(0)[:-1]])
    obs, next_obs = flat(data, "obs"), flat(data, "next_obs")
    if images:
        obs, next_obs = as_uint8(obs), as_uint8(next_obs)
    demos = DemoData(
        obs={"policy": obs},
        next_obs={"policy": next_obs},
        actions=flat(data, "actions"),
        rewards=flat(data, "rewards"),
        terminated=flat(data, "terminated"),
        truncated=flat(data, "truncated"),
        success=flat(data, "success"),
        intervention=torch.zeros(n * steps, dtype=torch.bool),
        episode=(local + offset.unsqueeze(-1)).flatten(),
        metadata={"task": task, "source": "test rollouts"},
    )
    return save_demos(path, demos)


def test_cli_trains_a_state_classifier_from_a_demo_file(
    states: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = demo_file(states[0], tmp_path / "demos.npz", "pendulum")
    out = tmp_path / "clf" / "reward_classifier.pt"
    argv = ["train-classifier", "--task", "pendulum", "--data", str(data), "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--steps", "400", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "held-out: precision" in printed and str(out) in printed
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["positives"] == int(states[0]["success"].sum()) and record["steps"] == 400
    assert record["precision"] >= 0.9 and record["recall"] >= 0.9
    model = RewardClassifier.load(out)
    precision, recall = precision_recall(model.predict_success(flat(states[1], "next_obs")), flat(states[1], "success"))
    assert precision >= 0.9 and recall >= 0.9

    # Errors name the problem (exit code 2).
    assert main([*argv, "--group", "image"]) == 2
    assert "--group 'image' is not in" in capsys.readouterr().err
    assert main([*argv, "--task", "pixel-pendulum"]) == 2
    assert "recorded on task 'pendulum', not 'pixel-pendulum'" in capsys.readouterr().err

    # Training on the learned reward: training episodes earn the classifier's successes (>= 0), while evaluation
    # keeps pendulum's own (negative) reward; the checkpoint records the classifier.
    run = tmp_path / "run"
    train = ["train", "--task", "pendulum", "--run-dir", str(run), "--logger", "none", "--max-iterations", "3"]
    assert main([*train, "--reward-classifier", str(out), "--agent.eval-interval", "3"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_mean_return"] >= 0.0 and summary["eval_mean_return"] < 0.0
    assert torch.load(run / "model_2.pt", weights_only=True)["infos"]["reward_classifier"] == str(out)
    with pytest.raises(SystemExit, match="--reward-classifier .*: no such file"):
        main([*train, "--reward-classifier", str(tmp_path / "missing.pt")])


def test_cli_trains_an_image_classifier_into_a_run_directory(
    images: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = demo_file(images[0], tmp_path / "pixels.npz", "pixel-pendulum", images=True)
    monkeypatch.chdir(tmp_path)
    assert main(["train-classifier", "--task", "pixel-pendulum", "--data", str(data), "--steps", "20"]) == 0
    (out,) = (tmp_path / "runs" / "pixel-pendulum").glob("*_classifier/reward_classifier.pt")
    assert str(out.relative_to(tmp_path)) in capsys.readouterr().out
    model = RewardClassifier.load(out)
    assert model.is_image and model.obs_shape == (2, 24, 24)
    assert model.success_probability(as_uint8(flat(images[1], "next_obs"))[:8]).shape == (8,)


def test_cli_refuses_demos_without_successes(states: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures = {**states[0], "success": torch.zeros_like(states[0]["success"])}
    data = demo_file(failures, tmp_path / "failures.npz", "pendulum")
    assert main(["train-classifier", "--task", "pendulum", "--data", str(data), "--device", "cpu"]) == 2
    assert "0 successful" in capsys.readouterr().err


def synthetic_demo_file(path: Path, states: torch.Tensor, success: torch.Tensor) -> Path:
    """A demo file of single-step episodes whose ``next_obs["policy"]`` are ``states`` ``[T, 2]``."""
    t = states.shape[0]
    return save_demos(
        path,
        DemoData(
            obs={"policy": states},
            next_obs={"policy": states},
            actions=torch.zeros(t, 1),
            rewards=success.float(),
            terminated=torch.ones(t, dtype=torch.bool),
            truncated=torch.zeros(t, dtype=torch.bool),
            success=success,
            intervention=torch.zeros(t, dtype=torch.bool),
            episode=torch.arange(t),
            metadata={"task": "pendulum", "source": "test"},
        ),
    )


def test_cli_pools_demo_files_so_a_learners_failures_become_negatives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """HIL-SERL's remedy for reward hacking: the demos alone teach the classifier "x₀ > 0.5 means success", so the
    states a learner found (x₀ high, x₁ far below anything demonstrated) are called successes. Pooled with a recording
    of those states labelled by the task (failures), the retrained classifier rejects them and still accepts the
    demonstrated successes."""
    g = torch.Generator().manual_seed(0)

    def box(n: int, x0: tuple[float, float], x1: tuple[float, float]) -> torch.Tensor:
        u = torch.rand(n, 2, generator=g)
        return torch.stack([x0[0] + (x0[1] - x0[0]) * u[:, 0], x1[0] + (x1[1] - x1[0]) * u[:, 1]], -1)

    success_states, approach_states, hacked_states = (
        box(400, (1, 2), (0, 1)),
        box(800, (-1, 0), (0, 1)),
        box(400, (1, 2), (-3, -2)),
    )
    demos = synthetic_demo_file(
        tmp_path / "demos.npz",
        torch.cat([success_states, approach_states]),
        torch.cat([torch.ones(400, dtype=torch.bool), torch.zeros(800, dtype=torch.bool)]),
    )
    failures = synthetic_demo_file(tmp_path / "failures.npz", hacked_states, torch.zeros(400, dtype=torch.bool))
    fresh_success, fresh_hack = box(200, (1, 2), (0, 1)), box(200, (1, 2), (-3, -2))

    def train(*files: Path) -> RewardClassifier:
        out = tmp_path / f"clf{len(files)}" / "reward_classifier.pt"
        argv = ["train-classifier", "--task", "pendulum", "--data", *map(str, files), "--out", str(out)]
        assert main([*argv, "--steps", "300", "--device", "cpu"]) == 0
        return RewardClassifier.load(out)

    hacked = train(demos)
    assert hacked.predict_success(fresh_hack).float().mean() > 0.5  # the failure the learner would exploit
    retrained = train(demos, failures)
    assert retrained.predict_success(fresh_hack).float().mean() < 0.05
    assert retrained.predict_success(fresh_success).float().mean() > 0.95
    record = json.loads((tmp_path / "clf2" / "reward_classifier.json").read_text())
    assert record["data"] == [str(demos), str(failures)]
    assert record["steps_per_file"] == [1200, 400] and record["positives_per_file"] == [400, 0]
    capsys.readouterr()

    # Files must agree on the group's shape, and each is checked for the task.
    other = synthetic_demo_file(tmp_path / "wide.npz", torch.zeros(4, 3), torch.tensor([True, True, False, False]))
    assert main(["train-classifier", "--task", "pendulum", "--data", str(demos), str(other), "--device", "cpu"]) == 2
    assert "has shape (3,), but" in capsys.readouterr().err
