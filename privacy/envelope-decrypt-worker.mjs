// Worker thread of privacy/envelope-opener.ts: runs tweetnacl's crypto_box_open (pure JS, the
// slow part of opening an envelope) off the main thread. Plain JavaScript so it loads in any
// runner without a TypeScript loader. Receives {id, boxed, nonce, ephemeralPublicKey, secretKey}
// (boxed: the ciphertext after 16 scratch bytes, as crypto_box_open takes it) and answers
// {id, plain} with crypto_box_open's whole output (32 zero bytes first), or {id, plain: null}
// when the box does not authenticate.
import { parentPort } from 'node:worker_threads';
import nacl from 'tweetnacl';

const cryptoBoxOpen = nacl.lowlevel.crypto_box_open;

parentPort.on('message', ({ id, boxed, nonce, ephemeralPublicKey, secretKey }) => {
  const plain = new Uint8Array(boxed.length);
  if (cryptoBoxOpen(plain, boxed, boxed.length, nonce, ephemeralPublicKey, secretKey) === 0) {
    parentPort.postMessage({ id, plain }, [plain.buffer]);
  } else {
    parentPort.postMessage({ id, plain: null });
  }
});
