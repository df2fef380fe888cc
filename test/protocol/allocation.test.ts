/**
 * No garbage on the steady-state request path (text, meta and binary gets, sets and
 * incr/decr of counters below 2^53): the
 * built server's sessions run pipelined batches over a real engine in a child process
 * (allocation-probe.cjs) while V8's sampling heap profiler counts every allocation, collected
 * ones included. A per-request allocation that comes back (a Buffer view per copy, a bigint
 * per number, a boxed hash) shows up as tens of bytes per request and fails this test; the
 * bound leaves room for the profiler's sampling noise only.
 *
 * Not covered, and why: incr/decr past 2^53 compute in bigint (exact 64-bit counters) and
 * allocate; a read event's callback from Node's C++ side allocates a little per event,
 * outside the sessions (measured in doc/network.md's garbage section).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { expect, it } from 'vitest';

const REPO = path.resolve(__dirname, '..', '..');

/** Allowed heap bytes per request: sampling noise, far below one object per request. */
const BYTES_PER_REQUEST_MAX = 1;

interface Report {
  [workload: string]: { bytesPerRequest: number; top: [string, number][] };
}

it('text, meta and binary gets, sets and incr/decr allocate nothing per request once optimized', () => {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'allocation-probe.cjs'), REPO], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const report = JSON.parse(r.stdout) as Report;
  expect(Object.keys(report).length).toBeGreaterThanOrEqual(12);
  for (const [workload, { bytesPerRequest, top }] of Object.entries(report)) {
    expect(bytesPerRequest, `${workload}: ${bytesPerRequest.toFixed(1)} bytes per request, from ${JSON.stringify(top)}`).toBeLessThanOrEqual(BYTES_PER_REQUEST_MAX);
  }
});
