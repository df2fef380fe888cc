/**
 * Connection: one accepted TCP, TLS or unix-socket client. Owns the socket, the read buffers and the
 * Output; hands bytes to a ProtocolSession (src/protocol/session.ts) and writes its replies.
 *
 * Not for: parsing (the session), binding and accepting (listeners.ts), UDP (udp.ts).
 *
 * Per read event:
 *
 *   socket ──read──► readBuf (static, settings.readBufferBytes)
 *                      │ pending empty: feed(readBuf) directly, copy only the unconsumed tail
 *                      │ pending not empty: append to pending, feed(pending)
 *                      ▼
 *                   session.feed ──► output ──one socket.write──► socket
 *
 * TLS: the same, the TLS socket reading into readBuf through its handle and replies written
 * to that handle one write at a time (tlsWriter); plain TCP writes to the libuv handle
 * directly (direct). Without Node's private fields, 'data' events and socket.write.
 *
 * Input is held back (bytes "stashed", reading stopped) while the session has yielded (-R),
 * while unsent output is above writeBacklogBytesMax, and while closing. Pending is bounded
 * by NetContext.pendingBytesMax; a client going past it is closed.
 *
 * Replies waiting for an extstore read are holes in the output (src/protocol/output.ts):
 * only the bytes before the first pending hole are written; the rest stays in the output,
 * counted against writeBacklogBytesMax, and goes out as holes are filled (output.onHoleDone).
 * Reading continues meanwhile, within that bound, so pipelines keep flowing.
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { Output, OUTPUT_BASE_BYTES } from '../protocol/output';
import { sessionKind } from '../protocol/dispatch';
import { FeedStatus, type ProtocolSession } from '../protocol/session';
import { verboseLines, type CloseReason, type ConnectionOrigin, type NetContext } from './context';
import {
  directWriterFor, handleOf, readTlsIntoBuffer, serialWriterFor, socketWithReadBuffer, type AdoptedDescriptor, type DirectWriter,
  type OpaqueHandle, type SerialWriter,
} from './node-internals';
import type { NetConnectionInfo, TrackedConnection } from './registry';

const enum Flag {
  /** The session returned Yield: the rest of pending waits for a setImmediate turn. */
  Yielding = 1,
  /** Unsent output passed writeBacklogBytesMax: wait for 'drain'. */
  Backpressured = 2,
  /** Closing: input is dropped, output is flushed, then the socket is destroyed. */
  Closing = 4,
  /** The peer sent FIN: finish complete requests, then close. */
  PeerEnded = 8,
  /** Graceful stop: finish what was already read, then close. */
  Stopping = 16,
  /** We asked the socket to stop reading. */
  ReadStopped = 32,
  /** The socket is closed; nothing else happens. */
  Closed = 64,
  /** Output held behind pending holes passed writeBacklogBytesMax: wait for the reads. */
  HoleWait = 128,
}

/** Conditions under which a new read is stashed instead of fed. */
const HOLD_INPUT = Flag.Yielding | Flag.Backpressured | Flag.HoleWait;
/** Conditions under which new input is dropped. */
const DROP_INPUT = Flag.Closing | Flag.Closed | Flag.Stopping;

/** memcached's state names, for `stats conns`. */
const STATE_NEW_CMD = 'conn_new_cmd';
const STATE_READ = 'conn_read';
const STATE_PARSE_CMD = 'conn_parse_cmd';
const STATE_MWRITE = 'conn_mwrite';
const STATE_CLOSING = 'conn_closing';

/** Largest reply a TLS connection writes as a copy rather than handing over its output buffer. */
const SMALL_WRITE_BYTES_MAX = 16 * 1024;
/** Distinct reply lengths whose output-buffer views a connection keeps. */
const VIEW_CACHE_ENTRIES = 8;

/** A closing connection whose peer never reads its last output is destroyed after this long. */
const CLOSE_FLUSH_MS = 30_000;
/** An empty write: its callback tells when the writes queued before it are done. */
const NOTHING = Buffer.alloc(0);

/**
 * Where the bytes come from: a handle (or a descriptor another thread accepted) for the
 * `onread` path, or a socket for `'data'`. A TLS
 * client comes with the registry entry that held its place during the handshake (its id,
 * counters and -c slot carry over) and a sink for its TLS errors.
 */
export type SocketSource =
  | { handle: OpaqueHandle }
  | AdoptedDescriptor
  | { socket: net.Socket; accepted?: TrackedConnection; onError?: (id: number, err: Error) => void };

export type { ConnectionOrigin };

export class Connection implements TrackedConnection {
  readonly info: NetConnectionInfo;
  readonly socket: net.Socket;
  lastActiveSeconds: number;
  private readonly ctx: NetContext;
  private readonly output: Output;
  private readonly session: ProtocolSession;
  /**
   * Its kind for NetContext.shapeKeepers: transport, TLS or not, session kind; null for a
   * connection whose protocol no byte decided (nothing of a request path ran on it).
   */
  private get shapeKey(): string | null {
    const kind = sessionKind(this.session);
    return kind === null ? null : `${this.info.transport}:${this.closesOutright ? 'plain' : 'tls'}:${kind}`;
  }
  /** The static read buffer of the `onread` path; null in `'data'` mode. */
  private readonly readBuf: Buffer | null;
  /** TLS reading into readBuf: it may be filled again after a read returned false. */
  private readonly readBufRefills: boolean = false;
  private pending: Buffer | null = null;
  private pendingStart = 0;
  private pendingEnd = 0;
  /** Bytes read while input was held: readBuf itself (reading stopped) or a `'data'` chunk. */
  private stashBuf: Buffer | null = null;
  private stashLength = 0;
  private flags = 0;
  private yieldTimer: NodeJS.Immediate | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private readonly onYieldTurnBound = (): void => this.onYieldTurn();
  /** TLS: replies up to SMALL_WRITE_BYTES_MAX are written as copies (see flush). */
  private readonly copiesSmallWrites: boolean;
  /** A plain socket is closed outright once its output is written (TLS first says close_notify). */
  private readonly closesOutright: boolean;
  /** Why the connection closes, for `watch connevents` (memcached's close_reason). */
  private closeReason: CloseReason = 'normal';
  /** Inside session.feed(): a hole filled now is flushed by afterFeed, not by onHoleDone. */
  private feeding = false;
  /** Plain onread sockets: replies written straight to the handle (see DirectWriter). */
  private readonly direct: DirectWriter | null;
  /**
   * TLS sockets reading into readBuf: replies written straight to the TLS handle, one write at
   * a time (SerialWriter); what the sessions write meanwhile waits in the output and goes out
   * as one write when the one in flight completes. The stream is corked meanwhile.
   */
  private readonly tlsWriter: SerialWriter | null = null;
  /** Views of the output buffer by length, so a direct write of a repeated reply size allocates nothing. */
  private readonly views = new Map<number, Buffer>();
  private viewsOf: Buffer | null = null;

  constructor(ctx: NetContext, origin: ConnectionOrigin, source: SocketSource) {
    this.ctx = ctx;
    this.copiesSmallWrites = origin.tls;
    this.closesOutright = !origin.tls;
    if ('handle' in source || 'descriptor' in source) {
      const readBuf = ctx.readBuffers.take();
      this.readBuf = readBuf;
      this.socket = socketWithReadBuffer('handle' in source ? source.handle : source, readBuf, (count) => this.onBytes(readBuf, count));
      const handle = 'handle' in source ? source.handle : handleOf(this.socket);
      this.direct = origin.tls || ctx.directWrites === false || handle === null ? null
        : directWriterFor(handle, (status) => this.onDirectWriteDone(status));
    } else {
      this.direct = null;
      this.socket = source.socket;
      const readBuf = Buffer.allocUnsafe(ctx.settings.readBufferBytes);
      if (origin.tls && ctx.readMode === 'onread' &&
        readTlsIntoBuffer(source.socket as tls.TLSSocket, readBuf, (count) => this.onBytes(readBuf, count))) {
        // TLS into a static buffer, as the onread path (the TLS layer may deliver again after
        // a stop: see stash).
        this.readBuf = readBuf;
        this.readBufRefills = true;
        this.tlsWriter = serialWriterFor(source.socket as tls.TLSSocket, (status) => this.onTlsWriteDone(status));
      } else {
        this.readBuf = null;
        this.socket.on('data', (chunk: Buffer) => {
          if (!this.onBytes(chunk, chunk.length)) this.socket.pause();
        });
      }
    }
    const accepted = 'socket' in source ? source.accepted ?? null : null;
    const onError = 'socket' in source ? source.onError ?? null : null;
    this.info = {
      id: accepted?.info.id ?? ctx.registry.nextId(),
      transport: origin.transport,
      peerName: accepted?.info.peerName ?? peerNameOf(this.socket, origin),
      localName: accepted?.info.localName ?? localNameOf(this.socket, origin),
      protocol: origin.protocol,
      tag: origin.tag,
      lastCommandTime: ctx.registry.nowSeconds,
      stateName: STATE_NEW_CMD,
      push: (data: Buffer) => this.push(data),
    };
    this.lastActiveSeconds = ctx.registry.nowSeconds;
    this.output = new Output(OUTPUT_BASE_BYTES, ctx.outputBuffers.take());
    this.output.onHoleDone = () => this.onHoleDone();
    this.session = ctx.factory.create(this.info, this.output);
    this.socket.on('drain', () => this.onDrain());
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (err: Error) => {
      if (this.closeReason === 'normal') this.closeReason = 'error';
      this.ctx.log(2, `<${this.info.id} connection error: ${err.message}`);
      onError?.(this.info.id, err);
      // node:tls reports a TLS failure after the handshake without closing; memcached closes.
      this.socket.destroy();
    });
    this.socket.on('close', () => this.onClose());
    if (accepted !== null) {
      // Counted, listed and announced (conn_new) when it was accepted.
      ctx.registry.replace(accepted, this);
    } else {
      ctx.registry.add(this);
      ctx.connectionEvents?.opened(this.info);
    }
    if (this.readBufRefills) {
      // Bytes the TLS layer decrypted before the static buffer was in place (a request sent
      // with the end of the handshake) wait in the stream: all of them are taken now (a chunk
      // left there would be lost, nothing listens for 'data'); held input is kept in order.
      for (let chunk = this.socket.read() as Buffer | null; chunk !== null; chunk = this.socket.read() as Buffer | null) {
        this.onBytes(chunk, chunk.length);
      }
      if ((this.flags & Flag.ReadStopped) !== 0) return;
    }
    if (this.readBuf === null || this.readBufRefills) this.socket.resume();
  }

  // --- TrackedConnection

  isIdle(): boolean {
    return (this.flags & (HOLD_INPUT | Flag.Closing | Flag.Closed)) === 0 && this.unsentBytes() === 0 &&
      this.output.holeCount === 0;
  }

  kickIdle(): void {
    this.ctx.log(2, verboseLines.idle(this.info.id));
    this.closeReason = 'idle_timeout';
    // An orderly close: FIN, and under TLS a close_notify first, as memcached's SSL_shutdown()
    // sends. Without it a TLS client that writes to the closed connection and then reads gets
    // a reset instead of the end of the stream.
    this.beginClose();
  }

  /** Unsent bytes queued on the socket (for tests and diagnostics). */
  get writeBacklogBytes(): number {
    return this.unsentBytes();
  }

  /** Graceful stop: read nothing more, finish requests already read, flush, close. */
  stopGracefully(): void {
    if (this.flags & (Flag.Closing | Flag.Closed)) return;
    this.flags |= Flag.Stopping;
    if ((this.flags & Flag.ReadStopped) === 0) {
      this.flags |= Flag.ReadStopped;
      this.socket.pause();
    }
    this.maybeFinish();
  }

  /** Close now, unsent output discarded (server shutdown). */
  destroy(): void {
    if (this.closeReason === 'normal') this.closeReason = 'shutdown';
    this.flags |= Flag.Closing;
    this.socket.destroy();
  }

  /**
   * ConnectionInfo.push: bytes written outside a read event (`watch` log lines). Returns the
   * bytes still queued on the socket, or -1 once the connection is closing.
   */
  private push(data: Buffer): number {
    const sock = this.socket;
    if ((this.flags & (Flag.Closing | Flag.Closed)) !== 0 || sock.destroyed || !sock.writable) return -1;
    if (data.length > 0) {
      this.ctx.stats.bytes_written += data.length;
      sock.write(data);
    }
    return this.unsentBytes();
  }

  // --- input

  /** One read event. Returns false to stop reading. */
  private onBytes(buf: Buffer, count: number): boolean {
    this.ctx.stats.bytes_read += count;
    this.lastActiveSeconds = this.ctx.registry.nowSeconds;
    const f = this.flags;
    if (f & DROP_INPUT) return this.stopReading();
    if (f & HOLD_INPUT) {
      this.stash(buf, count);
      return this.stopReading();
    }
    this.consume(buf, count);
    this.afterFeed();
    // Keep reading through a yield (the next read is stashed only if it comes); stop at once
    // when output is backed up or the connection is closing.
    if (this.flags & (Flag.Backpressured | DROP_INPUT)) return this.stopReading();
    return true;
  }

  private stopReading(): false {
    this.flags |= Flag.ReadStopped;
    return false;
  }

  private stash(buf: Buffer, count: number): void {
    if (this.readBufRefills && buf === this.readBuf) {
      // The next delivery would overwrite it: held input goes to pending, which pump() feeds
      // before any stash.
      this.keep(buf, 0, count);
      return;
    }
    if (this.stashBuf !== null) {
      // Only the 'data' path can get here (onread stops reading at the first stash); each
      // chunk is its own Buffer, so move the older one into pending to keep byte order.
      if (this.stashBuf === buf) throw new Error('read buffer overwritten while stashed');
      if (!this.keep(this.stashBuf, 0, this.stashLength)) return;
    }
    this.stashBuf = buf;
    this.stashLength = count;
  }

  /** Feed new bytes, keeping the unconsumed tail. */
  private consume(buf: Buffer, count: number): void {
    if (this.pendingEnd === this.pendingStart) {
      const used = this.feedSession(buf, 0, count);
      if (used < count && (this.flags & Flag.Closing) === 0) this.keep(buf, used, count);
    } else if (this.keep(buf, 0, count)) {
      this.feedPending();
    }
  }

  private feedPending(): void {
    const pending = this.pending as Buffer;
    this.pendingStart += this.feedSession(pending, this.pendingStart, this.pendingEnd);
    if (this.pendingStart === this.pendingEnd || (this.flags & Flag.Closing) !== 0) this.clearPending();
  }

  private feedSession(buf: Buffer, start: number, end: number): number {
    const info = this.info;
    info.stateName = STATE_PARSE_CMD;
    const session = this.session;
    this.feeding = true;
    let used: number;
    try {
      used = session.feed(buf, start, end);
    } finally {
      this.feeding = false;
    }
    if (!(used >= 0 && used <= end - start)) throw new Error(`session consumed ${used} of ${end - start} bytes`);
    const status = session.status;
    if (status === FeedStatus.Yield) {
      // A yield that consumed nothing would spin through setImmediate forever.
      if (used === 0) throw new Error('session yielded without consuming');
      this.flags |= Flag.Yielding;
      this.ctx.stats.conn_yields++;
      info.stateName = STATE_NEW_CMD;
    } else if (status === FeedStatus.Close) {
      this.flags |= Flag.Closing;
      if (session.closeIsError === true && this.closeReason === 'normal') this.closeReason = 'error';
    } else if (info.stateName === STATE_PARSE_CMD) {
      // A session may have named its wait itself (conn_nread); otherwise the connection is
      // waiting for a new command, or for the rest of a partial line.
      info.stateName = used === end - start ? STATE_NEW_CMD : STATE_READ;
    }
    return used;
  }

  // --- pending buffer

  /** Append src[start, end) to pending. False (and the connection closes) past the cap. */
  private keep(src: Buffer, start: number, end: number): boolean {
    const count = end - start;
    if (!this.reservePending(count)) {
      this.ctx.log(1, `<${this.info.id} closing: more than ${this.ctx.pendingBytesMax} bytes of incomplete request`);
      this.flags |= Flag.Closing;
      this.clearPending();
      this.beginClose();
      return false;
    }
    src.copy(this.pending as Buffer, this.pendingEnd, start, end);
    this.pendingEnd += count;
    return true;
  }

  private reservePending(count: number): boolean {
    const held = this.pendingEnd - this.pendingStart;
    const need = held + count;
    if (need > this.ctx.pendingBytesMax) return false;
    const pending = this.pending;
    if (pending !== null && this.pendingEnd + count <= pending.length) return true;
    if (pending !== null && need <= pending.length) {
      pending.copyWithin(0, this.pendingStart, this.pendingEnd);
    } else {
      let size = Math.max(pending === null ? 0 : pending.length, this.ctx.settings.readBufferBytes);
      while (size < need) size *= 2;
      const next = Buffer.allocUnsafe(Math.min(size, this.ctx.pendingBytesMax));
      if (pending !== null) pending.copy(next, 0, this.pendingStart, this.pendingEnd);
      this.pending = next;
    }
    this.pendingStart = 0;
    this.pendingEnd = held;
    return true;
  }

  private clearPending(): void {
    this.pendingStart = 0;
    this.pendingEnd = 0;
    // Keep a base-size buffer for the next partial request; drop a grown one so one big
    // request does not pin memory for the life of the connection.
    if (this.pending !== null && this.pending.length > 2 * this.ctx.settings.readBufferBytes) this.pending = null;
  }

  // --- output and flow control

  private afterFeed(): void {
    this.flush();
    if (this.flags & Flag.Closing) {
      this.beginClose();
      return;
    }
    const sock = this.socket;
    if (this.unsentBytes() + this.waitingForTlsWrite() > this.ctx.settings.writeBacklogBytesMax &&
      (sock.writableNeedDrain || (this.direct !== null && this.direct.pendingBytes > 0) ||
        (this.tlsWriter !== null && this.tlsWriter.inFlight))) {
      this.flags |= Flag.Backpressured;
      this.info.stateName = STATE_MWRITE;
    }
    if (this.holdsTooMuchForHoles()) {
      this.flags |= Flag.HoleWait;
      this.info.stateName = STATE_MWRITE;
    }
    if ((this.flags & HOLD_INPUT) === Flag.Yielding && this.yieldTimer === null) {
      this.yieldTimer = setImmediate(this.onYieldTurnBound);
    }
    this.maybeFinish();
  }

  /** Write the output once. The buffer is reused only when the kernel took every byte now. */
  private flush(): void {
    const out = this.output;
    const length = out.length;
    const from = out.sent;
    const sock = this.socket;
    if (length === from) {
      // Everything went out earlier (behind holes now filled): start the buffer over.
      if (from > 0 && out.holeCount === 0) {
        if (sock.writableLength === 0) out.reset();
        else out.detach();
      }
      return;
    }
    if ((this.flags & Flag.Closed) !== 0 || sock.destroyed || !sock.writable) {
      out.discard();
      return;
    }
    if (out.holeCount > 0) {
      this.flushBeforeHoles();
      return;
    }
    const tw = this.tlsWriter;
    if (tw !== null && from === 0) {
      // The completion writes what gathers meanwhile.
      if (tw.inFlight) return;
      if (sock.writableLength === 0) {
        this.ctx.stats.bytes_written += length;
        const r = tw.write(this.viewOf(out.buf, length));
        // Taken either way (encrypted, or copied by the TLS layer): the buffer is free again.
        out.reset();
        if (r === 1) sock.cork();
        else if (r < 0) this.socket.destroy();
        return;
      }
    }
    this.ctx.stats.bytes_written += length - from;
    if (this.copiesSmallWrites && length - from <= SMALL_WRITE_BYTES_MAX) {
      // A TLS write never completes inside write(), so detaching would allocate a fresh
      // output buffer per read event; copying a small reply is cheaper (measured in doc/tls.md).
      sock.write(Buffer.from(out.buf.subarray(from, length)));
      out.reset();
      return;
    }
    if (this.direct !== null && from === 0 && sock.writableLength === 0) {
      const r = this.direct.write(this.viewOf(out.buf, length));
      if (r === 0) out.reset();
      else if (r === 1) out.detach();
      else {
        out.reset();
        this.socket.destroy();
      }
      return;
    }
    sock.write(out.buf.subarray(from, length));
    // writableLength drops back to 0 inside write() only when libuv wrote everything
    // synchronously; otherwise the socket still references the buffer, so hand it over.
    if (sock.writableLength === 0) out.reset();
    else out.detach();
  }

  /** buf[0, length) as a Buffer, reused while `buf` is the same and the length repeats. */
  private viewOf(buf: Buffer, length: number): Buffer {
    if (this.viewsOf !== buf) {
      this.views.clear();
      this.viewsOf = buf;
    }
    let view = this.views.get(length);
    if (view === undefined) {
      view = buf.subarray(0, length);
      if (this.views.size < VIEW_CACHE_ENTRIES) this.views.set(length, view);
    }
    return view;
  }

  /** Bytes written but not yet taken by the kernel: the stream's queue plus direct writes. */
  private unsentBytes(): number {
    const tw = this.tlsWriter;
    return this.socket.writableLength + (this.direct === null ? 0 : this.direct.pendingBytes) +
      (tw === null ? 0 : tw.pendingBytes);
  }

  /** Output held back while a TLS write is in flight (see tlsWriter). */
  private waitingForTlsWrite(): number {
    const tw = this.tlsWriter;
    return tw !== null && tw.inFlight ? this.output.length - this.output.sent : 0;
  }

  /**
   * The TLS write in flight completed: the stream's writes queued meanwhile (cork) go first,
   * then what the sessions wrote meanwhile, as one write.
   */
  private onTlsWriteDone(status: number): void {
    if (status < 0) {
      this.socket.destroy();
      return;
    }
    const sock = this.socket;
    if (sock.writableCorked > 0) sock.uncork();
    if ((this.flags & Flag.Closed) !== 0) return;
    this.flush();
    if ((this.flags & Flag.Closing) !== 0) {
      if (this.closeTimer !== null && this.output.holeCount === 0 && !(this.tlsWriter as SerialWriter).inFlight) {
        this.finishClose();
      }
      return;
    }
    if (this.unsentBytes() === 0) this.onDrain();
  }

  /** A direct write that had to wait has completed. */
  private onDirectWriteDone(status: number): void {
    if (status < 0) {
      this.socket.destroy();
      return;
    }
    if ((this.flags & Flag.Closing) !== 0 && this.closeTimer !== null && this.output.holeCount === 0) {
      this.finishClose();
      return;
    }
    if (this.unsentBytes() === 0) this.onDrain();
  }

  /** Write what precedes the first pending hole; keep the rest for when the holes fill. */
  private flushBeforeHoles(): void {
    const out = this.output;
    const from = out.sent;
    const upTo = out.sendable();
    if (upTo === from) return;
    const sock = this.socket;
    this.ctx.stats.bytes_written += upTo - from;
    sock.write(out.buf.subarray(from, upTo));
    out.markSent(upTo, sock.writableLength === 0);
  }

  /** Unsent bytes, held output included, are over the cap while holes are pending. */
  private holdsTooMuchForHoles(): boolean {
    const out = this.output;
    return out.holeCount > 0 &&
      out.length - out.sent + this.unsentBytes() > this.ctx.settings.writeBacklogBytesMax;
  }

  /** An extstore read filled (or missed) the first pending hole. */
  private onHoleDone(): void {
    if (this.feeding || (this.flags & Flag.Closed) !== 0) return;
    this.flush();
    const out = this.output;
    if ((this.flags & Flag.Closing) !== 0) {
      // A close waits for pending holes (see beginClose); the last one lets it finish.
      if (out.holeCount === 0 && this.closeTimer !== null) this.finishClose();
      return;
    }
    if ((this.flags & Flag.HoleWait) !== 0 && !this.holdsTooMuchForHoles()) {
      this.flags &= ~Flag.HoleWait;
      // 'drain' or a scheduled yield turn pumps if either is pending; otherwise pump now.
      if ((this.flags & Flag.Backpressured) === 0 && this.yieldTimer === null) {
        this.flags &= ~Flag.Yielding;
        this.pump();
        return;
      }
    }
    if (out.holeCount === 0) this.maybeFinish();
  }

  private onYieldTurn(): void {
    this.yieldTimer = null;
    if (this.flags & (Flag.Closing | Flag.Closed | Flag.Backpressured | Flag.HoleWait)) return;
    this.flags &= ~Flag.Yielding;
    this.pump();
  }

  private onDrain(): void {
    if ((this.flags & Flag.Backpressured) === 0 || (this.flags & (Flag.Closing | Flag.Closed)) !== 0) return;
    this.flags &= ~Flag.Backpressured;
    // A scheduled yield turn will pump, or a hole fill will; otherwise pump now.
    if (this.yieldTimer !== null || (this.flags & Flag.HoleWait) !== 0) return;
    this.flags &= ~Flag.Yielding;
    this.pump();
  }

  /** Continue with held input: pending first, then stashed bytes, then reading again. */
  private pump(): void {
    if (this.pendingEnd > this.pendingStart) this.feedPending();
    if ((this.flags & (Flag.Yielding | Flag.Closing)) === 0 && this.stashBuf !== null) {
      const buf = this.stashBuf;
      const count = this.stashLength;
      this.stashBuf = null;
      this.stashLength = 0;
      this.consume(buf, count);
    }
    this.afterFeed();
    this.maybeResumeReading();
  }

  private maybeResumeReading(): void {
    const f = this.flags;
    if ((f & Flag.ReadStopped) === 0 || (f & (HOLD_INPUT | DROP_INPUT | Flag.PeerEnded)) !== 0) return;
    if (this.stashBuf !== null) return;
    this.flags &= ~Flag.ReadStopped;
    this.socket.resume();
  }

  // --- closing

  private onEnd(): void {
    this.flags |= Flag.PeerEnded;
    this.maybeFinish();
  }

  /** After FIN or a graceful stop: close once every complete request read has been served. */
  private maybeFinish(): void {
    const f = this.flags;
    if ((f & (Flag.PeerEnded | Flag.Stopping)) === 0) return;
    if ((f & (HOLD_INPUT | Flag.Closed)) !== 0 || this.stashBuf !== null) return;
    if (this.output.holeCount > 0) return; // onHoleDone comes back here
    this.beginClose();
  }

  /** Flush what was written, then destroy; bounded in time by CLOSE_FLUSH_MS. */
  private beginClose(): void {
    if (this.closeTimer !== null || (this.flags & Flag.Closed) !== 0) return;
    this.flags |= Flag.Closing;
    this.info.stateName = STATE_CLOSING;
    this.clearPending();
    this.stashBuf = null;
    this.stashLength = 0;
    if (this.yieldTimer !== null) clearImmediate(this.yieldTimer);
    this.yieldTimer = null;
    this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_FLUSH_MS);
    this.closeTimer.unref();
    // Replies still waiting for extstore reads go out first (onHoleDone finishes the close).
    if (this.output.holeCount > 0) return;
    this.finishClose();
  }

  /**
   * Close once the last reply is written. memcached close()s a socket as soon as its output
   * is sent, so a request that arrives after that is answered with a reset at once. A
   * half-close (FIN now, the close on a later turn) would take such a request in silently,
   * and a client that checks the connection before its next send (memcached's
   * binary-sasl.t does) would find it still open. TLS says close_notify first.
   */
  private finishClose(): void {
    if (!this.closesOutright) {
      // onTlsWriteDone comes back here (ending the stream would write under the one in flight).
      if (this.tlsWriter !== null && this.tlsWriter.inFlight) return;
      this.socket.destroySoon();
      return;
    }
    if (this.unsentBytes() === 0) {
      this.socket.destroy();
      return;
    }
    // onDirectWriteDone comes back here once the direct write is taken; a stream write's
    // callback runs after those queued before it
    if (this.direct !== null && this.direct.pendingBytes > 0) return;
    this.socket.write(NOTHING, () => this.finishClose());
  }

  private onClose(): void {
    this.flags |= Flag.Closed | Flag.Closing;
    if (this.yieldTimer !== null) clearImmediate(this.yieldTimer);
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.yieldTimer = null;
    this.pending = null;
    this.stashBuf = null;
    this.ctx.registry.remove(this);
    this.ctx.connectionEvents?.closed(this.info, this.closeReason);
    this.ctx.log(2, verboseLines.closed(this.info.id));
    this.output.discard();
    this.session.release();
    // The handle is closed: libuv reads into the read buffer no more, and the output buffer
    // is given back only when no extstore read can still fill it (Output.surrender).
    const out = this.output.surrender();
    if (out !== null) this.ctx.outputBuffers.give(out);
    // The onread path's buffer is the pool's; TLS's (readBufRefills) is its own.
    if (this.readBuf !== null && !this.readBufRefills) this.ctx.readBuffers.give(this.readBuf);
    this.views.clear();
    this.viewsOf = null;
    // Kept for its objects' hidden classes (NetContext.shapeKeepers), unless an extstore read
    // may still fill its output buffer, which it then holds.
    const key = this.shapeKey;
    if (out !== null && key !== null) this.ctx.shapeKeepers?.set(key, this);
  }
}

/** memcached's `stats conns` address text: "tcp:1.2.3.4:5", "tcp6:[::1]:5", "unix:/path". */
export function addressName(transport: string, address: string | undefined, port: number | undefined): string {
  if (address === undefined) return `${transport}:<unknown>`;
  if (address.includes(':')) return `${transport}6:[${address}]:${port ?? 0}`;
  return `${transport}:${address}:${port ?? 0}`;
}

function peerNameOf(sock: net.Socket, origin: ConnectionOrigin): string {
  if (origin.transport === 'unix') return `unix:${origin.socketPath ?? ''}`;
  return addressName('tcp', sock.remoteAddress, sock.remotePort);
}

function localNameOf(sock: net.Socket, origin: ConnectionOrigin): string {
  if (origin.transport === 'unix') return `unix:${origin.socketPath ?? ''}`;
  return addressName('tcp', sock.localAddress, sock.localPort);
}
