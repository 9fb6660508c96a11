# Quick start: `make train` (install + train the default task), `make test` (install + run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Without an NVIDIA GPU install the CPU build of torch (pip finds a local 2.13.0 CPU wheel where one is provided);
# with one, any torch >= 2.6. Override e.g. `make TORCH="torch==2.9.1" TORCH_PIP_ARGS="--index-url ..."`.
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.6" || echo "torch==2.13.0")
TORCH_PIP_ARGS ?=
TASK ?= pendulum

.PHONY: install train test check-wheel lint bench clean

install: $(STAMP)

$(STAMP): setup.py
	@# Offscreen rendering of MuJoCo (play --video, its tests) needs EGL; install Mesa's where it is missing.
	@$(PYTHON) -c "import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library('EGL') else 1)" || \
		{ command -v apt-get >/dev/null && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q \
		libegl1 libgl1-mesa-dri >/dev/null; } || echo "warning: no EGL: MuJoCo rendering will not work"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

train: $(STAMP)
	$(VENV)/bin/rsl-rl train --task $(TASK)

test: $(STAMP)
	$(PY) -m pytest

# What a user gets from `pip install .` or a git URL: build the wheel, install it (not editable) into a fresh venv,
# and train a gymnasium MuJoCo task and the quadruped for two iterations from outside the source tree.
WHEEL_VENV ?= build/wheel-venv
check-wheel:
	rm -rf build/wheel dist $(WHEEL_VENV)
	$(PYTHON) -m pip wheel --quiet --no-deps -w build/wheel .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH)"
	$(WHEEL_VENV)/bin/pip install --quiet "$$(ls build/wheel/*.whl)[mujoco]"
	cd $(WHEEL_VENV) && for task in hopper go1-flat; do \
		bin/rsl-rl train --task $$task --num-envs 16 --max-iterations 2 --agent.num-steps-per-env 8 --threads 2 \
			--logger none --run-dir runs/$$task || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

bench: $(STAMP)
	$(PY) bench/ppo_vs_rsl_rl.py
	$(PY) bench/pendulum_solve.py
	$(PY) bench/mujoco_throughput.py
	$(PY) bench/policy_latency.py

clean:
	rm -rf $(VENV) runs *.egg-info
