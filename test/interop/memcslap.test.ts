/**
 * Load generators from libmemcached-tools against the target, short and bounded:
 * memcslap (set, get, mget) and memcaslap (mixed get/set with data verification).
 * memcslap exits 0 even when every request failed, so the server's own counters are
 * checked against the work the tool reports.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, endsWith } from '../helpers/client';
import { parseStats } from '../helpers/replies';
import { startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { describeRun, requireTool, runTool } from '../helpers/tools';

let server: ServerProcess | undefined;

beforeAll(async () => {
  server = await startTarget(['-m', '64']);
}, 30_000);

afterAll(async () => {
  await stopAll(server);
}, 20_000);

function target(): ServerProcess {
  if (server === undefined) throw new Error('server did not start');
  return server;
}

async function counters(): Promise<Map<string, number>> {
  const client = await RawClient.connect(target().port);
  try {
    const stats = parseStats(await client.request('stats\r\n', endsWith('END\r\n')));
    return new Map([...stats].map(([k, v]) => [k, Number(v)]));
  } finally {
    client.close();
  }
}

function delta(before: Map<string, number>, after: Map<string, number>, name: string): number {
  return (after.get(name) ?? NaN) - (before.get(name) ?? NaN);
}

const concurrency = 4;
const executeNumber = 1_000;

describe('memcslap', () => {
  for (const test of ['set', 'get', 'mget'] as const) {
    it(`--test=${test} completes and the server saw every request`, async () => {
      const tool = requireTool('memcslap', 'libmemcached-tools');
      const before = await counters();
      const result = await runTool(
        tool,
        [`--servers=${target().address}`, `--concurrency=${concurrency}`, `--execute-number=${executeNumber}`, `--test=${test}`],
        { timeoutMs: 60_000 },
      );
      const after = await counters();
      const report = describeRun(result);
      expect(result.timedOut, report).toBe(false);
      expect(result.code, report).toBe(0);
      expect(result.stderr, report).not.toMatch(/fail|error/i);
      const requests = concurrency * executeNumber;
      if (test === 'set') {
        expect(result.stdout, report).toMatch(new RegExp(`Time to set\\s+${requests} keys`));
        expect(delta(before, after, 'cmd_set'), report).toBe(requests);
      } else {
        // get/mget first load execute-number keys, then every thread reads them all.
        expect(delta(before, after, 'cmd_set'), report).toBe(executeNumber);
        expect(delta(before, after, 'cmd_get'), report).toBe(requests);
        expect(delta(before, after, 'get_hits'), report).toBe(requests);
      }
      expect(target().isAlive()).toBe(true);
    }, 90_000);
  }
});

describe('memcaslap', () => {
  it('mixed get/set with verification: no verify failures, counts match the server', async () => {
    const tool = requireTool('memcaslap', 'libmemcached-tools');
    const before = await counters();
    const executions = 4_800; // a multiple of -c, which memcaslap splits it by
    const result = await runTool(tool, ['-s', target().address, '-T', '2', '-c', '16', '-x', String(executions), '-v', '1.0'], { timeoutMs: 60_000 });
    const after = await counters();
    const report = describeRun(result);
    const reported = (name: string): number => {
      const match = new RegExp(`^${name}: (\\d+)$`, 'm').exec(result.stdout);
      if (match === null) throw new Error(`no "${name}" in memcaslap output\n${report}`);
      return Number(match[1]);
    };
    expect(result.timedOut, report).toBe(false);
    expect(result.code, report).toBe(0);
    expect(reported('verify_misses'), report).toBe(0);
    expect(reported('verify_failed'), report).toBe(0);
    expect(reported('get_misses'), report).toBe(0);
    expect(reported('cmd_get') + reported('cmd_set'), report).toBe(executions);
    expect(delta(before, after, 'cmd_get'), report).toBe(reported('cmd_get'));
    expect(delta(before, after, 'cmd_set'), report).toBe(reported('cmd_set'));
    expect(delta(before, after, 'get_misses'), report).toBe(0);
  }, 90_000);
});
