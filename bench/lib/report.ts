/**
 * The results of one bench run (written as results.json) and their Markdown rendering.
 *
 * Not for: running anything. The chart lives in chart.ts.
 */
import type { LoadGenerator } from './load';
import type { Role } from './servers';
import { median, type Metrics, type RunRecord, type WorkloadSummary } from './summary';
import type { Plan } from './workloads';

export interface WorkloadReport {
  name: string;
  label: string;
  description: string;
  focus: 'throughput' | 'hit-ratio' | 'capacity';
  params: Record<string, number | string>;
  /** Why this workload was not run with this load generator, or null. */
  skipped: string | null;
  runs: RunRecord[];
  summary: WorkloadSummary | null;
}

export interface Report {
  schema: 1;
  kind: 'full' | 'smoke';
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  commit: { id: string | null; dirty: boolean | null };
  machine: { cores: number; availableParallelism: number; cpuModel: string; kernel: string; arch: string };
  node: string;
  servers: Record<Role, { label: string; command: string[]; version: string | null }>;
  loadGenerator: LoadGenerator & { threads: number; clientsPerThread: number };
  settings: {
    memoryMiB: number;
    threads: number;
    rounds: number;
    durationSec: number;
    /** Unmeasured seconds of the same load before each timed run (absent in older reports: 0). */
    warmupSec?: number;
    /** CPU lists given to taskset, or null when unpinned. */
    pinning: { server: string; load: string } | null;
    workloads: string[];
    /** ours' dist/ older than its src/ (measured code may not be the current source). */
    oursBuildStale: boolean | null;
    /** The load went over TLS (--tls); absent in older results. */
    tls?: boolean;
  };
  plan: Plan;
  workloads: WorkloadReport[];
  failures: { workload: string; round: number; role: Role; error: string }[];
  notes: string[];
}

const dash = '–';

export function fmtOps(v: number | null): string {
  return v === null ? dash : Math.round(v).toLocaleString('en-US');
}

export function fmtMs(v: number | null, approx = false): string {
  if (v === null) return dash;
  const s = v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
  return approx ? `≤${s}` : s;
}

export function fmtUs(v: number | null): string {
  return v === null ? dash : v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

export function fmtPct(v: number | null): string {
  return v === null ? dash : `${(v * 100).toFixed(1)}%`;
}

export function fmtRatio(v: number | null): string {
  return v === null ? dash : `${v.toFixed(2)}x`;
}

export function fmtInt(v: number | null): string {
  return v === null ? dash : Math.round(v).toLocaleString('en-US');
}

function shortCommit(r: Report): string {
  if (r.commit.id === null) return 'unknown commit';
  return `\`${r.commit.id.slice(0, 10)}\`${r.commit.dirty === true ? ' (with uncommitted changes)' : ''}`;
}

export function headline(r: Report): string {
  const pin = r.settings.pinning === null ? 'unpinned' : `server on CPU ${r.settings.pinning.server}, load generator on CPU ${r.settings.pinning.load}`;
  const lg = r.loadGenerator;
  return [
    `commit ${shortCommit(r)}`,
    `${r.machine.cores} cores (${r.machine.cpuModel})`,
    `Node ${r.node}`,
    `${r.servers.ours.label} ${r.servers.ours.version ?? '?'} vs ${r.servers.memcached.label} ${r.servers.memcached.version ?? '?'}`,
    `load: ${lg.name} ${lg.version} (${lg.threads} thread x ${lg.clientsPerThread} connections)`,
    `-m ${r.settings.memoryMiB} -t ${r.settings.threads}${r.settings.tls === true ? ' -Z (load over TLS, same certificate for both)' : ''}`,
    pin,
    `${r.settings.rounds} alternating round${r.settings.rounds === 1 ? '' : 's'}`,
    r.kind === 'smoke' ? 'SMOKE RUN (tiny request counts: the numbers mean nothing)'
      : `${r.settings.durationSec} s per timed run` +
        ((r.settings.warmupSec ?? 0) > 0 ? `, after ${r.settings.warmupSec} s of the same load unmeasured` : ', no warm-up'),
  ].join(' · ');
}

function row(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

export function renderMarkdown(r: Report): string {
  const out: string[] = [];
  out.push(`# ${r.servers.ours.label} vs ${r.servers.memcached.label}: ${r.startedAt.slice(0, 10)}`);
  out.push('');
  out.push(headline(r));
  out.push('');
  out.push("Medians over rounds. **ratio** = ours / memcached, the median of the per-round ratios (each round runs both servers back to back): higher is better for ops/s, hit ratio and items held; lower is better for latency, CPU and memory. Server CPU µs/op: the server process's CPU time over the measured phase divided by the requests in it.");
  const approx = r.workloads.some((w) => w.summary?.percentileSource === 'log2-bucket-upper-bound');
  if (approx) {
    out.push('');
    out.push('Latency percentiles marked ≤ are upper edges of memcaslap\'s power-of-two histogram buckets: memcaslap reports no exact percentiles.');
  }
  out.push('');

  const ran = r.workloads.filter((w) => w.skipped === null && w.summary !== null);
  const throughput = ran.filter((w) => w.focus !== 'capacity');
  if (throughput.length > 0) {
    out.push('## Throughput, latency, hit ratio');
    out.push('');
    out.push(row(['workload', 'server', 'ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'hit ratio', 'server CPU µs/op']));
    out.push(row(['---', '---', '--:', '--:', '--:', '--:', '--:', '--:']));
    for (const w of throughput) {
      const s = w.summary as WorkloadSummary;
      const ap = s.percentileSource === 'log2-bucket-upper-bound';
      const line = (name: string, m: Metrics, first: boolean): string =>
        row([first ? `**${w.label}**` : '', name, fmtOps(m.opsPerSec), fmtMs(m.p50Ms, ap), fmtMs(m.p99Ms, ap), fmtMs(m.p999Ms, ap), fmtPct(m.hitRatio), fmtUs(m.serverCpuUsPerOp)]);
      out.push(line(r.servers.ours.label, s.medians.ours, true));
      out.push(line(r.servers.memcached.label, s.medians.memcached, false));
      const q = s.ratios;
      out.push(row(['', `**ratio** (${s.roundsCompared} round${s.roundsCompared === 1 ? '' : 's'})`, `**${fmtRatio(q.opsPerSec)}**`, fmtRatio(q.p50Ms), fmtRatio(q.p99Ms), fmtRatio(q.p999Ms), fmtRatio(q.hitRatio), fmtRatio(q.serverCpuUsPerOp)]));
    }
    out.push('');
    const spread = throughput.map((w) => perRoundLine(w.label, (w.summary as WorkloadSummary).perRound))
      .filter((l): l is string => l !== null);
    if (spread.length > 0) {
      out.push('Each round\'s ratio, in round order (ops/s; p99):');
      out.push('');
      out.push(...spread);
      out.push('');
    }
  }

  const capacity = ran.filter((w) => w.focus === 'capacity' || w.focus === 'hit-ratio');
  if (capacity.length > 0) {
    out.push('## Memory: items held and resident memory at the end of each run');
    out.push('');
    out.push(row(['workload', 'server', 'items held (curr_items)', 'VmRSS MiB', 'RSS bytes per item', 'evictions', 'sets refused']));
    out.push(row(['---', '---', '--:', '--:', '--:', '--:', '--:']));
    for (const w of capacity) {
      const s = w.summary as WorkloadSummary;
      const ok = (role: Role): RunRecord[] => w.runs.filter((x) => x.role === role && x.error === null);
      const ev = (role: Role): number | null => median(ok(role).map((x) => x.server?.evictions ?? null));
      const refused = (role: Role): number | null => median(ok(role).map((x) => x.fill?.failed ?? null));
      const perItem = (m: Metrics): number | null => (m.rssMiB !== null && m.currItems !== null && m.currItems > 0 ? (m.rssMiB * 1048576) / m.currItems : null);
      out.push(row([`**${w.label}**`, r.servers.ours.label, fmtInt(s.medians.ours.currItems), fmtMs(s.medians.ours.rssMiB), fmtInt(perItem(s.medians.ours)), fmtInt(ev('ours')), fmtInt(refused('ours'))]));
      out.push(row(['', r.servers.memcached.label, fmtInt(s.medians.memcached.currItems), fmtMs(s.medians.memcached.rssMiB), fmtInt(perItem(s.medians.memcached)), fmtInt(ev('memcached')), fmtInt(refused('memcached'))]));
      out.push(row(['', '**ratio**', `**${fmtRatio(s.ratios.currItems)}**`, `**${fmtRatio(s.ratios.rssMiB)}**`, '', '', '']));
    }
    out.push('');
  }

  out.push('## Workloads');
  out.push('');
  for (const w of r.workloads) {
    const params = Object.entries(w.params).map(([k, v]) => `${k}=${v}`).join(', ');
    out.push(`- **${w.label}** (\`${w.name}\`): ${w.description}. ${params}.${w.skipped !== null ? ` **Skipped:** ${w.skipped}.` : ''}`);
  }
  out.push('');
  if (r.failures.length > 0) {
    out.push('## Failures');
    out.push('');
    for (const f of r.failures) out.push(`- ${f.workload} round ${f.round} ${f.role}: ${f.error.split('\n')[0]}`);
    out.push('');
  }
  if (r.notes.length > 0) {
    out.push('## Notes');
    out.push('');
    for (const n of r.notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}

/** One workload's per-round ratios as a list item; null with fewer than two rounds. */
export function perRoundLine(label: string, perRound: Metrics[]): string | null {
  if (perRound.length < 2) return null;
  const list = (m: 'opsPerSec' | 'p99Ms'): string => perRound.map((q) => fmtRatio(q[m])).join(', ');
  return `- ${label}: ${list('opsPerSec')}; p99 ${list('p99Ms')}`;
}
