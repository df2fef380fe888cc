/**
 * Byte copies on the request path, without allocating.
 *
 * `dst.set(src.subarray(a, b))` and `Buffer#copy` (Node 20) both make a view object per call,
 * and V8 copies out of or into shared memory (the store's SharedArrayBuffer) with relaxed
 * atomics, so a short copy costs 60 to 90 ns whatever its length. A loop that moves 32-bit
 * words through DataViews (unaligned access is allowed) does 100 bytes in about 33 ns.
 * Measured on this machine (Node 20, 2M copies each, SharedArrayBuffer source, unaligned):
 *
 *   bytes   byte loop   DataView words   set(subarray)
 *      13     15 ns         13 ns            68 ns
 *     100     80 ns         33 ns            83 ns
 *     400    309 ns        103 ns           146 ns
 *    1000    773 ns        252 ns           232 ns
 *
 * so runs up to COPY_LOOP_BYTES_MAX go by words and longer ones by set.
 *
 * The DataViews: one for the last source and one for the last destination seen, made again
 * only when the array changes (a connection's output buffer and an arena segment stay the
 * same from one copy to the next).
 */

/** The longest run copied word by word; longer runs use TypedArray#set. */
export const COPY_LOOP_BYTES_MAX = 768;

/** Copy src[srcStart, srcStart + n) to dst[dstStart, dstStart + n) by a byte loop (short runs, both arrays unshared). */
export function copySmall(dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number): void {
  for (let i = 0; i < n; i++) dst[dstStart + i] = src[srcStart + i];
}

/**
 * Word copies through two DataViews, one for the last source and one for the last
 * destination, kept per direction (V8 optimizes a DataView access for one kind of buffer;
 * a call site that sees both shared and unshared ones runs several times slower).
 */
class WordCopier {
  private srcArray: Uint8Array = EMPTY;
  private srcView: DataView<ArrayBufferLike> = EMPTY_VIEW;
  private dstArray: Uint8Array = EMPTY;
  private dstView: DataView<ArrayBufferLike> = EMPTY_VIEW;

  copy(dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number): void {
    if (n > COPY_LOOP_BYTES_MAX) {
      dst.set(src.subarray(srcStart, srcStart + n), dstStart);
      return;
    }
    if (dstStart < 0 || srcStart < 0 || dstStart + n > dst.length || srcStart + n > src.length) {
      throw new RangeError(`copy of ${n} bytes from ${srcStart} of ${src.length} to ${dstStart} of ${dst.length}`);
    }
    if (src !== this.srcArray) {
      this.srcArray = src;
      this.srcView = new DataView(src.buffer, src.byteOffset, src.byteLength);
    }
    if (dst !== this.dstArray) {
      this.dstArray = dst;
      this.dstView = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
    }
    const s = this.srcView;
    const d = this.dstView;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      d.setUint32(dstStart + i, s.getUint32(srcStart + i, true), true);
      d.setUint32(dstStart + i + 4, s.getUint32(srcStart + i + 4, true), true);
    }
    for (; i < n; i++) dst[dstStart + i] = src[srcStart + i];
  }
}

const EMPTY = new Uint8Array(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer);
const fromShared = new WordCopier();
const toShared = new WordCopier();

/** Copy out of the store's shared memory: src[srcStart, srcStart + n) to dst at dstStart. */
export function copyFromShared(dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number): void {
  fromShared.copy(dst, dstStart, src, srcStart, n);
}

/** Copy into the store's shared memory: src[srcStart, srcStart + n) to dst at dstStart. */
export function copyToShared(dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number): void {
  toShared.copy(dst, dstStart, src, srcStart, n);
}
