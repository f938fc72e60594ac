/** `node:os` in the browser client (aliased by client/web/build.ts): what the bundled code asks. */
const cores = (): number => (globalThis as { navigator?: Navigator }).navigator?.hardwareConcurrency ?? 1;
export const endianness = (): 'LE' | 'BE' => (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 'LE' : 'BE');
export const availableParallelism = cores;
export const cpus = (): Array<{ model: string }> => Array.from({ length: cores() }, () => ({ model: (globalThis as { navigator?: Navigator }).navigator?.userAgent ?? 'browser' }));
export const platform = (): string => 'browser';
export default { endianness, availableParallelism, cpus, platform };
