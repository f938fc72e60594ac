"""Independent reference for aggregation/seeded-random.ts and kaiming.ts (written from the spec in
that file's header, not from the TypeScript): SHA-256 seeding, xoshiro128** 1.1, 24-bit uniforms,
Kaiming-uniform lora_A values rounded to float32.

usage: python3 seeded_random.py DOMAIN SEED PATH RANK IN_FEATURES COUNT
prints JSON: {"uint32": [first COUNT raw outputs of a fresh generator],
              "a_bits": [float32 bit patterns of the first COUNT values of A]}
"""
import hashlib
import json
import struct
import sys

import numpy as np

MASK = 0xFFFFFFFF


def rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & MASK


class Xoshiro128ss:
    def __init__(self, domain, *parts):
        digest = hashlib.sha256("\0".join((domain,) + parts).encode("utf-8")).digest()
        self.s = list(struct.unpack("<4I", digest[:16]))

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 9) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
        return result


def main():
    domain, seed, path, rank, n, count = sys.argv[1:7]
    rank, n, count = int(rank), int(n), int(count)
    raw = Xoshiro128ss(domain, seed, path)
    uint32 = [raw.next() for _ in range(count)]
    gen = Xoshiro128ss(domain, seed, path)
    bound = 1.0 / np.sqrt(np.float64(n))
    values = []
    for _ in range(min(count, rank * n)):
        u = (gen.next() >> 8) / 16777216.0
        values.append(np.float32((2.0 * u - 1.0) * bound))
    bits = [int(np.array(v, dtype=np.float32).view(np.uint32)) for v in values]
    print(json.dumps({"uint32": uint32, "a_bits": bits}))


main()
