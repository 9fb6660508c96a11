#!/usr/bin/env bash
# The simulation layer's CUDA checks, as one device call (~8 min on one H100/H200): the CUDA tests (Warp graph vs
# eager, Warp vs MuJoCo C, cpu backend mirrored onto the GPU, an Ant step without host sync), Warp-CUDA throughput of
# the Ant task at N = 4096 / 8192, and go1-flat trained on the warp backend for 4 minutes (time to 80 % tracking).
# Prepare the wheels with bench/cuda_wheels.sh (its header gives the device calls). Logs and the run's summary,
# TensorBoard file and curves land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/cuda_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log="$OUT/cuda_check.log"
step() { echo "=== $* ($(date +%T))" | tee -a "$log"; }

step install
rm -rf /tmp/wheels && mkdir -p /tmp/wheels
cat .devstash/wheels.tar.* | tar -xf - -C /tmp/wheels || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --target .site /tmp/wheels/*.whl 2>&1 | tail -2
export PYTHONPATH="$PWD/.site:$PWD"
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
python3 -c "import torch, warp, mujoco, mujoco_warp; print('torch', torch.__version__, 'warp', warp.__version__,
'mujoco', mujoco.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$log"

step "CUDA tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs tests/tasks/test_mujoco_cuda.py 2>&1 | tail -25 | tee -a "$log"

step "Warp-CUDA throughput"
timeout 150 python3 bench/mujoco_throughput.py --warp-only --repeats 3 2>&1 | grep -v "^Module " | tee -a "$log"

step "go1-flat on warp/CUDA, 4096 envs, 240 s of training"
rm -rf /tmp/go1
timeout 420 python3 -m rsl_rl.cli.main train --task go1-flat --device cuda --num-envs 4096 --max-iterations 3000 \
    --agent.max-wall-seconds 240 --run-dir /tmp/go1 2>&1 | tr '\r' '\n' | grep -v "^ *[0-9]*%|" | tail -15 | tee -a "$log"
cp /tmp/go1/summary.json /tmp/go1/*.png "$OUT/" 2>/dev/null
cp /tmp/go1/events.out.tfevents.* "$OUT/" 2>/dev/null || find /tmp/go1 -name 'events.out.tfevents.*' -exec cp {} "$OUT/" \;
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
step done
