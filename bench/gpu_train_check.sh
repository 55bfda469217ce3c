#!/usr/bin/env bash
# The issue's GPU measurement as one prepared script, sized for a 15-minute device session:
# CodeGen-350M dimensions, seq_len 2048, bf16 autocast, AdamW, batches from the reader with 2
# DataLoader workers. Prints one JSON line per run (tokens/s, data-wait share, peak memory).
#   1. the SDPA CodeGen at batch 16 (the 80k tokens/s target);
#   2. the same under torch.compile;
#   3. stock transformers CodeGen (eager fp32 attention) at batch 4, the issue's ~27k reference.
# Needs a CUDA build of torch 2.13 and transformers 5.18 on the GPU host (pip install -e '.[train]'
# there resolves torch==2.13.0 to the CUDA wheel). OUT: where the JSON files go (default: /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
timeout 240 $PY bench/train_throughput.py --batch_size 16 --steps 20 --warmup 5 --workers 2 --json "$OUT/sdpa_b16.json"
timeout 300 $PY bench/train_throughput.py --batch_size 16 --steps 20 --warmup 8 --workers 2 --compile \
    --json "$OUT/sdpa_b16_compile.json" || echo "compiled run failed or timed out"
timeout 180 $PY bench/train_throughput.py --batch_size 4 --steps 10 --warmup 3 --workers 2 --attention eager \
    --json "$OUT/eager_b4.json" || echo "eager reference failed or timed out"
