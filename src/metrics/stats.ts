/**
 * Server-wide counters with memcached's `stats` names. Each serving thread counts in its own
 * row of one shared table (memcached's per-thread stats): a row's fields are read and written
 * as plain properties (`stats.get_hits++`), so the hot path stays a property add with no lock
 * and no atomic; `totals()` sums every thread's row for `stats` and the metrics endpoint.
 *
 * Per-slab-class and per-LRU counters live with the store (src/store/), which renders
 * `stats items` and `stats slabs` from its own tables.
 */

/** The counters, each a number in a thread's row. */
export interface ServerCounters {
  // connections (src/net/)
  curr_connections: number;
  total_connections: number;
  rejected_connections: number;
  connection_structures: number;
  listen_disabled_num: number;
  conn_yields: number;
  idle_kicks: number;
  /** Replies refused for lack of response memory (-o read_buf_mem_limit). */
  response_obj_oom: number;
  bytes_read: number;
  bytes_written: number;
  /** Connections refused because of -c limits at accept time. */
  max_connections_reached: number;

  // TLS (src/net/tls.ts)
  /**
   * memcached's accept-time TLS failures: clients already gone (reset) when the server
   * accepts them, so their handshake cannot even start (see doc/tls.md).
   */
  ssl_handshake_errors: number;
  /**
   * memcached's TLS protocol errors: OpenSSL failures while reading or writing a connection,
   * the handshake included (bad client hello, client certificate missing or rejected, peer
   * leaving mid-handshake, corrupt records).
   */
  ssl_proto_errors: number;
  /** Sessions put in the server-side session cache (memcached's new-session callback); with ssl_session_cache only. */
  ssl_new_sessions: number;
  /** Completed handshakes that resumed a session (ticket or session-ID cache); memcached-ts only. */
  ssl_resumed_sessions: number;
  /** Clock seconds (the network clock) of the last certificate load; kept by `stats reset`. */
  tlsCertsLoadedSeconds: number;

  // commands (src/engine/ and src/protocol/)
  cmd_get: number;
  cmd_set: number;
  cmd_flush: number;
  cmd_touch: number;
  cmd_meta: number;
  get_hits: number;
  get_misses: number;
  get_expired: number;
  get_flushed: number;
  delete_misses: number;
  delete_hits: number;
  incr_misses: number;
  incr_hits: number;
  decr_misses: number;
  decr_hits: number;
  cas_misses: number;
  cas_hits: number;
  cas_badval: number;
  touch_hits: number;
  touch_misses: number;
  store_too_large: number;
  store_no_memory: number;
  auth_cmds: number;
  auth_errors: number;

  // extstore reads (src/engine/storage.ts), on whichever thread served them
  get_extstore: number;
  get_aborted_extstore: number;
  get_oom_extstore: number;
  recache_from_extstore: number;
  miss_from_extstore: number;
  badcrc_from_extstore: number;
  /** Client connections this thread holds (a -c slot each, TLS handshakes included); not printed. */
  client_slots: number;

}

export const SERVER_STAT_NAMES: readonly (keyof ServerCounters)[] = [
  'curr_connections',
  'total_connections',
  'rejected_connections',
  'connection_structures',
  'listen_disabled_num',
  'conn_yields',
  'idle_kicks',
  'response_obj_oom',
  'bytes_read',
  'bytes_written',
  'max_connections_reached',
  'ssl_handshake_errors',
  'ssl_proto_errors',
  'ssl_new_sessions',
  'ssl_resumed_sessions',
  'tlsCertsLoadedSeconds',
  'cmd_get',
  'cmd_set',
  'cmd_flush',
  'cmd_touch',
  'cmd_meta',
  'get_hits',
  'get_misses',
  'get_expired',
  'get_flushed',
  'delete_misses',
  'delete_hits',
  'incr_misses',
  'incr_hits',
  'decr_misses',
  'decr_hits',
  'cas_misses',
  'cas_hits',
  'cas_badval',
  'touch_hits',
  'touch_misses',
  'store_too_large',
  'store_no_memory',
  'auth_cmds',
  'auth_errors',
  'get_extstore',
  'get_aborted_extstore',
  'get_oom_extstore',
  'recache_from_extstore',
  'miss_from_extstore',
  'badcrc_from_extstore',
  'client_slots',
];

/** Gauges and settings-like values `stats reset` keeps (memcached keeps curr_connections). */
const KEPT_BY_RESET: ReadonlySet<keyof ServerCounters> = new Set(['curr_connections', 'connection_structures', 'tlsCertsLoadedSeconds', 'client_slots']);

const FIELDS = SERVER_STAT_NAMES.length;

/** The shared table: one row of counters per serving thread (structured-cloneable). */
export interface StatsTable {
  readonly buffer: SharedArrayBuffer;
  readonly threads: number;
}

export function newStatsTable(threads: number): StatsTable {
  return { buffer: new SharedArrayBuffer(threads * FIELDS * 8), threads };
}

// eslint-disable-next-line @typescript-eslint/no-empty-interface, @typescript-eslint/no-unsafe-declaration-merging
export interface ServerStats extends ServerCounters {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class ServerStats {
  /** The whole table, every thread's row. */
  readonly table: StatsTable;
  /** This thread's row. */
  readonly row: Float64Array;
  /** This thread's index among the serving threads (0: the first). */
  readonly thread: number;
  private readonly all: Float64Array;

  /** A thread's counters in `table` (default: a table of its own, one thread). */
  constructor(table: StatsTable = newStatsTable(1), thread = 0) {
    if (!(Number.isInteger(thread) && thread >= 0 && thread < table.threads)) throw new Error(`stats row ${thread} of ${table.threads}`);
    this.table = table;
    this.thread = thread;
    this.all = new Float64Array(table.buffer);
    this.row = new Float64Array(table.buffer, thread * FIELDS * 8, FIELDS);
  }

  /** Every thread's counters summed, as a plain object (`stats`, the metrics endpoint). */
  totals(): ServerCounters {
    const sums: Record<string, number> = {};
    const all = this.all;
    for (let f = 0; f < FIELDS; f++) {
      let v = 0;
      for (let t = 0; t < this.table.threads; t++) v += all[t * FIELDS + f];
      sums[SERVER_STAT_NAMES[f]] = v;
    }
    return sums as unknown as ServerCounters;
  }

  /** One thread's counters, as a plain object (the metrics endpoint's per-thread series). */
  rowOf(thread: number): ServerCounters {
    const out: Record<string, number> = {};
    const all = this.all;
    for (let f = 0; f < FIELDS; f++) out[SERVER_STAT_NAMES[f]] = all[thread * FIELDS + f];
    return out as unknown as ServerCounters;
  }

  /** One counter summed over every thread. */
  sum(name: keyof ServerCounters): number {
    const f = SERVER_STAT_NAMES.indexOf(name);
    const all = this.all;
    let v = 0;
    for (let t = 0; t < this.table.threads; t++) v += all[t * FIELDS + f];
    return v;
  }

  /** `stats reset`: zero every thread's counters except the gauges memcached keeps. */
  reset(): void {
    const all = this.all;
    for (let f = 0; f < FIELDS; f++) {
      if (KEPT_BY_RESET.has(SERVER_STAT_NAMES[f])) continue;
      for (let t = 0; t < this.table.threads; t++) all[t * FIELDS + f] = 0;
    }
  }
}

// A counter is an accessor over this thread's row: `stats.cmd_get++` reads and writes row[i].
SERVER_STAT_NAMES.forEach((name, i) => {
  Object.defineProperty(ServerStats.prototype, name, {
    get(this: ServerStats): number {
      return this.row[i];
    },
    set(this: ServerStats, v: number) {
      this.row[i] = v;
    },
    enumerable: true,
    configurable: false,
  });
});
