"""Logging under rsl-rl-lib 5.5's API: ``rsl_rl.utils.logger.Logger``, the ``LogWriter`` backends (TensorBoard, W&B,
Neptune, a user's class named in the config) and what frameworks read from ``runner.logger``.

Everything is read back from what the run wrote: TensorBoard event files, and the W&B offline run's transaction log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from point_mass import PointMassVecEnv, rsl_rl_train_cfg
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rsl_rl.runners import OnPolicyRunner
from rsl_rl.utils.log_writer import LoggerChoice, LogWriter
from rsl_rl.utils.logger import Logger
from rsl_rl.utils.neptune_log_writer import NeptuneLogWriter
from rsl_rl.utils.wandb_log_writer import WandbLogWriter

API = json.loads((Path(__file__).parents[1] / "fixtures" / "rsl_rl_lib" / "api.json").read_text())["modules"]


def tb_scalars(log_dir: str | Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [(event.step, event.value) for event in acc.Scalars(tag)]


def tb_tags(log_dir: str | Path) -> set[str]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def wandb_records(run_dir: Path) -> list[Any]:
    """The records of an offline run's ``.wandb`` file: a ``:W&B`` header, then a LevelDB-style log (32 KiB blocks;
    each chunk: checksum[4], length[2], type[1] with 1 = full, 2/3/4 = first/middle/last) of protobuf records."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if pos + 7 + length > len(data):
            break  # a chunk the writer is still appending
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()  # pyright: ignore[reportAttributeAccessIssue] (generated stub)
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_finished_records(run_dir: Path, timeout: float = 60.0) -> list[Any]:
    """The run's records once wandb-core has written its closing ``exit`` record.

    ``run.finish()`` returns when the core process acknowledged the exit; on a loaded machine its writer may still be
    appending to the file, so the reader waits for the file to end with ``exit`` (it names what it found otherwise).
    """
    deadline = time.monotonic() + timeout
    while True:
        records = wandb_records(run_dir)
        kinds = [record.WhichOneof("record_type") for record in records]
        if kinds and kinds[-1] == "exit":
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"the offline run never wrote its exit record in {timeout} s; it holds {kinds}")
        time.sleep(0.2)


def wandb_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    history: dict[str, list[tuple[int, float]]] = {}
    for record in wandb_finished_records(run_dir):
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    history.setdefault(key, []).append((record.history.step.num, json.loads(item.value_json)))
    return history


def wandb_config(run_dir: Path) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for record in wandb_finished_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):  # the config given to wandb.init, then its updates
            for item in (record.run.config if kind == "run" else record.config).update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config


class RecordingWriter(LogWriter):
    """A user's backend: keeps every call (a real one would send them to a metrics service)."""

    def __init__(self, log_dir: str, label: str) -> None:
        self.log_dir, self.label = log_dir, label
        self.scalars: list[tuple[str, float, int]] = []
        self.configs: list[tuple[Any, Any]] = []
        self.files: list[str] = []
        self.models: list[tuple[str, int]] = []
        self.stopped = False

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None:
        self.scalars.append((tag, scalar_value, global_step))

    def store_config(self, env_cfg: Any, train_cfg: Any) -> None:
        self.configs.append((env_cfg, train_cfg))

    def save_file(self, path: str) -> None:
        self.files.append(path)

    def save_model(self, model_path: str, it: int) -> None:
        self.models.append((model_path, it))

    def stop(self) -> None:
        self.stopped = True


CUSTOM = f"{RecordingWriter.__module__}:RecordingWriter"


def runner_for(log_dir: Path | None, logger: Any) -> OnPolicyRunner:
    return OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(logger=logger), log_dir, "cpu", show_progress=False)


# --- what frameworks read from runner.logger --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logger", "logger_type"),
    [
        ("tensorboard", "tensorboard"),
        ("wandb", "wandb"),
        ({"class_name": "WandbLogWriter", "project_name": "p"}, "wandb"),
        ("neptune", "neptune"),
        ({"class_name": "NeptuneLogWriter", "project_name": "p"}, "neptune"),
        ({"class_name": CUSTOM, "label": "x"}, CUSTOM),
        ("none", "none"),
    ],
)
def test_logger_type_and_log_dir_as_frameworks_read_them(tmp_path: Path, logger: Any, logger_type: str) -> None:
    """mjlab: ``self.logger.logger_type in ("wandb", "WandbLogWriter")``; Isaac Lab, mjlab: ``os.path.join(
    runner.logger.log_dir, ...)``. Constructing the runner starts no backend."""
    runner = runner_for(tmp_path, logger)
    assert isinstance(runner.logger, Logger)
    assert runner.logger.logger_type == logger_type
    assert runner.logger.log_dir == str(tmp_path) and isinstance(runner.logger.log_dir, str)
    assert os.path.join(runner.logger.log_dir, "model_1.pt") == str(tmp_path / "model_1.pt")
    assert runner.logger.writer is None
    assert runner_for(None, logger).logger.log_dir is None


def test_the_logger_has_rsl_rl_libs_attributes_and_methods(tmp_path: Path) -> None:
    runner = runner_for(tmp_path, "tensorboard")
    spec = API["rsl_rl.utils.logger"]["Logger"]
    missing = [name for name in [*spec["instance_attributes"], *spec["members"]] if not hasattr(runner.logger, name)]
    assert not missing
    assert runner.logger.cfg["num_steps_per_env"] == 8 and runner.logger.disable_logs is False
    assert runner.logger.git_status_repos is runner.logger.git_repos  # add_git_repo_to_log appends here
    assert list(runner.logger.rewbuffer) == [] and runner.logger.tot_timesteps == 0


def test_a_writer_section_pickles_and_copies_as_its_plain_name() -> None:
    """Configs holding it go into checkpoints, which load with ``weights_only=True``: they must hold plain data."""
    choice = LoggerChoice.from_rsl_rl({"class_name": CUSTOM, "label": "x"}, {})
    assert choice == "tensorboard" and choice.section == {"class_name": CUSTOM, "label": "x"}
    assert type(pickle.loads(pickle.dumps(choice))) is str
    assert LoggerChoice.from_rsl_rl({"class_name": "WandbLogWriter"}, {}) == "wandb"


# --- backends, read back from what the run wrote ----------------------------------------------------------------------


def test_tensorboard_event_files_hold_every_iterations_scalars(tmp_path: Path) -> None:
    runner = runner_for(tmp_path, "tensorboard")
    runner.learn(3, init_at_random_ep_len=True)
    from torch.utils.tensorboard import SummaryWriter

    assert isinstance(runner.logger.writer, SummaryWriter)  # open for frameworks' own add_scalar calls
    runner.logger.writer.add_scalar("Framework/custom", 7.0, 2)
    runner.logger.close()
    assert runner.logger.writer is None
    history = runner.logger.history
    for tag, key in [("Loss/value_function", "value_function"), ("Policy/mean_std", "action_std")]:
        logged = tb_scalars(tmp_path, tag)
        assert [step for step, _ in logged] == [0, 1, 2]
        assert [value for _, value in logged] == pytest.approx([r[key] for r in history], rel=1e-6)
    assert {"Train/mean_reward", "Perf/total_fps", "Episode/speed", "/custom/distance"} <= tb_tags(tmp_path)
    assert tb_scalars(tmp_path, "Framework/custom") == [(2, 7.0)]
    assert runner.logger.tot_timesteps == 3 * 8 * 16


@pytest.mark.parametrize("logger", ["wandb", {"class_name": "WandbLogWriter", "project_name": "rsl-rl-tests"}])
def test_wandb_offline_run_holds_scalars_config_and_checkpoints(tmp_path: Path, logger: Any) -> None:
    runner = runner_for(tmp_path, logger)
    runner.learn(2, init_at_random_ep_len=True)
    writer = runner.logger.writer
    assert isinstance(writer, WandbLogWriter)
    checkpoint = tmp_path / "model_2.pt"
    runner.save(checkpoint)
    runner.logger.save_model(str(checkpoint), 2)
    runner.logger.close()

    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    history = wandb_history(run_dir)
    assert "Loss/value_function" in history, f"history keys: {sorted(history)}"
    logged = history["Loss/value_function"]
    assert [step for step, _ in logged] == [0, 1]
    assert [value for _, value in logged] == pytest.approx([r["value_function"] for r in runner.logger.history])
    assert {"Train/mean_reward", "Perf/total_fps", "Episode/speed"} <= set(history)
    assert "Train/mean_reward/time" not in history  # its step (seconds) would run W&B's step backwards
    config = wandb_config(run_dir)
    assert config["train_cfg"]["num_steps_per_env"] == 8 and config["log_dir"] == str(tmp_path)
    assert (run_dir / "files" / "model_2.pt").exists()
    assert [step for step, _ in tb_scalars(tmp_path, "Loss/value_function")] == [0, 1]  # and TensorBoard's files
    # The checkpoint's config holds the plain logger name: it loads with weights_only=True.
    assert torch.load(checkpoint, weights_only=True)["config"]["logger"] == "wandb"


def test_a_custom_log_writer_named_in_the_config_receives_the_runners_scalars(tmp_path: Path) -> None:
    runner = runner_for(tmp_path, {"class_name": CUSTOM, "label": "mine"})
    runner.add_git_repo_to_log(__file__)
    runner.learn(2, init_at_random_ep_len=True)
    writer = runner.logger.writer
    assert isinstance(writer, RecordingWriter) and writer.log_dir == str(tmp_path) and writer.label == "mine"
    by_tag: dict[str, list[tuple[int, float]]] = {}
    for tag, value, step in writer.scalars:
        by_tag.setdefault(tag, []).append((step, value))
    assert {"Train/mean_reward", "Loss/surrogate", "Loss/learning_rate", "Perf/total_fps", "Episode/speed"} <= set(
        by_tag
    )
    assert by_tag["Loss/surrogate"] == [(it, r["surrogate"]) for it, r in enumerate(runner.logger.history)]
    ((env_cfg, train_cfg),) = writer.configs
    assert env_cfg is None and train_cfg["logger"] == {"class_name": CUSTOM, "label": "mine"}
    # rsl_rl's repository and this file's are one checkout: its diff is recorded and uploaded once.
    assert len(writer.files) <= 1 and all(Path(p).parent == tmp_path for p in writer.files)
    assert json.loads((tmp_path / "config.json").read_text())["logger"]["label"] == "mine"
    # Every checkpoint learn() wrote was uploaded (rsl-rl-lib's runner.save calls save_model): model_0 and the final.
    assert writer.models == [(str(tmp_path / "model_0.pt"), 1), (str(tmp_path / "model_1.pt"), 2)]
    runner.logger.save_model(str(tmp_path / "model_2.pt"), 2)
    assert writer.models[-1] == (str(tmp_path / "model_2.pt"), 2)
    runner.logger.close()
    assert writer.stopped and runner.logger.writer is None
    assert not list(tmp_path.glob("events.out.tfevents.*"))  # the user's writer replaces TensorBoard


def test_a_custom_writer_that_does_not_import_fails_when_the_runner_is_built(tmp_path: Path) -> None:
    with pytest.raises(ImportError):
        runner_for(tmp_path, {"class_name": "no_such_package.writers:Writer"})


@pytest.mark.skipif(importlib.util.find_spec("neptune") is not None, reason="neptune is installed")
def test_neptune_without_the_package_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match="pip install neptune"):
        NeptuneLogWriter(str(tmp_path), "project")
    runner = runner_for(tmp_path, {"class_name": "NeptuneLogWriter", "project_name": "p"})
    with pytest.raises(ImportError, match="pip install neptune"):
        runner.learn(1)


# --- rsl-rl-lib's own protocol: what a framework's runner subclass calls ----------------------------------------------


def test_rsl_rl_lib_protocol_buffers_episodes_and_logs_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"num_steps_per_env": 2, "logger": "tensorboard", "run_name": "demo", "algorithm": {"rnd_cfg": None}}
    logger = Logger(str(tmp_path), cfg, {"env": 1}, 3, False, 1, 0, "cpu")
    logger.init_logging_writer()
    # Env 1 ends after one step (return 2), envs 0 and 2 after two (returns 2 and 4).
    logger.process_env_step(
        torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 1, 0]), {"episode": {"speed": 1.0, "a/b": torch.tensor([2, 4])}}
    )
    logger.process_env_step(torch.ones(3), torch.tensor([1, 0, 1]), {"episode": {"speed": torch.tensor(3.0)}})
    assert list(logger.rewbuffer) == [2.0, 2.0, 4.0] and list(logger.lenbuffer) == [1.0, 2.0, 2.0]
    assert logger.cur_reward_sum.tolist() == [0.0, 1.0, 0.0] and logger.cur_episode_length.tolist() == [0, 1, 0]
    logger.log(0, 0, 2, 0.5, 0.5, {"surrogate": 0.25}, 1e-3, torch.tensor([0.5, 1.5]), None)
    assert logger.tot_timesteps == 6 and logger.tot_time == 1.0
    logger.save_model(str(tmp_path / "model_0.pt"), 0)  # TensorBoard keeps no checkpoints: nothing to do
    logger.stop_logging_writer()
    assert logger.writer is None
    expected = {
        "Train/mean_reward": 8 / 3,
        "Train/mean_episode_length": 5 / 3,
        "Loss/surrogate": 0.25,
        "Loss/learning_rate": 1e-3,
        "Policy/mean_std": 1.0,
        "Perf/total_fps": 6.0,
        "Episode/speed": 2.0,
        "a/b": 3.0,
    }
    for tag, value in expected.items():
        assert tb_scalars(tmp_path, tag) == [(0, pytest.approx(value))], tag
    assert tb_scalars(tmp_path, "Train/mean_reward/time") == [(1, pytest.approx(8 / 3))]
    printed = capsys.readouterr().out
    assert "Learning iteration 0/2" in printed and "demo" in printed and "Mean episode speed:" in printed
    assert json.loads((tmp_path / "config.json").read_text())["run_name"] == "demo"


def test_rsl_rl_lib_protocol_keeps_intrinsic_returns_apart(tmp_path: Path) -> None:
    logger = Logger(str(tmp_path), {"num_steps_per_env": 1}, None, 2, False, 1, 0, "cpu")
    logger.init_logging_writer()
    logger.process_env_step(torch.tensor([1.0, 2.0]), torch.tensor([1, 1]), {}, torch.tensor([0.5, 0.25]))
    assert list(logger.rewbuffer) == [1.5, 2.25]
    assert list(logger.erewbuffer) == [1.0, 2.0] and list(logger.irewbuffer) == [0.5, 0.25]
    logger.log(0, 0, 1, 1.0, 1.0, {}, 1e-3, torch.ones(2), 0.7, print_minimal=True)
    logger.stop_logging_writer()
    assert tb_scalars(tmp_path, "Rnd/weight") == [(0, pytest.approx(0.7))]
    assert tb_scalars(tmp_path, "Rnd/mean_intrinsic_reward") == [(0, pytest.approx(0.375))]


def test_only_rank_zero_of_a_distributed_run_writes_logs(tmp_path: Path) -> None:
    logger = Logger(str(tmp_path), {"num_steps_per_env": 1}, None, 2, True, 2, 1, "cpu")
    logger.init_logging_writer()
    assert logger.disable_logs and logger.writer is None and not list(tmp_path.iterdir())
