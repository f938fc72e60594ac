/**
 * Node modules the browser client bundles only on code paths it never takes (the Node WebGPU
 * backend's Dawn, gzip, worker threads, cli-progress's terminal): aliased here by
 * client/web/build.ts, each call throws, naming what is missing.
 */
const fail = (what: string) => (): never => {
  throw new Error(`${what} is not available in the browser client`);
};
export const gunzipSync = fail('gunzip (decompress the data file first)');
export const fileURLToPath = fail('fileURLToPath');
export const pathToFileURL = fail('pathToFileURL');
export const execFileSync = fail('child processes');
export const spawn = fail('child processes');
export default {};
