"""rsl-rl-lib 5.x's model and module API (``rsl_rl.models``, ``rsl_rl.modules``) behaving as rsl-rl-lib's: models
built with its constructor, its distributions, its stateful recurrent interface, its exports, its checkpoints."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torch.distributions import Beta, Normal, kl_divergence

from rsl_rl.models import MLPModel, RNNModel, build_model
from rsl_rl.models.rnn_model import reset_hidden
from rsl_rl.modules import (
    MLP,
    ActorConfig,
    BetaDistribution,
    DistributionConfig,
    EmpiricalDiscountedVariationNormalization,
    EmpiricalNormalization,
    GaussianDistribution,
    HeteroscedasticGaussianDistribution,
    ModelConfig,
    RNNConfig,
)
from rsl_rl.modules.distribution import last_linear
from rsl_rl.utils import split_and_pad_trajectories

PEER = Path(__file__).parents[1] / "fixtures" / "rsl_rl_lib"
GROUPS = {"actor": ["policy"], "critic": ["policy", "critic"]}
GAUSSIAN = {"class_name": "GaussianDistribution", "init_std": 0.8, "std_type": "scalar"}
HETERO = {"class_name": "HeteroscedasticGaussianDistribution", "init_std": 0.5, "std_type": "log"}
BETA = {"class_name": "BetaDistribution", "action_range": (-2.0, 3.0)}


def _obs(batch: int = 6, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    data = {"policy": 3.0 + 2.0 * torch.randn(batch, 5, generator=g), "critic": torch.randn(batch, 7, generator=g)}
    return TensorDict(data, batch_size=[batch])


def _mlp(distribution_cfg: dict | None = GAUSSIAN, obs_set: str = "actor") -> MLPModel:
    torch.manual_seed(0)
    model = MLPModel(_obs(), GROUPS, obs_set, 3, [16, 16], "elu", True, distribution_cfg)
    model.update_normalization(_obs(200, seed=1))
    return model


def _rnn(rnn_type: str, distribution_cfg: dict | None = GAUSSIAN) -> RNNModel:
    torch.manual_seed(0)
    return RNNModel(_obs(), GROUPS, "actor", 3, [16], "elu", True, distribution_cfg, rnn_type, 8, 2)


# --- construction -----------------------------------------------------------------------------------------------------


def test_both_constructors_build_the_same_module() -> None:
    ours = MLPModel.from_config(5, 3, ActorConfig(hidden_dims=(16, 16), obs_normalization=True))
    theirs = MLPModel(_obs(), GROUPS, "actor", 3, [16, 16], "elu", True, {"class_name": "GaussianDistribution"})
    assert type(ours) is type(theirs) and theirs.obs_dim == ours.obs_dim == 5 and theirs.obs_groups == ["policy"]
    assert [n for n, _ in theirs.named_parameters()] == ["distribution.std_param"] + [
        n for n, _ in ours.named_parameters()
    ][1:]
    assert [n for n, _ in ours.named_parameters()][0] == "distribution.log_std_param"  # our configs default to log
    runner_built = build_model(12, 1, ModelConfig(hidden_dims=(16,)), actor=False, obs_groups=GROUPS["critic"])
    assert torch.equal(runner_built(_obs()), runner_built(torch.cat([_obs()["policy"], _obs()["critic"]], dim=-1)))
    critic = MLPModel(_obs(), GROUPS, "critic", 1, [16])
    assert critic.obs_dim == 12 and critic.distribution is None and critic(_obs()).shape == (6, 1)
    rnn_ours = RNNModel.from_config(
        5, 3, RNNConfig(rnn_hidden_dim=8, hidden_dims=(16,), rnn_num_layers=2, obs_normalization=True)
    )
    rnn_theirs = _rnn("lstm", {"class_name": "GaussianDistribution", "std_type": "log"})
    assert isinstance(rnn_theirs, MLPModel) and rnn_theirs.is_recurrent and not critic.is_recurrent
    assert [n for n, _ in rnn_theirs.named_parameters()] == [n for n, _ in rnn_ours.named_parameters()]
    assert rnn_theirs.latent_dim == 8 and rnn_theirs.cfg.rnn_type == "lstm"
    rnn_theirs.load_state_dict(rnn_ours.state_dict())  # the same layout, so either loads the other's checkpoints


def test_our_configs_refuse_state_dependent_distributions_and_say_why() -> None:
    for name in ("BetaDistribution", "rsl_rl.modules:HeteroscedasticGaussianDistribution"):
        with pytest.raises(ValueError, match="state-independent std only.*GaussianDistribution"):
            DistributionConfig(class_name=name)
    with pytest.raises(RuntimeError, match="no state-independent std"):
        _mlp(BETA).std()


# --- forward ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dist", [GAUSSIAN, HETERO, BETA, None], ids=["gaussian", "hetero", "beta", "none"])
def test_tensordict_and_flat_inputs_give_the_same_output(dist: dict | None) -> None:
    model, obs = _mlp(dist), _obs()
    out = model(obs)
    assert out.shape == (6, 3)
    assert torch.equal(out, model(obs["policy"]))
    assert torch.equal(model.get_latent(obs), model.get_latent(obs["policy"]))
    critic = _mlp(None, obs_set="critic")
    assert torch.equal(critic(obs), critic(torch.cat([obs["policy"], obs["critic"]], dim=-1)))


@pytest.mark.parametrize("dist", [GAUSSIAN, HETERO, BETA], ids=["gaussian", "hetero", "beta"])
def test_stochastic_output_samples_the_distribution_whose_mean_is_the_deterministic_output(dist: dict) -> None:
    model, obs = _mlp(dist), _obs(4)
    mean = model(obs)
    torch.manual_seed(3)
    sample = model(obs, stochastic_output=True)
    assert not torch.allclose(sample, mean) and not sample.requires_grad
    torch.testing.assert_close(model.output_mean, mean)
    assert model.output_std.shape == (4, 3) and (model.output_std > 0).all()
    params = model.output_distribution_params
    big = TensorDict({"policy": obs["policy"].repeat(20_000, 1)}, batch_size=[80_000])
    samples = model(big, stochastic_output=True).view(20_000, 4, 3)
    torch.testing.assert_close(samples.mean(0), mean, atol=0.03, rtol=0.0)
    torch.testing.assert_close(samples.std(0), model.output_std[:4], atol=0.03, rtol=0.0)
    zero = model.get_kl_divergence(params, params)
    torch.testing.assert_close(zero, torch.zeros(4), atol=1e-6, rtol=0.0)
    if dist is BETA:
        assert ((samples > -2.0) & (samples < 3.0)).all()


def test_gaussian_head_matches_torch_normal_and_a_hand_computed_kl() -> None:
    model, obs = _mlp(GAUSSIAN), _obs(4)
    torch.manual_seed(5)
    sample = model(obs, stochastic_output=True)
    mean, std = model.output_distribution_params
    torch.manual_seed(5)
    torch.testing.assert_close(sample, Normal(mean, std).sample())  # the same draws as rsl-rl-lib's sample()
    torch.testing.assert_close(std, torch.full((4, 3), 0.8))
    reference = Normal(mean, std)
    torch.testing.assert_close(model.get_output_log_prob(sample), reference.log_prob(sample).sum(-1))
    torch.testing.assert_close(model.output_entropy, reference.entropy().sum(-1))
    # KL(N(0, 1) ‖ N(1, 2)) = log 2 + (1 + 1) / 8 − ½ per dimension.
    dist = GaussianDistribution(2)
    kl = dist.kl_divergence((torch.zeros(1, 2), torch.ones(1, 2)), (torch.ones(1, 2), torch.full((1, 2), 2.0)))
    torch.testing.assert_close(kl, torch.tensor([2 * (math.log(2.0) + 0.25 - 0.5)]))


def test_heteroscedastic_head_is_state_dependent_and_matches_torch_normal() -> None:
    model, obs = _mlp(HETERO), _obs(4)
    assert model.mlp(model.get_latent(obs)).shape == (4, 2, 3)
    model(obs, stochastic_output=True)
    torch.testing.assert_close(model.output_std, torch.full((4, 3), 0.5))  # the std rows start at init_std
    with torch.no_grad():
        last_linear(model.mlp).weight.normal_()  # now every state has its own std
    out = model.mlp(model.get_latent(obs))
    model(obs, stochastic_output=True)
    mean, std = model.output_distribution_params
    torch.testing.assert_close(mean, out[:, 0])
    torch.testing.assert_close(std, out[:, 1].exp())
    assert not torch.allclose(std[0], std[1])
    actions = torch.randn(4, 3)
    reference = Normal(mean, std)
    torch.testing.assert_close(model.get_output_log_prob(actions), reference.log_prob(actions).sum(-1))
    torch.testing.assert_close(model.output_entropy, reference.entropy().sum(-1))
    other = (mean + 0.3, std * 1.5)
    expected = kl_divergence(reference, Normal(*other)).sum(-1)
    torch.testing.assert_close(model.get_kl_divergence((mean, std), other), expected)
    head = HeteroscedasticGaussianDistribution(3, std_range=(0.2, 0.4))
    head.update(torch.tensor([[[0.0] * 3, [0.1, 0.3, 9.0]]]))
    torch.testing.assert_close(head.std, torch.tensor([[0.2, 0.3, 0.4]]))  # clamped into std_range


def test_beta_head_matches_torch_beta_on_the_rescaled_range() -> None:
    model, obs = _mlp(BETA), _obs(4)
    with torch.no_grad():
        last_linear(model.mlp).weight.normal_()
    raw = model.mlp(model.get_latent(obs))
    alpha, beta = nn.functional.softplus(raw[:, 0]) + 1, nn.functional.softplus(raw[:, 1]) + 1
    model(obs, stochastic_output=True)
    torch.testing.assert_close(model.output_distribution_params, (alpha, beta))
    unit = Beta(alpha, beta)
    torch.testing.assert_close(model.output_mean, -2.0 + 5.0 * unit.mean)
    torch.testing.assert_close(model(obs), -2.0 + 5.0 * unit.mean)
    torch.testing.assert_close(model.output_std, 5.0 * unit.stddev)
    torch.testing.assert_close(model.output_entropy, unit.entropy().sum(-1))  # rsl-rl-lib: the unit Beta's entropy
    actions = -2.0 + 5.0 * torch.rand(4, 3)
    expected = (unit.log_prob((actions + 2.0) / 5.0) - math.log(5.0)).sum(-1)
    torch.testing.assert_close(model.get_output_log_prob(actions), expected)
    other = (alpha * 1.7, beta + 0.4)
    expected_kl = kl_divergence(unit, Beta(*other)).sum(-1)
    torch.testing.assert_close(model.get_kl_divergence((alpha, beta), other), expected_kl)
    fresh = _mlp(BETA)
    with torch.no_grad():  # init_mlp_weights: the β rows start at zero, so β = softplus(0) + 1 in every state
        fresh(obs, stochastic_output=True)
    torch.testing.assert_close(fresh.output_distribution_params[1], torch.full((4, 3), math.log(2.0) + 1.0))


def test_deepcopy_after_a_stochastic_forward_with_gradients() -> None:
    """The last update() holds an autograd graph, which deepcopy cannot copy; a copied model drops it."""
    model = _mlp(GAUSSIAN)
    model(_obs(), stochastic_output=True)
    copied = copy.deepcopy(model)
    torch.testing.assert_close(copied(_obs()), model(_obs()))
    with pytest.raises(RuntimeError, match="update"):
        _ = copied.output_mean


# --- recurrent --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_stateful_forward_and_long_dones_reset_equal_the_explicit_state_step(rnn_type: str) -> None:
    model = _rnn(rnn_type)
    obs = [_obs(4, seed=t) for t in range(5)]
    dones = torch.tensor([1, 0, 0, 1])  # int64, as Isaac Lab's play script passes them
    hidden = model.initial_hidden(4)
    model.reset()
    for t, o in enumerate(obs):
        expected, hidden = model.step(o["policy"], hidden)
        torch.testing.assert_close(model(o), expected)
        if t == 2:
            model.reset(dones)
            hidden = reset_hidden(hidden, dones.bool())
    state = model.get_hidden_state()
    assert state is not None
    states = state if isinstance(state, tuple) else (state,)
    assert len(states) == model.num_hidden and all(s.shape == (2, 4, 8) for s in states)
    for ours, explicit in zip(states, hidden, strict=True):
        torch.testing.assert_close(ours, explicit)
    model.detach_hidden_state()
    model.reset()
    assert model.get_hidden_state() is None


def test_padded_trajectories_with_masks_equal_the_step_by_step_outputs() -> None:
    """rsl-rl-lib's recurrent mini-batch: padded episodes from their saved state, outputs of the valid steps."""
    model = _rnn("lstm")
    steps, envs = 6, 3
    obs = torch.randn(steps, envs, 5)
    dones = torch.zeros(steps, envs, dtype=torch.bool)
    dones[2, 0] = dones[3, 2] = True
    expected, _ = model.forward_sequence(obs, model.initial_hidden(envs), dones)
    padded, masks = split_and_pad_trajectories(obs, dones)
    assert isinstance(padded, torch.Tensor)
    h0 = model.initial_hidden(masks.shape[1])
    out = model(padded, masks=masks, hidden_state=(h0[0], h0[1]))
    torch.testing.assert_close(out, expected)


# --- export -----------------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["mlp", "mlp-beta", "gru", "lstm"])
def test_as_onnx_exports_as_mjlab_does_and_matches_torch_in_onnxruntime(kind: str, tmp_path: Path) -> None:
    model = _rnn(kind) if kind in ("gru", "lstm") else _mlp(BETA if kind == "mlp-beta" else GAUSSIAN)
    if kind == "mlp-beta":
        with torch.no_grad():
            last_linear(model.mlp).weight.normal_()
    onnx_model = model.as_onnx(verbose=False)
    onnx_model.to("cpu")
    onnx_model.eval()
    assert onnx_model.is_recurrent == model.is_recurrent
    names = {
        "gru": (["obs", "h_in"], ["actions", "h_out"]),
        "lstm": (["obs", "h_in", "c_in"], ["actions", "h_out", "c_out"]),
    }
    assert (onnx_model.input_names, onnx_model.output_names) == names.get(kind, (["obs"], ["actions"]))
    dynamic = {"obs": {0: "batch"}, "actions": {0: "batch"}}
    dynamic.update({name: {1: "batch"} for name in onnx_model.input_names[1:] + onnx_model.output_names[1:]})
    path = tmp_path / "policy.onnx"
    torch.onnx.export(
        onnx_model,
        onnx_model.get_dummy_inputs(),
        str(path),
        export_params=True,
        opset_version=18,
        verbose=False,
        input_names=onnx_model.input_names,
        output_names=onnx_model.output_names,
        dynamic_axes=dynamic,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = _obs(3)
    feed = {"obs": obs["policy"].numpy()}
    if isinstance(model, RNNModel):
        state = [torch.randn_like(h) for h in model.initial_hidden(3)]
        feed.update({name: s.numpy() for name, s in zip(onnx_model.input_names[1:], state, strict=True)})
        expected, next_state = model.step(obs["policy"], tuple(state))
        result = [np.asarray(r) for r in session.run(None, feed)]
        for got, want in zip(result[1:], next_state, strict=True):
            np.testing.assert_allclose(got, want.detach().numpy(), atol=1e-5, rtol=0)
    else:
        expected = model(obs)
        result = [np.asarray(r) for r in session.run(None, feed)]
    np.testing.assert_allclose(result[0], expected.detach().numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["mlp-beta", "gru"])
def test_as_jit_is_scriptable_stateful_and_applies_the_deterministic_output(kind: str) -> None:
    model = _rnn(kind, HETERO) if kind == "gru" else _mlp(BETA)
    scripted = torch.jit.script(model.as_jit())
    obs = [_obs(1, seed=t)["policy"] for t in range(3)]
    model.reset()
    for o in obs:
        torch.testing.assert_close(scripted(o), model(o))
    scripted.reset()
    model.reset()
    torch.testing.assert_close(scripted(obs[0]), model(obs[0]))


# --- rsl-rl-lib's own checkpoints -------------------------------------------------------------------------------------


def _peer_model(kind: str) -> tuple[MLPModel, dict]:
    probe = torch.load(PEER / f"{kind}_probe.pt", weights_only=True)
    saved = torch.load(PEER / f"{kind}_checkpoint.pt", weights_only=True)
    cfg = dict(probe["train_cfg"]["actor"])
    cls = RNNModel if cfg.pop("class_name") == "RNNModel" else MLPModel
    obs = TensorDict(
        {k: v[0] if kind == "rnn" else v for k, v in probe["obs"].items()}, batch_size=[4 if kind == "rnn" else 20]
    )
    model = cls(obs, probe["train_cfg"]["obs_groups"], "actor", 3, **cfg)
    model.load_state_dict(saved["actor_state_dict"])  # strict: every name and shape as rsl-rl-lib saved them
    assert [n for n, _ in model.named_parameters()] == probe["actor_param_names"]
    return model.eval(), probe


def test_an_rsl_rl_lib_mlp_actor_checkpoint_reproduces_its_actions() -> None:
    model, probe = _peer_model("mlp")
    obs = TensorDict(probe["obs"], batch_size=[20])
    with torch.inference_mode():
        assert (model(obs) - probe["actions"]).abs().max() < 1e-5
    scripted = torch.jit.script(model.as_jit())
    assert (scripted(obs["policy"]) - probe["jit_actions"]).abs().max() < 1e-5
    model.train()
    before = model.obs_normalizer.state_dict()["count"].clone()
    model.update_normalization(obs)
    assert int(model.obs_normalizer.state_dict()["count"]) == int(before) + 20


def test_an_rsl_rl_lib_lstm_actor_checkpoint_reproduces_its_actions_with_long_dones_resets() -> None:
    model, probe = _peer_model("rnn")
    model.reset()
    for t in range(probe["actions"].shape[0]):
        obs = TensorDict({k: v[t] for k, v in probe["obs"].items()}, batch_size=[4])
        with torch.inference_mode():
            assert (model(obs) - probe["actions"][t]).abs().max() < 1e-5, t
        if t == probe["reset_after_step"]:
            model.reset(probe["dones"])


# --- modules ----------------------------------------------------------------------------------------------------------


def test_empirical_normalization_until_inverse_and_eval_mode() -> None:
    norm = EmpiricalNormalization(2, eps=0.0, until=150)
    data = torch.randn(400, 2) * 3.0 + 1.0
    for chunk in data.split(100):
        norm.update(chunk)
    assert int(norm.count) == 200  # the batch that crosses `until` counts, later ones do not
    torch.testing.assert_close(norm.mean, data[:200].mean(0))
    x = torch.randn(5, 2)
    torch.testing.assert_close(norm.inverse(norm(x)), x)
    norm.eval()
    norm.update(data)
    assert int(norm.count) == 200
    scripted = torch.jit.script(EmpiricalNormalization(2))  # update and inverse are left out of TorchScript
    torch.testing.assert_close(scripted(x), x / (1.0 + 1e-2))


def test_discounted_variation_normalization_divides_by_the_std_of_the_discounted_sum() -> None:
    norm = EmpiricalDiscountedVariationNormalization([], eps=0.0, gamma=0.5)
    first = norm(torch.tensor([1.0, 3.0]))  # R = [1, 3]: std 1
    torch.testing.assert_close(first, torch.tensor([1.0, 3.0]))
    second = norm(torch.tensor([2.0, 2.0]))  # R = [2.5, 3.5]; pooled over [1, 3, 2.5, 3.5]
    pooled = torch.tensor([1.0, 3.0, 2.5, 3.5]).std(unbiased=False)
    torch.testing.assert_close(second, torch.tensor([2.0, 2.0]) / pooled)


def test_mlp_block_shapes_last_activation_and_init_weights() -> None:
    mlp = MLP(4, [2, 3], [-1, 8], "tanh", last_activation="sigmoid")
    assert isinstance(mlp[0], nn.Linear) and mlp[0].out_features == 4  # -1: the input's width
    y = mlp(torch.randn(5, 4))
    assert y.shape == (5, 2, 3) and ((y > 0) & (y < 1)).all()
    mlp.init_weights([1.0, 0.0, 2.0, 0.0, 0.5])
    for index, gain in ((0, 1.0), (2, 2.0), (4, 0.5)):
        layer = mlp[index]
        assert isinstance(layer, nn.Linear) and not layer.bias.any()
        w = layer.weight
        product = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(product, gain**2 * torch.eye(min(w.shape)), atol=1e-5, rtol=0)


def test_beta_distribution_standalone_hand_values() -> None:
    head = BetaDistribution(1, action_range=(0.0, 2.0))
    head.update(torch.zeros(1, 2, 1))  # α = β = softplus(0) + 1 = 1 + log 2: symmetric, mean at the centre
    torch.testing.assert_close(head.mean, torch.ones(1, 1))
    assert head.input_dim == [2, 1]
    torch.testing.assert_close(head.kl_divergence(head.params, head.params), torch.zeros(1))


class _EncodedModel(MLPModel):
    """A subclass built the way rsl-rl-lib's CNNModel is: more groups than the MLP reads, an encoder for them."""

    def __init__(self, obs: TensorDict, obs_groups: dict[str, list[str]], obs_set: str, output_dim: int) -> None:
        self._get_obs_dim(obs, obs_groups, obs_set)  # may run before nn.Module.__init__, as CNNModel's does
        super().__init__(obs, obs_groups, obs_set, output_dim, [8], distribution_cfg=GAUSSIAN)
        self.encoder = nn.Linear(7, 2)

    def _get_obs_dim(self, obs: TensorDict, obs_groups: dict[str, list[str]], obs_set: str) -> tuple[list[str], int]:
        self.encoded_groups = [g for g in obs_groups[obs_set] if g == "critic"]
        flat = [g for g in obs_groups[obs_set] if g != "critic"]
        return flat, sum(obs[g].shape[-1] for g in flat)

    def _get_latent_dim(self) -> int:
        return self.obs_dim + 2

    def get_latent(
        self, obs: TensorDict, masks: torch.Tensor | None = None, hidden_state: object = None
    ) -> torch.Tensor:
        return torch.cat([super().get_latent(obs), self.encoder(obs["critic"])], dim=-1)


def test_mlp_model_is_subclassable_through_rsl_rl_lib_hooks() -> None:
    model = _EncodedModel(_obs(), GROUPS, "critic", 3)
    assert model.obs_groups == ["policy"] and model.obs_dim == 5 and model.mlp[0].in_features == 7
    assert model(_obs()).shape == (6, 3)
    assert model(_obs(), stochastic_output=True).shape == (6, 3)
