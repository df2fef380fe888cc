/**
 * Spare connection buffers, one pool per serving thread: a closed connection's read buffer and
 * output buffer wait here for the next connection instead of becoming garbage.
 *
 * Why: each connection has a static read buffer (settings.readBufferBytes) and an output
 * buffer (OUTPUT_BASE_BYTES), about 80 KiB of memory outside V8's heap. V8 counts such memory
 * and runs a full mark-compact after enough of it was allocated, so a client that connects
 * for every request (PHP's default) cost a mark-compact every few hundred connections: 24% of
 * the server's CPU under a connect/request/close loop (doc/network.md, "Connections").
 *
 * A buffer is given back only when nothing can still touch it: the read buffer once the socket
 * has closed (libuv reads into it no more), the output buffer once it holds no reply waiting
 * for an extstore read (Connection.onClose). At most `countMax` of each are kept, so a burst
 * of closes does not pin memory for good.
 */
export class BufferPool {
  private readonly spare: Buffer[] = [];

  constructor(readonly bytes: number, private readonly countMax: number) {}

  /** A buffer of `bytes` bytes: a spare one, or a new one (contents undefined either way). */
  take(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafe(this.bytes);
  }

  /** Keep `buf` for a later take(); one of another size or a view into a larger one is dropped. */
  give(buf: Buffer): void {
    if (buf.length !== this.bytes || buf.byteOffset !== 0 || buf.buffer.byteLength !== this.bytes) return;
    if (this.spare.length < this.countMax) this.spare.push(buf);
  }

  /** Buffers kept now (tests). */
  get spareCount(): number {
    return this.spare.length;
  }
}
