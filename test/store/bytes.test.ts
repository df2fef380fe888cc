/**
 * src/bytes.ts: the request path's byte copies (int32 words through DataViews, a byte loop,
 * TypedArray#set above the thresholds) give exactly what TypedArray#set gives, at every length
 * and alignment, in both directions between shared and unshared memory, and refuse a range
 * outside either array instead of writing part of it. Views follows a replaced array. The same
 * with the native addon's memmove installed for long runs (useNativeCopy).
 */
import { describe, expect, it } from 'vitest';
import {
  COPY_LOOP_BYTES_MAX, COPY_SMALL_BYTES_MAX, copyBulk, copyPlain, copySmall, copyWords, NATIVE_COPY_BYTES_MIN, useNativeCopy, Views,
  viewOf,
} from '../../src/bytes';
import { nativeAddon } from '../../src/platform/native';

function patterned(buf: Uint8Array, seed: number): Uint8Array {
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 31 + seed) & 0xff;
  return buf;
}

const lengths = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, COPY_SMALL_BYTES_MAX, COPY_SMALL_BYTES_MAX + 1, 100, 255,
  NATIVE_COPY_BYTES_MIN - 1, NATIVE_COPY_BYTES_MIN, COPY_LOOP_BYTES_MAX - 1, COPY_LOOP_BYTES_MAX, COPY_LOOP_BYTES_MAX + 1, 4096];

type Copy = (dst: Uint8Array, dstStart: number, src: Uint8Array, srcStart: number, n: number) => void;
const words: Copy = (dst, d, src, s, n) => copyWords(dst, viewOf(dst), d, src, viewOf(src), s, n);

/** `copy` of n bytes at the given offset pair gives what TypedArray#set gives, touching nothing else. */
function expectLikeSet(copy: Copy, dst: Uint8Array, src: Uint8Array, n: number, srcAt: number, dstAt: number): void {
  const s = srcAt * 37 + 11;
  const d = dstAt * 53 + 5;
  patterned(dst, 3);
  const expected = Uint8Array.from(dst);
  expected.set(src.subarray(s, s + n), d);
  copy(dst, d, src, s, n);
  expect(Buffer.compare(Buffer.from(dst), Buffer.from(expected)), `n=${n} from ${s} to ${d}`).toBe(0);
}

describe('byte copies', () => {
  for (const [name, copy, sharedSrc, maxLength] of [
    ['copyWords out of shared memory', words, true, Infinity],
    ['copyWords into shared memory', words, false, Infinity],
    ['copyPlain out of shared memory', copyPlain, true, Infinity],
    ['copySmall', copySmall, false, 255],
  ] as const) {
    it(`${name} copies every length at every alignment, touching nothing else`, () => {
      const size = 8192;
      const shared = patterned(new Uint8Array(new SharedArrayBuffer(size)), 1);
      const plain = patterned(new Uint8Array(size), 2);
      const src = sharedSrc ? shared : plain;
      const dst = sharedSrc ? plain : shared;
      for (const n of lengths) {
        if (n > maxLength) continue;
        for (let srcAt = 0; srcAt < 8; srcAt++) {
          for (let dstAt = 0; dstAt < 8; dstAt++) expectLikeSet(copy, dst, src, n, srcAt, dstAt);
        }
      }
    });
  }

  it('copyWords refuses a range outside either array without writing any of it', () => {
    const src = patterned(new Uint8Array(new SharedArrayBuffer(64)), 1);
    const dst = new Uint8Array(64);
    expect(() => words(dst, 40, src, 0, 32)).toThrow(RangeError);
    expect(() => words(dst, 0, src, 40, 32)).toThrow(RangeError);
    expect(() => words(src, -1, dst, 0, 16)).toThrow(RangeError);
    expect(dst.every((b) => b === 0)).toBe(true);
  });

  it('copyWords works on views of part of a buffer (a Buffer from the pool)', () => {
    const src = patterned(new Uint8Array(new SharedArrayBuffer(256)), 9);
    const dst = Buffer.alloc(200).subarray(13, 150);
    words(dst, 1, src, 2, 100);
    expect(dst.subarray(1, 101).equals(Buffer.from(src.subarray(2, 102)))).toBe(true);
  });

  it('Views makes a view again only when the array changes', () => {
    const views = new Views();
    const a = new Uint8Array(16);
    const b = new Uint8Array(new SharedArrayBuffer(32), 8, 16);
    const va = views.of(a);
    expect(views.of(a)).toBe(va);
    const vb = views.of(b);
    expect(vb).not.toBe(va);
    expect([vb.byteOffset, vb.byteLength]).toEqual([8, 16]);
    expect(vb.buffer).toBe(b.buffer);
  });
});

const addon = nativeAddon();

describe.skipIf(addon === null)('byte copies through the native addon (long runs)', () => {
  it('copyWords, copyPlain and copyBulk give what TypedArray#set gives, both ways, every alignment', () => {
    useNativeCopy(addon);
    try {
      const size = 16384;
      for (const sharedSrc of [true, false]) {
        const shared = patterned(new Uint8Array(new SharedArrayBuffer(size)), 1);
        const plain = patterned(new Uint8Array(size), 2);
        const src = sharedSrc ? shared : plain;
        const dst = sharedSrc ? plain : shared;
        for (const copy of [words, copyPlain, copyBulk] as Copy[]) {
          for (const n of [NATIVE_COPY_BYTES_MIN, 513, 1000, 4096, 8000]) {
            for (let k = 0; k < 8; k++) expectLikeSet(copy, dst, src, n, k, k);
          }
        }
      }
    } finally {
      useNativeCopy(null);
    }
  });

  it('moves overlapping runs within one shared array as memmove, and refuses a range outside', () => {
    useNativeCopy(addon);
    try {
      const a = patterned(new Uint8Array(new SharedArrayBuffer(4096)), 7);
      const expected = Uint8Array.from(a);
      expected.copyWithin(100, 0, 2000);
      copyBulk(a, 100, a, 0, 2000);
      expect(Buffer.compare(Buffer.from(a), Buffer.from(expected))).toBe(0);
      const before = Uint8Array.from(a);
      expect(() => copyBulk(a, 3000, a, 0, 2000)).toThrow(TypeError);
      expect(() => copyBulk(new Uint8Array(600), 0, a, 3800, 600)).toThrow(TypeError);
      expect(Buffer.compare(Buffer.from(a), Buffer.from(before))).toBe(0);
    } finally {
      useNativeCopy(null);
    }
  });
});
