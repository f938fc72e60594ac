/**
 * The bytes a client signs to prove it holds its enrolled Ed25519 key. Binding the job, the
 * coordinator's challenge nonce and the client's own key means a signature cannot be replayed
 * on another connection, job or key.
 */

/** Domain separation: no other fedlora signature can be mistaken for an auth signature. */
export const AUTH_DOMAIN = 'fedlora-auth-v1';

/**
 * UTF-8 of `fedlora-auth-v1\n<jobId>\n<nonce base64>\n<signPublicKey base64>`.
 * @param jobId the job of the hello
 * @param nonce the challenge's nonce, exactly as received (base64)
 * @param signPublicKey the hello's signPublicKey (base64)
 */
export function authMessage(jobId: string, nonce: string, signPublicKey: string): Uint8Array {
  return new TextEncoder().encode(`${AUTH_DOMAIN}\n${jobId}\n${nonce}\n${signPublicKey}`);
}
