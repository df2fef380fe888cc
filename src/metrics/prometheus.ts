/**
 * The Prometheus endpoint (-o metrics_listen=[<host>:]<port>, GET /metrics).
 *
 * What it is for: the metrics prometheus/memcached_exporter publishes, with the same names,
 * labels and types (so dashboards built for it work unchanged), computed at scrape time from
 * the same renderers as `stats`, `stats settings`, `stats items` and `stats slabs`
 * (src/engine/stats.ts); plus what only the server itself can know: per-command service-time
 * histograms (src/metrics/latency.ts), the get hit ratio, and Node's process and runtime
 * metrics (prom-client's defaults, prefixed memcached_ like the exporter's process collector).
 * What it is not for: counting anything itself; pushing; authentication (bind it to a private
 * address).
 *
 * The exporter's mapping, kept here as tables (name, help, type, stat): see the exporter's
 * pkg/exporter/exporter.go. Where the exporter derives a value, so does this module:
 * commands_total{command="set",status="hit"} is cmd_set minus every cas outcome, since
 * memcached counts cas commands in cmd_set too; per slab, cmd_set minus cas_hits and
 * cas_badval.
 */
import * as http from 'node:http';
import type * as net from 'node:net';
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import {
  generalStats, itemsStats, settingsStats, slabsStats, type StatsContext,
} from '../engine/stats';
import { COMMANDS, Op } from '../protocol/commands';
import type { ServerCounters } from './stats';
import type { MetricsListen } from '../settings';
import { commandLatency, LATENCY_BUCKETS_SECONDS } from './latency';

type MetricType = 'counter' | 'gauge' | 'histogram';
type Labels = Record<string, string>;

interface Sample {
  value: number;
  labels: Labels;
  /** Histogram series: name_bucket, name_sum, name_count. */
  metricName?: string;
}

/** `stats` groups as name → value, read once per scrape. */
interface Snapshot {
  general: Map<string, string>;
  settings: Map<string, string>;
  /** stats items, by slab class: `items:<class>:<name>`. */
  items: Map<string, Map<string, string>>;
  /** stats slabs, by slab class: `<class>:<name>`; `total_malloced` and such under "". */
  slabs: Map<string, Map<string, string>>;
  /** Each thread's counters (ServerStats rows), thread 0 first. */
  threads: ServerCounters[];
}

function takeSnapshot(ctx: StatsContext): Snapshot {
  const general = new Map<string, string>();
  const settings = new Map<string, string>();
  const items = new Map<string, Map<string, string>>();
  const slabs = new Map<string, Map<string, string>>();
  generalStats(ctx, (name, value) => void general.set(name, String(value)));
  settingsStats(ctx, (name, value) => void settings.set(name, String(value)));
  const bySlab = (into: Map<string, Map<string, string>>, slab: string, name: string, value: string): void => {
    let m = into.get(slab);
    if (m === undefined) into.set(slab, (m = new Map()));
    m.set(name, value);
  };
  itemsStats(ctx, (name, value) => {
    const [, slab, stat] = name.split(':');
    bySlab(items, slab, stat, String(value));
  });
  slabsStats(ctx, (name, value) => {
    const colon = name.indexOf(':');
    if (colon < 0) bySlab(slabs, '', name, String(value));
    else bySlab(slabs, name.slice(0, colon), name.slice(colon + 1), String(value));
  });
  const stats = ctx.engine.stats;
  const threads = Array.from({ length: stats.table.threads }, (_, t) => stats.rowOf(t));
  return { general, settings, items, slabs, threads };
}

function num(map: Map<string, string> | undefined, key: string): number | null {
  const text = map?.get(key);
  if (text === undefined) return null;
  const v = Number(text);
  return Number.isFinite(v) ? v : null;
}

/** A metric whose samples come from the scrape's snapshot (prom-client's metric contract). */
class SnapshotMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    private readonly snapshot: () => Snapshot,
    private readonly collect: (snap: Snapshot) => Sample[],
  ) {}

  async get(): Promise<{ name: string; help: string; type: MetricType; aggregator: string; values: Sample[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.collect(this.snapshot()) };
  }

  reset(): void {
    // Values live in the server's counters; `stats reset` resets them.
  }
}

// --- the exporter's tables

/** [metric name without memcached_, help, type, stat name] from `stats`. */
const GENERAL: ReadonlyArray<[string, string, MetricType, string]> = [
  ['uptime_seconds', 'Number of seconds since the server started.', 'counter', 'uptime'],
  ['time_seconds', 'current UNIX time according to the server.', 'gauge', 'time'],
  ['process_user_cpu_seconds_total', 'Accumulated user time for this process.', 'counter', 'rusage_user'],
  ['process_system_cpu_seconds_total', 'Accumulated system time for this process.', 'counter', 'rusage_system'],
  ['current_bytes', 'Current number of bytes used to store items.', 'gauge', 'bytes'],
  ['limit_bytes', 'Number of bytes this server is allowed to use for storage.', 'gauge', 'limit_maxbytes'],
  ['current_items', 'Current number of items stored by this instance.', 'gauge', 'curr_items'],
  ['items_total', 'Total number of items stored during the life of this instance.', 'counter', 'total_items'],
  ['read_bytes_total', 'Total number of bytes read by this server from network.', 'counter', 'bytes_read'],
  ['written_bytes_total', 'Total number of bytes sent by this server to network.', 'counter', 'bytes_written'],
  ['current_connections', 'Current number of open connections.', 'gauge', 'curr_connections'],
  ['connections_total', 'Total number of connections opened since the server started running.', 'counter', 'total_connections'],
  ['connections_rejected_total', "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast mode.", 'counter', 'rejected_connections'],
  ['connections_yielded_total', "Total number of connections yielded running due to hitting the memcached's -R limit.", 'counter', 'conn_yields'],
  ['connections_listener_disabled_total', 'Number of times that memcached has hit its connections limit and disabled its listener.', 'counter', 'listen_disabled_num'],
  ['items_evicted_total', 'Total number of valid items removed from cache to free memory for new items.', 'counter', 'evictions'],
  ['items_reclaimed_total', 'Total number of times an entry was stored using memory from an expired entry.', 'counter', 'reclaimed'],
  ['item_too_large_total', 'The number of times an item exceeded the max-item-size when being stored.', 'counter', 'store_too_large'],
  ['item_no_memory_total', 'The number of times an item could not be stored due to no more memory.', 'counter', 'store_no_memory'],
  ['lru_crawler_starts_total', 'Times an LRU crawler was started.', 'counter', 'lru_crawler_starts'],
  ['direct_reclaims_total', 'Times worker threads had to directly reclaim or evict items.', 'counter', 'direct_reclaims'],
  ['lru_crawler_items_checked_total', 'Total items examined by LRU Crawler.', 'counter', 'crawler_items_checked'],
  ['lru_crawler_reclaimed_total', 'Total items freed by LRU Crawler.', 'counter', 'crawler_reclaimed'],
  ['lru_crawler_moves_to_cold_total', "Total number of items moved from HOT/WARM to COLD LRU's.", 'counter', 'moves_to_cold'],
  ['lru_crawler_moves_to_warm_total', 'Total number of items moved from COLD to WARM LRU.', 'counter', 'moves_to_warm'],
  ['lru_crawler_moves_within_lru_total', "Total number of items reshuffled within HOT or WARM LRU's.", 'counter', 'moves_within_lru'],
  ['accepting_connections', 'The Memcached server is currently accepting new connections.', 'gauge', 'accepting_conns'],
];

/** From `stats settings`, published only while the LRU crawler is on (as the exporter does). */
const CRAWLER_SETTINGS: ReadonlyArray<[string, string, string, 'number' | 'bool']> = [
  ['lru_crawler_enabled', 'Whether the LRU crawler is enabled.', 'lru_crawler', 'bool'],
  ['lru_crawler_sleep', 'Microseconds to sleep between LRU crawls.', 'lru_crawler_sleep', 'number'],
  ['lru_crawler_to_crawl', 'Max items to crawl per slab per run.', 'lru_crawler_tocrawl', 'number'],
  ['lru_crawler_maintainer_thread', 'Split LRU mode and background threads.', 'lru_maintainer_thread', 'bool'],
  ['lru_crawler_hot_percent', 'Percent of slab memory reserved for HOT LRU.', 'hot_lru_pct', 'number'],
  ['lru_crawler_warm_percent', 'Percent of slab memory reserved for WARM LRU.', 'warm_lru_pct', 'number'],
  ['lru_crawler_hot_max_factor', 'Set idle age of HOT LRU to COLD age * this', 'hot_max_factor', 'number'],
  ['lru_crawler_warm_max_factor', 'Set idle age of WARM LRU to COLD age * this', 'warm_max_factor', 'number'],
];

/** Per slab class from `stats items`: [name, help, type, stat]. */
const ITEMS: ReadonlyArray<[string, string, MetricType, string]> = [
  ['slab_current_items', 'Number of items currently stored in this slab class.', 'gauge', 'number'],
  ['slab_items_age_seconds', 'Number of seconds the oldest item has been in the slab class.', 'gauge', 'age'],
  ['slab_items_crawler_reclaimed_total', 'Number of items freed by the LRU Crawler.', 'counter', 'crawler_reclaimed'],
  ['slab_items_evicted_total', 'Total number of times an item had to be evicted from the LRU before it expired.', 'counter', 'evicted'],
  ['slab_items_evicted_nonzero_total', 'Total number of times an item which had an explicit expire time set had to be evicted from the LRU before it expired.', 'counter', 'evicted_nonzero'],
  ['slab_items_evicted_time_seconds', 'Seconds since the last access for the most recent item evicted from this class.', 'counter', 'evicted_time'],
  ['slab_items_evicted_unfetched_total', 'Total nmber of items evicted and never fetched.', 'counter', 'evicted_unfetched'],
  ['slab_items_expired_unfetched_total', 'Total number of valid items evicted from the LRU which were never touched after being set.', 'counter', 'expired_unfetched'],
  ['slab_items_outofmemory_total', 'Total number of items for this slab class that have triggered an out of memory error.', 'counter', 'outofmemory'],
  ['slab_items_reclaimed_total', 'Total number of items reclaimed.', 'counter', 'reclaimed'],
  ['slab_items_tailrepairs_total', 'Total number of times the entries for a particular ID need repairing.', 'counter', 'tailrepairs'],
  ['slab_mem_requested_bytes', 'Number of bytes of memory actual items take up within a slab.', 'counter', 'mem_requested'],
  ['slab_items_moves_to_cold', 'Number of items moved from HOT or WARM into COLD.', 'counter', 'moves_to_cold'],
  ['slab_items_moves_to_warm', 'Number of items moves from COLD into WARM.', 'counter', 'moves_to_warm'],
  ['slab_items_moves_within_lru', 'Number of times active items were bumped within HOT or WARM.', 'counter', 'moves_within_lru'],
  ['slab_hot_items', 'Number of items presently stored in the HOT LRU.', 'gauge', 'number_hot'],
  ['slab_warm_items', 'Number of items presently stored in the WARM LRU.', 'gauge', 'number_warm'],
  ['slab_cold_items', 'Number of items presently stored in the COLD LRU.', 'gauge', 'number_cold'],
  ['slab_temporary_items', 'Number of items presently stored in the TEMPORARY LRU.', 'gauge', 'number_temp'],
  ['slab_hot_age_seconds', 'Age of the oldest item in HOT LRU.', 'gauge', 'age_hot'],
  ['slab_warm_age_seconds', 'Age of the oldest item in HOT LRU.', 'gauge', 'age_warm'],
];

/** Per slab class from `stats slabs`. */
const SLABS: ReadonlyArray<[string, string, string]> = [
  ['slab_chunk_size_bytes', 'Number of bytes allocated to each chunk within this slab class.', 'chunk_size'],
  ['slab_chunks_per_page', 'Number of chunks within a single page for this slab class.', 'chunks_per_page'],
  ['slab_current_pages', 'Number of pages allocated to this slab class.', 'total_pages'],
  ['slab_current_chunks', 'Number of chunks allocated to this slab class.', 'total_chunks'],
  ['slab_chunks_used', 'Number of chunks allocated to an item.', 'used_chunks'],
  ['slab_chunks_free', 'Number of chunks not yet allocated items.', 'free_chunks'],
  ['slab_chunks_free_end', 'Number of free chunks at the end of the last allocated page.', 'free_chunks_end'],
];

/** The exporter's commands: hits and misses per command. */
const COMMAND_OUTCOMES = ['get', 'delete', 'incr', 'decr', 'cas', 'touch'] as const;
const LRU_HITS: ReadonlyArray<[string, string]> = [
  ['hits_to_hot', 'hot'], ['hits_to_warm', 'warm'], ['hits_to_cold', 'cold'], ['hits_to_temp', 'temporary'],
];
/** Slab classes in numeric order, as the exporter's output sorts them. */
function slabKeys(m: Map<string, Map<string, string>>): string[] {
  return [...m.keys()].filter((k) => k !== '').sort((a, b) => Number(a) - Number(b));
}

/** Histogram label per protocol Op: the command's first name in the table, meta by its own. */
function commandLabels(): string[] {
  const names: string[] = [];
  for (const spec of COMMANDS) names[spec.op] ??= spec.name;
  names[Op.MetaGet] = 'mg';
  names[Op.MetaSet] = 'ms';
  names[Op.MetaDelete] = 'md';
  names[Op.MetaArithmetic] = 'ma';
  names[Op.MetaNoop] = 'mn';
  names[Op.MetaDebug] = 'me';
  return names;
}

/** Every memcached_* metric, reading `snapshot()` (taken once per scrape). */
function buildMetrics(snapshot: () => Snapshot): SnapshotMetric[] {
  const metrics: SnapshotMetric[] = [];
  const add = (name: string, help: string, type: MetricType, collect: (s: Snapshot) => Sample[]): void => {
    metrics.push(new SnapshotMetric(`memcached_${name}`, help, type, snapshot, collect));
  };
  const one = (value: number | null, labels: Labels = {}): Sample[] => (value === null ? [] : [{ value, labels }]);

  add('up', 'Could the memcached server be reached.', 'gauge', () => one(1));
  add('version', 'The version of this memcached server.', 'gauge', (s) => one(1, { version: s.general.get('version') ?? '' }));
  for (const [name, help, type, stat] of GENERAL) add(name, help, type, (s) => one(num(s.general, stat)));
  add('malloced_bytes', 'Number of bytes of memory allocated to slab pages.', 'gauge', (s) => one(num(s.slabs.get(''), 'total_malloced')));
  add('max_connections', 'Maximum number of clients allowed.', 'gauge', (s) => one(num(s.settings, 'maxconns')));
  add('commands_total', 'Total number of all requests broken down by command (get, set, etc.) and status.', 'counter', (s) => {
    const g = s.general;
    const out: Sample[] = [];
    const push = (stat: string, command: string, status: string): void => {
      const v = num(g, stat);
      if (v !== null) out.push({ value: v, labels: { command, status } });
    };
    for (const op of COMMAND_OUTCOMES) {
      push(`${op}_hits`, op, 'hit');
      push(`${op}_misses`, op, 'miss');
    }
    push('cas_badval', 'cas', 'badval');
    push('cmd_flush', 'flush', 'hit');
    const set = num(g, 'cmd_set');
    const cas = (num(g, 'cas_misses') ?? 0) + (num(g, 'cas_hits') ?? 0) + (num(g, 'cas_badval') ?? 0);
    if (set !== null) out.push({ value: set - cas, labels: { command: 'set', status: 'hit' } });
    return out;
  });
  for (const [name, help, stat, kind] of CRAWLER_SETTINGS) {
    add(name, help, 'gauge', (s) => {
      if (s.settings.get('lru_crawler') !== 'yes') return [];
      if (kind === 'bool') return one(s.settings.get(stat) === 'yes' ? 1 : 0);
      return one(num(s.settings, stat));
    });
  }
  for (const [name, help, type, stat] of ITEMS) {
    add(name, help, type, (s) => slabKeys(s.items).flatMap((slab) => one(num(s.items.get(slab), stat), { slab })));
  }
  add('slab_lru_hits_total', 'Number of get_hits to the LRU.', 'counter', (s) => slabKeys(s.items).flatMap((slab) =>
    LRU_HITS.flatMap(([stat, lru]) => one(num(s.items.get(slab), stat), { slab, lru }))));
  for (const [name, help, stat] of SLABS) {
    add(name, help, 'gauge', (s) => slabKeys(s.slabs).flatMap((slab) => one(num(s.slabs.get(slab), stat), { slab })));
  }
  add('slab_commands_total', 'Total number of all requests broken down by command (get, set, etc.) and status per slab.', 'counter', (s) =>
    slabKeys(s.slabs).flatMap((slab) => {
      const m = s.slabs.get(slab);
      const out: Sample[] = [];
      for (const op of COMMAND_OUTCOMES) out.push(...one(num(m, `${op}_hits`), { slab, command: op, status: 'hit' }));
      out.push(...one(num(m, 'cas_badval'), { slab, command: 'cas', status: 'badval' }));
      const set = num(m, 'cmd_set');
      if (set !== null) {
        out.push({ value: set - (num(m, 'cas_hits') ?? 0) - (num(m, 'cas_badval') ?? 0), labels: { slab, command: 'set', status: 'hit' } });
      }
      return out;
    }));

  // memcached-ts's own: not in memcached_exporter.
  // Per serving thread (-t N), to see how the kernel spread the clients and the load.
  const perThread = (pick: (c: ServerCounters) => number) => (s: Snapshot): Sample[] =>
    s.threads.map((c, t) => ({ value: pick(c), labels: { thread: String(t) } }));
  add('thread_current_connections', 'Open client connections on each serving thread.', 'gauge', perThread((c) => c.curr_connections));
  add('thread_read_bytes_total', 'Bytes read from clients by each serving thread.', 'counter', perThread((c) => c.bytes_read));
  add('thread_written_bytes_total', 'Bytes sent to clients by each serving thread.', 'counter', perThread((c) => c.bytes_written));
  add('thread_commands_total', 'Retrieval, storage, touch, flush and meta commands served by each serving thread.', 'counter', (s) =>
    s.threads.flatMap((c, t) => (['get', 'set', 'touch', 'flush', 'meta'] as const).map((command) =>
      ({ value: c[`cmd_${command}`], labels: { thread: String(t), command } }))));
  add('get_hit_ratio', 'Share of get lookups that found their item since the start (get_hits / (get_hits + get_misses)), 0 before any.', 'gauge', (s) => {
    const hits = num(s.general, 'get_hits') ?? 0;
    const misses = num(s.general, 'get_misses') ?? 0;
    return one(hits + misses === 0 ? 0 : hits / (hits + misses));
  });
  const labels = commandLabels();
  add('command_duration_seconds', 'Time the server spent on each command (parsing, engine, reply; not network or waiting for a value), by command.', 'histogram', () =>
    commandLatency.snapshot().flatMap((h) => {
      const command = labels[h.slot] ?? `op${h.slot}`;
      const out: Sample[] = LATENCY_BUCKETS_SECONDS.map((le, i) => ({
        metricName: 'memcached_command_duration_seconds_bucket', value: h.cumulative[i], labels: { command, le: String(le) },
      }));
      out.push({ metricName: 'memcached_command_duration_seconds_bucket', value: h.count, labels: { command, le: '+Inf' } });
      out.push({ metricName: 'memcached_command_duration_seconds_sum', value: h.sumSeconds, labels: { command } });
      out.push({ metricName: 'memcached_command_duration_seconds_count', value: h.count, labels: { command } });
      return out;
    }));
  return metrics;
}

/** The registry of one server: memcached_* from its stats, plus Node's process metrics. */
export class MetricsRegistry {
  readonly registry = new Registry();
  private current: Snapshot | null = null;

  constructor(private readonly ctx: StatsContext) {
    const snapshot = (): Snapshot => (this.current ??= takeSnapshot(this.ctx));
    for (const m of buildMetrics(snapshot)) this.registry.registerMetric(m as unknown as Metric);
    // memcached_process_* as the exporter's process collector names them, and memcached_nodejs_*.
    collectDefaultMetrics({ register: this.registry, prefix: 'memcached_' });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition; every stats group is rendered once per call. */
  async scrape(): Promise<string> {
    this.current = null;
    try {
      return await this.registry.metrics();
    } finally {
      this.current = null;
    }
  }
}

export interface MetricsEndpoint {
  readonly address: net.AddressInfo;
  close(): Promise<void>;
}

/** Bounds on the endpoint: it serves a scraper or two, never a crowd. */
const ENDPOINT_CONNECTIONS_MAX = 32;
const ENDPOINT_REQUEST_TIMEOUT_MS = 10_000;

const INDEX_PAGE =
  '<html><head><title>memcached-ts metrics</title></head><body>' +
  '<h1>memcached-ts</h1><p><a href="/metrics">Metrics</a></p></body></html>\n';

/**
 * Serve GET /metrics on `listen`; also turns the command latency histograms on. Rejects when
 * the address cannot be bound (a startup error).
 */
export async function startMetricsEndpoint(listen: MetricsListen, ctx: StatsContext): Promise<MetricsEndpoint> {
  const metrics = new MetricsRegistry(ctx);
  const server = http.createServer((req, res) => void serve(metrics, req, res));
  server.maxConnections = ENDPOINT_CONNECTIONS_MAX;
  server.requestTimeout = ENDPOINT_REQUEST_TIMEOUT_MS;
  server.headersTimeout = ENDPOINT_REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listen.host ?? undefined, port: listen.port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  commandLatency.enabled = true;
  return {
    address: server.address() as net.AddressInfo,
    close: () => new Promise<void>((resolve) => {
      commandLatency.enabled = false;
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function serve(metrics: MetricsRegistry, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  if (path === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : INDEX_PAGE);
    return;
  }
  if (path !== '/metrics') {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics\n');
    return;
  }
  try {
    const body = await metrics.scrape();
    res.writeHead(200, { 'Content-Type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : body);
  } catch (error) {
    res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`scrape failed: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}
