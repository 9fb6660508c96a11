"""The demo file format (rsl_rl/storage/demos.py): round trip, atomic writes, and one named error per way a file can
be wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rsl_rl.storage.demos import DEMO_FORMAT, DemoData, DemoFileError, load_demos, save_demos


def demo_data(episode_lengths: tuple[int, ...] = (3, 2, 4)) -> DemoData:
    """Episodes of the given lengths: a vector group, an image group; the second episode succeeds."""
    steps = sum(episode_lengths)
    episode = torch.cat([torch.full((n,), i) for i, n in enumerate(episode_lengths)])
    last = torch.zeros(steps, dtype=torch.bool)
    last[torch.cumsum(torch.tensor(episode_lengths), 0) - 1] = True
    state = torch.arange(steps * 3, dtype=torch.float32).reshape(steps, 3)
    image = torch.randint(0, 255, (steps, 2, 4, 4), dtype=torch.uint8)
    return DemoData(
        obs={"policy": state, "image": image},
        next_obs={"policy": state + 0.5, "image": image.flip(-1)},
        actions=torch.linspace(-1, 1, steps * 2).reshape(steps, 2),
        rewards=torch.arange(steps, dtype=torch.float32),
        terminated=last & (episode == 1),
        truncated=last & (episode != 1),
        success=episode == 1,
        intervention=torch.arange(steps) % 3 == 0,
        episode=episode,
        metadata={"task": "toy", "source": "scripted", "step_dt": 0.05},
    )


def test_round_trip_keys_dtypes_and_metadata(tmp_path: Path) -> None:
    data = demo_data()
    path = save_demos(tmp_path / "sub" / "demos.npz", data)
    assert [p.name for p in path.parent.iterdir()] == ["demos.npz"]  # the temporary file was renamed
    raw = np.load(path, allow_pickle=False)
    assert str(raw["format"]) == DEMO_FORMAT and raw["version"].dtype == np.int64 and int(raw["version"]) == 1
    assert raw["obs/image"].dtype == np.uint8 and raw["obs/policy"].dtype == np.float32
    assert raw["actions"].dtype == np.float32 and raw["episode"].dtype == np.int64 and raw["success"].dtype == bool
    meta = json.loads(str(raw["metadata"]))
    assert meta["task"] == "toy" and meta["num_episodes"] == 3 and "created" in meta
    assert meta["obs_groups"] == {
        "policy": {"shape": [3], "dtype": "float32"},
        "image": {"shape": [2, 4, 4], "dtype": "uint8"},
    }
    loaded = load_demos(path)
    assert loaded.num_steps == 9 and loaded.num_episodes == 3
    assert loaded.episode_success.tolist() == [False, True, False]
    for name in ("actions", "rewards", "terminated", "truncated", "success", "intervention", "episode"):
        assert torch.equal(getattr(loaded, name), getattr(data, name)), name
    for group in ("policy", "image"):
        assert torch.equal(loaded.obs[group], data.obs[group]) and torch.equal(
            loaded.next_obs[group], data.next_obs[group]
        )


def test_select_episodes_renumbers_them() -> None:
    data = demo_data().select_episodes(torch.tensor([True, False, True]))
    assert data.episode.tolist() == [0, 0, 0, 1, 1, 1, 1] and data.metadata["num_episodes"] == 2
    assert data.rewards.tolist() == [0, 1, 2, 5, 6, 7, 8]


def test_invalid_data_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    data = demo_data()
    data.rewards[4] = float("nan")
    with pytest.raises(DemoFileError, match=r"'rewards' holds non-finite values .* step\(s\) \[4\]"):
        save_demos(tmp_path / "demos.npz", data)
    assert list(tmp_path.iterdir()) == []


def _edit(arrays: dict[str, np.ndarray], key: str, value: Any) -> None:
    arrays[key] = value


def _drop(key: str) -> Callable[[dict[str, np.ndarray]], None]:
    def drop(arrays: dict[str, np.ndarray]) -> None:
        del arrays[key]

    return drop


CORRUPTIONS: list[tuple[str, Callable[[dict[str, np.ndarray]], None], str]] = [
    ("missing key", _drop("rewards"), r"missing key\(s\) \['rewards'\]"),
    ("wrong format", lambda a: _edit(a, "format", np.array("something.else")), "format is .*something.else"),
    ("newer version", lambda a: _edit(a, "version", np.array(2, dtype=np.int64)), "version 2 is not supported"),
    (
        "length mismatch",
        lambda a: _edit(a, "rewards", a["rewards"][:-1]),
        "'rewards' has shape \\(8,\\) but 'actions' has 9",
    ),
    ("obs length", lambda a: _edit(a, "next_obs/policy", a["next_obs/policy"][:5]), "'next_obs/policy' has shape"),
    ("nan obs", lambda a: a["obs/policy"].__setitem__((2, 1), np.inf), r"'obs/policy' holds non-finite .* \[2\]"),
    ("nan action", lambda a: a["actions"].__setitem__((7, 0), np.nan), r"'actions' holds non-finite .* \[7\]"),
    (
        "gap in ids",
        lambda a: _edit(a, "episode", a["episode"] * 2),
        "episode ids must be 0, 1, 2, ... .* step 3 has id 2",
    ),
    ("ids decrease", lambda a: _edit(a, "episode", np.array([0, 0, 0, 1, 1, 0, 0, 2, 2])), "step 5 has id 0 after 1"),
    ("ids not from 0", lambda a: _edit(a, "episode", a["episode"] + 1), "step 0 has id 1"),
    ("group mismatch", _drop("next_obs/image"), r"obs groups \['image', 'policy'\] and next_obs groups \['policy'\]"),
    ("obs dtype", lambda a: _edit(a, "obs/policy", a["obs/policy"].astype(np.float64)), "float32 or uint8"),
    (
        "next_obs dtype",
        lambda a: _edit(a, "next_obs/image", a["next_obs/image"].astype(np.float32)),
        "share a shape and a dtype",
    ),
    ("reward dtype", lambda a: _edit(a, "rewards", a["rewards"].astype(np.float64)), "'rewards' must be float32"),
    ("flag dtype", lambda a: _edit(a, "success", a["success"].astype(np.int8)), "'success' must be bool"),
    ("episode dtype", lambda a: _edit(a, "episode", a["episode"].astype(np.int32)), "'episode' must be int64"),
    ("action rank", lambda a: _edit(a, "actions", a["actions"][:, 0]), "'actions' must be float32 with 2 dimension"),
    ("metadata json", lambda a: _edit(a, "metadata", np.array("{not json")), "metadata is not valid JSON"),
    ("metadata list", lambda a: _edit(a, "metadata", np.array("[1, 2]")), "metadata must be a JSON object"),
    (
        "episode count",
        lambda a: _edit(a, "metadata", np.array(json.dumps({"num_episodes": 5}))),
        "num_episodes=5 but the file holds 3",
    ),
    ("unknown key", lambda a: _edit(a, "extra", np.zeros(9)), r"unknown key\(s\) \['extra'\]"),
    ("pickled object", lambda a: _edit(a, "rewards", np.array([object()] * 9)), "not a readable .npz"),
]


@pytest.mark.parametrize(("edit", "message"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_each_defect_is_named(tmp_path: Path, edit: Callable[[dict[str, np.ndarray]], None], message: str) -> None:
    good = save_demos(tmp_path / "good.npz", demo_data())
    with np.load(good, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    edit(arrays)
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, allow_pickle=True, **arrays)  # pyright: ignore[reportArgumentType]
    with pytest.raises(DemoFileError, match=message):
        load_demos(bad)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="demo file not found"):
        load_demos(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DemoFileError, match="not a readable .npz"):
        load_demos(tmp_path / "text.npz")


def test_loads_onto_a_device_and_an_empty_file_is_valid(tmp_path: Path) -> None:
    empty = demo_data().select_episodes(torch.zeros(3, dtype=torch.bool))
    loaded = load_demos(save_demos(tmp_path / "empty.npz", empty), device="cpu")
    assert loaded.num_steps == 0 and loaded.num_episodes == 0 and loaded.episode_success.shape == (0,)
