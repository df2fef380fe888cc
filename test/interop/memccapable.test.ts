/**
 * libmemcached's memccapable in ASCII mode (-a) against the target: every test must pass.
 * Debian package: libmemcached-tools.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { describeRun, requireTool, runTool } from '../helpers/tools';

let server: ServerProcess | undefined;

beforeAll(async () => {
  server = await startTarget(['-m', '64']);
}, 30_000);

afterAll(async () => {
  await stopAll(server);
}, 20_000);

describe('memccapable -a (ASCII protocol)', () => {
  it('reports every ASCII test as passed', async () => {
    if (server === undefined) throw new Error('server did not start');
    const tool = requireTool('memccapable', 'libmemcached-tools');
    const result = await runTool(tool, ['-h', server.host, '-p', String(server.port), '-a', '-t', '5'], { timeoutMs: 60_000 });
    const report = describeRun(result);
    const outcomes = [...result.stdout.matchAll(/^(ascii [^\n[]*?)\s+\[(\w+)\]\s*$/gm)].map((m) => ({ test: m[1], outcome: m[2] }));
    expect(result.timedOut, report).toBe(false);
    expect(outcomes.filter((o) => o.outcome !== 'pass'), report).toEqual([]);
    // The ASCII suite of libmemcached 1.x has 27 tests; fewer means some did not run.
    expect(outcomes.length, report).toBeGreaterThanOrEqual(27);
    expect(result.stdout, report).toContain('All tests passed');
    expect(result.code, report).toBe(0);
    expect(server.isAlive(), `${server.describe()} died: ${server.logTail()}`).toBe(true);
  }, 90_000);
});
