/**
 * The network layer's entry point: bind every listener the settings ask for, serve clients
 * through sessions from the factory, and stop (at once, or gracefully for SIGUSR1).
 *
 * Not for: signals, the CLI, the protocol. The caller (src/cli/) wires SIGUSR1 to
 * gracefulStop(), SIGTERM/SIGINT to close(), and SIGHUP and `refresh_certs` to
 * reloadCertificates().
 */
import type * as net from 'node:net';
import type { Settings, TcpAccept } from '../settings';
import type { ServerStats } from '../metrics/stats';
import type { ConnectionInfo, SessionFactory } from '../protocol/session';
import type { ConnectionOrigin } from './connection';
import { pendingBytesMaxFor, type ConnectionEvents, type LogFn, type NetContext, type ReadMode } from './context';
import {
  Acceptor, activateTcp, closeListener, dealtTcpOrigins, holdTcp, listenSharedTcp, listenTcp, listenUnix, sharedPendingTcp,
  type HeldTcpListener, type PendingTcpListener, type SharedTcpListener, type StreamListener,
} from './listeners';
import { closeDescriptor } from '../platform/descriptors';
import { probeOnread } from './node-internals';
import { ListenError } from './addresses';
import { BufferPool } from './buffer-pool';
import { OUTPUT_BASE_BYTES } from '../protocol/output';
import { ConnectionRegistry } from './registry';
import { TLS_NOT_ENABLED, TlsService, type TlsMaterial } from './tls';
import type { MessagePort } from 'node:worker_threads';
import type { SessionCache, TicketKeyState } from './tls-resumption';
import { listenSharedUdp, listenUdp, shareUdp, type SharedUdpSocket, type UdpEndpoint } from './udp';

export interface NetworkOptions {
  /**
   * Server-relative seconds, the clock `stats conns` and idle_timeout read
   * (ConnectionInfo.lastCommandTime). Default: whole seconds since startNetwork().
   */
  clockSeconds?: () => number;
  /** 'auto' (default): the onread path when the startup probe passes. 'data': always events. */
  readMode?: 'auto' | 'data';
  /** false: write every reply through socket.write (tests of the stream path). Default true. */
  directWrites?: boolean;
  /** Told when client connections open and close (the `watch connevents` stream). */
  connectionEvents?: ConnectionEvents;
  /** TLS certificate material read earlier (loadTlsMaterial, before -u); absent: read now. */
  tlsMaterial?: TlsMaterial;
  /**
   * Thread 0 of several threads: TCP listeners are bound now and listened on from handOver()
   * on (dispatch), or never (reuseport: the workers listen).
   */
  bindFirst?: boolean;
  /**
   * Several threads (-o tcp_accept): 'dispatch', thread 0 listens on its TCP sockets from
   * handOver() on and deals the connections out (dealTo); 'reuseport', it keeps them bound,
   * never listening, and each worker thread listens on sockets of its own on the same ports.
   */
  tcpAccept?: TcpAccept;
  /**
   * A worker thread: thread 0's TCP listeners (plain and TLS), which it listens on again
   * (tcpAccept 'reuseport') or whose connections thread 0 hands it ('dispatch'); and it serves
   * the UDP duplicates below. The unix socket stays with thread 0.
   */
  sharedTcp?: readonly SharedTcpListener[];
  /** A worker thread: duplicates of thread 0's UDP sockets to serve. */
  sharedUdp?: readonly SharedUdpSocket[];
  /** Several serving threads: connection ids come from this shared counter (unique per process). */
  connectionIds?: Int32Array;
  /** A worker thread: thread 0's session ticket keys (with `tlsMaterial`). */
  tlsTicketKeys?: TicketKeyState;
  /** A worker thread: the port to thread 0's TLS session-ID cache. */
  tlsSessionPort?: MessagePort;
  /**
   * Thread 0 of several: where the next accepted connection goes (unix, and TCP with
   * tcpAccept 'dispatch'): a function that sends its descriptor to a worker thread with the
   * listener it came in on (-1: the unix socket, else an index into sharedTcpListeners()) and
   * that listener's id; or null to serve it here.
   */
  dealTo?: () => ((fd: number, listener: number, listenerId: number) => void) | null;
  /** Several serving threads: the shared count of connections being handed over (see NetContext). */
  slotsInTransit?: Int32Array;
}

/** What another serving thread needs of this one's TLS: the material and the ticket keys. */
export interface TlsShare {
  readonly material: TlsMaterial;
  readonly keys: TicketKeyState;
}
export type { TicketKeyState };

export type { SharedTcpListener, SharedUdpSocket };

/** Whether -Z applies: memcached's -s replaces the TCP listeners, and -p 0 has none. */
export function tlsInEffect(s: Settings): boolean {
  return s.tlsEnabled && s.socketPath === null && s.tcpPort !== 0;
}

export interface NetworkAddresses {
  tcp: net.AddressInfo[];
  /** The TCP addresses served with TLS (-Z, not notls:): a subset of `tcp`. */
  tls: net.AddressInfo[];
  udp: net.AddressInfo[];
  unix: string | null;
}

export interface NetworkHandle {
  /** Which read path connections use (logged at startup). */
  readonly readMode: ReadMode;
  /**
   * Everything `stats conns` lists, in memcached's order: listening sockets (state
   * conn_listening), UDP sockets (conn_read), then clients. Items are NetConnectionInfo
   * (localName is memcached's listen_addr).
   */
  connections(): Iterable<ConnectionInfo>;
  addresses(): NetworkAddresses;
  /** memcached's `accepting_conns`: false while new clients wait (no_maxconns_fast). */
  acceptingConnections(): boolean;
  /** Unsent bytes queued on all client sockets. */
  writeBacklogBytes(): number;
  /** Closed connections' buffers kept for new ones (buffer-pool.ts), for tests and diagnostics. */
  spareBuffers(): { read: number; output: number };
  /** Thread 0 (with `bindFirst`): its TCP listeners, for the worker threads. */
  sharedTcpListeners(): SharedTcpListener[];
  /** Thread 0: duplicates of its UDP sockets for one worker thread. */
  sharedUdpSockets(): SharedUdpSocket[];
  /**
   * With `bindFirst`, thread 0 once the worker threads are up: listen on the bound TCP sockets
   * and deal their connections out (tcpAccept 'dispatch'), or keep them bound and listed,
   * never listening ('reuseport'); and stop serving UDP (the workers serve their duplicates).
   */
  handOver(): Promise<void>;
  /** The TLS material and ticket keys in use (null: no TLS listener here). */
  tlsShare(): TlsShare | null;
  /** Thread 0: its TLS session-ID cache, which the worker threads use (null: none). */
  tlsSessionCache(): SessionCache | null;
  /** Thread 0: told the new ticket keys after each rotation. */
  onTicketKeys(listener: (keys: TicketKeyState) => void): void;
  /** A worker thread: thread 0 reloaded its certificates or rotated its keys. */
  applyTls(update: { material?: TlsMaterial; keys?: TicketKeyState }): void;
  /**
   * A worker thread: serve a connection thread 0 accepted (its descriptor), on the listener
   * dealTo named (-1: the unix socket).
   */
  adopt(fd: number, listener: number, listenerId: number): void;
  /**
   * memcached's `refresh_certs` (and SIGHUP here): reload the TLS certificate, key and CA
   * files for new handshakes; open connections keep working. Returns null on success, else
   * memcached's error text without CRLF ("Error TLS not enabled" when -Z is off); on error the
   * previous certificates stay in use.
   */
  reloadCertificates(): string | null;
  /**
   * SIGUSR1: stop accepting, let each connection finish the requests it has already read and
   * flush their replies, then close everything. Connections still busy after `timeoutMs` are
   * closed anyway. (memcached stops accepting, lets workers finish the current event, then
   * closes all connections.)
   */
  gracefulStop(timeoutMs?: number): Promise<void>;
  /** Stop listening and close every connection now. */
  close(): Promise<void>;
}

const GRACEFUL_STOP_MS_DEFAULT = 10_000;

/** Relations between the settings this layer relies on; a violation is a startup error. */
function checkSettings(s: Settings): void {
  const fail = (what: string): never => {
    throw new Error(`invalid network settings: ${what}`);
  };
  const isCount = (v: number): boolean => Number.isSafeInteger(v) && v >= 1;
  if (!isCount(s.readBufferBytes)) fail(`readBufferBytes ${s.readBufferBytes}`);
  if (!Number.isSafeInteger(s.connectionBuffersSpareMax) || s.connectionBuffersSpareMax < 0) fail(`connectionBuffersSpareMax ${s.connectionBuffersSpareMax}`);
  if (!isCount(s.writeBacklogBytesMax)) fail(`writeBacklogBytesMax ${s.writeBacklogBytesMax}`);
  if (!isCount(s.multigetLineBytesMax)) fail(`multigetLineBytesMax ${s.multigetLineBytesMax}`);
  if (!isCount(s.connectionsMax)) fail(`connectionsMax ${s.connectionsMax}`);
  if (!Number.isSafeInteger(s.backlog) || s.backlog < 0) fail(`backlog ${s.backlog}`);
  if (!Number.isSafeInteger(s.idleTimeoutSeconds) || s.idleTimeoutSeconds < 0) fail(`idleTimeoutSeconds ${s.idleTimeoutSeconds}`);
  for (const [name, port] of [['tcpPort', s.tcpPort], ['udpPort', s.udpPort]] as const) {
    if (!Number.isSafeInteger(port) || port < -1 || port > 65535) fail(`${name} ${port}`);
  }
  if (s.socketAccessMask < 0 || s.socketAccessMask > 0o777) fail(`socketAccessMask ${s.socketAccessMask.toString(8)}`);
  if (s.tlsEnabled) {
    if (!isCount(s.tlsSessionCacheEntriesMax)) fail(`tlsSessionCacheEntriesMax ${s.tlsSessionCacheEntriesMax}`);
    if (!isCount(s.tlsSessionCacheBytesMax)) fail(`tlsSessionCacheBytesMax ${s.tlsSessionCacheBytesMax}`);
    if (!isCount(s.tlsSessionTimeoutSeconds)) fail(`tlsSessionTimeoutSeconds ${s.tlsSessionTimeoutSeconds}`);
    if (!isCount(s.tlsHandshakeTimeoutSeconds)) fail(`tlsHandshakeTimeoutSeconds ${s.tlsHandshakeTimeoutSeconds}`);
    // A ticket must stay decryptable for its whole lifetime: the key that sealed it lives for
    // between one and two rotation periods (tls-resumption.ts).
    if (!isCount(s.tlsTicketKeyRotationSeconds) || s.tlsTicketKeyRotationSeconds < s.tlsSessionTimeoutSeconds) {
      fail(`tlsTicketKeyRotationSeconds ${s.tlsTicketKeyRotationSeconds} must be at least tlsSessionTimeoutSeconds ${s.tlsSessionTimeoutSeconds}`);
    }
  }
}

export async function startNetwork(
  settings: Settings,
  stats: ServerStats,
  factory: SessionFactory,
  log: LogFn,
  options: NetworkOptions = {},
): Promise<NetworkHandle> {
  checkSettings(settings);
  const readMode = await chooseReadMode(options, log);
  const startMs = performance.now();
  const clockSeconds = options.clockSeconds ?? (() => Math.floor((performance.now() - startMs) / 1000));
  const registry = new ConnectionRegistry(stats, settings.idleTimeoutSeconds, clockSeconds);
  // Thread 0 dealing connections out: its TCP listeners' origins by their index in
  // sharedTcpListeners() (filled by handOver()).
  const dealIndex = new Map<ConnectionOrigin, number>();
  const dealTo = options.dealTo;
  const ctx: NetContext = {
    settings, stats, factory, registry, log, readMode, directWrites: options.directWrites !== false,
    pendingBytesMax: pendingBytesMaxFor(settings),
    readBuffers: new BufferPool(settings.readBufferBytes, settings.connectionBuffersSpareMax),
    outputBuffers: new BufferPool(OUTPUT_BASE_BYTES, settings.connectionBuffersSpareMax),
    shapeKeepers: new Map(),
    connectionEvents: options.connectionEvents ?? null,
    bindFirst: options.bindFirst === true || options.sharedTcp !== undefined,
    tcpAccept: options.tcpAccept,
    deferredTcp: options.bindFirst === true && options.sharedTcp === undefined ? [] : undefined,
    handOff: dealTo === undefined ? undefined : (origin) => {
      const listener = origin.transport === 'unix' ? -1 : dealIndex.get(origin);
      if (listener === undefined) return null;
      const send = dealTo();
      return send === null ? null : (fd) => send(fd, listener, origin.listenerId);
    },
    slotsInTransit: options.slotsInTransit,
  };
  if (options.sharedTcp !== undefined) registry.countsClientsOnly = true;
  if (options.connectionIds !== undefined) registry.sharedIds = options.connectionIds;
  // TLS is loaded only where it serves: memcached's -s replaces the TCP listeners.
  const wantsTls = options.sharedTcp !== undefined ? options.sharedTcp.some((l) => l.tls) : tlsInEffect(settings);
  const tls = wantsTls ? await TlsService.start(ctx, options.tlsMaterial ?? null, options.tlsTicketKeys ?? null, options.tlsSessionPort ?? null) : null;
  const network = new Network(ctx, new Acceptor(ctx, tls), tls, dealIndex, options.sharedTcp ?? null, options.sharedUdp ?? []);
  try {
    await network.listen();
  } catch (err) {
    await network.close();
    throw err;
  }
  registry.start();
  return network;
}

async function chooseReadMode(options: NetworkOptions, log: LogFn): Promise<ReadMode> {
  if (options.readMode === 'data') return 'data';
  if (await probeOnread()) return 'onread';
  log(0, 'static read buffers (net.Socket onread) unavailable on this Node.js: reading with data events, slower');
  return 'data';
}

class Network implements NetworkHandle {
  readonly readMode: ReadMode;
  private readonly ctx: NetContext;
  private readonly acceptor: Acceptor;
  private readonly tls: TlsService | null;
  private readonly listeners: StreamListener[] = [];
  private readonly udp: UdpEndpoint[] = [];
  /** handOver(): the TCP sockets held for the other threads, and the UDP addresses they serve. */
  private readonly held: HeldTcpListener[] = [];
  private readonly udpHandedOver: net.AddressInfo[] = [];
  private endpointsClosed: Promise<void> | null = null;
  private closed: Promise<void> | null = null;

  private readonly sharedTcp: readonly SharedTcpListener[] | null;
  private readonly sharedUdp: readonly SharedUdpSocket[];
  /** A worker thread with tcpAccept 'dispatch': the origins of thread 0's TCP listeners. */
  private dealtOrigins: ConnectionOrigin[] = [];

  constructor(ctx: NetContext, acceptor: Acceptor, tls: TlsService | null, private readonly dealIndex: Map<ConnectionOrigin, number>, sharedTcp: readonly SharedTcpListener[] | null,
    sharedUdp: readonly SharedUdpSocket[]) {
    this.sharedTcp = sharedTcp;
    this.sharedUdp = sharedUdp;
    this.ctx = ctx;
    this.acceptor = acceptor;
    this.tls = tls;
    this.readMode = ctx.readMode;
  }

  /** memcached's order: the unix socket alone when -s is given, else TCP then UDP. */
  async listen(): Promise<void> {
    const s = this.ctx.settings;
    if (this.sharedTcp !== null) {
      if (this.ctx.tcpAccept === 'dispatch') this.dealtOrigins = dealtTcpOrigins(this.acceptor, this.sharedTcp);
      else await listenSharedTcp(this.ctx, this.acceptor, this.listeners, this.sharedTcp);
      await listenSharedUdp(this.ctx, this.udp, this.sharedUdp);
      return;
    }
    if (s.socketPath !== null) {
      await listenUnix(this.ctx, this.acceptor, this.listeners);
      return;
    }
    if (s.tcpPort !== 0) await listenTcp(this.ctx, this.acceptor, this.listeners);
    if (s.udpPort !== 0) await listenUdp(this.ctx, this.udp);
  }

  connections(): Iterable<ConnectionInfo> {
    return this.ctx.registry.connections();
  }

  addresses(): NetworkAddresses {
    const tcp: net.AddressInfo[] = [];
    const tls: net.AddressInfo[] = [];
    let unix: string | null = null;
    for (const l of this.listeners) {
      if (l.origin.transport === 'unix') {
        unix = l.origin.socketPath;
      } else if (l.server.listening) {
        const address = l.server.address() as net.AddressInfo;
        tcp.push(address);
        if (l.origin.tls) tls.push(address);
      }
    }
    for (const h of this.held) {
      tcp.push(h.address);
      if (h.tls) tls.push(h.address);
    }
    return { tcp, tls, udp: [...this.udpHandedOver, ...this.udp.map((u) => u.address)], unix };
  }

  reloadCertificates(): string | null {
    if (this.tls === null) return TLS_NOT_ENABLED;
    return this.tls.reload();
  }

  acceptingConnections(): boolean {
    return this.acceptor.isAccepting;
  }

  sharedTcpListeners(): SharedTcpListener[] {
    return sharedPendingTcp(this.ctx.deferredTcp ?? []);
  }

  sharedUdpSockets(): SharedUdpSocket[] {
    return shareUdp(this.udp);
  }

  async handOver(): Promise<void> {
    const deferred = (this.ctx.deferredTcp ?? []) as PendingTcpListener[];
    // In the order the worker threads were given them (sharedTcpListeners()); each leaves the
    // list once listening or held, so a failure leaves the rest for closeEndpoints().
    for (let index = 0; deferred.length > 0; index++) {
      const p = deferred[0];
      if (this.ctx.tcpAccept === 'dispatch') {
        this.dealIndex.set(p.origin, index);
        // Another server that bound the port since this one did fails here, as memcached.
        await activateTcp(this.ctx, this.listeners, p).catch((err: unknown) => {
          throw new ListenError(p.describe, err);
        });
      } else {
        this.held.push(holdTcp(this.ctx, p));
      }
      deferred.shift();
    }
    // The other threads serve duplicates of the UDP sockets, each listed and counted as theirs
    // (memcached's one UDP connection per worker thread); this thread's copy closes.
    for (const u of this.udp.splice(0)) {
      this.udpHandedOver.push(u.address);
      await u.close();
    }
  }

  tlsShare(): TlsShare | null {
    return this.tls?.share() ?? null;
  }

  tlsSessionCache(): SessionCache | null {
    return this.tls?.sessionCache() ?? null;
  }

  onTicketKeys(listener: (keys: TicketKeyState) => void): void {
    if (this.tls !== null) this.tls.onTicketKeys = listener;
  }

  adopt(fd: number, listener: number, listenerId: number): void {
    const origin: ConnectionOrigin | undefined = listener >= 0 ? this.dealtOrigins[listener] : {
      transport: 'unix', socketPath: this.ctx.settings.socketPath, protocol: null, tag: null, tls: false, tlsVerify: null, listenerId,
    };
    if (origin === undefined) {
      this.ctx.log(0, `a connection handed over from TCP listener ${listener}, which this thread does not know: closed`);
    } else {
      origin.listenerId = listenerId;
    }
    this.acceptor.adopt(fd, origin ?? null);
  }

  applyTls(update: { material?: TlsMaterial; keys?: TicketKeyState }): void {
    if (this.tls === null) return;
    if (update.material !== undefined) {
      const error = this.tls.reload(update.material);
      if (error !== null) this.ctx.log(0, `TLS: could not take thread 0's certificates: ${error}`);
    }
    if (update.keys !== undefined) this.tls.setTicketKeys(update.keys);
  }

  spareBuffers(): { read: number; output: number } {
    return { read: this.ctx.readBuffers.spareCount, output: this.ctx.outputBuffers.spareCount };
  }

  writeBacklogBytes(): number {
    let total = 0;
    for (const c of this.ctx.registry.clientList()) total += c.writeBacklogBytes;
    return total;
  }

  async gracefulStop(timeoutMs = GRACEFUL_STOP_MS_DEFAULT): Promise<void> {
    if (this.closed !== null) return this.closed;
    const endpoints = this.closeEndpoints();
    for (const c of this.ctx.registry.clientList()) c.stopGracefully();
    let timer: NodeJS.Timeout | null = null;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.ctx.registry.whenNoClients(), timeout]);
    if (timer !== null) clearTimeout(timer);
    await this.close();
    await endpoints;
  }

  close(): Promise<void> {
    this.closed ??= this.closeNow();
    return this.closed;
  }

  private async closeNow(): Promise<void> {
    const endpoints = this.closeEndpoints();
    for (const c of this.ctx.registry.clientList()) c.destroy();
    await this.ctx.registry.whenNoClients();
    await endpoints;
  }

  /** Stop accepting and receiving; idempotent. */
  private closeEndpoints(): Promise<void> {
    if (this.endpointsClosed === null) {
      this.acceptor.stop();
      this.ctx.registry.stop();
      const waits: Promise<void>[] = [];
      for (const l of this.listeners) waits.push(closeListener(this.ctx, l));
      // Bound sockets that never listened (startup failed before the other threads were up, or
      // held for them).
      for (const h of this.held.splice(0)) this.ctx.registry.removeEndpoint(h.info);
      for (const p of [...(this.ctx.deferredTcp?.splice(0) ?? []), ...this.held]) closeDescriptor(p.fd);
      for (const u of this.udp) waits.push(u.close());
      this.endpointsClosed = Promise.all(waits).then(() => undefined);
    }
    return this.endpointsClosed;
  }
}
