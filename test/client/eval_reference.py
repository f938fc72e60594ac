"""Independent reference for `fedlora eval` on the mlp: numpy in float64, reading the base
checkpoint and the PEFT adapter straight from their safetensors files (parsed by hand: 8-byte
little-endian header length, JSON header, raw little-endian F32) and the CSV (label last).

usage: python3 eval_reference.py MODEL_DIR ADAPTER_DIR DATA.csv[.gz] LABELS(e.g. 5,6,7,8,9)
prints JSON: {"examples", "base": {"accuracy", "loss"}, "adapted": {"accuracy", "loss"}}
"""
import gzip, json, struct, sys
import numpy as np


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        assert info['dtype'] == 'F32', info
        a, b = info['data_offsets']
        out[name] = np.frombuffer(data[a:b], dtype='<f4').astype(np.float64).reshape(info['shape'])
    return out


model_dir, adapter_dir, data_path, labels = sys.argv[1], sys.argv[2], sys.argv[3], {int(x) for x in sys.argv[4].split(',')}
config = json.load(open(f'{model_dir}/config.json'))
assert config.get('hidden_act', 'relu') == 'relu'
w = read_safetensors(f'{model_dir}/model.safetensors')
ad = read_safetensors(f'{adapter_dir}/adapter_model.safetensors')
acfg = json.load(open(f'{adapter_dir}/adapter_config.json'))
assert not acfg.get('rank_pattern') and not acfg.get('alpha_pattern') and not acfg.get('use_rslora')
scaling = acfg['lora_alpha'] / acfg['r']

opener = gzip.open if data_path.endswith('.gz') else open
rows = np.loadtxt(opener(data_path, 'rt'), delimiter=',', ndmin=2)
rows = rows[np.isin(rows[:, -1].astype(int), list(labels))]
x, y = rows[:, :-1], rows[:, -1].astype(int)

paths = [f'layers.{i}' for i in range(len(config['hidden_sizes']))] + ['head']


def forward(with_adapter):
    h = (x - w['input_norm.mean']) / w['input_norm.std']
    for i, p in enumerate(paths):
        z = h @ w[f'{p}.weight'].T + w[f'{p}.bias']
        key = f'base_model.model.{p}.lora_A.weight'
        if with_adapter and key in ad:
            z = z + scaling * (h @ ad[key].T) @ ad[f'base_model.model.{p}.lora_B.weight'].T
        h = np.maximum(z, 0) if i < len(paths) - 1 else z
    return h


def score(logits):
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return {'accuracy': float((logits.argmax(axis=1) == y).mean()), 'loss': float(-logp[np.arange(len(y)), y].mean())}


print(json.dumps({'examples': int(len(y)), 'base': score(forward(False)), 'adapted': score(forward(True))}))
