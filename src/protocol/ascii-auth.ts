/**
 * ASCII authentication (-Y), memcached 1.6.45's try_read_command_asciiauth: until a client
 * has authenticated, every request line gets `CLIENT_ERROR unauthenticated`, except a `set`
 * whose value is "<user> <password>":
 *
 *   set <any> <any> <any> <len>\r\n<user> <password>\r\n   →  STORED (authenticated)
 *                                                         →  CLIENT_ERROR authentication failure
 *
 * Once authenticated, the connection is an ordinary text connection: every byte goes to the
 * TextSession. The key, flags and exptime of the `set` are ignored; nothing is stored. The
 * password is everything after the first space of the value. A line shorter than 6 bytes
 * closes the connection; a length over 16 KiB is answered `CLIENT_ERROR auth token too long`
 * (memcached 1.6.18 closed the connection instead). The line is tokenized as memcached's
 * request parser does, over the bytes before the LF: with a bare LF its last byte is dropped,
 * as memcached drops it.
 *
 * memcached writes every reply of this phase into the same response object until it
 * transmits (at the end of a read, or while waiting for the credentials), so of several
 * replies to one read only the last is sent. Kept, so clients see the same bytes.
 */
import type { Engine } from '../engine/engine';
import type { AuthFile } from './auth';
import { parsed, tokU32 } from './numbers';
import type { Output } from './output';
import { FeedStatus, type ProtocolSession } from './session';

/** memcached closes a connection that sends this much without a newline before authenticating. */
const LINE_BYTES_MAX = 2048;
/** memcached's MIN_AUTH_REQ_LEN: a shorter line cannot be the auth `set`; the connection closes. */
const LINE_BYTES_MIN = 6;
/** memcached's MAX_AUTH_REQ_LEN. */
const PAYLOAD_BYTES_MAX = 16384;
/** The length token: the fifth (mcmc keeps 23 tokens; fewer matter here). */
const LENGTH_TOKEN = 4;

const LF = 10;
const CR = 13;
const SPACE = 32;

function latin1(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}
const STORED = latin1('STORED\r\n');
const UNAUTHENTICATED = latin1('CLIENT_ERROR unauthenticated\r\n');
const TOO_LONG = latin1('CLIENT_ERROR auth token too long\r\n');
const BAD_TERMINATION = latin1('CLIENT_ERROR bad command line termination\r\n');
const BAD_TOKENS = latin1('CLIENT_ERROR bad authentication token format\r\n');
const FAILURE = latin1('CLIENT_ERROR authentication failure\r\n');

/**
 * mcmc's tokenizer over b[s, s + len) as memcached calls it here (len excludes the LF): the
 * token count (up to LENGTH_TOKEN + 2) and where token LENGTH_TOKEN is.
 */
function lengthToken(b: Buffer, s: number, len: number): { count: number; start: number; end: number } {
  const end = s + len - (b[s + len - 2] === CR ? 2 : 1);
  let count = 0;
  let ts = s;
  let tokStart = -1;
  let tokEnd = -1;
  for (let i = s; i <= end && count <= LENGTH_TOKEN; i++) {
    if (i < end && b[i] !== SPACE) continue;
    if (ts !== i) {
      if (count === LENGTH_TOKEN) {
        tokStart = ts;
        tokEnd = i;
      }
      count++;
    }
    ts = i + 1;
  }
  return { count, start: tokStart, end: tokEnd };
}

export class AsciiAuthSession implements ProtocolSession {
  status: FeedStatus = FeedStatus.Ok;
  closeIsError = false;
  private authenticated = false;
  /** memcached reuses c->sasl_started: the `set` line was read, its payload is awaited. */
  private awaitingPayload = false;
  private payloadBytes = 0;
  /** Where this read's reply of the auth phase starts in the output; -1: none yet. */
  private replyStart = -1;

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
      this.closeIsError = this.text.closeIsError === true;
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
      this.closeIsError = this.text.closeIsError === true;
    }
    return pos - start;
  }

  release(): void {
    this.text.release();
  }

  private closeWithError(): void {
    this.status = FeedStatus.Close;
    this.closeIsError = true;
  }

  /** One pass of try_read_command_asciiauth; returns the bytes consumed (0: need more). */
  private step(buf: Buffer, pos: number, end: number): number {
    let used = 0;
    if (!this.awaitingPayload) {
      if (end - pos < 3) return 0;
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= end) {
        if (end - pos > LINE_BYTES_MAX) this.closeWithError();
        return 0;
      }
      if (nl - pos < LINE_BYTES_MIN) {
        // memcached closes at once: the replies of this read are never sent.
        if (this.replyStart >= 0) this.out.length = this.replyStart;
        this.closeWithError();
        return 0;
      }
      const t = lengthToken(buf, pos, nl - pos);
      used = nl + 1 - pos;
      const isSet = buf[pos] === 0x73 && buf[pos + 1] === 0x65 && buf[pos + 2] === 0x74; // "set", as strncmp(.., 3)
      if (t.count <= LENGTH_TOKEN || !isSet || !tokU32(buf, t.start, t.end)) {
        this.reply(UNAUTHENTICATED);
        return used;
      }
      if (parsed.value > PAYLOAD_BYTES_MAX) {
        this.reply(TOO_LONG);
        return used;
      }
      this.payloadBytes = parsed.value + 2;
      this.awaitingPayload = true;
      pos += used;
    }
    const n = this.payloadBytes;
    if (end - pos < n) return used;
    this.awaitingPayload = false;
    this.checkPayload(buf, pos, n);
    return used + n;
  }

  /** The payload: "<user> <password>\r\n", the password being everything after the first space. */
  private checkPayload(buf: Buffer, p: number, n: number): void {
    const stats = this.engine.stats;
    if (buf[p + n - 2] !== CR || buf[p + n - 1] !== LF) {
      this.reply(BAD_TERMINATION);
      return;
    }
    const mid = buf.indexOf(SPACE, p);
    if (mid < 0 || mid >= p + n) {
      this.reply(BAD_TOKENS);
      return;
    }
    stats.auth_cmds++;
    if (this.authFile.check(buf, p, mid, mid + 1, p + n - 2)) {
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
