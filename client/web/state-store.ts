/**
 * The agent's state folder in the browser: the in-memory file system's `/state` (client keys,
 * coordinator pins, enrolment record; client/agent/state-folder.ts writes them as on Node) mirrored
 * to IndexedDB, so the keys stay in this browser and a reload resumes the enrolment.
 */
import { filesUnder, mountFile, onChange } from '../platform/browser/fs.js';

export const STATE_DIR = '/state';
const DB = 'fedlora-client';
const STORE = 'state';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB would not open'));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
  });
}

/** Loads the stored state into `/state` and mirrors every later change back; resolves once loaded. */
export async function mountState(): Promise<{ flush(): Promise<void> }> {
  const db = await open();
  const tx = db.transaction(STORE, 'readonly');
  const store = tx.objectStore(STORE);
  const keys = await new Promise<IDBValidKey[]>((resolve, reject) => {
    const r = store.getAllKeys();
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB read failed'));
  });
  const values = await new Promise<unknown[]>((resolve, reject) => {
    const r = store.getAll();
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB read failed'));
  });
  keys.forEach((k, i) => mountFile(String(k), values[i] as Uint8Array));
  let writing: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    writing = writing.then(async () => {
      const w = db.transaction(STORE, 'readwrite');
      const s = w.objectStore(STORE);
      s.clear();
      for (const f of filesUnder(STATE_DIR)) s.put(f.data, f.path);
      await done(w);
    });
    return writing;
  };
  onChange((path) => {
    if (path.startsWith(`${STATE_DIR}/`)) void flush();
  });
  return { flush };
}
