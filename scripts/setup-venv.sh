#!/usr/bin/env bash
# Create (or refresh) .venv at the repository root with resyn and its test tools.
# Called by scripts/main.sh and scripts/test.sh; safe to run again (it does nothing when the
# install is up to date). Set RESYN_TORCH to choose another torch requirement, for example
# RESYN_TORCH="torch" on a machine where a CUDA build is wanted.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
torch_req="${RESYN_TORCH:-torch==2.13.0}"
extras="${RESYN_EXTRAS:-dev,demo}"

if [ ! -x .venv/bin/python ]; then
    echo "[resyn] creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
fi

# Re-install only when the project's requirements changed since the last successful install.
want="$(cat pyproject.toml scripts/setup-venv.sh | sha256sum | cut -c1-16)-$torch_req-$extras"
stamp=.venv/.resyn-install.stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "[resyn] installing $torch_req and resyn[$extras] into .venv" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
# torch first and pinned, so that resolving resyn's own range never pulls a multi-GB CUDA build.
# On plain PyPI `torch==2.13.0` is the CUDA build: unless RESYN_TORCH chooses, add PyTorch's CPU
# index when it answers (its 2.13.0+cpu then wins). Offline machines whose pip already finds a
# local CPU wheel (a find-links folder, a mirror) install that one.
torch_index=()
if [ -z "${RESYN_TORCH:-}" ] && .venv/bin/python -c '
import urllib.request
urllib.request.urlopen("https://download.pytorch.org/whl/cpu/torch/", timeout=3)
' >/dev/null 2>&1; then
    torch_index=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    ${torch_index[@]+"${torch_index[@]}"} "$torch_req" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]" >&2
# Build the compiled CPU Bi-WKV now rather than at its first use (about a minute, cached per
# machine in ~/.cache/resyn); a failure only means the pure-PyTorch path runs, as `resyn info` says.
.venv/bin/python -m resyn.ops._bi_wkv_cpp >&2 || true
echo "$want" > "$stamp"
