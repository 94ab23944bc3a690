#!/usr/bin/env bash
# Run every benchmark (default sizes; a few minutes on a 2-core CPU) and print the tables.
#   benchmarks/run_all.sh            # default sizes
#   benchmarks/run_all.sh --large    # add the (1e6,16,8) and (1e5,64,32) EM rows (long on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
uptime
$PY benchmarks/bench_em.py "$@"
$PY benchmarks/bench_restarts.py
$PY benchmarks/bench_many.py
$PY benchmarks/bench_nuts.py --parallel 4
uptime
