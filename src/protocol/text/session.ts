/**
 * Text protocol session: memcached's ASCII protocol (doc/protocol.txt) for one connection.
 *
 * Parsing is resumable and works on offsets into the connection's buffer: a request line is
 * tokenized into (start, end) pairs in preallocated arrays, values are copied straight from
 * the read buffer into slab memory as they arrive (across as many reads as it takes), and
 * replies are appended to the connection's Output. No per-request allocation on the get/set
 * path.
 *
 * Request lines are parsed as memcached 1.6.45's request parser does (proto_parser.c's
 * process_request over vendor/mcmc's tokenizer): the command is the bytes before the first
 * space, tokens are split on spaces only (a NUL byte is an ordinary byte), at most 23 are
 * kept, a meta command's flag tokens must start with a letter or a digit, numbers in tokens
 * are strict, and a line the parser refuses is answered `CLIENT_ERROR bad command line
 * format`. Error strings and odd-input behaviour follow memcached 1.6.45.
 *
 * States:  LINE ──set/add/..──► VALUE (copy nbytes, then check CRLF) ──► LINE
 *            └──too large / no memory / bad arguments──► SWALLOW (discard nbytes+2) ──► LINE
 */
import { copySmall, indexOfByte, Views } from '../../bytes';
import { DeleteResult, DeltaResult, Engine, KEY_BYTES_MAX, PREFETCH_KEYS_MAX, StoreMode, StoreResult } from '../../engine/engine';
import { AllocFailure, ItemView, Proto, type ItemSink } from '../../engine/item-view';
import { Op, ADMIN_COMMANDS, ADMIN_NAME_BYTES_MAX, DEBUG_COMMANDS } from '../commands';
import { parseI32, parseU32, parsed, tokI32, tokU64 } from '../numbers';
import type { Output } from '../output';
import { FeedStatus, type ConnectionInfo, type ProtocolSession } from '../session';
import type { AdminHooks } from './admin';
import { MetaCommands } from './meta';
import { collectKeys } from './prefetch';
import { R, type TextRequest, type ValueCompletion } from './request';

import { runAdmin } from './admin';
import { appendDiskValue } from '../disk-value';
import type { Watcher } from '../../metrics/logger';
import { commandLatency, nowMs } from '../../metrics/latency';

/** mcmc's MCMC_PARSER_MAX_TOKENS - 1: tokens kept per line; the rest of a line is ignored. */
export const TOKENS_MAX = 23;
/** mcmc's TOKENIZER_MAXLEN (USHRT_MAX - 1): tokens are only looked for this far into a line. */
const TOKENIZER_BYTES_MAX = 65534;
/** A line with no newline after this many bytes must be a multiget, or the peer is hostile. */
export const LINE_BYTES_NON_GET_MAX = 2048;
/** Items tracked as held by unsent replies per read event (meta gets between transmits). */
const HELD_ITEMS_MAX = 64;
/** memcached's READ_BUFFER_SIZE: read_buf_mem_limit is counted in buffers of this size. */
const READ_BUFFER_BYTES = 16384;
/** memcached's MAX_RESP_PER_BUNDLE on 64-bit Linux: response objects per 16 KiB buffer. */
const RESPONSES_PER_BUFFER = 13;
/** Tokenizer: no token is a meta flag (memcached passes 255 as the first flag token). */
const NO_FLAGS = 255;
/** process_request's results besides a command: refused, or a name it does not know. */
const PARSE_BAD = -1;
const PARSE_UNKNOWN = -2;

const enum State {
  Line = 0,
  Value = 1,
  Swallow = 2,
}

const CR = 13;
const LF = 10;
const SPACE = 32;

function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

const EMPTY = Buffer.alloc(0);
const GET_PREFIX = bytes('get ');
const GETS_PREFIX = bytes('gets ');
const NOREPLY = bytes('noreply');
const HTTP = bytes('HTTP/');
/**
 * A read holding one request line shorter than this is not scanned for keys to prefetch: it
 * has one key, or a few short ones, and the scan would cost more than the overlap gains.
 */
const LONE_LINE_PREFETCH_BYTES_MIN = 64;
/** Where collectKeys writes the keys it finds (start, length): one per thread, used within a call. */
const keySpans = new Int32Array(2 * PREFETCH_KEYS_MAX);

const c = (ch: string): number => ch.charCodeAt(0);

export class TextSession implements ProtocolSession, ItemSink, TextRequest {
  /** What the engine tells this session about items and operations (reused). */
  readonly view = new ItemView(Proto.Text);
  /** get/gets being answered: the key echoed and whether the CAS is shown (see item()). */
  private getKeyBuf: Buffer = EMPTY;
  /** A DataView over the last buffer a value was read from (word copies into the store). */
  private readonly inputViews = new Views();
  private getKeyStart = 0;
  private getWithCas = false;
  /** A value on disk could not be read for want of memory (item(): the get then fails). */
  private getOutOfMemory = false;
  status: FeedStatus = FeedStatus.Ok;
  closeIsError = false;
  private state = State.Line;
  private noreply = false;

  // the line being handled: token offsets into `line`
  /** The buffer holding the current request line (tokens are offsets into it). */
  line: Buffer = Buffer.alloc(0);
  readonly tokStart = new Int32Array(TOKENS_MAX + 1);
  readonly tokEnd = new Int32Array(TOKENS_MAX + 1);
  /** Tokens of the current line (memcached 1.6.45 counts no terminal token). */
  ntokens = 0;
  /** The current request: its first byte, and the index just after its '\n'. */
  reqStart = 0;
  reqNext = 0;
  /** The value length a storage or ms line announced (without the CRLF). */
  vlen = 0;

  // VALUE state
  private handle = 0;
  private storeMode = StoreMode.Set;
  private casIn = 0;
  private valueBytes = 0;
  private valueDone = 0;
  /** CRLF bytes seen after the value (0..2); -1 once a wrong byte was seen. */
  private crlfSeen = 0;
  private trailerSeen = 0;

  private swallowLeft = 0;
  /**
   * Output position at memcached's last transmit point (start of a read event, mn). A get with
   * an over-long key drops every reply after it, as memcached does.
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
  private metaSet: ValueCompletion | null = null;
  /** The meta commands (mg, ms, ...), made on first use. */
  private meta: MetaCommands | null = null;
  /** After `watch`: input is discarded and the connection only receives log lines. */
  private watcher: Watcher | null = null;
  /** -o metrics_listen: the storage command whose value is being read, and its line's time. */
  private timedValueOp = -1;
  private timedLineMs = 0;
  /** The Op of the line being handled, for the latency histograms (-1: none). */
  private lineOp = -1;
  /** Replies (memcached's response objects) queued since the last transmit point. */
  private responses = 0;
  /** The most -o read_buf_mem_limit allows (Infinity without a limit). */
  private readonly responsesMax: number;

  constructor(
    readonly engine: Engine,
    readonly out: Output,
    readonly conn: ConnectionInfo,
    private readonly admin: AdminHooks,
  ) {
    // memcached splits the limit between its worker threads, in 16 KiB buffers; a
    // connection's read buffer takes one, and each further one holds 13 response objects.
    const limit = engine.settings.readBufMemLimitBytes;
    const perThread = Math.floor(limit / Math.max(1, engine.settings.threadCount));
    const buffers = perThread < READ_BUFFER_BYTES ? 1 : Math.floor(perThread / READ_BUFFER_BYTES);
    this.responsesMax = limit === 0 ? Infinity : (buffers - 1) * RESPONSES_PER_BUFFER;
  }

  /**
   * memcached's resp_start: one response object per command (and per further key of a get),
   * freed when transmitted. False when -o read_buf_mem_limit has none left (response_obj_oom).
   */
  private startResponse(): boolean {
    if (this.responses >= this.responsesMax) {
      this.engine.stats.response_obj_oom++;
      return false;
    }
    this.responses++;
    return true;
  }

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
      const nl = indexOfByte(buf, LF, pos);
      if (nl < 0 || nl >= end) {
        if (end - pos > LINE_BYTES_NON_GET_MAX && !this.mayBeLongGet(buf, pos, end)) this.closeWithError();
        break;
      }
      const next = nl + 1;
      if (requests === 0 && (next < end || next - pos >= LONE_LINE_PREFETCH_BYTES_MIN)) this.prefetch(buf, pos, end, perEvent);
      this.conn.lastCommandTime = this.engine.clock.now;
      if (commandLatency.enabled) this.processLineTimed(buf, pos, next);
      else this.processLine(buf, pos, next);
      pos = next;
      requests++;
      if ((this.status as FeedStatus) === FeedStatus.Close) break;
      if (this.watcher !== null) return end - start;
    }
    return pos - start;
  }

  /**
   * Before running the requests of a read, touch the hash buckets and items of their keys
   * together (src/protocol/text/prefetch.ts, Engine.prefetchKeys): with several requests in
   * the buffer (pipelining, or a multiget) their cache misses then overlap. One key gains
   * nothing, and is left to its lookup. `start` is where the first request line begins.
   */
  private prefetch(buf: Buffer, start: number, end: number, linesMax: number): void {
    const max = this.engine.settings.prefetchKeys;
    if (max === 0) return;
    const n = collectKeys(buf, start, end, keySpans, max, linesMax);
    if (n > 1) this.engine.prefetchKeys(buf, keySpans, n);
  }

  /** memcached keeps reading an unterminated line only if it is a get/gets (a huge multiget). */
  private mayBeLongGet(buf: Buffer, pos: number, end: number): boolean {
    let p = pos;
    while (p < end && buf[p] === SPACE) p++;
    if (p - pos > 100) return false;
    if (end - pos > this.engine.settings.multigetLineBytesMax) return false;
    return startsWith(buf, p, end, GET_PREFIX) || startsWith(buf, p, end, GETS_PREFIX);
  }

  private closeWithError(): void {
    this.status = FeedStatus.Close;
    this.closeIsError = true;
  }

  release(): void {
    if (this.watcher !== null) this.engine.logger.remove(this.watcher);
    this.watcher = null;
    if (this.state === State.Value && this.handle !== 0) this.engine.abortStore(this.handle);
    this.handle = 0;
    this.state = State.Line;
    // The last buffer fed (a connection's, maybe a grown one): a closed session keeps none.
    this.line = EMPTY;
    this.getKeyBuf = EMPTY;
  }

  // ---------------------------------------------------------------- tokens

  /**
   * vendor/mcmc's tokenizer over the request b[s, next) (`next` is just after its '\n'):
   * tokens are runs of bytes other than a space, at most TOKENS_MAX of them, looked for in
   * the first TOKENIZER_BYTES_MAX bytes. From token `mstart` on, each token is a meta flag
   * and must start with a byte from 'A' to 'z' or a digit; otherwise the line is refused
   * (returns false, no tokens).
   */
  tokenize(b: Buffer, s: number, next: number, mstart: number = NO_FLAGS): boolean {
    const len = Math.min(next - s, TOKENIZER_BYTES_MAX);
    const end = s + len - (len >= 2 && b[s + len - 2] === CR ? 2 : 1);
    let n = 0;
    let ts = s;
    for (let i = s; i < end; i++) {
      if (b[i] !== SPACE) continue;
      if (ts !== i) {
        if (n >= mstart && !flagStartOk(b[ts])) return this.noTokens();
        this.tokStart[n] = ts;
        this.tokEnd[n] = i;
        n++;
        if (n === TOKENS_MAX) {
          this.ntokens = n;
          return true;
        }
      }
      ts = i + 1;
    }
    if (ts < end) {
      if (n >= mstart && !flagStartOk(b[ts])) return this.noTokens();
      this.tokStart[n] = ts;
      this.tokEnd[n] = end;
      n++;
    }
    this.ntokens = n;
    return true;
  }

  private noTokens(): false {
    this.ntokens = 0;
    return false;
  }

  tokLen(i: number): number {
    return this.tokEnd[i] - this.tokStart[i];
  }

  tokEquals(i: number, word: Buffer): boolean {
    if (i >= this.ntokens) return false;
    const s = this.tokStart[i];
    if (this.tokEnd[i] - s !== word.length) return false;
    const b = this.line;
    for (let k = 0; k < word.length; k++) if (b[s + k] !== word[k]) return false;
    return true;
  }

  /** Token i as text; '' when the line has no such token (mcmc_token_get returns NULL). */
  tokString(i: number): string {
    return i >= this.ntokens ? '' : this.line.toString('latin1', this.tokStart[i], this.tokEnd[i]);
  }

  /**
   * memcached's strncmp(token, word, token length) == 0: the token is `word` or a prefix of
   * it. memcached matches several subcommands this way ("stats s" is "stats settings").
   */
  tokPrefixOf(i: number, word: string): boolean {
    if (i >= this.ntokens) return false;
    const s = this.tokStart[i];
    const n = this.tokEnd[i] - s;
    if (n > word.length) return false;
    for (let k = 0; k < n; k++) if (this.line[s + k] !== word.charCodeAt(k)) return false;
    return true;
  }

  /** proto_parser.c's _process_request_noreply: the last token is "noreply". */
  private noreplyMaybe(): void {
    if (this.ntokens > 0 && this.tokEquals(this.ntokens - 1, NOREPLY)) this.noreply = true;
  }

  /** noreply was given on this line (admin commands check it against the token count). */
  get noreplyGiven(): boolean {
    return this.noreply;
  }

  // ---------------------------------------------------------------- replies

  /** A fixed reply, unless noreply is in force (memcached's out_string, -vv echo included). */
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

  /** A reply of memcached's request parser (pout_string): noreply applies, nothing is echoed. */
  preply(r: Buffer): void {
    if (this.noreply) return;
    this.out.bytes(r, 0, r.length);
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
  private processLineTimed(b: Buffer, s: number, next: number): void {
    const started = nowMs();
    this.lineOp = -1;
    this.processLine(b, s, next);
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

  /**
   * Drop the replies not yet sent. Every disk value among them counts as an aborted read now,
   * whether it was still being read (its hole dies here, uncounted later) or was read at once:
   * memcached queues all of them and aborts them all.
   */
  private dropUnsent(): void {
    this.out.truncate(this.flushMark);
    for (let n = this.out.diskValues; n > 0; n--) this.engine.countAbortedDiskRead();
    this.out.diskValues = 0;
  }

  /** memcached 1.6.45's process_command_ascii for the request b[s, next). */
  private processLine(b: Buffer, s: number, next: number): void {
    if (!this.startResponse()) {
      // no memory for a response: memcached closes, and what was not yet sent is lost
      this.dropUnsent();
      return this.closeWithError();
    }
    this.noreply = false;
    this.line = b;
    this.reqStart = s;
    this.reqNext = next;
    this.ntokens = 0;
    // process_request: a request is at least two bytes and its line end.
    const op = next - s < 4 ? PARSE_BAD : this.parseRequest(b, s, next);
    // memcached -vv echoes each command line (its length minus two bytes).
    if (this.engine.settings.verbose > 1) {
      this.engine.log(2, `<${this.conn.id} ${b.toString('latin1', s, Math.max(s, next - 2))}`);
    }
    if (op === PARSE_BAD) return this.reply(R.BAD_FORMAT);
    if (op === PARSE_UNKNOWN) return this.unknown();
    this.lineOp = op;
    this.run(op);
  }

  /**
   * proto_parser.c's process_request: the command is the bytes before the first space (a
   * leading space makes it unknown); each command tokenizes and checks its line. Returns the
   * Op, PARSE_BAD (refused: `CLIENT_ERROR bad command line format`) or PARSE_UNKNOWN.
   */
  private parseRequest(b: Buffer, s: number, next: number): number {
    const contentEnd = next - (b[next - 2] === CR ? 2 : 1);
    let sp = indexOfByte(b, SPACE, s);
    if (sp < 0 || sp >= contentEnd) sp = contentEnd;
    const c0 = b[s];
    const c1 = b[s + 1];
    const c2 = b[s + 2];
    switch (sp - s) {
      case 2:
        if (c0 !== c('m')) break;
        switch (c1) {
          case c('g'): return this.parseMeta(b, s, next, Op.MetaGet);
          case c('s'): return this.parseMetaSet(b, s, next);
          case c('d'): return this.parseMeta(b, s, next, Op.MetaDelete);
          case c('n'): return Op.MetaNoop;
          case c('a'): return this.parseMeta(b, s, next, Op.MetaArithmetic);
          case c('e'): return this.parseMeta(b, s, next, Op.MetaDebug);
        }
        break;
      case 3:
        if (c0 === c('g')) {
          if (c1 === c('e') && c2 === c('t')) return this.parseSimple(b, s, next, Op.Get, 2);
          if (c1 === c('a') && c2 === c('t')) return this.parseGat(b, s, next, Op.Gat);
        } else if (c0 === c('s') && c1 === c('e') && c2 === c('t')) {
          return this.parseStorage(b, s, next, Op.Set);
        } else if (c0 === c('a') && c1 === c('d') && c2 === c('d')) {
          return this.parseStorage(b, s, next, Op.Add);
        } else if (c0 === c('c') && c1 === c('a') && c2 === c('s')) {
          return this.parseStorage(b, s, next, Op.Cas);
        }
        break;
      case 4:
        if (isWord(b, s, 'gets')) return this.parseSimple(b, s, next, Op.Gets, 2);
        if (isWord(b, s, 'incr')) return this.parseSimple(b, s, next, Op.Incr, 3);
        if (isWord(b, s, 'decr')) return this.parseSimple(b, s, next, Op.Decr, 3);
        if (isWord(b, s, 'gats')) return this.parseGat(b, s, next, Op.Gats);
        if (isWord(b, s, 'quit')) return Op.Quit;
        break;
      case 5:
        if (isWord(b, s, 'touch')) return this.parseSimple(b, s, next, Op.Touch, 3);
        if (isWord(b, s, 'stats')) return this.parseWords(b, s, next, Op.Stats);
        if (isWord(b, s, 'watch')) return this.parseWords(b, s, next, Op.Watch);
        break;
      case 6:
        if (isWord(b, s, 'delete')) return this.parseSimple(b, s, next, Op.Delete, 2);
        if (isWord(b, s, 'append')) return this.parseStorage(b, s, next, Op.Append);
        break;
      case 7:
        if (isWord(b, s, 'replace')) return this.parseStorage(b, s, next, Op.Replace);
        if (isWord(b, s, 'prepend')) return this.parseStorage(b, s, next, Op.Prepend);
        if (isWord(b, s, 'version')) return this.parseWords(b, s, next, Op.Version);
        break;
    }
    // Not a command the parser knows: tokenized for the other commands' table.
    this.tokenize(b, s, next);
    this.noreplyMaybe();
    return PARSE_UNKNOWN;
  }

  /** mg, md, ma, me: flags from the third token on. */
  private parseMeta(b: Buffer, s: number, next: number, op: Op): number {
    if (!this.tokenize(b, s, next, 2) || this.ntokens < 2) return PARSE_BAD;
    return op;
  }

  /** ms <key> <datalen> <flags>*: the length must be known to read (or skip) the value. */
  private parseMetaSet(b: Buffer, s: number, next: number): number {
    if (!this.tokenize(b, s, next, 3) || this.ntokens < 3) return PARSE_BAD;
    if (!tokI32(b, this.tokStart[2], this.tokEnd[2])) return PARSE_BAD;
    const vlen = parsed.value;
    if (vlen < 0 || vlen > 0x7fffffff - 2) return PARSE_BAD;
    this.vlen = vlen;
    return Op.MetaSet;
  }

  private parseSimple(b: Buffer, s: number, next: number, op: Op, min: number): number {
    this.tokenize(b, s, next);
    if (this.ntokens < min) return PARSE_BAD;
    this.noreplyMaybe();
    return op;
  }

  /** gat[s] <exptime> <key>*: noreply is not looked for. */
  private parseGat(b: Buffer, s: number, next: number, op: Op): number {
    this.tokenize(b, s, next);
    return this.ntokens < 3 ? PARSE_BAD : op;
  }

  /** <cmd> <key> <flags> <exptime> <bytes> [...]: the length is checked here. */
  private parseStorage(b: Buffer, s: number, next: number, op: Op): number {
    this.tokenize(b, s, next);
    if (this.ntokens < 5) return PARSE_BAD;
    if (!tokI32(b, this.tokStart[4], this.tokEnd[4])) return PARSE_BAD;
    const vlen = parsed.value;
    if (vlen < 0 || vlen > 0x7fffffff - 2) return PARSE_BAD;
    this.vlen = vlen;
    this.noreplyMaybe();
    return op;
  }

  private parseWords(b: Buffer, s: number, next: number, op: Op): number {
    this.tokenize(b, s, next);
    return op;
  }

  /**
   * A command process_request does not know: memcached's table of other commands, by the
   * first token (so a leading space is allowed here), then the HTTP check, then ERROR.
   */
  private unknown(): void {
    if (this.ntokens > 0 && this.tokLen(0) <= ADMIN_NAME_BYTES_MAX) {
      const name = this.tokString(0);
      let op = ADMIN_COMMANDS.get(name);
      if (op === undefined && this.engine.settings.debugCommands) op = DEBUG_COMMANDS.get(name);
      if (op !== undefined) {
        this.lineOp = op;
        runAdmin(this, op, this.admin);
        return;
      }
    }
    if (this.ntokens > 1) {
      const last = this.ntokens - 1;
      if (startsWith(this.line, this.tokStart[last], this.tokEnd[last], HTTP)) return this.closeWithError();
    }
    this.reply(R.ERROR);
  }

  private run(op: Op): void {
    switch (op) {
      case Op.Get: return this.retrieve(false, false);
      case Op.Gets: return this.retrieve(true, false);
      case Op.Gat: return this.retrieve(false, true);
      case Op.Gats: return this.retrieve(true, true);
      case Op.Set: return this.update(StoreMode.Set, false);
      case Op.Add: return this.update(StoreMode.Add, false);
      case Op.Replace: return this.update(StoreMode.Replace, false);
      case Op.Append: return this.update(StoreMode.Append, false);
      case Op.Prepend: return this.update(StoreMode.Prepend, false);
      case Op.Cas: return this.update(StoreMode.Cas, true);
      case Op.Incr: return this.arithmetic(true);
      case Op.Decr: return this.arithmetic(false);
      case Op.Delete: return this.remove();
      case Op.Touch: return this.touch();
      case Op.MetaGet:
      case Op.MetaSet:
      case Op.MetaDelete:
      case Op.MetaArithmetic:
      case Op.MetaNoop:
      case Op.MetaDebug:
        this.meta ??= new MetaCommands(this);
        return this.meta.run(op);
      case Op.Quit:
        this.status = FeedStatus.Close;
        return;
      default:
        runAdmin(this, op, this.admin);
    }
  }

  // ---------------------------------------------------------------- retrieval

  /**
   * get/gets/gat/gats: the first key is a token, the rest are read from the raw line up to
   * its end, however many (memcached 1.6.45's process_get_command).
   */
  private retrieve(withCas: boolean, touch: boolean): void {
    const engine = this.engine;
    const b = this.line;
    let exptime = 0;
    if (touch) {
      if (!tokI32(b, this.tokStart[1], this.tokEnd[1])) return this.reply(R.BAD_EXPTIME);
      exptime = engine.clock.realtime(parsed.value);
    }
    const keyTok = touch ? 2 : 1;
    let p = this.tokStart[keyTok];
    let klen = this.tokLen(keyTok);
    const next = this.reqNext;
    const kend = next - (b[next - 2] === CR ? 2 : 1);
    const detail = engine.detail.enabled;
    const echo = engine.settings.verbose > 1;
    while (klen !== 0) {
      if (klen > KEY_BYTES_MAX) {
        // memcached drops every reply not yet sent on this connection, then reports the error
        // on a fresh response (so noreply does not hide it). 1.6.45 copies the error line with
        // its CRLF and sends it as a string, so a second CRLF follows.
        this.dropUnsent();
        this.noreply = false;
        this.replyString('CLIENT_ERROR bad command line format\r\n');
        return;
      }
      this.getKeyBuf = b;
      this.getKeyStart = p;
      this.getWithCas = withCas;
      const hit = touch ? engine.getAndTouch(this.view, b, p, klen, exptime, this) : engine.get(this.view, b, p, klen, this);
      if (detail) engine.detail.recordGet(b, p, klen, hit);
      if (hit && echo) engine.log(2, `>${this.conn.id} sending key ${b.toString('latin1', p, p + klen)}`);
      p += klen;
      klen = 0;
      while (p < kend) {
        if (b[p] === SPACE) {
          p++;
          continue;
        }
        let k = indexOfByte(b, SPACE, p);
        if (k < 0 || k > kend) k = kend;
        klen = k - p;
        break;
      }
      // memcached 1.6.45 copies the extstore error with its CRLF and sends it as a string,
      // so a second CRLF follows it (as with the long key above).
      if (this.getOutOfMemory) return this.getFailed('SERVER_ERROR out of memory writing get response\r\n');
      if (klen !== 0 && !this.startResponse()) return this.getFailed('SERVER_ERROR out of memory writing get response');
    }
    if (echo) engine.log(2, `>${this.conn.id} END`);
    this.out.bytes(R.END, 0, 5);
  }

  /**
   * process_get_command_err, when a get runs out of response objects or of memory to read a
   * value from extstore: the unsent replies are culled (which frees the memory for the
   * error's own response) and the error is the whole answer.
   */
  private getFailed(message: string): void {
    this.getOutOfMemory = false;
    this.dropUnsent();
    this.responses = 1;
    this.noreply = false;
    this.replyString(message);
  }

  /**
   * memcached transmits here (once it has handled what one read brought, and at mn): replies
   * let go of items. memcached 1.6.18 also transmitted after every get; 1.6.45 does not.
   */
  markTransmitted(): void {
    this.flushMark = this.out.length;
    this.out.diskValues = 0;
    this.heldCount = 0;
    this.responses = 0;
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

  /**
   * ItemSink, for get/gets/gat/gats: "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n",
   * the key echoed from the request (as memcached does).
   */
  item(v: ItemView): void {
    const key = this.getKeyBuf;
    const keyStart = this.getKeyStart;
    const nkey = v.keyLen;
    const out = this.out;
    const nbytes = v.nbytes;
    const onDisk = v.onDisk;
    out.ensure(6 + nkey + 48 + (onDisk ? 0 : nbytes + 2));
    const o = out.buf;
    const start = out.length;
    let p = start;
    o[p] = 0x56; o[p + 1] = 0x41; o[p + 2] = 0x4c; o[p + 3] = 0x55; o[p + 4] = 0x45; o[p + 5] = SPACE;
    p += 6;
    copySmall(o, p, key, keyStart, nkey);
    p += nkey;
    o[p++] = SPACE;
    out.length = p;
    out.uint(v.flags);
    out.byte(SPACE);
    out.uint(nbytes);
    if (this.getWithCas) {
      out.byte(SPACE);
      out.uint(v.cas);
    }
    p = out.length;
    o[p] = CR;
    o[p + 1] = LF;
    p += 2;
    if (onDisk) {
      // The value is read from extstore; the whole VALUE reply is a hole until then (a failed
      // read removes it, as memcached does).
      out.length = p;
      if (!appendDiskValue(this.engine, out, v, start, true, EMPTY)) {
        this.getOutOfMemory = true;
        v.refusalUncounted = true;
      }
      return;
    }
    v.copyValue(o, p, out.view);
    p += nbytes;
    o[p] = CR;
    o[p + 1] = LF;
    out.length = p + 2;
  }

  // ---------------------------------------------------------------- storage

  /**
   * set/add/replace/append/prepend/cas (process_update_cmd_start). The length was checked by
   * the parser; every refusal from here on also skips the value.
   */
  private update(mode: StoreMode, handleCas: boolean): void {
    const engine = this.engine;
    const b = this.line;
    const vlen = this.vlen;
    const ks = this.tokStart[1];
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) return this.refuseStore(R.BAD_FORMAT, vlen);
    // memcached reads flags and exptime with strtoul/strtol from the token on (C strings).
    if (!parseU32(b, this.tokStart[2], this.reqNext, true)) return this.refuseStore(R.BAD_FORMAT, vlen);
    const flags = parsed.value;
    if (!parseI32(b, this.tokStart[3], this.reqNext, true)) return this.refuseStore(R.BAD_FORMAT, vlen);
    const exptimeIn = parsed.value;
    let casIn = 0;
    if (handleCas) {
      if (this.ntokens < 6 || !tokU64(b, this.tokStart[5], this.tokEnd[5])) return this.refuseStore(R.BAD_FORMAT, vlen);
      casIn = parsed.value;
    }
    if (engine.detail.enabled) engine.detail.recordSet(b, ks, nkey);
    const exptime = engine.clock.realtime(exptimeIn);
    const ref = engine.allocForStore(this.view, mode, b, ks, nkey, flags, exptime, vlen);
    if (ref === 0) return this.refuseStore(this.view.failure === AllocFailure.TooLarge ? R.TOO_LARGE : R.NO_MEMORY_STORE, vlen);
    this.beginValue(ref, mode, casIn, vlen, null);
  }

  private refuseStore(r: Buffer, vlen: number): void {
    this.preply(r);
    this.beginSwallow(vlen + 2);
  }

  /** Read `vlen` value bytes (plus CRLF) into `ref`, then store with `mode`. */
  beginValue(ref: number, mode: StoreMode, casIn: number, vlen: number, meta: ValueCompletion | null): void {
    this.handle = ref;
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

  /** Force the next reply out even under noreply (memcached's out_errstring). */
  replyError(s: string): void {
    this.noreply = false;
    this.replyString(s);
  }

  /** Copy value bytes into the item; after them expect CRLF. Returns the new position. */
  private readValue(buf: Buffer, pos: number, end: number): number {
    const want = this.valueBytes - this.valueDone;
    if (want > 0) {
      const n = Math.min(want, end - pos);
      this.engine.writeValue(this.handle, this.valueDone, buf, pos, pos + n, this.inputViews.of(buf));
      this.valueDone += n;
      pos += n;
    }
    while (this.trailerSeen < 2 && pos < end) {
      const ch = buf[pos++];
      const expect = this.trailerSeen === 0 ? CR : LF;
      if (ch !== expect) this.crlfSeen = -1;
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
    const ref = this.handle;
    this.handle = 0;
    this.state = State.Line;
    this.conn.stateName = 'conn_parse_cmd';
    const meta = this.metaSet;
    this.metaSet = null;
    if (this.crlfSeen < 0) {
      this.engine.badDataChunk(ref);
      if (meta !== null) this.noreply = false; // meta sets always report errors
      this.reply(R.BAD_CHUNK);
      return;
    }
    if (meta !== null) {
      meta.finish(this, ref, this.storeMode, this.casIn);
      return;
    }
    switch (this.engine.commitStore(this.view, this.storeMode, ref, this.casIn)) {
      case StoreResult.Stored: return this.reply(R.STORED);
      case StoreResult.NotStored: return this.reply(R.NOT_STORED);
      case StoreResult.Exists: return this.reply(R.EXISTS);
      case StoreResult.NotFound: return this.reply(R.NOT_FOUND);
    }
  }

  // ---------------------------------------------------------------- other item commands

  private arithmetic(incr: boolean): void {
    const b = this.line;
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) return this.preply(R.BAD_FORMAT);
    if (!tokU64(b, this.tokStart[2], this.tokEnd[2])) return this.preply(R.BAD_DELTA);
    const engine = this.engine;
    const small = parsed.small;
    const result = small >= 0
      ? engine.incrDecrSmall(this.view, b, this.tokStart[1], nkey, incr, small, 0, this)
      : engine.incrDecr(this.view, b, this.tokStart[1], nkey, incr, parsed.big, 0, this);
    switch (result) {
      case DeltaResult.Ok:
        if (!this.noreply) {
          if (this.view.deltaSmall >= 0) this.out.uint(this.view.deltaSmall);
          else this.out.u64(this.view.delta);
          this.out.crlf();
        }
        return;
      case DeltaResult.NonNumeric: return this.preply(R.NON_NUMERIC);
      case DeltaResult.NoMemory: return this.preply(R.NO_MEMORY);
      case DeltaResult.NotFound: return this.preply(R.NOT_FOUND);
      default: return;
    }
  }

  /** delete <key> [anything...]: 1.6.45 ignores arguments after the key, noreply aside. */
  private remove(): void {
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) return this.preply(R.BAD_FORMAT);
    const engine = this.engine;
    if (engine.detail.enabled) engine.detail.recordDelete(this.line, this.tokStart[1], nkey);
    const r = engine.delete(this.view, this.line, this.tokStart[1], nkey);
    this.preply(r === DeleteResult.Deleted ? R.DELETED : R.NOT_FOUND);
  }

  private touch(): void {
    const nkey = this.tokLen(1);
    if (nkey > KEY_BYTES_MAX) return this.preply(R.BAD_FORMAT);
    if (!tokI32(this.line, this.tokStart[2], this.tokEnd[2])) return this.preply(R.BAD_EXPTIME);
    const engine = this.engine;
    const ok = engine.touch(this.view, this.line, this.tokStart[1], nkey, engine.clock.realtime(parsed.value));
    this.preply(ok ? R.TOUCHED : R.NOT_FOUND);
  }
}

/** mcmc: a meta flag token starts with a byte from 'A' (65) to 'z' (122), or a digit. */
function flagStartOk(ch: number): boolean {
  return (ch > 64 && ch < 123) || (ch >= 0x30 && ch <= 0x39);
}

function isWord(b: Uint8Array, s: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) if (b[s + i] !== word.charCodeAt(i)) return false;
  return true;
}

function startsWith(b: Uint8Array, s: number, e: number, prefix: Buffer): boolean {
  if (e - s < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[s + i] !== prefix[i]) return false;
  return true;
}
