/**
 * ConnectionRegistry: every live connection and endpoint (listening socket, UDP socket) of one
 * server, the connection gauges in ServerStats, a coarse clock and the idle_timeout sweep.
 *
 * Not for: reading or writing sockets (connection.ts), binding (listeners.ts, udp.ts).
 *
 * Counting follows memcached 1.6, checked against Debian's memcached 1.6.18: listening sockets
 * and UDP sockets are connections too. Its `stats` prints `curr_connections` as its internal
 * count minus one (the connection asking), so a fresh server with one TCP listener and one
 * client shows 1, and `total_connections` starts at the number of listeners.
 * ServerStats holds the values as `stats` prints them.
 */
import type { ConnectionInfo } from '../protocol/session';
import type { ServerStats } from '../metrics/stats';
import type { BindProtocol } from '../settings';

/** ConnectionInfo plus what net knows that the contract does not carry. */
export interface NetConnectionInfo extends ConnectionInfo {
  /** Local end as memcached prints `listen_addr` in `stats conns`; null for endpoints. */
  readonly localName: string | null;
  /** The accepting listener's proto[...] from -l (null: -B applies). */
  readonly protocol: BindProtocol | null;
  /** The accepting listener's tag[...] from -l. */
  readonly tag: string | null;
}

/** What the registry needs from a client connection. */
export interface TrackedConnection {
  readonly info: NetConnectionInfo;
  /** Registry-clock seconds of the last read (idle_timeout's measure, whatever clock sessions use). */
  readonly lastActiveSeconds: number;
  /** True when waiting for a command: not writing, not in the middle of a yield. */
  isIdle(): boolean;
  /** Close now because of idle_timeout. */
  kickIdle(): void;
  /** Unsent bytes queued on the socket. */
  readonly writeBacklogBytes: number;
  /** Read nothing more, finish the requests already read, then close. */
  stopGracefully(): void;
  /** Close now, unsent output discarded. */
  destroy(): void;
}

/** memcached's idle timeout thread wakes about once a second; so does this sweep. */
export const CLOCK_TICK_MS = 1000;

export class ConnectionRegistry {
  /** Coarse server-relative seconds, refreshed every CLOCK_TICK_MS (no clock call per read). */
  nowSeconds: number;
  /** Called after a client connection is removed (the Acceptor admits held connections). */
  onClientRemoved: (() => void) | null = null;
  private readonly clients = new Set<TrackedConnection>();
  private readonly endpoints = new Set<NetConnectionInfo>();
  private readonly stats: ServerStats;
  private readonly idleTimeoutSeconds: number;
  private readonly clockSeconds: () => number;
  private timer: NodeJS.Timeout | null = null;
  private lastId = 0;
  private structuresMax = 0;
  private readonly emptyWaiters: (() => void)[] = [];

  constructor(stats: ServerStats, idleTimeoutSeconds: number, clockSeconds: () => number) {
    this.stats = stats;
    this.idleTimeoutSeconds = idleTimeoutSeconds;
    this.clockSeconds = clockSeconds;
    this.nowSeconds = clockSeconds();
  }

  /** Ids stand in for memcached's fd numbers in `stats conns`. */
  nextId(): number {
    // Several serving threads: ids come from one shared counter, unique in the process.
    if (this.sharedIds !== null) return Atomics.add(this.sharedIds, 0, 1) + 1;
    return ++this.lastId;
  }

  /** The counter connection ids come from when several threads serve (set before listening). */
  sharedIds: Int32Array | null = null;

  get clientCount(): number {
    return this.clients.size;
  }

  /** What `stats conns` lists: listening sockets and UDP sockets first, then clients. */
  *connections(): Iterable<NetConnectionInfo> {
    for (const e of this.endpoints) yield e;
    for (const c of this.clients) yield c.info;
  }

  clientList(): TrackedConnection[] {
    return [...this.clients];
  }

  addEndpoint(info: NetConnectionInfo): void {
    this.endpoints.add(info);
    if (this.counts(info)) {
      this.stats.total_connections++;
      this.countedEndpoints++;
    }
    this.updateGauges();
  }

  removeEndpoint(info: NetConnectionInfo): void {
    if (!this.endpoints.delete(info)) return;
    if (this.counts(info)) this.countedEndpoints--;
    this.updateGauges();
  }

  /** Whether this thread counts the endpoint among its connections (see countsClientsOnly). */
  private counts(info: NetConnectionInfo): boolean {
    return !this.countsClientsOnly || info.transport === 'udp';
  }

  add(conn: TrackedConnection): void {
    this.clients.add(conn);
    this.stats.total_connections++;
    this.updateGauges();
  }

  /** `next` takes the place of `old` (same connection, new handler): nothing is counted again. */
  replace(old: TrackedConnection, next: TrackedConnection): void {
    if (!this.clients.delete(old)) throw new Error('replacing a connection the registry does not hold');
    this.clients.add(next);
  }

  remove(conn: TrackedConnection): void {
    if (!this.clients.delete(conn)) return;
    this.updateGauges();
    if (this.onClientRemoved !== null) this.onClientRemoved();
    if (this.clients.size === 0) {
      for (const w of this.emptyWaiters.splice(0)) w();
    }
  }

  /** Resolves when no client connection is left. */
  whenNoClients(): Promise<void> {
    if (this.clients.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.tick(), CLOCK_TICK_MS);
    // The clock must not keep a process alive on its own.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    this.nowSeconds = this.clockSeconds();
    if (this.idleTimeoutSeconds > 0) this.sweepIdle();
  }

  private sweepIdle(): void {
    const limit = this.idleTimeoutSeconds;
    const now = this.nowSeconds;
    for (const c of this.clients) {
      // memcached: strictly more than idle_timeout seconds, only TCP clients (its sweep skips
      // unix sockets), only connections waiting for a command (not writing). Sessions set
      // lastCommandTime on their own clock, so the sweep measures reads on this clock.
      if (c.info.transport === 'tcp' && now - c.lastActiveSeconds > limit && c.isIdle()) {
        this.stats.idle_kicks++;
        c.kickIdle();
      }
    }
  }

  /**
   * A worker thread: its listening sockets, if any (-o tcp_accept=reuseport), are copies of
   * thread 0's, which memcached would count once, so it counts its clients only,
   * and its UDP endpoints: memcached has one UDP connection per worker thread and counts each.
   */
  countsClientsOnly = false;
  private countedEndpoints = 0;

  private updateGauges(): void {
    const live = this.countedEndpoints + this.clients.size;
    this.stats.client_slots = this.clients.size;
    if (this.countsClientsOnly) this.stats.curr_connections = live;
    else this.stats.curr_connections = live > 0 ? live - 1 : 0;
    // memcached allocates a conn structure per fd and keeps it, so the count is a high-water mark.
    if (live > this.structuresMax) this.structuresMax = live;
    this.stats.connection_structures = this.structuresMax;
  }
}
