"""Networks, the Gaussian head and the observation normaliser."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from rsl_rl.models import MLPModel
from rsl_rl.modules import ActorConfig, DistributionConfig, EmpiricalNormalization, GaussianDistribution, ModelConfig
from rsl_rl.modules.distribution import gaussian_entropy, gaussian_kl, gaussian_log_prob


def test_gaussian_closed_forms_match_torch_distributions() -> None:
    torch.manual_seed(0)
    mean, std = torch.randn(5, 3), torch.rand(3) + 0.1
    actions = torch.randn(5, 3)
    reference = Normal(mean, std)
    assert torch.allclose(gaussian_log_prob(actions, mean, std), reference.log_prob(actions).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_entropy(std), reference.entropy()[0].sum(), atol=1e-5)
    mean2, std2 = torch.randn(5, 3), torch.rand(5, 3) + 0.1
    expected = kl_divergence(reference, Normal(mean2, std2)).sum(-1)
    assert torch.allclose(gaussian_kl(mean, std.expand(5, 3), mean2, std2), expected, atol=1e-5)


@pytest.mark.parametrize("std_type", ["log", "softplus", "scalar"])
def test_std_stays_positive_under_adversarial_gradients(std_type: str) -> None:
    """Drive the std towards −∞ with a huge learning rate: it must stay positive, finite, and sampling must work."""
    cfg = ActorConfig(hidden_dims=(8,), distribution_cfg=DistributionConfig(init_std=1.0, std_type=std_type))
    actor = MLPModel.from_config(4, 2, cfg)
    opt = torch.optim.SGD(actor.parameters(), lr=1e4)
    for _ in range(50):
        opt.zero_grad()
        # Minimising entropy (= maximising −H) pushes log σ down without bound.
        gaussian_entropy(actor.std()).backward()
        opt.step()
        std = actor.std()
        assert torch.isfinite(std).all() and (std > 0).all()
        Normal(torch.zeros(2), std, validate_args=True).sample()  # the rsl_rl crash: "std >= 0" validation
    assert std.min().item() == pytest.approx(cfg.distribution_cfg.std_range[0], rel=1e-3)


def test_std_survives_nan_parameters() -> None:
    actor = MLPModel.from_config(4, 2, ActorConfig(distribution_cfg=DistributionConfig(std_type="log")))
    assert isinstance(actor.distribution, GaussianDistribution)
    with torch.no_grad():
        actor.distribution.log_std_param.fill_(float("nan"))
    std = actor.std()
    assert torch.isfinite(std).all() and (std > 0).all()


def test_distribution_config_errors_name_field_and_allowed_values() -> None:
    with pytest.raises(ValueError, match="std_type.*allowed"):
        DistributionConfig(std_type="exp")
    with pytest.raises(ValueError, match="std_range"):
        DistributionConfig(std_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="GaussianDistribution"):
        DistributionConfig(class_name="BetaDistribution")


def test_normalizer_matches_pooled_statistics() -> None:
    torch.manual_seed(0)
    data = torch.randn(1000, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -3.0, 0.5])
    norm = EmpiricalNormalization(3, eps=0.0)
    for chunk in data.split([100, 250, 650]):
        norm.update(chunk)
    assert torch.allclose(norm.mean, data.mean(0), atol=1e-4)
    assert torch.allclose(norm.std, data.std(0, unbiased=False), atol=1e-4)
    assert int(norm.count) == 1000
    out = norm(data)
    assert torch.allclose(out.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(3), atol=1e-3)


def test_mlp_model_layout_matches_rsl_rl_state_dict_names() -> None:
    actor = MLPModel.from_config(6, 2, ActorConfig(hidden_dims=(16, 8), obs_normalization=True))
    keys = set(actor.state_dict())
    assert {
        "mlp.0.weight",
        "mlp.2.weight",
        "mlp.4.weight",
        "obs_normalizer._mean",
        "distribution.log_std_param",
    } <= keys
    assert actor(torch.randn(3, 6)).shape == (3, 2)
    critic = MLPModel.from_config(6, 1, ModelConfig(hidden_dims=(16,)))
    assert critic.distribution is None
    with pytest.raises(ValueError, match="activation"):
        ModelConfig(activation="swishy")


@pytest.mark.parametrize("std_type", ["log", "softplus", "scalar"])
@pytest.mark.parametrize("bound", ["min", "max"])
@pytest.mark.parametrize("std_range", [(0.1, 2.0), (0.7, 1.3), (1e-4, 1e4)])
def test_std_initialised_at_a_bound_is_finite_and_learns(
    std_type: str, bound: str, std_range: tuple[float, float]
) -> None:
    """``init_std`` equal to a bound of ``std_range``: the parameter is finite, the std equals the bound, and a loss
    that pulls the std into the range has a finite, non-zero gradient that moves it there, step after step.

    (0.7 and 1.3 are bounds whose float32 logarithm lies outside ``log(bound)``: a bound clamp computed apart from
    the initial parameter froze a log std started there.)"""
    lo, hi = std_range
    init = lo if bound == "min" else hi
    dist_cfg = DistributionConfig(init_std=init, std_type=std_type, std_range=(lo, hi))
    actor = MLPModel.from_config(4, 3, ActorConfig(hidden_dims=(8,), distribution_cfg=dist_cfg))
    assert actor.distribution is not None
    (param,) = actor.distribution.parameters()
    assert torch.isfinite(param).all()
    torch.testing.assert_close(actor.std(), torch.full((3,), init))
    direction = 1.0 if bound == "min" else -1.0  # the loss falls as the std moves into the range
    opt = torch.optim.Adam([param], lr=1e-2)  # steps of ~1e-2 in θ whatever the scale of the gradient
    previous = actor.std().detach()
    for _ in range(3):
        opt.zero_grad()
        (-direction * actor.std().sum()).backward()
        assert param.grad is not None
        assert torch.isfinite(param.grad).all() and (param.grad != 0).all(), param.grad
        opt.step()
        std = actor.std().detach()
        assert (direction * (std - previous) > 0).all(), (previous, std)
        previous = std


@pytest.mark.parametrize("init_std", [1e-4, 0.05, 1.0, 30.0, 1e4])
def test_softplus_std_starts_at_init_std(init_std: float) -> None:
    dist_cfg = DistributionConfig(init_std=init_std, std_type="softplus")
    actor = MLPModel.from_config(2, 2, ActorConfig(hidden_dims=(4,), distribution_cfg=dist_cfg))
    torch.testing.assert_close(actor.std(), torch.full((2,), init_std), rtol=1e-6, atol=0.0)
