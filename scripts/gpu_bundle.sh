#!/usr/bin/env bash
# Packs what scripts/gpu_check.py needs onto a GPU machine that has its own Python (3.12,
# torch, triton, numba, h5py ...) but no network and no lava-dl: lava-nc, lava-dl (less its
# tests and trained YOLO weights, 64 MiB would not travel), asteval, pytorch-optimizer and
# psplava itself, extracted into .whl/site; the shared data beside it (.whl/shared/data, so
# that psplava's SHARED_DATA finds nmnist_small there); Fashion-MNIST in .gpudata/.
#   bash scripts/gpu_bundle.sh            # here, once; .whl/ and .gpudata/ are git-ignored
# There (device tool, carry [".whl", ".gpudata"]):
#   export PYTHONPATH=$PWD/.whl/site PYTHONSAFEPATH=1 MAX_JOBS=16
#   python3 scripts/gpu_check.py --budget-min 8 --fmnist-root .gpudata/fashion_mnist
# PYTHONSAFEPATH keeps the repository's own psplava/ folder (the core alone, without the
# stage folders that setuptools maps into it) from shadowing the installed package.
# The committed results/ (~48 MB) must not travel: untrack them for the call
# (git rm -r -q --cached results; echo /results/ >> .git/info/exclude), git reset after.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY312:-python3.12}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.gpudata/' .git/info/exclude 2>/dev/null || echo '/.gpudata/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl/site .whl/shared/data .gpudata/fashion_mnist
tmp=$(mktemp -d)
"$PY" -m pip download -q --no-deps --only-binary=:all: --ignore-requires-python \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform any \
  -d "$tmp" lava-nc==0.10.0 lava-dl==0.6.0 asteval pytorch_optimizer==4.1.0
for w in "$tmp"/*.whl; do
  unzip -q -o "$w" -d .whl/site -x 'tests/*' '*.pt' '*.ipynb' '*.npy' || true
done
"$PY" -m pip install -q --no-deps --no-build-isolation --ignore-requires-python \
  --target .whl/site .
rm -rf build "$tmp"
find .whl -name __pycache__ -prune -exec rm -rf {} +
cp -r ../shared/data/nmnist_small .whl/shared/data/
cp ../shared/data/fashion_mnist/fashion_mnist.npz .gpudata/fashion_mnist/
du -sh .whl .gpudata
