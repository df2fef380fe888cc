/**
 * src/bytes.ts: the request path's byte copies (word copies through DataViews, a byte loop,
 * TypedArray#set above COPY_LOOP_BYTES_MAX) give exactly what TypedArray#set gives, at every
 * length and alignment, in both directions between shared and unshared memory, and refuse a
 * range outside either array instead of writing part of it.
 */
import { describe, expect, it } from 'vitest';
import { COPY_LOOP_BYTES_MAX, copyFromShared, copySmall, copyToShared } from '../../src/bytes';

function patterned(buf: Uint8Array, seed: number): Uint8Array {
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 31 + seed) & 0xff;
  return buf;
}

const lengths = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 100, 255, COPY_LOOP_BYTES_MAX - 1, COPY_LOOP_BYTES_MAX, COPY_LOOP_BYTES_MAX + 1, 4096];

describe('byte copies', () => {
  for (const [name, copy, sharedSrc] of [
    ['copyFromShared', copyFromShared, true],
    ['copyToShared', copyToShared, false],
    ['copySmall', copySmall, false],
  ] as const) {
    it(`${name} copies every length at every alignment, touching nothing else`, () => {
      const size = 8192;
      const shared = patterned(new Uint8Array(new SharedArrayBuffer(size)), 1);
      const plain = patterned(new Uint8Array(size), 2);
      const src = sharedSrc ? shared : plain;
      const dst = sharedSrc ? plain : shared;
      for (const n of lengths) {
        if (name === 'copySmall' && n > 255) continue;
        for (let srcAt = 0; srcAt < 8; srcAt++) {
          for (let dstAt = 0; dstAt < 8; dstAt++) {
            const s = srcAt * 37 + 11;
            const d = dstAt * 53 + 5;
            patterned(dst, 3);
            const expected = Uint8Array.from(dst);
            expected.set(src.subarray(s, s + n), d);
            copy(dst, d, src, s, n);
            expect(Buffer.compare(Buffer.from(dst), Buffer.from(expected)), `n=${n} from ${s} to ${d}`).toBe(0);
          }
        }
      }
    });
  }

  it('refuses a range outside either array without writing any of it', () => {
    const src = patterned(new Uint8Array(new SharedArrayBuffer(64)), 1);
    const dst = new Uint8Array(64);
    expect(() => copyFromShared(dst, 40, src, 0, 32)).toThrow(RangeError);
    expect(() => copyFromShared(dst, 0, src, 40, 32)).toThrow(RangeError);
    expect(() => copyToShared(src, -1, dst, 0, 16)).toThrow(RangeError);
    expect(dst.every((b) => b === 0)).toBe(true);
  });

  it('follows a destination that changes between copies (a fresh output buffer)', () => {
    const src = patterned(new Uint8Array(new SharedArrayBuffer(256)), 9);
    for (let i = 0; i < 3; i++) {
      const dst = new Uint8Array(256);
      copyFromShared(dst, 1, src, 2, 100);
      expect(Buffer.from(dst.subarray(1, 101)).equals(Buffer.from(src.subarray(2, 102)))).toBe(true);
    }
  });
});
