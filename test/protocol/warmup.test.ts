/**
 * The JIT warm-up (src/protocol/warmup.ts): it runs every request kind it has under the
 * settings operators use (-R 1 yields, binary only, SASL refusing text, CAS off, a small -I,
 * several threads' locks) without stopping early, stays within its time, and leaves nothing a
 * client can see: a started server's counters, items and first CAS value are those of a
 * server started without it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newStatsTable, ServerStats } from '../../src/metrics/stats';
import { warmUp } from '../../src/protocol/warmup';
import { defaultSettings, type Settings } from '../../src/settings';
import { withClient, endsWith } from '../helpers/client';
import { parseStats } from '../helpers/replies';
import { startTarget, stopAll, type ServerProcess } from '../helpers/servers';

const BUDGET_MS = 60;

function settingsWith(change: Partial<Settings>): Settings {
  return { ...defaultSettings(), threadCount: 1, warmupMs: BUDGET_MS, ...change };
}

describe('warmUp in-process', () => {
  const cases: [string, Partial<Settings>, number][] = [
    ['defaults', {}, 1],
    ['-R 1 (a yield after every request)', { requestsPerEvent: 1 }, 1],
    ['-B binary', { bindProtocol: 'binary' }, 1],
    ['-C', { casEnabled: false }, 1],
    ['-I 1k (4 KiB sets refused)', { itemSizeMaxBytes: 1024 }, 1],
    ['-t 4 (atomic locks)', { threadCount: 4 }, 4],
  ];
  it.each(cases)('%s: runs to its time without an error', (_name, change, threads) => {
    const r = warmUp(settingsWith(change), () => new ServerStats(newStatsTable(threads), 0));
    expect(r.error).toBeNull();
    expect(r.requests).toBeGreaterThan(1000);
    expect(r.ms).toBeGreaterThanOrEqual(BUDGET_MS);
    // One check of the clock per few rounds: it overruns by a round or so, not by multiples.
    expect(r.ms).toBeLessThan(BUDGET_MS + 2_000);
  });

  it('-o warmup_ms=0 runs nothing', () => {
    const r = warmUp(settingsWith({ warmupMs: 0 }), () => new ServerStats());
    expect(r).toEqual({ requests: 0, ms: 0, error: null });
  });
});

describe('a server started with the warm-up', () => {
  let warm: ServerProcess;
  let cold: ServerProcess;
  beforeAll(async () => {
    [warm, cold] = await Promise.all([startTarget(['-t', '2', '-vv', '-o', 'warmup_ms=200']), startTarget(['-t', '2', '-o', 'warmup_ms=0'])]);
  });
  afterAll(async () => {
    await stopAll(warm, cold);
  });

  it('logs it at -vv', () => {
    expect(warm.logTail(100_000)).toMatch(/warm-up: \d+ requests in \d+ ms/);
    expect(warm.logTail(100_000)).not.toMatch(/warm-up stopped/);
  });

  it('shows clients the same counters, items and CAS values as a server started without it', async () => {
    const look = async (port: number): Promise<Map<string, string>> =>
      await withClient(port, async (c) => {
        const first = (await c.request('set a 0 0 1\r\nx\r\ngets a\r\n', endsWith('END\r\n'))).toString('latin1');
        const stats = parseStats(await c.request('stats\r\n', endsWith('END\r\n')));
        const items = parseStats(await c.request('stats items\r\n', endsWith('END\r\n')));
        const out = new Map<string, string>([['first gets', first]]);
        for (const name of ['curr_items', 'total_items', 'cmd_get', 'cmd_set', 'get_hits', 'get_misses', 'delete_misses',
          'incr_misses', 'touch_hits', 'bytes', 'evictions', 'total_connections']) {
          out.set(name, stats.get(name) ?? 'absent');
        }
        out.set('item classes', [...items.keys()].filter((k) => k.endsWith(':number')).join(','));
        return out;
      });
    const seenWarm = await look(warm.port);
    const seenCold = await look(cold.port);
    expect(seenWarm).toEqual(seenCold);
    expect(seenWarm.get('curr_items')).toBe('1');
  });
});
