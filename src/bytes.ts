/**
 * Byte copies on the request path, without allocating (and decimal digits written the same
 * way: decimalLength, writeDecimal).
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
 * so runs up to COPY_LOOP_BYTES_MAX go by words and longer ones by set; without views, runs up
 * to COPY_SMALL_BYTES_MAX go by a byte loop.
 *
 * The DataViews are made once per array and kept beside it: one per arena segment (the slab
 * allocator), one for a connection's output buffer (Output), one for the last input buffer
 * a session read a value from (Views). Making one per copy would be the garbage this avoids.
 */

/** The longest run copied word by word; longer runs use TypedArray#set. */
export const COPY_LOOP_BYTES_MAX = 768;

/**
 * Runs from this long go through the native addon's memmove when it is installed
 * (useNativeCopy). V8 copies into or out of a SharedArrayBuffer (the store's arena) with
 * relaxed atomic accesses: `relaxed_memmove` was 10% of the server's cycles with 4 KiB values.
 * Measured on this machine (Node 20, 200k copies each between an 8 MiB SharedArrayBuffer at
 * scattered offsets and a Buffer, ns per copy):
 *
 *   bytes   DataView words   set(subarray)   addon copyBytes
 *     256        183              165              130
 *     512        331              323              127
 *    1024        629              425              129
 *    4096       1919             1166              173
 *   16384       7444             4680              410
 *
 * The call itself costs about 120 ns, so shorter runs stay in JavaScript.
 */
export const NATIVE_COPY_BYTES_MIN = 512;

/** The addon's memmove (copyBytes), once installed; null: V8's own copies. */
let nativeCopy: ((dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, n: number) => void) | null = null;

/** Copy long runs with the addon from now on (null: V8's own again, for tests). */
export function useNativeCopy(addon: { copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, n: number): void } | null): void {
  nativeCopy = addon === null ? null : addon.copyBytes;
}

/** Copy src[srcStart, srcStart + n) to dst at dstStart, for runs past the word loop. */
export function copyBulk(dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number): void {
  if (nativeCopy !== null && n >= NATIVE_COPY_BYTES_MIN) nativeCopy(dst, dstStart, src, srcStart, n);
  else dst.set(src.subarray(srcStart, srcStart + n), dstStart);
}

/** Runs up to this many bytes go by a byte loop when no DataViews are at hand. */
export const COPY_SMALL_BYTES_MAX = 32;

/** Copy src[srcStart, srcStart + n) to dst[dstStart, dstStart + n) by a byte loop (short runs). */
export function copySmall(dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number): void {
  for (let i = 0; i < n; i++) dst[dstStart + i] = src[srcStart + i];
}

/** Copy without views: a byte loop for short runs, TypedArray#set for longer ones. */
export function copyPlain(dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number): void {
  if (n <= COPY_SMALL_BYTES_MAX) copySmall(dst, dstStart, src, srcStart, n);
  else copyBulk(dst, dstStart, src, srcStart, n);
}

/**
 * Copy src[srcStart, srcStart + n) to dst[dstStart, dstStart + n), given a DataView over each
 * array's bytes (the same range as the array: `Views.of`). Words are read and written as
 * int32: a uint32 above 2^31 is a heap number to V8, allocated when it is not kept in a
 * register. The ranges must not overlap.
 */
export function copyWords(
  dst: Uint8Array, dstView: DataView<ArrayBufferLike>, dstStart: number,
  src: Uint8Array, srcView: DataView<ArrayBufferLike>, srcStart: number, n: number,
): void {
  if (n > COPY_LOOP_BYTES_MAX || (n >= NATIVE_COPY_BYTES_MIN && nativeCopy !== null)) {
    copyBulk(dst, dstStart, src, srcStart, n);
    return;
  }
  if (dstStart < 0 || srcStart < 0 || dstStart + n > dst.length || srcStart + n > src.length) {
    throw new RangeError(`copy of ${n} bytes from ${srcStart} of ${src.length} to ${dstStart} of ${dst.length}`);
  }
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    dstView.setInt32(dstStart + i, srcView.getInt32(srcStart + i, true), true);
    dstView.setInt32(dstStart + i + 4, srcView.getInt32(srcStart + i + 4, true), true);
  }
  for (; i < n; i++) dst[dstStart + i] = src[srcStart + i];
}

/** A DataView over an array's bytes, made again only when the array changes (one entry). */
export class Views {
  private array: Uint8Array = EMPTY;
  private view: DataView<ArrayBufferLike> = EMPTY_VIEW;

  of(a: Uint8Array): DataView<ArrayBufferLike> {
    if (a !== this.array) {
      this.array = a;
      this.view = viewOf(a);
    }
    return this.view;
  }

  /** Let go of the array (it went back to a pool). */
  forget(): void {
    this.array = EMPTY;
    this.view = EMPTY_VIEW;
  }
}

/** A DataView over exactly the bytes of `a`. */
export function viewOf(a: Uint8Array): DataView<ArrayBufferLike> {
  return new DataView(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * `buf.indexOf(byte, from)` without its property load: V8's optimized code reads a Buffer's
 * `indexOf` through the generic load stub on every call (FastBuffer's prototype chain is not
 * one it embeds), 10.5 against 7.7 ns per 31-byte line found here (Node 20, 2.6M lines).
 */
const BUFFER_INDEX_OF = Buffer.prototype.indexOf;
export function indexOfByte(buf: Buffer, byte: number, from: number): number {
  return BUFFER_INDEX_OF.call(buf, byte, from);
}

/** Buffer#readUInt32LE without its method load (see indexOfByte); no range check. */
export function readU32LE(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
}

/** Buffer#writeUInt32LE without its method load; v must be a uint32; no range check. */
export function writeU32LE(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

const EMPTY = new Uint8Array(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer);

/** Decimal digits of a non-negative integer below 2^53. */
export function decimalLength(v: number): number {
  let digits = 1;
  while (v >= 10) {
    v = Math.floor(v / 10);
    digits++;
  }
  return digits;
}

/** Write the `count` decimal digits of `v` (below 2^53) at b[at], without allocating. */
export function writeDecimal(b: Uint8Array, at: number, v: number, count: number): void {
  for (let p = at + count - 1; p >= at; p--) {
    const q = Math.floor(v / 10);
    b[p] = 0x30 + (v - q * 10);
    v = q;
  }
}
