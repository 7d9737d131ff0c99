#!/usr/bin/env bash
# The README's numbers for `flowforge train --data moons` with every default:
#   bench-results/train-defaults.json   that run's metrics.json, plus the command's wall time
# Usage: scripts/train_defaults.sh   (from anywhere; uses .venv/bin/flowforge unless FLOWFORGE is set)
set -euo pipefail
cd "$(dirname "$0")/.."
flowforge=${FLOWFORGE:-.venv/bin/flowforge}
python=${PYTHON:-.venv/bin/python}
run=$(mktemp -d)/moons
trap 'rm -rf "$(dirname "$run")"' EXIT
start=$(date +%s.%N)
"$flowforge" train --data moons --out "$run" --no-progress
end=$(date +%s.%N)
mkdir -p bench-results
"$python" - "$run/metrics.json" "$start" "$end" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))
metrics.update(command="flowforge train --data moons", wall_seconds=round(float(sys.argv[3]) - float(sys.argv[2]), 1))
json.dump(metrics, open("bench-results/train-defaults.json", "w"), indent=2)
print(json.dumps({k: metrics[k] for k in ("test_nll", "best_step", "train_seconds", "wall_seconds")}))
PY
