#!/usr/bin/env bash
# Run the test suite (creates .venv first when it is missing). Extra arguments go to pytest.
# The web demo's end-to-end test drives Debian's headless Chromium; it is installed here when
# missing and we may (root with apt-get), otherwise that one test skips with the reason.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-venv.sh"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[resyn] installing chromium and chromium-driver for the demo's browser test" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            chromium chromium-driver >/dev/null) || echo "[resyn] chromium install failed; the browser test will skip" >&2
    fi
fi
cd "$root"
exec .venv/bin/python -m pytest "$@"
