"""rsl-rl-forge: fast, compact reinforcement learning for robots (import name ``rsl_rl``)."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "rsl_rl" / "__init__.py").read_text(), version)

EXTRAS = {
    # MuJoCo C simulation (cpu backend: mujoco.batch needs 4.0), gymnasium's MJCF models, videos.
    "mujoco": ["mujoco>=4.0", "gymnasium[mujoco]>=1.0", "imageio>=2.30", "imageio-ffmpeg>=0.5"],
    # MuJoCo Warp simulation (GPU backend; also runs, slowly, on CPU).
    "warp": ["mujoco-warp>=4.0", "warp-lang>=1.10"],
    # Torch-free policy runtime for robot computers (also core dependencies: kept so that `[deploy]` still resolves).
    "deploy": ["onnxruntime>=1.17", "numpy>=1.24"],
    # Weights & Biases logging (works offline).
    "wandb": ["wandb>=0.17"],
}
EXTRAS["dev"] = sorted(
    {
        *EXTRAS["mujoco"],
        *EXTRAS["warp"],
        *EXTRAS["deploy"],
        *EXTRAS["wandb"],
        "gymnasium>=1.0",
        "pytest>=8",
        "hypothesis>=6",
        "ruff>=0.6",
        "pyright>=1.1.380",
    }
)

setup(
    name="rsl-rl-forge",
    version=version["__version__"],
    description="Fast, compact PyTorch reinforcement learning for robots: batched PPO, MuJoCo, export, deploy",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=["rsl_rl", "rsl_rl.*", "tasks", "tasks.*", "controllers", "controllers.*", "deploy", "deploy.*"]
    ),
    install_requires=[
        "torch>=2.6",
        "tensordict>=0.7",
        "numpy>=1.24",
        "tyro>=0.9",
        "tqdm>=4.60",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "onnx>=1.16",
        # Every `rsl-rl train` ends with an export whose parity check runs the ONNX file in onnxruntime.
        "onnxruntime>=1.17",
    ],
    # Data files inside the packages (robot MJCF, meshes): a non-editable install needs them as much as the code.
    package_data={"": ["*.xml", "*.stl", "*.obj", "*.msh", "*.png"]},
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": ["rsl-rl = rsl_rl.cli.main:main", "rsl-rl-runtime = deploy.runtime:main"],
        "rsl_rl.tasks": [
            "classic = tasks.classic",
            "rrls = tasks.rrls",
            "legged = tasks.legged",
            "manipulation = tasks.manipulation",
        ],
    },
    license="BSD-3-Clause",
)
