/**
 * The inner loop of the staged running sum as a WebAssembly SIMD kernel: out = acc + w * x over
 * float64 sums and a float32 update, returning whether every x is finite. V8 does not vectorise
 * the JS loop; this does 4 floats per step (f32x4 loads promoted to f64x2 pairs).
 *
 * Why hand-assembled bytes: no wasm toolchain is a dependency of the project, the function is 60
 * bytes of code, and the WAT below is its exact source. `test/aggregation/simd-kernel.test.ts`
 * compares it with the JS loop value for value, NaN and Infinity at every lane included.
 *
 *   (module
 *     (import "env" "memory" (memory 1))
 *     (func (export "add") (param $out i32) (param $acc i32) (param $x i32) (param $n i32) (param $w f64)
 *           (result i32)                                   ;; $n: a multiple of 4
 *       (local $i i32) (local $wv v128) (local $z v128) (local $v v128) (local $lo v128)
 *       (local $hi v128) (local $s f64)
 *       (local.set $wv (f64x2.splat (local.get $w)))
 *       (block (loop
 *         (br_if 1 (i32.ge_u (local.get $i) (local.get $n)))
 *         (local.set $v (v128.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2)))))
 *         (local.set $lo (f64x2.promote_low_f32x4 (local.get $v)))
 *         (local.set $hi (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
 *                                                    (local.get $v) (local.get $v))))
 *         (local.set $z (f64x2.add (local.get $z) (f64x2.add (local.get $lo) (local.get $hi))))
 *         (v128.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 3)))
 *           (f64x2.add (v128.load (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 3))))
 *                      (f64x2.mul (local.get $lo) (local.get $wv))))
 *         (v128.store offset=16 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 3)))
 *           (f64x2.add (v128.load offset=16 (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 3))))
 *                      (f64x2.mul (local.get $hi) (local.get $wv))))
 *         (local.set $i (i32.add (local.get $i) (i32.const 4)))
 *         (br 0)))
 *       ;; the float64 sum of float32 values is finite exactly when every value is
 *       (local.set $s (f64.add (f64x2.extract_lane 0 (local.get $z)) (f64x2.extract_lane 1 (local.get $z))))
 *       (f64.eq (f64.sub (local.get $s) (local.get $s)) (f64.const 0))))
 */

function leb(value: number): number[] {
  const out: number[] = [];
  let n = value;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}

function name(text: string): number[] {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...leb(bytes.length), ...bytes];
}

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const simd = (op: number): number[] => [0xfd, ...leb(op)];
const memarg = (offset: number): number[] => [0x00, ...leb(offset)];
const get = (local: number): number[] => [0x20, local];
const set = (local: number): number[] => [0x21, local];
/** base + (i << shift), with i in local 5 */
const address = (base: number, shift: number): number[] => [...get(base), ...get(5), 0x41, shift, 0x74, 0x6a];

// Locals: 0 out, 1 acc, 2 x, 3 n, 4 w; 5 i; 6 wv, 7 z, 8 v, 9 lo, 10 hi; 11 s.
const CODE: number[] = [
  3, 1, I32, 5, V128, 1, F64,
  ...get(4), ...simd(0x14), ...set(6), // wv = f64x2.splat(w)
  0x02, 0x40, 0x03, 0x40, // block, loop
  ...get(5), ...get(3), 0x4f, 0x0d, 1, // br_if 1 (i >= n)
  ...address(2, 2), ...simd(0x00), ...memarg(0), ...set(8), // v = load x[i..i+3]
  ...get(8), ...simd(0x5f), ...set(9), // lo = promote_low(v)
  ...get(8), ...get(8), ...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7,
  ...simd(0x5f), ...set(10), // hi = promote_low(shuffle(v))
  ...get(7), ...get(9), ...get(10), ...simd(0xf0), ...simd(0xf0), ...set(7), // z += lo + hi
  ...address(0, 3), ...address(1, 3), ...simd(0x00), ...memarg(0), ...get(9), ...get(6), ...simd(0xf2), ...simd(0xf0), ...simd(0x0b), ...memarg(0),
  ...address(0, 3), ...address(1, 3), ...simd(0x00), ...memarg(16), ...get(10), ...get(6), ...simd(0xf2), ...simd(0xf0), ...simd(0x0b), ...memarg(16),
  ...get(5), 0x41, 4, 0x6a, ...set(5), // i += 4
  0x0c, 0, 0x0b, 0x0b, // br 0, end loop, end block
  ...get(7), ...simd(0x21), 0, ...get(7), ...simd(0x21), 1, 0xa0, 0x22, 11, // s = z0 + z1 (tee)
  ...get(11), 0xa1, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x61, // (s - s) == 0
  0x0b,
];

/**
 * The second function: sum over i of (x[i] - g[i])^2 in float64, for float32 x and g (n a multiple
 * of 4): the squared L2 distance DP-FedAvg clips by (privacy/clipping.ts `l2Distance` is the JS
 * reference, which test/aggregation/simd-kernel.test.ts compares it with).
 *
 *   (func (export "sqdist") (param $x i32) (param $g i32) (param $n i32) (result f64)
 *     (local $i i32) (local $v v128) (local $w v128) (local $lo v128) (local $hi v128)
 *     (local $s0 v128) (local $s1 v128)
 *     (block (loop
 *       (br_if 1 (i32.ge_u (local.get $i) (local.get $n)))
 *       (local.set $v (v128.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2)))))
 *       (local.set $w (v128.load (i32.add (local.get $g) (i32.shl (local.get $i) (i32.const 2)))))
 *       (local.set $lo (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $w))))
 *       (local.set $hi (f64x2.sub (f64x2.promote_low_f32x4 (i8x16.shuffle 8..15 0..7 $v $v))
 *                                 (f64x2.promote_low_f32x4 (i8x16.shuffle 8..15 0..7 $w $w))))
 *       (local.set $s0 (f64x2.add (local.get $s0) (f64x2.mul (local.get $lo) (local.get $lo))))
 *       (local.set $s1 (f64x2.add (local.get $s1) (f64x2.mul (local.get $hi) (local.get $hi))))
 *       (local.set $i (i32.add (local.get $i) (i32.const 4)))
 *       (br 0)))
 *     (local.set $s0 (f64x2.add (local.get $s0) (local.get $s1)))
 *     (f64.add (f64x2.extract_lane 0 (local.get $s0)) (f64x2.extract_lane 1 (local.get $s0))))
 */
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
/** base + (i << 2), with i in local 3 */
const at4 = (base: number): number[] => [...get(base), ...get(3), 0x41, 2, 0x74, 0x6a];
// Locals: 0 x, 1 g, 2 n; 3 i; 4 v, 5 w, 6 lo, 7 hi, 8 s0, 9 s1.
const SQDIST: number[] = [
  2, 1, I32, 6, V128,
  0x02, 0x40, 0x03, 0x40, // block, loop
  ...get(3), ...get(2), 0x4f, 0x0d, 1, // br_if 1 (i >= n)
  ...at4(0), ...simd(0x00), ...memarg(0), ...set(4), // v = x[i..i+3]
  ...at4(1), ...simd(0x00), ...memarg(0), ...set(5), // w = g[i..i+3]
  ...get(4), ...simd(0x5f), ...get(5), ...simd(0x5f), ...simd(0xf1), ...set(6), // lo = v.lo - w.lo
  ...get(4), ...get(4), ...simd(0x0d), ...HIGH_HALF, ...simd(0x5f),
  ...get(5), ...get(5), ...simd(0x0d), ...HIGH_HALF, ...simd(0x5f), ...simd(0xf1), ...set(7), // hi = v.hi - w.hi
  ...get(8), ...get(6), ...get(6), ...simd(0xf2), ...simd(0xf0), ...set(8), // s0 += lo * lo
  ...get(9), ...get(7), ...get(7), ...simd(0xf2), ...simd(0xf0), ...set(9), // s1 += hi * hi
  ...get(3), 0x41, 4, 0x6a, ...set(3), // i += 4
  0x0c, 0, 0x0b, 0x0b, // br 0, end loop, end block
  ...get(8), ...get(9), ...simd(0xf0), ...set(8),
  ...get(8), ...simd(0x21), 0, ...get(8), ...simd(0x21), 1, 0xa0, // lane 0 + lane 1
  0x0b,
];

const MODULE_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [2, 0x60, 5, I32, I32, I32, I32, F64, 1, I32, 0x60, 3, I32, I32, I32, 1, F64]),
  ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 1]),
  ...section(3, [2, 0, 1]),
  ...section(7, [2, ...name('add'), 0x00, 0, ...name('sqdist'), 0x00, 1]),
  ...section(10, [2, ...leb(CODE.length), ...CODE, ...leb(SQDIST.length), ...SQDIST]),
]);

/** The few WebAssembly JS API members used here (the project's lib settings carry no wasm types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

/** The compiled kernel module, or null where WebAssembly SIMD is unavailable. */
export function simdKernelModule(): object | null {
  if (compiled === undefined) compiled = wasm !== undefined && wasm.validate(MODULE_BYTES) ? new wasm.Module(MODULE_BYTES) : null;
  return compiled;
}

/** out = acc + w x over byte offsets in the memory; n a multiple of 4. Returns 1 when every x is finite. */
export type SimdAdd = (out: number, acc: number, x: number, n: number, w: number) => number;

/** sum (x[i] - g[i])^2 over float32 x and g at byte offsets in the memory; n a multiple of 4. */
export type SimdSquaredDistance = (x: number, g: number, n: number) => number;

/** The largest arena: 32-bit wasm addresses, and V8 caps a memory at 4 GiB (we stay at 2 GiB). */
export const SIMD_MAX_BYTES = 2 ** 31;

/**
 * A wasm memory of `bytes` (rounded up to 64 KiB pages) with the kernel bound to it; null without
 * WebAssembly SIMD, above SIMD_MAX_BYTES, or when the engine cannot allocate it (callers then use
 * plain JS sums).
 */
export function simdArena(bytes: number): { buffer: ArrayBuffer; add: SimdAdd; sqdist: SimdSquaredDistance } | null {
  const module = simdKernelModule();
  if (module === null || wasm === undefined || bytes > SIMD_MAX_BYTES) return null;
  try {
    const memory = new wasm.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
    const exports = new wasm.Instance(module, { env: { memory } }).exports;
    return { buffer: memory.buffer, add: exports.add as SimdAdd, sqdist: exports.sqdist as SimdSquaredDistance };
  } catch {
    return null; // out of memory or address space for a wasm memory: the JS loop needs none
  }
}
