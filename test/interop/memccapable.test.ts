/**
 * libmemcached's memccapable in ASCII mode (-a) against the target and against the reference
 * memcached 1.6.45: every test must have the same outcome on both. memcached 1.6.45 itself
 * fails "ascii delete" and "ascii delete noreply" (libmemcached expects `delete <key> <time>`
 * to be refused; 1.6.45 ignores what follows the key), so passing every test would mean
 * answering differently from memcached. Debian package: libmemcached-tools.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { describeRun, requireTool, runTool } from '../helpers/tools';

let server: ServerProcess | undefined;
let reference: ServerProcess | undefined;

beforeAll(async () => {
  [server, reference] = await Promise.all([startTarget(['-m', '64']), startReference(['-m', '64'])]);
}, 30_000);

afterAll(async () => {
  await stopAll(server, reference);
}, 20_000);

async function outcomes(s: ServerProcess): Promise<{ results: Map<string, string>; report: string; timedOut: boolean }> {
  const tool = requireTool('memccapable', 'libmemcached-tools');
  const result = await runTool(tool, ['-h', s.host, '-p', String(s.port), '-a', '-t', '5'], { timeoutMs: 60_000 });
  // memccapable prints "ascii <name> ... [pass]"; a failed test's line may run into the next one
  const results = new Map<string, string>();
  for (const m of result.stdout.matchAll(/(ascii [a-z_ ]*?[a-z_])\s+\[(\w+)\]/g)) results.set(m[1], m[2]);
  return { results, report: describeRun(result), timedOut: result.timedOut };
}

describe('memccapable -a (ASCII protocol)', () => {
  it('gives every ASCII test the outcome it has on memcached 1.6.45', async () => {
    if (server === undefined || reference === undefined) throw new Error('servers did not start');
    const [ours, theirs] = await Promise.all([outcomes(server), outcomes(reference)]);
    expect(ours.timedOut, ours.report).toBe(false);
    // The ASCII suite of libmemcached 1.x has 27 tests; fewer means some did not run.
    expect(theirs.results.size, theirs.report).toBeGreaterThanOrEqual(25);
    expect(Object.fromEntries(ours.results), ours.report).toEqual(Object.fromEntries(theirs.results));
    expect([...ours.results.values()].filter((o) => o === 'pass').length, ours.report).toBeGreaterThanOrEqual(25);
    expect(server.isAlive(), `${server.describe()} died: ${server.logTail()}`).toBe(true);
  }, 90_000);
});
