/**
 * Output: a connection's reply buffer. Protocol code appends replies here; the connection
 * writes `buf[0, length)` to the socket once per read event and then calls `reset()`.
 *
 * Not for: framing, socket writes, backpressure (the connection owns those).
 *
 * The buffer grows when one reply needs more room (a 1 MiB value) and shrinks back to its
 * base size on reset, so a single large reply does not pin memory.
 *
 * Holes: a reply whose value is still being read from disk (extstore) is reserved in place,
 * at its full size, and filled when the read completes; replies after it are appended as
 * usual. Only `buf[0, sendable())` may be written to the socket, so replies leave in request
 * order however reads complete. A read that fails turns the hole into its miss reply (which
 * is never longer); the bytes after it move up.
 *
 *   buf: [ sendable ........ ][ hole: VALUE k 0 5\r\n?????\r\n ][ END\r\n ... ]
 *                             ^ hole.start                      ^ hole.end
 */

import { copyPlain, decimalLength, Views, writeDecimal } from '../bytes';

/** An output buffer's size when it starts and after a large reply went out. */
export const OUTPUT_BASE_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** A reserved reply region; positions move when bytes before it are sent or shrink. */
export class Hole {
  start = 0;
  end = 0;
  /** Filled, turned into its miss reply, or dropped: nothing more happens to it. */
  done = false;
  /** The connection went away (or the region was truncated away) before the fill. */
  dead = false;
  /** Its read was counted as aborted when it died (truncate's caller did; see disk-value.ts). */
  abortCounted = false;

  constructor(
    /** What the region becomes when the value cannot be read (may be empty). */
    readonly miss: Buffer,
  ) {}
}

export class Output {
  buf: Buffer;
  length = 0;
  /** Called when the first pending hole is resolved (more bytes became sendable). */
  onHoleDone: (() => void) | null = null;
  /** Bytes at the start of buf already handed to the socket (only while holes are pending). */
  sent = 0;
  /**
   * Values read from extstore (at once or through a hole) appended since the owner last set
   * this to 0: a text session that drops its unsent replies counts them as aborted reads, as
   * memcached counts the reads it queued for them (get_aborted_extstore).
   */
  diskValues = 0;
  private readonly baseBytes: number;
  /** Pending holes, in buffer order. */
  private readonly holes: Hole[] = [];
  private readonly views = new Views();

  /** `initial`: a spare buffer of `baseBytes` to start with (a connection's, from its thread's pool). */
  constructor(baseBytes = OUTPUT_BASE_BYTES, initial: Buffer | null = null) {
    this.baseBytes = baseBytes;
    this.buf = initial !== null && initial.length === baseBytes ? initial : Buffer.allocUnsafe(baseBytes);
  }

  /**
   * The owner is done with this output (its connection closed): hand back its buffer for
   * another owner (whoever keeps spares decides which sizes it keeps: BufferPool.give), or null
   * when it may still be written (a hole pending). Anything written afterwards goes to a
   * buffer of its own.
   */
  surrender(): Buffer | null {
    if (this.holes.length > 0) return null;
    const buf = this.buf;
    this.buf = EMPTY;
    this.length = 0;
    this.sent = 0;
    this.views.forget();
    return buf;
  }

  /** A DataView over buf (made again only when buf is replaced), for word copies into it. */
  get view(): DataView<ArrayBufferLike> {
    return this.views.of(this.buf);
  }

  /** Make room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    let size = Math.max(this.buf.length * 2, this.baseBytes);
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** Forget the contents; drop a grown buffer so memory returns to the base size. */
  reset(): void {
    if (this.holes.length > 0) throw new Error('Output.reset with holes pending');
    this.length = 0;
    this.sent = 0;
    if (this.buf.length > this.baseBytes) this.buf = Buffer.allocUnsafe(this.baseBytes);
  }

  /**
   * Hand the current buffer over (for an asynchronous socket write that keeps a reference)
   * and continue with a fresh one.
   */
  detach(): Buffer {
    if (this.holes.length > 0) throw new Error('Output.detach with holes pending');
    const out = this.buf.subarray(this.sent, this.length);
    this.sent = 0;
    this.buf = Buffer.allocUnsafe(this.baseBytes);
    this.length = 0;
    return out;
  }

  /** Append a string of ASCII (latin1) characters. */
  ascii(s: string): void {
    this.ensure(s.length);
    this.length += this.buf.write(s, this.length, 'latin1');
  }

  /** Append bytes src[start, end). */
  bytes(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    copyPlain(this.buf, this.length, src, start, n);
    this.length += n;
  }

  /** Append one byte. */
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.length++] = b;
  }

  crlf(): void {
    this.ensure(2);
    this.buf[this.length++] = 13;
    this.buf[this.length++] = 10;
  }

  /** Append a non-negative integer below 2^53 in decimal, without allocating. */
  uint(v: number): void {
    this.ensure(16);
    if (v < 10) {
      this.buf[this.length++] = 48 + v;
      return;
    }
    const digits = decimalLength(v);
    writeDecimal(this.buf, this.length, v, digits);
    this.length += digits;
  }

  /** Append an unsigned 64-bit integer in decimal. */
  u64(v: bigint): void {
    if (v < 9007199254740992n) this.uint(Number(v));
    else this.ascii(v.toString());
  }

  // ---------------------------------------------------------------- holes

  /** Holes not yet filled. */
  get holeCount(): number {
    return this.holes.length;
  }

  /** Bytes up to which the socket may be written now: everything before the first pending hole. */
  sendable(): number {
    return this.holes.length > 0 ? this.holes[0].start : this.length;
  }

  /**
   * Turn [start, length) (a reply header already appended) plus the next `moreBytes` into
   * one hole; `length` moves past the region. The caller writes what it knows of the rest
   * into buf now and fills the value later with fillHole(), or calls missHole().
   */
  holeFrom(start: number, moreBytes: number, miss: Buffer): Hole {
    const last = this.holes.length > 0 ? this.holes[this.holes.length - 1].end : 0;
    if (start < last || start > this.length) throw new Error('hole overlaps another or lies past the end');
    if (miss.length > this.length - start + moreBytes) throw new Error('miss reply longer than its hole');
    this.ensure(moreBytes);
    const hole = new Hole(miss);
    hole.start = start;
    this.length += moreBytes;
    hole.end = this.length;
    this.holes.push(hole);
    return hole;
  }

  /** Copy src[srcStart, srcEnd) into the hole at `at` bytes from its start; the hole is done. */
  fillHole(hole: Hole, at: number, src: Uint8Array, srcStart: number, srcEnd: number): void {
    if (hole.done) return;
    if (hole.start + at + (srcEnd - srcStart) > hole.end) throw new Error('hole fill past its end');
    this.buf.set(src.subarray(srcStart, srcEnd), hole.start + at);
    this.resolve(hole);
  }

  /** The value could not be read: the hole becomes its miss reply; later bytes move up. */
  missHole(hole: Hole): void {
    if (hole.done) return;
    const miss = hole.miss;
    const size = hole.end - hole.start;
    const shrink = size - miss.length;
    miss.copy(this.buf, hole.start);
    if (shrink > 0) {
      this.buf.copyWithin(hole.start + miss.length, hole.end, this.length);
      this.length -= shrink;
      for (const h of this.holes) {
        if (h.start >= hole.end) {
          h.start -= shrink;
          h.end -= shrink;
        }
      }
      hole.end -= shrink;
    }
    this.resolve(hole);
  }

  private resolve(hole: Hole): void {
    hole.done = true;
    const i = this.holes.indexOf(hole);
    if (i >= 0) this.holes.splice(i, 1);
    if (i === 0 && this.onHoleDone !== null) this.onHoleDone();
  }

  /**
   * buf[sent, upTo) was handed to the socket (only the connection calls this, between feeds:
   * positions move). `reuse`: the socket has no bytes of this buffer queued, so they may be
   * overwritten. Once half the buffer is sent bytes, the rest moves to the front (to a fresh
   * buffer unless `reuse`), so a long pipeline behind holes copies each byte O(1) times.
   */
  markSent(upTo: number, reuse: boolean): void {
    if (upTo < this.sent || upTo > this.sendable()) throw new Error('markSent outside the sendable bytes');
    this.sent = upTo;
    if (this.sent < this.buf.length >>> 1) return;
    const n = this.sent;
    const rest = this.length - n;
    if (reuse) {
      this.buf.copyWithin(0, n, this.length);
    } else {
      const next = Buffer.allocUnsafe(Math.max(this.baseBytes, rest * 2));
      this.buf.copy(next, 0, n, this.length);
      this.buf = next;
    }
    this.length = rest;
    this.sent = 0;
    for (const h of this.holes) {
      h.start -= n;
      h.end -= n;
    }
  }

  /**
   * Drop everything from `length` on (memcached discarding unsent replies); holes there die.
   * Returns how many holes (disk reads in flight) died. Their late completions are not counted
   * again: the caller counts every dropped disk value (diskValues) as aborted now, as memcached
   * has by the time it runs the connection's next command.
   */
  truncate(length: number): number {
    if (length >= this.length) return 0;
    let killed = 0;
    while (this.holes.length > 0 && this.holes[this.holes.length - 1].end > length) {
      const h = this.holes.pop() as Hole;
      if (h.start < length) throw new Error('truncate inside a hole');
      h.dead = true;
      h.done = true;
      h.abortCounted = true;
      killed++;
    }
    this.length = length;
    return killed;
  }

  /** The connection is gone: holes die (late fills are ignored), contents are dropped. */
  discard(): void {
    for (const h of this.holes) {
      h.dead = true;
      h.done = true;
    }
    this.holes.length = 0;
    this.reset();
  }
}
