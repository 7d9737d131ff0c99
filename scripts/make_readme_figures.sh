#!/usr/bin/env bash
# Regenerate the README's demo pictures and the numbers quoted beside them:
#   docs/images/demo_{samples,density,training_curve}.png   the plots `flowforge demo` draws
#   docs/images/demo_metrics.json                           that run's metrics.json
# Usage: scripts/make_readme_figures.sh   (from anywhere; uses .venv/bin/flowforge unless FLOWFORGE is set)
set -euo pipefail
cd "$(dirname "$0")/.."
flowforge=${FLOWFORGE:-.venv/bin/flowforge}
run=$(mktemp -d)/demo
trap 'rm -rf "$(dirname "$run")"' EXIT
start=$(date +%s)
"$flowforge" demo --out "$run"
echo "demo wall time: $(( $(date +%s) - start )) s (including start-up and plots)"
mkdir -p docs/images
for name in samples density training_curve; do
  cp "$run/plots/$name.png" "docs/images/demo_$name.png"
done
cp "$run/metrics.json" docs/images/demo_metrics.json
echo "wrote docs/images/demo_*.png and docs/images/demo_metrics.json"
