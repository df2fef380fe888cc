/**
 * The keys of the requests waiting in a read buffer, found ahead of running them, so the
 * engine can touch their hash buckets and items all at once (Engine.prefetchKeys) instead of
 * taking one cache miss after another (doc/store.md, "Prefetching a pipeline's keys").
 *
 * A pure function of the buffer's bytes: it reads requests the way the parser will, but
 * only far enough to find keys, and it may be wrong without harm: a key found here that the
 * parser then rejects (or a value's bytes read as a request line) costs one wasted touch,
 * never a changed reply. It stops at the first thing it cannot follow (an unfinished line, a
 * storage command whose byte count does not parse, a value not yet read in whole).
 *
 * Keys looked for, with memcached's request shapes:
 *   get|gets <key>*                       every key of a multiget
 *   gat|gats <exptime> <key>*
 *   set|add|replace|append|prepend <key> <flags> <exptime> <bytes> ...   then <bytes>\r\n skipped
 *   cas <key> <flags> <exptime> <bytes> <cas> ...                        the same
 *   mg|md|ma|mn <key> ...                 (mn has none; its line is stepped over)
 *   ms <key> <datalen> ...                then <datalen>\r\n skipped
 * Any other line is stepped over.
 */
import { KEY_BYTES_MAX } from '../../engine/engine';

const LF = 10;
const SPACE = 32;
/** A byte count with more digits than this is not followed (the parser will refuse it). */
const COUNT_DIGITS_MAX = 9;

const G = 0x67;
const E = 0x65;
const T = 0x74;
const S = 0x73;
const A = 0x61;
const M = 0x6d;
const D = 0x64;

/**
 * Write the [start, length) of each key found in buf[start, end) into `spans` (two entries a
 * key), looking at no more than `linesMax` request lines and `keysMax` keys. Returns the
 * number of keys. Bytes are walked here rather than found with Buffer#indexOf: a call into
 * C++ per line would cost more than the short lines it skips.
 */
export function collectKeys(buf: Buffer, start: number, end: number, spans: Int32Array, keysMax: number, linesMax: number): number {
  let keys = 0;
  let p = start;
  for (let line = 0; line < linesMax && keys < keysMax; line++) {
    // The command: the first token (the parser allows no space before it either). Token
    // bytes are above SPACE; one test per byte finds a token's end, then the byte says which.
    const cmd = p;
    while (p < end && buf[p] > SPACE) p++;
    if (p >= end) break;
    const kind = commandKind(buf, cmd, p - cmd);
    // Its tokens, up to the end of the line.
    let token = 0;
    let valueBytes = -1;
    for (;;) {
      while (p < end && buf[p] <= SPACE && buf[p] !== LF) p++;
      if (p >= end) return keys;
      if (buf[p] === LF) break;
      const t = p;
      while (p < end && buf[p] > SPACE) p++;
      if (p >= end) return keys;
      if (kind === Kind.Other) continue;
      token++;
      const len = p - t;
      const isKey = kind === Kind.Keys ? true : kind === Kind.TouchKeys ? token > 1 : token === 1;
      if (isKey) {
        if (len <= KEY_BYTES_MAX && keys < keysMax) {
          spans[keys * 2] = t;
          spans[keys * 2 + 1] = len;
          keys++;
        }
      } else if ((kind === Kind.Storage && token === 4) || (kind === Kind.MetaSet && token === 2)) {
        valueBytes = parseCount(buf, t, len);
      }
    }
    p++; // past the line's LF
    if (kind === Kind.Storage || kind === Kind.MetaSet) {
      // The value follows its line: step over it, or stop where it cannot be followed.
      if (valueBytes < 0) break;
      p += valueBytes + 2;
      if (p >= end) break;
    }
  }
  return keys;
}

/** What a command's line holds, by its name. */
function commandKind(buf: Buffer, pos: number, len: number): Kind {
  const c0 = buf[pos];
  if (len === 2 && c0 === M) {
    const c1 = buf[pos + 1];
    if (c1 === G || c1 === D || c1 === A) return Kind.OneKey;
    if (c1 === S) return Kind.MetaSet;
    return Kind.Other;
  }
  if ((len === 3 || (len === 4 && buf[pos + 3] === S)) && c0 === G && buf[pos + 2] === T) {
    const c1 = buf[pos + 1];
    if (c1 === E) return Kind.Keys;
    if (c1 === A) return Kind.TouchKeys;
    return Kind.Other;
  }
  return isStorage(buf, pos, len) ? Kind.Storage : Kind.Other;
}

const enum Kind {
  Other,
  /** get, gets: every token is a key. */
  Keys,
  /** gat, gats: every token after the exptime is a key. */
  TouchKeys,
  /** mg, md, ma: the first token is the key. */
  OneKey,
  /** set, add, replace, append, prepend, cas: a key, then the value's byte count fourth. */
  Storage,
  /** ms: a key, then the value's byte count. */
  MetaSet,
}

const STORAGE_COMMANDS = ['set', 'add', 'replace', 'append', 'prepend', 'cas'].map((s) => Buffer.from(s, 'latin1'));

function isStorage(buf: Buffer, pos: number, len: number): boolean {
  if (len < 3 || len > 7) return false;
  for (let k = 0; k < STORAGE_COMMANDS.length; k++) {
    const name = STORAGE_COMMANDS[k];
    if (name.length !== len) continue;
    let i = 0;
    while (i < len && buf[pos + i] === name[i]) i++;
    if (i === len) return true;
  }
  return false;
}

/** A decimal byte count, or -1 when the token is not one this scanner follows. */
function parseCount(buf: Buffer, t: number, len: number): number {
  if (len === 0 || len > COUNT_DIGITS_MAX) return -1;
  let n = 0;
  for (let i = t; i < t + len; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
