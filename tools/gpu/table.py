"""The table of tools/gpu/run.sh's results, for docs/verification.md: one row per check.

    python3 tools/gpu/table.py OUT_DIR
"""
import json
import os
import sys

out = sys.argv[1]


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


rows = []
gpu = open(os.path.join(out, "gpu.txt")).read().strip().replace("\n", "; ") if os.path.exists(os.path.join(out, "gpu.txt")) else "?"
backend = load("backend.json")
if backend is not None:
    st = backend.get("selfTest", {})
    rows.append(("`fedlora backend --backend webgpu`", st.get("ok", False), f"{backend.get('name')} on {backend.get('device')}; self-test max error {st.get('maxError')}"))
verify = load("verify.json")
if verify is not None:
    for r in verify["rows"]:
        rows.append((r["check"], r["ok"], f"{r['detail']} ({r['seconds']} s)"))
peft = load("peft.json")
if peft is not None:
    rows.append((peft["check"], peft["ok"], peft["detail"]))
for name in ("families.json", "families-bf16.json"):
    families = load(name)
    if families is None:
        continue
    for r in families.get("rows", []):
        detail = r.get("error") or f"max abs(ours - transformers) / max abs(logit) = {r.get('maxRelError'):.2e} (tolerance {families.get('tolerance')})"
        rows.append((f"logits vs transformers: {r.get('folder')} ({r.get('modelType')}, {r.get('dtype', '')})", r.get("pass", False), detail))
sizes = load("sizes.json")
if sizes is not None:
    for r in sizes["rows"]:
        name = os.path.basename(r["model"])
        detail = r.get("error") or (f"{r.get('shape')}: load {r.get('loadSeconds')} s, {r.get('msPerStepMedian')} ms/step at {r.get('batch')} x {r.get('seqLen')} tokens = "
                                    f"{r.get('tokensPerSecond')} tokens/s, loss {r.get('lossFirst')} -> {r.get('lossLast')}, GPU memory {r.get('gpuMemoryMiB')} MiB, "
                                    f"tfjs bytes {r.get('bytesOnBackendPeak')}")
        rows.append((f"LoRA training at full size: {name}", r.get("ok", False), detail))

print(f"GPU: {gpu}\n")
print("| check | result | detail |")
print("| --- | --- | --- |")
for check, ok, detail in rows:
    print(f"| {check} | {'pass' if ok else 'FAIL'} | {detail} |")
