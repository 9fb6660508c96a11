#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (it has Python 3.12 with torch, onnx, onnxruntime, tensorboard, numpy, pytest;
# nothing can be downloaded there), at this venv's versions, packed and split into parts of 60 MiB: the device tool
# carries at most 64 MiB per call and warp-lang alone is ~149 MB.
#
#   bash bench/cuda_wheels.sh          # here → .devwheels/p1 .. p3
#
# Then, on the device, one call per part while the machine stays warm (it goes back after 30 s idle):
#   run(carry=[".devwheels/p1"], command="mkdir -p .devstash && cp .devwheels/p1/* .devstash/")
#   run(carry=[".devwheels/p2"], command="cp .devwheels/p2/* .devstash/")
#   run(carry=[".devwheels/p3"], command="cp .devwheels/p3/* .devstash/ && bash bench/cuda_check.sh setup tests bench",
#       timeout_s=600)
#   run(command="bash bench/cuda_check.sh train", timeout_s=400)
# (.devstash/ and .site/ are ignored by git, so they stay on the warm machine between calls.)
set -euo pipefail
cd "$(dirname "$0")/.."
out=.devwheels
rm -rf "$out"
mkdir -p "$out/all"
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
for name in tensordict pyvers tyro docstring-parser typeguard gymnasium farama-notifications \
    mujoco mujoco-core mujoco-studio glfw pyopengl mujoco-warp warp-lang; do
    version=$(.venv/bin/python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$out/all" "$name==$version"
done
tar -cf - -C "$out/all" . | split -b 60m -d - "$out/wheels.tar."
i=1
for part in "$out"/wheels.tar.*; do
    mkdir -p "$out/p$i"
    mv "$part" "$out/p$i/"
    i=$((i + 1))
done
rm -rf "$out/all"
du -sh "$out"/p*
