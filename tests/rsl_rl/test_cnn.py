"""CNN models (issue 14): rsl-rl-lib's ``CNN``/``CNNModel`` interface and checkpoints, the flat input layout the
algorithms use, PPO with shared encoders, and exports with parity in onnxruntime."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from tensordict import TensorDict

from rsl_rl.algorithms.ppo import PPO
from rsl_rl.export import export_jit, export_onnx, exportable
from rsl_rl.models import CNNModel
from rsl_rl.modules import CNN, CNNConfig
from rsl_rl.runners.config import train_config_from_dict
from rsl_rl.utils import resolve_obs_groups

FIXTURES = Path(__file__).parents[1] / "fixtures" / "rsl_rl_lib"
GAUSSIAN = {"class_name": "GaussianDistribution", "init_std": 1.0}
SMALL_CNN = {"output_channels": [4, 6], "kernel_size": [4, 3], "stride": 2}
MIXED_CNN = {"img": SMALL_CNN, "depth": {"output_channels": [3], "kernel_size": 3, "stride": 2}}
GROUPS = ["a", "img", "b", "depth"]
"""Vector groups between and after image groups: the flat layout must keep every group's place."""


def mixed_obs(n: int = 5, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {
            "a": torch.randn(n, 3, generator=g),
            "img": torch.rand(n, 2, 12, 12, generator=g),
            "b": torch.randn(n, 4, generator=g) * 3 + 1,
            "depth": torch.rand(n, 1, 9, 7, generator=g),
            "state": torch.randn(n, 6, generator=g),
        },
        batch_size=[n],
    )


def flat(obs: TensorDict, groups: list[str]) -> torch.Tensor:
    return torch.cat([obs[g].flatten(1) for g in groups], dim=-1)


def mixed_model(obs: TensorDict, normalized: bool = True) -> CNNModel:
    torch.manual_seed(0)
    model = CNNModel(obs, {"actor": GROUPS}, "actor", 2, [16], "elu", normalized, dict(GAUSSIAN), MIXED_CNN)
    if normalized:  # non-trivial statistics, so the exports must carry them
        model.update_normalization(obs)
    return model.eval()


# --- the CNN block ---------------------------------------------------------------------------------------------------


def test_cnn_output_sizes_follow_rsl_rl_lib_rules() -> None:
    """Sizes worked by hand: ⌊(n + 2p − d(k−1) − 1)/s⌋ + 1; padded layers get ⌈n/s⌉; a max-pool halves (up)."""
    assert CNN((24, 24), 2, [16, 16], [6, 3], [3, 2]).output_dim == 16 * 3 * 3  # 24 → 7 → 3
    assert CNN((24, 24), 1, [4], 3, 2, padding="zeros").output_dim == 4 * 12 * 12
    assert CNN((24, 20), 1, [4], 3, 1, padding="zeros", max_pool=True).output_dim == 4 * 12 * 10
    assert CNN((24, 24), 1, [4, 5], 3, global_pool="avg").output_dim == 5
    unflattened = CNN((24, 24), 1, [4], 3, 2, flatten=False)
    assert unflattened.output_channels == 4 and unflattened.output_dim == (11, 11)
    assert unflattened(torch.zeros(2, 1, 24, 24)).shape == (2, 4, 11, 11)
    with pytest.raises(ValueError, match="norm="):
        CNN((24, 24), 1, [4], 3, norm="group")
    with pytest.raises(ValueError, match="to nothing"):
        CNN((4, 4), 1, [4], 5)


def test_init_weights_is_kaiming_with_zero_bias() -> None:
    cnn = CNN((12, 12), 1, [8], 3)
    cnn.init_weights()
    conv = cnn[0]
    assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
    assert torch.count_nonzero(conv.bias) == 0 and conv.weight.std() > 0


@pytest.mark.parametrize("case", ["plain", "padded_norms_pool", "per_group"])
def test_rsl_rl_lib_cnn_model_is_reproduced(case: str) -> None:
    """rsl-rl-lib 5.5.1's CNNModel (tests/fixtures/rsl_rl_lib/generate_cnn.py): same parameter names and order, same
    seeded initial values, and its weights load and give its outputs."""
    probe = torch.load(FIXTURES / "cnn_probe.pt", weights_only=True)
    obs = TensorDict(probe["observations"], batch_size=[4])
    ref = probe["cases"][case]
    torch.manual_seed(1)
    model = CNNModel(obs, {"actor": ref["groups"]}, "actor", 2, [8], "elu", True, dict(GAUSSIAN), ref["cnn_cfg"])
    assert [name for name, _ in model.named_parameters()] == ref["parameter_names"]
    assert model.cnn_latent_dim == ref["cnn_latent_dim"]
    assert set(model.state_dict()) == set(ref["state_dict"])
    for key, value in ref["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key
    model.load_state_dict(ref["state_dict"])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(obs), ref["output"], rtol=0, atol=1e-6)
        torch.testing.assert_close(model(flat(obs, ref["groups"])), ref["output"], rtol=0, atol=1e-6)


# --- the model --------------------------------------------------------------------------------------------------------


def test_attributes_and_flat_layout() -> None:
    obs = mixed_obs()
    model = mixed_model(obs)
    assert model.obs_groups == ["a", "b"] and model.obs_groups_2d == ["img", "depth"]
    assert model.obs_dims_2d == [(12, 12), (9, 7)] and model.obs_channels_2d == [2, 1]
    assert model.obs_dim_1d == 7 and model.obs_dim == 3 + 288 + 4 + 63
    assert model.vector_spans == [(0, 3), (291, 295)] and model.image_spans == [(3, 291), (295, 358)]


def test_tensordict_and_flat_inputs_agree_with_leading_axes() -> None:
    obs = mixed_obs(6)
    model = mixed_model(obs)
    x = flat(obs, GROUPS)
    with torch.no_grad():
        expected = model(obs)
        assert expected.shape == (6, 2)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
        # [T, B, ...]: a recurrent algorithm's time axis (and rsl-rl-lib's padded trajectories) is kept.
        torch.testing.assert_close(model(x.view(2, 3, -1)), expected.view(2, 3, 2), rtol=0, atol=1e-6)
        torch.testing.assert_close(model(obs.view(2, 3)), expected.view(2, 3, 2), rtol=0, atol=1e-6)


def test_normaliser_reads_only_vector_groups() -> None:
    obs = mixed_obs(64)
    model = CNNModel(obs, {"actor": GROUPS}, "actor", 2, [16], "elu", True, dict(GAUSSIAN), MIXED_CNN).train()
    model.update_normalization(flat(obs, GROUPS))
    expected = torch.cat([obs["a"], obs["b"]], dim=-1).mean(0)
    torch.testing.assert_close(model.obs_normalizer.mean, expected)


def test_gradients_reach_every_conv_layer() -> None:
    obs = mixed_obs()
    model = mixed_model(obs).train()
    model(flat(obs, GROUPS)).square().sum().backward()
    for name, param in model.cnns.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_images_only_model() -> None:
    obs = mixed_obs()
    model = CNNModel(obs, {"critic": ["img"]}, "critic", 1, [8], obs_normalization=True, cnn_cfg=SMALL_CNN)
    assert model.obs_groups == [] and model.obs_dim_1d == 0 and model.obs_dim == 288
    model.update_normalization(obs)  # nothing to normalise: a no-op, not an error
    torch.testing.assert_close(model(obs["img"].flatten(1)), model(obs))


def test_invalid_models_are_refused_by_name() -> None:
    obs = mixed_obs()
    with pytest.raises(ValueError, match="no image group"):
        CNNModel(obs, {"actor": ["a"]}, "actor", 2, cnn_cfg=SMALL_CNN)
    bad = obs.clone()
    bad["seq"] = torch.zeros(5, 3, 4)
    with pytest.raises(ValueError, match="'seq'"):
        CNNModel(bad, {"actor": ["img", "seq"]}, "actor", 2, cnn_cfg=SMALL_CNN)
    with pytest.raises(ValueError, match="cnn_cfg has configs for"):
        CNNModel(obs, {"actor": ["img"]}, "actor", 2, cnn_cfg={"depth": SMALL_CNN})
    with pytest.raises(ValueError, match="cnn_cfg is required"):
        CNNModel(obs, {"actor": ["img"]}, "actor", 2)
    with pytest.raises(KeyError, match="chanels"):
        CNNConfig(cnn_cfg={"output_chanels": [4], "kernel_size": 3})
    with pytest.raises(TypeError, match="from_obs"):
        CNNModel.from_config(10, 2, CNNConfig())


def test_mlp_sets_refuse_image_groups_cnn_sets_accept_them() -> None:
    obs = mixed_obs()
    with pytest.raises(ValueError, match="CNNModel reads image groups"):
        resolve_obs_groups(obs, {"actor": ["img"], "critic": ["state"]}, ("actor", "critic"))
    groups = resolve_obs_groups(obs, {"actor": ["img"], "critic": ["state"]}, ("actor", "critic"), ["actor"])
    assert groups == {"actor": ["img"], "critic": ["state"]}


# --- PPO --------------------------------------------------------------------------------------------------------------


def rsl_rl_lib_train_cfg(share: bool) -> dict[str, Any]:
    """An rsl-rl-lib 5.x dict config with CNN actor and critic."""
    model = {"class_name": "CNNModel", "hidden_dims": [16], "activation": "elu", "obs_normalization": True}
    return {
        "num_steps_per_env": 4,
        "obs_groups": {"actor": GROUPS, "critic": ["img", "depth", "state"]},
        "algorithm": {
            "class_name": "PPO",
            "num_learning_epochs": 2,
            "num_mini_batches": 2,
            "learning_rate": 1e-3,
            "share_cnn_encoders": share,
        },
        "actor": {**model, "distribution_cfg": dict(GAUSSIAN), "cnn_cfg": MIXED_CNN},
        # Another encoder than the actor's: used unless share_cnn_encoders (then ignored, as rsl-rl-lib does).
        "critic": {**model, "cnn_cfg": {"img": SMALL_CNN, "depth": {"output_channels": [2], "kernel_size": 3}}},
    }


class _EnvShape:
    num_envs, num_actions = 5, 2


def run_ppo_iteration(alg: PPO, steps: int = 4) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        for t in range(steps):
            obs = mixed_obs(5, seed=t)
            alg.act(obs)
            alg.process_env_step(mixed_obs(5, seed=100 + t), torch.randn(5), torch.zeros(5, dtype=torch.bool), {})
        alg.compute_returns(mixed_obs(5, seed=99))
    return alg.update()


@pytest.mark.parametrize("share", [False, True])
def test_ppo_trains_cnn_models_from_an_rsl_rl_lib_config(share: bool) -> None:
    cfg = rsl_rl_lib_train_cfg(share)
    torch.manual_seed(0)
    alg = PPO.construct_algorithm(mixed_obs(), _EnvShape(), cfg, "cpu")
    actor, critic = alg.actor, alg.critic
    assert isinstance(actor, CNNModel) and isinstance(critic, CNNModel)
    assert (critic.cnns is actor.cnns) == share
    # The storage keeps the flat layout: images as C·H·W columns.
    assert alg.storage.obs["actor"].shape == (4, 5, actor.obs_dim)
    assert alg.storage.obs["critic"].shape == (4, 5, 288 + 63 + 6)
    assert (critic.cnn_latent_dim == actor.cnn_latent_dim) == share
    params = [p for group in alg.optimizer.param_groups for p in group["params"]]
    assert len(params) == len({id(p) for p in params})  # a shared encoder is stepped once, not twice
    before = {name: p.detach().clone() for name, p in actor.cnns.named_parameters()}
    stats = run_ppo_iteration(alg)
    assert all(torch.isfinite(v) for v in stats.values())
    for name, p in actor.cnns.named_parameters():
        assert not torch.equal(p, before[name]), f"the actor's encoder {name} did not learn"
    # The critic keeps rsl-rl-lib's state-dict keys either way (a shared encoder is saved under both models).
    assert any(key.startswith("cnns.img.") for key in critic.state_dict())


def test_share_cnn_encoders_needs_cnn_models() -> None:
    cfg = rsl_rl_lib_train_cfg(True)
    cfg["critic"] = {"class_name": "MLPModel", "hidden_dims": [16]}
    with pytest.raises(ValueError, match="share_cnn_encoders"):
        train_config_from_dict(cfg)


def test_checkpoint_round_trip_and_config_round_trip() -> None:
    cfg = rsl_rl_lib_train_cfg(True)
    torch.manual_seed(0)
    alg = PPO.construct_algorithm(mixed_obs(), _EnvShape(), cfg, "cpu")
    run_ppo_iteration(alg)
    state = alg.state_dict()
    # The config our runner writes (dataclasses.asdict) parses back to the same model sections.
    train_cfg = train_config_from_dict(json.loads(json.dumps(cfg)))
    again = train_config_from_dict(json.loads(json.dumps(train_cfg.to_dict())))
    assert again.actor == train_cfg.actor and again.critic == train_cfg.critic
    assert isinstance(again.critic, CNNConfig) and again.critic.share_cnn_encoders
    torch.manual_seed(1)
    other = PPO.construct_algorithm(mixed_obs(), _EnvShape(), cfg, "cpu")
    other.load_state_dict(state)
    obs = mixed_obs(5, seed=7)
    with torch.no_grad():
        torch.testing.assert_close(other.actor(obs), alg.actor(obs), rtol=0, atol=0)
        torch.testing.assert_close(other.critic(obs), alg.critic(obs), rtol=0, atol=0)


# --- export -----------------------------------------------------------------------------------------------------------


def onnx_run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feeds)[0])


def test_flat_exports_match_torch(tmp_path: Path) -> None:
    """This library's exports: one flat ``obs`` input (the storage layout), ONNX and TorchScript within 1e-5."""
    obs = mixed_obs(64, seed=3)
    model = mixed_model(obs)
    x = flat(obs, GROUPS)
    with torch.no_grad():
        expected = model(x).numpy()
        torch.testing.assert_close(exportable(model)(x), model(x), rtol=0, atol=0)
    export_onnx(model, tmp_path / "policy.onnx")
    np.testing.assert_allclose(onnx_run(tmp_path / "policy.onnx", {"obs": x.numpy()}), expected, rtol=0, atol=1e-5)
    export_jit(model, tmp_path / "policy.pt")
    scripted = torch.jit.load(str(tmp_path / "policy.pt"))
    np.testing.assert_allclose(scripted(x).detach().numpy(), expected, rtol=0, atol=1e-5)


def test_rsl_rl_lib_style_exports_take_one_input_per_image(tmp_path: Path) -> None:
    """``as_onnx()``/``as_jit()`` keep rsl-rl-lib's inputs: the vector groups, then each image group."""
    obs = mixed_obs(16, seed=4)
    model = mixed_model(obs)
    with torch.no_grad():
        expected = model(obs).numpy()
    vector = torch.cat([obs["a"], obs["b"]], dim=-1)
    onnx_model = model.as_onnx()
    assert onnx_model.input_names == ["obs", "img", "depth"] and onnx_model.output_names == ["actions"]
    torch.onnx.export(
        onnx_model,
        onnx_model.get_dummy_inputs(),
        str(tmp_path / "split.onnx"),
        input_names=onnx_model.input_names,
        output_names=onnx_model.output_names,
        dynamic_axes={name: {0: "batch"} for name in [*onnx_model.input_names, "actions"]},
        opset_version=18,
        dynamo=False,
    )
    feeds = {"obs": vector.numpy(), "img": obs["img"].numpy(), "depth": obs["depth"].numpy()}
    np.testing.assert_allclose(onnx_run(tmp_path / "split.onnx", feeds), expected, rtol=0, atol=1e-5)
    scripted = torch.jit.script(model.as_jit())
    out = scripted(vector, [obs["img"], obs["depth"]])
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=1e-5)
    scripted.reset()


def test_deployment_export_runs_the_parity_check(tmp_path: Path) -> None:
    from deploy.export import export_policy, policy_metadata

    obs = mixed_obs(64, seed=5)
    model = mixed_model(obs)
    spec = {"observation": {g: [(g, obs[g][0].numel())] for g in GROUPS}}
    report = export_policy(model, tmp_path, policy_metadata(model, GROUPS, spec))
    assert report.samples >= 10_000 and max(report.max_abs_diff_onnx, report.max_abs_diff_torchscript) < 1e-5
    assert report.metadata["observation"]["dim"] == model.obs_dim


# --- rsl-rl-lib's public API ------------------------------------------------------------------------------------------


def test_rsl_rl_lib_api_has_the_cnn_names() -> None:
    spec = importlib.util.spec_from_file_location("api_check", Path(__file__).with_name("test_rsl_rl_lib_api.py"))
    assert spec is not None and spec.loader is not None
    api_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api_check)
    api = json.loads((FIXTURES / "api.json").read_text())
    problems = api_check.api_problems(api)
    cnn = {path: why for path, why in problems.items() if "cnn" in path.lower()}
    assert not cnn, cnn
