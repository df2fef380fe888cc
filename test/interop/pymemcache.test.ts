/**
 * pymemcache (Debian: python3-pymemcache) against the target: pymemcache_check.py runs
 * every basic command with noreply on and off and exits 0 only if all checks pass.
 */

import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { describeRun, pythonWithPymemcache, runTool } from '../helpers/tools';

let server: ServerProcess | undefined;

beforeAll(async () => {
  server = await startTarget(['-m', '64']);
}, 30_000);

afterAll(async () => {
  await stopAll(server);
}, 20_000);

describe('pymemcache', () => {
  it('pymemcache_check.py passes every check', async () => {
    if (server === undefined) throw new Error('server did not start');
    const script = path.join(__dirname, 'pymemcache_check.py');
    const result = await runTool(pythonWithPymemcache(), [script, server.host, String(server.port)], { timeoutMs: 60_000 });
    const report = describeRun(result);
    expect(result.timedOut, report).toBe(false);
    expect(result.stdout, report).not.toContain('FAIL');
    expect(result.stdout, report).toMatch(/\d+ checks, 0 failed/);
    expect(result.code, report).toBe(0);
    expect(server.isAlive(), `${server.describe()} died: ${server.logTail()}`).toBe(true);
  }, 90_000);
});
