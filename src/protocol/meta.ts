/**
 * Meta protocol (mg, ms, md, ma, me, mn) as memcached 1.6.45 speaks it (doc/protocol.txt,
 * "Meta Commands"; proto_parser.c), over the same engine and the same tokenized line as the
 * text protocol.
 *
 * Flags are single characters, some with a token ("T30", "Oopaque"); replies echo requested
 * flags in request order. Quiet mode (q) hides the nominal reply of each command (EN for mg,
 * HD for ms/md/ma, VA for ma); errors are always sent. Besides 1.6.18's flags, 1.6.45 has:
 * E<cas> (the CAS an mg/ms/md/ma that stores gives the item), mg C<cas> with v (the value is
 * left out when the CAS matches), ms s (the stored size), ms N with append/prepend (create
 * the item when missing), md x (keep the item with an empty value). Quirks kept on purpose:
 * md/ma report NF even in quiet mode; a bad flag in ms still swallows the value; `me b`
 * decodes the key only when another token follows (memcached counts tokens the old way there).
 */
import { DeltaResult, StoreMode, StoreResult } from '../engine/engine';
import { IF_FETCHED, IF_STALE, IF_TOKEN_SENT, KEY_BYTES_MAX } from '../store/items';
import { Op } from './commands';
import { parsed, tokI32, tokU32, tokU64 } from './numbers';
import type { TextSession } from './text/session';
import { fetchIntoHole } from './disk-value';

/** memcached's MFLAG_MAX_OPT_LENGTH (tokens) and MFLAG_MAX_OPAQUE_LENGTH. */
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
  hasCasIn = false;
  setStale = false;
  keyBinary = false;
  removeValue = false;
  exptime = 0;
  autovivExptime = 0;
  recacheTime = 0;
  clientFlags = 0;
  casIn = 0;
  /** E<cas>: the CAS a stored item gets. */
  casIdIn = 0;
  mode = 0;
  delta = 1n;
  initial = 0n;
  readonly seen = new Uint8Array(128);

  reset(): void {
    this.error = '';
    this.quiet = this.value = this.noUpdate = this.locked = this.vivify = false;
    this.newTtl = this.hasCas = this.hasCasIn = this.setStale = this.keyBinary = this.removeValue = false;
    this.exptime = this.autovivExptime = this.recacheTime = this.clientFlags = this.casIn = this.casIdIn = this.mode = 0;
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

const BAD_FORMAT = 'CLIENT_ERROR bad command line format';
const BAD_TOKEN = 'CLIENT_ERROR bad token in command line format';
const OPAQUE_TOO_LONG = 'CLIENT_ERROR opaque token too long';
/** memcached turns a failed extstore read of an mg into a bare EN (nothing in quiet mode). */
const EN_CRLF = Buffer.from('EN\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

/** The flag's argument: the token after its first byte (mcmc_token_get_flag_arg_*: 1+ bytes). */
function flagArg(s: TextSession, i: number, parse: (b: Uint8Array, st: number, e: number) => boolean): boolean {
  const ts = s.tokStart[i];
  const te = s.tokEnd[i];
  return te - ts > 1 && parse(s.line, ts + 1, te);
}

/**
 * memcached's _meta_flag_preparse: validate every flag token from `first`, decode a base64
 * key. Returns false with `flags.error` set (a duplicate or unknown flag stops at once; a bad
 * token value is remembered and parsing goes on, as memcached does).
 */
function preparse(s: TextSession, first: number): boolean {
  const f = flags;
  f.reset();
  keyBuf = s.line;
  keyStart = s.tokStart[1];
  keyLen = s.tokLen(1);
  f.error = BAD_FORMAT;
  if (keyLen > KEY_BYTES_MAX) return false;
  if (s.ntokens > META_TOKENS_MAX) {
    f.error = 'CLIENT_ERROR options flags are too long';
    return false;
  }
  const b = s.line;
  let failed = false;
  const bad = (message: string): void => {
    f.error = message;
    failed = true;
  };
  const clock = s.engine.clock;
  for (let i = first; i < s.ntokens; i++) {
    const o = b[s.tokStart[i]];
    if (o >= 127 || f.seen[o] !== 0) {
      f.error = 'CLIENT_ERROR duplicate flag';
      return false;
    }
    f.seen[o] = 1;
    switch (o) {
      case 0x62: // b
        f.keyBinary = true;
        if (!decodeKey(s)) {
          keyLen = 0;
          bad('CLIENT_ERROR error decoding key');
        }
        break;
      case 0x4e: // N
        f.locked = f.vivify = true;
        if (flagArg(s, i, tokI32)) f.autovivExptime = clock.realtime(parsed.value);
        else bad(BAD_TOKEN);
        break;
      case 0x54: // T
        f.locked = true;
        if (flagArg(s, i, tokI32)) {
          f.exptime = clock.realtime(parsed.value);
          f.newTtl = true;
        } else {
          bad(BAD_TOKEN);
        }
        break;
      case 0x52: // R
        f.locked = true;
        if (flagArg(s, i, tokI32)) f.recacheTime = clock.realtime(parsed.value);
        else bad(BAD_TOKEN);
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
      case 0x78: f.removeValue = true; break; // x
      case 0x46: // F: a bad value keeps the error message memcached had so far
        if (flagArg(s, i, tokU32)) f.clientFlags = parsed.value;
        else failed = true;
        break;
      case 0x43: // C
        if (flagArg(s, i, tokU64)) {
          f.casIn = parsed.value;
          f.hasCas = true;
        } else {
          bad(BAD_TOKEN);
        }
        break;
      case 0x45: // E
        if (flagArg(s, i, tokU64)) {
          f.casIdIn = parsed.value;
          f.hasCasIn = true;
        } else {
          bad(BAD_TOKEN);
        }
        break;
      case 0x4d: // M: the byte after it, whatever the token's length
        f.mode = b[s.tokStart[i] + 1];
        break;
      case 0x4a: // J
        if (flagArg(s, i, tokU64)) f.initial = parsed.big;
        else bad('CLIENT_ERROR invalid numeric initial value');
        break;
      case 0x44: // D
        if (flagArg(s, i, tokU64)) f.delta = parsed.big;
        else bad('CLIENT_ERROR invalid numeric delta value');
        break;
      case 0x49: f.setStale = true; break; // I
      default:
        f.error = 'CLIENT_ERROR invalid flag';
        return false;
    }
  }
  return !failed;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;
B64_VALUE[0x3d] = 0; // '='

/** memcached's base64_decode of the key token: skip non-alphabet bytes; the rest must come in fours. */
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

/** Echo the O and k flags of a reply without an item. Returns false if an opaque is too long. */
function echoOpaqueAndKey(s: TextSession, first: number): boolean {
  for (let i = first; i < s.ntokens; i++) {
    const ch = s.line[s.tokStart[i]];
    if (ch === 0x4f) {
      if (!writeOpaque(s, i)) return false;
    } else if (ch === 0x6b) {
      writeKey(s, keyBuf, keyStart, keyLen, flags.keyBinary);
    }
  }
  return true;
}

function writeOpaque(s: TextSession, i: number): boolean {
  if (s.tokLen(i) > OPAQUE_BYTES_MAX) return false;
  s.out.byte(SPACE);
  s.out.bytes(s.line, s.tokStart[i], s.tokEnd[i]);
  return true;
}

/** " t<seconds left>", -1 for never; memcached prints the unsigned difference. */
function writeTtl(s: TextSession, ref: number): void {
  const exp = s.engine.items.exptime(ref);
  s.out.ascii(' t');
  if (exp === 0) s.out.ascii('-1');
  else s.out.uint((exp - s.engine.clock.now) >>> 0);
}

/** memcached's pout_errstring: the reply built so far is replaced by `message`, quiet or not. */
function error(s: TextSession, mark: number, message: string): void {
  s.out.length = mark;
  s.out.ascii(message);
  s.out.crlf();
}

export function runMeta(s: TextSession, op: Op): void {
  switch (op) {
    case Op.MetaGet: return metaGet(s);
    case Op.MetaSet: return metaSet(s);
    case Op.MetaDelete: return metaDelete(s);
    case Op.MetaArithmetic: return metaArithmetic(s);
    case Op.MetaDebug: return metaDebug(s);
    default: // mn: replies so far are transmitted
      s.replyString('MN');
      s.markTransmitted();
  }
}

function metaGet(s: TextSession): void {
  const out = s.out;
  const mark = out.length;
  if (!preparse(s, 2)) return error(s, mark, flags.error);
  const engine = s.engine;
  const items = engine.items;
  const f = flags;
  let ref = engine.peek(keyBuf, keyStart, keyLen);
  // Without flags that need the item locked, memcached bumps it while fetching it.
  if (ref !== 0 && !f.locked && !f.noUpdate) items.bump(ref);
  let created = false;
  if (ref === 0 && f.vivify) {
    // memcached does not mark an item autovivified by mg as having a binary key (only ms
    // does), so later k flags print its raw key.
    ref = engine.vivify(keyBuf, keyStart, keyLen, false, f.hasCasIn ? f.casIdIn : -1);
    created = ref !== 0;
  }
  if (ref === 0) {
    engine.countMetaFetch(0, false);
    out.ascii('EN');
    if (!echoOpaqueAndKey(s, 2)) return error(s, mark, OPAQUE_TOO_LONG);
    if (f.quiet) out.length = mark;
    else out.crlf();
    return;
  }
  // mg C<cas> v: the client has this version already, so the value is left out.
  const withValue = f.value && !(f.hasCas && items.cas(ref) === f.casIn);
  const nbytes = items.nbytes(ref);
  if (withValue) {
    out.ascii('VA ');
    out.uint(nbytes);
  } else {
    out.ascii('HD');
  }
  let won = false;
  let ttlSet = false;
  const now = engine.clock.now;
  const b = s.line;
  for (let i = 2; i < s.ntokens; i++) {
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
        if (!writeOpaque(s, i)) return error(s, mark, OPAQUE_TOO_LONG);
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
  if (withValue && items.isHdr(ref)) {
    const valueAt = out.length - mark;
    const hole = out.holeFrom(mark, nbytes + 2, f.quiet ? EMPTY : EN_CRLF);
    out.buf[hole.start + valueAt + nbytes] = 13;
    out.buf[hole.start + valueAt + nbytes + 1] = 10;
    fetchIntoHole(engine, out, ref, hole, valueAt);
  } else if (withValue) {
    out.ensure(nbytes + 2);
    items.copyValue(ref, out.buf, out.length);
    out.length += nbytes;
    out.crlf();
  }
  // The delayed bump of a locked fetch, after the flags saw the item as it was.
  if (f.locked && !f.noUpdate) items.bump(ref);
  engine.countMetaFetch(ref, ttlSet);
  s.holdItem(ref, items.cas(ref)); // memcached's reply keeps a reference until transmitted
}

/** Reply stash for ms: what to echo, kept until the value has arrived. */
export class MetaSetReply {
  setStale = false;
  quiet = false;
  /** E<cas>: the CAS the stored item gets (-1: the next one). */
  casIdIn = -1;
  /** Flag characters to echo, in order ('O', 'k', 'c', 's'). */
  private codes: number[] = [];
  private readonly opaque = Buffer.alloc(META_TOKENS_MAX * OPAQUE_BYTES_MAX);
  private readonly opaqueEnd: number[] = [];

  /** Stash the flags to echo (tokens from the data length on). False if an opaque is too long. */
  prepare(s: TextSession): boolean {
    this.codes = [];
    this.opaqueEnd.length = 0;
    let used = 0;
    for (let i = 2; i < s.ntokens; i++) {
      const ch = s.line[s.tokStart[i]];
      if (ch === 0x4f) {
        if (s.tokLen(i) > OPAQUE_BYTES_MAX) return false;
        used += s.line.copy(this.opaque, used, s.tokStart[i], s.tokEnd[i]);
        this.opaqueEnd.push(used);
        this.codes.push(ch);
      } else if (ch === 0x6b || ch === 0x63 || ch === 0x73) {
        this.codes.push(ch);
      }
    }
    return true;
  }

  /** memcached's _finalize_mset, once the value is complete. */
  finish(s: TextSession, ref: number, mode: StoreMode, casIn: number): void {
    const engine = s.engine;
    const items = engine.items;
    const out = s.out;
    // Read what the reply needs from the request's item before the store frees or links it.
    const nbytes = items.nbytes(ref);
    const keyBinary = items.keyBinary(ref);
    const needsKey = this.codes.includes(0x6b);
    const key = needsKey ? Buffer.from(items.page(ref).subarray(items.keyOffset(ref), items.keyOffset(ref) + items.nkey(ref))) : EMPTY;
    const result = engine.commitStore(mode, ref, casIn, this.setStale, this.casIdIn);
    if (result === StoreResult.Stored && this.quiet) return;
    out.ascii(result === StoreResult.Stored ? 'HD' : result === StoreResult.Exists ? 'EX'
      : result === StoreResult.NotFound ? 'NF' : 'NS');
    let opaqueIndex = 0;
    let from = 0;
    for (const ch of this.codes) {
      if (ch === 0x4f) {
        const to = this.opaqueEnd[opaqueIndex++];
        out.byte(SPACE);
        out.bytes(this.opaque, from, to);
        from = to;
      } else if (ch === 0x6b) {
        writeKey(s, key, 0, key.length, keyBinary);
      } else if (ch === 0x63) {
        out.ascii(' c');
        out.uint(engine.lastCas);
      } else {
        // s: the stored size (the merged value after append/prepend)
        out.ascii(' s');
        out.uint(result === StoreResult.Stored && engine.lastMergedBytes >= 0 ? engine.lastMergedBytes : nbytes);
      }
    }
    out.crlf();
  }
}

const replies = new WeakMap<TextSession, MetaSetReply>();

function metaSet(s: TextSession): void {
  const vlen = s.vlen;
  const out = s.out;
  const mark = out.length;
  const fail = (message: string): void => {
    error(s, mark, message);
    s.beginSwallow(vlen + 2);
  };
  if (!preparse(s, 3)) return fail(flags.error);
  const f = flags;
  const engine = s.engine;
  let mode: StoreMode;
  let exptime = f.exptime;
  switch (f.mode) {
    case 0: case 0x53: mode = StoreMode.Set; break; // S
    case 0x45: mode = StoreMode.Add; break; // E
    case 0x41: // A
      mode = f.vivify ? StoreMode.AppendVivify : StoreMode.Append;
      if (f.vivify) exptime = f.autovivExptime;
      break;
    case 0x50: // P
      mode = f.vivify ? StoreMode.PrependVivify : StoreMode.Prepend;
      if (f.vivify) exptime = f.autovivExptime;
      break;
    case 0x52: mode = StoreMode.Replace; break; // R
    default: return fail('CLIENT_ERROR invalid mode for ms M token');
  }
  if (f.hasCas && (mode === StoreMode.Set || mode === StoreMode.Replace)) mode = StoreMode.Cas;
  // memcached removes the old value when it cannot allocate, whatever the mode.
  const ref = engine.allocForStore(StoreMode.Set, keyBuf, keyStart, keyLen, f.clientFlags, exptime, vlen);
  if (ref === 0) {
    return fail(engine.items.allocError === 1 ? 'SERVER_ERROR object too large for cache'
      : 'SERVER_ERROR out of memory storing object');
  }
  if (f.keyBinary) engine.items.setKeyBinary(ref);
  let reply = replies.get(s);
  if (reply === undefined) {
    reply = new MetaSetReply();
    replies.set(s, reply);
  }
  if (!reply.prepare(s)) {
    engine.abortStore(ref);
    return fail('CLIENT_ERROR opaque token too long');
  }
  reply.setStale = f.setStale && mode === StoreMode.Cas;
  reply.quiet = f.quiet;
  reply.casIdIn = f.hasCasIn ? f.casIdIn : -1;
  s.beginValue(ref, mode, f.hasCas ? f.casIn : 0, vlen, reply);
}

function metaDelete(s: TextSession): void {
  const out = s.out;
  const mark = out.length;
  if (!preparse(s, 2)) return error(s, mark, flags.error);
  const f = flags;
  out.ascii('XX');
  if (!echoOpaqueAndKey(s, 2)) return error(s, mark, OPAQUE_TOO_LONG);
  const engine = s.engine;
  const items = engine.items;
  let ref = engine.peek(keyBuf, keyStart, keyLen);
  let code = 'NF';
  if (ref === 0) {
    engine.stats.delete_misses++;
  } else if (f.hasCas && items.cas(ref) !== f.casIn) {
    engine.stats.delete_misses++;
    code = 'EX';
  } else {
    code = 'HD';
    if (f.removeValue) {
      // x: the item stays, with an empty value, F's flags, T's exptime and its old CAS (or E's).
      const emptied = engine.replaceWithEmpty(ref, f.clientFlags, f.exptime, f.hasCasIn ? f.casIdIn : items.cas(ref));
      if (emptied < 0) return error(s, mark, 'SERVER_ERROR out of memory');
      if (emptied === 0) code = 'NS';
      else ref = emptied;
    }
    if (code === 'HD') {
      if (f.setStale) engine.invalidate(ref, f.newTtl ? f.exptime : null, f.hasCasIn ? f.casIdIn : -1);
      else engine.deleteFound(ref, !f.removeValue);
    }
  }
  if (code === 'HD' && f.quiet) {
    out.length = mark;
    return;
  }
  out.buf.write(code, mark, 'latin1');
  out.crlf();
}

function metaArithmetic(s: TextSession): void {
  const out = s.out;
  const mark = out.length;
  if (!preparse(s, 2)) return error(s, mark, 'CLIENT_ERROR invalid or duplicate flag');
  const f = flags;
  let incr = true;
  switch (f.mode) {
    case 0: case 0x49: case 0x2b: break; // I +
    case 0x44: case 0x2d: incr = false; break; // D -
    default: return error(s, mark, 'CLIENT_ERROR invalid mode for ma M token');
  }
  const engine = s.engine;
  const items = engine.items;
  let ref = 0;
  let created = false;
  /** The item memcached's reply reads: after a copy, the old (unlinked) one. */
  let replaced = false;
  let cas = 0;
  let digits = '';
  let status = '';
  switch (engine.incrDecr(keyBuf, keyStart, keyLen, incr, f.delta, f.hasCas ? f.casIn : 0, s, !f.vivify)) {
    case DeltaResult.Ok:
      ref = engine.lastRef;
      replaced = engine.lastDeltaCopied;
      digits = engine.deltaValue.toString();
      cas = engine.lastCas;
      if (f.hasCasIn) {
        // memcached sets E's CAS on the item do_add_delta handed back: after a copy that is
        // the old item, so only the reply shows it.
        cas = f.casIdIn;
        if (!replaced) items.setCas(ref, f.casIdIn);
      }
      break;
    case DeltaResult.NonNumeric:
      return error(s, mark, 'CLIENT_ERROR cannot increment or decrement non-numeric value');
    case DeltaResult.NoMemory:
      return error(s, mark, 'SERVER_ERROR out of memory');
    case DeltaResult.CasMismatch:
      status = 'EX';
      break;
    case DeltaResult.NotFound:
      if (f.vivify) {
        digits = f.initial.toString();
        ref = engine.createNumber(keyBuf, keyStart, keyLen, digits, false, f.hasCasIn ? f.casIdIn : -1);
        if (ref === 0) {
          if (items.allocError !== 0) return error(s, mark, 'SERVER_ERROR Out of memory allocating new item');
          status = 'NS';
        } else {
          created = true;
          cas = items.cas(ref);
        }
      } else {
        status = 'NF';
      }
      break;
  }
  if (ref === 0) {
    out.ascii(status);
    if (!echoOpaqueAndKey(s, 2)) return error(s, mark, OPAQUE_TOO_LONG);
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
  // After a copy, T changes the old item memcached's reply reads (and t shows that), not the
  // stored one.
  let replyExptime = items.exptime(ref);
  for (let i = 2; i < s.ntokens; i++) {
    switch (b[s.tokStart[i]]) {
      case 0x63: out.ascii(' c'); out.uint(cas); break;
      case 0x74:
        out.ascii(' t');
        if (replyExptime === 0) out.ascii('-1');
        else out.uint((replyExptime - engine.clock.now) >>> 0);
        break;
      case 0x54:
        replyExptime = f.exptime;
        if (!replaced) items.setExptime(ref, f.exptime);
        break;
      case 0x4e:
        if (created) {
          replyExptime = f.autovivExptime;
          items.setExptime(ref, f.autovivExptime);
        }
        break;
      case 0x4f:
        if (!writeOpaque(s, i)) return error(s, mark, OPAQUE_TOO_LONG);
        break;
      case 0x6b: writeKey(s, keyBuf, keyStart, keyLen, f.keyBinary); break;
    }
  }
  if (f.value) {
    out.crlf();
    out.ascii(digits);
  }
  out.crlf();
  if (f.quiet) out.length = mark;
}

/** me <key> [b ...]: memcached's debug line for one item. */
function metaDebug(s: TextSession): void {
  if (s.tokLen(1) > KEY_BYTES_MAX) return s.replyString(BAD_FORMAT);
  keyBuf = s.line;
  keyStart = s.tokStart[1];
  keyLen = s.tokLen(1);
  // memcached still asks for four tokens here (its old count, with a terminal token).
  if (s.ntokens >= 4 && s.tokLen(2) === 1 && s.line[s.tokStart[2]] === 0x62) {
    if (!decodeKey(s)) return s.replyString(BAD_FORMAT);
  }
  const engine = s.engine;
  const items = engine.items;
  const ref = engine.peek(keyBuf, keyStart, keyLen);
  engine.stats.cmd_meta++;
  if (ref === 0) return s.reply(EN_CRLF);
  const now = engine.clock.now;
  const out = s.out;
  out.ascii('ME ');
  const ko = items.keyOffset(ref);
  if (items.keyBinary(ref)) out.ascii(items.page(ref).toString('base64', ko, ko + items.nkey(ref)));
  else out.bytes(items.page(ref), ko, ko + items.nkey(ref));
  const exp = items.exptime(ref);
  out.ascii(` exp=${exp === 0 ? -1 : (exp - now) | 0} la=${now - items.atime(ref)} cas=${items.cas(ref)} ` +
    `fetch=${(items.iflags(ref) & IF_FETCHED) !== 0 ? 'yes' : 'no'} cls=${items.classOf(ref)} ` +
    `size=${items.memcachedItemTotal(items.nkey(ref), items.nbytes(ref), items.flags(ref))}\r\n`);
}
