/**
 * TLS session resumption state shared by every TLS listener of a server: the session ticket
 * keys (TLS 1.2 and 1.3) and the bounded server-side session-ID cache (TLS 1.2, memcached's
 * `-o ssl_session_cache`).
 *
 * Not for: handshakes and listeners (tls.ts), the private Node hook that lets several ticket
 * keys be live at once (node-internals.ts).
 *
 * Ticket keys, with rotation period P (settings.tlsTicketKeyRotationSeconds):
 *
 *   time ──►  |── key 1 encrypts ──|── key 2 encrypts ──|── key 3 encrypts ──|
 *             |                    |── key 1 decrypts ──|── key 2 decrypts ──|
 *
 * A ticket issued at any moment stays decryptable for at least P, so with P at least the
 * session lifetime no ticket dies early. A ticket opened with the previous key is accepted and
 * replaced by a fresh one (OpenSSL's "renew").
 *
 * Session cache: Map insertion order is also expiry order (one lifetime for all entries), so
 * eviction and expiry both take from the front. Bounded by entries and by bytes. Under -t N
 * there is one cache, thread 0's: the worker threads store into it and look sessions up
 * in it over a message port (RemoteSessionCache, serveSessionCache), so a TLS 1.2 session
 * resumes by ID on whichever thread the client's next connection lands.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { MessagePort } from 'node:worker_threads';
import { installTicketKeyCallback, TICKET_PART_BYTES, type TicketKeyAnswer } from './node-internals';

interface TicketKey {
  readonly name: Buffer;
  readonly hmacKey: Buffer;
  readonly aesKey: Buffer;
}

const UNUSED_IV = Buffer.alloc(TICKET_PART_BYTES);

function newTicketKey(): TicketKey {
  return {
    name: crypto.randomBytes(TICKET_PART_BYTES),
    hmacKey: crypto.randomBytes(TICKET_PART_BYTES),
    aesKey: crypto.randomBytes(TICKET_PART_BYTES),
  };
}

/** A ring's keys as bytes (name, HMAC key, AES key each), for another serving thread. */
export interface TicketKeyState {
  readonly current: Uint8Array;
  readonly previous: Uint8Array | null;
}

function keyBytes(k: TicketKey): Buffer {
  return Buffer.concat([k.name, k.hmacKey, k.aesKey]);
}

function keyFrom(b: Uint8Array): TicketKey {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return {
    name: Buffer.from(buf.subarray(0, TICKET_PART_BYTES)),
    hmacKey: Buffer.from(buf.subarray(TICKET_PART_BYTES, 2 * TICKET_PART_BYTES)),
    aesKey: Buffer.from(buf.subarray(2 * TICKET_PART_BYTES, 3 * TICKET_PART_BYTES)),
  };
}

/** The current ticket key, which encrypts, and the previous one, which still decrypts. */
export class TicketKeyRing {
  /** The keys, for the worker threads (a ticket sealed on one thread opens on any). */
  exportKeys(): TicketKeyState {
    return { current: keyBytes(this.current), previous: this.previous === null ? null : keyBytes(this.previous) };
  }

  /** Take thread 0's keys (a worker thread never rotates on its own). */
  importKeys(state: TicketKeyState): void {
    this.current = keyFrom(state.current);
    this.previous = state.previous === null ? null : keyFrom(state.previous);
    this.rotations++;
  }

  /** Times rotate() ran. */
  rotations = 0;
  private current: TicketKey = newTicketKey();
  private previous: TicketKey | null = null;

  rotate(): void {
    this.previous = this.current;
    this.current = newTicketKey();
    this.rotations++;
  }

  /** Which key seals a new ticket, or opens one labelled `name` (node-internals' contract). */
  answer(name: Buffer, encrypt: boolean): TicketKeyAnswer {
    const cur = this.current;
    if (encrypt) {
      return { result: 1, hmacKey: cur.hmacKey, aesKey: cur.aesKey, name: cur.name, iv: crypto.randomBytes(TICKET_PART_BYTES) };
    }
    if (name.equals(cur.name)) return { result: 1, hmacKey: cur.hmacKey, aesKey: cur.aesKey, name: cur.name, iv: UNUSED_IV };
    const prev = this.previous;
    if (prev !== null && name.equals(prev.name)) {
      return { result: 2, hmacKey: prev.hmacKey, aesKey: prev.aesKey, name: prev.name, iv: UNUSED_IV };
    }
    // Unknown (older, or another server's) key: full handshake. The keys must still be there.
    return { result: 0, hmacKey: cur.hmacKey, aesKey: cur.aesKey, name: cur.name, iv: UNUSED_IV };
  }

  /** The current key as tls.Server#setTicketKeys() takes it (the one-key fallback). */
  currentAsTicketKeys(): Buffer {
    const cur = this.current;
    return Buffer.concat([cur.name, cur.hmacKey, cur.aesKey]);
  }
}

/** DER SSL_SESSION: SEQUENCE { INTEGER version, INTEGER protocol version, ... }. */
const DER_SEQUENCE = 0x30;
const DER_INTEGER = 0x02;
const TLS1_3_VERSION = 0x0304;

/** The protocol version inside a serialized SSL_SESSION, or -1 when it cannot be read. */
export function sessionProtocolVersion(der: Buffer): number {
  if (der.length < 8 || der[0] !== DER_SEQUENCE) return -1;
  let pos = 2;
  if (der[1] & 0x80) pos += der[1] & 0x7f;
  if (pos + 2 > der.length || der[pos] !== DER_INTEGER) return -1;
  pos += 2 + der[pos + 1];
  if (pos + 2 > der.length || der[pos] !== DER_INTEGER) return -1;
  const length = der[pos + 1];
  if (length < 1 || length > 3 || pos + 2 + length > der.length) return -1;
  let version = 0;
  for (let i = 0; i < length; i++) version = version * 256 + der[pos + 2 + i];
  return version;
}

interface CachedSession {
  readonly data: Buffer;
  readonly expiresMs: number;
  readonly bytes: number;
}

/** Bytes charged per entry on top of the session itself (key string, Map slot, object). */
const ENTRY_OVERHEAD_BYTES = 160;

/** memcached's ssl_session_cache: sessions by ID, for TLS 1.2 clients that resume without tickets. */
export class SessionCache {
  private readonly entries = new Map<string, CachedSession>();
  private bytesUsed = 0;

  constructor(
    private readonly entriesMax: number,
    private readonly bytesMax: number,
    private readonly lifetimeMs: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    if (!(entriesMax >= 1 && bytesMax >= 1 && lifetimeMs >= 1)) {
      throw new Error(`invalid session cache bounds ${entriesMax} entries, ${bytesMax} bytes, ${lifetimeMs} ms`);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.bytesUsed;
  }

  /**
   * Keep a session from 'newSession'. TLS 1.3 sessions are not kept: they resume by ticket,
   * never by ID, and Node reports every ticket it issues.
   */
  store(id: Buffer, data: Buffer): void {
    if (sessionProtocolVersion(data) === TLS1_3_VERSION) return;
    const bytes = data.length + 2 * id.length + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.bytesMax) return;
    const key = id.toString('hex');
    this.remove(key);
    this.entries.set(key, { data, expiresMs: this.nowMs() + this.lifetimeMs, bytes });
    this.bytesUsed += bytes;
    this.trim();
  }

  /** The session for 'resumeSession', or null (unknown or expired). */
  lookup(id: Buffer): Buffer | null {
    const key = id.toString('hex');
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    if (entry.expiresMs <= this.nowMs()) {
      this.remove(key);
      return null;
    }
    return entry.data;
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.bytesUsed -= entry.bytes;
  }

  /** Drop expired entries, then the oldest ones while over a bound. */
  private trim(): void {
    const now = this.nowMs();
    for (const [key, entry] of this.entries) {
      const over = this.entries.size > this.entriesMax || this.bytesUsed > this.bytesMax;
      if (!over && entry.expiresMs > now) break;
      this.remove(key);
    }
  }
}

/** What a TLS service keeps sessions in: thread 0's cache, or (other threads) a way to it. */
export interface SessionStore {
  /** Entries held here (0 on a thread that asks thread 0's cache). */
  readonly size: number;
  store(id: Buffer, data: Buffer): void;
  /** `done` gets the session or null (unknown, expired, or no answer in time). */
  lookup(id: Buffer, done: (data: Buffer | null) => void): void;
}

/** Thread 0's cache as a SessionStore. */
export class LocalSessionStore implements SessionStore {
  constructor(readonly cache: SessionCache) {}

  get size(): number {
    return this.cache.size;
  }

  store(id: Buffer, data: Buffer): void {
    this.cache.store(id, data);
  }

  lookup(id: Buffer, done: (data: Buffer | null) => void): void {
    done(this.cache.lookup(id));
  }
}

/** Messages on a session port (structured clones: buffers arrive as Uint8Arrays). */
type SessionRequest =
  | { readonly kind: 'store'; readonly id: Uint8Array; readonly data: Uint8Array }
  | { readonly kind: 'lookup'; readonly seq: number; readonly id: Uint8Array };
interface SessionReply {
  readonly seq: number;
  readonly data: Uint8Array | null;
}

/** A lookup thread 0 has not answered within this long resumes nothing (a full handshake). */
export const REMOTE_SESSION_LOOKUP_TIMEOUT_MS = 1000;

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** A worker thread: thread 0's session cache, over `port`. */
export class RemoteSessionCache implements SessionStore {
  readonly size = 0;
  private seq = 0;
  private readonly pending = new Map<number, { done: (data: Buffer | null) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly port: MessagePort) {
    port.on('message', (m: SessionReply) => this.answer(m.seq, m.data === null ? null : asBuffer(m.data)));
    port.unref();
  }

  store(id: Buffer, data: Buffer): void {
    const msg: SessionRequest = { kind: 'store', id, data };
    this.port.postMessage(msg);
  }

  lookup(id: Buffer, done: (data: Buffer | null) => void): void {
    const seq = ++this.seq;
    const timer = setTimeout(() => this.answer(seq, null), REMOTE_SESSION_LOOKUP_TIMEOUT_MS);
    timer.unref();
    this.pending.set(seq, { done, timer });
    const msg: SessionRequest = { kind: 'lookup', seq, id };
    this.port.postMessage(msg);
  }

  private answer(seq: number, data: Buffer | null): void {
    const p = this.pending.get(seq);
    if (p === undefined) return;
    this.pending.delete(seq);
    clearTimeout(p.timer);
    p.done(data);
  }
}

/** Thread 0: answer another serving thread's stores and lookups on `port` from `cache`. */
export function serveSessionCache(port: MessagePort, cache: SessionCache): void {
  port.on('message', (m: SessionRequest) => {
    if (m.kind === 'store') {
      cache.store(asBuffer(m.id), asBuffer(m.data));
      return;
    }
    const found = cache.lookup(asBuffer(m.id));
    const reply: SessionReply = { seq: m.seq, data: found };
    port.postMessage(reply);
  });
  port.unref();
}

const PROBE_TIMEOUT_MS = 3000;
const LOOPBACK = '127.0.0.1';

/**
 * Check once, over loopback with the server's own certificate, that the ticket key hook of
 * node-internals works: a session sealed with one key must resume after a rotation (so the
 * previous key opened it). Resolves false, never rejects.
 */
export function probeTicketKeyRing(serverOptions: tls.TlsOptions, clientOptions: tls.ConnectionOptions): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const ring = new TicketKeyRing();
    let opened = 0;
    const server = tls.createServer({ ...serverOptions, requestCert: false, rejectUnauthorized: false });
    const sockets: net.Socket[] = [];
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      server.close();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), PROBE_TIMEOUT_MS);
    const installed = installTicketKeyCallback(server, (name, encrypt) => {
      const a = ring.answer(name, encrypt);
      if (!encrypt && a.result !== 0) opened++;
      return a;
    });
    if (!installed) {
      finish(false);
      return;
    }
    server.on('secureConnection', (s: tls.TLSSocket) => {
      sockets.push(s);
      s.on('error', () => undefined);
      s.on('data', () => s.write('p'));
    });
    server.on('tlsClientError', () => finish(false));
    server.on('error', () => finish(false));
    const connect = (port: number, session: Buffer | undefined, then: (reused: boolean, s: Buffer | null) => void): void => {
      let seen: Buffer | null = null;
      let reused = false;
      const c = tls.connect({ ...clientOptions, host: LOOPBACK, port, session, rejectUnauthorized: false });
      sockets.push(c);
      c.on('secureConnect', () => {
        reused = c.isSessionReused();
        c.write('p');
      });
      c.on('session', (s: Buffer) => {
        seen ??= s;
      });
      c.on('error', () => finish(false));
      // One round trip, then the client closes: by then it has read its tickets.
      c.on('data', () => c.end());
      c.on('close', () => then(reused, seen));
    };
    server.listen({ host: LOOPBACK, port: 0 }, () => {
      const port = (server.address() as net.AddressInfo).port;
      connect(port, undefined, (_reused, session) => {
        if (session === null) return finish(false);
        ring.rotate();
        connect(port, session, (reused) => finish(reused && opened > 0));
      });
    });
  });
}
