/**
 * NetContext: what every listener and connection of one server shares, built once at startup.
 */
import type { BindProtocol, Settings, TcpAccept, TlsVerifyMode } from '../settings';
import type { ServerStats } from '../metrics/stats';
import type { ConnectionInfo, SessionFactory } from '../protocol/session';
import type { BufferPool } from './buffer-pool';
import type { ConnectionRegistry } from './registry';

/** `level` is the -v count needed to see the message: 0 always, 1 for -v, 2 for -vv. */
export type LogFn = (level: number, msg: string) => void;

/** How connections read: the static-buffer `onread` path, or plain `'data'` events. */
export type ReadMode = 'onread' | 'data';

/** The listener a connection came from. */
export interface ConnectionOrigin {
  readonly transport: 'tcp' | 'unix';
  /** The unix socket path, for naming unix peers as memcached does. */
  readonly socketPath: string | null;
  /** -l proto[...] and tag[...] of the listener. */
  readonly protocol: BindProtocol | null;
  readonly tag: string | null;
  /** A TLS listener (-Z, not notls:): clients are served after the handshake, on 'data' events. */
  readonly tls: boolean;
  /** The ssl_verify_mode in effect on a TLS listener (btls:, mtls: or -o ssl_verify_mode); null: plain. */
  readonly tlsVerify: TlsVerifyMode | null;
  /** `stats conns` id of the listening socket (memcached logs accept-time TLS failures against it); set once bound. */
  listenerId: number;
}

export interface NetContext {
  /** Write replies straight to the socket handle when possible (false: always socket.write). */
  readonly directWrites?: boolean;
  readonly settings: Settings;
  readonly stats: ServerStats;
  readonly factory: SessionFactory;
  readonly registry: ConnectionRegistry;
  readonly log: LogFn;
  readonly readMode: ReadMode;
  /** Most bytes a connection may hold unconsumed (see pendingBytesMaxFor). */
  readonly pendingBytesMax: number;
  /** This thread's spare read buffers and output buffers (buffer-pool.ts). */
  readonly readBuffers: BufferPool;
  readonly outputBuffers: BufferPool;
  /**
   * The last closed connection of each kind (Connection.shapeKey), never used again; absent:
   * none kept. Its objects keep their hidden classes alive, and with them V8's optimized code
   * for the request path, which a full GC would otherwise discard once every connection of
   * that kind has closed (doc/network.md, "Code that survives the last client").
   */
  readonly shapeKeepers?: Map<string, object>;
  /** Told when a client connection opens and closes (`watch connevents`); absent: nobody. */
  readonly connectionEvents?: ConnectionEvents | null;
  /**
   * Several serving threads: TCP listeners are the native addon's sockets, bound first and
   * listened on later (see listeners.ts); `tcpAccept` says whether they share their port.
   */
  readonly bindFirst?: boolean;
  readonly tcpAccept?: TcpAccept;
  /**
   * Thread 0 of several: per accepted connection (unix, and TCP with -o tcp_accept=dispatch),
   * where it goes: a function that sends its descriptor to a worker thread, or null to serve
   * it here.
   */
  readonly handOff?: (origin: ConnectionOrigin) => ((fd: number) => void) | null;
  /**
   * Several serving threads: connections accepted by one thread and not yet taken by the thread
   * they were handed to (word 0), so -c counts them meanwhile.
   */
  readonly slotsInTransit?: Int32Array;
  /** Thread 0 of several: SO_REUSEPORT sockets bound here wait to listen until the others do. */
  readonly deferredTcp?: DeferredTcp[];
}

/** A bound socket waiting to listen (listeners.ts's PendingTcpListener). */
export interface DeferredTcp {
  readonly fd: number;
}

/** memcached's close reasons (conn_close's `reason=` in `watch connevents`). */
export type CloseReason = 'normal' | 'error' | 'idle_timeout' | 'shutdown';

/** Observer of client connections; `opened` and `closed` are called once per connection. */
export interface ConnectionEvents {
  opened(info: ConnectionInfo): void;
  closed(info: ConnectionInfo, reason: CloseReason): void;
  /** A TLS failure (memcached's conntlserr): `id` of the connection, or of the listener. */
  tlsError?(id: number, message: string): void;
}

/** Longest command line around a value (key, flags, exptime, bytes, cas, noreply). */
const VALUE_HEADER_BYTES_MAX = 4096;
/** Largest chunk one `'data'` event delivers (Node reads up to 64 KiB at a time). */
export const DATA_EVENT_BYTES_MAX = 64 * 1024;

/**
 * Hard cap on a connection's unconsumed bytes. Sessions leave unconsumed only an incomplete
 * request: a line (bounded by multigetLineBytesMax) or a storage command waiting for its value
 * (bounded by itemSizeMaxBytes, which -I can raise above the line limit). One more read
 * event's bytes arrive on top before the session sees them.
 */
export function pendingBytesMaxFor(s: Settings): number {
  const request = Math.max(s.multigetLineBytesMax, s.itemSizeMaxBytes + VALUE_HEADER_BYTES_MAX);
  return request + Math.max(s.readBufferBytes, DATA_EVENT_BYTES_MAX);
}

/** memcached -vv's connection event lines (memcached.c conn_new, conn_close). */
export const verboseLines = {
  listening(id: number, protocol: BindProtocol): string {
    return `<${id} server listening (${protocol === 'auto' ? 'auto-negotiate' : protocol})`;
  },
  udpListening(id: number): string {
    return `<${id} server listening (udp)`;
  },
  newClient(id: number, protocol: BindProtocol): string {
    if (protocol === 'auto') return `<${id} new auto-negotiating client connection`;
    return `<${id} new ${protocol} client connection.`;
  },
  closed(id: number): string {
    return `<${id} connection closed.`;
  },
  idle(id: number): string {
    return `Closing idle fd ${id}`;
  },
};
