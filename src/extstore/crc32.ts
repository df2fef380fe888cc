/**
 * CRC-32 (IEEE 802.3, the zlib polynomial) of byte ranges, for the checksums extstore keeps
 * beside every value written to disk.
 *
 * Node's zlib.crc32 (native, since Node 20.15 / 22.2) is used when present; otherwise a
 * table-driven version in JavaScript gives the same results, more slowly. Both start from a
 * given running value so a record can be checksummed in pieces.
 */
import * as zlib from 'node:zlib';

const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c >>> 0;
}

/** The table-driven CRC-32, exported so tests can check it against the native one. */
export function crc32Table(data: Uint8Array, start: number, end: number, value = 0): number {
  let c = (value ^ 0xffffffff) >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

type NativeCrc32 = (data: Uint8Array, value?: number) => number;
const native = (zlib as unknown as { crc32?: NativeCrc32 }).crc32;

/** True when Node's native CRC-32 is in use. */
export const CRC32_NATIVE = typeof native === 'function';

/** CRC-32 of data[start, end), continuing from `value` (0 to start). */
export function crc32(data: Uint8Array, start: number, end: number, value = 0): number {
  if (native !== undefined) return native(data.subarray(start, end), value) >>> 0;
  return crc32Table(data, start, end, value);
}
