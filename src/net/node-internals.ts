/**
 * The one place that touches private Node.js fields.
 *
 * Why: a socket built as `new net.Socket({ handle, onread })` reads into one static buffer per
 * connection (no Buffer per read): the fast path, see doc/network.md ("Reading into a static
 * buffer"). Node
 * ignores `onread` for sockets a `net.Server` accepts, so the accepted socket's private
 * `_handle` is moved into a new Socket built with `onread`. Everything here is checked:
 * `probeOnread()` runs the whole move over loopback once at startup, and `detachHandle()`
 * checks the handle's shape on every accept; when either fails, callers fall back to plain
 * `'data'` events, which are slower but public API.
 *
 * The second private use: several session ticket keys at once (installTicketKeyCallback).
 * The third: a listening server's descriptor, for TCP_FASTOPEN (listeningFd).
 * The fourth: the accepted socket under a server-side TLS socket (tlsRawSocket), to tell which
 * connection a handshake error belongs to once the peer is gone.
 * The fifth: a server-side TLS socket reading its decrypted bytes into a static buffer
 * (readTlsIntoBuffer), the `onread` path for TLS, which Node offers only to TLS clients, and
 * writing straight to its TLS handle (SerialWriter).
 * The sixth: a bound UDP socket's descriptor (udpSocketFd), duplicated for each further
 * serving thread as memcached duplicates its UDP socket for each worker.
 * The seventh: accepted connections taken from the listening handle's `onconnection` callback
 * before Node builds a net.Socket for them (interceptAccepts): a socket per connection fewer
 * for connections served at once or handed to another thread (doc/network.md, "Connections").
 *
 * Not for: anything else private. Keep this file small.
 */
import type * as dgram from 'node:dgram';
import * as net from 'node:net';
import type * as tls from 'node:tls';

/** A libuv stream handle (TCP or Pipe) taken from an accepted socket; opaque outside this file. */
export interface OpaqueHandle {
  readonly __opaqueStreamHandle: unique symbol;
}

interface PrivateSocketFields {
  _handle: unknown;
}

interface StreamHandleShape {
  readStart: unknown;
  readStop: unknown;
  useUserBuffer: unknown;
}

function looksLikeStreamHandle(h: unknown): boolean {
  if (h === null || typeof h !== 'object') return false;
  const shape = h as StreamHandleShape;
  return typeof shape.readStart === 'function' && typeof shape.readStop === 'function' &&
    typeof shape.useUserBuffer === 'function';
}

/**
 * Offer each connection `server` accepts to `take` as a bare handle, not reading yet, with
 * TCP_NODELAY and SO_KEEPALIVE set as the server's `noDelay` and `keepAlive` would (every
 * listener here sets both) unless `inherited` says the listening socket has them, which
 * Linux copies to each accepted socket. `take` returns true when it took the handle;
 * otherwise (and for an accept error, or a handle of another shape) Node's own callback
 * builds the socket and emits 'connection' as usual. Call once the server listens. Returns
 * false, changing nothing, when the listening handle is not what we expect.
 */
export function interceptAccepts(server: net.Server, take: (handle: OpaqueHandle) => boolean, inherited = false): boolean {
  const listening = (server as unknown as PrivateSocketFields)._handle as { onconnection?: unknown } | null;
  if (listening === null || typeof listening !== 'object' || typeof listening.onconnection !== 'function') return false;
  const original = listening.onconnection as (this: unknown, err: unknown, clientHandle: unknown) => void;
  listening.onconnection = function onconnection(this: unknown, err: unknown, clientHandle: unknown): void {
    if (!err && looksLikeStreamHandle(clientHandle)) {
      if (!inherited) {
        const h = clientHandle as { setNoDelay?: (on: boolean) => void; setKeepAlive?: (on: boolean, delaySeconds: number) => void };
        if (typeof h.setNoDelay === 'function') h.setNoDelay(true);
        if (typeof h.setKeepAlive === 'function') h.setKeepAlive(true, 0);
      }
      if (take(clientHandle as OpaqueHandle)) return;
    }
    original.call(this, err, clientHandle);
  };
  return true;
}

/**
 * A bare accepted handle (interceptAccepts) goes to another thread: a copy of its descriptor
 * (native addon), this thread's handle closed. Null (handle untouched) when it has no
 * descriptor.
 */
export function handOffHandle(handle: OpaqueHandle, duplicate: (fd: number) => number): number | null {
  if (!hasDescriptor(handle)) return null;
  const h = handle as unknown as { fd: number; close(): void };
  const copy = duplicate(h.fd);
  h.close();
  return copy;
}

/** A stream handle with a descriptor this thread can copy and close. */
function hasDescriptor(handle: unknown): boolean {
  if (!looksLikeStreamHandle(handle)) return false;
  const h = handle as { fd?: unknown; close?: unknown };
  return typeof h.fd === 'number' && h.fd >= 0 && typeof h.close === 'function';
}

/**
 * Take the handle out of a socket accepted with `pauseOnConnect: true` (so it is not reading
 * yet). The emptied socket is destroyed: with no handle that closes nothing, but it tells its
 * server the connection is gone, so `server.close()` does not wait for it forever.
 * Returns null (socket untouched) when the private field is not what we expect.
 */
export function detachHandle(accepted: net.Socket): OpaqueHandle | null {
  const fields = accepted as unknown as PrivateSocketFields;
  const handle = fields._handle;
  if (!looksLikeStreamHandle(handle)) return null;
  fields._handle = null;
  accepted.destroy();
  return handle as OpaqueHandle;
}

/**
 * Hand an accepted connection (pauseOnConnect, not reading) to another thread: a copy of its
 * descriptor (native addon), this thread's handle closed. Returns null (socket untouched) when
 * the handle is not what we expect.
 */
export function handOffDescriptor(accepted: net.Socket, duplicate: (fd: number) => number): number | null {
  const copy = handOffHandle((accepted as unknown as PrivateSocketFields)._handle as OpaqueHandle, duplicate);
  if (copy === null) return null;
  // The handle is closed: the emptied socket only tells its server the connection is gone.
  detachHandle(accepted);
  return copy;
}

/**
 * A socket over a descriptor another thread accepted (handOffDescriptor), not reading yet: as
 * an accepted socket with pauseOnConnect, for the Acceptor.
 */
export function adoptDescriptor(fd: number, allowHalfOpen: boolean): net.Socket {
  const options = { fd, readable: true, writable: true, allowHalfOpen, pauseOnCreate: true };
  return new net.Socket(options as net.SocketConstructorOpts);
}

/** A connection's descriptor another thread accepted and handed over (handOffHandle). */
export interface AdoptedDescriptor {
  readonly descriptor: number;
}

/** The handle of a socket socketWithReadBuffer built (for directWriterFor); null if not found. */
export function handleOf(socket: net.Socket): OpaqueHandle | null {
  const handle = (socket as unknown as PrivateSocketFields)._handle;
  return looksLikeStreamHandle(handle) ? handle as OpaqueHandle : null;
}

/**
 * Build a socket that reads into `readBuf` and calls `onBytes(count)` per read. Returning false
 * from `onBytes` stops reading (libuv readStop) until `socket.resume()`.
 */
export function socketWithReadBuffer(
  source: OpaqueHandle | AdoptedDescriptor,
  readBuf: Buffer,
  onBytes: (count: number) => boolean,
): net.Socket {
  const options = {
    ...('descriptor' in source ? { fd: source.descriptor } : { handle: source }),
    allowHalfOpen: true,
    readable: true,
    writable: true,
    onread: { buffer: readBuf, callback: (count: number): boolean => onBytes(count) },
  };
  return new net.Socket(options as net.SocketConstructorOpts);
}

const PROBE_TIMEOUT_MS = 2000;
const PROBE_TEXT = 'memcached-ts onread probe';
let probeResult: Promise<boolean> | null = null;

/**
 * Check once per process, over a loopback TCP connection, that an accepted handle moved into an
 * `onread` socket delivers bytes into our buffer. Resolves false (never rejects) on any failure.
 */
export function probeOnread(): Promise<boolean> {
  if (probeResult === null) probeResult = runProbe();
  return probeResult;
}

function runProbe(): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const opened: net.Socket[] = [];
    const server = net.createServer({ pauseOnConnect: true });
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const s of opened) s.destroy();
      server.close();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), PROBE_TIMEOUT_MS);
    server.on('error', () => finish(false));
    server.on('connection', (shell: net.Socket) => {
      const handle = detachHandle(shell);
      if (handle === null) {
        opened.push(shell);
        finish(false);
        return;
      }
      const buf = Buffer.alloc(64);
      let received = '';
      const sock = socketWithReadBuffer(handle, buf, (count) => {
        received += buf.toString('latin1', 0, count);
        if (received === PROBE_TEXT) finish(true);
        return true;
      });
      opened.push(sock);
      sock.on('error', () => finish(false));
    });
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const addr = server.address() as net.AddressInfo;
      const client = net.connect(addr.port, '127.0.0.1', () => client.write(PROBE_TEXT));
      opened.push(client);
      client.on('error', () => finish(false));
    });
  });
}

// --- session ticket keys

/** Node's ticket key parts: key name, HMAC key (any length), AES-128 key, IV: 16 bytes each but HMAC. */
export const TICKET_PART_BYTES = 16;

/**
 * What OpenSSL is told about a ticket (Node's SecureContext::TicketKeyCallback contract):
 * encrypting, `name` and `iv` label the new ticket; decrypting, result 0 means "unknown key,
 * do a full handshake", 1 "accepted", 2 "accepted, issue a fresh ticket" (older key).
 * hmacKey and aesKey are required whatever the result: Node reads them before looking at it.
 */
export interface TicketKeyAnswer {
  readonly result: 0 | 1 | 2;
  readonly hmacKey: Buffer;
  readonly aesKey: Buffer;
  readonly name: Buffer;
  readonly iv: Buffer;
}

export type TicketKeyCallback = (name: Buffer, encrypt: boolean) => TicketKeyAnswer;

interface PrivateTlsServerFields {
  _sharedCreds?: { context?: PrivateSecureContext };
}

interface PrivateSecureContext {
  enableTicketKeyCallback?: unknown;
  onticketkeycallback?: unknown;
}

/**
 * Let `callback` choose the key of every session ticket a tls.Server issues or opens, so that
 * the current key encrypts while older keys still decrypt (the public `setTicketKeys()` holds
 * a single key). Uses the server's private `_sharedCreds.context`, the native SecureContext,
 * and its `enableTicketKeyCallback()` / `onticketkeycallback` pair, which Node's own tests
 * use. setSecureContext() builds a new context, so call this again after each one.
 * Returns false, changing nothing, when the private shape is not there.
 */
export function installTicketKeyCallback(server: tls.Server, callback: TicketKeyCallback): boolean {
  const context = (server as unknown as PrivateTlsServerFields)._sharedCreds?.context;
  if (context === undefined || context === null || typeof context.enableTicketKeyCallback !== 'function') return false;
  const enable = context.enableTicketKeyCallback as (this: PrivateSecureContext) => void;
  context.onticketkeycallback = (name: Buffer, _iv: Buffer, encrypt: boolean): unknown[] => {
    // Called from C++ inside OpenSSL: an exception here would be fatal. -1 fails this
    // handshake instead (Node returns before reading the other fields).
    try {
      const a = callback(name, encrypt);
      return [a.result, a.hmacKey, a.aesKey, a.name, a.iv];
    } catch {
      return [-1];
    }
  };
  enable.call(context);
  return true;
}

// --- listening socket descriptors

interface PrivateServerFields {
  _handle: unknown;
}

/**
 * The descriptor of a listening net.Server (Linux: `server._handle.fd`), for socket options
 * Node does not offer (TCP_FASTOPEN through the native addon). Null, changing nothing, when
 * the server is not listening or the private shape is not there; callers then report that
 * the option cannot be applied, so a Node.js change shows up as a startup error.
 */
export function listeningFd(server: net.Server): number | null {
  const handle = (server as unknown as PrivateServerFields)._handle;
  if (handle === null || typeof handle !== 'object') return null;
  const fd = (handle as { fd?: unknown }).fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/**
 * The descriptor of a bound dgram socket (Linux: the UDP handle's `fd`, kept under dgram's
 * private state symbol). Null when the shape is not there; the caller then serves UDP on one
 * thread and says so.
 */
export function udpSocketFd(socket: dgram.Socket): number | null {
  const key = Object.getOwnPropertySymbols(socket).find((sym) => sym.description === 'state symbol');
  if (key === undefined) return null;
  const state = (socket as unknown as Record<symbol, unknown>)[key];
  if (state === null || typeof state !== 'object') return null;
  const handle = (state as { handle?: unknown }).handle;
  if (handle === null || typeof handle !== 'object') return null;
  const fd = (handle as { fd?: unknown }).fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

// --- direct writes

interface WriteReq {
  oncomplete: ((status: number) => void) | null;
  buffer: Buffer | null;
  async: boolean;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

interface WritableHandle {
  writeBuffer(req: WriteReq, data: Buffer): number;
}

let streamWrap: StreamWrapBinding | null | undefined;

function streamWrapBinding(): StreamWrapBinding | null {
  if (streamWrap !== undefined) return streamWrap;
  streamWrap = null;
  try {
    const b = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> }).binding('stream_wrap');
    if (typeof b.WriteWrap === 'function' && b.streamBaseState instanceof Int32Array &&
      typeof b.kLastWriteWasAsync === 'number') {
      streamWrap = b as StreamWrapBinding;
    }
  } catch {
    streamWrap = null;
  }
  return streamWrap;
}

/**
 * Writes straight to a socket's libuv handle, skipping the Writable stream. When the kernel
 * takes every byte at once (the common case for a reply) nothing is allocated: the request
 * object is only bound to a native write when the write has to wait, and then a fresh one is
 * made for the next write. Node's `socket.write` costs a FastBuffer, a WriteWrap, state
 * updates and a nextTick per reply, which showed up as young-generation collections and tail
 * latency at pipeline 1.
 *
 * Ordering: use it only while the socket's own stream has nothing queued
 * (`writableLength === 0`); libuv keeps the order of writes on one handle, so later
 * `socket.write` calls still go out after pending direct writes.
 */
export class DirectWriter {
  /** Bytes of writes handed to libuv that have not completed. */
  pendingBytes = 0;
  private req: WriteReq;

  constructor(
    private readonly handle: WritableHandle,
    private readonly binding: StreamWrapBinding,
    private readonly onComplete: (status: number) => void,
  ) {
    this.req = this.newReq();
  }

  private newReq(): WriteReq {
    const req = new this.binding.WriteWrap();
    req.buffer = null;
    req.async = false;
    req.oncomplete = (status: number): void => {
      this.pendingBytes -= req.buffer === null ? 0 : req.buffer.length;
      req.buffer = null;
      this.onComplete(status);
    };
    return req;
  }

  /** 0: all written now; 1: queued in libuv (`data` stays referenced until done); < 0: errno. */
  write(data: Buffer): number {
    const req = this.req;
    const err = this.handle.writeBuffer(req, data);
    if (err !== 0) return err < 0 ? err : -err;
    if (this.binding.streamBaseState[this.binding.kLastWriteWasAsync] === 0) return 0;
    req.async = true;
    req.buffer = data;
    this.pendingBytes += data.length;
    this.req = this.newReq();
    return 1;
  }
}

/** A DirectWriter for an onread socket's handle, or null when the private API is not there. */
export function directWriterFor(handle: OpaqueHandle, onComplete: (status: number) => void): DirectWriter | null {
  const binding = streamWrapBinding();
  const h = handle as unknown as Partial<WritableHandle>;
  if (binding === null || typeof h.writeBuffer !== 'function') return null;
  return new DirectWriter(h as WritableHandle, binding, onComplete);
}

// --- the accepted socket under a TLS socket

interface PrivateTlsSocketFields {
  _parent: unknown;
}

/**
 * The net.Socket a tls.Server wrapped (handed over with `emit('connection', socket)`): Node
 * keeps it as the TLSSocket's private `_parent`. Null when that is not a net.Socket; callers
 * then match by address, which fails only for peers already gone.
 */
export function tlsRawSocket(sock: tls.TLSSocket): net.Socket | null {
  const parent = (sock as unknown as PrivateTlsSocketFields)._parent;
  return parent instanceof net.Socket ? parent : null;
}

// --- TLS sockets reading into a static buffer

type SymbolFields = Record<symbol, unknown>;

/** net.Socket's private symbols for `onread` (kBuffer, kBufferCb, kBufferGen), found by name. */
function onreadSymbols(sock: net.Socket): { buffer: symbol; callback: symbol; gen: symbol } | null {
  let buffer: symbol | undefined;
  let callback: symbol | undefined;
  let gen: symbol | undefined;
  for (const sym of Object.getOwnPropertySymbols(sock)) {
    if (sym.description === 'kBuffer') buffer = sym;
    else if (sym.description === 'kBufferCb') callback = sym;
    else if (sym.description === 'kBufferGen') gen = sym;
  }
  return buffer === undefined || callback === undefined || gen === undefined ? null : { buffer, callback, gen };
}

/**
 * Make a server-side TLS socket (handshake done) deliver its decrypted bytes into `readBuf`,
 * calling `onBytes(count)` per read, as a socket built with `onread` does: its TLS handle is a
 * stream that takes a user buffer (`useUserBuffer`), and net's read callback hands a socket
 * with `kBuffer` set to `kBufferCb` instead of pushing a new Buffer into the stream. Node
 * accepts `onread` only for TLS sockets it creates itself (clients), so the fields are set
 * here. Returning false from `onBytes` stops reading until `socket.resume()`; the TLS layer
 * may still deliver what it already decrypted, into the same buffer (the caller must copy a
 * held chunk out before returning). Bytes decrypted before this call wait in the stream and
 * are read with `socket.read()`. False, changing nothing, when the private shape is not
 * there: the caller then uses 'data' events.
 */
export function readTlsIntoBuffer(sock: tls.TLSSocket, readBuf: Buffer, onBytes: (count: number) => boolean): boolean {
  const handle = (sock as unknown as PrivateSocketFields)._handle;
  if (!looksLikeStreamHandle(handle)) return false;
  const syms = onreadSymbols(sock);
  if (syms === null) return false;
  const fields = sock as unknown as SymbolFields;
  if (fields[syms.buffer] !== null || fields[syms.callback] !== null || fields[syms.gen] !== null) return false;
  fields[syms.buffer] = readBuf;
  fields[syms.callback] = (count: number): boolean => onBytes(count);
  (handle as { useUserBuffer(buf: Buffer): void }).useUserBuffer(readBuf);
  return true;
}

// --- TLS writes straight to the TLS handle

/**
 * Writes to a TLS socket's handle, skipping the Writable stream, one write at a time (Node's
 * TLS layer takes a single write in flight, and aborts the process on a second). The TLS
 * layer encrypts a write's bytes inside writeBuffer() (or copies what it cannot encrypt yet),
 * so the caller may reuse them as soon as write() returns, even while the write is in flight;
 * the completion (always later: the encrypted bytes go out asynchronously) is reported through
 * `onComplete`. The caller must cork the socket's own stream while a write is in flight.
 */
export class SerialWriter {
  /** A write has not completed: no other may start (inFlight), its length (pendingBytes). */
  inFlight = false;
  pendingBytes = 0;
  /**
   * Two request objects, used in turn: a request stays bound to its native write until its
   * completion callback has returned, and the next write is often made inside that callback.
   */
  private readonly reqs: [WriteReq, WriteReq];
  private turn = 0;

  constructor(
    private readonly handle: WritableHandle,
    private readonly binding: StreamWrapBinding,
    onComplete: (status: number) => void,
  ) {
    const make = (): WriteReq => {
      const req = new binding.WriteWrap();
      req.buffer = null;
      req.async = true;
      req.oncomplete = (status: number): void => {
        this.inFlight = false;
        this.pendingBytes = 0;
        onComplete(status);
      };
      return req;
    };
    this.reqs = [make(), make()];
  }

  /** 0: done now; 1: in flight (the bytes are taken); < 0: errno. */
  write(data: Buffer): number {
    if (this.inFlight) throw new Error('SerialWriter: a write is already in flight');
    const err = this.handle.writeBuffer(this.reqs[this.turn], data);
    if (err !== 0) return err < 0 ? err : -err;
    if (this.binding.streamBaseState[this.binding.kLastWriteWasAsync] === 0) return 0;
    this.turn ^= 1;
    this.inFlight = true;
    this.pendingBytes = data.length;
    return 1;
  }
}

/** A SerialWriter for a TLS socket's handle, or null when the private API is not there. */
export function serialWriterFor(sock: tls.TLSSocket, onComplete: (status: number) => void): SerialWriter | null {
  const binding = streamWrapBinding();
  const h = (sock as unknown as PrivateSocketFields)._handle as Partial<WritableHandle> | null;
  if (binding === null || h === null || typeof h !== 'object' || typeof h.writeBuffer !== 'function') return null;
  return new SerialWriter(h as WritableHandle, binding, onComplete);
}
