/**
 * The Prometheus endpoint (-o metrics_listen): the text exposition parses; names, types and
 * labels are memcached_exporter's (so its dashboards work); values are the server's stats and
 * move with commands; the per-command latency histograms and the hit ratio are well formed.
 */
import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, LOOPBACK, waitFor } from '../net/harness';
import { startFullServer, type FullServer } from './full-server';

interface Family {
  help: string;
  type: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** Prometheus text format 0.0.4: # HELP, # TYPE, then `name{l="v",...} value` lines. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = { help: '', type: '', samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m !== null) {
      family(m[1]).help = m[2];
      continue;
    }
    m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m !== null) {
      family(m[1]).type = m[2];
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const base = m[1].replace(/_(bucket|sum|count)$/, '');
    const owner = families.has(m[1]) ? m[1] : base;
    // Go's ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client prints "Nan").
    const isNan = /^nan$/i.test(m[3]);
    const value = /^\+?inf$/i.test(m[3]) ? Infinity : isNan ? NaN : Number(m[3]);
    expect(Number.isNaN(value) && !isNan, line).toBe(false);
    family(owner).samples.push({ name: m[1], labels, value });
  }
  return families;
}

/** Metric names and types as prometheus/memcached_exporter publishes them (its metrics.md). */
const EXPORTER_METRICS: Record<string, string> = {
  memcached_up: 'gauge',
  memcached_version: 'gauge',
  memcached_uptime_seconds: 'counter',
  memcached_time_seconds: 'gauge',
  memcached_process_user_cpu_seconds_total: 'counter',
  memcached_process_system_cpu_seconds_total: 'counter',
  memcached_accepting_connections: 'gauge',
  memcached_commands_total: 'counter',
  memcached_connections_listener_disabled_total: 'counter',
  memcached_connections_total: 'counter',
  memcached_connections_rejected_total: 'counter',
  memcached_connections_yielded_total: 'counter',
  memcached_current_bytes: 'gauge',
  memcached_current_connections: 'gauge',
  memcached_current_items: 'gauge',
  memcached_direct_reclaims_total: 'counter',
  memcached_items_evicted_total: 'counter',
  memcached_items_reclaimed_total: 'counter',
  memcached_items_total: 'counter',
  memcached_item_too_large_total: 'counter',
  memcached_item_no_memory_total: 'counter',
  memcached_limit_bytes: 'gauge',
  memcached_lru_crawler_enabled: 'gauge',
  memcached_lru_crawler_hot_max_factor: 'gauge',
  memcached_lru_crawler_hot_percent: 'gauge',
  memcached_lru_crawler_items_checked_total: 'counter',
  memcached_lru_crawler_maintainer_thread: 'gauge',
  memcached_lru_crawler_moves_to_cold_total: 'counter',
  memcached_lru_crawler_moves_to_warm_total: 'counter',
  memcached_lru_crawler_moves_within_lru_total: 'counter',
  memcached_lru_crawler_reclaimed_total: 'counter',
  memcached_lru_crawler_sleep: 'gauge',
  memcached_lru_crawler_starts_total: 'counter',
  memcached_lru_crawler_to_crawl: 'gauge',
  memcached_lru_crawler_warm_max_factor: 'gauge',
  memcached_lru_crawler_warm_percent: 'gauge',
  memcached_malloced_bytes: 'gauge',
  memcached_max_connections: 'gauge',
  memcached_read_bytes_total: 'counter',
  memcached_written_bytes_total: 'counter',
  memcached_slab_chunk_size_bytes: 'gauge',
  memcached_slab_chunks_free: 'gauge',
  memcached_slab_chunks_free_end: 'gauge',
  memcached_slab_chunks_per_page: 'gauge',
  memcached_slab_chunks_used: 'gauge',
  memcached_slab_cold_items: 'gauge',
  memcached_slab_commands_total: 'counter',
  memcached_slab_current_chunks: 'gauge',
  memcached_slab_current_items: 'gauge',
  memcached_slab_current_pages: 'gauge',
  memcached_slab_hot_age_seconds: 'gauge',
  memcached_slab_hot_items: 'gauge',
  memcached_slab_items_age_seconds: 'gauge',
  memcached_slab_items_crawler_reclaimed_total: 'counter',
  memcached_slab_items_evicted_nonzero_total: 'counter',
  memcached_slab_items_evicted_time_seconds: 'counter',
  memcached_slab_items_evicted_total: 'counter',
  memcached_slab_items_evicted_unfetched_total: 'counter',
  memcached_slab_items_expired_unfetched_total: 'counter',
  memcached_slab_items_moves_to_cold: 'counter',
  memcached_slab_items_moves_to_warm: 'counter',
  memcached_slab_items_moves_within_lru: 'counter',
  memcached_slab_items_outofmemory_total: 'counter',
  memcached_slab_items_reclaimed_total: 'counter',
  memcached_slab_items_tailrepairs_total: 'counter',
  memcached_slab_lru_hits_total: 'counter',
  memcached_slab_mem_requested_bytes: 'counter',
  memcached_slab_warm_age_seconds: 'gauge',
  memcached_slab_warm_items: 'gauge',
  // the exporter's process collector
  memcached_process_cpu_seconds_total: 'counter',
  memcached_process_max_fds: 'gauge',
  memcached_process_open_fds: 'gauge',
  memcached_process_resident_memory_bytes: 'gauge',
  memcached_process_start_time_seconds: 'gauge',
  memcached_process_virtual_memory_bytes: 'gauge',
};

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: LOOPBACK, port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

let server: FullServer;
let client: Client;

async function scrape(): Promise<Map<string, Family>> {
  const r = await get(server.metricsPort, '/metrics');
  expect(r.status).toBe(200);
  expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(r.body);
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
  return family?.samples.find((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function request(text: string, until: string): Promise<void> {
  const start = client.receivedBytes;
  await client.send(text);
  await waitFor(() => client.received.subarray(start).toString('latin1').includes(until), 5000, () => client.text());
}

beforeAll(async () => {
  server = await startFullServer({}, true);
  client = new Client(server.port);
  await client.connected();
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

describe('GET /metrics', () => {
  it("publishes memcached_exporter's metrics with its names and types", async () => {
    await request('set warm 0 0 1\r\nx\r\nget warm\r\n', 'END\r\n');
    const families = await scrape();
    const wrong: string[] = [];
    for (const [name, type] of Object.entries(EXPORTER_METRICS)) {
      const f = families.get(name);
      if (f === undefined || f.samples.length === 0) wrong.push(`${name}: missing`);
      else if (f.type !== type) wrong.push(`${name}: ${f.type}, the exporter says ${type}`);
      else if (f.help === '') wrong.push(`${name}: no HELP`);
    }
    expect(wrong).toEqual([]);
    expect(value(families, 'memcached_up')).toBe(1);
    expect(families.get('memcached_version')?.samples[0].labels).toEqual({ version: '1.6.45' });
  });

  it('labels as the exporter does: command/status, slab, slab/lru, slab/command/status', async () => {
    const families = await scrape();
    const labelSets = (name: string): string[] => [...new Set(families.get(name)?.samples.map((s) => Object.keys(s.labels).join(',')))];
    expect(labelSets('memcached_commands_total')).toEqual(['command,status']);
    expect(labelSets('memcached_slab_current_items')).toEqual(['slab']);
    expect(labelSets('memcached_slab_chunk_size_bytes')).toEqual(['slab']);
    expect(labelSets('memcached_slab_lru_hits_total')).toEqual(['slab,lru']);
    expect(labelSets('memcached_slab_commands_total')).toEqual(['slab,command,status']);
    const commands = families.get('memcached_commands_total')?.samples.map((s) => `${s.labels.command}/${s.labels.status}`);
    expect(commands?.sort()).toEqual([
      'cas/badval', 'cas/hit', 'cas/miss', 'decr/hit', 'decr/miss', 'delete/hit', 'delete/miss', 'flush/hit',
      'get/hit', 'get/miss', 'incr/hit', 'incr/miss', 'set/hit', 'touch/hit', 'touch/miss',
    ]);
    expect(families.get('memcached_slab_lru_hits_total')?.samples.map((s) => s.labels.lru).sort())
      .toEqual(['cold', 'hot', 'temporary', 'warm']);
  });

  it('computes values from the stats at scrape time', async () => {
    const before = await scrape();
    await request('set k1 0 0 5\r\nhello\r\nset k2 0 0 5\r\nworld\r\nget k1 nope\r\ncas k1 0 0 1 1\r\nx\r\ndelete k2\r\n', 'DELETED\r\n');
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}): number =>
      (value(after, name, labels) ?? NaN) - (value(before, name, labels) ?? 0);
    expect(delta('memcached_commands_total', { command: 'get', status: 'hit' })).toBe(1);
    expect(delta('memcached_commands_total', { command: 'get', status: 'miss' })).toBe(1);
    // cmd_set counts the cas too; the exporter's set/hit leaves every cas outcome out.
    expect(delta('memcached_commands_total', { command: 'set', status: 'hit' })).toBe(2);
    expect(delta('memcached_commands_total', { command: 'cas', status: 'badval' })).toBe(1);
    expect(delta('memcached_commands_total', { command: 'delete', status: 'hit' })).toBe(1);
    expect(delta('memcached_current_items')).toBe(1);
    expect(delta('memcached_items_total')).toBe(2);
    expect(delta('memcached_read_bytes_total')).toBeGreaterThan(80);
    expect(delta('memcached_written_bytes_total')).toBeGreaterThan(30);
    expect(value(after, 'memcached_slab_current_items', { slab: '1' })).toBe(2); // warm, k1
    expect(value(after, 'memcached_slab_chunk_size_bytes', { slab: '1' })).toBe(96);
    expect(value(after, 'memcached_current_connections')).toBeGreaterThanOrEqual(1);
    expect(value(after, 'memcached_limit_bytes')).toBe(64 * 1024 * 1024);
    const hits = value(after, 'memcached_commands_total', { command: 'get', status: 'hit' }) ?? 0;
    const misses = value(after, 'memcached_commands_total', { command: 'get', status: 'miss' }) ?? 0;
    expect(value(after, 'memcached_get_hit_ratio')).toBeCloseTo(hits / (hits + misses), 10);
  });

  it('has a service-time histogram per command', async () => {
    const before = await scrape();
    const count = (f: Map<string, Family>, command: string): number =>
      value(f, 'memcached_command_duration_seconds_count', { command }) ?? 0;
    await request('set h 0 0 3\r\nabc\r\nget h\r\nget h\r\nmg h v\r\nmn\r\n', 'MN\r\n');
    const after = await scrape();
    expect(after.get('memcached_command_duration_seconds')?.type).toBe('histogram');
    expect(count(after, 'set') - count(before, 'set')).toBe(1);
    expect(count(after, 'get') - count(before, 'get')).toBe(2);
    expect(count(after, 'mg') - count(before, 'mg')).toBe(1);
    expect(count(after, 'mn') - count(before, 'mn')).toBe(1);
    const buckets = after.get('memcached_command_duration_seconds')?.samples
      .filter((s) => s.name === 'memcached_command_duration_seconds_bucket' && s.labels.command === 'get') ?? [];
    expect(buckets.length).toBeGreaterThan(5);
    expect(buckets.at(-1)?.labels.le).toBe('+Inf');
    expect(buckets.at(-1)?.value).toBe(count(after, 'get'));
    for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
    expect(value(after, 'memcached_command_duration_seconds_sum', { command: 'get' })).toBeGreaterThan(0);
  });

  it('answers / with a link, other paths with 404, other methods with 405', async () => {
    expect((await get(server.metricsPort, '/')).body).toContain('href="/metrics"');
    expect((await get(server.metricsPort, '/nope')).status).toBe(404);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: LOOPBACK, port: server.metricsPort, path: '/metrics', method: 'POST' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(405);
  });
});
