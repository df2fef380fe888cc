/**
 * The contract between a connection (src/net/) and a protocol (src/protocol/).
 *
 * The connection owns the socket, the read buffers and the Output; the session owns parsing
 * and replies. A session never touches a socket. Per read event the connection calls
 * `feed()` with every byte it has not yet had consumed, then writes `output` once.
 */
import type { Output } from './output';

export interface ConnectionInfo {
  /** Unique id (memcached's fd number stands here in `stats conns`). */
  readonly id: number;
  readonly transport: 'tcp' | 'unix' | 'udp' | 'tls';
  /** "tcp:127.0.0.1:12345", "unix:/path", as memcached prints in `stats conns`. */
  readonly peerName: string;
  /** Server-relative seconds of the last command, for `stats conns` and idle_timeout. */
  lastCommandTime: number;
  /** State name for `stats conns` ("conn_parse_cmd", "conn_nread", ...). */
  stateName: string;
  /**
   * Stream connections only: write bytes outside a read event (the `watch` command's log
   * lines). Writes `data` (nothing when it is empty) and returns the bytes still queued on
   * the socket, or -1 once the connection is closing or closed.
   */
  push?(data: Buffer): number;
}

export const enum FeedStatus {
  /** Everything complete was handled; any unconsumed tail is an incomplete request. */
  Ok = 0,
  /** requestsPerEvent was reached: call feed() again soon with the unconsumed bytes. */
  Yield = 1,
  /** Close the connection once `output` is flushed (quit, hostile input, fatal errors). */
  Close = 2,
}

export interface ProtocolSession {
  /**
   * Handle requests in buf[start, end). Returns the number of bytes consumed; afterwards
   * `status` says why it stopped. An incomplete trailing request is left unconsumed: the
   * connection keeps it and calls again with more bytes appended. A session bounds what it
   * leaves unconsumed (line limits), so the connection's pending buffer stays bounded.
   */
  feed(buf: Buffer, start: number, end: number): number;
  status: FeedStatus;
  /**
   * With status Close: the session closes because the peer broke the protocol (an HTTP
   * request, an endless line), which `watch connevents` reports as reason=error, as memcached
   * does for every close it does not call normal (quit, end of input).
   */
  closeIsError?: boolean;
  /** The connection is going away (closed by peer, error, or server shutdown). */
  release(): void;
}

export interface SessionFactory {
  create(conn: ConnectionInfo, output: Output): ProtocolSession;
}
