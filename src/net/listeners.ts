/**
 * Stream listeners: TCP on each -l address (or every interface) and the unix socket of -s,
 * and the accept path with memcached's connection limit (-c, maxconns_fast). TLS listeners
 * accept here too (same backlog, same limits) and hand clients to tls.ts for the handshake.
 *
 * Not for: reading and writing clients (connection.ts), UDP (udp.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { Connection, addressName, type ConnectionOrigin, type SocketSource } from './connection';
import { verboseLines, type DeferredTcp, type NetContext } from './context';
import { ListenError, isFamilyUnavailable, resolveTargets, type ListenTarget } from './addresses';
import { adoptDescriptor, detachHandle, handOffDescriptor, handOffHandle, interceptAccepts, listeningFd, type OpaqueHandle } from './node-internals';
import { duplicateFd, enableTcpFastOpen, exclusiveTcpSocket, reusePortSocket, socketLocalPort } from '../platform/sockets';
import { closeDescriptor } from '../platform/descriptors';
import type { NetConnectionInfo } from './registry';
import type { Handshake, TlsService } from './tls';
import { listenerVerifyMode } from './tls';
import type { Settings, TlsVerifyMode } from '../settings';

const REJECT_MESSAGE = 'ERROR Too many open connections\r\n';
/** Longest a rejected socket waits for its error line to be written before it is destroyed anyway. */
const REJECT_WRITE_TIMEOUT_MS = 1000;
/**
 * While clients are held (no_maxconns_fast), how often a serving thread looks for a slot freed
 * on another thread (a slot freed on its own admits them at once).
 */
const HELD_RETRY_MS = 10;

/**
 * Decides what happens to each accepted socket: served, rejected (-c with maxconns_fast) or
 * held until a slot frees (-o no_maxconns_fast).
 */
export class Acceptor {
  private readonly ctx: NetContext;
  private readonly tls: TlsService | null;
  /** Accepted but not yet served (no_maxconns_fast), at most settings.backlog of them. */
  private readonly held: { shell: net.Socket; origin: ConnectionOrigin }[] = [];
  private readonly rejecting = new Set<net.Socket>();
  private accepting = true;
  private stopped = false;
  private heldRetry: NodeJS.Timeout | null = null;

  constructor(ctx: NetContext, tls: TlsService | null = null) {
    this.ctx = ctx;
    this.tls = tls;
    ctx.registry.onClientRemoved = () => this.admitHeld();
    if (tls !== null) {
      tls.handlers = { secured: (socket, origin, handshake) => this.serveSecured(socket, origin, handshake) };
    }
  }

  /** Clients, TLS handshakes in progress included (the registry holds both): each holds a -c slot. */
  private get slotsUsed(): number {
    // Every serving thread's clients, and those being handed between threads: -c bounds the
    // server, as memcached's.
    const transit = this.ctx.slotsInTransit;
    return this.ctx.stats.sum('client_slots') + (transit === undefined ? 0 : Atomics.load(transit, 0));
  }

  /** A new client may be served now: a -c slot free and nobody waiting before it. */
  private get hasRoom(): boolean {
    return this.held.length === 0 && this.slotsUsed < this.ctx.settings.connectionsMax;
  }

  /** memcached's `accepting_conns`. */
  get isAccepting(): boolean {
    return this.accepting && !this.stopped;
  }

  onAccepted(shell: net.Socket, origin: ConnectionOrigin): void {
    if (this.stopped) {
      shell.destroy();
      return;
    }
    if (this.hasRoom) {
      this.admit(shell, origin);
    } else if (this.ctx.settings.maxconnsFast) {
      this.reject(shell);
    } else {
      this.hold(shell, origin);
    }
  }

  /**
   * A connection offered as a bare handle (interceptAccepts): taken when it would be handed to
   * another thread or served here at once on the static-buffer path; anything else (over -c,
   * clients held, TLS served here, the 'data' path) returns false, and it comes back through
   * onAccepted as a socket.
   */
  onAcceptedHandle(handle: OpaqueHandle, origin: ConnectionOrigin): boolean {
    if (this.stopped || !this.hasRoom) return false;
    const handedOn = this.handOn(origin, () => handOffHandle(handle, duplicateFd));
    if (handedOn !== null) return handedOn;
    if (origin.tls || this.ctx.readMode !== 'onread') return false;
    this.serve(origin, { handle });
    return true;
  }

  /**
   * Thread 0 of several: send the connection to the next worker thread, its descriptor copied
   * by `copy` (which closes this thread's). Null: not to be handed on (served here); false: the
   * copy failed and nothing was touched; true: handed on.
   */
  private handOn(origin: ConnectionOrigin, copy: () => number | null): boolean | null {
    if (this.ctx.handOff === undefined) return null;
    const send = this.ctx.handOff(origin);
    if (send === null) return null;
    const fd = copy();
    if (fd === null) return false;
    // Counted against -c until the worker has taken it (adopt).
    if (this.ctx.slotsInTransit !== undefined) Atomics.add(this.ctx.slotsInTransit, 0, 1);
    send(fd);
    return true;
  }

  /** Serve a plain connection on this thread from here on. */
  private serve(origin: ConnectionOrigin, source: SocketSource): void {
    const conn = new Connection(this.ctx, origin, source);
    this.ctx.log(2, verboseLines.newClient(conn.info.id, origin.protocol ?? this.ctx.settings.bindProtocol));
  }

  /** Prepare a TLS listener's handshakes (before it binds). */
  registerTls(origin: ConnectionOrigin): void {
    if (this.tls === null) throw new Error('a TLS listener without TLS settings');
    this.tls.register(origin);
  }

  /** Stop serving new connections; held and rejected sockets and TLS handshakes are dropped. */
  stop(): void {
    this.stopped = true;
    this.tls?.stop();
    if (this.heldRetry !== null) clearInterval(this.heldRetry);
    this.heldRetry = null;
    for (const h of this.held.splice(0)) h.shell.destroy();
    for (const s of this.rejecting) s.destroy();
  }

  /** A connection thread 0 accepted and handed to this thread (its descriptor). */
  adopt(fd: number, origin: ConnectionOrigin | null): void {
    try {
      if (this.stopped || origin === null) {
        closeDescriptor(fd);
      } else if (!origin.tls && this.ctx.readMode === 'onread') {
        // Served at once: the socket that reads into the static buffer is built on the
        // descriptor itself (one socket, not one to take the handle out of).
        this.serve(origin, { descriptor: fd });
      } else {
        this.admit(adoptDescriptor(fd, !origin.tls), origin);
      }
    } finally {
      // Counted by this thread's registry now (client_slots), or gone: no longer in transit.
      if (this.ctx.slotsInTransit !== undefined) Atomics.sub(this.ctx.slotsInTransit, 0, 1);
    }
  }

  private admit(shell: net.Socket, origin: ConnectionOrigin): void {
    // Several serving threads: thread 0 accepts on the unix socket (and on TCP with
    // -o tcp_accept=dispatch) and deals the connections out.
    if (this.handOn(origin, () => handOffDescriptor(shell, duplicateFd)) === true) return;
    if (origin.tls) {
      if (this.tls === null) throw new Error('a TLS listener without TLS settings');
      this.tls.accept(shell, origin);
      return;
    }
    const handle = this.ctx.readMode === 'onread' ? detachHandle(shell) : null;
    this.serve(origin, handle !== null ? { handle } : { socket: shell });
  }

  /**
   * A TLS client whose handshake completed: served on the 'data' path by a Connection that
   * takes over the handshake's registry entry (TlsService stops handing over once stopped).
   */
  private serveSecured(socket: tls.TLSSocket, origin: ConnectionOrigin, handshake: Handshake): void {
    const tls = this.tls as TlsService;
    new Connection(this.ctx, origin, { socket, accepted: handshake, onError: (id, err) => tls.connectionError(id, err) });
  }

  /**
   * The client gets memcached's error line and the socket is closed at once, as memcached
   * does (write(), close()): the kernel still delivers the line, then FIN. On a TLS listener
   * too: memcached writes it in clear text before any handshake.
   */
  private reject(shell: net.Socket): void {
    this.ctx.stats.rejected_connections++;
    this.ctx.stats.max_connections_reached++;
    this.ctx.log(2, 'Too many open connections');
    shell.on('error', () => shell.destroy());
    shell.write(REJECT_MESSAGE);
    if (shell.writableLength === 0) {
      shell.destroy();
      return;
    }
    // The kernel did not take the line at once: close when it has, within a bound.
    this.rejecting.add(shell);
    shell.on('close', () => this.rejecting.delete(shell));
    shell.setTimeout(REJECT_WRITE_TIMEOUT_MS, () => shell.destroy());
    shell.end(() => shell.destroy());
  }

  /** no_maxconns_fast: like memcached's listen-disabled state, the client waits to be served. */
  private hold(shell: net.Socket, origin: ConnectionOrigin): void {
    if (this.accepting) {
      this.accepting = false;
      this.ctx.stats.listen_disabled_num++;
    }
    this.ctx.stats.max_connections_reached++;
    if (this.held.length >= this.ctx.settings.backlog) {
      // Past the backlog the kernel would have refused the connection too.
      shell.destroy();
      return;
    }
    shell.on('error', () => shell.destroy());
    this.held.push({ shell, origin });
    // -c counts every thread's clients: a slot may free on another thread.
    if (this.heldRetry === null && this.ctx.stats.table.threads > 1) this.heldRetry = setInterval(() => this.admitHeld(), HELD_RETRY_MS);
  }

  private admitHeld(): void {
    while (!this.stopped && this.held.length > 0 && this.slotsUsed < this.ctx.settings.connectionsMax) {
      const next = this.held.shift() as { shell: net.Socket; origin: ConnectionOrigin };
      if (next.shell.destroyed) continue;
      next.shell.removeAllListeners('error');
      this.admit(next.shell, next.origin);
    }
    if (this.held.length > 0) return;
    this.accepting = true;
    if (this.heldRetry !== null) clearInterval(this.heldRetry);
    this.heldRetry = null;
  }
}

/** One bound listening socket and its `stats conns` entry. */
export interface StreamListener {
  readonly server: net.Server;
  readonly info: NetConnectionInfo;
  readonly origin: ConnectionOrigin;
}

function createServer(acceptor: Acceptor, origin: ConnectionOrigin, ctx: NetContext): net.Server {
  // pauseOnConnect: the accepted socket must not start reading before its handle moves to the
  // onread socket. noDelay and keepAlive match memcached's TCP_NODELAY and SO_KEEPALIVE.
  // allowHalfOpen lets a plain client's FIN wait for its last replies; under TLS it must be off,
  // as in tls.Server's own sockets: otherwise a peer gone before its ClientHello is never
  // noticed and its handshake holds a -c slot until the handshake timeout.
  const server = net.createServer({ pauseOnConnect: true, noDelay: true, keepAlive: true, allowHalfOpen: !origin.tls });
  server.on('connection', (shell: net.Socket) => acceptor.onAccepted(shell, origin));
  // Connections served at once or handed on skip the first socket Node would build; the
  // addon's listening sockets (several threads) carry TCP_NODELAY and SO_KEEPALIVE for their
  // connections, as memcached's do.
  const inherited = origin.transport === 'tcp' && ctx.bindFirst === true;
  server.once('listening', () => interceptAccepts(server, (handle) => acceptor.onAcceptedHandle(handle, origin), inherited));
  server.on('error', (err: Error) => ctx.log(0, `accept(): ${err.message}`));
  return server;
}

function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return listening(server, (done) => server.listen(options, done));
}

/** Start listening with `listen` (given the callback to call once listening); rejects on 'error'. */
function listening(server: net.Server, listen: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    listen(() => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * listen(2)'s backlog for -b (the kernel caps it at net.core.somaxconn). Node replaces a
 * backlog of 0 by its default, 511; 1 is the nearest it allows to memcached's listen(fd, 0).
 */
function listenBacklog(s: Settings): number {
  return Math.max(1, s.backlog);
}

/** memcached's message names the -l argument as given. */
/**
 * The address groups to bind for one transport, and memcached's failure message for it
 * ("failed to listen on TCP port N" or "... on one of interface(s) ...").
 */
export async function listenTargets(s: Settings, transport: 'TCP' | 'UDP', port: number): Promise<{ describe: string; groups: ListenTarget[][] }> {
  const describe = s.listeners.length === 0
    ? `failed to listen on ${transport} port ${port}`
    : `failed to listen on one of interface(s) ${interfaceList(s)}`;
  try {
    return { describe, groups: await resolveTargets(s.listeners, port) };
  } catch (err) {
    throw new ListenError(describe, err);
  }
}

export function interfaceList(s: Settings): string {
  if (s.listenAddresses.length > 0) return s.listenAddresses.join(',');
  return s.listeners.map((l) => l.host ?? '*').join(',');
}

function endpointInfo(ctx: NetContext, origin: ConnectionOrigin, name: string): NetConnectionInfo {
  return {
    id: ctx.registry.nextId(),
    transport: origin.transport,
    peerName: name,
    localName: null,
    protocol: origin.protocol,
    tag: origin.tag,
    lastCommandTime: ctx.registry.nowSeconds,
    stateName: 'conn_listening',
  };
}

/**
 * Bind TCP on every target. Rejects with memcached's message when an entry binds nothing, or
 * when any non-optional target fails; `opened` receives what was bound so the caller can close
 * it on failure.
 */
export async function listenTcp(ctx: NetContext, acceptor: Acceptor, opened: StreamListener[]): Promise<void> {
  const { settings } = ctx;
  const { describe, groups } = await listenTargets(settings, 'TCP', settings.tcpPort);
  for (const group of groups) {
    let bound = 0;
    let firstError: unknown = null;
    for (const target of group) {
      const tls = settings.tlsEnabled && target.tls !== 'notls';
      try {
        await bindTcp(ctx, acceptor, opened, target, tls, describe);
      } catch (err) {
        if (!(target.optional && isFamilyUnavailable(err))) throw new ListenError(describe, err);
        firstError ??= err;
        continue;
      }
      bound++;
    }
    if (bound === 0) throw new ListenError(describe, firstError);
  }
}

/** A TCP listener the worker threads open again on the same address (SO_REUSEPORT). */
export interface SharedTcpListener {
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
  readonly protocol: ListenTarget['protocol'];
  readonly tag: ListenTarget['tag'];
  /** A TLS listener, and its client-certificate mode (-o ssl_verify_mode, btls:, mtls:). */
  readonly tls: boolean;
  readonly tlsVerify: TlsVerifyMode | null;
}

/**
 * A worker thread: open thread 0's plain TCP listeners again, each
 * a socket of its own on the same address and port (SO_REUSEPORT: the kernel spreads new
 * connections over the threads' sockets).
 */
export async function listenSharedTcp(ctx: NetContext, acceptor: Acceptor, opened: StreamListener[],
  shared: readonly SharedTcpListener[]): Promise<void> {
  for (const l of shared) {
    const target = { address: l.address, family: l.family, port: l.port, optional: false, protocol: l.protocol, tag: l.tag, tls: null } as ListenTarget;
    try {
      await bindTcp(ctx, acceptor, opened, target, l.tls, `failed to listen on TCP port ${l.port}`, l.tlsVerify);
    } catch (err) {
      throw new ListenError(`failed to listen on TCP port ${l.port} (serving thread)`, err);
    }
  }
}

function sharedListener(address: string, family: 4 | 6, port: number, origin: ConnectionOrigin): SharedTcpListener {
  return { address, family, port, protocol: origin.protocol, tag: origin.tag, tls: origin.tls, tlsVerify: origin.tlsVerify };
}

async function bindTcp(ctx: NetContext, acceptor: Acceptor, opened: StreamListener[], target: ListenTarget, tls: boolean,
  describe: string, tlsVerify: TlsVerifyMode | null = null): Promise<void> {
  const { settings } = ctx;
  const origin: ConnectionOrigin = {
    transport: 'tcp', socketPath: null, protocol: target.protocol, tag: target.tag, tls,
    tlsVerify: tls ? tlsVerify ?? listenerVerifyMode(settings, target.tls) : null, listenerId: 0,
  };
  if (tls) acceptor.registerTls(origin);
  const server = createServer(acceptor, origin, ctx);
  // Several serving threads: the addon's sockets, bound now and listened on later. Only with
  // -o tcp_accept=reuseport do they share the port (every worker opens its own).
  if (ctx.bindFirst === true) {
    const shared = ctx.tcpAccept === 'reuseport';
    // SO_REUSEPORT would let this server's sockets join the port of another server of the same
    // user, and the two would split the clients between two caches; memcached refuses to
    // start then, and so does thread 0, binding the port alone for a moment first.
    if (shared && ctx.deferredTcp !== undefined && target.port !== 0) closeDescriptor(exclusiveTcpSocket(target.address, target.port));
    const fd = shared ? reusePortSocket(target.address, target.port) : exclusiveTcpSocket(target.address, target.port);
    const pending: PendingTcpListener = {
      server, origin, fd, describe, address: target.address, family: target.family, port: socketLocalPort(fd),
    };
    // Thread 0 listens last, once the other threads listen on the same port: the kernel then
    // spreads connections over every thread from the first one on.
    if (ctx.deferredTcp !== undefined) ctx.deferredTcp.push(pending);
    else await activateTcp(ctx, opened, pending);
    return;
  }
  await listenOn(server, {
    host: target.address,
    port: target.port,
    backlog: listenBacklog(settings),
    ipv6Only: target.family === 6,
    exclusive: true,
  });
  registerTcp(ctx, opened, server, origin, describe);
}

/** A TCP socket of the addon's, bound but not yet listening. */
export interface PendingTcpListener extends DeferredTcp {
  readonly server: net.Server;
  readonly origin: ConnectionOrigin;
  readonly fd: number;
  readonly describe: string;
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}

/**
 * A worker thread with -o tcp_accept=dispatch: one origin per TCP listener of thread 0, for
 * the connections thread 0 accepts there and hands to this thread (each TLS listener's
 * handshakes are prepared here, where they run).
 */
export function dealtTcpOrigins(acceptor: Acceptor, shared: readonly SharedTcpListener[]): ConnectionOrigin[] {
  return shared.map((l) => {
    const origin: ConnectionOrigin = {
      transport: 'tcp', socketPath: null, protocol: l.protocol, tag: l.tag, tls: l.tls, tlsVerify: l.tls ? l.tlsVerify : null, listenerId: 0,
    };
    if (l.tls) acceptor.registerTls(origin);
    return origin;
  });
}

/** Listen on a bound socket of the addon's and serve it. */
export async function activateTcp(ctx: NetContext, opened: StreamListener[], p: PendingTcpListener): Promise<void> {
  await listenOnFd(p.server, p.fd, listenBacklog(ctx.settings));
  registerTcp(ctx, opened, p.server, p.origin, p.describe);
}

/**
 * Thread 0 when only the other threads serve: the bound socket stays bound (it holds the port
 * for the threads' SO_REUSEPORT sockets) and is never listened on, so the kernel gives it no
 * connection; it is listed and counted as memcached's one listening connection per port.
 */
export function holdTcp(ctx: NetContext, p: PendingTcpListener): HeldTcpListener {
  const info = addTcpEndpoint(ctx, p.origin, p.address, p.port);
  ctx.log(2, verboseLines.listening(info.id, p.origin.protocol ?? ctx.settings.bindProtocol));
  return { fd: p.fd, info, address: { address: p.address, family: p.family === 6 ? 'IPv6' : 'IPv4', port: p.port }, tls: p.origin.tls };
}

/** A TCP socket thread 0 keeps bound for the worker threads (holdTcp). */
export interface HeldTcpListener {
  readonly fd: number;
  readonly info: NetConnectionInfo;
  readonly address: net.AddressInfo;
  readonly tls: boolean;
}

/** What the worker threads open again of sockets still waiting to listen. */
export function sharedPendingTcp(deferred: readonly DeferredTcp[]): SharedTcpListener[] {
  return (deferred as readonly PendingTcpListener[]).map((p) => sharedListener(p.address, p.family, p.port, p.origin));
}

function registerTcp(ctx: NetContext, opened: StreamListener[], server: net.Server, origin: ConnectionOrigin, describe: string): void {
  const addr = server.address() as net.AddressInfo;
  const info = addTcpEndpoint(ctx, origin, addr.address, addr.port);
  opened.push({ server, info, origin });
  if (ctx.settings.tcpFastOpenQueue > 0) applyTcpFastOpen(server, ctx.settings.tcpFastOpenQueue, describe);
  ctx.log(2, verboseLines.listening(info.id, origin.protocol ?? ctx.settings.bindProtocol));
}

/** A TCP listener's `stats conns` entry, counted. */
function addTcpEndpoint(ctx: NetContext, origin: ConnectionOrigin, address: string, port: number): NetConnectionInfo {
  const info = endpointInfo(ctx, origin, addressName('tcp', address, port));
  origin.listenerId = info.id;
  ctx.registry.addEndpoint(info);
  return info;
}

function listenOnFd(server: net.Server, fd: number, backlog: number): Promise<void> {
  // The backlog as listen()'s second argument: inside the options object it is ignored for an fd.
  return listening(server, (done) => server.listen({ fd }, backlog, done));
}

/**
 * -o tcp_fastopen on a bound TCP listener (the native addon's presence is checked at startup,
 * src/platform/startup.ts). A failure is a startup error, not a silent downgrade.
 */
function applyTcpFastOpen(server: net.Server, queueLength: number, describe: string): void {
  try {
    const fd = listeningFd(server);
    if (fd === null) throw new Error("no descriptor for the listening socket (Node.js internals changed)");
    enableTcpFastOpen(fd, queueLength);
  } catch (err) {
    throw new ListenError(`${describe}: cannot enable TCP Fast Open`, err);
  }
}

/** memcached removes a socket file left by an earlier run, but nothing else at that path. */
function removeStaleSocket(path: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (st.isSocket()) fs.unlinkSync(path);
}

/**
 * Listen on the unix socket path with mode `mask & 0777`. The umask is set around the
 * (synchronous) bind so the socket never exists with looser permissions; chmod afterwards
 * covers processes that cannot change the umask (worker threads).
 */
export async function listenUnix(ctx: NetContext, acceptor: Acceptor, opened: StreamListener[]): Promise<void> {
  const { settings } = ctx;
  const path = settings.socketPath as string;
  const describe = `failed to listen on UNIX socket: ${path}`;
  const mode = settings.socketAccessMask & 0o777;
  const origin: ConnectionOrigin = { transport: 'unix', socketPath: path, protocol: null, tag: null, tls: false, tlsVerify: null, listenerId: 0 };
  const server = createServer(acceptor, origin, ctx);
  try {
    removeStaleSocket(path);
    let oldMask: number | null = null;
    try {
      oldMask = process.umask(~mode & 0o777);
    } catch {
      oldMask = null;
    }
    let listening: Promise<void>;
    try {
      listening = listenOn(server, { path, backlog: listenBacklog(settings), exclusive: true });
    } finally {
      if (oldMask !== null) process.umask(oldMask);
    }
    await listening;
    fs.chmodSync(path, mode);
  } catch (err) {
    server.close();
    throw new ListenError(describe, err);
  }
  const info = endpointInfo(ctx, origin, `unix:${path}`);
  origin.listenerId = info.id;
  ctx.registry.addEndpoint(info);
  opened.push({ server, info, origin });
  ctx.log(2, verboseLines.listening(info.id, settings.bindProtocol));
}

/** Stop listening; resolves when the listening socket is closed (clients are separate). */
export function closeListener(ctx: NetContext, listener: StreamListener): Promise<void> {
  ctx.registry.removeEndpoint(listener.info);
  return new Promise<void>((resolve) => {
    if (!listener.server.listening) {
      resolve();
      return;
    }
    // server.close()'s callback waits for every connection it counts; accepted sockets hand
    // their handle to a Connection and are destroyed, so only rejected ones may linger, and
    // the Acceptor destroys those. 'close' on the handle is enough here.
    listener.server.close(() => resolve());
  });
}
