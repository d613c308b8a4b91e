#!/usr/bin/env bash
# Quickstart timings, as the README types them, from the repository root (quiet machine).
set -u
cd "$1"
. .venv/bin/activate
mkdir -p runs/measure
rm -rf runs/quick runs/search/quickstart runs/ablation/quick
t() { local name=$1; shift; local s=$(date +%s.%N); "$@" > runs/measure/$name.log 2>&1; local rc=$?; local e=$(date +%s.%N); printf '%s rc=%s %.1f s\n' "$name" "$rc" "$(echo "$e - $s" | bc)"; }
date -u
git log --oneline -1
t blocks nasattn blocks
t blocks2 nasattn blocks
t presets nasattn presets
t train nasattn train --preset balanced --data eurosat-mini --width-mult 0.25 --epochs 5 --out runs/quick
t search nasattn search studies/quickstart.yaml --no-live
du -sh runs/search/quickstart/tune runs/search/quickstart
t ablate nasattn ablate studies/ablation-quick.yaml --no-live
date -u
