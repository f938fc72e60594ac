"""Interop check, second half (see llama-interop.ts): load the checkpoints our writer produced with
transformers' LlamaForCausalLM, the adapters with PEFT, and compare the logits with ours.

    python3 test/client/llama-interop.py interop-llama

Runs on the CPU in float32 with eager attention, so both sides compute in float32 without TF32.
Prints the largest |logit difference| per case and exits 1 when one exceeds 1e-4 (issue 4).
"""
import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

root = sys.argv[1] if len(sys.argv) > 1 else "interop-llama"
ours = json.load(open(f"{root}/ours.json"))
TOL = 1e-4
worst = 0.0
torch.set_grad_enabled(False)


def load(name):
    return AutoModelForCausalLM.from_pretrained(f"{root}/{name}", torch_dtype=torch.float32, attn_implementation="eager").eval()


for name, entry in ours.items():
    ids = torch.tensor(entry["ids"])
    base = load(name)
    got = base(ids).logits.flatten()
    diff = (got - torch.tensor(entry["base"])).abs().max().item()
    worst = max(worst, diff)
    print(f"{name}: base max|dlogit| = {diff:.3e} (max|logit| {got.abs().max().item():.2f})")
    for adapter, logits in entry["adapters"].items():
        model = PeftModel.from_pretrained(load(name), f"{root}/{name}/adapter-{adapter}").eval()
        got = model(ids).logits.flatten()
        want = torch.tensor(logits)
        diff = (got - want).abs().max().item()
        moved = (got - base(ids).logits.flatten()).abs().max().item()
        worst = max(worst, diff)
        print(f"{name} + {adapter}: max|dlogit| = {diff:.3e} (the adapter moves logits by up to {moved:.2f})")
    try:
        tok = AutoTokenizer.from_pretrained(f"{root}/{name}")
        text = "h\u00e9llo, w\u00f6rld \U0001F642"
        enc = tok(text, add_special_tokens=False)["input_ids"]
        ok = enc == list(text.encode("utf-8")) and tok.decode(enc) == text
        print(f"{name}: byte tokenizer.json in transformers: {'same ids as UTF-8 bytes, round-trips' if ok else f'MISMATCH {enc}'}")
        worst = worst if ok else float("inf")
    except (OSError, ValueError):
        pass  # this case has no tokenizer files

print(f"worst max|dlogit| = {worst:.3e}; tolerance {TOL}")
sys.exit(0 if worst < TOL else 1)
