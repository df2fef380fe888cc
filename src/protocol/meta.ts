/**
 * Meta protocol (mg, ms, md, ma, me, mn) as memcached 1.6.18 speaks it (doc/protocol.txt,
 * "Meta Commands"), over the same engine and the same tokenized line as the text protocol.
 *
 * Flags are single characters, some with a token ("T30", "Oopaque"); replies echo requested
 * flags in request order. Quiet mode (q) hides the nominal reply of each command (EN for mg,
 * HD for ms/md/ma); errors are always sent. Quirks of 1.6.18 kept on purpose: `me` prints
 * exp as now-minus-exptime; md/ma report NF even in quiet mode; a bad flag in ms still
 * swallows the value.
 */
import { DeltaResult, StoreMode, StoreResult } from '../engine/engine';
import { IF_FETCHED, IF_STALE, IF_TOKEN_SENT, KEY_BYTES_MAX } from '../store/items';
import { parseI32, parseU32, parseU64, parsed } from './numbers';
import { R, type TextSession } from './text/session';
import { fetchIntoHole } from './disk-value';

/** memcached's MFLAG_MAX_OPT_LENGTH (tokens, terminal included) and opaque limit. */
export const META_TOKENS_MAX = 20;
export const OPAQUE_BYTES_MAX = 32;

const SPACE = 32;

/** Parsed flags of one meta command; one reused instance (no allocation per request). */
class MetaFlags {
  error = '';
  quiet = false;
  value = false;
  noUpdate = false;
  locked = false;
  vivify = false;
  newTtl = false;
  hasCas = false;
  setStale = false;
  keyBinary = false;
  exptime = 0;
  autovivExptime = 0;
  recacheTime = 0;
  clientFlags = 0;
  casIn = 0;
  mode = 0;
  delta = 1n;
  initial = 0n;
  readonly seen = new Uint8Array(128);

  reset(): void {
    this.error = '';
    this.quiet = this.value = this.noUpdate = this.locked = this.vivify = false;
    this.newTtl = this.hasCas = this.setStale = this.keyBinary = false;
    this.exptime = this.autovivExptime = this.recacheTime = this.clientFlags = this.casIn = this.mode = 0;
    this.delta = 1n;
    this.initial = 0n;
    this.seen.fill(0);
  }
}

const flags = new MetaFlags();
/** Decoded binary keys (base64 'b') live here. */
const keyScratch = Buffer.alloc(KEY_BYTES_MAX + 4);
let keyBuf: Buffer = keyScratch;
let keyStart = 0;
let keyLen = 0;

const BAD_TOKEN = 'CLIENT_ERROR bad token in command line format';
/** memcached turns a failed extstore read of an mg into a bare EN (nothing in quiet mode). */
const EN_CRLF = Buffer.from('EN\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

/**
 * memcached's _meta_flag_preparse: validate every flag token from `first`, decode a base64
 * key. Returns false with `flags.error` set (a duplicate or unknown flag stops at once; a bad
 * token value is remembered and parsing goes on, as memcached does).
 */
function preparse(s: TextSession, first: number): boolean {
  const f = flags;
  f.reset();
  const b = s.line;
  let failed = false;
  for (let i = first; i < s.ntokens - 1; i++) {
    const ts = s.tokStart[i];
    const te = s.tokEnd[i];
    const o = b[ts];
    if (o >= 127 || f.seen[o] !== 0) {
      f.error = 'CLIENT_ERROR duplicate flag';
      return false;
    }
    f.seen[o] = 1;
    switch (o) {
      case 0x62: // b
        f.keyBinary = true;
        if (!decodeKey(s)) {
          f.error = 'CLIENT_ERROR error decoding key';
          failed = true;
        }
        break;
      case 0x4e: // N
        f.locked = f.vivify = true;
        if (!parseI32(b, ts + 1, te)) [f.error, failed] = [BAD_TOKEN, true];
        else f.autovivExptime = s.engine.clock.realtime(parsed.value);
        break;
      case 0x54: // T
        f.locked = true;
        if (!parseI32(b, ts + 1, te)) [f.error, failed] = [BAD_TOKEN, true];
        else {
          f.exptime = s.engine.clock.realtime(parsed.value);
          f.newTtl = true;
        }
        break;
      case 0x52: // R
        f.locked = true;
        if (!parseI32(b, ts + 1, te)) [f.error, failed] = [BAD_TOKEN, true];
        else f.recacheTime = s.engine.clock.realtime(parsed.value);
        break;
      case 0x6c: // l
      case 0x68: // h
        f.locked = true;
        break;
      case 0x4f: case 0x50: case 0x4c: // O P L
      case 0x6b: case 0x73: case 0x74: case 0x63: case 0x66: // k s t c f
        break;
      case 0x76: f.value = true; break; // v
      case 0x75: f.noUpdate = true; break; // u
      case 0x71: f.quiet = true; break; // q
      case 0x46: // F
        if (!parseU32(b, ts + 1, te)) failed = true;
        else f.clientFlags = parsed.value;
        break;
      case 0x43: // C
        if (!parseU64(b, ts + 1, te)) [f.error, failed] = [BAD_TOKEN, true];
        else {
          f.casIn = parsed.value;
          f.hasCas = true;
        }
        break;
      case 0x4d: // M
        if (te - ts !== 2) [f.error, failed] = ['CLIENT_ERROR incorrect length for M token', true];
        else f.mode = b[ts + 1];
        break;
      case 0x4a: // J
        if (!parseU64(b, ts + 1, te)) [f.error, failed] = ['CLIENT_ERROR invalid numeric initial value', true];
        else f.initial = parsed.big;
        break;
      case 0x44: // D
        if (!parseU64(b, ts + 1, te)) [f.error, failed] = ['CLIENT_ERROR invalid numeric delta value', true];
        else f.delta = parsed.big;
        break;
      case 0x49: f.setStale = true; break; // I
      default:
        f.error = 'CLIENT_ERROR invalid flag';
        return false;
    }
  }
  if (failed && f.error === '') f.error = 'CLIENT_ERROR bad command line format';
  return !failed;
}

/** The key token, base64-decoded when 'b' was given. */
function useKeyToken(s: TextSession): void {
  keyBuf = s.line;
  keyStart = s.tokStart[1];
  keyLen = s.tokLen(1);
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;
B64_VALUE[0x3d] = 0; // '='

/** memcached's base64_decode: skip non-alphabet bytes; the rest must come in fours. */
function decodeKey(s: TextSession): boolean {
  const b = s.line;
  const start = s.tokStart[1];
  const end = s.tokEnd[1];
  let count = 0;
  for (let i = start; i < end; i++) if (B64_VALUE[b[i]] >= 0) count++;
  if (count === 0 || count % 4 !== 0) return false;
  const block = [0, 0, 0, 0];
  let n = 0;
  let out = 0;
  let pad = 0;
  for (let i = start; i < end; i++) {
    const v = B64_VALUE[b[i]];
    if (v < 0) continue;
    if (b[i] === 0x3d) pad++;
    block[n++] = v;
    if (n < 4) continue;
    keyScratch[out++] = ((block[0] << 2) | (block[1] >> 4)) & 0xff;
    keyScratch[out++] = ((block[1] << 4) | (block[2] >> 2)) & 0xff;
    keyScratch[out++] = ((block[2] << 6) | block[3]) & 0xff;
    n = 0;
    if (pad > 0) {
      if (pad > 2) return false;
      out -= pad;
      break;
    }
  }
  if (out === 0) return false;
  keyBuf = keyScratch;
  keyStart = 0;
  keyLen = out;
  return true;
}

/** " k<key>" (base64 plus " b" for binary keys), memcached's META_KEY. */
function writeKey(s: TextSession, src: Uint8Array, start: number, len: number, binary: boolean): void {
  const out = s.out;
  out.ascii(' k');
  if (!binary) {
    out.bytes(src, start, start + len);
    return;
  }
  out.ascii(Buffer.from(src.subarray(start, start + len)).toString('base64'));
  out.ascii(' b');
}

/** Echo O and k flags (miss and error-free replies without an item). Returns false if O too long. */
function echoOpaqueAndKey(s: TextSession, first: number): boolean {
  for (let i = first; i < s.ntokens - 1; i++) {
    const c = s.line[s.tokStart[i]];
    if (c === 0x4f) {
      if (s.tokLen(i) > OPAQUE_BYTES_MAX) return false;
      s.out.byte(SPACE);
      s.out.bytes(s.line, s.tokStart[i], s.tokEnd[i]);
    } else if (c === 0x6b) {
      writeKey(s, keyBuf, keyStart, keyLen, flags.keyBinary);
    }
  }
  return true;
}

/** " t<seconds left>", -1 for never; memcached prints the unsigned difference. */
function writeTtl(s: TextSession, ref: number): void {
  const exp = s.engine.items.exptime(ref);
  s.out.ascii(' t');
  if (exp === 0) s.out.ascii('-1');
  else s.out.uint((exp - s.engine.clock.now) >>> 0);
}

function opaqueTooLong(s: TextSession, mark: number): void {
  s.out.length = mark;
  s.replyError('CLIENT_ERROR opaque token too long');
}

/** Entry point for a two-letter command starting with 'm'. */
export function runMeta(s: TextSession): void {
  switch (s.line[s.tokStart[0] + 1]) {
    case 0x67: return metaGet(s); // mg
    case 0x73: return metaSet(s); // ms
    case 0x64: return metaDelete(s); // md
    case 0x61: return metaArithmetic(s); // ma
    case 0x65: return metaDebug(s); // me
    case 0x6e: // mn: replies so far are transmitted
      s.replyString('MN');
      s.markTransmitted();
      return;
    default: return s.reply(R.ERROR);
  }
}

function metaGet(s: TextSession): void {
  if (s.ntokens < 3) return s.reply(R.ERROR);
  if (s.tokLen(1) > KEY_BYTES_MAX) return s.replyError('CLIENT_ERROR bad command line format');
  if (s.ntokens > META_TOKENS_MAX) return s.replyError('CLIENT_ERROR options flags are too long');
  useKeyToken(s);
  if (!preparse(s, 2)) return s.replyError(flags.error);
  s.setQuiet(flags.quiet);
  const engine = s.engine;
  const items = engine.items;
  const f = flags;
  let ref = engine.peek(keyBuf, keyStart, keyLen);
  let created = false;
  if (ref === 0 && f.vivify) {
    // memcached 1.6.18 does not mark an item autovivified by mg/ma as having a binary
    // key (only ms does), so later k flags print its raw key.
    ref = engine.vivify(keyBuf, keyStart, keyLen, false);
    created = ref !== 0;
  }
  const out = s.out;
  const mark = out.length;
  if (ref === 0) {
    engine.countMetaFetch(0, false);
    out.ascii('EN');
    if (!echoOpaqueAndKey(s, 2)) return opaqueTooLong(s, mark);
    if (s.quiet) out.length = mark;
    else out.crlf();
    return;
  }
  const nbytes = items.nbytes(ref);
  if (f.value) {
    out.ascii('VA ');
    out.uint(nbytes);
  } else {
    out.ascii('HD');
  }
  let won = false;
  let ttlSet = false;
  const now = engine.clock.now;
  const b = s.line;
  for (let i = 2; i < s.ntokens - 1; i++) {
    switch (b[s.tokStart[i]]) {
      case 0x54: // T
        ttlSet = true;
        items.setExptime(ref, f.exptime);
        break;
      case 0x4e: // N
        if (created) {
          items.setExptime(ref, f.autovivExptime);
          won = true;
        }
        break;
      case 0x52: { // R
        const exp = items.exptime(ref);
        if ((items.iflags(ref) & IF_TOKEN_SENT) === 0 && !created && exp !== 0 && exp < f.recacheTime) won = true;
        break;
      }
      case 0x73: out.ascii(' s'); out.uint(nbytes); break;
      case 0x74: writeTtl(s, ref); break; // t
      case 0x63: out.ascii(' c'); out.uint(items.cas(ref)); break;
      case 0x66: out.ascii(' f'); out.uint(items.flags(ref)); break;
      case 0x6c: out.ascii(' l'); out.uint((now - items.atime(ref)) >>> 0); break;
      case 0x68: out.ascii((items.iflags(ref) & IF_FETCHED) !== 0 ? ' h1' : ' h0'); break;
      case 0x4f: // O
        if (s.tokLen(i) > OPAQUE_BYTES_MAX) return opaqueTooLong(s, mark);
        out.byte(SPACE);
        out.bytes(b, s.tokStart[i], s.tokEnd[i]);
        break;
      case 0x6b: // k
        writeKey(s, items.page(ref), items.keyOffset(ref), items.nkey(ref), items.keyBinary(ref));
        break;
    }
  }
  const iflags = items.iflags(ref);
  if ((iflags & IF_TOKEN_SENT) !== 0) out.ascii(' Z');
  if ((iflags & IF_STALE) !== 0) {
    out.ascii(' X');
    if ((iflags & IF_TOKEN_SENT) === 0) won = true;
  }
  if (won) {
    out.ascii(' W');
    items.setIflags(ref, items.iflags(ref) | IF_TOKEN_SENT);
  }
  out.crlf();
  if (f.value && items.isHdr(ref)) {
    const valueAt = out.length - mark;
    const hole = out.holeFrom(mark, nbytes + 2, s.quiet ? EMPTY : EN_CRLF);
    out.buf[hole.start + valueAt + nbytes] = 13;
    out.buf[hole.start + valueAt + nbytes + 1] = 10;
    fetchIntoHole(engine, out, ref, hole, valueAt);
  } else if (f.value) {
    out.ensure(nbytes + 2);
    items.copyValue(ref, out.buf, out.length);
    out.length += nbytes;
    out.crlf();
  }
  if (!f.noUpdate) items.bump(ref);
  engine.countMetaFetch(ref, ttlSet);
  s.holdItem(ref, items.cas(ref)); // memcached's reply keeps a reference until transmitted
}

/** Reply stash for ms: which flags to echo, kept until the value has arrived. */
export class MetaSetReply {
  setStale = false;
  /** Flag characters to echo, in order ('O', 'k', 'c'). */
  private codes: number[] = [];
  private readonly opaque = Buffer.alloc(META_TOKENS_MAX * OPAQUE_BYTES_MAX);
  private readonly opaqueEnd: number[] = [];
  private readonly key = Buffer.alloc(KEY_BYTES_MAX);
  private keyLen = 0;
  private keyBinary = false;

  prepare(s: TextSession, setStale: boolean): boolean {
    this.codes = [];
    this.opaqueEnd.length = 0;
    this.setStale = setStale;
    this.keyBinary = flags.keyBinary;
    keyBuf.copy(this.key, 0, keyStart, keyStart + keyLen);
    this.keyLen = keyLen;
    let used = 0;
    let ok = true;
    for (let i = 3; i < s.ntokens - 1; i++) {
      const c = s.line[s.tokStart[i]];
      if (c === 0x4f) {
        if (s.tokLen(i) > OPAQUE_BYTES_MAX) {
          ok = false;
          continue;
        }
        used += s.line.copy(this.opaque, used, s.tokStart[i], s.tokEnd[i]);
        this.opaqueEnd.push(used);
        this.codes.push(c);
      } else if (c === 0x6b || c === 0x63) {
        this.codes.push(c);
      }
    }
    return ok;
  }

  finish(s: TextSession, result: StoreResult): void {
    const out = s.out;
    if (result === StoreResult.Stored && s.quiet) return;
    out.ascii(result === StoreResult.Stored ? 'HD' : result === StoreResult.Exists ? 'EX'
      : result === StoreResult.NotFound ? 'NF' : 'NS');
    let opaqueIndex = 0;
    let from = 0;
    for (const c of this.codes) {
      if (c === 0x4f) {
        const to = this.opaqueEnd[opaqueIndex++];
        out.byte(SPACE);
        out.bytes(this.opaque, from, to);
        from = to;
      } else if (c === 0x6b) {
        writeKey(s, this.key, 0, this.keyLen, this.keyBinary);
      } else {
        out.ascii(' c');
        out.uint(s.engine.lastCas);
      }
    }
    out.crlf();
  }
}

const replies = new WeakMap<TextSession, MetaSetReply>();

function metaSet(s: TextSession): void {
  if (s.ntokens < 3) return s.reply(R.ERROR);
  if (s.tokLen(1) > KEY_BYTES_MAX || s.ntokens === 3) return s.replyError('CLIENT_ERROR bad command line format');
  if (s.ntokens > META_TOKENS_MAX) return s.replyError('CLIENT_ERROR options flags too long');
  if (!parseI32(s.line, s.tokStart[2], s.tokEnd[2])) return s.replyError('CLIENT_ERROR bad command line format');
  const vlen = parsed.value;
  if (vlen < 0 || vlen > 0x7fffffff - 2) return s.replyError('CLIENT_ERROR bad command line format');
  const fail = (msg: string): void => {
    s.beginSwallow(vlen + 2);
    s.replyError(msg);
  };
  useKeyToken(s);
  if (!preparse(s, 3)) return fail(flags.error);
  const f = flags;
  s.setQuiet(f.quiet);
  let reply = replies.get(s);
  if (reply === undefined) {
    reply = new MetaSetReply();
    replies.set(s, reply);
  }
  const opaqueOk = reply.prepare(s, false);
  let mode: StoreMode;
  switch (f.mode) {
    case 0: case 0x53: mode = StoreMode.Set; break; // S
    case 0x45: mode = StoreMode.Add; break; // E
    case 0x41: mode = StoreMode.Append; break; // A
    case 0x50: mode = StoreMode.Prepend; break; // P
    case 0x52: mode = StoreMode.Replace; break; // R
    default: return fail('CLIENT_ERROR invalid mode for ms M token');
  }
  if (f.hasCas && (mode === StoreMode.Set || mode === StoreMode.Replace)) mode = StoreMode.Cas;
  if (!opaqueOk) return fail('CLIENT_ERROR opaque token too long');
  const engine = s.engine;
  const ref = engine.allocForStore(StoreMode.Set, keyBuf, keyStart, keyLen, f.clientFlags, f.exptime, vlen);
  if (ref === 0) {
    return fail(engine.items.allocError === 1 ? 'SERVER_ERROR object too large for cache'
      : 'SERVER_ERROR out of memory storing object');
  }
  if (f.keyBinary) engine.items.setKeyBinary(ref);
  reply.setStale = f.setStale && mode === StoreMode.Cas;
  s.beginValue(ref, mode, f.casIn, vlen, reply);
}

/**
 * md and ma share memcached's checks: token count, key length, flag count, then the flags
 * (any flag error answered as "invalid or duplicate flag"). False when a reply was sent.
 */
function keyAndFlags(s: TextSession): boolean {
  if (s.ntokens < 3) return s.reply(R.ERROR), false;
  if (s.tokLen(1) > KEY_BYTES_MAX) return s.replyString('CLIENT_ERROR bad command line format'), false;
  if (s.ntokens > META_TOKENS_MAX) return s.replyString('CLIENT_ERROR options flags too long'), false;
  useKeyToken(s);
  if (!preparse(s, 2)) return s.replyError('CLIENT_ERROR invalid or duplicate flag'), false;
  s.setQuiet(flags.quiet);
  return true;
}

function metaDelete(s: TextSession): void {
  if (!keyAndFlags(s)) return;
  const f = flags;
  const out = s.out;
  const mark = out.length;
  out.ascii('XX');
  if (!echoOpaqueAndKey(s, 2)) return opaqueTooLong(s, mark);
  const engine = s.engine;
  const ref = engine.peek(keyBuf, keyStart, keyLen);
  let code = 'NF';
  if (ref === 0) {
    engine.stats.delete_misses++;
  } else if (f.hasCas && engine.items.cas(ref) !== f.casIn) {
    engine.stats.delete_misses++;
    code = 'EX';
  } else {
    if (f.setStale) engine.invalidate(ref, f.newTtl ? f.exptime : null);
    else engine.unlinkFound(ref);
    code = 'HD';
  }
  if (code === 'HD' && s.quiet) {
    out.length = mark;
    return;
  }
  out.buf.write(code, mark, 'latin1');
  out.crlf();
}

function metaArithmetic(s: TextSession): void {
  if (!keyAndFlags(s)) return;
  const f = flags;
  let incr = true;
  switch (f.mode) {
    case 0: case 0x49: case 0x2b: break; // I +
    case 0x44: case 0x2d: incr = false; break; // D -
    default: return s.replyError('CLIENT_ERROR invalid mode for ma M token');
  }
  const engine = s.engine;
  const items = engine.items;
  const out = s.out;
  const mark = out.length;
  let ref = 0;
  let created = false;
  let digits = '';
  let status = '';
  switch (engine.incrDecr(keyBuf, keyStart, keyLen, incr, f.delta, f.casIn, s)) {
    case DeltaResult.Ok:
      ref = engine.lastRef;
      digits = engine.deltaValue.toString();
      break;
    case DeltaResult.NonNumeric:
      return s.replyError('CLIENT_ERROR cannot increment or decrement non-numeric value');
    case DeltaResult.NoMemory:
      return s.replyError('SERVER_ERROR out of memory');
    case DeltaResult.CasMismatch:
      status = 'EX';
      break;
    case DeltaResult.NotFound:
      if (f.vivify) {
        digits = f.initial.toString();
        ref = engine.createNumber(keyBuf, keyStart, keyLen, digits, false); // see vivify in mg
        if (ref === 0) {
          if (items.allocError !== 0) return s.replyError('SERVER_ERROR Out of memory allocating new item');
          status = 'NS';
        } else {
          created = true;
        }
      } else {
        // incrDecr counted the miss
        status = 'NF';
      }
      break;
  }
  if (ref === 0) {
    out.ascii(status);
    if (!echoOpaqueAndKey(s, 2)) return opaqueTooLong(s, mark);
    out.crlf();
    return;
  }
  if (f.value) {
    out.ascii('VA ');
    out.uint(digits.length);
  } else {
    out.ascii('HD');
  }
  const b = s.line;
  for (let i = 2; i < s.ntokens - 1; i++) {
    switch (b[s.tokStart[i]]) {
      case 0x63: out.ascii(' c'); out.uint(items.cas(ref)); break;
      case 0x74: writeTtl(s, ref); break;
      case 0x54: items.setExptime(ref, f.exptime); break;
      case 0x4e: if (created) items.setExptime(ref, f.autovivExptime); break;
      case 0x4f:
        if (s.tokLen(i) > OPAQUE_BYTES_MAX) return opaqueTooLong(s, mark);
        out.byte(SPACE);
        out.bytes(b, s.tokStart[i], s.tokEnd[i]);
        break;
      case 0x6b: writeKey(s, keyBuf, keyStart, keyLen, f.keyBinary); break;
    }
  }
  if (f.value) {
    out.crlf();
    out.ascii(digits);
  }
  out.crlf();
  // memcached hides only the nominal reply of an existing item's update in quiet mode.
  if (s.quiet && !created) out.length = mark;
}

function metaDebug(s: TextSession): void {
  if (s.ntokens < 3 || s.tokLen(1) > KEY_BYTES_MAX) return s.replyString('CLIENT_ERROR bad command line format');
  useKeyToken(s);
  if (s.ntokens >= 4 && s.tokLen(2) === 1 && s.line[s.tokStart[2]] === 0x62) {
    if (!decodeKey(s)) return s.replyString('CLIENT_ERROR bad command line format');
  }
  const engine = s.engine;
  const items = engine.items;
  engine.stats.cmd_meta++;
  const ref = engine.peek(keyBuf, keyStart, keyLen);
  if (ref === 0) return s.replyString('EN');
  const now = engine.clock.now;
  const out = s.out;
  out.ascii('ME ');
  const ko = items.keyOffset(ref);
  if (items.keyBinary(ref)) out.ascii(items.page(ref).toString('base64', ko, ko + items.nkey(ref)));
  else out.bytes(items.page(ref), ko, ko + items.nkey(ref));
  const exp = items.exptime(ref);
  out.ascii(` exp=${exp === 0 ? -1 : (now - exp) | 0} la=${now - items.atime(ref)} cas=${items.cas(ref)} ` +
    `fetch=${(items.iflags(ref) & IF_FETCHED) !== 0 ? 'yes' : 'no'} cls=${items.classOf(ref)} ` +
    `size=${items.memcachedItemTotal(items.nkey(ref), items.nbytes(ref), items.flags(ref))}\r\n`);
}
