#!/usr/bin/env bash
# Builds the official FTS client (PyPI "fts3", which needs M2Crypto) in its own venv, so that
# its dependencies never touch the project's environment. Needs swig and libssl-dev (apt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-fts3"
if ! command -v swig >/dev/null || ! dpkg -s libssl-dev >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq swig libssl-dev
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet fts3
"$venv/bin/python" -c 'import fts3.rest.client, M2Crypto; print("fts3 client ready")'
