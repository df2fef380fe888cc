/**
 * The one place that touches private Node.js fields.
 *
 * Why: a socket built as `new net.Socket({ handle, onread })` reads into one static buffer per
 * connection (no Buffer per read), which DESIGN.md decision 1 measured as the fast path. Node
 * ignores `onread` for sockets a `net.Server` accepts, so the accepted socket's private
 * `_handle` is moved into a new Socket built with `onread`. Everything here is checked:
 * `probeOnread()` runs the whole move over loopback once at startup, and `detachHandle()`
 * checks the handle's shape on every accept; when either fails, callers fall back to plain
 * `'data'` events, which are slower but public API.
 *
 * Not for: anything else private. Keep this file small.
 */
import * as net from 'node:net';

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
 * Build a socket that reads into `readBuf` and calls `onBytes(count)` per read. Returning false
 * from `onBytes` stops reading (libuv readStop) until `socket.resume()`.
 */
export function socketWithReadBuffer(
  handle: OpaqueHandle,
  readBuf: Buffer,
  onBytes: (count: number) => boolean,
): net.Socket {
  const options = {
    handle,
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
