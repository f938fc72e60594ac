/**
 * WebGPU through Dawn (the npm package `webgpu`, an optional dependency) and
 * @tensorflow/tfjs-backend-webgpu. docs/training.md, "Backends": on the H200 Dawn's Vulkan backend works (23 TFLOP/s
 * fp32, correct gradients) but Dawn on OpenGL with the NVIDIA driver returns zeros silently, so
 * the known-answer self-test (self-test.ts) must pass before this backend is used, and the
 * device's uncaptured errors are watched. tfjs' webgpu backend reads `navigator.gpu` when it is
 * imported, so it is imported only after Dawn's `create()` has set it. Dawn keeps Node alive
 * until released: `shutdown()` destroys the device and drops the reference.
 */
import * as tf from '@tensorflow/tfjs';
import { prepareFusedKernels } from '../kernels/fused-adamw.js';
import type { BackendCandidate, LoadedBackend } from './types.js';

/** The few WebGPU objects this file touches (the full types come with `webgpu`, an optional package). */
interface GpuAdapterInfo { vendor?: string; architecture?: string; device?: string; description?: string }
interface GpuAdapter { info?: GpuAdapterInfo }
interface Gpu { requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapter | null> }
interface GpuDevice {
  onuncapturederror: ((ev: { error?: { message?: string } }) => void) | null;
  lost?: Promise<{ message?: string; reason?: string }>;
  destroy(): void;
}
interface DawnModule { create(options: string[]): Gpu; globals: object }

/**
 * Set once a Dawn device was released: creating Dawn again in the same process aborted Node on the
 * H200 (a glibc assertion in __pthread_tpp_change_priority), so a second start is refused instead.
 */
let released = false;

/**
 * Whether Dawn finds an adapter, asked in a child process whose stderr (Dawn's native warnings) is
 * kept from the user's terminal.
 * @throws when it finds none, with Dawn's own words
 */
async function probeAdapter(dawnOptions: readonly string[]): Promise<void> {
  const { spawn } = await import('node:child_process');
  const { createRequire } = await import('node:module');
  const { pathToFileURL } = await import('node:url');
  const entry = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  const script = `const d = await import(${JSON.stringify(entry)}); const a = await d.create(${JSON.stringify(dawnOptions)}).requestAdapter({ powerPreference: 'high-performance' }); process.exit(a === null ? 3 : 0);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  if (code === 0) return;
  const said = stderr.split('\n').find((l) => /warning|error/i.test(l))?.trim();
  throw new Error(`Dawn found no WebGPU adapter (no GPU, or a Vulkan driver Dawn rejects)${said === undefined ? '' : `: ${said.slice(0, 200)}`}; --verbose shows Dawn's messages`);
}

/**
 * @param dawnOptions Dawn toggles for `create()`, e.g. `backend=vulkan`. @default [] (Dawn's
 *   default: Vulkan on Linux)
 */
export function webgpuBackend(dawnOptions: readonly string[] = []): BackendCandidate {
  return {
    name: 'webgpu',
    tfName: 'webgpu',
    async load(): Promise<LoadedBackend> {
      if (released) throw new Error('WebGPU was released earlier in this process and Dawn cannot be started twice in one process; start a new process');
      const dawnPackage = 'webgpu'; // a variable: an optional package, typed locally above
      let dawn: DawnModule;
      try {
        dawn = (await import(dawnPackage)) as DawnModule;
      } catch (e) {
        throw new Error(`the optional package 'webgpu' (Dawn) is not installed or does not load: ${message(e)}`, { cause: e });
      }
      // Dawn's native code writes warnings straight to stderr (a Vulkan loader that is missing, with
      // a path on the machine it was built on): unless verbose, ask a child process first whether
      // there is an adapter at all, and start Dawn here only when there is.
      if (process.env.FEDLORA_VERBOSE !== '1') await probeAdapter(dawnOptions);
      Object.assign(globalThis, dawn.globals);
      const gpu = dawn.create([...dawnOptions]);
      const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      if (adapter === null) throw new Error('Dawn found no WebGPU adapter (no GPU, or a Vulkan driver Dawn rejects)');
      // Node 21+ has a getter-only globalThis.navigator; defineProperty works on 20 and later.
      const hadNavigator = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
      Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
      const restoreNavigator = (): void => {
        if (hadNavigator) Object.defineProperty(globalThis, 'navigator', hadNavigator);
        else delete (globalThis as { navigator?: unknown }).navigator;
      };
      try {
        await import('@tensorflow/tfjs-backend-webgpu');
        if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
        await tf.ready();
        await prepareFusedKernels();
      } catch (e) {
        restoreNavigator();
        throw e;
      }
      const errors: string[] = [];
      const device = (tf.backend() as unknown as { device?: GpuDevice }).device;
      if (device !== undefined) {
        device.onuncapturederror = (ev) => errors.push(ev.error?.message ?? 'uncaptured WebGPU error');
        void device.lost?.then((info) => errors.push(`device lost: ${info.reason ?? ''} ${info.message ?? ''}`.trim()));
      }
      const i = adapter.info ?? {};
      const name = [i.vendor, i.architecture, i.device, i.description].filter((s) => s !== undefined && s !== '').join(' ');
      return {
        device: `${name || 'unknown adapter'} (Dawn${dawnOptions.length > 0 ? ' ' + dawnOptions.join(' ') : ''})`,
        asyncErrors: () => errors,
        async shutdown() {
          released = true;
          try {
            device?.destroy();
          } finally {
            restoreNavigator();
          }
        },
      };
    },
  };
}

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}
