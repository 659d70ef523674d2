#!/usr/bin/env bash
# GPU checks for a session that is lent a device machine (the `device` tool's `run`), in one
# call of about 7 minutes: the tests marked `gpu`, the Triton kernels' tests (their own step:
# many small kernel compiles and float64 references, spread over 8 pytest-xdist workers where
# the device has xdist), then benchmarks/bi_wkv_cuda.py (PyTorch and Triton Bi-WKV) and the
# CUDA rows of benchmarks/model_speed.py. Logs and the updated docs/benchmarks.md land in $OUT.
#
#   here, once:  bash scripts/device_check.sh --fetch-wheels   # pydantic (+ deps) for the
#                # device's Python 3.12 into .whl/ (git-ignored); the device has no network
#   device run:  command "bash scripts/device_check.sh", carry [".whl"], timeout_s 590
#
# The device's own python3 (CUDA PyTorch, Lightning, pytest, hypothesis...) is used with
# PYTHONPATH=src: nothing is installed there but the carried wheels.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5)

if [ "${1:-}" = "--fetch-wheels" ]; then
    mkdir -p .whl
    for spec in "${WHEELS[@]}"; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d .whl "$spec" || exit 1
    done
    ls -la .whl
    exit 0
fi

out="${OUT:-/tmp/resyn-device-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
site=/tmp/resyn-site
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl || exit 1
fi
export PYTHONPATH="$site:$root/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch, resyn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'resyn', resyn.__version__)" 2>&1 | tee -a "$out/gpu.txt"

status=0
triton_tests=tests/ops/test_bi_wkv_triton.py
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests -rs --ignore="$triton_tests" \
    2>&1 | tee "$out/gpu-tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
xdist=()
python3 -c "import xdist" 2>/dev/null && xdist=(-n 8)
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu "$triton_tests" -rs --durations=10 \
    ${xdist[@]+"${xdist[@]}"} 2>&1 | tee "$out/gpu-tests-triton.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 160 python3 benchmarks/bi_wkv_cuda.py 2>&1 | tee "$out/bi_wkv_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 150 python3 benchmarks/model_speed.py --device cuda --sizes 256 512 1024 --timeout 40 --no-report \
    2>&1 | tee "$out/model_speed_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
cp docs/benchmarks.md "$out/benchmarks.md"
exit $status
