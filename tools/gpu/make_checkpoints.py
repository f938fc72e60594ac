"""Random checkpoints of the decoder families fedlora loads, written by transformers itself
(`save_pretrained`), each with transformers' reference logits beside it, for
tools/gpu/check-families.ts (issue 10, item 3).

    python3 tools/gpu/make_checkpoints.py --out OUT [--variants full,2layer] [--families ...]
        [--dtype float32|bfloat16|float16] [--max-shard-size 1GB] [--seq-len 32] [--device cuda]

One folder per (family, variant): OUT/<family>-<variant>/ with
  config.json, model.safetensors or model-0000k-of-0000n.safetensors + model.safetensors.index.json
    (transformers' own files, in --dtype),
  reference.safetensors   `logits` F32 [1, T, vocab],
  reference.json          input_ids, family, variant, dtype, versions, how the logits were computed.

Families (the shapes of the published configs; values random):
  smollm2-360m  LlamaForCausalLM, HuggingFaceTB/SmolLM2-360M's config (tied, GQA 15/5)
  qwen2.5-0.5b  Qwen2ForCausalLM, Qwen/Qwen2.5-0.5B's config (q/k/v biases, tied, GQA 14/2)
  llama-3.2-1b  LlamaForCausalLM, meta-llama/Llama-3.2-1B's config (llama3 rope_scaling, tied)
  mistral-small MistralForCausalLM, a small Mistral: head_dim 64 given explicitly (hidden / heads
                would be 32) and a sliding window of 16, shorter than the sequence
  llama-bias    LlamaForCausalLM, small, attention_bias and mlp_bias on
Variants: `full` keeps num_hidden_layers of the real config (the size check of item 4); `2layer`
cuts it to 2 (the logits check; small enough to carry).

The reference logits come from the float32 model holding exactly the saved values (weights are
rounded to --dtype first, then widened back), eager attention, TF32 off: what fedlora computes
after widening F16/BF16 to float32. Weights follow transformers' init, then RMSNorm weights are
drawn in [0.5, 1.5] and biases N(0, 0.1^2), so a loader that drops either fails the check.
"""
import argparse
import inspect
import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config


def rope(cls, theta, scaling=None):
    """rope_theta (+ scaling) as this transformers version takes them: `rope_parameters` (>= 5) or
    the older `rope_theta` + `rope_scaling`. fedlora's config reader accepts both spellings."""
    if "rope_parameters" in inspect.signature(cls.__init__).parameters:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta, **(scaling or {})}}
    return {"rope_theta": theta, **({"rope_scaling": scaling} if scaling else {})}


LLAMA3_SCALING = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192}

# family -> (real num_hidden_layers, config for a layer count)
FAMILIES = {
    "smollm2-360m": (32, lambda layers: LlamaConfig(
        vocab_size=49152, hidden_size=960, intermediate_size=2560, num_hidden_layers=layers, num_attention_heads=15,
        num_key_value_heads=5, hidden_act="silu", max_position_embeddings=8192, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, attention_bias=False, mlp_bias=False,
        **rope(LlamaConfig, 100000.0),
    )),
    "qwen2.5-0.5b": (24, lambda layers: Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=layers, num_attention_heads=14,
        num_key_value_heads=2, hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-6,
        tie_word_embeddings=True, use_sliding_window=False, sliding_window=32768, max_window_layers=layers,
        bos_token_id=151643, eos_token_id=151643, **rope(Qwen2Config, 1000000.0),
    )),
    "llama-3.2-1b": (16, lambda layers: LlamaConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=layers, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001, **rope(LlamaConfig, 500000.0, LLAMA3_SCALING),
    )),
    "mistral-small": (4, lambda layers: MistralConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=layers, num_attention_heads=8,
        num_key_value_heads=2, head_dim=64, hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-5,
        sliding_window=16, tie_word_embeddings=False, **rope(MistralConfig, 10000.0),
    )),
    "llama-bias": (4, lambda layers: LlamaConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=layers, num_attention_heads=8,
        num_key_value_heads=4, hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-6,
        tie_word_embeddings=False, attention_bias=True, mlp_bias=True, **rope(LlamaConfig, 10000.0),
    )),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--variants", default="2layer", help="comma-separated: full, 2layer")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    parser.add_argument("--max-shard-size", default="1GB", help="save_pretrained's max_shard_size (sharded folders above it)")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_grad_enabled(False)
    dtype = DTYPES[args.dtype]

    for family in args.families.split(","):
        if family not in FAMILIES:
            raise SystemExit(f"--families: unknown '{family}'; known: {', '.join(FAMILIES)}")
        for variant in args.variants.split(","):
            if variant not in ("full", "2layer"):
                raise SystemExit(f"--variants: unknown '{variant}'; known: full, 2layer")
            real_layers, make = FAMILIES[family]
            config = make(real_layers if variant == "full" else 2)
            write_one(args, family, variant, config, dtype)


def write_one(args, family, variant, config, dtype):
    folder = os.path.join(args.out, f"{family}-{variant}")
    os.makedirs(folder, exist_ok=True)
    seed = args.seed * 1000 + sorted(FAMILIES).index(family)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float32)
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
        elif name.endswith(".bias"):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    # The values fedlora will see: rounded to the saved dtype, widened back to float32. Buffers are
    # not saved weights (the rotary inv_freq): keep them in float32, or the reference would use
    # bf16-rounded rotary frequencies that no loader sees (a 1e-3 logits error at BF16).
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    model = model.to(dtype).to(torch.float32).eval()
    for name, b in model.named_buffers():
        b.copy_(buffers[name])
    ids = torch.randint(0, config.vocab_size, (1, args.seq_len), generator=gen)
    logits = model.to(args.device)(ids.to(args.device)).logits.float().cpu().contiguous()
    model.to("cpu").to(dtype).save_pretrained(folder, max_shard_size=args.max_shard_size)
    save_file({"logits": logits}, os.path.join(folder, "reference.safetensors"), metadata={"format": "pt"})
    params = sum(p.numel() for p in model.parameters())
    meta = {
        "family": family, "variant": variant, "model_type": config.model_type, "dtype": str(dtype).replace("torch.", ""),
        "input_ids": ids[0].tolist(), "parameters": params, "num_hidden_layers": config.num_hidden_layers,
        "logits": "float32 eager forward on the saved values (TF32 off), reference.safetensors 'logits' [1, T, vocab]",
        "device": args.device, "torch": torch.__version__, "transformers": transformers.__version__,
    }
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors") and f != "reference.safetensors")
    print(f"{folder}: {config.model_type}, {config.num_hidden_layers} layers, {params:,} parameters, {meta['dtype']}, "
          f"{len(files)} weight file(s), max |logit| {logits.abs().max().item():.3f}", flush=True)


if __name__ == "__main__":
    main()
