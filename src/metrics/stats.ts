/**
 * Server-wide counters with memcached's `stats` names. One object per process; modules
 * increment fields directly (a plain object keeps the hot path to a property add).
 *
 * Per-slab-class and per-LRU counters live with the store (src/store/), which renders
 * `stats items` and `stats slabs` from its own tables.
 */
export class ServerStats {
  // connections (src/net/)
  curr_connections = 0;
  total_connections = 0;
  rejected_connections = 0;
  connection_structures = 0;
  listen_disabled_num = 0;
  conn_yields = 0;
  idle_kicks = 0;
  /** Replies refused for lack of response memory (-o read_buf_mem_limit). */
  response_obj_oom = 0;
  bytes_read = 0;
  bytes_written = 0;
  /** Connections refused because of -c limits at accept time. */
  max_connections_reached = 0;

  // TLS (src/net/tls.ts)
  /**
   * memcached's accept-time TLS failures: clients already gone (reset) when the server
   * accepts them, so their handshake cannot even start (see doc/tls.md).
   */
  ssl_handshake_errors = 0;
  /**
   * memcached's TLS protocol errors: OpenSSL failures while reading or writing a connection,
   * the handshake included (bad client hello, client certificate missing or rejected, peer
   * leaving mid-handshake, corrupt records).
   */
  ssl_proto_errors = 0;
  /** Sessions put in the server-side session cache (memcached's new-session callback); with ssl_session_cache only. */
  ssl_new_sessions = 0;
  /** Completed handshakes that resumed a session (ticket or session-ID cache); memcached-ts only. */
  ssl_resumed_sessions = 0;
  /** Clock seconds (the network clock) of the last certificate load; kept by `stats reset`. */
  tlsCertsLoadedSeconds = 0;

  // commands (src/engine/ and src/protocol/)
  cmd_get = 0;
  cmd_set = 0;
  cmd_flush = 0;
  cmd_touch = 0;
  cmd_meta = 0;
  get_hits = 0;
  get_misses = 0;
  get_expired = 0;
  get_flushed = 0;
  delete_misses = 0;
  delete_hits = 0;
  incr_misses = 0;
  incr_hits = 0;
  decr_misses = 0;
  decr_hits = 0;
  cas_misses = 0;
  cas_hits = 0;
  cas_badval = 0;
  touch_hits = 0;
  touch_misses = 0;
  store_too_large = 0;
  store_no_memory = 0;
  auth_cmds = 0;
  auth_errors = 0;

  /** Counters that `stats reset` zeroes (memcached keeps gauges such as curr_connections). */
  reset(): void {
    const keep = new Set(['curr_connections', 'connection_structures', 'tlsCertsLoadedSeconds']);
    for (const k of Object.keys(this) as (keyof ServerStats)[]) {
      if (!keep.has(k) && typeof this[k] === 'number') (this as unknown as Record<string, number>)[k] = 0;
    }
  }
}
