"""Loads fedlora-written adapter directories with Hugging Face PEFT and checks the merged deltas.

Run where torch, transformers and peft are installed (the GPU machine):
    python3 test/external/peft/check_peft.py FIXTURE_DIR [RESULT_JSON]
Exit status 1 when any adapter fails to load or its merged delta differs from fedlora's.
"""
import json
import sys

import torch
from peft import PeftModel
from transformers import LlamaConfig, LlamaForCausalLM

root = sys.argv[1]
expected = json.load(open(f"{root}/expected.json"))
config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=64, max_position_embeddings=64)
results = {}
ok = True
for name, modules in expected.items():
    torch.manual_seed(0)
    base = LlamaForCausalLM(config).float()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    try:
        model = PeftModel.from_pretrained(base, f"{root}/{name}")
        merged = model.merge_and_unload()
    except Exception as e:  # report, do not hide
        results[name] = {"loaded": False, "error": repr(e)}
        ok = False
        continue
    after = merged.state_dict()
    worst = 0.0
    for path, item in modules.items():
        want = torch.tensor(item["delta"], dtype=torch.float64).reshape(item["shape"])
        got = (after[f"{path}.weight"].double() - before[f"{path}.weight"].double())
        rel = ((got - want).abs().max() / want.abs().max()).item()
        worst = max(worst, rel)
    # float32 merge of a float32 base: relative error of a few ulps of the base magnitude.
    passed = worst < 1e-5
    ok = ok and passed
    results[name] = {"loaded": True, "max_relative_error": worst, "passed": passed}
import peft, transformers
report = {"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__, "results": results}
print(json.dumps(report, indent=2))
if len(sys.argv) > 2:
    json.dump(report, open(sys.argv[2], "w"), indent=2)
sys.exit(0 if ok else 1)
