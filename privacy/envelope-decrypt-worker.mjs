// Worker thread of privacy/envelope-opener.ts: runs crypto_box_open (the slow part of opening an
// envelope) off the main thread, through libsodium (sodium-native) when it loads, else tweetnacl,
// as privacy/box.ts does. Plain JavaScript so it loads in any runner without a TypeScript loader.
// Receives {id, boxed, nonce, ephemeralPublicKey, secretKey} (boxed: the ciphertext after 16
// scratch bytes, as NaCl's crypto_box_open takes it) and answers {id, plain} with NaCl's whole
// output (32 zero bytes first), or {id, plain: null} when the box does not authenticate.
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import nacl from 'tweetnacl';

function loadSodium() {
  if (process.env.FEDLORA_CRYPTO === 'tweetnacl') return undefined;
  try {
    return createRequire(import.meta.url)('sodium-native');
  } catch {
    return undefined;
  }
}
const sodium = loadSodium();

function cryptoBoxOpen(plain, boxed, nonce, publicKey, secretKey) {
  if (boxed.length < 32) return false;
  if (sodium) return sodium.crypto_box_open_easy(plain.subarray(32), boxed.subarray(16), nonce, publicKey, secretKey);
  return nacl.lowlevel.crypto_box_open(plain, boxed, boxed.length, nonce, publicKey, secretKey) === 0;
}

parentPort.on('message', ({ id, boxed, nonce, ephemeralPublicKey, secretKey }) => {
  const plain = new Uint8Array(boxed.length);
  if (cryptoBoxOpen(plain, boxed, nonce, ephemeralPublicKey, secretKey)) {
    parentPort.postMessage({ id, plain }, [plain.buffer]);
  } else {
    parentPort.postMessage({ id, plain: null });
  }
});
