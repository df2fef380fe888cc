/**
 * Numbers read the two ways memcached 1.6.45 reads them, so odd input gets memcached's answer:
 *
 *   - parseU64/parseU32/parseI32: strtoul/strtol/strtoull plus memcached's safe_* wrappers,
 *     which memcached still uses for the flags and exptime of storage commands (reading a C
 *     string from the token on: it may end at whitespace or a NUL byte), for `cas` values of
 *     the binary protocol's text twins and for values stored by incr/decr. Leading whitespace
 *     and '+' are allowed, negative values are refused as memcached refuses them, 32-bit
 *     fields wrap exactly as the C casts do;
 *   - tokU32/tokU64/tokI32/tokI64: the strict token parsers of memcached 1.6.45's request
 *     parser (vendor/mcmc's mcmc_toktou32 etc.): decimal digits only (a leading '-' for the
 *     signed ones), at most 11 (32-bit) or 22 (64-bit) characters, no wrapping.
 *
 * Results come back through `parsed`; each function returns false when the text is not a
 * number memcached would accept. Nothing is allocated for a number below 2^53: its bigint is
 * made only when `parsed.big` is read.
 */

/** The last parser's result: `value` as a number, `big` exactly. */
class Parsed {
  value = 0;
  private exact = 0n;
  private hasExact = false;

  /** The result as a bigint (exact also above 2^53). */
  get big(): bigint {
    return this.hasExact ? this.exact : BigInt(this.value);
  }

  /** The result when it is a non-negative integer below 2^53, else -1 (no bigint made). */
  get small(): number {
    return this.hasExact || this.value < 0 ? -1 : this.value;
  }

  /** A result that is an integer below 2^53 in magnitude. */
  setNumber(v: number): void {
    this.value = v;
    this.hasExact = false;
  }

  /** A result known exactly as a bigint; `value` is its nearest number. */
  setBig(big: bigint, value: number): void {
    this.exact = big;
    this.hasExact = true;
    this.value = value;
  }
}

export const parsed = new Parsed();

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

function scan(b: Uint8Array, s: number, e: number, nulEnds = false): boolean {
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
  return i === e || isSpace(b[i]) || (nulEnds && b[i] === 0);
}

/**
 * strtoull + safe_strtoull: 0..2^64-1. strtoull negates a number after '-' modulo 2^64, and
 * safe_strtoull refuses the result only when it is negative as a signed number ("-1"), so
 * "-0" is 0. `nulEnds`: the text is a C string that may end at a NUL byte.
 */
export function parseU64(b: Uint8Array, s: number, e: number, nulEnds = false): boolean {
  if (!scan(b, s, e, nulEnds)) return false;
  if (!scanIsBig && !scanNeg) {
    parsed.setNumber(scanSmall);
    return true;
  }
  let big = scanIsBig ? scanBig : BigInt(scanSmall);
  if (big >= TWO_64) return false;
  let small = scanIsBig ? Number(big) : scanSmall;
  if (scanNeg && big !== 0n) {
    big = TWO_64 - big;
    if (big >= TWO_63) return false;
    small = Number(big);
    scanIsBig = true;
    scanBig = big;
  }
  parsed.setBig(big, small);
  return true;
}

/** safe_strtoul into a uint32_t: as parseU64, then truncated to 32 bits like the C cast. */
export function parseU32(b: Uint8Array, s: number, e: number, nulEnds = false): boolean {
  if (!parseU64(b, s, e, nulEnds)) return false;
  parsed.setNumber(scanIsBig ? Number(parsed.big & 0xffffffffn) : scanSmall % 4294967296);
  return true;
}

/** safe_strtol into an int32_t: strtol's 64-bit range, then truncated to 32 bits. */
export function parseI32(b: Uint8Array, s: number, e: number, nulEnds = false): boolean {
  if (!scan(b, s, e, nulEnds)) return false;
  if (scanIsBig) {
    const v = scanNeg ? -scanBig : scanBig;
    if (v >= TWO_63 || v < -TWO_63) return false;
    parsed.setNumber(Number(BigInt.asIntN(32, v)));
    return true;
  }
  const v = scanNeg ? -scanSmall : scanSmall;
  parsed.setNumber((v | 0) === v ? v : Number(BigInt.asIntN(32, BigInt(v))));
  return true;
}

// ---- memcached 1.6.45's request parser (vendor/mcmc): strict tokens

/** mcmc's MCMC_TOKTO32_MAX and MCMC_TOKTO64_MAX: longer tokens are refused outright. */
const TOK32_CHARS_MAX = 11;
const TOK64_CHARS_MAX = 22;
const U32_MAX = 4294967295;
const I32_MAX = 2147483647;
const I32_MIN = -2147483648;
const U64_MAX = TWO_64 - 1n;
const I64_MAX = TWO_63 - 1n;

/** mcmc_toktou32: digits only, at most 11 of them, no wrap. An empty token is 0. */
export function tokU32(b: Uint8Array, s: number, e: number): boolean {
  if (e - s > TOK32_CHARS_MAX) return false;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return false;
    v = v * 10 + d;
    if (v > U32_MAX) return false;
  }
  parsed.setNumber(v);
  return true;
}

/** mcmc_tokto32: an optional '-', digits, at most 11 characters, within int32. "-" is 0. */
export function tokI32(b: Uint8Array, s: number, e: number): boolean {
  if (e - s > TOK32_CHARS_MAX) return false;
  let i = s;
  const negative = i < e && b[i] === 0x2d;
  if (negative) i++;
  let v = 0;
  for (; i < e; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return false;
    v = v * 10 + d;
    if (negative ? -v < I32_MIN : v > I32_MAX) return false;
  }
  parsed.setNumber(negative ? -v || 0 : v);
  return true;
}

/** mcmc_toktou64: digits only, at most 22 of them, below 2^64. */
export function tokU64(b: Uint8Array, s: number, e: number): boolean {
  if (e - s > TOK64_CHARS_MAX) return false;
  let small = 0;
  let i = s;
  for (; i < e && i - s < 15; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return false;
    small = small * 10 + d;
  }
  if (i === e) {
    parsed.setNumber(small);
    return true;
  }
  let big = BigInt(small);
  for (; i < e; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return false;
    big = big * 10n + BigInt(d);
    if (big > U64_MAX) return false;
  }
  parsed.setBig(big, Number(big));
  return true;
}

/** mcmc_tokto64: an optional '-', digits, at most 22 characters, within int64. */
export function tokI64(b: Uint8Array, s: number, e: number): boolean {
  if (e - s > TOK64_CHARS_MAX) return false;
  let i = s;
  const negative = i < e && b[i] === 0x2d;
  if (negative) i++;
  let v = 0n;
  for (; i < e; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return false;
    v = v * 10n + BigInt(d);
    if (negative ? v > I64_MAX + 1n : v > I64_MAX) return false;
  }
  const exact = negative ? -v : v;
  parsed.setBig(exact, Number(exact));
  return true;
}
