"""Loads fedlora's PEFT exports with real safetensors + PEFT + transformers and checks them.

Usage: python3 check_peft.py DIR   (DIR written by make-dirs.ts; results under $OUT or /tmp)
"""
import json, os, struct, sys, warnings
here = os.path.abspath(sys.argv[1])
out = os.environ.get('OUT', '/tmp')
failures = []
def report(*a):
    print(*a, flush=True)
def require(ok, what):
    if not ok:
        failures.append(what)
        report('FAIL', what)
try:
    import numpy as np
    import torch, safetensors, peft, transformers
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
except Exception as e:
    report('MISSING', repr(e)); sys.exit(2)
report('versions torch', torch.__version__, 'safetensors', safetensors.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__)

# 1. Layout: the reference writer given the same tensors and metadata writes the same bytes.
ours = open(f'{here}/layout/ours.safetensors', 'rb').read()
with safe_open(f'{here}/layout/ours.safetensors', 'pt') as f:
    md = f.metadata()
    tensors = {k: f.get_tensor(k) for k in f.keys()}
save_file(tensors, f'{out}/python-resaved.safetensors', metadata=md)
theirs = open(f'{out}/python-resaved.safetensors', 'rb').read()
report('layout identical bytes:', ours == theirs, len(ours), len(theirs))
require(ours == theirs, 'the reference writer lays the same tensors out differently')
if ours != theirs:
    n1 = struct.unpack('<Q', ours[:8])[0]; n2 = struct.unpack('<Q', theirs[:8])[0]
    report('ours  ', ours[8:8+n1]); report('theirs', theirs[8:8+n2])

# 2. A Python-written fixture with F32, F16 (subnormal, inf, nan) and BF16 for fedlora's tests.
half_bits = np.array([0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x3555, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0xc000], dtype=np.uint16)
bf_bits = np.array([0x0000, 0x8000, 0x0001, 0x3f80, 0xc049, 0x7f80, 0xff80, 0x7fc0, 0x4049, 0x0080], dtype=np.uint16)
fx = {
    'model.embed.weight': torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
    'half.values': torch.from_numpy(half_bits.view(np.float16).copy()).reshape(3, 4),
    'bf.values': torch.from_numpy(bf_bits.astype(np.int16)).view(torch.bfloat16).reshape(2, 5),
    'scalar': torch.tensor(3.25, dtype=torch.float16),
    'a.f32': torch.tensor([-1.5, 2.0], dtype=torch.float32),
}
save_file(fx, f'{out}/python-written.safetensors', metadata={'format': 'pt'})
expected = {k: [None if v != v else (('inf' if v > 0 else '-inf') if v in (float('inf'), float('-inf')) else v) for v in t.float().flatten().tolist()] for k, t in fx.items()}
json.dump({'shapes': {k: list(t.shape) for k, t in fx.items()}, 'values': expected}, open(f'{out}/python-written.json', 'w'))
report('python fixture written')

# 3. PEFT loads each directory onto a tiny random Llama; its delta weights equal s * B @ A (s * B R A for Fed-SB).
from transformers import LlamaConfig, LlamaForCausalLM
from peft import PeftModel
exp = json.load(open(f'{here}/expected.json'))
def base_model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).eval()
def tensors_of(d):
    return {k: v.double().numpy() for k, v in load_file(f'{d}/adapter_model.safetensors').items()}
def check(name, d, reference, modules, make_base=None):
    make_base = make_base or base_model
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        model = PeftModel.from_pretrained(make_base(), d)
    msgs = sorted({str(x.message)[:160] for x in w})
    worst = 0.0
    adapted = []
    for mod_name, mod in model.named_modules():
        if hasattr(mod, 'lora_A') and 'default' in getattr(mod, 'lora_A', {}):
            path = mod_name.removeprefix('base_model.model.')
            adapted.append(path)
            delta = mod.get_delta_weight('default').double().numpy()
            ref = reference(path)
            worst = max(worst, float(np.abs(delta - ref).max() / max(np.abs(ref).max(), 1e-30)))
            rank, alpha = modules[path]['rank'], modules[path]['alpha']
            assert mod.r['default'] == rank, (path, mod.r['default'], rank)
            assert abs(mod.scaling['default'] - alpha / rank) < 1e-12, (path, mod.scaling['default'], alpha / rank)
    ok = sorted(adapted) == sorted(modules)
    require(ok, f'{name}: PEFT adapted {sorted(adapted)}')
    # float32 factors, float64 reference: products of O(1) values round at ~1e-7 relative.
    require(worst < 1e-6, f'{name}: delta weights differ by {worst:.2e}')
    report(f'{name}: adapted exactly our modules: {ok}; ranks and scalings match; max relative |delta - ref| = {worst:.2e}; warnings: {msgs}')
    if make_base is not base_model:
        return
    # Forward pass: PEFT's output equals the base model with W0 + dW merged by hand.
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        y_peft = model(ids).logits
        merged = base_model()
        sd = merged.state_dict()
        for path in modules:
            sd[f'{path}.weight'] = sd[f'{path}.weight'] + torch.from_numpy(reference(path)).float()
        merged.load_state_dict(sd)
        y_ref = merged(ids).logits
    gap = float((y_peft - y_ref).abs().max())
    report(f'{name}: forward max |peft - merged by hand| = {gap:.2e}')
    require(gap < 1e-5, f'{name}: forward pass differs by {gap:.2e}')

for name in ['lora', 'lora-nokey']:
    d = f'{here}/{name}'; t = tensors_of(d)
    ref = lambda p, t=t: (exp['lora'][p]['alpha'] / exp['lora'][p]['rank']) * t[f'base_model.model.{p}.lora_B.weight'] @ t[f'base_model.model.{p}.lora_A.weight']
    check(name, d, ref, exp['lora'])
u = tensors_of(f'{here}/fedsb-unfolded')
ref_sb = lambda p: (exp['fedsb'][p]['alpha'] / exp['fedsb'][p]['rank']) * u[f'base_model.model.{p}.lora_B.weight'] @ u[f'base_model.model.{p}.fedsb_R.weight'] @ u[f'base_model.model.{p}.lora_A.weight']
for name in ['fedsb-folded', 'fedsb-folded-with-r']:
    check(name, f'{here}/{name}', ref_sb, exp['fedsb'])
# 4. Module paths that end one another and integer-like paths, on a plain torch model (task_type null).
class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.b = torch.nn.Linear(3, 3)
        self.add_module('0', torch.nn.Linear(3, 3))
class Nested(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = Inner()
        self.x = torch.nn.Module(); self.x.a = Inner()
        self.y = torch.nn.Module(); self.y.c = torch.nn.Linear(3, 3)
        self.add_module('0', torch.nn.Linear(3, 3))
    def forward(self, v):
        return self.y.c(self.x.a.b(self.a.b(v)))
t = tensors_of(f'{here}/nested')
ref_n = lambda p: (exp['nested'][p]['alpha'] / exp['nested'][p]['rank']) * t[f'base_model.model.{p}.lora_B.weight'] @ t[f'base_model.model.{p}.lora_A.weight']
check('nested', f'{here}/nested', ref_n, exp['nested'], make_base=Nested)

# 5. A directory saved by PEFT itself (short target names, regex patterns, rsLoRA), with its delta
#    weights, for fedlora's reader test (test/shared/safetensors/data/peft-saved/).
from peft import LoraConfig, get_peft_model
cfg = LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], rank_pattern={'layers.1.self_attn.q_proj': 2}, alpha_pattern={'v_pr.j': 6}, use_rslora=True, init_lora_weights=False, task_type='CAUSAL_LM')
torch.manual_seed(1)
pm = get_peft_model(base_model(), cfg)
saved = f'{out}/peft-saved'
pm.save_pretrained(saved)
deltas = {}
for mod_name, mod in pm.named_modules():
    if hasattr(mod, 'lora_A') and 'default' in getattr(mod, 'lora_A', {}):
        deltas[mod_name.removeprefix('base_model.model.') + '.delta'] = mod.get_delta_weight('default').detach().float().contiguous()
save_file(deltas, f'{saved}/expected-deltas.safetensors')
report('peft-saved written:', sorted(os.listdir(saved)), len(deltas), 'deltas')

report('DONE' if not failures else f'FAILED: {failures}')
sys.exit(1 if failures else 0)
