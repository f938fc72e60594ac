/**
 * `node:fs` and `node:fs/promises` in the browser client (aliased by client/web/build.ts): an
 * in-memory file system holding what the page put there (the picked model folder and data file,
 * read into memory; they never leave the machine) and the agent's state folder, which the worker
 * persists to IndexedDB (client/web/state-store.ts) so a reload resumes the enrolment.
 *
 * Only the calls the bundled code makes are here; errors carry Node's codes (ENOENT, EEXIST).
 */
import { Buffer } from 'buffer';
import { dirname, normalize } from 'pathe';

interface Entry {
  data: Uint8Array;
  mode: number;
  /** A picked file read lazily (the model weights), or null once in `data`. */
  file: Blob | null;
}

const files = new Map<string, Entry>();
const dirs = new Set<string>(['/']);
const listeners = new Set<(path: string) => void>();

const norm = (p: string): string => normalize(p.startsWith('/') ? p : `/${p}`);

function fsError(code: string, syscall: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

function entry(path: string, syscall: string): Entry {
  const e = files.get(norm(path));
  if (e === undefined) throw fsError('ENOENT', syscall, path);
  if (e.file !== null) throw fsError('EAGAIN', `${syscall} (a picked file not read yet; use the promise API)`, path);
  return e;
}

function changed(path: string): void {
  for (const l of listeners) l(norm(path));
}

function put(path: string, data: Uint8Array, mode = 0o600): void {
  const p = norm(path);
  if (!dirs.has(dirname(p))) throw fsError('ENOENT', 'open', path);
  files.set(p, { data, mode, file: null });
  changed(p);
}

/** The page's side: put a file (bytes, or a Blob read when first used), mkdir -p on the way. */
export function mountFile(path: string, content: Uint8Array | Blob): void {
  mkdirSync(dirname(norm(path)), { recursive: true });
  const p = norm(path);
  files.set(p, content instanceof Uint8Array ? { data: content, mode: 0o600, file: null } : { data: new Uint8Array(0), mode: 0o600, file: content });
}

/** Every file under `dir`, with its bytes (the state folder, to persist). */
export function filesUnder(dir: string): Array<{ path: string; data: Uint8Array }> {
  const prefix = `${norm(dir)}/`;
  return [...files].filter(([p, e]) => p.startsWith(prefix) && e.file === null).map(([path, e]) => ({ path, data: e.data }));
}

/** Calls `listener(path)` after each write, rename or removal. */
export function onChange(listener: (path: string) => void): void {
  listeners.add(listener);
}

async function loaded(path: string, syscall: string): Promise<Entry> {
  const e = files.get(norm(path));
  if (e === undefined) throw fsError('ENOENT', syscall, path);
  if (e.file !== null) {
    e.data = new Uint8Array(await e.file.arrayBuffer());
    e.file = null;
  }
  return e;
}

const decode = (data: Uint8Array, encoding?: unknown): string | Buffer => {
  const enc = typeof encoding === 'string' ? encoding : (encoding as { encoding?: string } | undefined)?.encoding;
  return enc === undefined ? Buffer.from(data) : new TextDecoder().decode(data);
};

// ---------------------------------------------------------------- synchronous API

export function mkdirSync(path: string, _options?: unknown): void {
  let p = norm(path);
  while (!dirs.has(p)) {
    dirs.add(p);
    p = dirname(p);
  }
}

export function existsSync(path: string): boolean {
  return files.has(norm(path)) || dirs.has(norm(path));
}

export function statSync(path: string) {
  const p = norm(path);
  if (dirs.has(p)) return { mode: 0o40700, size: 0, isFile: () => false, isDirectory: () => true };
  const e = files.get(p);
  if (e === undefined) throw fsError('ENOENT', 'stat', path);
  return { mode: 0o100000 | e.mode, size: e.file?.size ?? e.data.length, isFile: () => true, isDirectory: () => false };
}

export function chmodSync(path: string, mode: number): void {
  const e = files.get(norm(path));
  if (e !== undefined) e.mode = mode;
}

export function readFileSync(path: string, encoding?: unknown): string | Buffer {
  return decode(entry(path, 'open').data, encoding);
}

export function writeFileSync(path: string, data: string | Uint8Array): void {
  put(path, typeof data === 'string' ? new TextEncoder().encode(data) : data.slice());
}

export function renameSync(from: string, to: string): void {
  const e = entry(from, 'rename');
  files.delete(norm(from));
  files.set(norm(to), e);
  changed(to);
}

export function unlinkSync(path: string): void {
  if (!files.delete(norm(path))) throw fsError('ENOENT', 'unlink', path);
  changed(path);
}

export function linkSync(existing: string, path: string): void {
  if (files.has(norm(path))) throw fsError('EEXIST', 'link', path);
  put(path, entry(existing, 'link').data.slice(), entry(existing, 'link').mode);
}

const descriptors = new Map<number, { path: string; chunks: Uint8Array[]; mode: number; write: boolean }>();
let nextFd = 3;

export function openSync(path: string, flags: string, mode = 0o666): number {
  const p = norm(path);
  const write = flags.includes('w');
  if (flags.includes('x') && files.has(p)) throw fsError('EEXIST', 'open', path);
  if (!write && !files.has(p) && !dirs.has(p)) throw fsError('ENOENT', 'open', path);
  if (write) put(p, new Uint8Array(0), mode);
  const fd = nextFd++;
  descriptors.set(fd, { path: p, chunks: [], mode, write });
  return fd;
}

export function writeSync(fd: number, data: Uint8Array | string, offset = 0, length?: number): number {
  const d = descriptors.get(fd);
  if (d === undefined) throw fsError('EBADF', 'write', String(fd));
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data.subarray(offset, offset + (length ?? data.length - offset));
  d.chunks.push(bytes.slice());
  return bytes.length;
}

export function fchmodSync(fd: number, mode: number): void {
  const d = descriptors.get(fd);
  if (d !== undefined) d.mode = mode;
}

export function fsyncSync(_fd: number): void {}

export function closeSync(fd: number): void {
  const d = descriptors.get(fd);
  descriptors.delete(fd);
  if (d === undefined || !d.write) return;
  const all = new Uint8Array(d.chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of d.chunks) {
    all.set(c, at);
    at += c.length;
  }
  put(d.path, all, d.mode);
}

/** A one-chunk stream: `for await (const chunk of createReadStream(path))`. */
export function createReadStream(path: string) {
  return {
    async *[Symbol.asyncIterator]() {
      yield Buffer.from((await loaded(path, 'open')).data);
    },
  };
}

// ---------------------------------------------------------------- promise API

export const promises = {
  async readFile(path: string, encoding?: unknown): Promise<string | Buffer> {
    return decode((await loaded(path, 'open')).data, encoding);
  },
  async writeFile(path: string, data: string | Uint8Array): Promise<void> {
    writeFileSync(path, data);
  },
  async access(path: string): Promise<void> {
    if (!existsSync(path)) throw fsError('ENOENT', 'access', path);
  },
  async mkdir(path: string): Promise<void> {
    mkdirSync(path);
  },
  async stat(path: string) {
    return statSync(path);
  },
  async rename(from: string, to: string): Promise<void> {
    await loaded(from, 'rename');
    renameSync(from, to);
  },
  async rm(path: string): Promise<void> {
    files.delete(norm(path));
    changed(path);
  },
  async open(path: string, _flags = 'r') {
    const e = await loaded(path, 'open');
    return {
      async read(buffer: Uint8Array, offset: number, length: number, position: number) {
        const part = e.data.subarray(position, Math.min(e.data.length, position + length));
        buffer.set(part, offset);
        return { bytesRead: part.length, buffer };
      },
      async stat() {
        return { size: e.data.length };
      },
      async close() {},
    };
  },
};

export default { mkdirSync, existsSync, statSync, chmodSync, readFileSync, writeFileSync, renameSync, unlinkSync, linkSync, openSync, writeSync, fchmodSync, fsyncSync, closeSync, createReadStream, promises };
