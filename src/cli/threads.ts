/**
 * -t N: serving threads over one store (doc/threads.md).
 *
 * With one serving thread, the process's main thread does everything. With N > 1, as
 * memcached's worker threads beside its background threads, N worker_threads serve the
 * clients and the main thread (thread 0) serves none: it created the store, runs the background
 * work (LRU maintainer, crawler, page mover, hash growth, extstore's writer and compaction),
 * binds the TCP, unix, UDP and TLS sockets, accepts their connections and deals them out in
 * turn, as memcached's dispatcher (with -o tcp_accept=reuseport the workers accept TCP on
 * SO_REUSEPORT sockets of their own instead), and answers the administrative commands. The
 * workers attach engines to the same store (shared memory), serve the connections they get,
 * and serve duplicates of its UDP sockets. A worker runs the data commands itself and hands the
 * administrative ones to thread 0 over a synchronous call (its event loop waits on a shared
 * word, as memcached's worker waits on a lock, for a fraction of a millisecond).
 *
 * Not for: what a serving thread does (serving-thread.ts), the store's locks (src/store/).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Engine } from '../engine/engine';
import type { ConnectionStat } from '../engine/stats';
import { applyStorageNotice, serveStorageLink, type StorageLinkData, type StorageNotice } from '../engine/storage-link';
import { commandLatency, latencyTableBytes } from '../metrics/latency';
import { WatchLogger } from '../metrics/logger';
import { newStatsTable, ServerStats, type StatsTable } from '../metrics/stats';
import { Output } from '../protocol/output';
import type { ConnectionInfo } from '../protocol/session';
import type { SessionHooks } from '../protocol/dispatch';
import { TextSession } from '../protocol/text/session';
import type { NetworkHandle, SharedTcpListener, SharedUdpSocket, TicketKeyState, TlsShare } from '../net/server';
import type { TlsMaterial } from '../net/tls';
import { serveSessionCache } from '../net/tls-resumption';
import { loadNative, nativeAddon } from '../platform/native';
import { warmUp, warmupLogLine } from '../protocol/warmup';
import type { Settings } from '../settings';
import type { SharedMemoryList } from '../store/shared';
import type { SharedClock } from '../store/clock';

/** A worker that does not say it is ready (or stopped) within this long is a startup (stop) failure. */
const THREAD_START_TIMEOUT_MS = 10_000;
const THREAD_STOP_TIMEOUT_MS = 15_000;
/** sysexits' EX_SOFTWARE: the exit code when a serving thread dies. */
const EX_SOFTWARE = 70;

/** What a serving thread starts with (structured-cloned into the worker). */
export interface ServingThreadData {
  readonly thread: number;
  readonly settings: Settings;
  readonly memory: SharedMemoryList;
  readonly statsTable: StatsTable;
  readonly clock: SharedClock;
  readonly sharedTcp: readonly SharedTcpListener[];
  /** This worker's duplicates of thread 0's UDP sockets (it closes them). */
  readonly sharedUdp: readonly SharedUdpSocket[];
  /** -o loop_yield in effect (loopYieldPlan): yield after each poll phase. */
  readonly loopYield: boolean;
  /** The worker's end of the channel to thread 0's TLS session-ID cache (null: no cache). */
  readonly tlsSessionPort: MessagePort | null;
  /** The worker's end of its administrative channel, and the word its replies are signalled on. */
  readonly rpcPort: MessagePort;
  readonly rpcWord: Int32Array;
  /**
   * Settings changes: thread 0 posts the new settings on this port, then stores their
   * generation in `settingsWord` (one word shared by every thread). A worker compares the word
   * before each read it hands to a session and drains the port synchronously when it moved, so
   * a change made on any thread is in force for the next command on every thread, as with
   * memcached's global settings.
   */
  readonly settingsPort: MessagePort;
  readonly settingsWord: Int32Array;
  /** Connection ids come from this counter on every thread (unique, as memcached's fds). */
  readonly connectionIds: Int32Array;
  /** The shared `watch` state (WatchLogger.shareWith). */
  readonly watchState: Int32Array;
  /** Thread 0's TLS material and ticket keys (null: no TLS listener). */
  readonly tls: TlsShare | null;
  /** Connections handed over and not yet taken (NetContext.slotsInTransit). */
  readonly slotsInTransit: Int32Array;
  /** With extstore: the page table and this thread's read channel to thread 0 (src/engine/storage-link.ts). */
  readonly storageLink: StorageLinkData | null;
  /** The command-latency table every thread counts into (CommandLatency.share). */
  readonly latencyTable: SharedArrayBuffer;
}

/** Messages from thread 0 to a worker. */
export type ToServingThread =
  | { readonly type: 'lines'; readonly lines: readonly (number | string)[] }
  | { readonly type: 'tls'; readonly material?: TlsMaterial; readonly keys?: TicketKeyState }
  | { readonly type: 'adopt'; readonly fd: number; readonly listener: number; readonly listenerId: number }
  | { readonly type: 'stop'; readonly graceful: boolean };

/** What thread 0 posts on a worker's settings port. */
export interface SettingsUpdate {
  readonly settings: Settings;
  readonly generation: number;
}

/** Messages from a worker to thread 0. */
export type FromServingThread =
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stopped' };

/**
 * What a worker sends on its channel: an administrative request (answered with an RpcReply),
 * its client connections for `stats conns`, or `watch` lines (stream, body, stream, body...).
 */
export type RpcRequest =
  | { readonly kind: 'rpc'; readonly seq: number; readonly request: Uint8Array; readonly pipelined: boolean }
  | { readonly kind: 'conns'; readonly list: readonly ConnectionStat[] }
  | { readonly kind: 'log'; readonly lines: readonly (number | string)[] }
  | { readonly kind: 'detail'; readonly counts: readonly (string | number)[] }
  | { readonly kind: 'extstore'; readonly notice: StorageNotice };
export interface RpcReply {
  readonly seq: number;
  readonly reply: Uint8Array;
  /**
   * The settings after the command: the asking thread takes them before its connection's next
   * command (the broadcast to every thread may arrive after it).
   */
  readonly settings: Settings;
  /** Which change of the settings this is: a thread takes only newer ones (messages may cross). */
  readonly generation: number;
}

/**
 * How many threads serve, and why fewer than -t asks for: null reason means -t as given.
 * Multiple threads need the native addon (SO_REUSEPORT sockets, duplicated descriptors) and a
 * TCP or UDP port, or a unix socket, to share.
 */
export function servingThreadPlan(settings: Settings): { threads: number; reason: string | null } {
  const asked = settings.threadCount;
  if (asked <= 1) return { threads: 1, reason: null };
  const one = (why: string): { threads: number; reason: string } =>
    ({ threads: 1, reason: `-t ${asked}: serving on one thread: ${why}` });
  if (settings.socketPath === null && settings.tcpPort === 0 && settings.udpPort === 0) {
    return one('with -p 0, -U 0 and no -s there is no listener to share');
  }
  const load = loadNative();
  if (load.addon === null) return one(`spreading connections over threads needs SO_REUSEPORT sockets from the native addon, which is ${load.reason}`);
  return { threads: asked, reason: null };
}

/**
 * -o loop_yield: whether each serving thread yields its CPU after each poll phase of its event
 * loop (the native addon's yieldAfterPoll), with the startup line saying so, or why it cannot.
 * 'auto' yields when the serving threads outnumber the CPUs this process may run on (its CPU
 * affinity, as taskset or systemd's CPUAffinity= set it): then two of them share a CPU, and
 * without a yield one waits for the other's time slice to end at a scheduler tick
 * (doc/threads.md, "Threads sharing a CPU").
 */
export function loopYieldPlan(settings: Settings, threads: number, cpus: number = os.availableParallelism()):
  { on: boolean; line: string | null } {
  const mode = settings.loopYield;
  // Without the addon, 'on' was refused at startup (checkPlatform) and 'auto' goes without.
  if (mode === 'off' || loadNative().addon === null) return { on: false, line: null };
  if (mode === 'on') return { on: true, line: 'loop yield: on (-o loop_yield=on)' };
  if (threads <= cpus) return { on: false, line: null };
  return { on: true, line: `loop yield: on: ${threads} serving threads on ${cpus} CPU${cpus === 1 ? '' : 's'} (-o loop_yield=auto)` };
}

/**
 * What every serving thread does just before it listens: the JIT warm-up (-o warmup_ms; its
 * log line begins with `label`) on a scratch store counting into `statsFor()`, then, with
 * -o loop_yield in effect, the yield after each poll phase of its event loop.
 */
export function beforeListening(settings: Settings, statsFor: () => ServerStats, loopYield: boolean,
  log: (level: number, message: string) => void, label = ''): void {
  const warmLine = warmupLogLine(warmUp(settings, statsFor));
  if (warmLine !== null) log(warmLine.level, label + warmLine.text);
  if (loopYield) nativeAddon()?.yieldAfterPoll();
}

/**
 * Rows of the stats table (and of every per-thread table) for `serving` serving threads: one
 * for the main thread, which serves alone, or one each for it and the N workers that serve.
 */
export function threadRows(serving: number): number {
  return serving <= 1 ? 1 : serving + 1;
}

/** The stats table of `rows` threads (threadRows); the main thread's row is row 0. */
export function statsForThreads(rows: number): ServerStats {
  return new ServerStats(newStatsTable(rows), 0);
}

/** The first thread's side of the serving threads. */
export class ServingThreads {
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private readonly settingsPorts: MessagePort[] = [];
  private readonly settingsWord = new Int32Array(new SharedArrayBuffer(4));
  private readonly executor: AdminExecutor;
  private stopping: Promise<void> | null = null;
  /** Bumped at each broadcast of the settings. */
  private generation = 0;
  /** Each worker's client connections as it last sent them (`stats conns`). */
  private readonly remote = new Map<number, readonly ConnectionStat[]>();

  constructor(private readonly engine: Engine, private readonly settings: Settings, hooks: SessionHooks,
    private readonly log: (level: number, msg: string) => void, private readonly connectionIds: Int32Array,
    private readonly slotsInTransit: Int32Array) {
    this.executor = new AdminExecutor(engine, hooks);
    // `watch` across threads (see WatchLogger): thread 0 formats every line and sends each to
    // the threads whose watchers want its stream, batched per loop turn.
    const logger = engine.logger;
    logger.fanOut = (stream, line) => {
      for (let t = 1; t <= this.workers.length; t++) {
        if ((logger.threadStreams(t) & stream) === 0) continue;
        let batch = this.outgoingLines.get(t);
        if (batch === undefined) {
          batch = [];
          this.outgoingLines.set(t, batch);
        }
        batch.push(stream, line);
      }
      if (this.outgoingLines.size > 0 && !this.linesScheduled) {
        this.linesScheduled = true;
        setImmediate(() => this.sendLines());
      }
    };
  }

  private readonly outgoingLines = new Map<number, (number | string)[]>();
  private linesScheduled = false;

  private sendLines(): void {
    this.linesScheduled = false;
    for (const [t, lines] of this.outgoingLines) {
      const msg: ToServingThread = { type: 'lines', lines };
      this.workers[t - 1]?.postMessage(msg);
    }
    this.outgoingLines.clear();
  }

  /** The other threads' client connections, for `stats conns`. */
  *remoteConnections(): Iterable<ConnectionStat> {
    for (const list of this.remote.values()) yield* list;
  }

  /** Start the serving threads 1..`threads` and wait until each listens. */
  async start(threads: number, network: NetworkHandle, loopYield: boolean): Promise<void> {
    const rows = threadRows(threads);
    const sharedTcp = network.sharedTcpListeners();
    const tls = network.tlsShare();
    const sessionCache = network.tlsSessionCache();
    const entry = path.join(__dirname, 'serving-thread.js');
    // Every thread's watchers in shared words, so a new watcher is seen by all at once.
    const watchState = new Int32Array(new SharedArrayBuffer(4 * WatchLogger.sharedWords(rows)));
    this.engine.logger.shareWith(watchState, 0, rows);
    const starts: Promise<void>[] = [];
    // The endpoint's command-time histograms count every thread's commands.
    const latencyTable = new SharedArrayBuffer(latencyTableBytes(rows));
    commandLatency.share(latencyTable, 0, rows);
    // Extstore: thread 0's pages, read by each other thread through a channel of its own.
    const storage = this.engine.storage;
    const ext = storage?.ext ?? null;
    for (let t = 1; t <= threads; t++) {
      const { port1, port2 } = new MessageChannel();
      const rpcWord = new Int32Array(new SharedArrayBuffer(4));
      const settingsChannel = new MessageChannel();
      // TLS 1.2 session IDs: one cache, thread 0's, asked over a channel of its own.
      const sessionChannel = sessionCache === null ? null : new MessageChannel();
      if (sessionChannel !== null && sessionCache !== null) serveSessionCache(sessionChannel.port1, sessionCache);
      const storageChannel = storage === null ? null : new MessageChannel();
      if (storageChannel !== null && storage !== null) serveStorageLink(storage, storageChannel.port1);
      const storageLink: StorageLinkData | null = storageChannel === null || ext === null ? null : {
        table: ext.table.buffer as SharedArrayBuffer,
        paths: ext.files.map((f) => f.path),
        pageBytes: ext.pageBytes,
        port: storageChannel.port2,
        readsInFlightMax: ext.readsInFlightMax,
        readBytesMax: ext.readBytesQueuedMax,
      };
      this.settingsPorts.push(settingsChannel.port1);
      const data: ServingThreadData = {
        thread: t,
        settings: this.settings,
        memory: this.engine.memoryList(),
        statsTable: this.engine.stats.table,
        clock: this.engine.clock.shared(),
        sharedTcp,
        sharedUdp: network.sharedUdpSockets(),
        loopYield,
        tlsSessionPort: sessionChannel?.port2 ?? null,
        rpcPort: port2,
        rpcWord,
        settingsPort: settingsChannel.port2,
        settingsWord: this.settingsWord,
        connectionIds: this.connectionIds,
        watchState,
        tls,
        slotsInTransit: this.slotsInTransit,
        storageLink,
        latencyTable,
      };
      const transferList = [port2, settingsChannel.port2, ...(sessionChannel === null ? [] : [sessionChannel.port2]),
        ...(storageChannel === null ? [] : [storageChannel.port2])];
      const worker = new Worker(entry, { workerData: data, transferList, stdout: false, stderr: false });
      this.workers.push(worker);
      this.ports.push(port1);
      port1.on('message', (m: RpcRequest) => {
        if (m.kind === 'conns') {
          this.remote.set(t, m.list);
          return;
        }
        if (m.kind === 'detail') {
          this.engine.detail.add(m.counts);
          return;
        }
        if (m.kind === 'extstore') {
          if (ext !== null) applyStorageNotice(ext, m.notice);
          return;
        }
        if (m.kind === 'log') {
          for (let i = 0; i + 1 < m.lines.length; i += 2) this.engine.logger.emitForwarded(m.lines[i] as number, m.lines[i + 1] as string);
          return;
        }
        const reply = this.executor.run(Buffer.from(m.request.buffer, m.request.byteOffset, m.request.byteLength), m.pipelined);
        const msg: RpcReply = { seq: m.seq, reply, settings: this.settings, generation: this.generation };
        port1.postMessage(msg);
        Atomics.store(rpcWord, 0, m.seq);
        Atomics.notify(rpcWord, 0);
      });
      port1.unref();
      starts.push(waitForReady(worker, t));
    }
    try {
      await Promise.all(starts);
    } catch (e) {
      await this.stop(false);
      throw e;
    }
    this.workers.forEach((w, i) => {
      // A thread that fails stops the server, as a thread that crashes takes memcached with
      // it: it may have died holding a lock of the shared store, and the others would then
      // wait on it for ever, a server that hangs instead of one its supervisor restarts.
      w.on('error', (err) => this.log(0, `serving thread ${i + 1} failed: ${err.stack ?? err.message}`));
      w.on('exit', (code) => {
        if (this.stopping !== null) return;
        this.log(0, `serving thread ${i + 1} exited (code ${code}): the server stops`);
        process.exit(EX_SOFTWARE);
      });
    });
  }

  /** Thread 0 reloaded its certificates or rotated its ticket keys: every thread takes them. */
  broadcastTls(update: { material?: TlsMaterial; keys?: TicketKeyState }): void {
    const msg: ToServingThread = { type: 'tls', ...update };
    for (const w of this.workers) w.postMessage(msg);
  }

  /**
   * A connection thread 0 accepted goes to worker `thread` (its descriptor, duplicated), with
   * the listener it came in on (NetworkOptions.dealTo).
   */
  sendConnection(thread: number, fd: number, listener: number, listenerId: number): void {
    const msg: ToServingThread = { type: 'adopt', fd, listener, listenerId };
    this.workers[thread - 1].postMessage(msg);
  }

  /** Runtime tuning changed settings: every thread takes the new values. */
  broadcastSettings(): void {
    this.generation++;
    const msg: SettingsUpdate = { settings: this.settings, generation: this.generation };
    for (const p of this.settingsPorts) p.postMessage(msg);
    // After the messages are queued: a worker that sees the new word finds them on its port.
    Atomics.store(this.settingsWord, 0, this.generation);
  }

  /** Stop every worker (graceful: each drains its connections first). */
  stop(graceful: boolean): Promise<void> {
    this.stopping ??= Promise.all(this.workers.map((w) => stopWorker(w, graceful))).then(() => {
      for (const p of [...this.ports, ...this.settingsPorts]) p.close();
      this.remote.clear();
    });
    return this.stopping;
  }
}

function waitForReady(worker: Worker, thread: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serving thread ${thread} did not start within ${THREAD_START_TIMEOUT_MS} ms`)), THREAD_START_TIMEOUT_MS);
    const onMessage = (m: FromServingThread): void => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        worker.off('message', onMessage);
        resolve();
      } else if (m.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`serving thread ${thread}: ${m.message}`));
      }
    };
    worker.on('message', onMessage);
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    worker.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serving thread ${thread} exited with code ${code} while starting`));
    });
  });
}

function stopWorker(worker: Worker, graceful: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => void worker.terminate().then(() => resolve()), THREAD_STOP_TIMEOUT_MS);
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    const msg: ToServingThread = { type: 'stop', graceful };
    try {
      worker.postMessage(msg);
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** The first thread runs forwarded administrative request lines through a session of its own. */
class AdminExecutor {
  private readonly output = new Output(4096);
  private readonly session: TextSession;

  constructor(engine: Engine, hooks: SessionHooks) {
    const conn: ConnectionInfo = {
      id: 0, transport: 'tcp', peerName: 'thread', lastCommandTime: 0, stateName: 'conn_parse_cmd',
    };
    this.session = new TextSession(engine, this.output, conn, hooks);
  }

  /** `pipelined`: the asking connection has replies waiting before this one (see runAdmin). */
  run(request: Buffer, pipelined: boolean): Buffer {
    // The session sees pending output as the asking connection has it: one placeholder byte.
    if (pipelined) this.output.byte(0);
    this.session.feed(request, 0, request.length);
    const out = this.output.detach();
    return Buffer.from(pipelined ? out.subarray(1) : out);
  }
}
