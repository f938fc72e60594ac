/**
 * A man in the middle for the e2e tests: a TCP proxy on loopback between a real agent and a real
 * coordinator that forwards everything, and, when `tamper` is on, changes one byte of every binary
 * WebSocket message the coordinator sends (socket.io's binary attachments: the offer's state).
 * Server-to-client WebSocket frames are not masked (RFC 6455 5.1), so the proxy reads them as
 * they are: 2 header bytes, a 16- or 64-bit extended length, the payload.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TamperProxy {
  readonly url: string;
  /** Binary messages changed so far. */
  readonly tampered: number;
  close(): Promise<void>;
}

/** Reads server-to-client bytes: the HTTP upgrade answer as is, then frame by frame. */
class FrameRewriter {
  private buffer = Buffer.alloc(0);
  private inHeaders = true;
  constructor(private readonly onBinary: (payload: Buffer) => void) {}

  /** The bytes to forward now (whole frames; a partial frame waits for the rest). */
  push(chunk: Buffer): Buffer {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const out: Buffer[] = [];
    if (this.inHeaders) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return Buffer.alloc(0);
      out.push(this.buffer.subarray(0, end + 4));
      this.buffer = this.buffer.subarray(end + 4);
      this.inHeaders = false;
    }
    for (;;) {
      if (this.buffer.length < 2) break;
      const opcode = this.buffer[0]! & 0x0f;
      let length = this.buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buffer.length < 4) break;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buffer.length < 10) break;
        length = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buffer.length < offset + length) break;
      const frame = Buffer.from(this.buffer.subarray(0, offset + length));
      if (opcode === 0x2) this.onBinary(frame.subarray(offset));
      out.push(frame);
      this.buffer = this.buffer.subarray(offset + length);
    }
    return Buffer.concat(out);
  }
}

/**
 * Starts the proxy on a free loopback port, forwarding to `target` (`http://host:port`).
 * @param tamper change binary messages (else a transparent proxy, the control)
 */
export async function startTamperProxy(target: string, tamper: boolean): Promise<TamperProxy> {
  const upstream = new URL(target);
  let tampered = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const server = connect(Number(upstream.port), upstream.hostname);
    sockets.add(client).add(server);
    const rewriter = new FrameRewriter((payload) => {
      // The last 4 bytes of a state are the low byte first of its last F32 value: a small change
      // that still decodes (a finite number, the same shapes), so only a signature can tell.
      if (!tamper || payload.length < 16) return;
      payload[payload.length - 4]! ^= 0x01;
      tampered++;
    });
    client.on('data', (c: Buffer) => server.write(c));
    server.on('data', (c: Buffer) => {
      const out = rewriter.push(c);
      if (out.length > 0) client.write(out);
    });
    const end = (): void => {
      client.destroy();
      server.destroy();
    };
    client.on('close', end).on('error', end);
    server.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get tampered() {
      return tampered;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
