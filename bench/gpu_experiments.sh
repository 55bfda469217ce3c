#!/usr/bin/env bash
# The FLAN experiments at a small but real size, as one prepared script for one GPU (meant to take
# under 8 minutes on one H100; NOT YET RUN on a GPU, see the README): the demo data (make demo, on the
# bundled samples), the cluster-ladder instruct version, then `python -m training.experiments` with
# a ~100M-parameter CodeGen (training/configs/codegen-100m.json, 97M parameters with the demo's
# 8,000-piece tokenizer) for 200 steps of 16 x 2048 tokens a corpus stage (nl, multi, mono) and 60
# steps an instruct stage, and model sizes tiny, tiny_wide and codegen-100m. Every stage runs with
# --compile off: a compile costs more than these short stages gain from it.
#
#   bash bench/gpu_experiments.sh            # PY=python WORK=/tmp/sluice-gpu-experiments
#
# Writes the experiments' JSON, PNG, SVG, logs and index.html (no checkpoints) to
# bench/results/gpu_experiments/, with run.json (device, versions, seconds). Needs a CUDA build of
# torch, transformers and Sluice's pipeline dependencies in PY's environment (nothing is installed).
# Where torch sees no CUDA device it stops at once with one line (exit 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
WORK=${WORK:-/tmp/sluice-gpu-experiments}
RESULTS=bench/results/gpu_experiments
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_experiments.sh: no CUDA device visible to torch in $PY; this script runs on one GPU" >&2
    exit 2
fi
start=$SECONDS
FLAGS="--config training/configs/codegen-100m.json \
--configs training/configs/tiny.json,training/configs/tiny_wide.json,training/configs/codegen-100m.json \
--steps 200 --instruct_steps 60 --limit 50 --device cuda --compile off --batch_size 32"
rm -rf "$WORK"
# -o: the environment is PY's; make installs nothing.
make -o setup -o setup-train demo PY="$PY" DEMO="$WORK"
make -o setup -o setup-train experiments PY="$PY" DEMO="$WORK" EXPERIMENT_FLAGS="$FLAGS" | tee "$WORK/experiments.out"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
(cd "$WORK/experiments" && find . -maxdepth 2 -type f \( -name index.html -o -name '*.log' -o -name results.json \
    -o -name report.json -o -name '*.png' -o -name '*.svg' \) -print0 | xargs -0 cp --parents -t "$OLDPWD/$RESULTS")
cp "$WORK/experiments.out" "$RESULTS/"
"$PY" - "$RESULTS/run.json" "$((SECONDS - start))" <<'PYEOF'
import json, subprocess, sys
import torch, transformers
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip()
json.dump({"seconds": int(sys.argv[2]), "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
           "transformers": transformers.__version__}, open(sys.argv[1], "w"), indent=2)
PYEOF
echo "gpu_experiments.sh: $((SECONDS - start)) s; results in $RESULTS/ (index.html)"
