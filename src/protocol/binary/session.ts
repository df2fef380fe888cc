/**
 * Binary protocol session: memcached's binary protocol (doc/protocol-binary.xml) for one
 * connection, answering as memcached 1.6.18's proto_bin.c does, opcode by opcode, status by
 * status, including its error texts, its argument checks and its quirks.
 *
 * A request's header, extras and key stay unconsumed in the connection's buffer until all of
 * them have arrived (memcached reads them into its 16 KiB read buffer the same way, so a
 * request whose header, extras and key cannot fit there never completes; here the connection
 * is closed at once). The value is then streamed straight into slab memory as it arrives,
 * across as many reads as it takes, or discarded ("swallowed") when it will not be stored.
 * No per-request allocation on the get/set path: fields are read from the buffer, replies are
 * written into the connection's Output.
 *
 * States:  HEADER ──set/add/replace/append/prepend──► VALUE (copy vlen bytes) ──► HEADER
 *            ├──sasl auth/step──► SASL_DATA (keep ≤ 1 KiB, count the rest) ──► HEADER
 *            └──too large / no memory / unknown opcode──► SWALLOW (discard n) ──► HEADER
 *
 * While a swallow waits for more input nothing is sent: the replies since the last transmit
 * point go out after the last swallowed byte, as memcached's conn_swallow (which reads without
 * writing) sends them, and are lost if the connection ends first.
 *
 * Quiet opcodes (GETQ, SETQ...) send nothing on success (and nothing on a GETQ miss);
 * errors are always sent. memcached holds replies until a non-quiet reply or NOOP flushes
 * them; here every reply goes out at the end of the read event, which a client cannot tell
 * apart because quiet requests are answered in order either way.
 *
 * Quirks of 1.6.18 kept on purpose: an unknown opcode (VERBOSITY included) swallows `body
 * length` bytes after its extras and key (so extras or key make it eat into the next
 * request); STAT, TOUCH and GAT leave body bytes past their key unread, to be parsed as the
 * next request; SASL_LIST_MECHS and every SASL_AUTH/SASL_STEP first drop the connection's
 * authentication; a body length of 2^31 or more makes set/append's value length negative.
 */
import { copySmall, Views } from '../../bytes';
import { appendDiskValue } from '../disk-value';
import { DeleteResult, DeltaResult, type Engine, KEY_BYTES_MAX, PREFETCH_KEYS_MAX, StoreMode, StoreResult } from '../../engine/engine';
import { collectBinaryKeys } from './prefetch';
import { AllocFailure, ItemView, Proto, type ItemSink } from '../../engine/item-view';
import {
  generalStats, itemsStats, settingsStats, sizesStats, slabsStats, type StatSink,
} from '../../engine/stats';
import { MEMCACHED_COMPAT_VERSION } from '../../version';
import { SASL_DATA_BYTES_MAX, SaslConversation, SaslResult, type SaslServer } from '../auth';
import type { Output } from '../output';
import { FeedStatus, type ConnectionInfo, type ProtocolSession } from '../session';
import type { AdminHooks } from '../text/admin';
import {
  AUTHENTICATED, ERROR_TEXT, HEADER_BYTES, MAGIC_REQUEST, MAGIC_RESPONSE, Opcode, SASL_MECH_BYTES_MAX, Status,
} from './wire';

/**
 * memcached's READ_BUFFER_SIZE: header, extras and key must fit its read buffer. Bounds what
 * this session leaves unconsumed.
 */
export const REQUEST_HEAD_BYTES_MAX = 16384;
/** Where collectBinaryKeys writes the keys it finds (start, length): one per thread, used within a call. */
const keySpans = new Int32Array(2 * PREFETCH_KEYS_MAX);
/** incr/decr's "do not create" expiration. */
const NO_AUTO_CREATE = 0xffffffff;
const TWO_32 = 4294967296;

const enum State {
  Header = 0,
  Value = 1,
  Swallow = 2,
  SaslData = 3,
}

const VERSION_BYTES = Buffer.from(MEMCACHED_COMPAT_VERSION, 'latin1');

/** Big-endian 32-bit reads and writes by hand: Buffer's checked methods cost more on the hot path. */
function u32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

/** The same word as a signed int32: a small integer to V8 whatever its bits, never boxed. */
function i32(b: Uint8Array, p: number): number {
  return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
}

function putU32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

function prefixIs(b: Buffer, start: number, len: number, word: string): boolean {
  if (len < word.length) return false;
  for (let i = 0; i < word.length; i++) if (b[start + i] !== word.charCodeAt(i)) return false;
  return true;
}

function keyIs(b: Buffer, start: number, len: number, word: string): boolean {
  return len === word.length && prefixIs(b, start, len, word);
}

const EMPTY = Buffer.alloc(0);

/** memcached's ITEM_SIZE_MAX_UPPER_LIMIT: the largest request body it takes (1 GiB). */
const BODY_BYTES_MAX = 1024 * 1024 * 1024;

export class BinarySession implements ProtocolSession, ItemSink {
  /** What the engine tells this session about items and operations (reused). */
  private readonly view = new ItemView(Proto.Binary);
  /** A DataView over the last buffer a value was read from (word copies into the store). */
  private readonly inputViews = new Views();
  /** The get being answered (see item()). */
  private getKeyBuf: Buffer = EMPTY;
  private getKeyStart = 0;
  private getReturnKey = false;
  status: FeedStatus = FeedStatus.Ok;
  private state = State.Header;

  // the request being handled (memcached's binary_header plus c->cmd, c->cas, c->noreply)
  private opcode = 0;
  private opaque = 0;
  /** CAS for the next reply header: 0 unless the command stored or changed an item. */
  private cas = 0;
  private noreply = false;

  // VALUE state
  private handle = 0;
  private storeMode = StoreMode.Set;
  private casIn = 0;
  private valueBytes = 0;
  private valueDone = 0;

  private swallowLeft = 0;
  /** Replies held back while a swallow waits for more input (see holdUntilSwallowed). */
  private held: Buffer | null = null;
  /**
   * Output position at memcached's last transmit point (start of the read event, NOOP, QUIT,
   * errors that do not swallow, AUTH_CONTINUE). A request with a bad magic byte closes the
   * connection before memcached transmits what was queued after that point.
   */
  private flushMark = 0;

  // SASL (only with -S)
  private authenticated = false;
  private readonly sasl: SaslConversation | null;
  private saslData: Buffer | null = null;
  private saslLen = 0;
  private saslWant = 0;
  private saslSeen = 0;
  private saslMech: Buffer | null = null;
  private saslMechLen = 0;
  private saslOpcode = 0;

  constructor(
    readonly engine: Engine,
    readonly out: Output,
    readonly conn: ConnectionInfo,
    private readonly hooks: AdminHooks,
    saslServer: SaslServer | null,
  ) {
    this.sasl = engine.settings.saslEnabled && saslServer !== null ? new SaslConversation(saslServer) : null;
  }

  /**
   * Before running the requests of a read, touch the hash buckets and items of their keys
   * together (./prefetch.ts, Engine.prefetchKeys), so that their cache misses overlap.
   */
  private prefetch(buf: Buffer, start: number, end: number, requestsMax: number): void {
    const max = this.engine.settings.prefetchKeys;
    if (max === 0) return;
    const n = collectBinaryKeys(buf, start, end, keySpans, max, requestsMax);
    if (n > 1) this.engine.prefetchKeys(buf, keySpans, n);
  }

  feed(buf: Buffer, start: number, end: number): number {
    this.engine.logger.clientId = this.conn.id; // `watch` lines name the connection
    this.status = FeedStatus.Ok;
    this.flushMark = this.out.length;
    const perEvent = this.engine.settings.requestsPerEvent;
    if (this.state === State.Header) this.prefetch(buf, start, end, perEvent);
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
        if (this.swallowLeft === 0) {
          this.state = State.Header;
          this.conn.stateName = 'conn_parse_cmd';
          this.releaseHeld();
        }
        continue;
      }
      if (this.state === State.SaslData) {
        pos = this.readSaslData(buf, pos, end);
        continue;
      }
      if (requests >= perEvent) {
        this.status = FeedStatus.Yield;
        break;
      }
      if (end - pos < HEADER_BYTES) break;
      if (buf[pos] !== MAGIC_REQUEST) {
        this.out.length = this.flushMark;
        this.status = FeedStatus.Close;
        break;
      }
      const extlen = buf[pos + 4];
      const keylen = (buf[pos + 2] << 8) | buf[pos + 3];
      const head = HEADER_BYTES + extlen + keylen;
      if (head > REQUEST_HEAD_BYTES_MAX) {
        this.status = FeedStatus.Close;
        break;
      }
      if (end - pos < head) break;
      this.conn.lastCommandTime = this.engine.clock.now;
      this.dispatch(buf, pos, extlen, keylen);
      pos += head;
      requests++;
      if ((this.status as FeedStatus) === FeedStatus.Close) break;
    }
    if (this.state === State.Swallow && this.status !== FeedStatus.Close) this.holdUntilSwallowed();
    return pos - start;
  }

  release(): void {
    if (this.state === State.Value && this.handle !== 0) this.engine.abortStore(this.handle);
    this.handle = 0;
    this.state = State.Header;
    this.held = null;
    // The last buffer fed: a closed session keeps none.
    this.getKeyBuf = EMPTY;
  }

  /**
   * memcached transmits nothing while it swallows (conn_swallow reads on without a write):
   * the replies since the last transmit point, the error that started the swallow included,
   * wait for the last swallowed byte, and are lost if the connection closes first. So they
   * leave the output until then. (Replies waiting for extstore reads already hold back what
   * follows them; with such holes pending the output stays as it is.)
   */
  private holdUntilSwallowed(): void {
    const out = this.out;
    if (out.length === this.flushMark || out.holeCount > 0) return;
    const replies = Buffer.from(out.buf.subarray(this.flushMark, out.length));
    this.held = this.held === null ? replies : Buffer.concat([this.held, replies]);
    out.length = this.flushMark;
  }

  /** The swallow is done: the held replies go out with this read event's. */
  private releaseHeld(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    this.out.bytes(held, 0, held.length);
  }

  // ---------------------------------------------------------------- replies

  /** Append a response header (memcached's add_bin_header) and room for `bodylen` more bytes. */
  private header(status: number, extlen: number, keylen: number, bodylen: number, cas: number): void {
    const out = this.out;
    out.ensure(HEADER_BYTES + bodylen);
    const b = out.buf;
    const p = out.length;
    b[p] = MAGIC_RESPONSE;
    b[p + 1] = this.opcode;
    b[p + 2] = keylen >>> 8;
    b[p + 3] = keylen & 0xff;
    b[p + 4] = extlen;
    b[p + 5] = 0;
    b[p + 6] = status >>> 8;
    b[p + 7] = status & 0xff;
    putU32(b, p + 8, bodylen);
    putU32(b, p + 12, this.opaque);
    putU32(b, p + 16, cas < TWO_32 ? 0 : Math.floor(cas / TWO_32));
    putU32(b, p + 20, cas >>> 0);
    out.length = p + HEADER_BYTES;
  }

  /** write_bin_response: a success reply with an optional body, unless the command is quiet. */
  private respond(body: Buffer | null): void {
    if (this.noreply) return;
    const n = body === null ? 0 : body.length;
    this.header(Status.Success, 0, 0, n, this.cas);
    if (body !== null) this.out.bytes(body, 0, n);
  }

  /**
   * write_bin_error: always sent, quiet or not; then discard `swallow` bytes of input. Without
   * a swallow memcached transmits at once (`flush`), which matters if the connection is then
   * dropped (see flushMark).
   */
  private error(status: Status, text: Buffer, swallow = 0, flush = swallow <= 0): void {
    this.header(status, 0, 0, text.length, this.cas);
    this.out.bytes(text, 0, text.length);
    if (swallow > 0) this.beginSwallow(swallow);
    if (flush) this.flushMark = this.out.length;
  }

  /** handle_binary_protocol_error: EINVAL, then close. */
  private protocolError(): void {
    this.error(Status.InvalidArguments, ERROR_TEXT.invalid);
    this.status = FeedStatus.Close;
  }

  private beginSwallow(n: number): void {
    this.swallowLeft = n;
    this.state = n > 0 ? State.Swallow : State.Header;
    if (n > 0) this.conn.stateName = 'conn_swallow';
  }

  // ---------------------------------------------------------------- dispatch

  /** dispatch_bin_command: the header, extras and key are in buf at `p`. */
  private dispatch(buf: Buffer, p: number, extlen: number, keylen: number): void {
    const opcode = buf[p + 1];
    const bodylen = u32(buf, p + 8);
    this.opcode = opcode;
    this.opaque = u32(buf, p + 12);
    this.cas = 0;
    const reqCas = u32(buf, p + 16) * TWO_32 + u32(buf, p + 20);
    const ext = p + HEADER_BYTES;
    const key = ext + extlen;

    if (keylen > bodylen || keylen + extlen > bodylen) {
      this.error(Status.UnknownCommand, ERROR_TEXT.unknownCommand);
      this.status = FeedStatus.Close;
      return;
    }
    // memcached 1.6.45: a body above 1 GiB (ITEM_SIZE_MAX_UPPER_LIMIT) is refused before
    // anything is sized from it, so no length arithmetic can overflow.
    if (bodylen > BODY_BYTES_MAX) {
      this.error(Status.InvalidArguments, ERROR_TEXT.invalid);
      this.status = FeedStatus.Close;
      return;
    }
    if (this.engine.settings.saslEnabled && !this.mayRun(opcode)) {
      this.error(Status.AuthError, ERROR_TEXT.authFailure);
      this.status = FeedStatus.Close;
      return;
    }
    this.noreply = isQuiet(opcode);
    if (keylen > KEY_BYTES_MAX) return this.protocolError();

    switch (opcode) {
      case Opcode.Version:
        if (extlen !== 0 || keylen !== 0 || bodylen !== 0) return this.protocolError();
        return this.respond(VERSION_BYTES);
      case Opcode.Flush:
      case Opcode.FlushQ:
        if (keylen !== 0 || bodylen !== extlen || (extlen !== 0 && extlen !== 4)) return this.protocolError();
        return this.flush(extlen === 4 ? u32(buf, ext) : 0);
      case Opcode.Noop:
        if (extlen !== 0 || keylen !== 0 || bodylen !== 0) return this.protocolError();
        this.respond(null);
        this.flushMark = this.out.length;
        return;
      case Opcode.Set:
      case Opcode.SetQ:
      case Opcode.Add:
      case Opcode.AddQ:
      case Opcode.Replace:
      case Opcode.ReplaceQ:
        if (extlen !== 8 || keylen === 0 || bodylen < keylen + 8) return this.protocolError();
        return this.update(buf, key, keylen, modeOf(opcode), u32(buf, ext), u32(buf, ext + 4),
          (bodylen - keylen - extlen) | 0, reqCas);
      case Opcode.Get:
      case Opcode.GetQ:
      case Opcode.GetK:
      case Opcode.GetKQ:
        if (extlen !== 0 || bodylen !== keylen || keylen === 0) return this.protocolError();
        return this.getOrTouch(buf, key, keylen, false, 0);
      case Opcode.Delete:
      case Opcode.DeleteQ:
        if (keylen === 0 || extlen !== 0 || bodylen !== keylen) return this.protocolError();
        return this.remove(buf, key, keylen, reqCas);
      case Opcode.Increment:
      case Opcode.IncrementQ:
      case Opcode.Decrement:
      case Opcode.DecrementQ:
        if (keylen === 0 || extlen !== 20 || bodylen !== keylen + extlen) return this.protocolError();
        return this.arithmetic(buf, ext, key, keylen, opcode === Opcode.Increment || opcode === Opcode.IncrementQ, reqCas);
      case Opcode.Append:
      case Opcode.AppendQ:
      case Opcode.Prepend:
      case Opcode.PrependQ:
        if (keylen === 0 || extlen !== 0) return this.protocolError();
        return this.update(buf, key, keylen,
          opcode === Opcode.Append || opcode === Opcode.AppendQ ? StoreMode.Append : StoreMode.Prepend,
          0, 0, (bodylen - keylen) | 0, reqCas);
      case Opcode.Stat:
        if (extlen !== 0) return this.protocolError();
        return this.stats(buf, key, keylen);
      case Opcode.Quit:
      case Opcode.QuitQ:
        if (keylen !== 0 || extlen !== 0 || bodylen !== 0) return this.protocolError();
        this.respond(null);
        this.status = FeedStatus.Close;
        return;
      case Opcode.SaslListMechs:
        if (extlen !== 0 || keylen !== 0 || bodylen !== 0) return this.protocolError();
        return this.listMechanisms(bodylen, keylen);
      case Opcode.SaslAuth:
      case Opcode.SaslStep:
        if (extlen !== 0 || keylen === 0) return this.protocolError();
        return this.saslBegin(buf, key, keylen, bodylen);
      case Opcode.Touch:
      case Opcode.Gat:
      case Opcode.GatQ:
      case Opcode.GatK:
      case Opcode.GatKQ:
        if (extlen !== 4 || keylen === 0) return this.protocolError();
        return this.getOrTouch(buf, key, keylen, true, u32(buf, ext));
      default:
        // memcached swallows the whole body length although extras and key are already read
        return this.error(Status.UnknownCommand, ERROR_TEXT.unknownCommand, bodylen);
    }
  }

  /** memcached's authenticated(): only these run before SASL succeeds. */
  private mayRun(opcode: number): boolean {
    switch (opcode) {
      case Opcode.SaslListMechs:
      case Opcode.SaslAuth:
      case Opcode.SaslStep:
      case Opcode.Version:
        return true;
      default:
        return this.authenticated;
    }
  }

  // ---------------------------------------------------------------- retrieval

  /** GET/GETQ/GETK/GETKQ, TOUCH, GAT/GATQ/GATK/GATKQ. */
  private getOrTouch(buf: Buffer, keyStart: number, nkey: number, touch: boolean, exptime: number): void {
    const engine = this.engine;
    const op = this.opcode;
    const returnKey = op === Opcode.GetK || op === Opcode.GetKQ || op === Opcode.GatK || op === Opcode.GatKQ;
    this.getKeyBuf = buf;
    this.getKeyStart = keyStart;
    this.getReturnKey = returnKey;
    const hit = touch
      ? engine.getAndTouch(this.view, buf, keyStart, nkey, engine.clock.realtime(exptime), this)
      : engine.get(this.view, buf, keyStart, nkey, this);
    if (!hit && !this.noreply) this.writeMiss(buf, keyStart, nkey, returnKey);
    if (engine.detail.enabled) engine.detail.recordGet(buf, keyStart, nkey, hit);
  }

  /** ItemSink of the gets and touches: the reply to a hit (under the item's lock). */
  item(v: ItemView): void {
    const buf = this.getKeyBuf;
    const keyStart = this.getKeyStart;
    const nkey = v.keyLen;
    const returnKey = this.getReturnKey;
    const nbytes = this.opcode === Opcode.Touch ? 0 : v.nbytes;
    const onDisk = nbytes > 0 && v.onDisk;
    // A value in extstore is read asynchronously into a hole; if that read fails the hole
    // becomes the miss reply this request would have had.
    const miss = onDisk ? this.missReply(buf, keyStart, nkey, returnKey) : EMPTY;
    const klen = returnKey ? nkey : 0;
    const out = this.out;
    const start = out.length;
    this.header(Status.Success, 4, klen, 4 + klen + nbytes, v.cas);
    putU32(out.buf, out.length, v.flags);
    out.length += 4;
    if (klen > 0) {
      copySmall(out.buf, out.length, buf, keyStart, nkey);
      out.length += nkey;
    }
    if (onDisk) {
      appendDiskValue(this.engine, out, v, start, false, miss);
    } else if (nbytes > 0) {
      out.length += v.copyValue(out.buf, out.length, out.view);
    }
  }

  /** The KEY_ENOENT reply of a get (with the key for GETK/GATK). */
  private writeMiss(buf: Buffer, keyStart: number, nkey: number, returnKey: boolean): void {
    if (returnKey) {
      this.header(Status.KeyNotFound, 0, nkey, nkey, 0);
      this.out.bytes(buf, keyStart, keyStart + nkey);
    } else {
      this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
    }
  }

  /** The miss reply as bytes (empty for quiet gets), for a value that may fail to load. */
  private missReply(buf: Buffer, keyStart: number, nkey: number, returnKey: boolean): Buffer {
    if (this.noreply) return EMPTY;
    const out = this.out;
    const mark = out.length;
    const flushMark = this.flushMark;
    this.writeMiss(buf, keyStart, nkey, returnKey);
    const miss = Buffer.from(out.buf.subarray(mark, out.length));
    out.length = mark;
    this.flushMark = flushMark;
    return miss;
  }

  // ---------------------------------------------------------------- storage

  /**
   * SET/ADD/REPLACE (flags, exptime from extras) and APPEND/PREPEND: allocate the item, then
   * stream `vlen` value bytes into it. A request CAS turns set/add/replace into a CAS.
   */
  private update(buf: Buffer, keyStart: number, nkey: number, mode: StoreMode, flags: number, exptime: number,
    vlen: number, reqCas: number): void {
    const engine = this.engine;
    if (engine.detail.enabled) engine.detail.recordSet(buf, keyStart, nkey);
    if (vlen < 0) return this.negativeValueLength(buf, keyStart, nkey, mode);
    // memcached keeps the request CAS in the new item, which has no CAS field under -C
    if (!engine.settings.casEnabled) reqCas = 0;
    const ref = engine.allocForStore(this.view, mode, buf, keyStart, nkey, flags, engine.clock.realtime(exptime), vlen);
    if (ref === 0) {
      if (this.view.failure === AllocFailure.TooLarge) return this.error(Status.TooLarge, ERROR_TEXT.tooLarge, vlen, false);
      return this.error(Status.OutOfMemory, ERROR_TEXT.oomAllocatingItem, vlen, false);
    }
    const casMode = reqCas !== 0 && mode !== StoreMode.Append && mode !== StoreMode.Prepend;
    this.handle = ref;
    this.storeMode = casMode ? StoreMode.Cas : mode;
    this.casIn = reqCas;
    this.valueBytes = vlen;
    this.valueDone = 0;
    if (vlen === 0) return this.completeValue();
    this.state = State.Value;
    this.conn.stateName = 'conn_nread';
  }

  /**
   * A body length so large that memcached's `int vlen` is negative: its allocator refuses
   * lengths below zero, so the reply is "too large", and nothing is swallowed.
   */
  private negativeValueLength(buf: Buffer, keyStart: number, nkey: number, mode: StoreMode): void {
    // The engine refuses a negative length as too large (and a set removes the old value).
    this.engine.allocForStore(this.view, mode, buf, keyStart, nkey, 0, 0, -1);
    this.error(Status.TooLarge, ERROR_TEXT.tooLarge, 0, false);
  }

  /** Copy value bytes into the item; when all are in, store. Returns the new position. */
  private readValue(buf: Buffer, pos: number, end: number): number {
    const n = Math.min(this.valueBytes - this.valueDone, end - pos);
    this.engine.writeValue(this.handle, this.valueDone, buf, pos, pos + n, this.inputViews.of(buf));
    this.valueDone += n;
    if (this.valueDone === this.valueBytes) this.completeValue();
    return pos + n;
  }

  /** complete_update_bin */
  private completeValue(): void {
    const ref = this.handle;
    const mode = this.storeMode;
    this.handle = 0;
    this.state = State.Header;
    this.conn.stateName = 'conn_parse_cmd';
    const engine = this.engine;
    switch (engine.commitStore(this.view, mode, ref, this.casIn)) {
      case StoreResult.Stored:
        this.cas = this.view.cas;
        return this.respond(null);
      case StoreResult.Exists:
        return this.error(Status.KeyExists, ERROR_TEXT.exists);
      case StoreResult.NotFound:
        return this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
      case StoreResult.NotStored:
        if (mode === StoreMode.Add) return this.error(Status.KeyExists, ERROR_TEXT.exists);
        if (mode === StoreMode.Replace) return this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
        return this.error(Status.NotStored, ERROR_TEXT.notStored);
    }
  }

  // ---------------------------------------------------------------- other item commands

  private remove(buf: Buffer, keyStart: number, nkey: number, reqCas: number): void {
    const engine = this.engine;
    if (engine.detail.enabled) engine.detail.recordDelete(buf, keyStart, nkey);
    switch (engine.delete(this.view, buf, keyStart, nkey, reqCas)) {
      case DeleteResult.Deleted: return this.respond(null);
      case DeleteResult.Exists: return this.error(Status.KeyExists, ERROR_TEXT.exists);
      case DeleteResult.NotFound: return this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
    }
  }

  /** complete_incr_bin: extras are delta (8), initial (8), expiration (4). */
  private arithmetic(buf: Buffer, ext: number, keyStart: number, nkey: number, incr: boolean, reqCas: number): void {
    const engine = this.engine;
    // As an int32 (a small integer to V8), so it stays unboxed across the calls below; a uint32
    // above 2^31 kept that long is a heap number, 16 bytes per request.
    const expirationWord = i32(buf, ext + 16);
    const create = expirationWord !== (NO_AUTO_CREATE | 0);
    // A delta below 2^53 (the high word below 2^21) goes the way that makes no bigint.
    const high = u32(buf, ext);
    const result = high < 0x200000
      ? engine.incrDecrSmall(this.view, buf, keyStart, nkey, incr, high * 0x100000000 + u32(buf, ext + 4), reqCas, null, create)
      : engine.incrDecr(this.view, buf, keyStart, nkey, incr, buf.readBigUInt64BE(ext), reqCas, null, create);
    switch (result) {
      case DeltaResult.Ok:
        this.cas = this.view.cas;
        if (this.view.deltaSmall >= 0) return this.respondSmallNumber(this.view.deltaSmall);
        return this.respondNumber(this.view.delta);
      case DeltaResult.NonNumeric:
        return this.error(Status.DeltaBadValue, ERROR_TEXT.badDelta);
      case DeltaResult.NoMemory:
        return this.error(Status.OutOfMemory, ERROR_TEXT.oomIncrementing);
      case DeltaResult.CasMismatch:
        return this.error(Status.KeyExists, ERROR_TEXT.exists);
      case DeltaResult.NotFound:
        break;
    }
    if (!create) return this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
    // Auto-create (memcached counts no miss then, as incrDecr was told).
    const initial = buf.readBigUInt64BE(ext + 8);
    if (!engine.createNumber(this.view, buf, keyStart, nkey, initial, engine.clock.realtime(expirationWord >>> 0))) {
      return this.error(Status.OutOfMemory, ERROR_TEXT.oomNewItem);
    }
    this.cas = this.view.cas;
    this.respondNumber(initial);
  }

  /** respondNumber for a value below 2^53, without a bigint. */
  private respondSmallNumber(v: number): void {
    if (this.noreply) return;
    this.header(Status.Success, 0, 0, 8, this.cas);
    const high = Math.floor(v / 0x100000000);
    this.out.buf.writeUInt32BE(high, this.out.length);
    this.out.buf.writeUInt32BE(v - high * 0x100000000, this.out.length + 4);
    this.out.length += 8;
  }

  private respondNumber(v: bigint): void {
    if (this.noreply) return;
    this.header(Status.Success, 0, 0, 8, this.cas);
    this.out.buf.writeBigUInt64BE(v, this.out.length);
    this.out.length += 8;
  }

  private flush(exptime: number): void {
    const engine = this.engine;
    if (!engine.settings.flushEnabled) return this.error(Status.AuthError, ERROR_TEXT.authFailure);
    engine.flushAll(exptime);
    engine.stats.cmd_flush++;
    this.respond(null);
  }

  // ---------------------------------------------------------------- stats

  /** One packet per stat: key = name, value = value; an empty packet ends the list. */
  private statPacket(name: string, value: string): void {
    const klen = Buffer.byteLength(name, 'latin1');
    const vlen = Buffer.byteLength(value, 'latin1');
    this.header(Status.Success, 0, klen, klen + vlen, 0);
    this.out.ascii(name);
    this.out.ascii(value);
  }

  private readonly statSink: StatSink = (name, value) => this.statPacket(name, String(value));

  /** process_bin_stat: the key names the group, as memcached matches it. */
  private stats(buf: Buffer, keyStart: number, nkey: number): void {
    if (this.hooks.forward !== undefined && this.forwardStats(buf, keyStart, nkey)) return;
    const ctx = this.hooks.stats;
    const engine = this.engine;
    const sink = this.statSink;
    if (nkey === 0) {
      generalStats(ctx, sink);
    } else if (prefixIs(buf, keyStart, nkey, 'reset')) {
      engine.stats.reset();
      engine.resetStats();
    } else if (prefixIs(buf, keyStart, nkey, 'settings')) {
      settingsStats(ctx, sink);
    } else if (prefixIs(buf, keyStart, nkey, 'detail')) {
      // -X blocks stats detail too (memcached 1.6.19 and later)
      if (!engine.settings.dumpEnabled) return this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
      const at = keyStart + 6;
      const left = nkey - 6;
      if (prefixIs(buf, at, left, ' dump')) this.statPacket('detailed', engine.detail.dump());
      else if (prefixIs(buf, at, left, ' on') || prefixIs(buf, at, left, ' off')) {
        engine.tuning.detailStats(prefixIs(buf, at, left, ' on'));
        // The worker threads take the setting (as after a text `stats detail on`).
        this.hooks.changed?.();
      } else return this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
    } else if (keyIs(buf, keyStart, nkey, 'items')) {
      itemsStats(ctx, sink);
    } else if (keyIs(buf, keyStart, nkey, 'slabs')) {
      slabsStats(ctx, sink);
    } else if (keyIs(buf, keyStart, nkey, 'sizes')) {
      sizesStats(ctx, sink);
    } else {
      return this.error(Status.KeyNotFound, ERROR_TEXT.notFound);
    }
    this.header(Status.Success, 0, 0, 0, 0);
  }

  /**
   * A worker thread (-t N > 1): the groups that read what thread 0 owns (its
   * background work's counters, every thread's detail counts) are asked of thread 0 as the
   * text `stats` command and its lines turned into stat packets. False: answer here.
   */
  private forwardStats(buf: Buffer, keyStart: number, nkey: number): boolean {
    // The text command of the group, by its canonical name (binary matches groups by prefix).
    let group: string | null = null;
    if (nkey === 0) group = '';
    else if (prefixIs(buf, keyStart, nkey, 'reset')) group = 'reset';
    else if (prefixIs(buf, keyStart, nkey, 'settings')) group = 'settings';
    else if (keyIs(buf, keyStart, nkey, 'items')) group = 'items';
    else if (keyIs(buf, keyStart, nkey, 'slabs')) group = 'slabs';
    else if (keyIs(buf, keyStart, nkey, 'sizes')) group = 'sizes';
    else if (prefixIs(buf, keyStart, nkey, 'detail') && this.engine.settings.dumpEnabled) {
      const at = keyStart + 6;
      const left = nkey - 6;
      if (prefixIs(buf, at, left, ' dump')) group = 'detail dump';
      else if (prefixIs(buf, at, left, ' on')) group = 'detail on';
      else if (prefixIs(buf, at, left, ' off')) group = 'detail off';
    }
    if (group === null) return false;
    const reply = (this.hooks.forward as (request: Buffer, pipelined: boolean) => Buffer)(
      Buffer.from(group === '' ? 'stats\r\n' : `stats ${group}\r\n`, 'latin1'), false).toString('latin1');
    if (group === 'detail dump') {
      this.statPacket('detailed', reply);
    } else {
      for (const line of reply.split('\r\n')) {
        if (!line.startsWith('STAT ')) continue;
        const space = line.indexOf(' ', 5);
        if (space < 0) continue;
        this.statPacket(line.slice(5, space), line.slice(space + 1));
      }
    }
    this.header(Status.Success, 0, 0, 0, 0);
    return true;
  }

  // ---------------------------------------------------------------- SASL

  private listMechanisms(bodylen: number, keylen: number): void {
    if (this.sasl === null) return this.error(Status.UnknownCommand, ERROR_TEXT.unknownCommand, bodylen - keylen);
    this.authenticated = false;
    const list = this.sasl.server.mechanismList;
    // Cyrus fails the listing when no mechanism is offered
    if (list === null) return this.error(Status.AuthError, ERROR_TEXT.authFailure);
    this.respond(list);
  }

  /** process_bin_sasl_auth: the mechanism is the key, the SASL data is the value. */
  private saslBegin(buf: Buffer, keyStart: number, nkey: number, bodylen: number): void {
    const vlen = bodylen - nkey;
    if (this.sasl === null) return this.error(Status.UnknownCommand, ERROR_TEXT.unknownCommand, vlen);
    if (nkey > SASL_MECH_BYTES_MAX) return this.error(Status.InvalidArguments, ERROR_TEXT.invalid, vlen);
    // memcached holds the data in an item: one that is too large or chunked is "out of memory"
    if (!this.engine.fitsOneChunk(nkey, vlen)) {
      return this.error(Status.OutOfMemory, ERROR_TEXT.outOfMemory, vlen);
    }
    this.saslMech ??= Buffer.alloc(SASL_MECH_BYTES_MAX);
    buf.copy(this.saslMech, 0, keyStart, keyStart + nkey);
    this.saslMechLen = nkey;
    this.saslOpcode = this.opcode;
    this.saslData ??= Buffer.alloc(SASL_DATA_BYTES_MAX);
    this.saslLen = 0;
    this.saslSeen = 0;
    this.saslWant = vlen;
    if (vlen === 0) return this.completeSasl();
    this.state = State.SaslData;
    this.conn.stateName = 'conn_nread';
  }

  private readSaslData(buf: Buffer, pos: number, end: number): number {
    const n = Math.min(this.saslWant - this.saslSeen, end - pos);
    const keep = Math.min(n, SASL_DATA_BYTES_MAX - this.saslLen);
    if (keep > 0) {
      buf.copy(this.saslData!, this.saslLen, pos, pos + keep);
      this.saslLen += keep;
    }
    this.saslSeen += n;
    if (this.saslSeen === this.saslWant) {
      this.state = State.Header;
      this.conn.stateName = 'conn_parse_cmd';
      this.completeSasl();
    }
    return pos + n;
  }

  /** process_bin_complete_sasl_auth */
  private completeSasl(): void {
    const conv = this.sasl!;
    const data = this.saslData!;
    const overlong = this.saslWant > this.saslLen;
    this.opcode = this.saslOpcode;
    this.authenticated = false;
    // the mechanism name ends at its first NUL, as memcached copies it into a C string
    const mech = this.saslMech!;
    let mechEnd = mech.indexOf(0);
    if (mechEnd < 0 || mechEnd > this.saslMechLen) mechEnd = this.saslMechLen;
    const r = this.opcode === Opcode.SaslAuth
      ? conv.start(mech, 0, mechEnd, data, this.saslLen, overlong)
      : conv.step(data, this.saslLen, overlong);
    data.fill(0, 0, this.saslLen);
    const stats = this.engine.stats;
    switch (r) {
      case SaslResult.Ok:
        this.authenticated = true;
        stats.auth_cmds++;
        return this.respond(AUTHENTICATED);
      case SaslResult.Continue:
        // CRAM-MD5's challenge; PLAIN has nothing to send back
        this.header(Status.AuthContinue, 0, 0, conv.reply.length, this.cas);
        this.out.bytes(conv.reply, 0, conv.reply.length);
        this.flushMark = this.out.length;
        return;
      case SaslResult.Fail:
        stats.auth_cmds++;
        stats.auth_errors++;
        return this.error(Status.AuthError, ERROR_TEXT.authFailure);
    }
  }
}

function isQuiet(opcode: number): boolean {
  switch (opcode) {
    case Opcode.SetQ: case Opcode.AddQ: case Opcode.ReplaceQ: case Opcode.DeleteQ:
    case Opcode.IncrementQ: case Opcode.DecrementQ: case Opcode.QuitQ: case Opcode.FlushQ:
    case Opcode.AppendQ: case Opcode.PrependQ: case Opcode.GetQ: case Opcode.GetKQ:
    case Opcode.GatQ: case Opcode.GatKQ:
      return true;
    default:
      return false;
  }
}

function modeOf(opcode: number): StoreMode {
  switch (opcode) {
    case Opcode.Add: case Opcode.AddQ: return StoreMode.Add;
    case Opcode.Replace: case Opcode.ReplaceQ: return StoreMode.Replace;
    default: return StoreMode.Set;
  }
}
