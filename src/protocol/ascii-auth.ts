/**
 * ASCII authentication (-Y), memcached 1.6.18's try_read_command_asciiauth: until a client
 * has authenticated, every request line gets `CLIENT_ERROR unauthenticated`, except a `set`
 * whose value is "<user> <password>":
 *
 *   set <any> <any> <any> <len>\r\n<user> <password>\r\n   →  STORED (authenticated)
 *                                                         →  CLIENT_ERROR authentication failure
 *
 * Once authenticated, the connection is an ordinary text connection: every byte goes to the
 * TextSession. The key, flags and exptime of the `set` are ignored; nothing is stored.
 *
 * memcached 1.6.18 writes every reply of this phase into the same response object until it
 * transmits (at the end of a read, or while waiting for the credentials), so of several
 * replies to one read only the last is sent. Kept, so clients see the same bytes.
 */
import type { Engine } from '../engine/engine';
import type { AuthFile } from './auth';
import { parseU32, parsed } from './numbers';
import type { Output } from './output';
import { FeedStatus, type ProtocolSession } from './session';

/** memcached closes a connection that sends this much without a newline before authenticating. */
const LINE_BYTES_MAX = 2048;
/** The credentials must fit memcached's 16 KiB read buffer, or the connection can only close. */
const PAYLOAD_BYTES_MAX = 16384;
/** memcached's MAX_TOKENS. */
const TOKENS_MAX = 24;

const LF = 10;
const CR = 13;
const SPACE = 32;

function latin1(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}
const STORED = latin1('STORED\r\n');
const UNAUTHENTICATED = latin1('CLIENT_ERROR unauthenticated\r\n');
const BAD_TERMINATION = latin1('CLIENT_ERROR bad command line termination\r\n');
const BAD_TOKENS = latin1('CLIENT_ERROR bad authentication token format\r\n');
const FAILURE = latin1('CLIENT_ERROR authentication failure\r\n');
const SET = latin1('set');

/** Token offsets of one line, memcached's tokenize_command (spaces only, stops at NUL). */
class Tokens {
  readonly start = new Int32Array(TOKENS_MAX);
  readonly end = new Int32Array(TOKENS_MAX);
  count = 0;

  split(b: Buffer, s: number, e: number): void {
    let n = 0;
    let t = s;
    let i = s;
    for (; i < e && b[i] !== 0; i++) {
      if (b[i] !== SPACE) continue;
      if (i > t) {
        this.start[n] = t;
        this.end[n] = i;
        n++;
        if (n === TOKENS_MAX - 1) {
          t = i + 1;
          i = t;
          while (i < e && b[i] !== 0) i++;
          if (i > t) {
            this.start[n] = t;
            this.end[n] = i;
            n++;
          }
          this.count = n;
          return;
        }
      }
      t = i + 1;
    }
    if (i > t) {
      this.start[n] = t;
      this.end[n] = i;
      n++;
    }
    this.count = n;
  }

  equals(i: number, b: Buffer, word: Buffer): boolean {
    if (this.end[i] - this.start[i] !== word.length) return false;
    return b.compare(word, 0, word.length, this.start[i], this.end[i]) === 0;
  }
}

export class AsciiAuthSession implements ProtocolSession {
  status: FeedStatus = FeedStatus.Ok;
  private authenticated = false;
  /** memcached reuses c->sasl_started: the `set` line was read, its payload is awaited. */
  private awaitingPayload = false;
  private payloadBytes = 0;
  /** Where this read's reply of the auth phase starts in the output; -1: none yet. */
  private replyStart = -1;
  private readonly tokens = new Tokens();

  constructor(
    private readonly engine: Engine,
    private readonly out: Output,
    private readonly authFile: AuthFile,
    private readonly text: ProtocolSession,
  ) {}

  feed(buf: Buffer, start: number, end: number): number {
    if (this.authenticated) {
      const n = this.text.feed(buf, start, end);
      this.status = this.text.status;
      return n;
    }
    this.status = FeedStatus.Ok;
    this.replyStart = -1;
    let pos = start;
    while (!this.authenticated && this.status === FeedStatus.Ok) {
      const used = this.step(buf, pos, end);
      if (used === 0) break;
      pos += used;
    }
    if (this.authenticated && this.status === FeedStatus.Ok && pos < end) {
      pos += this.text.feed(buf, pos, end);
      this.status = this.text.status;
    }
    return pos - start;
  }

  release(): void {
    this.text.release();
  }

  /** One pass of try_read_command_asciiauth; returns the bytes consumed (0: need more). */
  private step(buf: Buffer, pos: number, end: number): number {
    let used = 0;
    if (!this.awaitingPayload) {
      if (end - pos < 2) return 0;
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= end) {
        if (end - pos > LINE_BYTES_MAX) this.status = FeedStatus.Close;
        return 0;
      }
      // the CR stays in the line, as in memcached: the length token then ends with "\r"
      const t = this.tokens;
      t.split(buf, pos, nl);
      used = nl + 1 - pos;
      if (t.count < 5 || !t.equals(0, buf, SET) || !parseU32(buf, t.start[4], t.end[4])) {
        this.reply(UNAUTHENTICATED);
        return used;
      }
      // uint32 arithmetic, then memcached's int: a huge length wraps
      this.payloadBytes = ((parsed.value + 2) >>> 0) | 0;
      this.awaitingPayload = true;
      if (this.payloadBytes < 0 || this.payloadBytes > PAYLOAD_BYTES_MAX) {
        this.status = FeedStatus.Close;
        return used;
      }
      pos += used;
    }
    const n = this.payloadBytes;
    if (end - pos < n) return used;
    this.awaitingPayload = false;
    this.checkPayload(buf, pos, n);
    return used + n;
  }

  private checkPayload(buf: Buffer, p: number, n: number): void {
    const stats = this.engine.stats;
    if (n < 2 || buf[p + n - 2] !== CR || buf[p + n - 1] !== LF) {
      this.reply(BAD_TERMINATION);
      return;
    }
    const t = this.tokens;
    t.split(buf, p, p + n - 2);
    if (t.count < 2) {
      this.reply(BAD_TOKENS);
      return;
    }
    stats.auth_cmds++;
    if (this.authFile.check(buf, t.start[0], t.end[0], t.start[1], t.end[1])) {
      this.authenticated = true;
      this.reply(STORED);
    } else {
      stats.auth_errors++;
      this.reply(FAILURE);
    }
  }

  /** Replace this read's earlier auth-phase reply, if any (memcached reuses c->resp). */
  private reply(r: Buffer): void {
    if (this.replyStart >= 0) this.out.length = this.replyStart;
    else this.replyStart = this.out.length;
    this.out.bytes(r, 0, r.length);
  }
}
