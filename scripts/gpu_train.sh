#!/usr/bin/env bash
# Train every task's model (sr-x2, sr-x3, sr-x4, denoise (blind), jpeg (blind)) on one lent
# GPU in a single call of the `device` tool, each for MINUTES from the shipped weights, all
# runs side by side on the device (scripts/gpu_train.py; issue 17). Weights, logs, run.json
# and summary.json land in $OUT/runs/<task>/, $OUT/logs/, $OUT/summary.json.
#
#   here, once:   bash scripts/gpu_train.sh --prepare
#                 # builds runs/gpu-data (git-ignored, ~44 MB): scripts/build_training_pool.py
#                 # (512-px tiles of data/train's licensed sources, apt-get download) and
#                 # `resyn dataset build --scales 2,3,4` of them (HR + LR_bicubic/X2..X4; the
#                 # 90-tile pool of stage 4, with x3), and the wheels the device lacks into .whl/
#   device run:   command "bash scripts/gpu_train.sh 6.5", carry ["runs/gpu-data", ".whl"],
#                 timeout_s 600   (6.5 min of training per task, all tasks at once; about
#                 1.5 min more for start-up, the first validation and the final save)
#   here, after:  .venv/bin/python scripts/export_weights.py --gpu-runs FILES_AT/runs
#                 # keeps a new file only where it scores better on ReSynDemo than the shipped
#
# The device's own python3 (CUDA PyTorch, Lightning) is used with PYTHONPATH=src, as in
# scripts/device_check.sh. A pre-flight (scripts/gpu_check_env.py, seconds) names every missing
# module at once and falls back to the pure-PyTorch Bi-WKV (RESYN_BI_WKV=torch) when the
# compiled CUDA path fails or disagrees with it; its output is in $OUT/preflight.log.
# Test on a CPU: tests/scripts/test_gpu_train.py runs this script end to end with
# `--accelerator cpu` (no wheels, no CUDA check), a tiny model and a few seconds per task;
# RESYN_GPU_DATA names another training folder (default runs/gpu-data).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
data="${RESYN_GPU_DATA:-runs/gpu-data}"

if [ "${1:-}" = "--prepare" ]; then
    set -e
    py=.venv/bin/python
    [ -f runs/pool/center.txt ] || "$py" scripts/build_training_pool.py --out runs/pool
    .venv/bin/resyn dataset build --source real=runs/pool/real:real \
        --source synthetic=runs/pool/synthetic:synthetic --out "$data" \
        --min-size 256 --center "$(cat runs/pool/center.txt)" --scales 2,3,4
    bash scripts/device_check.sh --fetch-wheels
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform any -d .whl \
        tensorboardX==2.6.2.2
    du -sh "$data" .whl
    size=$(du -sm "$data" .whl | awk '{s += $1} END {print s}')
    if [ "$size" -gt 60 ]; then
        echo "error: $data and .whl take $size MB; the carry limit is 64 MiB in all" >&2
        exit 1
    fi
    exit 0
fi

minutes="${1:?usage: bash scripts/gpu_train.sh MINUTES [gpu_train.py options] | --prepare}"
shift
out="${OUT:-/tmp/resyn-gpu-train}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
cpu=0  # `--accelerator cpu` among the options: the CPU end-to-end test of this script
prev=
for arg in "$@"; do
    [ "$prev" = "--accelerator" ] && [ "$arg" = "cpu" ] && cpu=1
    prev=$arg
done
if [ ! -d "$data/HR" ]; then
    echo "error: no $data here; run 'bash scripts/gpu_train.sh --prepare' and carry $data" >&2
    exit 2
fi
site=/tmp/resyn-site
if [ "$cpu" = 0 ] && compgen -G ".whl/*.whl" > /dev/null; then
    wheels=(.whl/pydantic*.whl .whl/annotated_types*.whl .whl/typing_inspection*.whl)
    # tensorboardX only where the device has neither it nor tensorboard (protobuf assumed)
    python3 -c "import tensorboardX" 2>/dev/null || python3 -c "import tensorboard" 2>/dev/null \
        || wheels+=(.whl/tensorboardX*.whl)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "${wheels[@]}" || exit 1
fi
export PYTHONPATH="$site:$root/src${PYTHONPATH:+:$PYTHONPATH}"
[ "$cpu" = 1 ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 \
    | tee "$out/gpu.txt"
check=()
[ "$cpu" = 1 ] && check=(--cpu)
timeout 120 python3 scripts/gpu_check_env.py ${check[@]+"${check[@]}"} 2>&1 | tee "$out/preflight.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: pre-flight failed (see preflight.log)" >&2; exit 1; }
backend=$(tail -n 1 "$out/preflight.log" | sed -n 's/^RESYN_BI_WKV=//p')
export RESYN_BI_WKV="${backend:-torch}"
python3 scripts/gpu_train.py --minutes "$minutes" --out "$out" --python python3 \
    --train "$data" --workers 2 "$@" 2>&1 | tee "$out/gpu_train.log"
exit "${PIPESTATUS[0]}"
