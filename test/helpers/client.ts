/**
 * A raw TCP client for protocol tests: send exact bytes, read until a predicate holds.
 *
 * Every read is bounded by a timeout; a read that times out or meets a closed connection
 * rejects with what was received so far, escaped, so a failing test shows the bytes.
 * Not for: parsing replies (see replies.ts) or normalising them.
 */

import * as net from 'node:net';
import { LOOPBACK } from './servers';

export const readTimeoutMsDefault = 5_000;
const connectTimeoutMsDefault = 3_000;
const shownBytesMax = 600;

/** Decides whether the bytes received so far form a complete answer. */
export type ReplyPredicate = (received: Buffer) => boolean;

/** Escapes bytes for messages: printable ASCII as is, the rest as \r, \n, \xNN. */
export function show(data: Buffer | string, bytesMax = shownBytesMax): string {
  const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  let out = '';
  const end = Math.min(buf.length, bytesMax);
  for (let i = 0; i < end; i++) {
    const b = buf[i];
    if (b === 0x0d) out += '\\r';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  if (buf.length > end) out += `... (${buf.length} bytes)`;
  return `"${out}"`;
}

/** Complete when the received bytes end with `suffix`. */
export function endsWith(suffix: string): ReplyPredicate {
  const tail = Buffer.from(suffix, 'latin1');
  return (received) =>
    received.length >= tail.length && received.subarray(received.length - tail.length).equals(tail);
}

/** Complete after `count` CRLF-terminated lines (only for replies without data blocks). */
export function lines(count: number): ReplyPredicate {
  return (received) => {
    let seen = 0;
    let from = 0;
    for (;;) {
      const at = received.indexOf('\r\n', from, 'latin1');
      if (at < 0) return false;
      seen++;
      if (seen >= count) return true;
      from = at + 2;
    }
  };
}

export class RawClient {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private socketError: Error | undefined;
  private wake: (() => void) | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (error) => {
      this.socketError = error;
      this.ended = true;
      this.notify();
    });
  }

  static async connect(port: number, host = LOOPBACK, timeoutMs = connectTimeoutMsDefault): Promise<RawClient> {
    return await new Promise<RawClient>((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RawClient(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** True once the peer closed (or reset) the connection. */
  get closed(): boolean {
    return this.ended;
  }

  /** Bytes received and not yet consumed by a read. */
  get pending(): Buffer {
    return this.buffered;
  }

  /** Writes bytes; resolves when handed to the kernel. Rejects if the socket is gone. */
  async send(data: Buffer | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    await new Promise<void>((resolve, reject) => {
      if (this.socket.destroyed) {
        reject(new Error('send on a closed connection'));
        return;
      }
      this.socket.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  /**
   * Waits until `predicate(received)` holds, then returns (and consumes) everything received.
   * Rejects on timeout or when the connection closes first, showing the bytes received.
   */
  async readUntil(predicate: ReplyPredicate, timeoutMs = readTimeoutMsDefault): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate(this.buffered)) {
        const out = this.buffered;
        this.buffered = Buffer.alloc(0);
        return out;
      }
      if (this.ended) {
        const reason = this.socketError ? ` (${this.socketError.message})` : '';
        throw new Error(`connection closed${reason} before the reply was complete; received ${show(this.buffered)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no complete reply within ${timeoutMs} ms; received ${show(this.buffered)}`);
      }
      await this.waitForEvent(left);
    }
  }

  /** Sends `request` and reads until `predicate` holds. */
  async request(request: Buffer | string, predicate: ReplyPredicate, timeoutMs = readTimeoutMsDefault): Promise<Buffer> {
    await this.send(request);
    return await this.readUntil(predicate, timeoutMs);
  }

  /** Sends a one-line command and returns its one-line reply as a string (CRLF stripped). */
  async line(request: string, timeoutMs = readTimeoutMsDefault): Promise<string> {
    const reply = await this.request(request, lines(1), timeoutMs);
    return reply.toString('latin1').replace(/\r\n$/, '');
  }

  /**
   * Waits up to `timeoutMs` for the peer to close. Returns whether it closed and every byte
   * received meanwhile (consumed).
   */
  async waitForClose(timeoutMs: number): Promise<{ closed: boolean; received: Buffer }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await this.waitForEvent(left);
    }
    const received = this.buffered;
    this.buffered = Buffer.alloc(0);
    return { closed: this.ended, received };
  }

  /** Collects whatever arrives during `ms` (for asserting that nothing arrives). */
  async drainFor(ms: number): Promise<Buffer> {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || this.ended) break;
      await this.waitForEvent(left);
    }
    const received = this.buffered;
    this.buffered = Buffer.alloc(0);
    return received;
  }

  private async waitForEvent(timeoutMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, timeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Connects, runs `body`, and always closes the connection. */
export async function withClient<T>(port: number, body: (client: RawClient) => Promise<T>, host = LOOPBACK): Promise<T> {
  const client = await RawClient.connect(port, host);
  try {
    return await body(client);
  } finally {
    client.close();
  }
}
