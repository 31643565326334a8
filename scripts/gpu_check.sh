#!/usr/bin/env bash
# The CUDA check of the pretraining code (`hasten.bench.gpu_check`), one run of about
# 9 minutes on one GPU: the crammed encoder's training throughput and MFU against HF BERT at
# BERT-base size (bf16, SDPA, eager and torch.compile), then crammed MLM and ELECTRA as two
# ladder rows at equal FLOPs (1e16 each) with the same evaluation. Results go to $OUT as they
# are made (env.json, gpu.csv, throughput.json, ladder.json, summary.json, log.txt).
#
# Data does not travel with the repository: before the call, copy what it reads into .gpu/
# (ignored by git) and carry it, e.g.
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu/data
#   cp -r ../shared/data/gutenberg-large ../shared/data/blimp .gpu/data/
#   HASTEN_CACHE=$PWD/.gpu/cache python -m hasten bench pretrain-ladder ...  (optional:
#   prepares the corpus here, so the GPU machine skips tokenizer training)
# then, on the GPU machine, from the repository root:
#   bash scripts/gpu_check.sh                 # or: --rung 5e15 --skip throughput
# On a CPU, in seconds, the same code at tiny sizes (a test runs this):
#   OUT=/tmp/gc bash scripts/gpu_check.sh --dry-run --corpus some/books
set -uo pipefail
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu/data ]; then export HASTEN_DATA=${HASTEN_DATA:-$PWD/.gpu/data}; fi
if [ -d .gpu/cache ]; then export HASTEN_CACHE=${HASTEN_CACHE:-$PWD/.gpu/cache}; fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
fi
"$PY" -u -m hasten.bench.gpu_check --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
