#!/usr/bin/env bash
# The main job on the bundled default: restore data/examples/cat_256x192.png with the shipped
# RWKV-IR weights (x4 super-resolution) into out/. Creates .venv first when it is missing.
# Extra arguments go to `resyn restore` (e.g. --task sr-x2, --overwrite).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-venv.sh"
cd "$root"
exec .venv/bin/resyn restore data/examples/cat_256x192.png -o out/ --task sr-x4 "$@"
