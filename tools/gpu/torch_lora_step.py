"""PyTorch + PEFT reference for the LoRA training step that tools/gpu/lora-step.ts times (issue 13):
the same checkpoint folder, LoRA r 16 / alpha 32 on q_proj and v_proj, AdamW, batch x seq random
token ids, float32 eager (TF32 off), and bf16 autocast. Median ms per step over --steps after
--warm steps, CUDA-synchronised.

    python3 tools/gpu/torch_lora_step.py MODEL_DIR --batch 4 --seq 256 --json OUT.json
"""
import argparse
import json
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warm", type=int, default=3)
p.add_argument("--json")
a = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"


def run(mode):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)).to(dev)
    model.train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    vocab = base.config.vocab_size
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (a.batch, a.seq + 1), generator=g).to(dev)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=(mode == "bf16_autocast")):
            loss = model(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(a.warm):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    with torch.no_grad():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            model(input_ids=ids[:, :-1])
        torch.cuda.synchronize()
        fwd = (time.perf_counter() - t0) * 1000 / a.steps
    mem = torch.cuda.max_memory_allocated() / 2**20
    del model, base, opt
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return {"msPerStep": round(statistics.median(times), 2), "forwardMs": round(fwd, 2), "peakMemoryMiB": round(mem)}


out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "model": a.model, "batch": a.batch, "seq": a.seq,
       "fp32": run("fp32"), "bf16_autocast": run("bf16_autocast")}
print(json.dumps(out))
if a.json:
    json.dump(out, open(a.json, "w"), indent=1)
