/**
 * `node:module` in the browser client (aliased by client/web/build.ts): there are no native
 * modules, so `createRequire(...)(name)` throws and the code falls back to its pure-JS path
 * (tweetnacl instead of sodium-native).
 */
export function createRequire(_from: string): (name: string) => never {
  return (name) => {
    throw new Error(`cannot load the native module '${name}' in the browser`);
  };
}
export default { createRequire };
