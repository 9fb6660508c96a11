"""rsl-rl-lib 5.x dict configs: accepted layouts and clear errors."""

from __future__ import annotations

import pytest
from point_mass import PointMassVecEnv, rsl_rl_train_cfg

from rsl_rl.runners import OnPolicyRunner, TrainConfig, train_config_from_dict


def test_rsl_rl_dict_maps_onto_train_config() -> None:
    cfg = train_config_from_dict(rsl_rl_train_cfg())
    assert isinstance(cfg, TrainConfig)
    assert cfg.num_steps_per_env == 8 and cfg.save_interval == 2
    assert cfg.algorithm.num_mini_batches == 2 and cfg.algorithm.desired_kl == 0.01
    assert cfg.actor.hidden_dims == (32, 32) and cfg.actor.obs_normalization
    # rsl_rl's GaussianDistribution defaults apply where the dict is silent.
    assert cfg.actor.distribution_cfg.std_type == "scalar"
    assert cfg.actor.distribution_cfg.std_range == (1e-6, 1e6)
    assert cfg.obs_groups == {"actor": ["policy"], "critic": ["policy", "critic"]}


def test_runner_level_unknown_keys_are_ignored() -> None:
    cfg = train_config_from_dict(rsl_rl_train_cfg(load_run=".*", clip_actions=None, torch_compile_mode=None))
    assert cfg.num_steps_per_env == 8


@pytest.mark.parametrize("section", ["algorithm", "actor", "critic"])
def test_unknown_component_key_names_key_and_valid_keys(section: str) -> None:
    raw = rsl_rl_train_cfg()
    raw[section]["learning_rat"] = 1e-3
    with pytest.raises(KeyError) as err:
        train_config_from_dict(raw)
    message = str(err.value)
    assert "learning_rat" in message and f"train_cfg['{section}']" in message and "valid keys" in message
    assert "hidden_dims" in message or "learning_rate" in message


@pytest.mark.parametrize("name", ["PPO", "rsl_rl.algorithms.PPO", "rsl_rl.algorithms:PPO"])
def test_class_name_spellings(name: str) -> None:
    raw = rsl_rl_train_cfg()
    raw["algorithm"]["class_name"] = name
    cfg = train_config_from_dict(raw)
    assert isinstance(cfg, TrainConfig) and cfg.algorithm.num_learning_epochs == 2


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("algorithm", "class_name"), "Distillation", r"allowed: \['PPO', 'SAC'\]"),
        (("actor", "class_name"), "ActorCritic", r"allowed: \['MLPModel', 'RNNModel', 'CNNModel'\]"),
        (("algorithm", "rnd_cfg"), {"weight": 1.0}, "rnd_cfg"),
        (("algorithm", "schedule"), "linear", "schedule"),
        (("actor", "activation"), "swish2", "activation"),
    ],
)
def test_unsupported_values_fail_clearly(path: tuple[str, str], value: object, match: str) -> None:
    raw = rsl_rl_train_cfg()
    raw[path[0]][path[1]] = value
    with pytest.raises(ValueError, match=match):
        train_config_from_dict(raw)


def test_missing_sections() -> None:
    raw = rsl_rl_train_cfg()
    del raw["actor"]
    raw["policy"] = {"class_name": "ActorCritic"}
    with pytest.raises(KeyError, match="no 'actor' section.*'policy'"):
        train_config_from_dict(raw)
    raw = rsl_rl_train_cfg()
    del raw["actor"]["distribution_cfg"]
    with pytest.raises(KeyError, match="distribution_cfg"):
        train_config_from_dict(raw)


def test_obs_groups_must_name_existing_groups() -> None:
    raw = rsl_rl_train_cfg(obs_groups={"actor": ["policy"], "critic": ["privileged"]})
    with pytest.raises(ValueError, match="'privileged'.*available groups: \\['policy', 'critic'\\]"):
        OnPolicyRunner(PointMassVecEnv(), raw, None, "cpu")


def test_missing_obs_sets_fall_back_like_rsl_rl() -> None:
    runner = OnPolicyRunner(PointMassVecEnv(), rsl_rl_train_cfg(obs_groups={}), None, "cpu", show_progress=False)
    # 'actor' has no group of its name → 'policy'; 'critic' finds the env's 'critic' group.
    assert runner.obs_groups == {"actor": ["policy"], "critic": ["critic"]}
