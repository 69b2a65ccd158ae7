#!/usr/bin/env bash
# Runs every benchmark in turn (never in CI); each prints a Markdown table for README.md.
# Usage: benchmarks/run_all.sh [--quick]   (from the repository root or anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x benchmarks/.venv-fts3/bin/python ] || benchmarks/setup_fts3_venv.sh ||
    echo "official fts3 client could not be built: bench_client runs without it" >&2
for bench in client poll_rounds submission delegations triggerer_memory emulator lineage tokens transfers_view bulk; do
    echo "## bench_$bench"
    "$python" "benchmarks/bench_$bench.py" "$@"
    echo
done
