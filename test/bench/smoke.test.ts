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
