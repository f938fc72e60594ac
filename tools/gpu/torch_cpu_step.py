"""PyTorch + PEFT reference on the CPU for `npm run bench threads` (issue 13, CPU data owners): the
same LoRA training step (LoRA r 8 / alpha 16 on q_proj and v_proj, AdamW, float32, batch x seq
random token ids), timed with torch.set_num_threads(N) for each N asked, on the same machine and
cores as our benchmark. Median ms per step over --steps after --warm steps; tokens/s; the speed-up
over the first thread count.

The model is built from a shape (no download, random weights: timing does not depend on values):
  --shape bench-llama   the llama of `npm run bench llama` / `npm run bench threads` (4 layers,
                        hidden 256, 8 heads / 4 kv heads, intermediate 688, byte vocabulary 259,
                        tied embeddings)
  --shape smollm-135m   SmolLM-135M's config (30 layers, hidden 576, 9 / 3 heads, vocabulary 49,152)
or from a folder (--model DIR: config.json + weights, e.g. a real SmolLM-135M).

    python3 tools/gpu/torch_cpu_step.py --shape bench-llama --threads 1,16 --batch 32 --seq 128
    python3 tools/gpu/torch_cpu_step.py --shape smollm-135m --threads 1,16 --batch 16 --seq 128

Our side uses the same batch (THREADS_BENCH_BATCH / THREADS_BENCH_SMOL_BATCH) and seq. On the
GPU machine run it with CUDA hidden (CUDA_VISIBLE_DEVICES=) so nothing lands on the GPU.
"""
import argparse
import json
import os
import platform
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

SHAPES = {
    "bench-llama": dict(vocab_size=259, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                        num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=512,
                        tie_word_embeddings=True),
    "smollm-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                        num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048,
                        tie_word_embeddings=True),
}

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
g = p.add_mutually_exclusive_group()
g.add_argument("--shape", choices=sorted(SHAPES), default="bench-llama")
g.add_argument("--model", help="a model folder instead of a shape")
p.add_argument("--threads", default=f"1,{os.cpu_count()}", help="comma-separated thread counts (default 1,<cpu count>)")
p.add_argument("--batch", type=int, default=32)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--rank", type=int, default=8)
p.add_argument("--alpha", type=float, default=16.0)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warm", type=int, default=2)
p.add_argument("--json", help="also write the result here")
a = p.parse_args()
thread_counts = [int(t) for t in a.threads.split(",") if t.strip()]
if not thread_counts or any(t < 1 for t in thread_counts):
    p.error(f"--threads must list positive integers, got {a.threads!r}")

# Inter-op parallelism must be set before any parallel work; intra-op (the matmuls) is set per run.
torch.set_num_interop_threads(1)


def build():
    torch.manual_seed(0)
    if a.model:
        base = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    else:
        cfg = LlamaConfig(**SHAPES[a.shape])
        base = LlamaForCausalLM(cfg).to(torch.float32)
    model = get_peft_model(base, LoraConfig(r=a.rank, lora_alpha=a.alpha, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    model.train()
    return base, model


def run(threads):
    torch.set_num_threads(threads)
    base, model = build()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    vocab = base.config.vocab_size
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (a.batch, a.seq + 1), generator=gen)
    inputs = ids[:, :-1].contiguous()

    def step():
        # labels = inputs: transformers shifts them, so position t predicts inputs[t + 1]
        loss = model(input_ids=inputs, labels=inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warm):
        step()
    times = []
    loss = float("nan")
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - t0) * 1000)
    ms = statistics.median(times)
    del model, base, opt
    return {"threads": threads, "torchThreads": torch.get_num_threads(), "msPerStep": round(ms, 1),
            "tokensPerSecond": round(a.batch * a.seq / (ms / 1000), 1), "lastLoss": round(loss, 4)}


rows = []
for t in thread_counts:
    row = run(t)
    rows.append(row)
    first = rows[0]
    speedup = row["tokensPerSecond"] / first["tokensPerSecond"]
    print(f"  {t:2d} thread(s) {row['msPerStep']:9.1f} ms/step {row['tokensPerSecond']:9.1f} tokens/s  "
          f"speed-up over {first['threads']} thread(s) {speedup:.2f}x, efficiency {speedup / (t / first['threads']):.2f}", flush=True)

out = {"torch": torch.__version__, "model": a.model or a.shape, "batch": a.batch, "seq": a.seq, "rank": a.rank, "alpha": a.alpha,
       "cpu": platform.processor() or platform.machine(), "cpuCount": os.cpu_count(), "loadAverage": os.getloadavg()[0], "rows": rows}
print(json.dumps(out))
if a.json:
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
