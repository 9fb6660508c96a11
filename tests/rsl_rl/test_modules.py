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


def test_return_scale_normalization_hand_values_across_repeated_episode_ends() -> None:
    from rsl_rl.modules.normalization import ReturnScaleNormalization

    norm = ReturnScaleNormalization(2, gamma=0.5)
    rewards = torch.tensor([[1.0, 2.0], [3.0, 0.0], [-1.0, 4.0], [2.0, 1.0]])
    # env 0 ends at steps 0 and 2 (its first and second episode), env 1 at step 1.
    dones = torch.tensor([[True, False], [False, True], [True, False], [False, False]])
    # R_t = 0.5 R_{t-1} + r_t, restarted after each end: by hand.
    returns = [[1.0, 2.0], [3.0, 1.0], [0.5, 4.0], [2.0, 3.0]]
    seen: list[float] = []
    for t in range(4):
        out = norm(rewards[t], dones[t])
        seen += returns[t]
        var = torch.tensor(seen, dtype=torch.float64).var(unbiased=False)
        assert out.tolist() == pytest.approx((rewards[t].double() / var.sqrt()).tolist(), rel=1e-5), t
    assert norm.returns.tolist() == pytest.approx([2.0, 3.0])
    assert int(norm.stats.count) == 8
    # Outputs are clipped to +-clip; the sign of a reward never changes.
    clipped = ReturnScaleNormalization(1, gamma=0.9, clip=1.0)
    clipped(torch.tensor([1.0]), torch.tensor([False]))
    assert clipped(torch.tensor([-100.0]), torch.tensor([False])).item() == -1.0


def test_return_scale_normalization_matches_gymnasium_normalize_reward() -> None:
    """The peer: gymnasium's vector NormalizeReward (same-step autoreset) on the same rewards and truncations, with
    several truncations per env. gymnasium's running statistics start from a pseudo-count of 1e-4 at var 1, ours from
    none: the scales agree to ~1e-4 / samples."""
    import gymnasium
    import numpy as np
    from gymnasium.vector import AutoresetMode
    from gymnasium.wrappers.vector import NormalizeReward

    from rsl_rl.modules.normalization import ReturnScaleNormalization

    n, steps, gamma = 3, 40, 0.99
    g = np.random.default_rng(0)
    scripted_rewards = g.normal(2.0, 3.0, (steps, n))
    truncations = np.arange(1, steps + 1)[:, None] % np.array([3, 5, 7])[None] == 0  # 13, 8 and 5 ends

    class Scripted(gymnasium.vector.VectorEnv):
        metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

        def __init__(self) -> None:
            self.num_envs, self.t = n, 0
            self.single_observation_space = gymnasium.spaces.Box(-1.0, 1.0, (1,))
            self.single_action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,))
            self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, n)
            self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, n)

        def reset(self, **kwargs: object) -> tuple[np.ndarray, dict]:
            return np.zeros((n, 1)), {}

        def step(self, actions: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
            t, self.t = self.t, self.t + 1
            return np.zeros((n, 1)), scripted_rewards[t], np.zeros(n, dtype=bool), truncations[t], {}

    peer = NormalizeReward(Scripted(), gamma=gamma, epsilon=1e-8)
    peer.reset()
    ours = ReturnScaleNormalization(n, gamma=gamma, clip=1e9)
    for t in range(steps):
        expected = peer.step(np.zeros((n, 1)))[1]
        got = ours(torch.tensor(scripted_rewards[t], dtype=torch.float32), torch.from_numpy(truncations[t]))
        assert got.double().numpy() == pytest.approx(expected, rel=2e-4), t
