#!/usr/bin/env bash
# The client's GPU checks on a machine with an NVIDIA GPU, no Node and no network
# (docs/verification.md). Build the carry here with `bash tools/gpu/pack.sh`, carry `.gpu`, and run
# from the repository root there:
#
#   bash tools/gpu/run.sh [stage ...]      stages: setup backend verify families sizes step flags cpu kernels (default: the first six)
#
# Results go to $OUT (default out/gpu): one JSON per stage and table.md, the table for
# docs/verification.md. python3 there must have torch, transformers and peft (they write the
# checkpoints and adapters we read, and compute the references).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu}
W=${GPU_WORK:-/tmp/fedlora-gpu}
mkdir -p "$OUT" "$W"
STAGES=${*:-setup backend verify families sizes}
T0=$(date +%s)
say() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
export PATH="$W/bin:$PATH"
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export PYTHONUNBUFFERED=1

setup() {
  say "setup: node, node_modules, Vulkan libraries"
  mkdir -p "$W/bin"
  if [ ! -x "$W/bin/node" ]; then
    python3 - "$W/bin/node" <<'PY'
import lzma, shutil, sys
with lzma.open(".gpu/node.xz") as f, open(sys.argv[1], "wb") as g:
    shutil.copyfileobj(f, g)
PY
    chmod +x "$W/bin/node"
  fi
  local sum; sum=$(sha256sum .gpu/modules.tar.xz | cut -c1-64)
  if [ "$(cat node_modules/.fedlora-gpu 2>/dev/null)" != "$sum" ]; then
    python3 -c 'import tarfile; tarfile.open(".gpu/modules.tar.xz").extractall(".")' && echo "$sum" > node_modules/.fedlora-gpu
  fi
  if ! ldconfig -p | grep -q 'libGLX.so.0'; then
    for d in .gpu/debs/*.deb; do dpkg -x "$d" /; done
    ldconfig
  fi
  node --version
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
  python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' | tee -a "$OUT/gpu.txt"
}

backend() {
  say "backend: fedlora backend --backend webgpu"
  node bin/fedlora.mjs backend --backend webgpu > "$OUT/backend.json" 2> "$OUT/backend.log"
  echo "exit $?"; cat "$OUT/backend.json"
}

# A SmolLM-135M-shaped Llama written by transformers itself (random weights, tied embeddings).
smollm() {
  [ -f "$W/models/smollm-135m/config.json" ] && return 0
  python3 - "$W/models/smollm-135m" <<'PY'
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
                     tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
LlamaForCausalLM(config).save_pretrained(sys.argv[1], safe_serialization=True)
print("wrote", sys.argv[1])
PY
}

verify() {
  say "verify: fedlora train x6, coordinator + 2 agents, export, logits vs PEFT (webgpu)"
  smollm
  rm -rf "$W/verify"
  node --import tsx tools/gpu/verify.ts --backend webgpu --model "$W/models/smollm-135m" --out "$W/verify" --steps 6 --seq-len 64
  echo "verify exit $?"
  cp "$W/verify/verify.json" "$OUT/verify.json" 2>/dev/null
  mkdir -p "$OUT/verify-logs" && cp "$W"/verify/*.log "$OUT/verify-logs/" 2>/dev/null
  if [ -f "$W/verify/ours-logits.json" ]; then
    python3 tools/gpu/peft_logits.py "$W/verify/ours-logits.json" && cp "$W/verify/ours-logits.peft.json" "$OUT/peft.json"
  fi
}

families() {
  say "families: transformers-written checkpoints (2 layers; F32 single file, BF16 sharded), logits vs transformers (webgpu)"
  python3 tools/gpu/make_checkpoints.py --out "$W/families" --variants 2layer
  python3 tools/gpu/make_checkpoints.py --out "$W/families-bf16" --variants 2layer --dtype bfloat16 --max-shard-size 200MB --families qwen2.5-0.5b,llama-3.2-1b
  node --import tsx tools/gpu/check-families.ts --backend webgpu --dir "$W/families" --json "$OUT/families.json"
  node --import tsx tools/gpu/check-families.ts --backend webgpu --dir "$W/families-bf16" --json "$OUT/families-bf16.json"
  echo "families exit $?"
}

sizes() {
  say "sizes: Qwen2.5-0.5B and Llama-3.2-1B shapes at full depth: load, LoRA training, memory (webgpu)"
  [ -f "$W/sizes/llama-3.2-1b-full/config.json" ] || python3 tools/gpu/make_checkpoints.py --out "$W/sizes" --variants full --families qwen2.5-0.5b,llama-3.2-1b
  smollm
  node --import tsx tools/gpu/size-check.ts --backend webgpu --model "$W/models/smollm-135m" "$W/sizes/qwen2.5-0.5b-full" "$W/sizes/llama-3.2-1b-full" --json "$OUT/sizes.json"
  echo "sizes exit $?"
}

# Issue 13's measurement: our LoRA step against PyTorch + PEFT on the same folder, same GPU, same run.
step() {
  say "step: LoRA step, ours (webgpu) vs PyTorch + PEFT (CUDA)"
  smollm
  node --import tsx bench/run.ts gpu-step
  echo "step exit $?"
}

# tfjs webgpu settings that change the dispatch overhead (submits per step), timed on one folder.
flags() {
  say "flags: the LoRA step under tfjs webgpu settings"
  smollm
  for f in 15 100 1000; do
    node --import tsx tools/gpu/lora-step.ts --backend webgpu --model "$W/models/smollm-135m" --batch 4 --seq 256 --steps 6 --warm 2 --no-profile \
      --flag WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=$f --json "$OUT/flags-submit-$f.json" | cut -c1-400
  done
}

# Issue 13's CPU side on the GPU machine's cores: our data-parallel wasm threads, and PyTorch CPU.
cpu() {
  say "cpu: data-parallel wasm threads vs PyTorch + PEFT on the CPU cores"
  THREADS_BENCH_THREADS=${CPU_THREADS:-1,4,16} THREADS_BENCH_BATCH=32 THREADS_BENCH_STEPS=2 timeout 300 node --import tsx bench/run.ts threads 2>&1 | tee "$OUT/cpu-threads.txt"
  CUDA_VISIBLE_DEVICES= timeout 150 python3 tools/gpu/torch_cpu_step.py --shape bench-llama --threads ${CPU_THREADS:-1,4,16} --batch 32 --seq 128 2>&1 | tee "$OUT/cpu-torch.txt"
}

# The fused kernels: each against the op path / plain composition it replaces (forward, gradients,
# ms per call), then the LoRA step with them off and on in one process (loss and LoRA gradients
# compared first), at 4 x 256 and 4 x 1,024.
kernels() {
  say "kernels: fused WGSL kernels vs the op path; the LoRA step with them off and on"
  node --import tsx tools/gpu/kernels-check.ts --backend webgpu --json "$OUT/kernels.json" | cut -c1-600
  echo "kernels-check exit ${PIPESTATUS[0]}"
  smollm
  for seq in 256 1024; do
    node --import tsx tools/gpu/lora-step.ts --backend webgpu --model "$W/models/smollm-135m" --batch 4 --seq $seq --steps 8 --warm 2 \
      --compare-fused --json "$OUT/step-fused-$seq.json" | cut -c1-900
    echo "lora-step $seq exit ${PIPESTATUS[0]}"
  done
}

for s in $STAGES; do "$s"; done
python3 tools/gpu/table.py "$OUT" > "$OUT/table.md" 2>/dev/null && cat "$OUT/table.md"
say done
