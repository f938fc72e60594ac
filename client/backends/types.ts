/** The TensorFlow.js backends fedlora can run on, in the order it prefers them (docs/training.md, "Backends"). */
export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The result of the known-answer self-test (self-test.ts). */
export interface SelfTestResult {
  readonly ok: boolean;
  /** Largest error over every compared value, relative to max(1, the largest reference value). */
  readonly maxError: number;
  /** Why it failed, when it did. */
  readonly reason?: string;
}

/** What the client logs and reports in its hello. */
export interface BackendInfo {
  readonly name: BackendName;
  /** The device in words, e.g. `nvidia-h200 (vulkan)` or `wasm SIMD, 1 thread, Intel Xeon ...`. */
  readonly device: string;
  readonly selfTest: SelfTestResult;
  /** Backends tried before this one, with the reason each was passed over. */
  readonly skipped: ReadonlyArray<{ readonly name: BackendName; readonly reason: string }>;
}

/** What a backend candidate returns once its tfjs backend is registered and set. */
export interface LoadedBackend {
  /** The device in words. */
  readonly device: string;
  /** Errors the device reported asynchronously since load (WebGPU's uncapturederror). */
  readonly asyncErrors?: () => readonly string[];
  /** Frees the device (Dawn keeps Node alive until it is released). */
  readonly shutdown?: () => Promise<void>;
}

/**
 * One backend fedlora may use: one file each in client/backends/, one line in the registry
 * (client/backend.ts).
 */
export interface BackendCandidate {
  readonly name: BackendName;
  /** The name the backend registers with tfjs (`tf.setBackend(tfName)`). */
  readonly tfName: string;
  /**
   * Loads and sets the backend.
   * @throws Error with the reason when it is not available here (not installed, no adapter, ...)
   */
  load(): Promise<LoadedBackend>;
}
