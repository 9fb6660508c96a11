"""From a checkpoint to a deployable policy file: ONNX (and TorchScript) with embedded metadata and a parity check.

The metadata (JSON under the ONNX ``metadata_props`` key :data:`METADATA_KEY`, and ``metadata.json`` inside the
TorchScript file) is what a robot-side runtime needs besides the network: the observation layout (groups, terms,
sizes, order) and history, the action layout (names, default pose, scale, limits, PD gains, what the action commands,
how it is limited and what ``last_action`` holds: :mod:`deploy.metadata`), the control period and decimation, the
recurrent state, the library version, the training run and the checkpoint's SHA-256, and the env config the policy
was trained with (``deploy-sim`` rebuilds the task from it). :func:`export_checkpoint` builds the task from the
checkpoint's stored env config, never from the task's defaults.

Every export runs a parity check before anything is written: onnxruntime and TorchScript against the torch policy on
≥ 10,000 observations (random ones spread by the normaliser's statistics, plus recorded ones when given); a file with
an action that differs by more than 1e-5 × max(1, the largest |action| of that dimension over the samples) is
refused with :class:`ExportParityError`. The scale matters: float32 sums in another kernel order differ in proportion
to the outputs' magnitude, and a trained PPO Hopper policy (actions up to 42) differed by 1.9e-5.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

import rsl_rl
from deploy.metadata import HISTORY_ORDER, HISTORY_START, METADATA_KEY, SCHEMA_VERSION, parse_metadata
from rsl_rl.export import Actor, export_jit, export_onnx, exportable, inference_policy, io_names
from rsl_rl.models.cnn_model import CNNModel
from rsl_rl.models.rnn_model import RNNModel
from rsl_rl.modules.cnn import CNNConfig
from rsl_rl.modules.normalization import EmpiricalNormalization
from rsl_rl.modules.sac_models import SquashedGaussianActor, build_sac_actor

TOLERANCE = 1e-5
MIN_SAMPLES = 10_000


class ExportParityError(RuntimeError):
    """The exported file does not reproduce the torch policy; nothing was written."""


@dataclass
class ExportReport:
    """What an export wrote and how close it is to torch."""

    onnx: Path
    torchscript: Path
    metadata: dict[str, Any]
    max_abs_diff_onnx: float
    max_abs_diff_torchscript: float
    samples: int


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def policy_metadata(
    actor: Actor,
    obs_groups: list[str],
    env_spec: dict[str, Any] | None = None,
    control_period: float | None = None,
    decimation: int | None = None,
    task: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    iteration: int | None = None,
    run: str | None = None,
    history: int = 1,
    env_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the metadata of a policy; ``env_spec`` is the env's ``deployment_spec()``.

    ``obs_groups`` are the groups of one observation; a policy that reads the last ``history`` observations stacked
    (an MLP-history student) says so in ``metadata["history"]`` and the runtime stacks them. ``env_config`` is the
    resolved env config as plain data (:func:`rsl_rl.cli.env_config.config_to_data`), so ``deploy-sim`` rebuilds
    the task the policy was trained on.
    """
    env_spec = env_spec or {}
    if history < 1 or actor.obs_dim % history:
        raise ValueError(f"history={history}: the policy's {actor.obs_dim} inputs are not a whole number of steps")
    frame_dim = actor.obs_dim // history
    terms_by_group = env_spec.get("observation", {})
    terms: list[dict[str, Any]] = []
    for group in obs_groups:
        group_terms = terms_by_group.get(group)
        if not group_terms:  # the env does not describe it: one term of the group's size
            group_terms = [(group, None)]
        terms += [{"group": group, "name": name, "size": size, "scale": 1.0} for name, size in group_terms]
    known = sum(t["size"] or 0 for t in terms)
    for t in terms:  # a single undescribed group takes the remaining width
        if t["size"] is None:
            t["size"] = frame_dim - known
    if sum(t["size"] for t in terms) != frame_dim:
        per_step = f" per step (× history {history})" if history > 1 else ""
        raise ValueError(
            f"the env's observation terms add up to {sum(t['size'] for t in terms)} but the policy reads "
            f"{frame_dim} values{per_step}; fix the env's deployment_spec()"
        )
    action = action_layout(env_spec.get("action", {}), actor.output_dim)
    inputs, outputs = io_names(actor)
    recurrent = None
    if isinstance(actor, RNNModel):
        recurrent = {
            "type": actor.cfg.rnn_type,
            "layers": actor.cfg.rnn_num_layers,
            "hidden": actor.cfg.rnn_hidden_dim,
            "state_inputs": inputs[1:],
            "state_outputs": outputs[1:],
        }
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "library": "rsl-rl-forge",
        "library_version": rsl_rl.__version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "inputs": inputs,
        "outputs": outputs,
        "observation": {"dim": frame_dim, "groups": list(obs_groups), "terms": terms},
        "history": None
        if history == 1
        else {"length": history, "order": HISTORY_ORDER, "episode_start": HISTORY_START},
        "action": {"dim": actor.output_dim, **action},
        "control": {"period_s": control_period, "decimation": decimation},
        "recurrent": recurrent,
        "training": {"run": run, "iteration": iteration},
        "env_config": env_config,
    }
    if checkpoint is not None:
        meta["training"]["checkpoint"] = os.path.basename(os.fspath(checkpoint))
        meta["training"]["checkpoint_sha256"] = file_sha256(checkpoint)
    meta = json.loads(json.dumps(meta, default=float))  # plain JSON types only
    parse_metadata(json.dumps(meta), f"metadata of {task or 'the policy'}")  # what the runtime checks
    return meta


def action_layout(given: dict[str, Any], dim: int) -> dict[str, Any]:
    """The action entries of the metadata: the env's, with defaults for what it leaves out; infinite bounds become
    null (unbounded), so the JSON is standard and a NaN bound is an error, never a silent no-op."""
    action = dict(given)
    action.setdefault("names", [f"action_{i}" for i in range(dim)])
    action.setdefault("default", [0.0] * dim)
    action.setdefault("scale", [1.0] * dim)
    action.setdefault("low", [None] * dim)
    action.setdefault("high", [None] * dim)
    action.setdefault("command", "actuator")
    action.setdefault("limit", "clip")
    action.setdefault("last_action", None)
    for key in ("names", "default", "scale", "low", "high", "kp", "kd"):
        if key in action:
            action[key] = list(action[key])
            if len(action[key]) != dim:
                raise ValueError(f"action.{key} has {len(action[key])} entries; the policy outputs {dim}")
    for key, unbounded in (("low", -math.inf), ("high", math.inf)):
        action[key] = [None if v is None or float(v) == unbounded else float(v) for v in action[key]]
    return action


def parity_observations(
    actor: Actor, num_random: int = MIN_SAMPLES, recorded: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """``[n, obs_dim]`` float32 test inputs: N(mean, (2·std)²) from the normaliser (unit scale without one), plus
    ``recorded`` observations."""
    rng = np.random.default_rng(seed)
    mean, std = np.zeros(actor.obs_dim), np.ones(actor.obs_dim)
    if isinstance(actor.obs_normalizer, EmpiricalNormalization) and int(actor.obs_normalizer.count) > 0:
        # A CNN model normalises its vector groups only: their columns get the statistics, images unit scale.
        columns = (
            np.concatenate([np.arange(a, b) for a, b in actor.vector_spans])
            if isinstance(actor, CNNModel | SquashedGaussianActor)
            else slice(None)
        )
        mean[columns] = actor.obs_normalizer.mean.detach().cpu().double().numpy()
        std[columns] = actor.obs_normalizer.std.detach().cpu().double().numpy()
    samples = mean + 2.0 * std * rng.standard_normal((num_random, actor.obs_dim))
    if recorded is not None and len(recorded):
        samples = np.concatenate([samples, np.asarray(recorded, dtype=np.float64).reshape(-1, actor.obs_dim)])
    return samples.astype(np.float32)


def _reference(actor: Actor, obs: np.ndarray, sequence: int) -> np.ndarray:
    """Torch actions for ``obs``; a recurrent policy runs them as sequences of ``sequence`` steps from zero state."""
    model = exportable(actor)
    with torch.no_grad():
        x = torch.from_numpy(obs)
        if not isinstance(actor, RNNModel):
            return model(x).numpy()
        out = []
        for start in range(0, len(x), sequence):
            chunk = x[start : start + sequence]
            state = actor.initial_hidden(1)
            for row in chunk:
                action, *state = model(row.unsqueeze(0), *state)
                out.append(action)
        return torch.cat(out).numpy()


def _run_onnx(path: Path, actor: Actor, obs: np.ndarray, sequence: int) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if not isinstance(actor, RNNModel):
        return np.asarray(session.run(None, {"obs": obs})[0])
    inputs, _ = io_names(actor)
    out = []
    for start in range(0, len(obs), sequence):
        state = [s.numpy() for s in actor.initial_hidden(1)]
        for row in obs[start : start + sequence]:
            action, *state = session.run(None, {"obs": row[None], **dict(zip(inputs[1:], state, strict=True))})
            out.append(action)
    return np.concatenate(out)


def _run_jit(path: Path, actor: Actor, obs: np.ndarray, sequence: int) -> np.ndarray:
    module = torch.jit.load(str(path))
    with torch.no_grad():
        x = torch.from_numpy(obs)
        if not isinstance(actor, RNNModel):
            return module(x).numpy()
        out = []
        for start in range(0, len(x), sequence):
            module.reset()  # the TorchScript policy keeps its hidden state inside
            out += [module(row.unsqueeze(0)) for row in x[start : start + sequence]]
        return torch.cat(out).numpy()


def _attach_metadata(path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(metadata)
    onnx.save(model, str(path))


def export_policy(
    actor: Actor,
    out_dir: str | os.PathLike[str],
    metadata: dict[str, Any],
    recorded: np.ndarray | None = None,
    num_random: int = MIN_SAMPLES,
    tolerance: float = TOLERANCE,
    sequence: int = 100,
    name: str = "policy",
) -> ExportReport:
    """Write ``<name>.onnx`` and ``<name>.pt`` into ``out_dir`` after they pass the parity check.

    Recurrent policies are checked on sequences of ``sequence`` steps, with the state carried from step to step.
    """
    actor = actor.cpu().eval()
    obs = parity_observations(actor, num_random, recorded)
    if len(obs) < MIN_SAMPLES:
        raise ValueError(f"the parity check needs >= {MIN_SAMPLES} observations, got {len(obs)}")
    expected = _reference(actor, obs, sequence)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.export.", dir=out_dir))
    try:
        onnx_tmp, jit_tmp = staging / f"{name}.onnx", staging / f"{name}.pt"
        export_onnx(actor, onnx_tmp)
        _attach_metadata(onnx_tmp, metadata)
        export_jit(actor, jit_tmp, {"metadata.json": json.dumps(metadata)})
        onnx_out, jit_out = _run_onnx(onnx_tmp, actor, obs, sequence), _run_jit(jit_tmp, actor, obs, sequence)
        diff_onnx = float(np.abs(onnx_out - expected).max())
        diff_jit = float(np.abs(jit_out - expected).max())
        # |Δ| ≤ tolerance · max(1, max |a| of the dimension): float32 sums in another kernel order differ in proportion
        # to the outputs' magnitude (per element it would flag cancellations: small actions of large terms).
        scale = np.maximum(1.0, np.abs(expected).reshape(-1, expected.shape[-1]).max(0))
        worst = max(float((np.abs(out - expected) / scale).max()) for out in (onnx_out, jit_out))
        if not worst <= tolerance:  # also catches NaN
            raise ExportParityError(
                f"exported policy differs from torch: max |Δ| ONNX {diff_onnx:.3g}, TorchScript {diff_jit:.3g}, "
                f"max |Δ| / max(1, max |a|) {worst:.3g} (tolerance {tolerance:g}, {len(obs)} observations); "
                "no file written"
            )
        onnx_path, jit_path = out_dir / f"{name}.onnx", out_dir / f"{name}.pt"
        os.replace(onnx_tmp, onnx_path)
        os.replace(jit_tmp, jit_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(onnx_path, jit_path, metadata, diff_onnx, diff_jit, len(obs))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata embedded in an exported ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return parse_metadata(entry.value, str(path))
    raise KeyError(f"{path} has no '{METADATA_KEY}' metadata: it was not exported by deploy.export")


__all__ = [
    "ExportParityError",
    "ExportReport",
    "export_policy",
    "file_sha256",
    "parity_observations",
    "action_layout",
    "policy_metadata",
    "read_metadata",
]


def rebuild_actor(state: dict[str, Any], obs: TensorDict | None = None) -> tuple[Actor, list[str], int]:
    """The deployable actor of a checkpoint (PPO: the actor; distillation: the student), the observation groups of
    one step and the history length (a history student reads that many steps stacked, oldest first).

    A CNN actor also needs ``obs``, an observation of the task: weights do not tell the images' height and width.
    """
    from rsl_rl.models.rnn_model import build_model
    from rsl_rl.runners.config import SACTrainConfig, TrainConfig, train_config_from_dict

    obs_groups = state.get("obs_groups") or {}
    history = 1
    if (state.get("infos") or {}).get("algorithm") == "distillation":
        from rsl_rl.runners.distillation_runner import distillation_config_from_dict

        dcfg = distillation_config_from_dict(state["config"])
        actor_cfg, history = dcfg.student, dcfg.algorithm.history_length
        groups = list(obs_groups.get("student", ["policy"]))
    else:
        cfg = train_config_from_dict(state["config"]) if "config" in state else TrainConfig()
        groups = list(obs_groups.get("actor", ["policy"]))
        if isinstance(cfg, SACTrainConfig):
            actor = _rebuild_sac_actor(state["actor_state_dict"], cfg, groups, obs)
            actor.eval()
            return actor, groups, history
        actor_cfg = cfg.actor
    # A distillation checkpoint's deployable policy is the student (``actor_state_dict`` in format 1).
    weights = state["student_state_dict"] if "student_state_dict" in state else state["actor_state_dict"]
    layers = sorted(
        (k for k in weights if k.startswith("mlp.") and k.endswith(".weight")), key=lambda k: int(k.split(".")[1])
    )
    # The recurrent input weights (named rnn.rnn.* now, rnn.* in checkpoints of earlier versions) give the input width.
    rnn_key = next((k for k in ("rnn.rnn.weight_ih_l0", "rnn.weight_ih_l0") if k in weights), None)
    first = weights[rnn_key] if rnn_key else weights[layers[0]]
    if isinstance(actor_cfg, CNNConfig) and obs is None:
        raise ValueError("rebuilding a CNN actor needs an observation of its task (the image shapes): give the task")
    actor = build_model(first.shape[1], weights[layers[-1]].shape[0], actor_cfg, obs_groups=groups, obs=obs)
    actor.load_state_dict(weights)
    actor.eval()
    return actor, groups, history


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    task: str | None = None,
    record_envs: int = 16,
    record_steps: int = 200,
) -> ExportReport:
    """Export a training checkpoint: rebuild its actor, read the task's deployment spec, record observations of the
    policy in the task (for the parity check), and write ``policy.onnx``/``policy.pt`` with metadata.

    ``task`` defaults to the one the checkpoint records; without a task the metadata has no layout or timing.
    """
    from rsl_rl.cli.env_config import checkpoint_env_config, config_to_data
    from rsl_rl.registry import get_task
    from rsl_rl.runners.checkpoint import iterations_completed, latest_checkpoint, load_checkpoint
    from rsl_rl.runners.distillation_runner import HistoryInferencePolicy

    path = Path(checkpoint)
    path = latest_checkpoint(path) if path.is_dir() else path
    state = load_checkpoint(path, map_location="cpu")
    task = task or (state.get("infos") or {}).get("task")
    env_spec: dict[str, Any] = {}
    env_config = recorded = env = None
    period = decimation = None
    if task is not None:
        spec = get_task(task)
        # The env the policy was trained in (its --env.* overrides included), not the task's defaults.
        env_cfg = checkpoint_env_config(spec, state)
        env_config = config_to_data(env_cfg)
        env_cfg.num_envs = record_envs
        if hasattr(env_cfg, "sim"):
            env_cfg.sim.backend = "cpu"
        env = spec.build(env_cfg, device="cpu", seed=12345)
    # Built after the env: a CNN actor takes its image shapes from an observation.
    actor, groups, history = rebuild_actor(state, env.get_observations() if env is not None else None)
    if env is not None:
        env_spec, period, decimation = env.deployment_spec(), env.step_dt, getattr(env_cfg, "decimation", 1)
        rows = []
        policy = inference_policy(actor, groups) if history == 1 else HistoryInferencePolicy(actor, groups, history)  # pyright: ignore[reportArgumentType]
        with torch.inference_mode():
            obs = env.reset()
            for _ in range(record_steps):
                read = torch.cat([obs[g].flatten(1) for g in groups], dim=-1)  # images flattened: the flat layout
                action = policy(obs)
                if isinstance(policy, HistoryInferencePolicy) and policy.history is not None:
                    read = policy.history.buffer.flatten(1)  # a history student reads the stacked steps
                rows.append(read.numpy().copy())
                obs, _, terminated, truncated, _ = env.step(action)
                policy.reset(terminated | truncated)
        recorded = np.concatenate(rows)
        env.close()
    metadata = policy_metadata(
        actor,
        groups,
        env_spec,
        period,
        decimation,
        task,
        path,
        iterations_completed(state),
        str(path.parent),
        history=history,
        env_config=env_config,
    )
    return export_policy(actor, out_dir or path.parent / "exported", metadata, recorded)


def _rebuild_sac_actor(
    weights: dict[str, torch.Tensor], cfg: Any, groups: list[str], obs: TensorDict | None
) -> SquashedGaussianActor:
    """A SAC actor of the checkpoint's shape; its action bounds are buffers of the state dict. An actor with
    ``cnn_cfg`` takes its image shapes from ``obs``, an observation of its task."""
    low, high = weights["action_low"], weights["action_high"]
    if cfg.actor.cnn_cfg is not None:
        if obs is None:
            raise ValueError("rebuilding a SAC actor with a CNN needs an observation of its task (the image shapes)")
        actor = build_sac_actor(obs, groups, low.shape[0], cfg.actor, low, high)
    else:
        actor = SquashedGaussianActor(weights["mlp.0.weight"].shape[1], low.shape[0], cfg.actor, low, high)
    actor.load_state_dict(weights)
    return actor
