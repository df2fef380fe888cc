/**
 * Stream listeners: TCP on each -l address (or every interface) and the unix socket of -s,
 * and the accept path with memcached's connection limit (-c, maxconns_fast).
 *
 * Not for: reading and writing clients (connection.ts), UDP (udp.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { Connection, addressName, type ConnectionOrigin } from './connection';
import { verboseLines, type NetContext } from './context';
import { ListenError, isFamilyUnavailable, resolveTargets, type ListenTarget } from './addresses';
import { detachHandle } from './node-internals';
import type { NetConnectionInfo } from './registry';
import type { Settings } from '../settings';

const REJECT_MESSAGE = 'ERROR Too many open connections\r\n';
/** How long a rejected client gets to read the error before its socket is destroyed. */
const REJECT_LINGER_MS = 1000;

/**
 * Decides what happens to each accepted socket: served, rejected (-c with maxconns_fast) or
 * held until a slot frees (-o no_maxconns_fast).
 */
export class Acceptor {
  private readonly ctx: NetContext;
  /** Accepted but not yet served (no_maxconns_fast), at most settings.backlog of them. */
  private readonly held: { shell: net.Socket; origin: ConnectionOrigin }[] = [];
  private readonly rejecting = new Set<net.Socket>();
  private accepting = true;
  private stopped = false;

  constructor(ctx: NetContext) {
    this.ctx = ctx;
    ctx.registry.onClientRemoved = () => this.admitHeld();
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
    const { registry, settings } = this.ctx;
    if (registry.clientCount < settings.connectionsMax && this.held.length === 0) {
      this.admit(shell, origin);
    } else if (settings.maxconnsFast) {
      this.reject(shell);
    } else {
      this.hold(shell, origin);
    }
  }

  /** Stop serving new connections; held and rejected sockets are dropped. */
  stop(): void {
    this.stopped = true;
    for (const h of this.held.splice(0)) h.shell.destroy();
    for (const s of this.rejecting) s.destroy();
  }

  private admit(shell: net.Socket, origin: ConnectionOrigin): void {
    const handle = this.ctx.readMode === 'onread' ? detachHandle(shell) : null;
    const conn = new Connection(this.ctx, origin, handle !== null ? { handle } : { socket: shell });
    this.ctx.log(2, verboseLines.newClient(conn.info.id, origin.protocol ?? this.ctx.settings.bindProtocol));
  }

  /**
   * The client gets memcached's error line, then FIN. Its input is read and dropped so that
   * closing does not reset the connection before the error line is read.
   */
  private reject(shell: net.Socket): void {
    this.ctx.stats.rejected_connections++;
    this.ctx.stats.max_connections_reached++;
    this.ctx.log(2, 'Too many open connections');
    this.rejecting.add(shell);
    shell.on('error', () => shell.destroy());
    shell.on('close', () => this.rejecting.delete(shell));
    shell.setTimeout(REJECT_LINGER_MS, () => shell.destroy());
    shell.end(REJECT_MESSAGE);
    shell.resume();
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
  }

  private admitHeld(): void {
    const { registry, settings } = this.ctx;
    while (!this.stopped && this.held.length > 0 && registry.clientCount < settings.connectionsMax) {
      const next = this.held.shift() as { shell: net.Socket; origin: ConnectionOrigin };
      if (next.shell.destroyed) continue;
      next.shell.removeAllListeners('error');
      this.admit(next.shell, next.origin);
    }
    if (this.held.length === 0) this.accepting = true;
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
  const server = net.createServer({ pauseOnConnect: true, noDelay: true, keepAlive: true, allowHalfOpen: true });
  server.on('connection', (shell: net.Socket) => acceptor.onAccepted(shell, origin));
  server.on('error', (err: Error) => ctx.log(0, `accept(): ${err.message}`));
  return server;
}

function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** memcached's message names the -l argument as given. */
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
  const describe = settings.listeners.length === 0
    ? `failed to listen on TCP port ${settings.tcpPort}`
    : `failed to listen on one of interface(s) ${interfaceList(settings)}`;
  let groups: ListenTarget[][];
  try {
    groups = await resolveTargets(settings.listeners, settings.tcpPort);
  } catch (err) {
    throw new ListenError(describe, err);
  }
  for (const group of groups) {
    let bound = 0;
    let firstError: unknown = null;
    for (const target of group) {
      const origin: ConnectionOrigin = { transport: 'tcp', socketPath: null, protocol: target.protocol, tag: target.tag };
      const server = createServer(acceptor, origin, ctx);
      try {
        await listenOn(server, {
          host: target.address,
          port: target.port,
          backlog: settings.backlog,
          ipv6Only: target.family === 6,
          exclusive: true,
        });
      } catch (err) {
        if (!(target.optional && isFamilyUnavailable(err))) throw new ListenError(describe, err);
        firstError ??= err;
        continue;
      }
      bound++;
      const addr = server.address() as net.AddressInfo;
      const info = endpointInfo(ctx, origin, addressName('tcp', addr.address, addr.port));
      ctx.registry.addEndpoint(info);
      opened.push({ server, info, origin });
      ctx.log(2, verboseLines.listening(info.id, origin.protocol ?? settings.bindProtocol));
    }
    if (bound === 0) throw new ListenError(describe, firstError);
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
  const origin: ConnectionOrigin = { transport: 'unix', socketPath: path, protocol: null, tag: null };
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
      listening = listenOn(server, { path, backlog: settings.backlog, exclusive: true });
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
