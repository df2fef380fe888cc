/**
 * Meta protocol (mg, ms, md, ma, me, mn) as memcached 1.6.45 speaks it (doc/protocol.txt,
 * "Meta Commands"; proto_parser.c), over the same engine and the same tokenized line as the
 * text protocol. This module only parses flags and renders replies; what the flags do to an
 * item (T, N, R, I, x, E, C, the win/stale tokens) is the engine's (Engine.metaGet and its
 * siblings, with a MetaRequest).
 *
 * Flags are single characters, some with a token ("T30", "Oopaque"); replies echo requested
 * flags in request order. Quiet mode (q) hides the nominal reply of each command (EN for mg,
 * HD for ms/md/ma, VA for ma); errors are always sent. Besides 1.6.18's flags, 1.6.45 has:
 * E<cas> (the CAS an mg/ms/md/ma that stores gives the item), mg C<cas> with v (the value is
 * left out when the CAS matches), ms s (the stored size), ms N with append/prepend (create
 * the item when missing), md x (keep the item with an empty value). Quirks kept on purpose:
 * md/ma report NF even in quiet mode; a bad flag in ms still swallows the value; `me b`
 * decodes the key only when another token follows (memcached counts tokens the old way there).
 *
 * All per-request state lives in one MetaCommands per session (no module-level state).
 */
import {
  DeltaResult, KEY_BYTES_MAX, META_TOKENS_MAX, MetaDeleteResult, MetaRequest, StoreMode, StoreResult,
  type Engine,
} from '../../engine/engine';
import { copySmall, decimalLength } from '../../bytes';
import { AllocFailure, ItemView, Proto, type ItemSink } from '../../engine/item-view';
import { Op } from '../commands';
import { parsed, tokI32, tokU32, tokU64 } from '../numbers';
import type { TextRequest } from './request';
import { appendDiskValue } from '../disk-value';

/** memcached's MFLAG_MAX_OPAQUE_LENGTH. */
export const OPAQUE_BYTES_MAX = 32;

const SPACE = 32;
const BAD_FORMAT = 'CLIENT_ERROR bad command line format';
const BAD_TOKEN = 'CLIENT_ERROR bad token in command line format';
const OPAQUE_TOO_LONG = 'CLIENT_ERROR opaque token too long';
/**
 * Record a bad flag's message and say the request failed (a function, not a closure in
 * preparse: V8 allocates a closure's context unless it inlines every call, and then a meta
 * request would make garbage).
 */
function flagError(f: MetaFlags, message: string): true {
  f.error = message;
  return true;
}

/** memcached turns a failed extstore read of an mg into a bare EN (nothing in quiet mode). */
const EN_CRLF = Buffer.from('EN\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

/** How the reply renders, beside what the engine needs (MetaRequest). */
class MetaFlags {
  error = '';
  quiet = false;
  value = false;
  keyBinary = false;
  /** C<cas> given (mg: leave the value out if it matches; ms/md/ma: compare). */
  hasCas = false;
  casIn = 0;
  hasCasIn = false;
  clientFlags = 0;
  mode = 0;
  readonly seen = new Uint8Array(128);

  reset(): void {
    this.error = '';
    this.quiet = this.value = this.keyBinary = this.hasCas = this.hasCasIn = false;
    this.casIn = this.clientFlags = this.mode = 0;
    this.seen.fill(0);
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;
B64_VALUE[0x3d] = 0; // '='

/** The meta commands of one text session. */
export class MetaCommands {
  private readonly f = new MetaFlags();
  private readonly req = new MetaRequest();
  /** Decoded binary keys (base64 'b') live here. */
  private readonly keyScratch = Buffer.alloc(KEY_BYTES_MAX + 4);
  private keyBuf: Buffer = EMPTY;
  private keyStart = 0;
  private keyLen = 0;
  private readonly view = new ItemView(Proto.Meta);
  private readonly setReply = new MetaSetReply();
  /** The reply being built for an mg hit (see getSink) and its start. */
  private mark = 0;
  private failed = false;
  private readonly getSink: ItemSink = { item: (v) => this.renderGet(v) };
  private readonly debugSink: ItemSink = { item: (v) => this.renderDebug(v) };

  constructor(private readonly s: TextRequest) {}

  run(op: Op): void {
    switch (op) {
      case Op.MetaGet: return this.metaGet();
      case Op.MetaSet: return this.metaSet();
      case Op.MetaDelete: return this.metaDelete();
      case Op.MetaArithmetic: return this.metaArithmetic();
      case Op.MetaDebug: return this.metaDebug();
      default: { // mn: replies so far are transmitted
        this.s.replyString('MN');
        this.s.markTransmitted();
      }
    }
  }

  private get engine(): Engine {
    return this.s.engine;
  }

  // ---------------------------------------------------------------- parsing

  /** The flag's argument: the token after its first byte (mcmc_token_get_flag_arg_*: 1+ bytes). */
  private flagArg(i: number, parse: (b: Uint8Array, st: number, e: number) => boolean): boolean {
    const s = this.s;
    const ts = s.tokStart[i];
    const te = s.tokEnd[i];
    return te - ts > 1 && parse(s.line, ts + 1, te);
  }

  /**
   * memcached's _meta_flag_preparse: validate every flag token from `first`, decode a base64
   * key. Returns false with `f.error` set (a duplicate or unknown flag stops at once; a bad
   * token value is remembered and parsing goes on, as memcached does).
   */
  private preparse(first: number): boolean {
    const s = this.s;
    const f = this.f;
    const req = this.req;
    f.reset();
    req.reset();
    this.keyBuf = s.line;
    this.keyStart = s.tokStart[1];
    this.keyLen = s.tokLen(1);
    f.error = BAD_FORMAT;
    if (this.keyLen > KEY_BYTES_MAX) return false;
    if (s.ntokens > META_TOKENS_MAX) {
      f.error = 'CLIENT_ERROR options flags are too long';
      return false;
    }
    const b = s.line;
    let failed = false;
    const clock = this.engine.clock;
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
          if (!this.decodeKey()) {
            this.keyLen = 0;
            failed = flagError(f, 'CLIENT_ERROR error decoding key');
          }
          break;
        case 0x4e: // N
          req.locked = true;
          if (this.flagArg(i, tokI32)) {
            req.vivifyAt = i;
            req.vivifyExptime = clock.realtime(parsed.value);
          } else {
            failed = flagError(f, BAD_TOKEN);
          }
          break;
        case 0x54: // T
          req.locked = true;
          if (this.flagArg(i, tokI32)) {
            req.touchAt = i;
            req.touchExptime = clock.realtime(parsed.value);
          } else {
            failed = flagError(f, BAD_TOKEN);
          }
          break;
        case 0x52: // R
          req.locked = true;
          if (this.flagArg(i, tokI32)) {
            req.recacheAt = i;
            req.recacheTime = clock.realtime(parsed.value);
          } else {
            failed = flagError(f, BAD_TOKEN);
          }
          break;
        case 0x6c: // l
        case 0x68: // h
          req.locked = true;
          break;
        case 0x4f: case 0x50: case 0x4c: // O P L
        case 0x6b: case 0x73: case 0x74: case 0x63: case 0x66: // k s t c f
          break;
        case 0x76: f.value = true; break; // v
        case 0x75: req.noBump = true; break; // u
        case 0x71: f.quiet = true; break; // q
        case 0x78: req.removeValue = true; break; // x
        case 0x46: // F: a bad value keeps the error message memcached had so far
          if (this.flagArg(i, tokU32)) f.clientFlags = req.clientFlags = parsed.value;
          else failed = true;
          break;
        case 0x43: // C
          if (this.flagArg(i, tokU64)) {
            f.casIn = req.casIn = parsed.value;
            f.hasCas = req.casCheck = true;
          } else {
            failed = flagError(f, BAD_TOKEN);
          }
          break;
        case 0x45: // E
          if (this.flagArg(i, tokU64)) {
            req.casIdIn = parsed.value;
            f.hasCasIn = true;
          } else {
            failed = flagError(f, BAD_TOKEN);
          }
          break;
        case 0x4d: // M: the byte after it, whatever the token's length
          f.mode = b[s.tokStart[i] + 1];
          break;
        case 0x4a: // J
          if (this.flagArg(i, tokU64)) req.initial = parsed.big;
          else failed = flagError(f, 'CLIENT_ERROR invalid numeric initial value');
          break;
        case 0x44: // D
          if (this.flagArg(i, tokU64)) {
            req.deltaSmall = parsed.small;
            if (req.deltaSmall < 0) req.delta = parsed.big;
          }
          else failed = flagError(f, 'CLIENT_ERROR invalid numeric delta value');
          break;
        case 0x49: req.setStale = true; break; // I
        default:
          f.error = 'CLIENT_ERROR invalid flag';
          return false;
      }
    }
    return !failed;
  }

  /** memcached's base64_decode of the key token: skip non-alphabet bytes; the rest must come in fours. */
  private decodeKey(): boolean {
    const s = this.s;
    const b = s.line;
    const start = s.tokStart[1];
    const end = s.tokEnd[1];
    const out = this.keyScratch;
    let count = 0;
    for (let i = start; i < end; i++) if (B64_VALUE[b[i]] >= 0) count++;
    if (count === 0 || count % 4 !== 0) return false;
    let b0 = 0;
    let b1 = 0;
    let b2 = 0;
    let n = 0;
    let at = 0;
    let pad = 0;
    for (let i = start; i < end; i++) {
      const v = B64_VALUE[b[i]];
      if (v < 0) continue;
      if (b[i] === 0x3d) pad++;
      if (n === 0) b0 = v;
      else if (n === 1) b1 = v;
      else if (n === 2) b2 = v;
      if (++n < 4) continue;
      out[at++] = ((b0 << 2) | (b1 >> 4)) & 0xff;
      out[at++] = ((b1 << 4) | (b2 >> 2)) & 0xff;
      out[at++] = ((b2 << 6) | v) & 0xff;
      n = 0;
      if (pad > 0) {
        if (pad > 2) return false;
        at -= pad;
        break;
      }
    }
    if (at === 0) return false;
    this.keyBuf = out;
    this.keyStart = 0;
    this.keyLen = at;
    return true;
  }

  // ---------------------------------------------------------------- rendering helpers

  /** " k<key>" (base64 plus " b" for binary keys), memcached's META_KEY. */
  private writeKey(src: Uint8Array, start: number, len: number, binary: boolean): void {
    const out = this.s.out;
    out.ascii(' k');
    if (!binary) {
      out.bytes(src, start, start + len);
      return;
    }
    out.ascii(Buffer.from(src.subarray(start, start + len)).toString('base64'));
    out.ascii(' b');
  }

  /** Echo the O and k flags of a reply without an item. Returns false if an opaque is too long. */
  private echoOpaqueAndKey(first: number): boolean {
    const s = this.s;
    for (let i = first; i < s.ntokens; i++) {
      const ch = s.line[s.tokStart[i]];
      if (ch === 0x4f) {
        if (!this.writeOpaque(i)) return false;
      } else if (ch === 0x6b) {
        this.writeKey(this.keyBuf, this.keyStart, this.keyLen, this.f.keyBinary);
      }
    }
    return true;
  }

  private writeOpaque(i: number): boolean {
    const s = this.s;
    if (s.tokLen(i) > OPAQUE_BYTES_MAX) return false;
    s.out.byte(SPACE);
    s.out.bytes(s.line, s.tokStart[i], s.tokEnd[i]);
    return true;
  }

  /** " t<seconds left>", -1 for never; memcached prints the unsigned difference. */
  private writeTtl(exptime: number): void {
    const out = this.s.out;
    out.ascii(' t');
    if (exptime === 0) out.ascii('-1');
    else out.uint((exptime - this.engine.clock.now) >>> 0);
  }

  /**
   * The exptime an item shows at flag position `pos`: T and N (on an item N created) change
   * it where they stand, as memcached walks the flags in order.
   */
  private exptimeAt(pos: number, initial: number, created: boolean): number {
    const req = this.req;
    let e = initial;
    for (let p = 0; p < pos; p++) {
      if (p === req.touchAt) e = req.touchExptime;
      else if (p === req.vivifyAt && created) e = req.vivifyExptime;
    }
    return e;
  }

  /** memcached's pout_errstring: the reply built so far is replaced by `message`, quiet or not. */
  private error(mark: number, message: string): void {
    const out = this.s.out;
    out.length = mark;
    out.ascii(message);
    out.crlf();
  }

  // ---------------------------------------------------------------- mg

  private metaGet(): void {
    const s = this.s;
    const mark = s.out.length;
    if (!this.preparse(2)) return this.error(mark, this.f.error);
    this.mark = mark;
    this.failed = false;
    if (this.engine.metaGet(this.view, this.keyBuf, this.keyStart, this.keyLen, this.req, this.getSink)) {
      if (this.failed) this.error(mark, OPAQUE_TOO_LONG);
      // No memory to read its value from disk: a miss (memcached's intent; 1.6.45 itself sends
      // the VA line twice before EN, which no client can parse).
      else if (this.view.diskReadRefused) this.missReply(mark);
      return;
    }
    this.missReply(mark);
  }

  /** mg's miss: EN with the opaque and key echoed; nothing when quiet. */
  private missReply(mark: number): void {
    const out = this.s.out;
    out.length = mark;
    out.ascii('EN');
    if (!this.echoOpaqueAndKey(2)) return this.error(mark, OPAQUE_TOO_LONG);
    if (this.f.quiet) out.length = mark;
    else out.crlf();
  }

  /** ItemSink of mg: the reply to a hit (under the item's lock). */
  private renderGet(v: ItemView): void {
    const s = this.s;
    const f = this.f;
    const out = s.out;
    const mark = this.mark;
    // mg C<cas> v: the client has this version already, so the value is left out.
    const withValue = f.value && !(f.hasCas && v.cas === f.casIn);
    const nbytes = v.nbytes;
    if (withValue) {
      out.ascii('VA ');
      out.uint(nbytes);
    } else {
      out.ascii('HD');
    }
    const now = this.engine.clock.now;
    const b = s.line;
    for (let i = 2; i < s.ntokens; i++) {
      switch (b[s.tokStart[i]]) {
        case 0x73: out.ascii(' s'); out.uint(nbytes); break;
        case 0x74: this.writeTtl(this.exptimeAt(i, v.exptime, v.created)); break; // t
        case 0x63: out.ascii(' c'); out.uint(v.cas); break;
        case 0x66: out.ascii(' f'); out.uint(v.flags); break;
        case 0x6c: out.ascii(' l'); out.uint((now - v.lastAccess) >>> 0); break;
        case 0x68: out.ascii(v.fetched ? ' h1' : ' h0'); break;
        case 0x4f: // O
          if (!this.writeOpaque(i)) {
            this.failed = true;
            return;
          }
          break;
        case 0x6b: this.writeKey(v.keyBuf, v.keyStart, v.keyLen, v.keyBinary); break; // k
      }
    }
    if (v.tokenSent) out.ascii(' Z');
    if (v.stale) out.ascii(' X');
    if (v.won) out.ascii(' W');
    out.crlf();
    if (withValue && v.onDisk) {
      appendDiskValue(this.engine, out, v, mark, true, f.quiet ? EMPTY : EN_CRLF);
    } else if (withValue) {
      out.ensure(nbytes + 2);
      out.length += v.copyValue(out.buf, out.length, out.view);
      out.crlf();
    }
    s.holdItem(v.ref, v.cas); // memcached's reply keeps a reference until transmitted
  }

  // ---------------------------------------------------------------- ms

  private metaSet(): void {
    const s = this.s;
    const vlen = s.vlen;
    const mark = s.out.length;
    const fail = (message: string): void => {
      this.error(mark, message);
      s.beginSwallow(vlen + 2);
    };
    if (!this.preparse(3)) return fail(this.f.error);
    const f = this.f;
    const req = this.req;
    const engine = this.engine;
    let mode: StoreMode;
    let exptime = req.touchExptime;
    const vivify = req.vivifyAt >= 0;
    switch (f.mode) {
      case 0: case 0x53: mode = StoreMode.Set; break; // S
      case 0x45: mode = StoreMode.Add; break; // E
      case 0x41: // A
        mode = vivify ? StoreMode.AppendVivify : StoreMode.Append;
        if (vivify) exptime = req.vivifyExptime;
        break;
      case 0x50: // P
        mode = vivify ? StoreMode.PrependVivify : StoreMode.Prepend;
        if (vivify) exptime = req.vivifyExptime;
        break;
      case 0x52: mode = StoreMode.Replace; break; // R
      default: return fail('CLIENT_ERROR invalid mode for ms M token');
    }
    if (f.hasCas && (mode === StoreMode.Set || mode === StoreMode.Replace)) mode = StoreMode.Cas;
    // memcached removes the old value when it cannot allocate, whatever the mode.
    const handle = engine.allocForStore(this.view, mode, this.keyBuf, this.keyStart, this.keyLen, f.clientFlags, exptime, vlen);
    if (handle === 0) {
      return fail(this.view.failure === AllocFailure.TooLarge ? 'SERVER_ERROR object too large for cache'
        : 'SERVER_ERROR out of memory storing object');
    }
    if (f.keyBinary) engine.markKeyBinary(handle);
    const reply = this.setReply;
    if (!reply.prepare(s, this.keyBuf, this.keyStart, this.keyLen, f.keyBinary)) {
      engine.abortStore(handle);
      return fail('CLIENT_ERROR opaque token too long');
    }
    reply.setStale = req.setStale && mode === StoreMode.Cas;
    reply.quiet = f.quiet;
    reply.casIdIn = f.hasCasIn ? req.casIdIn : -1;
    reply.vlen = vlen;
    s.beginValue(handle, mode, f.hasCas ? f.casIn : 0, vlen, reply);
  }

  // ---------------------------------------------------------------- md

  private metaDelete(): void {
    const out = this.s.out;
    const mark = out.length;
    if (!this.preparse(2)) return this.error(mark, this.f.error);
    out.ascii('XX');
    if (!this.echoOpaqueAndKey(2)) return this.error(mark, OPAQUE_TOO_LONG);
    let code: string;
    switch (this.engine.metaDelete(this.view, this.keyBuf, this.keyStart, this.keyLen, this.req)) {
      case MetaDeleteResult.Deleted: code = 'HD'; break;
      case MetaDeleteResult.Exists: code = 'EX'; break;
      case MetaDeleteResult.NotFound: code = 'NF'; break;
      default: return this.error(mark, 'SERVER_ERROR out of memory');
    }
    if (code === 'HD' && this.f.quiet) {
      out.length = mark;
      return;
    }
    out.buf.write(code, mark, 'latin1');
    out.crlf();
  }

  // ---------------------------------------------------------------- ma

  private metaArithmetic(): void {
    const s = this.s;
    const out = s.out;
    const mark = out.length;
    if (!this.preparse(2)) return this.error(mark, 'CLIENT_ERROR invalid or duplicate flag');
    const f = this.f;
    const req = this.req;
    let incr = true;
    switch (f.mode) {
      case 0: case 0x49: case 0x2b: break; // I +
      case 0x44: case 0x2d: incr = false; break; // D -
      default: return this.error(mark, 'CLIENT_ERROR invalid mode for ma M token');
    }
    const v = this.view;
    let status = '';
    switch (this.engine.metaArithmetic(v, this.keyBuf, this.keyStart, this.keyLen, incr, req, s)) {
      case DeltaResult.Ok: break;
      case DeltaResult.NonNumeric: return this.error(mark, 'CLIENT_ERROR cannot increment or decrement non-numeric value');
      case DeltaResult.NoMemory: return this.error(mark, 'SERVER_ERROR out of memory');
      case DeltaResult.CreateNoMemory: return this.error(mark, 'SERVER_ERROR Out of memory allocating new item');
      case DeltaResult.CasMismatch: status = 'EX'; break;
      case DeltaResult.NotStored: status = 'NS'; break;
      default: status = 'NF';
    }
    if (status !== '') {
      out.ascii(status);
      if (!this.echoOpaqueAndKey(2)) return this.error(mark, OPAQUE_TOO_LONG);
      out.crlf();
      return;
    }
    // Below 2^53 (nearly always) the digits are written without making a string.
    const digits = v.deltaSmall >= 0 ? null : v.delta.toString();
    if (f.value) {
      out.ascii('VA ');
      out.uint(digits === null ? decimalLength(v.deltaSmall) : digits.length);
    } else {
      out.ascii('HD');
    }
    const b = s.line;
    for (let i = 2; i < s.ntokens; i++) {
      switch (b[s.tokStart[i]]) {
        case 0x63: out.ascii(' c'); out.uint(v.cas); break;
        // After a copy, T changed the old item memcached's reply reads (and t shows that).
        case 0x74: this.writeTtl(this.exptimeAt(i, v.exptime, v.created)); break;
        case 0x4f:
          if (!this.writeOpaque(i)) return this.error(mark, OPAQUE_TOO_LONG);
          break;
        case 0x6b: this.writeKey(this.keyBuf, this.keyStart, this.keyLen, f.keyBinary); break;
      }
    }
    if (f.value) {
      out.crlf();
      if (digits === null) out.uint(v.deltaSmall);
      else out.ascii(digits);
    }
    out.crlf();
    if (f.quiet) out.length = mark;
  }

  // ---------------------------------------------------------------- me

  /** me <key> [b ...]: memcached's debug line for one item. */
  private metaDebug(): void {
    const s = this.s;
    if (s.tokLen(1) > KEY_BYTES_MAX) return s.replyString(BAD_FORMAT);
    this.keyBuf = s.line;
    this.keyStart = s.tokStart[1];
    this.keyLen = s.tokLen(1);
    // memcached still asks for four tokens here (its old count, with a terminal token).
    if (s.ntokens >= 4 && s.tokLen(2) === 1 && s.line[s.tokStart[2]] === 0x62) {
      if (!this.decodeKey()) return s.replyString(BAD_FORMAT);
    }
    if (!this.engine.metaDebug(this.view, this.keyBuf, this.keyStart, this.keyLen, this.debugSink)) s.reply(EN_CRLF);
  }

  private renderDebug(v: ItemView): void {
    const out = this.s.out;
    const now = this.engine.clock.now;
    out.ascii('ME ');
    if (v.keyBinary) out.ascii(Buffer.from(v.keyBuf.subarray(v.keyStart, v.keyStart + v.keyLen)).toString('base64'));
    else out.bytes(v.keyBuf, v.keyStart, v.keyStart + v.keyLen);
    out.ascii(` exp=${v.exptime === 0 ? -1 : (v.exptime - now) | 0} la=${now - v.lastAccess} cas=${v.cas} ` +
      `fetch=${v.fetched ? 'yes' : 'no'} cls=${v.cls} size=${v.memcachedSize}\r\n`);
  }
}

/** Reply stash for ms: what to echo, kept until the value has arrived. */
export class MetaSetReply {
  setStale = false;
  quiet = false;
  /** E<cas>: the CAS the stored item gets (-1: the next one). */
  casIdIn = -1;
  /** The value length given. */
  vlen = 0;
  /** Flag characters to echo, in order ('O', 'k', 'c', 's'). */
  private readonly codes = new Uint8Array(META_TOKENS_MAX);
  private ncodes = 0;
  private readonly opaque = Buffer.alloc(META_TOKENS_MAX * OPAQUE_BYTES_MAX);
  private readonly opaqueEnd = new Int32Array(META_TOKENS_MAX);
  private readonly key = Buffer.alloc(KEY_BYTES_MAX);
  private keyLen = 0;
  private keyBinary = false;
  private readonly view = new ItemView(Proto.Meta);

  /** Stash the flags to echo (tokens from the data length on). False if an opaque is too long. */
  prepare(s: TextRequest, keyBuf: Buffer, keyStart: number, keyLen: number, keyBinary: boolean): boolean {
    this.ncodes = 0;
    let opaques = 0;
    let used = 0;
    for (let i = 2; i < s.ntokens; i++) {
      const ch = s.line[s.tokStart[i]];
      if (ch === 0x4f) {
        if (s.tokLen(i) > OPAQUE_BYTES_MAX) return false;
        const n = s.tokLen(i);
        copySmall(this.opaque, used, s.line, s.tokStart[i], n);
        used += n;
        this.opaqueEnd[opaques++] = used;
        this.codes[this.ncodes++] = ch;
      } else if (ch === 0x6b || ch === 0x63 || ch === 0x73) {
        this.codes[this.ncodes++] = ch;
      }
    }
    this.keyLen = Math.min(keyLen, this.key.length);
    copySmall(this.key, 0, keyBuf, keyStart, this.keyLen);
    this.keyBinary = keyBinary;
    return true;
  }

  /** memcached's _finalize_mset, once the value is complete. */
  finish(s: TextRequest, handle: number, mode: StoreMode, casIn: number): void {
    const out = s.out;
    const v = this.view;
    const result = s.engine.commitStore(v, mode, handle, casIn, this.setStale, this.casIdIn);
    if (result === StoreResult.Stored && this.quiet) return;
    out.ascii(result === StoreResult.Stored ? 'HD' : result === StoreResult.Exists ? 'EX'
      : result === StoreResult.NotFound ? 'NF' : 'NS');
    let opaqueIndex = 0;
    let from = 0;
    for (let i = 0; i < this.ncodes; i++) {
      const ch = this.codes[i];
      if (ch === 0x4f) {
        const to = this.opaqueEnd[opaqueIndex++];
        out.byte(SPACE);
        out.bytes(this.opaque, from, to);
        from = to;
      } else if (ch === 0x6b) {
        out.ascii(' k');
        if (!this.keyBinary) {
          out.bytes(this.key, 0, this.keyLen);
        } else {
          out.ascii(this.key.toString('base64', 0, this.keyLen));
          out.ascii(' b');
        }
      } else if (ch === 0x63) {
        out.ascii(' c');
        out.uint(v.cas);
      } else {
        // s: the stored size (the merged value after append/prepend)
        out.ascii(' s');
        out.uint(result === StoreResult.Stored && v.storedBytes >= 0 ? v.storedBytes : this.vlen);
      }
    }
    out.crlf();
  }
}
