/**
 * Output: a connection's reply buffer. Protocol code appends replies here; the connection
 * writes `buf[0, length)` to the socket once per read event and then calls `reset()`.
 *
 * Not for: framing, socket writes, backpressure (the connection owns those).
 *
 * The buffer grows when one reply needs more room (a 1 MiB value) and shrinks back to its
 * base size on reset, so a single large reply does not pin memory.
 */
export class Output {
  buf: Buffer;
  length = 0;
  private readonly baseBytes: number;

  constructor(baseBytes = 64 * 1024) {
    this.baseBytes = baseBytes;
    this.buf = Buffer.allocUnsafe(baseBytes);
  }

  /** Make room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** Forget the contents; drop a grown buffer so memory returns to the base size. */
  reset(): void {
    this.length = 0;
    if (this.buf.length > this.baseBytes) this.buf = Buffer.allocUnsafe(this.baseBytes);
  }

  /**
   * Hand the current buffer over (for an asynchronous socket write that keeps a reference)
   * and continue with a fresh one.
   */
  detach(): Buffer {
    const out = this.buf.subarray(0, this.length);
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
    this.buf.set(src.subarray(start, end), this.length);
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
    const b = this.buf;
    if (v < 10) {
      b[this.length++] = 48 + v;
      return;
    }
    let digits = 0;
    for (let t = v; t >= 1; t = Math.floor(t / 10)) digits++;
    let p = this.length + digits;
    this.length = p;
    while (v >= 1) {
      const q = Math.floor(v / 10);
      b[--p] = 48 + (v - q * 10);
      v = q;
    }
  }

  /** Append an unsigned 64-bit integer in decimal. */
  u64(v: bigint): void {
    if (v < 9007199254740992n) this.uint(Number(v));
    else this.ascii(v.toString());
  }
}
