/**
 * memcaslap (libmemcached-tools' memaslap) driver, the fallback load generator.
 *
 * What it can and cannot do, compared with memtier_benchmark:
 *   - set:get proportions, fixed value size and multiget (-d) through a config file (-F);
 *   - gets only ask for keys it has set itself, so no prefill is needed (or possible);
 *   - no pipelining and no key distribution choice (keys are its own random window);
 *   - latency: min, max, average and a power-of-two histogram in microseconds, so the
 *     percentiles reported here are bucket upper edges, marked as such;
 *   - TPS counts keys: a 10-key multiget counts 10.
 *
 * Output parsed (final summary, printed when -S is given):
 *   "Total Statistics (N events)" / "Min: 12" / "Max: 745" / "Avg: 36" /
 *   "Log2 Dist:" rows "  4:  148  2733  1689  418" (bucket i holds [2^(i-1), 2^i) µs)
 *   "cmd_get: N", "get_misses: N", "Run time: 3.0s Ops: 323580 TPS: 107850 ..."
 */
import * as fs from 'node:fs';
import { LOOPBACK } from './client';
import { bucketPercentile, type LoadResult } from './load';
import { runLogged, tail } from './procs';

export interface MemcaslapWorkload {
  valueBytes: number;
  /** Share of sets among commands, 0..1. */
  setShare: number;
  /** Keys per multiget (1 = plain get). */
  multiget: number;
  /** Keys in each connection's window (bounds the key set); memcaslap takes whole thousands. */
  windowKeys: number;
}

export interface MemcaslapRun {
  path: string;
  port: number;
  threads: number;
  clients: number;
  workload: MemcaslapWorkload;
  /** Either a duration in seconds or a total operation count. */
  seconds: number | null;
  operations: number | null;
  configFile: string;
  logFile: string;
  timeoutMs: number;
  tasksetPath: string | null;
  cpus: string | null;
}

/** memcaslap's -F file: key sizes, value sizes, command proportions (0 = set, 1 = get). */
export function memcaslapConfig(w: MemcaslapWorkload): string {
  const set = w.setShare.toFixed(4);
  const get = (1 - w.setShare).toFixed(4);
  return ['key', '16 16 1', 'value', `${w.valueBytes} ${w.valueBytes} 1`, 'cmd', `0 ${set}`, `1 ${get}`, ''].join('\n');
}

export function memcaslapArgs(run: MemcaslapRun): string[] {
  const args = [
    '-s', `${LOOPBACK}:${run.port}`,
    '-T', String(run.threads),
    '-c', String(run.clients),
    '-F', run.configFile,
    '-w', `${Math.max(1, Math.round(run.workload.windowKeys / 1000))}k`,
    '-d', String(run.workload.multiget),
  ];
  if (run.seconds !== null) {
    args.push('-t', `${run.seconds}s`, '-S', `${run.seconds}s`);
  } else {
    // -S longer than the run: only the final summary (with the histogram) is printed.
    args.push('-x', String(run.operations ?? 10_000), '-S', '3600s');
  }
  return args;
}

export async function runMemcaslap(run: MemcaslapRun): Promise<LoadResult> {
  fs.writeFileSync(run.configFile, memcaslapConfig(run.workload));
  fs.rmSync(run.logFile, { force: true });
  const args = memcaslapArgs(run);
  const pinned = run.cpus !== null && run.tasksetPath !== null;
  const outcome = pinned
    ? await runLogged(run.tasksetPath as string, ['-c', run.cpus as string, run.path, ...args], run.logFile, run.timeoutMs)
    : await runLogged(run.path, args, run.logFile, run.timeoutMs);
  if (outcome.timedOut) throw new Error(`memcaslap ran past ${run.timeoutMs} ms and was stopped; log ${run.logFile}`);
  if (outcome.code !== 0) {
    throw new Error(`memcaslap exited with ${outcome.code ?? outcome.signal}; log ${run.logFile}:\n${tail(run.logFile, 800)}`);
  }
  return parseMemcaslapOutput(fs.readFileSync(run.logFile, 'utf8'));
}

export function parseMemcaslapOutput(text: string): LoadResult {
  const final = /Run time:\s*([\d.]+)s\s+Ops:\s*(\d+)\s+TPS:\s*(\d+)/.exec(text);
  if (final === null) throw new Error('memcaslap: no "Run time: ... Ops: ... TPS: ..." line in its output');
  const field = (name: string): number | null => {
    const m = new RegExp(`^\\s*${name}:\\s*(\\d+)\\s*$`, 'm').exec(text);
    return m === null ? null : Number(m[1]);
  };
  const cmdGet = field('cmd_get');
  const getMisses = field('get_misses');

  let p50Ms: number | null = null;
  let p99Ms: number | null = null;
  let p999Ms: number | null = null;
  let avgMs: number | null = null;
  let maxMs: number | null = null;
  let source: LoadResult['percentileSource'] = 'none';
  const at = text.lastIndexOf('Total Statistics (');
  if (at >= 0) {
    const block = text.slice(at).split('\n');
    const stat = (name: string): number | null => {
      const line = block.find((l) => l.trim().startsWith(`${name}:`));
      if (line === undefined) return null;
      const v = Number.parseFloat(line.trim().slice(name.length + 1));
      return Number.isFinite(v) ? v : null;
    };
    const maxUs = stat('Max');
    const avgUs = stat('Avg');
    maxMs = maxUs === null ? null : maxUs / 1000;
    avgMs = avgUs === null ? null : avgUs / 1000;
    const distAt = block.findIndex((l) => l.includes('Log2 Dist:'));
    if (distAt >= 0) {
      const buckets: { upper: number; count: number }[] = [];
      for (let i = distAt + 1; i < block.length; i++) {
        const m = /^\s*(\d+):((?:\s+\d+)+)\s*$/.exec(block[i]);
        if (m === null) break;
        let index = Number(m[1]);
        for (const c of m[2].trim().split(/\s+/)) {
          buckets.push({ upper: 2 ** index, count: Number(c) });
          index++;
        }
      }
      // A bucket's upper edge, but never above the largest latency actually seen.
      const edge = (q: number): number | null => {
        const us = bucketPercentile(buckets, q);
        if (us === null) return null;
        return (maxUs !== null ? Math.min(us, maxUs) : us) / 1000;
      };
      if (buckets.length > 0) {
        p50Ms = edge(0.5);
        p99Ms = edge(0.99);
        p999Ms = edge(0.999);
        source = 'log2-bucket-upper-bound';
      }
    }
  }
  return {
    opsPerSec: Number(final[3]),
    requests: Number(final[2]),
    seconds: Number(final[1]),
    p50Ms,
    p99Ms,
    p999Ms,
    avgMs,
    maxMs,
    percentileSource: source,
    hitRatio: cmdGet !== null && cmdGet > 0 && getMisses !== null ? (cmdGet - getMisses) / cmdGet : null,
    connectionErrors: 0,
    warning: null,
  };
}
