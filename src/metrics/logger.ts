/**
 * The `watch` command's log streams (memcached's logger.c): connections that sent `watch`
 * receive one text line per event of the streams they asked for, and nothing else.
 *
 * What it is for: the hooks the engine and the network layer call (item fetches, stores,
 * evictions, deletions, connection open/close), formatting memcached 1.6.18's lines, and
 * delivering them to watchers in batches, with memcached's "skipped=N" when a watcher reads
 * too slowly.
 * What it is not for: -v logging to stderr (src/cli/main.ts), the `watch` command's parsing
 * (src/protocol/text/admin.ts).
 *
 * Cost when nobody watches: every hook site tests one bit of `flags`, a plain number field
 * that is 0 then; nothing is formatted or allocated.
 *
 * Line formats (memcached 1.6.18 logger.c; `deleted` is from memcached 1.6.20):
 *   ts=<sec>.<usec> gid=<n> type=item_get key=<uri> status=found|not_found|flushed|expired clsid=<c> cfd=<id> size=<bytes>
 *   ts=... type=item_store key=<uri> status=stored|not_stored|exists|not_found|too_large|no_memory cmd=set|add|replace|append|prepend|cas ttl=<s> clsid=<c> cfd=<id> size=<bytes>
 *   ts=... type=eviction key=<uri> fetch=yes|no ttl=<s or -1> la=<s> clsid=<c> size=<bytes>
 *   ts=... type=deleted key=<uri> cmd=delete|md clsid=<c> size=<bytes>
 *   ts=... type=conn_new rip=<ip> rport=<port> transport=tcp|local|udp cfd=<id>
 *   ts=... type=conn_close rip=<ip> rport=<port> transport=... reason=normal|error|idle_timeout|shutdown cfd=<id>
 *   ts=... type=conntlserr fd=<id> msg=<OpenSSL's error string, or strerror()>   (memcached 1.6.45)
 * `<usec>` is not zero-padded (memcached prints it with %d). `cfd` is the connection id that
 * `stats conns` shows (memcached's file descriptor).
 *
 * Delivery: lines are appended to each matching watcher's pending text and written once per
 * event-loop turn (memcached's logger thread batches the same way). While a watcher's unsent
 * bytes (socket queue plus pending text) exceed -o watcher_logbuf_size, its lines are dropped
 * and counted; the next line it gets is preceded by `skipped=<n>`.
 */

/** memcached's LOG_* stream bits (logger.h). */
export const LOG_SYSEVENTS = 1 << 1;
export const LOG_FETCHERS = 1 << 2;
export const LOG_MUTATIONS = 1 << 3;
export const LOG_CONNEVENTS = 1 << 5;
export const LOG_EVICTIONS = 1 << 6;
export const LOG_RAWCMDS = 1 << 9;
export const LOG_PROXYREQS = 1 << 10;
export const LOG_PROXYEVENTS = 1 << 11;
export const LOG_PROXYUSER = 1 << 12;
export const LOG_DELETIONS = 1 << 13;

/**
 * `watch` arguments and their streams. rawcmds and the proxy streams are accepted and stay
 * silent (memcached writes them only from its proxy); sysevents carries extstore
 * compaction's lines, as in memcached 1.6.45. `deletions` arrived in memcached 1.6.20.
 */
export const WATCH_STREAMS: ReadonlyMap<string, number> = new Map([
  ['rawcmds', LOG_RAWCMDS],
  ['evictions', LOG_EVICTIONS],
  ['fetchers', LOG_FETCHERS],
  ['mutations', LOG_MUTATIONS],
  ['sysevents', LOG_SYSEVENTS],
  ['connevents', LOG_CONNEVENTS],
  ['proxyreqs', LOG_PROXYREQS],
  ['proxyevents', LOG_PROXYEVENTS],
  ['proxyuser', LOG_PROXYUSER],
  ['deletions', LOG_DELETIONS],
]);

/** How often a skipping watcher's socket is looked at again (memcached's logger polls as often). */
const WATCHER_RETRY_MS = 10;

/** memcached's WATCHER_LIMIT. */
export const WATCHERS_MAX = 20;

/** memcached's logger.c status maps, indexed as its enums are. */
export const enum FetchStatus {
  NotFound = 0,
  Found = 1,
  Flushed = 2,
  Expired = 3,
}
const FETCH_STATUS = ['not_found', 'found', 'flushed', 'expired'];

export type StoreStatus = 'stored' | 'not_stored' | 'exists' | 'not_found' | 'too_large' | 'no_memory';
export type StoreCommand = 'set' | 'add' | 'replace' | 'append' | 'prepend' | 'cas';
export type DeleteCommand = 'delete' | 'md';
export type CloseReason = 'normal' | 'error' | 'idle_timeout' | 'shutdown';
/** memcached's transport names: unix sockets are "local". */
export type LogTransport = 'tcp' | 'local' | 'udp';

/**
 * Where a watcher's lines go: a connection's out-of-band write (ConnectionInfo.push). Writes
 * `data` (nothing when empty) and returns the bytes still queued on the socket, or -1 when
 * the connection is closing or closed.
 */
export type WatchPush = (data: Buffer) => number;

export interface WatchCounters {
  /** Lines formatted (memcached's log_worker_written). */
  workerWritten: number;
  /** Lines lost before any watcher saw them (always 0 here: nothing is buffered per worker). */
  workerDropped: number;
  /** Lines a slow watcher did not get (log_watcher_skipped). */
  watcherSkipped: number;
  /** Lines handed to watchers (log_watcher_sent). */
  watcherSent: number;
}

/** What one readback chunk of a compaction did (memcached's compact_read_end line). */
export interface CompactReadCounts {
  rescues: number;
  /** Rescues that needed a new header item (the old one referenced: `debugitem ref`). */
  rescuesRealloc: number;
  lost: number;
  skipped: number;
}

/** One watching connection. */
export class Watcher {
  pending = '';
  skipped = 0;
  /** Socket backlog as of the last write. */
  backlogBytes = 0;
  closed = false;
  /** The newest line skipped (delivered late once the socket drains, if nothing followed it). */
  lastSkipped = '';
  /** While skipping: the timer that looks again whether the socket has drained. */
  retry: NodeJS.Timeout | null = null;

  constructor(
    readonly streams: number,
    readonly push: WatchPush,
    readonly clientId: number,
  ) {}
}

const UNRESERVED = (() => {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) {
    const ch = String.fromCharCode(c);
    if (/[A-Za-z0-9\-._~]/.test(ch)) t[c] = 1;
  }
  return t;
})();
const HEX = '0123456789ABCDEF';

/** memcached's uriencode: every byte but [A-Za-z0-9-._~] as %XX. */
export function uriEncodeKey(key: Uint8Array, start: number, len: number): string {
  let out = '';
  for (let i = start; i < start + len; i++) {
    const c = key[i];
    out += UNRESERVED[c] === 1 ? String.fromCharCode(c) : '%' + HEX[c >> 4] + HEX[c & 15];
  }
  return out;
}

export class WatchLogger {
  /**
   * Union of the streams someone watches (on any serving thread). Hook sites test
   * `(logger.flags & LOG_X) !== 0` before calling anything.
   */
  get flags(): number {
    return this.shared === null ? this.localFlags : Atomics.load(this.shared, 0);
  }
  /** The connection being served (sessions set it per read event): `cfd` in lines. */
  clientId = 0;
  readonly counters: WatchCounters = { workerWritten: 0, workerDropped: 0, watcherSkipped: 0, watcherSent: 0 };
  /** Called with the new `flags` whenever watchers come or go (the engine installs its eviction hook). */
  onStreamsChanged: ((flags: number) => void) | null = null;
  private readonly watchers: Watcher[] = [];
  /**
   * A worker thread (-t N > 1): its lines go to thread 0's logger, which formats
   * them for every thread's watchers, instead of being delivered here.
   */
  forward: ((stream: number, body: string) => void) | null = null;
  private gid = 0;
  private flushScheduled = false;
  private readonly flushBound = (): void => this.flush();

  /** @param bufferBytesMax -o watcher_logbuf_size: unsent bytes a watcher may hold before lines are skipped. */
  constructor(private readonly bufferBytesMax: number) {
    if (!(Number.isSafeInteger(bufferBytesMax) && bufferBytesMax > 0)) throw new Error(`watcher buffer ${bufferBytesMax}`);
  }

  /** Every thread's watchers (memcached's log_watchers). */
  get watcherCount(): number {
    const shared = this.shared;
    if (shared === null) return this.watchers.length;
    let n = 0;
    for (let t = 0; t < this.threads; t++) n += Atomics.load(shared, 1 + this.threads + t);
    return n;
  }

  /** `stats reset` (memcached zeroes its log_* counters with the others). */
  resetCounters(): void {
    const c = this.counters;
    c.workerWritten = 0;
    c.workerDropped = 0;
    c.watcherSkipped = 0;
    c.watcherSent = 0;
  }

  /** Register a watcher; null when WATCHERS_MAX are already watching. */
  add(streams: number, push: WatchPush, clientId: number): Watcher | null {
    if (this.watchers.length >= WATCHERS_MAX) return null;
    const w = new Watcher(streams, push, clientId);
    this.watchers.push(w);
    this.updateFlags();
    return w;
  }

  remove(w: Watcher): void {
    w.closed = true;
    if (w.retry !== null) clearTimeout(w.retry);
    w.retry = null;
    const i = this.watchers.indexOf(w);
    if (i < 0) return;
    this.watchers.splice(i, 1);
    this.updateFlags();
  }

  /**
   * Several serving threads (-t N): what each thread's watchers want lives in shared words
   * (`shareWith`), written by that thread the moment a watcher comes or goes, so every
   * thread's hooks see a new watcher at once: [union of all, streams of thread t...,
   * watchers of thread t...]. The other threads `forward` their lines to thread 0, which
   * formats every line, delivers it to its own watchers and hands it through `fanOut` to the
   * threads whose watchers want that stream.
   */
  fanOut: ((stream: number, line: string) => void) | null = null;
  /** The streams this thread's own watchers want. */
  private localFlags = 0;
  private shared: Int32Array | null = null;
  private thread = 0;
  private threads = 1;

  /** Words of the shared watch state for `threads` serving threads. */
  static sharedWords(threads: number): number {
    return 1 + 2 * threads;
  }

  /** Take part, as serving thread `thread` of `threads`, in the shared watch state. */
  shareWith(shared: Int32Array, thread: number, threads: number): void {
    if (shared.length !== WatchLogger.sharedWords(threads) || thread < 0 || thread >= threads) throw new Error('watch state shape');
    this.shared = shared;
    this.thread = thread;
    this.threads = threads;
    this.updateFlags();
  }

  /** Is this logger part of several serving threads? */
  get isShared(): boolean {
    return this.shared !== null;
  }

  /** The streams thread `t`'s watchers want (thread 0's fan-out). */
  threadStreams(t: number): number {
    return this.shared === null ? 0 : Atomics.load(this.shared, 1 + t);
  }

  /** Thread 0: a line another thread made (its `forward`): format and deliver it everywhere. */
  emitForwarded(stream: number, body: string): void {
    this.emit(stream, body);
  }

  /** A worker thread: a line thread 0 formatted, for this thread's watchers. */
  deliverFormatted(stream: number, line: string): void {
    this.deliverLine(stream, line);
  }

  // --- hooks (call only after testing the stream's bit in `flags`)

  itemGet(status: FetchStatus, key: Uint8Array, keyStart: number, keyLen: number, clsid: number, nbytes: number): void {
    this.emit(LOG_FETCHERS, `type=item_get key=${uriEncodeKey(key, keyStart, keyLen)} status=${FETCH_STATUS[status]} ` +
      `clsid=${clsid} cfd=${this.clientId} size=${nbytes}`);
  }

  /**
   * `keyText` from uriEncodeKey; `ttlSeconds` is exptime minus now (0: no expiry), printed
   * as the unsigned 32-bit number memcached prints.
   */
  itemStore(status: StoreStatus, cmd: StoreCommand, keyText: string, ttlSeconds: number, clsid: number, nbytes: number): void {
    this.emit(LOG_MUTATIONS, `type=item_store key=${keyText} status=${status} cmd=${cmd} ttl=${ttlSeconds >>> 0} ` +
      `clsid=${clsid} cfd=${this.clientId} size=${nbytes}`);
  }

  /** `ttlSeconds` -1 for no expiry; `idleSeconds`: since the last access. */
  eviction(key: Uint8Array, keyStart: number, keyLen: number, fetched: boolean, ttlSeconds: number, idleSeconds: number,
    clsid: number, nbytes: number): void {
    this.emit(LOG_EVICTIONS, `type=eviction key=${uriEncodeKey(key, keyStart, keyLen)} fetch=${fetched ? 'yes' : 'no'} ` +
      `ttl=${ttlSeconds} la=${idleSeconds} clsid=${clsid} size=${nbytes}`);
  }

  deletion(cmd: DeleteCommand, key: Uint8Array, keyStart: number, keyLen: number, clsid: number, nbytes: number): void {
    this.emit(LOG_DELETIONS, `type=deleted key=${uriEncodeKey(key, keyStart, keyLen)} cmd=${cmd} clsid=${clsid} size=${nbytes}`);
  }

  connectionOpened(transport: LogTransport, ip: string, port: number, clientId: number): void {
    this.emit(LOG_CONNEVENTS, `type=conn_new rip=${ip} rport=${port} transport=${transport} cfd=${clientId}`);
  }

  connectionClosed(transport: LogTransport, ip: string, port: number, reason: CloseReason, clientId: number): void {
    this.emit(LOG_CONNEVENTS, `type=conn_close rip=${ip} rport=${port} transport=${transport} reason=${reason} cfd=${clientId}`);
  }

  /** memcached 1.6.45's TLS failure line: `fd` is the connection's id (the listener's when no connection was made). */
  connectionTlsError(fd: number, message: string): void {
    this.emit(LOG_CONNEVENTS, `type=conntlserr fd=${fd} msg=${message}`);
  }

  /** Extstore compaction (memcached's LOGGER_COMPACT_* sysevents). */
  compactStart(pageId: number, version: number): void {
    this.emit(LOG_SYSEVENTS, `type=compact_start id=${pageId} version=${version}`);
  }

  compactAbort(pageId: number): void {
    this.emit(LOG_SYSEVENTS, `type=compact_abort id=${pageId}`);
  }

  compactReadStart(pageId: number, offset: number): void {
    this.emit(LOG_SYSEVENTS, `type=compact_read_start id=${pageId} offset=${offset}`);
  }

  /**
   * lost_oom is always 0 (a rescue that cannot have its header is counted as lost). Headers
   * are updated in place under the item lock; rescues_realloc counts the ones that needed a
   * new header item because a reference held the old one (memcached's rule; here only
   * memcached-debug's `debugitem ref` holds one).
   */
  compactReadEnd(pageId: number, offset: number, r: CompactReadCounts): void {
    this.emit(LOG_SYSEVENTS, `type=compact_read_end id=${pageId} offset=${offset} rescues=${r.rescues} ` +
      `rescues_realloc=${r.rescuesRealloc} lost=${r.lost} lost_oom=0 skipped=${r.skipped}`);
  }

  compactEnd(pageId: number): void {
    this.emit(LOG_SYSEVENTS, `type=compact_end id=${pageId}`);
  }

  /** Each compaction check: ext_max_frag and the live-bytes bound it makes of a page. */
  compactFragInfo(maxFrag: number, fragLimitBytes: number): void {
    this.emit(LOG_SYSEVENTS, `type=compact_fraginfo ratio=${maxFrag.toFixed(2)} bytes=${fragLimitBytes}`);
  }

  // --- delivery

  private emit(stream: number, body: string): void {
    if ((this.flags & stream) === 0) return;
    if (this.forward !== null) {
      this.forward(stream, body);
      return;
    }
    const nowMs = performance.timeOrigin + performance.now();
    const sec = Math.floor(nowMs / 1000);
    const usec = Math.floor((nowMs - sec * 1000) * 1000);
    const line = `ts=${sec}.${usec} gid=${++this.gid} ${body}\n`;
    this.counters.workerWritten++;
    this.fanOut?.(stream, line);
    this.deliverLine(stream, line);
  }

  private deliverLine(stream: number, line: string): void {
    if ((this.localFlags & stream) === 0) return;
    for (const w of this.watchers) {
      if ((w.streams & stream) === 0) continue;
      if (w.backlogBytes + w.pending.length + line.length > this.bufferBytesMax) {
        w.skipped++;
        w.lastSkipped = line;
        this.counters.watcherSkipped++;
        this.scheduleRetry(w);
      } else {
        this.deliver(w, line);
      }
    }
    this.scheduleFlush();
  }

  private deliver(w: Watcher, line: string): void {
    if (w.skipped > 0) {
      w.pending += `skipped=${w.skipped}\n`;
      w.skipped = 0;
    }
    w.lastSkipped = '';
    w.pending += line;
    this.counters.watcherSent++;
  }

  /**
   * memcached's logger thread polls its watchers: once a skipping watcher's socket has room
   * again, the newest line it missed goes out after its skipped=N. Here a short timer looks
   * again while a watcher skips (the socket's queue is only known after the event loop has
   * written it), so a watcher that has read everything does not wait for lines forever.
   */
  private scheduleRetry(w: Watcher): void {
    if (w.retry !== null) return;
    w.retry = setTimeout(() => {
      w.retry = null;
      if (w.closed || w.skipped === 0 || w.lastSkipped === '') return;
      const backlog = w.push(EMPTY);
      if (backlog < 0) return this.remove(w);
      w.backlogBytes = backlog;
      if (backlog + w.pending.length + w.lastSkipped.length > this.bufferBytesMax) return this.scheduleRetry(w);
      const line = w.lastSkipped;
      w.skipped--;
      this.counters.watcherSkipped--;
      this.deliver(w, line);
      this.scheduleFlush();
    }, WATCHER_RETRY_MS);
    w.retry.unref();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushBound);
  }

  /** Write every watcher's pending lines; a watcher that is skipping learns its new backlog. */
  private flush(): void {
    this.flushScheduled = false;
    for (const w of [...this.watchers]) {
      if (w.pending === '' && w.skipped === 0) continue;
      const data = w.pending === '' ? EMPTY : Buffer.from(w.pending, 'latin1');
      w.pending = '';
      const backlog = w.push(data);
      if (backlog < 0) this.remove(w);
      else w.backlogBytes = backlog;
    }
  }

  private updateFlags(): void {
    let flags = 0;
    for (const w of this.watchers) flags |= w.streams;
    this.localFlags = flags;
    const shared = this.shared;
    if (shared !== null) {
      Atomics.store(shared, 1 + this.thread, flags);
      Atomics.store(shared, 1 + this.threads + this.thread, this.watchers.length);
      this.publishUnion(shared);
    }
    this.onStreamsChanged?.(this.flags);
  }

  /**
   * Store the union of every thread's streams. Two threads doing this at once may store in
   * either order; each looks again after storing and stores once more while the union it
   * sees differs from the stored one, so the last store holds every thread's latest streams.
   */
  private publishUnion(shared: Int32Array): void {
    for (;;) {
      let union = 0;
      for (let t = 0; t < this.threads; t++) union |= Atomics.load(shared, 1 + t);
      if (Atomics.load(shared, 0) === union) return;
      Atomics.store(shared, 0, union);
    }
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * memcached's conn_new/conn_close address fields from a `stats conns` peer name
 * ("tcp:127.0.0.1:5000", "tcp6:[::1]:5000", "unix:/path", "udp:..."): [transport, ip, port].
 */
export function peerFields(peerName: string): [LogTransport, string, number] {
  if (peerName.startsWith('unix:')) return ['local', 'unix', 0];
  const transport: LogTransport = peerName.startsWith('udp') ? 'udp' : 'tcp';
  const rest = peerName.slice(peerName.indexOf(':') + 1);
  const colon = rest.lastIndexOf(':');
  let ip = colon < 0 ? rest : rest.slice(0, colon);
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  const port = colon < 0 ? 0 : Number(rest.slice(colon + 1));
  return [transport, ip, Number.isInteger(port) ? port : 0];
}

/** The part of a connection's description the connection events need. */
interface ConnectionIdentity {
  readonly id: number;
  readonly peerName: string;
}

/**
 * The network layer's connection observer (NetworkOptions.connectionEvents) feeding
 * `watch connevents`; nothing is formatted while nobody watches that stream.
 */
export function connectionEventsFor(logger: WatchLogger): {
  opened(info: ConnectionIdentity): void;
  closed(info: ConnectionIdentity, reason: CloseReason): void;
  tlsError(id: number, message: string): void;
} {
  return {
    tlsError(id, message) {
      if ((logger.flags & LOG_CONNEVENTS) === 0) return;
      logger.connectionTlsError(id, message);
    },
    opened(info) {
      if ((logger.flags & LOG_CONNEVENTS) === 0) return;
      const [transport, ip, port] = peerFields(info.peerName);
      logger.connectionOpened(transport, ip, port, info.id);
    },
    closed(info, reason) {
      if ((logger.flags & LOG_CONNEVENTS) === 0) return;
      const [transport, ip, port] = peerFields(info.peerName);
      logger.connectionClosed(transport, ip, port, reason, info.id);
    },
  };
}
