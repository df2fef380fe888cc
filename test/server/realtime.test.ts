/**
 * Real-time launch (doc/platform.md, "Real-time scheduling"): a server started under
 * `chrt -f 10` has every thread (/proc/<pid>/task/*, checked with `chrt -p`) under
 * SCHED_FIFO priority 10, and says so in `stats settings` (sched_policy, sched_priority);
 * scripts/memcached-ts-rt does the same with its own priority, and fails with a clear
 * message without the privilege.
 *
 * Skipped, saying why, when this machine does not allow SCHED_FIFO (`chrt -f 10 true` fails).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { endsWith, withClient } from '../helpers/client';
import { canConnect, freePort, LOOPBACK, REPO_ROOT, sleep, stopProcess, trackProcess } from '../helpers/servers';

const SERVER = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const LAUNCHER = path.join(REPO_ROOT, 'scripts', 'memcached-ts-rt');
const START_TIMEOUT_MS = 15_000;

const probe = spawnSync('chrt', ['-f', '10', 'true'], { encoding: 'utf8' });
const fifoUnavailable = probe.error !== undefined
  ? `chrt not found: ${probe.error.message}`
  : probe.status !== 0 ? `SCHED_FIFO not permitted here: ${probe.stderr.trim()}` : null;
if (fifoUnavailable !== null) console.warn(`real-time tests skipped: ${fifoUnavailable}`);
const withFifo = fifoUnavailable === null ? describe : describe.skip;

const started: ChildProcess[] = [];
afterAll(async () => {
  for (const child of started) await stopProcess(child);
});

async function start(command: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(command, [...args, '-u', 'root', '-p', String(port), '-l', LOOPBACK, '-U', '0'],
    { stdio: ['ignore', 'ignore', 'pipe'], cwd: REPO_ROOT });
  trackProcess(child);
  started.push(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${stderr}`);
    if (Date.now() > deadline) throw new Error(`server did not start: ${stderr}`);
    await sleep(50);
  }
  return { child, port };
}

/** `chrt -p <tid>` of every thread: [policy, priority] as chrt prints them. */
function threadPolicies(pid: number): Array<[number, string, number]> {
  return fs.readdirSync(`/proc/${pid}/task`).map(Number).map((tid) => {
    const out = spawnSync('chrt', ['-p', String(tid)], { encoding: 'utf8' }).stdout;
    const policy = /scheduling policy: (\S+)/.exec(out)?.[1] ?? `unknown (${out})`;
    const priority = Number(/scheduling priority: (\d+)/.exec(out)?.[1] ?? -1);
    return [tid, policy, priority];
  });
}

async function settingsOf(port: number): Promise<Map<string, string>> {
  const text = (await withClient(port, (c) => c.request('stats settings\r\n', endsWith('END\r\n')))).toString('latin1');
  return new Map([...text.matchAll(/^STAT (\S+) (.*)\r$/gm)].map((m) => [m[1], m[2]]));
}

withFifo('under SCHED_FIFO', () => {
  it('chrt -f 10: every thread is SCHED_FIFO 10 and stats settings says so', async () => {
    const { child, port } = await start('chrt', ['-f', '10', process.execPath, SERVER]);
    const threads = threadPolicies(child.pid as number);
    // The event loop, libuv's pool and V8's helpers: Node always has several.
    expect(threads.length).toBeGreaterThan(3);
    for (const [tid, policy, priority] of threads) {
      expect([tid, policy, priority]).toEqual([tid, 'SCHED_FIFO', 10]);
    }
    const s = await settingsOf(port);
    expect(s.get('sched_policy')).toBe('SCHED_FIFO');
    expect(s.get('sched_priority')).toBe('10');
  });

  it('scripts/memcached-ts-rt --rt-priority 12 does the same', async () => {
    const { child, port } = await start(LAUNCHER, ['--rt-priority', '12']);
    for (const [tid, policy, priority] of threadPolicies(child.pid as number)) {
      expect([tid, policy, priority]).toEqual([tid, 'SCHED_FIFO', 12]);
    }
    const s = await settingsOf(port);
    expect([s.get('sched_policy'), s.get('sched_priority')]).toEqual(['SCHED_FIFO', '12']);
  });

  it('scripts/memcached-ts-rt says what is missing when real-time priorities are not allowed', () => {
    // nobody has RLIMIT_RTPRIO 0 and no CAP_SYS_NICE.
    const r = spawnSync('runuser', ['-u', 'nobody', '--', LAUNCHER, '-p', '0'], { encoding: 'utf8', timeout: 10_000 });
    if (r.error !== undefined) return; // no runuser: nothing to check
    expect(r.status).toBe(77);
    expect(r.stderr).toContain('cannot run under SCHED_FIFO priority 50');
    expect(r.stderr).toContain('CAP_SYS_NICE');
  });
});

describe('without chrt', () => {
  it('stats settings reports SCHED_OTHER and priority 0', async () => {
    const { port } = await start(process.execPath, [SERVER]);
    const s = await settingsOf(port);
    expect([s.get('sched_policy'), s.get('sched_priority')]).toEqual(['SCHED_OTHER', '0']);
  });

  it('scripts/memcached-ts-rt refuses a bad priority or policy before starting anything', () => {
    for (const args of [['--rt-priority', '0'], ['--rt-priority', '100'], ['--rt-priority', 'x'], ['--rt-policy', 'batch']]) {
      const r = spawnSync(LAUNCHER, args, { encoding: 'utf8', timeout: 10_000 });
      expect(r.status, args.join(' ')).toBe(64);
      expect(r.stderr).toMatch(/^memcached-ts-rt: /);
    }
  });
});
