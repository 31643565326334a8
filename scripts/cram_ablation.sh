#!/usr/bin/env bash
# Recipe ablation at an equal CPU budget (one core): crammed recipe vs the original BERT
# training setup on the same crammed architecture and filtered data; then GLUE-small.
set -euo pipefail
H="--set hidden=256 --set layers=4 --set heads=4 --set intermediate=1024 --vocab-size 8192 --seq-len 128 --set batch=256 --set micro_batch=64"
export OMP_NUM_THREADS=1
date -u
taskset -c 1 .venv/bin/hasten cram --corpus ../shared/data/gutenberg --budget 12m --out runs/abl-crammed --recipe crammed $H --quiet --overwrite
date -u
taskset -c 1 .venv/bin/hasten cram --corpus ../shared/data/gutenberg --budget 12m --out runs/abl-original --recipe original --arch crammed --cutoff 0.3 --set dropout=0.0 --set layers=4 $H --quiet --overwrite
date -u
for m in crammed original; do
  taskset -c 1 .venv/bin/hasten glue runs/abl-$m/model --seeds 1 --epochs 3 --max-train-examples 2000 --jobs 1 --out runs/abl-$m/glue.json --quiet
  date -u
done
