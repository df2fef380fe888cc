/**
 * Text protocol session: memcached's ASCII protocol (doc/protocol.txt) for one connection.
 *
 * Parsing is resumable and works on offsets into the connection's buffer: a request line is
 * tokenized into (start, end) pairs in preallocated arrays, values are copied straight from
 * the read buffer into slab memory as they arrive (across as many reads as it takes), and
 * replies are appended to the connection's Output. No per-request allocation on the get/set
 * path. Error strings, token rules and odd-input behaviour follow memcached 1.6.18.
 *
 * States:  LINE ──set/add/..──► VALUE (copy nbytes, then check CRLF) ──► LINE
 *            └──too large / no memory──► SWALLOW (discard nbytes+2) ──► LINE
 */
import { DeleteResult, DeltaResult, Engine, StoreMode, StoreResult } from '../../engine/engine';
import { Op, COMMANDS, CommandTable, tokenCountOk, type CommandEntry } from '../commands';
import { parseI32, parseU32, parseU64, parsed } from '../numbers';
import type { Output } from '../output';
import { FeedStatus, type ConnectionInfo, type ProtocolSession } from '../session';
import { AllocError, KEY_BYTES_MAX } from '../../store/items';
import type { AdminHooks } from './admin';
import { runMeta, type MetaSetReply } from '../meta';
import { runAdmin } from './admin';
import { fetchIntoHole } from '../disk-value';
import type { Watcher } from '../../metrics/logger';
import { commandLatency, nowMs } from '../../metrics/latency';

/** memcached's MAX_TOKENS: tokens per tokenizer pass, terminal included. */
export const TOKENS_MAX = 24;
/** A line with no newline after this many bytes must be a multiget, or the peer is hostile. */
export const LINE_BYTES_NON_GET_MAX = 2048;
/** Items tracked as held by unsent replies per read event (meta gets between transmits). */
const HELD_ITEMS_MAX = 64;

const enum State {
  Line = 0,
  Value = 1,
  Swallow = 2,
}

const CR = 13;
const LF = 10;
const SPACE = 32;

const table = new CommandTable(COMMANDS);
/** Meta commands by their second letter (-1: not a meta command), for the latency histograms. */
const META_OPS = (() => {
  const t = new Int8Array(256).fill(-1);
  t[0x67] = Op.MetaGet;
  t[0x73] = Op.MetaSet;
  t[0x64] = Op.MetaDelete;
  t[0x61] = Op.MetaArithmetic;
  t[0x6e] = Op.MetaNoop;
  t[0x65] = Op.MetaDebug;
  return t;
})();

function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}
export const R = {
  STORED: bytes('STORED\r\n'),
  NOT_STORED: bytes('NOT_STORED\r\n'),
  EXISTS: bytes('EXISTS\r\n'),
  NOT_FOUND: bytes('NOT_FOUND\r\n'),
  DELETED: bytes('DELETED\r\n'),
  TOUCHED: bytes('TOUCHED\r\n'),
  END: bytes('END\r\n'),
  OK: bytes('OK\r\n'),
  ERROR: bytes('ERROR\r\n'),
  VALUE: bytes('VALUE '),
  BAD_FORMAT: bytes('CLIENT_ERROR bad command line format\r\n'),
  BAD_CHUNK: bytes('CLIENT_ERROR bad data chunk\r\n'),
  TOO_LARGE: bytes('SERVER_ERROR object too large for cache\r\n'),
  NO_MEMORY_STORE: bytes('SERVER_ERROR out of memory storing object\r\n'),
  NO_MEMORY: bytes('SERVER_ERROR out of memory\r\n'),
  BAD_EXPTIME: bytes('CLIENT_ERROR invalid exptime argument\r\n'),
  BAD_DELTA: bytes('CLIENT_ERROR invalid numeric delta argument\r\n'),
  NON_NUMERIC: bytes('CLIENT_ERROR cannot increment or decrement non-numeric value\r\n'),
  DELETE_USAGE: bytes('CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n'),
};

const EMPTY = Buffer.alloc(0);
const GET_PREFIX = bytes('get ');
const GETS_PREFIX = bytes('gets ');
const NOREPLY = bytes('noreply');
const HTTP = bytes('HTTP/');
/** First letters memcached dispatches by family: an unknown name there is just ERROR. */
const FAMILY_LETTERS = new Set('gsacidt'.split('').map((c) => c.charCodeAt(0)));

export class TextSession implements ProtocolSession {
  status: FeedStatus = FeedStatus.Ok;
  private state = State.Line;
  private noreply = false;

  // the line being handled: token offsets into `line`
  /** The buffer holding the current request line (tokens are offsets into it). */
  line: Buffer = Buffer.alloc(0);
  readonly tokStart = new Int32Array(TOKENS_MAX + 1);
  readonly tokEnd = new Int32Array(TOKENS_MAX + 1);
  ntokens = 0;
  private lineEnd = 0;

  // VALUE state
  private item = 0;
  private storeMode = StoreMode.Set;
  private casIn = 0;
  private valueBytes = 0;
  private valueDone = 0;
  /** CRLF bytes seen after the value (0..2); -1 once a wrong byte was seen. */
  private crlfSeen = 0;
  private trailerSeen = 0;

  private swallowLeft = 0;
  /**
   * Output position at memcached's last transmit point (start of a read event, end of a get,
   * mn). A get with an over-long key drops every reply after it, as memcached does.
   */
  flushMark = 0;
  /**
   * Items referred to by replies not yet transmitted (meta mg hits), as (ref, cas) pairs:
   * memcached holds a reference to them until it transmits, and an incr/decr on a held item
   * stores a copy instead of rewriting it (see Engine.incrDecr). Cleared at each transmit point.
   */
  private readonly held = new Float64Array(HELD_ITEMS_MAX * 2);
  private heldCount = 0;
  /** A meta set (ms) in flight: its reply is built when the value completes. */
  private metaSet: MetaSetReply | null = null;
  /** After `watch`: input is discarded and the connection only receives log lines. */
  private watcher: Watcher | null = null;
  /** -o metrics_listen: the storage command whose value is being read, and its line's time. */
  private timedValueOp = -1;
  private timedLineMs = 0;
  /** The Op of the line being handled, for the latency histograms (-1: none, meta: by letter). */
  private lineOp = -1;

  constructor(
    readonly engine: Engine,
    readonly out: Output,
    readonly conn: ConnectionInfo,
    private readonly admin: AdminHooks,
  ) {}

  feed(buf: Buffer, start: number, end: number): number {
    this.status = FeedStatus.Ok;
    if (this.watcher !== null) return end - start;
    this.engine.logger.clientId = this.conn.id;
    this.markTransmitted();
    const perEvent = this.engine.settings.requestsPerEvent;
    let pos = start;
    let requests = 0;
    while (pos < end) {
      if (this.state === State.Value) {
        pos = this.readValue(buf, pos, end);
        continue;
      }
      if (this.state === State.Swallow) {
        const n = Math.min(this.swallowLeft, end - pos);
        this.swallowLeft -= n;
        pos += n;
        if (this.swallowLeft === 0) this.state = State.Line;
        continue;
      }
      if (requests >= perEvent) {
        this.status = FeedStatus.Yield;
        break;
      }
      let nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= end) {
        if (end - pos > LINE_BYTES_NON_GET_MAX && !this.mayBeLongGet(buf, pos, end)) this.status = FeedStatus.Close;
        break;
      }
      const next = nl + 1;
      if (nl - pos > 1 && buf[nl - 1] === CR) nl--;
      this.conn.lastCommandTime = this.engine.clock.now;
      if (commandLatency.enabled) this.processLineTimed(buf, pos, nl);
      else this.processLine(buf, pos, nl);
      pos = next;
      requests++;
      if ((this.status as FeedStatus) === FeedStatus.Close) break;
      if (this.watcher !== null) return end - start;
    }
    return pos - start;
  }

  /** memcached keeps reading an unterminated line only if it is a get/gets (a huge multiget). */
  private mayBeLongGet(buf: Buffer, pos: number, end: number): boolean {
    let p = pos;
    while (p < end && buf[p] === SPACE) p++;
    if (p - pos > 100) return false;
    if (end - pos > this.engine.settings.multigetLineBytesMax) return false;
    return startsWith(buf, p, end, GET_PREFIX) || startsWith(buf, p, end, GETS_PREFIX);
  }

  release(): void {
    if (this.watcher !== null) this.engine.logger.remove(this.watcher);
    this.watcher = null;
    if (this.state === State.Value && this.item !== 0) this.engine.abortStore(this.item);
    this.item = 0;
    this.state = State.Line;
  }

  // ---------------------------------------------------------------- tokens

  /** memcached's tokenize_command over line[s, e): split on spaces, at most TOKENS_MAX. */
  tokenize(b: Buffer, s: number, e: number): void {
    let n = 0;
    let tokenStart = s;
    let i = s;
    let rest = -1;
    for (; i < e; i++) {
      const c = b[i];
      if (c === 0) break; // memcached stops at a NUL (C string)
      if (c === SPACE) {
        if (tokenStart !== i) {
          this.tokStart[n] = tokenStart;
          this.tokEnd[n] = i;
          n++;
          if (n === TOKENS_MAX - 1) {
            tokenStart = i + 1;
            rest = tokenStart < e && b[tokenStart] !== 0 ? tokenStart : -1;
            i = e;
            break;
          }
        }
        tokenStart = i + 1;
      }
    }
    const lineStop = i < e ? i : e;
    if (rest < 0 && tokenStart < lineStop && n < TOKENS_MAX - 1) {
      this.tokStart[n] = tokenStart;
      this.tokEnd[n] = lineStop;
      n++;
    }
    // terminal token: start = rest of line (or -1 when the line was consumed), length 0
    this.tokStart[n] = rest;
    this.tokEnd[n] = rest;
    this.ntokens = n + 1;
    this.lineEnd = lineStop;
  }

  tokLen(i: number): number {
    return this.tokEnd[i] - this.tokStart[i];
  }

  tokEquals(i: number, word: Buffer): boolean {
    const s = this.tokStart[i];
    if (s < 0 || this.tokEnd[i] - s !== word.length) return false;
    const b = this.line;
    for (let k = 0; k < word.length; k++) if (b[s + k] !== word[k]) return false;
    return true;
  }

  tokString(i: number): string {
    return this.tokStart[i] < 0 ? '' : this.line.toString('latin1', this.tokStart[i], this.tokEnd[i]);
  }

  /** memcached's set_noreply_maybe: the last real token is "noreply". */
  setNoreplyMaybe(): boolean {
    if (this.ntokens >= 2 && this.tokEquals(this.ntokens - 2, NOREPLY)) this.noreply = true;
    return this.noreply;
  }

  // ---------------------------------------------------------------- replies

  /** A fixed reply, unless noreply is in force (memcached's out_string). */
  reply(r: Buffer): void {
    if (this.engine.settings.verbose > 1) this.echoReply(r.toString('latin1', 0, r.length - 2));
    if (this.noreply) return;
    this.out.bytes(r, 0, r.length);
  }

  replyString(s: string): void {
    if (this.engine.settings.verbose > 1) this.echoReply(s);
    if (this.noreply) return;
    this.out.ascii(s);
    this.out.crlf();
  }

  /** memcached -vv's reply echo (out_string): ">fd STORED", ">fd NOREPLY STORED". */
  private echoReply(text: string): void {
    this.engine.log(2, this.noreply ? `>${this.conn.id} NOREPLY ${text}` : `>${this.conn.id} ${text}`);
  }

  /** `watch`: from now on the connection only receives `watcher`'s log lines. */
  startWatching(watcher: Watcher): void {
    this.watcher = watcher;
    this.conn.stateName = 'conn_watch';
  }

  // ---------------------------------------------------------------- dispatch

  /**
   * processLine under -o metrics_listen: the command's service time goes to its histogram. A
   * storage command's time is the line's plus completing the value (not the wait for it).
   */
  private processLineTimed(b: Buffer, s: number, e: number): void {
    const started = nowMs();
    this.lineOp = -1;
    this.processLine(b, s, e);
    const ms = nowMs() - started;
    const op = this.lineOp;
    if (op < 0) return;
    if (this.state === State.Value) {
      this.timedValueOp = op;
      this.timedLineMs = ms;
      return;
    }
    commandLatency.observe(op, ms / 1000);
  }

  private processLine(b: Buffer, s: number, e: number): void {
    // memcached -vv echoes each command line.
    if (this.engine.settings.verbose > 1) this.engine.log(2, `<${this.conn.id} ${b.toString('latin1', s, e)}`);
    this.noreply = false;
    this.line = b;
    this.tokenize(b, s, e);
    const nt = this.ntokens;
    if (nt < 2 || this.tokLen(0) < 2) {
      this.reply(R.ERROR);
      return;
    }
    const c0 = b[this.tokStart[0]];
    if (c0 === 0x6d /* m */ && this.tokLen(0) === 2) {
      this.lineOp = META_OPS[b[this.tokStart[0] + 1]];
      runMeta(this);
      return;
    }
    const entry = table.find(b, this.tokStart[0], this.tokEnd[0]);
    if (entry === undefined) {
      this.unknown(c0);
      return;
    }
    if (!tokenCountOk(entry, nt)) {
      this.reply(R.ERROR);
      return;
    }
    this.run(entry);
  }

  private unknown(firstByte: number): void {
    if (!FAMILY_LETTERS.has(firstByte)) {
      const last = this.ntokens - 2;
      const s = this.tokStart[last];
      if (s >= 0 && startsWith(this.line, s, this.tokEnd[last], HTTP)) {
        this.status = FeedStatus.Close;
        return;
      }
    }
    this.reply(R.ERROR);
  }

  private run(entry: CommandEntry): void {
    this.lineOp = entry.op;
    switch (entry.op) {
      case Op.Get: return this.retrieve(false, false);
      case Op.Gets: return this.retrieve(true, false);
      case Op.Gat: return this.retrieve(false, true);
      case Op.Gats: return this.retrieve(true, true);
      case Op.Set: return this.update(StoreMode.Set);
      case Op.Add: return this.update(StoreMode.Add);
      case Op.Replace: return this.update(StoreMode.Replace);
      case Op.Append: return this.update(StoreMode.Append);
      case Op.Prepend: return this.update(StoreMode.Prepend);
      case Op.Cas: return this.update(StoreMode.Cas);
      case Op.Incr: return this.arithmetic(true);
      case Op.Decr: return this.arithmetic(false);
      case Op.Delete: return this.remove();
      case Op.Touch: return this.touch();
      case Op.Quit:
        this.status = FeedStatus.Close;
        return;
      default:
        runAdmin(this, entry.op, this.admin);
    }
  }

  // ---------------------------------------------------------------- retrieval

  private retrieve(withCas: boolean, touch: boolean): void {
    const engine = this.engine;
    const b = this.line;
    let exptime = 0;
    let keyTok = 1;
    if (touch) {
      if (!parseI32(b, this.tokStart[1], this.tokEnd[1])) {
        this.reply(R.BAD_EXPTIME);
        return;
      }
      exptime = engine.clock.realtime(parsed.value);
      keyTok = 2;
    }
    if (keyTok >= this.ntokens - 1) {
      this.out.bytes(R.END, 0, 5);
      return;
    }
    // Keys are every space-separated run after the command (and exptime), however many.
    let p = this.tokStart[keyTok];
    const e = this.lineEnd;
    const detail = engine.detail.enabled;
    const echo = engine.settings.verbose > 1;
    while (p < e) {
      let k = p;
      while (k < e && b[k] !== SPACE && b[k] !== 0) k++;
      const nkey = k - p;
      if (nkey > KEY_BYTES_MAX) {
        // memcached drops every reply not yet sent on this connection, then reports the error.
        this.out.truncate(this.flushMark);
        this.reply(R.BAD_FORMAT);
        return;
      }
      if (nkey > 0) {
        const ref = touch ? engine.getAndTouch(b, p, nkey, exptime) : engine.get(b, p, nkey);
        if (detail) engine.detail.recordGet(b, p, nkey, ref !== 0);
        if (ref !== 0) this.writeValue(ref, b, p, nkey, withCas);
        if (echo && ref !== 0) engine.log(2, `>${this.conn.id} sending key ${b.toString('latin1', p, k)}`);
      }
      if (k < e && b[k] === 0) break;
      p = k + 1;
    }
    if (echo) engine.log(2, `>${this.conn.id} END`);
    this.out.bytes(R.END, 0, 5);
    this.markTransmitted();
  }

  /** memcached transmits here (start of a read event, end of a get, mn): replies let go of items. */
  markTransmitted(): void {
    this.flushMark = this.out.length;
    this.heldCount = 0;
  }

  /** An unsent reply refers to this item (bounded: past the limit, items count as not held). */
  holdItem(ref: number, cas: number): void {
    if (this.heldCount === HELD_ITEMS_MAX) return;
    this.held[this.heldCount * 2] = ref;
    this.held[this.heldCount * 2 + 1] = cas;
    this.heldCount++;
  }

  isHeld(ref: number, cas: number): boolean {
    const h = this.held;
    for (let i = 0; i < this.heldCount; i++) if (h[i * 2] === ref && h[i * 2 + 1] === cas) return true;
    return false;
  }

  /** "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" */
  private writeValue(ref: number, key: Buffer, keyStart: number, nkey: number, withCas: boolean): void {
    const items = this.engine.items;
    const out = this.out;
    const nbytes = items.nbytes(ref);
    const onDisk = items.isHdr(ref);
    out.ensure(6 + nkey + 48 + (onDisk ? 0 : nbytes + 2));
    const o = out.buf;
    const start = out.length;
    let p = start;
    o[p] = 0x56; o[p + 1] = 0x41; o[p + 2] = 0x4c; o[p + 3] = 0x55; o[p + 4] = 0x45; o[p + 5] = SPACE;
    p += 6;
    key.copy(o, p, keyStart, keyStart + nkey);
    p += nkey;
    o[p++] = SPACE;
    out.length = p;
    out.uint(items.flags(ref));
    out.byte(SPACE);
    out.uint(nbytes);
    if (withCas) {
      out.byte(SPACE);
      out.uint(items.cas(ref));
    }
    p = out.length;
    o[p] = CR;
    o[p + 1] = LF;
    p += 2;
    if (onDisk) {
      // The value is read from extstore; the whole VALUE reply is a hole until then (a failed
      // read removes it, as memcached does).
      out.length = p;
      const valueAt = p - start;
      const hole = out.holeFrom(start, nbytes + 2, EMPTY);
      out.buf[hole.start + valueAt + nbytes] = CR;
      out.buf[hole.start + valueAt + nbytes + 1] = LF;
      fetchIntoHole(this.engine, out, ref, hole, valueAt);
      return;
    }
    items.copyValue(ref, o, p);
    p += nbytes;
    o[p] = CR;
    o[p + 1] = LF;
    out.length = p + 2;
  }

  // ---------------------------------------------------------------- storage

  private update(mode: StoreMode): void {
    const engine = this.engine;
    const b = this.line;
    this.setNoreplyMaybe();
    const ks = this.tokStart[1];
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) {
      this.reply(R.BAD_FORMAT);
      return;
    }
    if (!parseU32(b, this.tokStart[2], this.tokEnd[2])) return this.reply(R.BAD_FORMAT);
    const flags = parsed.value;
    if (!parseI32(b, this.tokStart[3], this.tokEnd[3])) return this.reply(R.BAD_FORMAT);
    const exptimeIn = parsed.value;
    if (!parseI32(b, this.tokStart[4], this.tokEnd[4])) return this.reply(R.BAD_FORMAT);
    const vlen = parsed.value;
    let casIn = 0;
    if (mode === StoreMode.Cas) {
      if (!parseU64(b, this.tokStart[5], this.tokEnd[5])) return this.reply(R.BAD_FORMAT);
      casIn = parsed.value;
    }
    if (vlen < 0 || vlen > 0x7fffffff - 2) return this.reply(R.BAD_FORMAT);
    if (engine.detail.enabled) engine.detail.recordSet(b, ks, nkey);
    const exptime = engine.clock.realtime(exptimeIn);
    const ref = engine.allocForStore(mode, b, ks, nkey, flags, exptime, vlen);
    if (ref === 0) {
      this.reply(engine.items.allocError === AllocError.TooLarge ? R.TOO_LARGE : R.NO_MEMORY_STORE);
      this.beginSwallow(vlen + 2);
      return;
    }
    this.beginValue(ref, mode, casIn, vlen, null);
  }

  /** Read `vlen` value bytes (plus CRLF) into `ref`, then store with `mode`. */
  beginValue(ref: number, mode: StoreMode, casIn: number, vlen: number, meta: MetaSetReply | null): void {
    this.item = ref;
    this.storeMode = mode;
    this.casIn = casIn;
    this.valueBytes = vlen;
    this.valueDone = 0;
    this.crlfSeen = 0;
    this.trailerSeen = 0;
    this.metaSet = meta;
    this.state = State.Value;
    this.conn.stateName = 'conn_nread';
  }

  /** Discard the next `n` bytes (a value that will not be stored). */
  beginSwallow(n: number): void {
    this.swallowLeft = n;
    this.state = n > 0 ? State.Swallow : State.Line;
  }

  /** Force the next reply out even under noreply/quiet (memcached's out_errstring). */
  replyError(s: string): void {
    this.noreply = false;
    this.replyString(s);
  }

  setQuiet(quiet: boolean): void {
    this.noreply = quiet;
  }

  get quiet(): boolean {
    return this.noreply;
  }

  /** Copy value bytes into the item; after them expect CRLF. Returns the new position. */
  private readValue(buf: Buffer, pos: number, end: number): number {
    const want = this.valueBytes - this.valueDone;
    if (want > 0) {
      const n = Math.min(want, end - pos);
      this.engine.items.writeValue(this.item, this.valueDone, buf, pos, pos + n);
      this.valueDone += n;
      pos += n;
    }
    while (this.trailerSeen < 2 && pos < end) {
      const c = buf[pos++];
      const expect = this.trailerSeen === 0 ? CR : LF;
      if (c !== expect) this.crlfSeen = -1;
      this.trailerSeen++;
    }
    if (this.trailerSeen === 2) {
      if (this.timedValueOp >= 0) this.completeValueTimed();
      else this.completeValue();
    }
    return pos;
  }

  private completeValueTimed(): void {
    const started = nowMs();
    this.completeValue();
    commandLatency.observe(this.timedValueOp, (this.timedLineMs + nowMs() - started) / 1000);
    this.timedValueOp = -1;
  }

  private completeValue(): void {
    const ref = this.item;
    this.item = 0;
    this.state = State.Line;
    this.conn.stateName = 'conn_parse_cmd';
    const meta = this.metaSet;
    this.metaSet = null;
    if (this.crlfSeen < 0) {
      this.engine.stats.cmd_set++;
      this.engine.abortStore(ref);
      if (meta !== null) this.noreply = false; // meta sets always report errors
      this.reply(R.BAD_CHUNK);
      return;
    }
    if (meta !== null) {
      meta.finish(this, this.engine.commitStore(this.storeMode, ref, this.casIn, meta.setStale));
      return;
    }
    switch (this.engine.commitStore(this.storeMode, ref, this.casIn)) {
      case StoreResult.Stored: return this.reply(R.STORED);
      case StoreResult.NotStored: return this.reply(R.NOT_STORED);
      case StoreResult.Exists: return this.reply(R.EXISTS);
      case StoreResult.NotFound: return this.reply(R.NOT_FOUND);
    }
  }

  // ---------------------------------------------------------------- other item commands

  private arithmetic(incr: boolean): void {
    const b = this.line;
    this.setNoreplyMaybe();
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) return this.reply(R.BAD_FORMAT);
    if (!parseU64(b, this.tokStart[2], this.tokEnd[2])) return this.reply(R.BAD_DELTA);
    const engine = this.engine;
    switch (engine.incrDecr(b, this.tokStart[1], nkey, incr, parsed.big, 0, this)) {
      case DeltaResult.Ok:
        if (!this.noreply) {
          this.out.u64(engine.deltaValue);
          this.out.crlf();
        }
        return;
      case DeltaResult.NonNumeric: return this.reply(R.NON_NUMERIC);
      case DeltaResult.NoMemory: return this.reply(R.NO_MEMORY);
      case DeltaResult.NotFound: return this.reply(R.NOT_FOUND);
      default: return;
    }
  }

  private remove(): void {
    const nt = this.ntokens;
    if (nt > 3) {
      const holdIsZero = this.tokLen(2) === 1 && this.line[this.tokStart[2]] === 0x30;
      const noreply = this.setNoreplyMaybe();
      const valid = (nt === 4 && (holdIsZero || noreply)) || (nt === 5 && holdIsZero && noreply);
      if (!valid) return this.reply(R.DELETE_USAGE);
    }
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) return this.reply(R.BAD_FORMAT);
    const engine = this.engine;
    if (engine.detail.enabled) engine.detail.recordDelete(this.line, this.tokStart[1], nkey);
    const r = engine.delete(this.line, this.tokStart[1], nkey);
    this.reply(r === DeleteResult.Deleted ? R.DELETED : R.NOT_FOUND);
  }

  private touch(): void {
    this.setNoreplyMaybe();
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) return this.reply(R.BAD_FORMAT);
    if (!parseI32(this.line, this.tokStart[2], this.tokEnd[2])) return this.reply(R.BAD_EXPTIME);
    const engine = this.engine;
    const ok = engine.touch(this.line, this.tokStart[1], nkey, engine.clock.realtime(parsed.value));
    this.reply(ok ? R.TOUCHED : R.NOT_FOUND);
  }
}

function startsWith(b: Uint8Array, s: number, e: number, prefix: Buffer): boolean {
  if (e - s < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[s + i] !== prefix[i]) return false;
  return true;
}
