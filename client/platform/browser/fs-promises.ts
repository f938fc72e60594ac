/** `node:fs/promises` in the browser client: the promise half of ./fs.ts. */
import { promises } from './fs.js';
export const { readFile, writeFile, access, mkdir, stat, rename, rm, open } = promises;
export type FileHandle = Awaited<ReturnType<typeof promises.open>>;
export default promises;
