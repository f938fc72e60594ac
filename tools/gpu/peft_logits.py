"""Second half of tools/gpu/verify.ts's logits row: the logits of base + adapter computed by
Hugging Face transformers + PEFT on the same folders, against ours.

    python3 tools/gpu/peft_logits.py OUT/ours-logits.json [--device cuda|cpu]

float32, eager attention, TF32 off, so both sides compute in float32. Passes when
max |ours - peft| / max |peft| < 1e-4 (issue 10). Prints one line and writes <json>.peft.json.
"""
import argparse
import json

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("ours")
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
args = parser.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_grad_enabled(False)

ours = json.load(open(args.ours))
base = AutoModelForCausalLM.from_pretrained(ours["model"], torch_dtype=torch.float32, attn_implementation="eager")
model = PeftModel.from_pretrained(base, ours["adapter"]).to(args.device).eval()
ids = torch.tensor([ours["ids"]], device=args.device)
want = model(ids).logits.flatten().double().cpu()
got = torch.tensor(ours["logits"], dtype=torch.float64)
with model.disable_adapter():
    plain = model(ids).logits.flatten().double().cpu()
rel = ((got - want).abs().max() / want.abs().max()).item()
moved = ((want - plain).abs().max() / want.abs().max()).item()
result = {
    "check": "exported adapter's logits vs PEFT",
    "ok": rel < 1e-4 and moved > 0,
    "relative_error": rel,
    "adapter_effect": moved,
    "detail": f"max|ours - PeftModel| / max|logit| = {rel:.2e} (tolerance 1e-4); the adapter moves the logits by {moved:.2e} relative",
}
json.dump(result, open(args.ours.replace(".json", ".peft.json"), "w"), indent=1)
print(("PASS" if result["ok"] else "FAIL") + "  " + result["check"] + "  " + result["detail"])
