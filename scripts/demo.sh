#!/usr/bin/env bash
# The main job: install, then plan the demo space, train its jobs on this machine and
# summarise them with the comparison plots.
#   bash scripts/demo.sh [CAMPAIGN_DIR]      (default: runs/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
out=${1:-runs/demo}
gs=.venv/bin/gridsearch
"$gs" plan examples/demo.yaml -o "$out"
"$gs" submit "$out" --site local
"$gs" status "$out"
# Exit 1 from summarize means "something was skipped" (said in the report): not fatal here.
"$gs" summarize "$out" || [ $? -eq 1 ]
echo
echo "campaign: $out   summary: $out/summary   (report: $out/summary/report.txt)"
