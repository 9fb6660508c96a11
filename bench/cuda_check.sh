#!/usr/bin/env bash
# The simulation layer's CUDA checks on a lent GPU machine (H100/H200), in stages that each fit one device call:
#   setup  install the wheels gathered in .devstash/ (see bench/cuda_wheels.sh) and this package (~30 s)
#   tests  tests/tasks/test_mujoco_cuda.py: Warp graph vs eager, Warp vs MuJoCo C, the cpu backend mirrored onto the
#          GPU, Ant and go1-flat env steps under torch's sync-debug mode (~3 min with the first CUDA kernel compile)
#   bench  Warp-CUDA throughput of the Ant task at N = 4,096 / 8,192 (bench/mujoco_throughput.py --warp-only)
#   train  go1-flat on warp/CUDA, 4,096 envs, 150 s of training: env-steps/s and time to 80 % tracking
#
#   bash bench/cuda_check.sh setup tests bench     # one call (timeout_s 600)
#   bash bench/cuda_check.sh train                 # the next call (timeout_s 400)
#
# Logs, and the training run's summary, TensorBoard file and curves, land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/cuda_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/.site:$PWD"
log="$OUT/cuda_check.log"
say() { echo "=== $* ($(date +%T))" | tee -a "$log"; }

setup() {
    rm -rf /tmp/wheels && mkdir -p /tmp/wheels
    cat .devstash/wheels.tar.* | tar -xf - -C /tmp/wheels || return 1
    python3 -m pip install -q --no-index --no-deps --no-compile --target .site /tmp/wheels/*.whl 2>&1 | tail -2
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -2
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
    python3 -c "import torch, warp, mujoco, mujoco_warp, tensordict; print('torch', torch.__version__, 'warp',
warp.__version__, 'mujoco', mujoco.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$log"
}

tests() {
    timeout 300 python3 -m pytest -q -rs tests/tasks/test_mujoco_cuda.py 2>&1 | tail -25 | tee -a "$log"
}

bench() {
    timeout 200 python3 bench/mujoco_throughput.py --warp-only --repeats 3 2>&1 | grep -v "^Module " | tee -a "$log"
}

train() {
    rm -rf /tmp/go1
    timeout 330 python3 -m rsl_rl.cli.main train --task go1-flat --device cuda --num-envs 4096 --max-iterations 3000 \
        --agent.max-wall-seconds 150 --run-dir /tmp/go1 2>&1 | tr '\r' '\n' | grep -v "^ *[0-9]*%|" | tail -15 |
        tee -a "$log"
    cp /tmp/go1/summary.json /tmp/go1/*.png /tmp/go1/events.out.tfevents.* "$OUT/" 2>/dev/null
    python3 - /tmp/go1/events.out.tfevents.* <<'PY' 2>&1 | tee -a "$log"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
frac, fps = ea.Scalars("Episode/tracking/fraction"), ea.Scalars("Perf/total_fps")
first = next((e for e in frac if e.value >= 0.8), None)
print(f"{len(fps)} iterations, median {sorted(e.value for e in fps)[len(fps) // 2]:,.0f} env-steps/s, "
      f"final tracking fraction {frac[-1].value:.3f}")
when = f"iteration {first.step}, {first.wall_time - fps[0].wall_time:.0f} s after the first" if first else "not reached"
print(f"tracking fraction first >= 0.80: {when}")
PY
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(setup tests bench train)
for stage in "${stages[@]}"; do
    case "$stage" in
        setup) say setup; setup || { say "setup failed"; exit 1; } ;;
        tests | bench | train) say "$stage"; "$stage" ;;
        *) echo "unknown stage '$stage'; stages: setup tests bench train" >&2; exit 2 ;;
    esac
done
say done
