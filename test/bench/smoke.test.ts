/**
 * The benchmark harness runs end to end (a seconds-long smoke: every code path, tiny counts,
 * one round, memcaslap as the load generator). Numbers are not checked here: benchmarks
 * report ratios, they are not timed tests.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/servers';

describe('bench harness smoke', () => {
  it('compiles and completes a smoke run against both servers', () => {
    const tsc = spawnSync(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'bench/tsconfig.json'],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    const run = spawnSync(process.execPath, ['bench/dist/run.js', '--smoke', '--load=memcaslap', '--no-build'],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 90_000 });
    expect(run.status, run.stdout.slice(-2000) + run.stderr.slice(-2000)).toBe(0);
    const m = /results: (\S+results\.json)/.exec(run.stdout);
    expect(m, run.stdout.slice(-2000)).not.toBeNull();
    const results = JSON.parse(fs.readFileSync(m![1], 'utf8'));
    expect(results).toHaveProperty('commit');
    expect(JSON.stringify(results)).toContain('memcached');
  }, 150_000);
});

describe('micro benchmarks', () => {
  it('compile and run (--quick: every case once, numbers meaningless)', () => {
    const tsc = spawnSync(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'bench/micro/tsconfig.json'],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    const run = spawnSync(process.execPath, ['bench/dist/micro/bench/micro/all.js', '--quick'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stdout.slice(-2000) + run.stderr.slice(-2000)).toBe(0);
    expect(run.stdout).not.toContain('FAILED');
    expect(run.stdout).toContain('prefetch_keys=0');
  }, 120_000);
});

describe('bench server flags', () => {
  it('--tls: TLS on the load port, a notls: listener for the harness, the certificate for both servers', async () => {
    const { memcachedFlags } = await import('../../bench/lib/servers');
    const base = { memoryMiB: 64, threads: 2, cpus: null, tasksetPath: null, startTimeoutMs: 1000 };
    const plain = memcachedFlags(1111, { ...base, tls: null });
    expect(plain.slice(0, 6)).toEqual(['-p', '1111', '-U', '0', '-l', '127.0.0.1']);
    expect(plain).not.toContain('-Z');
    const tls = memcachedFlags(1111, { ...base, tls: { certPath: '/c.pem', keyPath: '/k.pem' } }, 2222);
    expect(tls.join(' ')).toContain('-p 2222 -U 0 -l 127.0.0.1,notls:127.0.0.1:1111 -Z -o ssl_chain_cert=/c.pem,ssl_key=/k.pem -m 64 -t 2');
  });
});

describe('bench summary', () => {
  it('keeps each round\'s ratio beside their median, and the report lists them in round order', async () => {
    const { summarize } = await import('../../bench/lib/summary');
    const { perRoundLine } = await import('../../bench/lib/report');
    const run = (round: number, role: 'ours' | 'memcached', ops: number, p99: number) => ({
      workload: 'mix-p16', round, role, label: role, startedAt: '', wallSeconds: 1, setup: [],
      load: { opsPerSec: ops, requests: ops, seconds: 1, p50Ms: 0.5, p99Ms: p99, p999Ms: 2, avgMs: 0.5, maxMs: 3,
        percentileSource: 'exact', hitRatio: 1, connectionErrors: 0, warning: null },
      fill: null, server: null, cpu: null, error: null,
    });
    // Rounds 1..3: ours / memcached = 2, 0.5, 1 for ops/s (median 1), 1, 2, 0.5 for p99.
    const records = [
      run(1, 'ours', 200, 1), run(1, 'memcached', 100, 1),
      run(2, 'ours', 100, 2), run(2, 'memcached', 200, 1),
      run(3, 'ours', 150, 1), run(3, 'memcached', 150, 2),
    ];
    const s = summarize(records as never);
    expect(s.roundsCompared).toBe(3);
    expect(s.perRound.map((q) => q.opsPerSec)).toEqual([2, 0.5, 1]);
    expect(s.ratios.opsPerSec).toBe(1);
    expect(perRoundLine('1:10 100B p16', s.perRound)).toBe('- 1:10 100B p16: 2.00x, 0.50x, 1.00x; p99 1.00x, 2.00x, 0.50x');
    expect(perRoundLine('one round', s.perRound.slice(0, 1))).toBeNull();
  });
});
