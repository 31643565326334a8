#!/usr/bin/env bash
# The CUDA path in one short run, for a session that is lent a GPU (see the device tool):
# bf16 autocast, SDPA, torch.compile, DDP with one rank through torchrun, and throughput of
# the Fashion-MNIST ConvNet-3 task in fp32 / bf16 / bf16+compile. Writes JSON under $OUT.
# Usage (on the GPU machine, repository root): bash scripts/gpu_check.sh
set -euo pipefail
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
python -m venv .venv-gpu 2>/dev/null || true
. .venv-gpu/bin/activate
pip install -q -e . >/dev/null 2>&1 || pip install -q -e .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"
python - <<'PY' > "$OUT/sdpa.json"
import json, time, torch
import torch.nn.functional as F
q = torch.randn(64, 8, 128, 64, device="cuda", dtype=torch.bfloat16)
F.scaled_dot_product_attention(q, q, q, is_causal=True); torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(50):
    F.scaled_dot_product_attention(q, q, q, is_causal=True)
torch.cuda.synchronize()
print(json.dumps({"sdpa_ms": (time.perf_counter() - t) / 50 * 1e3, "torch": torch.__version__}))
PY
for variant in "fp32" "bf16" "bf16 --compile"; do
  set -- $variant
  name=$(echo "$variant" | tr ' ' '_' | tr -d '-')
  hasten train --task fashion-mnist --budget 20000ex --precision "$1" ${2:-} --device cuda \
    --quiet --out "$OUT/$name"
done
torchrun --standalone --nproc_per_node 1 -m hasten train --task fashion-mnist --budget 20000ex \
  --precision bf16 --device cuda --quiet --out "$OUT/ddp1"
python - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = {}
for f in sorted(out.glob("*/result.json")):
    r = json.loads(f.read_text())
    rows[f.parent.name] = {"accuracy": r["final"], "train_seconds": r["train_seconds"],
                           "examples_per_second": r["work"]["examples_backpropagated"]
                           / r["train_seconds"], "ledger": r["ledger"]}
(out / "summary.json").write_text(json.dumps(rows, indent=1))
print(json.dumps(rows, indent=1))
PY
