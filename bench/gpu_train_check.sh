#!/usr/bin/env bash
# The issue's GPU measurement as one prepared script, sized for one 10-minute device command:
# CodeGen-350M dimensions, seq_len 2048, bf16 autocast, fused AdamW, batches from the reader with
# 2 DataLoader workers. Prints one JSON line per run (tokens/s, data-wait share, peak memory) and
# writes it to $OUT/NAME.json, most important first, so a run cut short still reports:
#   1. the SDPA CodeGen at batch 16 (the 80k tokens/s target);
#   2. the same under torch.compile;
#   3. stock transformers CodeGen (eager fp32 attention) at batch 4, the issue's ~27k reference;
#   4. the compiled SDPA CodeGen at batch 32 (did not fit in 80 GB on an H100);
#   5. with STAGE_DATA=NL_VERSION_DIR and STAGE_TOKENIZER=MODEL: ``python -m training.train --stage nl``
#      itself for 60 steps of batch 16 x 2048 (CONFIG's model, no accumulation), its log lines in
#      $OUT/stage_log.jsonl: the entry point with its default --compile auto.
# RUNS picks some of them by name (default: all), e.g. RUNS="sdpa_b16_compile stage".
# Needs a CUDA build of torch and transformers 5.18 on the GPU host. OUT: where the JSON files go
# (default /tmp). CONFIG / SEQ_LEN / STEPS override the model config, length and timed steps (a
# CPU dry run: CONFIG=training/configs/tiny.json SEQ_LEN=128 STEPS=2 bash bench/gpu_train_check.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-/tmp}
CONFIG=${CONFIG:-training/configs/mono.json}
SEQ_LEN=${SEQ_LEN:-2048}
STEPS=${STEPS:-20}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
RUNS=${RUNS:-"sdpa_b16 sdpa_b16_compile eager_b4 sdpa_b32_compile stage"}
run() {  # NAME SECONDS ARGS...
    local name=$1 limit=$2
    shift 2
    [[ " $RUNS " == *" $name "* ]] || return 0
    timeout "$limit" $PY bench/train_throughput.py --config "$CONFIG" --seq_len "$SEQ_LEN" --workers 2 \
        --json "$OUT/$name.json" "$@" || echo "$name failed or timed out (limit ${limit}s)"
}
run sdpa_b16 120 --batch_size 16 --steps "$STEPS" --warmup 5
run sdpa_b16_compile 210 --batch_size 16 --steps "$STEPS" --warmup 8 --compile
run eager_b4 90 --batch_size 4 --steps "$(( (STEPS + 1) / 2 ))" --warmup 3 --attention eager
run sdpa_b32_compile 150 --batch_size 32 --steps "$(( (STEPS + 1) / 2 ))" --warmup 8 --compile
if [[ " $RUNS " == *" stage "* && -n "${STAGE_DATA:-}" ]]; then
    stage_config=$(mktemp --suffix .json)
    $PY -c "import json, sys; c = json.load(open('$CONFIG')); c['train'].update(batch_size=16, grad_accum=1, \
max_steps=60, warmup_steps=10, log_every=10, checkpoint_every=1000, num_workers=2); json.dump(c, open(sys.argv[1], 'w'))" \
        "$stage_config"
    rm -rf /tmp/sluice_stage_check
    timeout 300 $PY -m training.train --stage nl --data "$STAGE_DATA" --tokenizer "$STAGE_TOKENIZER" \
        --config "$stage_config" --output /tmp/sluice_stage_check || echo "stage failed or timed out (limit 300s)"
    cp /tmp/sluice_stage_check/log.jsonl "$OUT/stage_log.jsonl" 2>/dev/null || true
fi
