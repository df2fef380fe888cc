/**
 * Number tokens read the way memcached 1.6 reads them (strtoul/strtol/strtoull plus its
 * safe_* wrappers), so odd input gets memcached's answer: leading whitespace and '+' are
 * allowed, a number must end at the token's end or at whitespace, negative values are
 * refused where memcached refuses them, and 32-bit fields wrap exactly as the C casts do.
 *
 * Results come back through `parsed` (no allocation); each function returns false when the
 * token is not a number memcached would accept.
 */

export const parsed = { value: 0, big: 0n };

const TWO_63 = 1n << 63n;
const TWO_64 = 1n << 64n;

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** Scan [ws][+|-]digits; sets scanNeg, scanSmall (exact below 2^53) or scanBig. */
let scanNeg = false;
let scanSmall = 0;
let scanBig = 0n;
let scanIsBig = false;

function scan(b: Uint8Array, s: number, e: number): boolean {
  let i = s;
  while (i < e && isSpace(b[i])) i++;
  scanNeg = false;
  if (i < e && (b[i] === 0x2b || b[i] === 0x2d)) {
    scanNeg = b[i] === 0x2d;
    i++;
  }
  const d0 = i;
  let v = 0;
  while (i < e && i - d0 < 15 && b[i] >= 0x30 && b[i] <= 0x39) v = v * 10 + (b[i++] - 0x30);
  scanIsBig = false;
  if (i < e && b[i] >= 0x30 && b[i] <= 0x39) {
    let big = BigInt(v);
    while (i < e && b[i] >= 0x30 && b[i] <= 0x39) {
      big = big * 10n + BigInt(b[i++] - 0x30);
      if (big > TWO_64 * 10n) big = TWO_64 * 10n; // saturate: already out of every range
    }
    scanIsBig = true;
    scanBig = big;
  }
  scanSmall = v;
  if (i === d0) return false;
  return i === e || isSpace(b[i]);
}

/** strtoull + safe_strtoull: 0..2^64-1, a '-' on a non-zero value refused. */
export function parseU64(b: Uint8Array, s: number, e: number): boolean {
  if (!scan(b, s, e)) return false;
  const big = scanIsBig ? scanBig : BigInt(scanSmall);
  if (big >= TWO_64) return false;
  if (scanNeg && big !== 0n) return false;
  parsed.big = big;
  parsed.value = scanIsBig ? Number(big) : scanSmall;
  return true;
}

/** safe_strtoul into a uint32_t: as parseU64, then truncated to 32 bits like the C cast. */
export function parseU32(b: Uint8Array, s: number, e: number): boolean {
  if (!parseU64(b, s, e)) return false;
  parsed.value = scanIsBig ? Number(parsed.big & 0xffffffffn) : scanSmall % 4294967296;
  return true;
}

/** safe_strtol into an int32_t: strtol's 64-bit range, then truncated to 32 bits. */
export function parseI32(b: Uint8Array, s: number, e: number): boolean {
  if (!scan(b, s, e)) return false;
  if (scanIsBig) {
    const v = scanNeg ? -scanBig : scanBig;
    if (v >= TWO_63 || v < -TWO_63) return false;
    parsed.value = Number(BigInt.asIntN(32, v));
    return true;
  }
  const v = scanNeg ? -scanSmall : scanSmall;
  parsed.value = (v | 0) === v ? v : Number(BigInt.asIntN(32, BigInt(v)));
  return true;
}
