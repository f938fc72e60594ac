/**
 * Files that hold keys and pins: written atomically (temp file + rename, or + link for create-once)
 * with mode 0600, and refused on load when other users could read or change them, as OpenSSH does
 * for private keys.
 */
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, fchmodSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { FedloraError } from '../shared/errors.js';

/** Mode of every file this module writes: read and write for the owner only. */
export const PRIVATE_FILE_MODE = 0o600;

/** Whether permission bits mean anything here (not on Windows, where ACLs decide). */
const POSIX = process.platform !== 'win32';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/** Sets mode 0600 on an open file, writes all of `data` and flushes it to disk. */
function writePrivately(fd: number, data: string | Uint8Array): void {
  if (POSIX) fchmodSync(fd, PRIVATE_FILE_MODE); // the umask may have cleared bits, never added: be explicit
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  fsyncSync(fd);
}

/** Writes `data` to a new temp file beside `path` (mode 0600, flushed to disk) and returns its name. */
function writeTemp(path: string, data: string | Uint8Array): string {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', PRIVATE_FILE_MODE);
  try {
    writePrivately(fd, data);
  } finally {
    closeSync(fd);
  }
  return temp;
}

/** Flushes a directory entry change (rename, link) to disk; best effort where unsupported. */
function syncDir(dir: string): void {
  if (!POSIX) return;
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some file systems refuse fsync on directories; the rename itself is still atomic
  }
}

function ioError(path: string, what: string, e: unknown): FedloraError {
  return new FedloraError('FL_ERR_IO', `${what} ${path}: ${(e as Error).message}`, { path }, { cause: e });
}

/**
 * Replaces `path` atomically with `data` at mode 0600: readers see the old file or the new one,
 * never a partial one, even after a crash.
 */
export function writePrivateFileAtomic(path: string, data: string | Uint8Array): void {
  let temp: string | undefined;
  try {
    temp = writeTemp(path, data);
    renameSync(temp, path);
    temp = undefined;
    syncDir(dirname(path));
  } catch (e) {
    throw ioError(path, 'cannot write', e);
  } finally {
    if (temp !== undefined) unlinkSafe(temp);
  }
}

/**
 * Creates `path` with `data` at mode 0600 only if it does not exist yet, atomically (a complete
 * temp file hard-linked into place). Two processes racing to create a key never both win.
 * @returns true when this call created the file, false when it already existed
 */
export function createPrivateFileOnce(path: string, data: string | Uint8Array): boolean {
  let temp: string | undefined;
  try {
    temp = writeTemp(path, data);
    try {
      linkSync(temp, path);
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(errno(e) ?? '')) throw e;
      // A file system without hard links: exclusive create (O_EXCL) still never replaces a file,
      // though a reader racing the write could see it partly written.
      return createExclusive(path, data);
    }
    syncDir(dirname(path));
    return true;
  } catch (e) {
    throw ioError(path, 'cannot create', e);
  } finally {
    if (temp !== undefined) unlinkSafe(temp);
  }
}

function createExclusive(path: string, data: string | Uint8Array): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', PRIVATE_FILE_MODE);
  } catch (e) {
    if (errno(e) === 'EEXIST') return false;
    throw e;
  }
  try {
    writePrivately(fd, data);
  } finally {
    closeSync(fd);
  }
  return true;
}

function unlinkSafe(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/**
 * Reads a file that must be private to its owner.
 * @param forbiddenBits permission bits that must be clear: 0o077 (no access for group or others)
 *   for secret keys; 0o022 (no writing by group or others) for files that are public but must not
 *   be altered, such as pins
 * @returns the contents, or undefined when the file does not exist
 * @throws FL_ERR_KEY_FILE when the file is not a regular file, is owned by another user, or has
 *   any of `forbiddenBits` set; FL_ERR_IO when it cannot be read
 */
export function readPrivateFile(path: string, forbiddenBits: number): string | undefined {
  let stat;
  try {
    stat = statSync(path);
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw ioError(path, 'cannot read', e);
  }
  if (!stat.isFile()) throw new FedloraError('FL_ERR_KEY_FILE', `${path} is not a regular file`, { path });
  if (POSIX) {
    const mode = stat.mode & 0o777;
    if ((mode & forbiddenBits) !== 0) {
      throw new FedloraError(
        'FL_ERR_KEY_FILE',
        `${path} has mode ${mode.toString(8).padStart(4, '0')}, which lets other users ${forbiddenBits & 0o044 ? 'read or change' : 'change'} it; run: chmod 600 ${path}`,
        { path, mode },
      );
    }
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw new FedloraError('FL_ERR_KEY_FILE', `${path} is owned by uid ${stat.uid}, not by this user (uid ${uid})`, { path });
    }
  }
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw ioError(path, 'cannot read', e);
  }
}
