"""The training configuration, and its construction from rsl-rl-lib 5.x dictionaries.

An rsl_rl ``train_cfg`` dict is a runner level (``num_steps_per_env``, ``save_interval``, ``obs_groups``, ...) with
component sections ``algorithm``, ``actor`` and ``critic``, each naming its class with ``class_name``. As in rsl_rl,
runner-level keys this library does not use (``seed``, ``resume`` ...) are ignored (``experiment_name`` is kept in the
config, unused); an unknown key inside a component is an error that names it and lists the valid ones.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rsl_rl.algorithms.ppo import PPOConfig
from rsl_rl.algorithms.sac import SACConfig
from rsl_rl.modules.cnn import CNNConfig
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ActorConfig, ModelConfig
from rsl_rl.modules.rnn import RNNConfig
from rsl_rl.modules.sac_models import SACActorConfig, SACCriticConfig
from rsl_rl.utils.class_names import short_class_name

LOGGERS = ("tensorboard", "wandb", "none")


@dataclass
class RunnerConfig:
    """Runner settings shared by every algorithm's training config (rsl_rl's runner level)."""

    num_steps_per_env: int = 24
    """Steps collected from every env per iteration."""
    max_iterations: int = 1500
    """Iterations of ``learn()`` when none are given."""
    save_interval: int = 50
    """Write a checkpoint every this many iterations (and at the end)."""
    obs_groups: dict[str, list[str]] = field(default_factory=dict)
    """Observation set → env observation groups, e.g. ``{"actor": ["policy"], "critic": ["policy", "critic"]}``."""
    logger: str = "tensorboard"
    """``"tensorboard"``, ``"wandb"`` (offline without network or API key) or ``"none"``."""
    wandb_project: str = "rsl_rl"
    """W&B project name."""
    experiment_name: str = ""
    """Name of the experiment: recorded in the run's config.json only (rsl_rl's scripts name their log directory
    with it; the runner itself does not read it)."""
    run_name: str = ""
    """Suffix of the run name."""
    check_for_nan: bool = True
    """Count non-finite observations and rewards (reported once per iteration)."""
    eval_interval: int = 0
    """Deterministic evaluation every this many iterations (0: only at the end); needs an eval env."""
    eval_episodes: int = 10
    """Episodes (parallel eval envs) per evaluation."""
    stop_at_return: float | None = None
    """Stop training at the first evaluation whose mean return reaches this value."""
    max_wall_seconds: float | None = None
    """Stop training after the iteration during which this much training time (collection + update) has passed."""

    def __post_init__(self) -> None:
        if self.logger not in LOGGERS:
            raise ValueError(f"logger={self.logger!r}; allowed: {list(LOGGERS)}")
        for name in ("num_steps_per_env", "save_interval", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_iterations < 0 or self.eval_interval < 0:
            raise ValueError("max_iterations and eval_interval must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainConfig(RunnerConfig):
    """Runner settings plus the algorithm, actor and critic sections (rsl_rl's ``train_cfg`` layout)."""

    algorithm: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters."""
    actor: ActorConfig = field(default_factory=ActorConfig)
    """Actor network and action distribution; an :class:`RNNConfig` makes it recurrent (trained with BPTT), a
    :class:`CNNConfig` reads image groups through CNN encoders."""
    critic: ModelConfig = field(default_factory=ModelConfig)
    """Critic network; an :class:`RNNConfig` makes it recurrent."""

    @property
    def recurrent(self) -> bool:
        """Whether the actor or the critic is recurrent."""
        return isinstance(self.actor, RNNConfig) or isinstance(self.critic, RNNConfig)


@dataclass
class SACTrainConfig(RunnerConfig):
    """Runner settings plus SAC's algorithm, actor and critic sections (``class_name: "SAC"`` in a dict config).

    ``num_steps_per_env`` is the number of steps every env takes between two rounds of ``algorithm.num_updates``
    gradient steps; ``max_iterations`` counts those rounds.
    """

    num_steps_per_env: int = 1
    """Steps collected from every env per iteration."""
    algorithm: SACConfig = field(default_factory=SACConfig)
    """SAC hyperparameters."""
    actor: SACActorConfig = field(default_factory=SACActorConfig)
    """The squashed Gaussian actor."""
    critic: SACCriticConfig = field(default_factory=SACCriticConfig)
    """The Q ensemble."""

    @property
    def recurrent(self) -> bool:
        """SAC's networks are feed-forward."""
        return False


# rsl_rl keys accepted in a component section although this library does not implement the feature: they must keep
# their "off" value.
_ALGORITHM_OFF_KEYS: dict[str, tuple[Any, ...]] = {}
_ALGORITHM_IGNORED_KEYS = ("grad_reduce_bucket_mb",)  # multi-GPU only
# rsl_rl's own defaults of GaussianDistribution, used when a dict config leaves them out.
_RSL_RL_DISTRIBUTION_DEFAULTS = {"std_type": "scalar", "std_range": (1e-6, 1e6)}
_RUNNER_KEYS = (
    "num_steps_per_env",
    "max_iterations",
    "save_interval",
    "obs_groups",
    "logger",
    "wandb_project",
    "experiment_name",
    "run_name",
    "check_for_nan",
    "eval_interval",
    "eval_episodes",
    "stop_at_return",
    "max_wall_seconds",
)


def train_config_from_dict(cfg: dict[str, Any]) -> TrainConfig | SACTrainConfig:
    """Build a :class:`TrainConfig` from an rsl-rl-lib 5.x style ``train_cfg`` dict (a :class:`SACTrainConfig` when
    ``algorithm.class_name`` is ``"SAC"``)."""
    if not isinstance(cfg, dict):
        raise TypeError(f"train_cfg must be a dict or TrainConfig, got {type(cfg).__name__}")
    cfg = copy.deepcopy(cfg)
    for section in ("algorithm", "actor", "critic"):
        if section not in cfg:
            hint = " (rsl_rl < 4 'policy' sections must be split into 'actor' and 'critic')" if "policy" in cfg else ""
            raise KeyError(f"train_cfg has no '{section}' section{hint}; expected sections: algorithm, actor, critic")
    if _short(str(cfg["algorithm"].get("class_name", "PPO"))) == "SAC":
        return _sac_config_from_dict(cfg)
    return ppo_config_from_dict(cfg)


def ppo_config_from_dict(cfg: dict[str, Any]) -> TrainConfig:
    """A PPO ``train_cfg`` dict as a :class:`TrainConfig` (a SAC dict is an error naming the difference)."""
    if _short(str(cfg["algorithm"].get("class_name", "PPO"))) == "SAC":
        raise ValueError("this needs a PPO training config (a Gaussian MLP/RNN actor); the given one trains SAC")
    alg = dict(cfg["algorithm"])
    share_cnn_encoders = bool(alg.pop("share_cnn_encoders", None))  # kept with the critic that uses the actor's CNNs
    for key, allowed in _ALGORITHM_OFF_KEYS.items():
        value = alg.pop(key, None)
        if value not in allowed:
            raise ValueError(f"algorithm.{key}={value!r} is not supported by this library (allowed: {list(allowed)})")
    for key in _ALGORITHM_IGNORED_KEYS:
        alg.pop(key, None)
    algorithm = _build(PPOConfig, alg, "algorithm")

    actor_dict = dict(cfg["actor"])
    dist = actor_dict.pop("distribution_cfg", None)
    if dist is None:
        raise KeyError("train_cfg['actor'] needs a 'distribution_cfg' (e.g. {'class_name': 'GaussianDistribution'})")
    dist = {**_RSL_RL_DISTRIBUTION_DEFAULTS, **dist}
    dist["std_range"] = tuple(dist["std_range"])
    actor = _build(
        _model_class(actor_dict, ActorConfig, "actor"),
        {**actor_dict, "distribution_cfg": _build(DistributionConfig, dist, "actor.distribution_cfg")},
        "actor",
    )
    critic_dict = dict(cfg["critic"])
    critic_cls = _model_class(critic_dict, ModelConfig, "critic")
    # An RNNConfig or CNNConfig carries a (unused) distribution_cfg, so a saved critic config of one has it: accept it.
    if critic_dict.pop("distribution_cfg", None) is not None and critic_cls not in (RNNConfig, CNNConfig):
        raise ValueError("critic.distribution_cfg is not supported: the critic outputs a value, not a distribution")
    if share_cnn_encoders:
        if critic_cls is not CNNConfig or not isinstance(actor, CNNConfig):
            raise ValueError("algorithm.share_cnn_encoders=True needs CNNModel actor and critic sections")
        critic_dict["share_cnn_encoders"] = True
    critic = _build(critic_cls, critic_dict, "critic")

    return TrainConfig(**_runner_section(cfg), algorithm=algorithm, actor=actor, critic=critic)


def _short(class_name: str) -> str:
    """The algorithm a ``class_name`` selects (a path must name this library's class)."""
    return short_class_name(class_name, ["PPO", "SAC"], "algorithm.class_name")


def _sac_config_from_dict(cfg: dict[str, Any]) -> SACTrainConfig:
    """A SAC ``train_cfg``: sections are built from their dataclasses, unknown keys are errors."""
    algorithm = _build(SACConfig, dict(cfg["algorithm"]), "algorithm")
    actor = _build(SACActorConfig, dict(cfg["actor"]), "actor")
    if "cnn_cfg" in cfg["critic"] or str(cfg["critic"].get("class_name", "")).endswith("CNNModel"):
        raise ValueError(
            "critic.cnn_cfg / a CNNModel critic: SAC's critics are MLP ensembles over vector groups, image critics are "
            "not supported; give the critic state groups (obs_groups['critic']) and the actor a cnn_cfg"
        )
    critic = _build(SACCriticConfig, dict(cfg["critic"]), "critic")
    return SACTrainConfig(**_runner_section(cfg), algorithm=algorithm, actor=actor, critic=critic)


def _runner_section(cfg: dict[str, Any]) -> dict[str, Any]:
    """The runner-level keys of a ``train_cfg`` dict, with rsl_rl's logger spellings mapped onto ours.

    A writer the plain names cannot express (rsl-rl-lib 5.5's ``{"class_name": "WandbLogWriter" | "my_pkg:Writer",
    **kwargs}``, or ``"neptune"``) becomes a :class:`~rsl_rl.utils.log_writer.LoggerChoice`: a plain name that carries
    the section to the logger, which builds that writer.
    """
    runner = {key: cfg[key] for key in _RUNNER_KEYS if key in cfg}
    if runner.get("logger") is None:
        runner.pop("logger", None)
    if isinstance(runner.get("logger"), dict) or runner.get("logger") == "neptune":
        from rsl_rl.utils.log_writer import LoggerChoice  # local: only writer sections need it

        runner["logger"] = LoggerChoice.from_rsl_rl(runner["logger"], cfg)
    runner["obs_groups"] = {k: list(v) for k, v in (runner.get("obs_groups") or {}).items()}
    return runner


def _model_class(values: dict[str, Any], mlp_cls: type, section: str) -> type:
    """The config class a model section's ``class_name`` selects: ``MLPModel``, ``RNNModel`` or ``CNNModel``."""
    name = short_class_name(
        str(values.get("class_name", "MLPModel")), ["MLPModel", "RNNModel", "CNNModel"], f"{section}.class_name"
    )
    return {"RNNModel": RNNConfig, "CNNModel": CNNConfig}.get(name, mlp_cls)


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise KeyError(f"unknown key(s) {unknown} in train_cfg['{section}']; valid keys: {valid}")
    if "hidden_dims" in values:
        values = {**values, "hidden_dims": tuple(values["hidden_dims"])}
    for key in ("learning_rate_bounds", "log_std_range", "action_bounds"):
        if values.get(key) is not None:
            values = {**values, key: tuple(values[key])}
    return cls(**values)
