/**
 * Run records and their summary: per workload and server, the median of each metric over
 * rounds; per workload, the median over rounds of the per-round ratio ours / memcached
 * (runs of one round are adjacent in time, so their ratio cancels slow drift of the machine).
 */
import type { FillResult } from './client';
import type { CpuUse } from './cpu';
import type { LoadResult, PercentileSource } from './load';
import type { Role } from './servers';

export interface ServerSample {
  version: string;
  pid: number;
  port: number;
  cpusAllowed: string | null;
  currItems: number | null;
  totalItems: number | null;
  evictions: number | null;
  /** Get hits and misses during the measured phase (stats before and after). */
  getHits: number | null;
  getMisses: number | null;
  hitRatio: number | null;
  /** `bytes` stat: memory the items take, by the server's own account. */
  itemBytes: number | null;
  rssKiB: number | null;
  hwmKiB: number | null;
}

export interface RunRecord {
  workload: string;
  round: number;
  role: Role;
  label: string;
  startedAt: string;
  wallSeconds: number;
  setup: { what: string; seconds: number }[];
  load: LoadResult | null;
  fill: FillResult | null;
  server: ServerSample | null;
  /** CPU use over the measured phase (server, and everything else on the machine). */
  cpu: CpuUse | null;
  error: string | null;
}

export const METRICS = ['opsPerSec', 'p50Ms', 'p99Ms', 'p999Ms', 'hitRatio', 'currItems', 'rssMiB', 'serverCpuUsPerOp', 'otherCpuCores'] as const;
export type MetricName = (typeof METRICS)[number];
export type Metrics = Record<MetricName, number | null>;

export interface WorkloadSummary {
  medians: Record<Role, Metrics>;
  /** Median over rounds of ours / memcached, per metric. */
  ratios: Metrics;
  /** Ours / memcached in each round compared, in round order (the spread behind `ratios`). */
  perRound: Metrics[];
  roundsCompared: number;
  percentileSource: PercentileSource | null;
}

export function metricsOf(r: RunRecord): Metrics {
  const load = r.load;
  return {
    opsPerSec: load?.opsPerSec ?? (r.fill !== null && r.fill.seconds > 0 ? r.fill.sets / r.fill.seconds : null),
    p50Ms: load?.p50Ms ?? null,
    p99Ms: load?.p99Ms ?? null,
    p999Ms: load?.p999Ms ?? null,
    hitRatio: load?.hitRatio ?? r.server?.hitRatio ?? null,
    currItems: r.server?.currItems ?? null,
    rssMiB: r.server?.rssKiB != null ? r.server.rssKiB / 1024 : null,
    serverCpuUsPerOp: serverCpuUsPerOp(r),
    otherCpuCores: r.cpu?.otherSeconds != null && r.cpu.wallSeconds > 0 ? r.cpu.otherSeconds / r.cpu.wallSeconds : null,
  };
}

/** Server CPU microseconds per request (memtier: per command; memcaslap and the filler: per key). */
function serverCpuUsPerOp(r: RunRecord): number | null {
  const requests = r.load?.requests ?? r.fill?.sets ?? null;
  const cpu = r.cpu?.serverSeconds ?? null;
  return requests === null || requests <= 0 || cpu === null ? null : (cpu * 1e6) / requests;
}

export function median(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function emptyMetrics(): Metrics {
  return { opsPerSec: null, p50Ms: null, p99Ms: null, p999Ms: null, hitRatio: null, currItems: null, rssMiB: null, serverCpuUsPerOp: null, otherCpuCores: null };
}

export function summarize(records: RunRecord[]): WorkloadSummary {
  const ok = records.filter((r) => r.error === null);
  const medians = { ours: emptyMetrics(), memcached: emptyMetrics() } as Record<Role, Metrics>;
  for (const role of ['ours', 'memcached'] as const) {
    const mine = ok.filter((r) => r.role === role).map(metricsOf);
    for (const m of METRICS) medians[role][m] = median(mine.map((x) => x[m]));
  }
  const ratios = emptyMetrics();
  const rounds = [...new Set(ok.map((r) => r.round))];
  const perRound: Metrics[] = [];
  for (const round of rounds) {
    const a = ok.find((r) => r.round === round && r.role === 'ours');
    const b = ok.find((r) => r.round === round && r.role === 'memcached');
    if (a === undefined || b === undefined) continue;
    const ma = metricsOf(a);
    const mb = metricsOf(b);
    const q = emptyMetrics();
    for (const m of METRICS) {
      const x = ma[m];
      const y = mb[m];
      q[m] = x !== null && y !== null && y > 0 ? x / y : null;
    }
    perRound.push(q);
  }
  for (const m of METRICS) ratios[m] = median(perRound.map((q) => q[m]));
  const source = ok.find((r) => r.load !== null)?.load?.percentileSource ?? null;
  return { medians, ratios, perRound, roundsCompared: perRound.length, percentileSource: source };
}
