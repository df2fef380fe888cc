/**
 * memtier_benchmark driver: builds its command line for the memcache_text protocol, runs it
 * pinned to the load generator's CPUs, and reads the numbers from its JSON output.
 *
 * JSON fields used (memtier "Format version" 2):
 *   ["ALL STATS"]["Totals"]["Ops/sec" | "Count" | "Connection Errors"]
 *   ["ALL STATS"]["Totals"]["Percentile Latencies"]["p50.00" | "p99.00" | "p99.90"]   (ms)
 *   ["ALL STATS"]["Gets"]["Hits/sec" | "Misses/sec"]         (keys, so multiget counts each)
 *   ["ALL STATS"]["Runtime"]["Total duration"]               (ms)
 * Totals' "Average Latency" is not trusted (it reads 0.0 in some builds); the average is
 * recomputed from Sets and Gets.
 */
import * as fs from 'node:fs';
import { LOOPBACK } from './client';
import type { LoadResult } from './load';
import { runLogged, tail } from './procs';

export interface MemtierRun {
  path: string;
  port: number;
  threads: number;
  clients: number;
  /** Workload flags: ratio, data size, key range and pattern, pipeline, length. */
  args: string[];
  jsonFile: string;
  logFile: string;
  timeoutMs: number;
  /** Stop the run if its progress counter has not moved for this long. */
  stallMs: number;
  tasksetPath: string | null;
  cpus: string | null;
}

export function memtierVersion(output: string | null): string {
  const m = output === null ? null : /memtier_benchmark\s+(\S+)/.exec(output);
  return m === null ? 'unknown' : m[1].replace(/^v=/, '');
}

export function memtierArgs(run: MemtierRun): string[] {
  return [
    '-s', LOOPBACK,
    '-p', String(run.port),
    '-P', 'memcache_text',
    '-t', String(run.threads),
    '-c', String(run.clients),
    '--hide-histogram',
    '--print-percentiles=50,99,99.9',
    `--json-out-file=${run.jsonFile}`,
    ...run.args,
  ];
}

export async function runMemtier(run: MemtierRun): Promise<LoadResult> {
  fs.rmSync(run.jsonFile, { force: true });
  const args = memtierArgs(run);
  const pinned = run.cpus !== null && run.tasksetPath !== null;
  const watch = stallWatch(run.logFile, run.stallMs);
  const outcome = pinned
    ? await runLogged(run.tasksetPath as string, ['-c', run.cpus as string, run.path, ...args], run.logFile, run.timeoutMs, watch)
    : await runLogged(run.path, args, run.logFile, run.timeoutMs, watch);
  if (outcome.problem !== null) throw new Error(`memtier_benchmark stopped: ${outcome.problem}; log ${run.logFile}`);
  if (outcome.timedOut) throw new Error(`memtier_benchmark ran past ${run.timeoutMs} ms and was stopped; log ${run.logFile}`);
  if (outcome.code !== 0) {
    throw new Error(`memtier_benchmark exited with ${outcome.code ?? outcome.signal}; log ${run.logFile}:\n${tail(run.logFile, 800)}`);
  }
  if (!fs.existsSync(run.jsonFile)) throw new Error(`memtier_benchmark wrote no JSON (${run.jsonFile})`);
  return parseMemtierJson(fs.readFileSync(run.jsonFile, 'utf8'), outcome.elapsedMs / 1000);
}

const logTailBytes = 4096;

/**
 * memtier prints "error: response parsing failed." when a reply is not what it expects (a
 * SERVER_ERROR to a set, a protocol bug) and then waits forever on that connection; and it
 * prints a progress line ("... 974628 ops, ...") every second. Stop it on the first, or when
 * the op count has not moved for `stallMs`.
 */
function stallWatch(logFile: string, stallMs: number): () => string | null {
  let lastOps = -1;
  let lastChangeMs = Date.now();
  return () => {
    let text: string;
    try {
      const fd = fs.openSync(logFile, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        const start = Math.max(0, size - logTailBytes);
        const buf = Buffer.alloc(size - start);
        fs.readSync(fd, buf, 0, buf.length, start);
        text = buf.toString('latin1');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return null;
    }
    if (text.includes('response parsing failed')) return 'it could not parse a reply from the server ("response parsing failed")';
    const counts = [...text.matchAll(/(\d+) ops,/g)];
    if (counts.length === 0) return null;
    const ops = Number(counts[counts.length - 1][1]);
    const now = Date.now();
    if (ops !== lastOps) {
      lastOps = ops;
      lastChangeMs = now;
      return null;
    }
    return now - lastChangeMs > stallMs ? `no progress for ${Math.round(stallMs / 1000)} s (stuck at ${ops} ops)` : null;
  };
}

type Json = Record<string, unknown>;

function obj(v: unknown, what: string): Json {
  if (v === null || typeof v !== 'object') throw new Error(`memtier JSON: missing ${what}`);
  return v as Json;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** `wallSeconds`: how long memtier ran, for when its own duration is unusable (see below). */
export function parseMemtierJson(text: string, wallSeconds: number): LoadResult {
  // Some memtier builds print nan/inf, which JSON does not have.
  const clean = text.replace(/:\s*-?(nan|inf)\b/gi, ': null');
  const all = obj(obj(JSON.parse(clean), 'root')['ALL STATS'], 'ALL STATS');
  const totals = obj(all.Totals, 'Totals');
  const gets = obj(all.Gets, 'Gets');
  const sets = obj(all.Sets, 'Sets');
  const runtime = obj(all.Runtime, 'Runtime');
  const pct = obj(totals['Percentile Latencies'], 'Totals.Percentile Latencies');

  let opsPerSec = num(totals['Ops/sec']) ?? 0;
  const requests = num(totals.Count) ?? 0;
  const durationMs = num(runtime['Total duration']) ?? 0;
  let warning: string | null = null;
  // Runs shorter than a second (smoke runs) can come back with a negative duration and 0 ops/s.
  if (opsPerSec <= 0 && requests > 0) {
    opsPerSec = durationMs > 0 ? (requests * 1000) / durationMs : requests / Math.max(wallSeconds, 0.001);
    warning = `memtier reported ${String(totals['Ops/sec'])} ops/s over ${durationMs} ms for ${requests} requests; ops/s computed ${durationMs > 0 ? 'from its count and duration' : 'from wall time, start-up included'}`;
  }
  const hits = num(gets['Hits/sec']) ?? 0;
  const misses = num(gets['Misses/sec']) ?? 0;
  const getCount = num(gets.Count) ?? 0;
  const setCount = num(sets.Count) ?? 0;
  const avg = (c: number, v: unknown): number => c * (num(v) ?? 0);
  const avgMs = getCount + setCount > 0 ? (avg(getCount, gets['Average Latency']) + avg(setCount, sets['Average Latency'])) / (getCount + setCount) : null;
  const maxMs = Math.max(num(gets['Max Latency']) ?? 0, num(sets['Max Latency']) ?? 0);

  return {
    opsPerSec,
    requests,
    seconds: durationMs / 1000,
    p50Ms: num(pct['p50.00']),
    p99Ms: num(pct['p99.00']),
    p999Ms: num(pct['p99.90']),
    avgMs,
    maxMs: maxMs > 0 ? maxMs : null,
    percentileSource: 'hdr',
    hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
    connectionErrors: num(totals['Connection Errors']) ?? 0,
    warning,
  };
}
