#!/usr/bin/env bash
# The GPU checks, in one run of under 8 minutes on one GPU (docs/real-lm.md, "The GPU check"):
#   1. HF against vLLM tokens/s on SmolLM2-135M (bench/sampler.py --backends);
#   2. shard_train steps/s in bf16 (and fp32), in this process on the GPU;
#   3. the GSM8K CPU pipeline at small size with every model stage on the GPU, end to end.
# Results go to gpu-check/ (JSON and logs); copy the numbers into docs/benchmarks.md.
#
# The GPU machine needs no network: carry the checkout with ../shared beside it (the GGUF
# model and the GSM8K file), a virtual environment with the CUDA builds (docs/real-lm.md,
# "Installing"), and run:
#     bash bench/gpu_check.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print('torch', torch.__version__, torch.version.cuda)" | tee -a "$OUT/gpu.txt"

echo "== 0. SmolLM2-135M into a store (from the GGUF in ../shared/models)"
cat > "$OUT/model.yaml" <<YAML
name: model
stages:
  base: {op: hf_model, params: {path: $(pwd)/../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf}}
YAML
"$PY" -m stardag.cli run "$OUT/model.yaml" --store "$OUT/store" --executor local -q
MODEL=$("$PY" -c "import stardag; print(stardag.read('$OUT/model.yaml', 'base', store='$OUT/store'))")

echo "== 1. sampling: HF against vLLM (512 prompts, 128 new tokens)"
timeout 240 "$PY" bench/sampler.py --backends --model "$MODEL" --prompts 512 --batch 128 \
    --max-new 128 --json "$OUT/sampler.json" > "$OUT/sampler.log" 2>&1 \
    || echo "sampler: failed (see $OUT/sampler.log)"

echo "== 2. training: shard_train steps/s in bf16 on the GPU (30 steps, batch 8 x 512 tokens)"
timeout 120 "$PY" - "$MODEL" > "$OUT/trainer.json" 2> "$OUT/trainer.log" <<'PYTHON' || echo "trainer: failed (see $OUT/trainer.log)"
import json, sys, tempfile, time
from pathlib import Path
import polars as pl
from operators.shard_train import ShardTrain
from stardag.operator import Context, DefaultResources
rows = [json.loads(l) for l in open("../shared/data/gsm8k/train.jsonl")][:64]
examples = pl.DataFrame({"id": [str(i) for i in range(64)], "question": [r["question"] for r in rows],
                         "answer": ["0"] * 64, "prompt": [r["question"] + "\n" for r in rows],
                         "completion": [r["answer"] for r in rows], "source": ["generation"] * 64})
for bf16 in (False, True):
    p = ShardTrain.Params(steps=30, batch_size=8, max_length=512, lr=1e-5, warmup=0,
                          trainer="torch", use_gpu=True, bf16=bf16, log_every=0)
    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    ShardTrain().run(Context(p, "train", {"model": out}, DefaultResources(cpus=1, gpus=1)),
                     Path(sys.argv[1]), examples)
    print(json.dumps({"bf16": bf16, "steps": 30, "seconds": time.perf_counter() - t0,
                      "steps_per_s": 30 / (time.perf_counter() - t0)}))
PYTHON
cat "$OUT/trainer.json"

echo "== 3. the GSM8K CPU pipeline at small size, every model stage on the GPU"
start=$(date +%s)
timeout 240 "$PY" -m stardag.cli run pipelines/gsm8k_cpu.yaml --store "$OUT/store" \
    --set 'loop.stages.samples.resources={cpus: 1, gpus: 1}' \
    --set 'loop.stages.rationalized.resources={cpus: 1, gpus: 1}' \
    --set 'loop.stages.evaluate.resources={cpus: 1, gpus: 1}' \
    --set 'stages.evaluate_base.resources={cpus: 1, gpus: 1}' \
    --set loop.stages.train.params.use_gpu=true --set loop.stages.train.params.bf16=true \
    > "$OUT/pipeline.log" 2>&1 && echo "pipeline: $(( $(date +%s) - start )) s" | tee "$OUT/pipeline.txt" \
    || echo "pipeline: failed (see $OUT/pipeline.log)"
"$PY" -m stardag.cli report pipelines/gsm8k_cpu.yaml --store "$OUT/store" --json --no-plot \
    > "$OUT/report.json" 2>/dev/null || true
echo "results in $OUT/"
