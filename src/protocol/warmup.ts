/**
 * JIT warm-up: before a serving thread listens, run the request paths clients will use
 * (text, meta and binary gets, sets, deletes, incr/decr, pipelined and not) through real
 * sessions over a scratch store, so V8 has compiled them (TurboFan, on its background
 * threads) before the first client arrives instead of during the first seconds of its load.
 *
 * Not for: the store clients use. The scratch engine is separate (its own small store, its
 * own counters, no background work, no extstore, no memory file), stopped afterwards and
 * kept (see `kept`), so nothing a client can see (items, CAS values, `stats`) changes.
 *
 * Why: a freshly started server compiles its hot paths while serving, and with the serving
 * thread pinned to a core V8's compiler threads take that core in slices of 0.3-0.9 ms; that
 * window held most of the 99.9th percentile of a restarted server (doc/network.md, "The JIT in
 * the measured window"). The warm-up moves that work before the port answers, bounded by
 * `settings.warmupMs` (`-o warmup_ms`, 0 turns it off).
 */
import type { Settings } from '../settings';
import { Engine } from '../engine/engine';
import type { ServerStats } from '../metrics/stats';
import { commandLatency } from '../metrics/latency';
import { BinarySession } from './binary/session';
import { Output } from './output';
import { FeedStatus, type ConnectionInfo, type ProtocolSession } from './session';
import type { AdminHooks } from './text/admin';
import { TextSession } from './text/session';

/** The scratch store's memory: enough for the warm-up's keys without eviction. */
const SCRATCH_MEMORY_BYTES = 4 * 1024 * 1024;
/** Keys the warm-up cycles over (few: its batches are garbage afterwards, and memory). */
const WARMUP_KEYS = 128;
/** Keys of the 4 KiB values. */
const WARMUP_LARGE_KEYS = 16;
/** Requests per pipelined batch (the bench's and memtier's common pipeline 16). */
const BATCH = 16;
/** Rounds between clock checks (one round: every workload once). */
const ROUNDS_PER_CHECK = 8;

export interface WarmupResult {
  /** Requests run through the sessions. */
  requests: number;
  /** Wall time taken, ms. */
  ms: number;
  /** Why it stopped before its time, if something failed (the server starts anyway). */
  error: string | null;
}

/**
 * Run the warm-up for about `settings.warmupMs` (returns at once when 0). `statsFor` gives a
 * fresh counters table shaped like the real one (same thread count), so the scratch store's
 * locks take the same form as the real store's.
 */
export function warmUp(settings: Settings, statsFor: () => ServerStats): WarmupResult {
  if (settings.warmupMs <= 0) return { requests: 0, ms: 0, error: null };
  const started = performance.now();
  const done = { requests: 0 };
  try {
    // Scratch traffic: not in -o metrics_listen's command-time histograms.
    commandLatency.suspend(() => runWarmup(settings, statsFor, started, done));
    return { requests: done.requests, ms: performance.now() - started, error: null };
  } catch (e) {
    // Only speed is at stake: the server starts either way, and says why it stopped.
    return { requests: done.requests, ms: performance.now() - started, error: e instanceof Error ? e.message : String(e) };
  }
}

/** The log line for a warm-up (level 2: what it ran; level 0: why it stopped early), or null. */
export function warmupLogLine(warm: WarmupResult): { level: number; text: string } | null {
  if (warm.error !== null) return { level: 0, text: `warm-up stopped after ${warm.requests} requests: ${warm.error}` };
  return warm.requests > 0 ? { level: 2, text: `warm-up: ${warm.requests} requests in ${Math.round(warm.ms)} ms` } : null;
}

/**
 * The warm-up's sessions and scratch engine, kept (stopped) for the life of the thread, as
 * NetContext.shapeKeepers keeps closed connections: dropped, their hidden classes went at an
 * idle server's first full GC, and with them the code the warm-up had compiled (doc/network.md,
 * "Warm-up before listening", which also gives the memory this costs).
 */
const kept: Array<Engine | ProtocolSession> = [];

function runWarmup(settings: Settings, statsFor: () => ServerStats, started: number, done: { requests: number }): void {
  const budgetMs = settings.warmupMs;
  const scratch: Settings = {
    ...settings,
    memoryLimitBytes: SCRATCH_MEMORY_BYTES,
    extPaths: [],
    memoryFile: null,
    largePages: false,
    lockMemory: false,
    verbose: 0,
  };
  const engine = new Engine(scratch, statsFor());
  try {
    const conn: ConnectionInfo = { id: 0, transport: 'tcp', peerName: 'tcp:warmup', lastCommandTime: 0, stateName: 'conn_parse_cmd' };
    // Only data commands run here: no stats, no shutdown.
    const hooks: AdminHooks = {
      stats: { engine, startedUnixSeconds: 0, connections: () => [], acceptingConnections: () => false },
      shutdown: () => {},
    };
    const textOut = new Output();
    const binOut = new Output();
    const newText = (): ProtocolSession => new TextSession(engine, textOut, conn, hooks);
    const newBinary = (): ProtocolSession => new BinarySession(engine, binOut, conn, hooks, null);
    const workloads = buildWorkloads();
    const input = Buffer.alloc(Math.max(...workloads.map((w) => Math.max(...w.batches.map((b) => b.length)))));
    /**
     * One batch, fed as a connection feeds it (again after a -R yield). False when the session
     * closed or stopped short: this server's settings refuse that protocol (SASL refuses text).
     */
    const feed = (session: ProtocolSession, out: Output, batch: Buffer): boolean => {
      batch.copy(input, 0);
      let at = 0;
      for (;;) {
        at += session.feed(input, at, batch.length);
        out.reset();
        if (session.status === FeedStatus.Close) return false;
        if (at === batch.length) return true;
        if (session.status !== FeedStatus.Yield) return false;
      }
    };
    let text = newText();
    let binary = newBinary();
    const run = (w: Workload, batch: Buffer): boolean => {
      if (w.binary) {
        if (feed(binary, binOut, batch)) return true;
        binary = newBinary();
      } else {
        if (feed(text, textOut, batch)) return true;
        text = newText();
      }
      w.dead = true;
      return false;
    };
    // The values first, so the gets hit.
    for (const b of workloads[0].batches) run(workloads[0], b);
    let round = 0;
    let live = workloads.length;
    while (live > 0) {
      for (const w of workloads) {
        if (w.dead) continue;
        if (run(w, w.batches[round % w.batches.length])) done.requests += w.requestsPerBatch;
        else live--;
      }
      round++;
      if (round % ROUNDS_PER_CHECK === 0 && performance.now() - started >= budgetMs) break;
    }
    // One warm-up's objects per thread: a later warm-up (tests run several) replaces them.
    kept.splice(0, kept.length, engine, text, binary);
  } finally {
    engine.stop();
  }
}

interface Workload {
  binary: boolean;
  /** The session refused it (closed): not run again. */
  dead: boolean;
  requestsPerBatch: number;
  batches: Buffer[];
}

/** Batches for each request kind: pipelined ones (BATCH requests) and single ones. */
function buildWorkloads(): Workload[] {
  const small = 'w'.repeat(100);
  const large = 'W'.repeat(4096);
  const key = (k: number): string => `warmup:${k % WARMUP_KEYS}`;
  const text = (make: (k: number) => string, per = BATCH, keys = WARMUP_KEYS): Workload => {
    const batches: Buffer[] = [];
    for (let k = 0; k < keys; k += per) {
      let s = '';
      for (let i = 0; i < per; i++) s += make(k + i);
      batches.push(Buffer.from(s, 'latin1'));
    }
    return { binary: false, dead: false, requestsPerBatch: per, batches };
  };
  const binary = (make: (k: number) => Buffer, per = BATCH): Workload => {
    const batches: Buffer[] = [];
    for (let k = 0; k < WARMUP_KEYS; k += per) {
      const parts: Buffer[] = [];
      for (let i = 0; i < per; i++) parts.push(make(k + i));
      batches.push(Buffer.concat(parts));
    }
    return { binary: true, dead: false, requestsPerBatch: per, batches };
  };
  const setExtras = Buffer.alloc(8);
  const incrExtras = Buffer.alloc(20);
  incrExtras.writeUInt32BE(1, 4); // delta 1
  incrExtras.writeUInt32BE(0xffffffff, 16); // no auto-create
  return [
    // First: fills every key (the gets below hit).
    text((k) => `set ${key(k)} 0 0 100\r\n${small}\r\n`), // set
    text((k) => `get ${key(k)}\r\n`), // get
    text((k) => `get ${key(k)}\r\n`, 1), // get, single
    text((k) => `set ${key(k)} 1 0 100\r\n${small}\r\n`, 1), // set, single
    text((k) => `get ${Array.from({ length: 10 }, (_, i) => key(k + i)).join(' ')}\r\n`), // get, 10 keys
    text((k) => `gets ${key(k)}\r\n`), // gets
    text((k) => `get miss:${k}\r\n`), // get, miss
    text((k) => `set big:${k} 0 0 4096\r\n${large}\r\n`, 4, WARMUP_LARGE_KEYS), // set, 4 KiB
    text((k) => `get big:${k}\r\n`, 4, WARMUP_LARGE_KEYS), // get, 4 KiB
    text((k) => `mg ${key(k)} v f t c\r\n`), // mg
    text((k) => `mg miss:${k} v\r\n`), // mg, miss
    text((k) => `ms ${key(k)} 100 T0 F3\r\n${small}\r\n`), // ms
    text((k) => `set n:${k} 0 0 8\r\n10000000\r\n`), // set counter
    text((k) => `incr n:${k} 3\r\n`), // incr
    text((k) => `decr n:${k} 1\r\n`), // decr
    text((k) => `ma n:${k} D2 v\r\n`), // ma
    text((k) => `touch ${key(k)} 0\r\n`), // touch
    text((k) => `delete gone:${k}\r\nmd gone:${k} q\r\nmn\r\n`), // delete, mn
    binary((k) => binaryRequest(0x01, key(k), setExtras, Buffer.from(small))),
    binary((k) => binaryRequest(0x00, key(k), Buffer.alloc(0), Buffer.alloc(0))),
    binary((k) => binaryRequest(0x0c, key(k), Buffer.alloc(0), Buffer.alloc(0))),
    binary((k) => binaryRequest(0x05, `n:${k}`, incrExtras, Buffer.alloc(0))),
    binary(() => binaryRequest(0x0a, '', Buffer.alloc(0), Buffer.alloc(0)), 1),
  ];
}

/** One binary request (magic 0x80), no opaque, no CAS (also the allocation test's). */
export function binaryRequest(opcode: number, key: string, extras: Buffer, body: Buffer): Buffer {
  const k = Buffer.from(key, 'latin1');
  const h = Buffer.alloc(24);
  h[0] = 0x80;
  h[1] = opcode;
  h.writeUInt16BE(k.length, 2);
  h[4] = extras.length;
  h.writeUInt32BE(extras.length + k.length + body.length, 8);
  return Buffer.concat([h, extras, k, body]);
}
