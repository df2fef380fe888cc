/**
 * What the server says about its platform at startup (src/platform/startup.ts, sched.ts):
 * the addon's state, the scheduling policy (and threads that differ from the main one), the
 * TCP Fast Open sysctl warning; and that -k leaves the allocator alone when not asked for.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/platform/native';
import { describeScheduling, policyName, threadsScheduling } from '../../src/platform/sched';
import { checkPlatform, largePagesProblem, lockMemory, platformStartupLines } from '../../src/platform/startup';
import { defaultSettings } from '../../src/settings';

const REPO = path.resolve(__dirname, '..', '..');
const fifoAllowed = spawnSync('chrt', ['-f', '5', 'true']).status === 0;

describe('scheduling', () => {
  it('names Linux policies', () => {
    expect([0, 1, 2, 3, 5, 6, 0x40000001, 9].map(policyName)).toEqual([
      'SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', 'SCHED_IDLE', 'SCHED_DEADLINE', 'SCHED_FIFO', 'SCHED_9',
    ]);
    expect(describeScheduling({ policy: 'SCHED_FIFO', priority: 50 })).toBe('SCHED_FIFO priority 50');
    expect(describeScheduling({ policy: 'SCHED_OTHER', priority: 0 })).toBe('SCHED_OTHER');
  });

  it('lists every thread, the main thread first', () => {
    const threads = threadsScheduling();
    expect(threads[0].tid).toBe(process.pid);
    expect(threads.length).toBe(fs.readdirSync(`/proc/${process.pid}/task`).length);
    for (const t of threads) expect(t.policy).toMatch(/^SCHED_/);
  });

  it.runIf(fifoAllowed)('logs the policy of a process under chrt, and warns about a thread left out', () => {
    // One worker thread is put back to SCHED_OTHER with chrt -p: the log must say so.
    const r = spawnSync('chrt', ['-f', '5', process.execPath, '-e', `
      const { execFileSync } = require('child_process');
      const fs = require('fs');
      const { schedulingLogLines } = require(${JSON.stringify(path.join(REPO, 'dist/platform/sched.js'))});
      const before = schedulingLogLines();
      const other = fs.readdirSync('/proc/self/task').map(Number).find((t) => t !== process.pid);
      execFileSync('chrt', ['-o', '-p', '0', String(other)]);
      console.log(JSON.stringify({ before, after: schedulingLogLines(), other }));
    `], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { before: string[]; after: string[]; other: number };
    expect(out.before).toHaveLength(1);
    expect(out.before[0]).toMatch(/^scheduling: SCHED_FIFO priority 5 \(\d+ threads\)$/);
    expect(out.after).toHaveLength(2);
    expect(out.after[1]).toContain(`warning: threads with another scheduling policy than the main thread: ${out.other} `);
    expect(out.after[1]).toContain(': SCHED_OTHER');
  });
});

describe('startup lines', () => {
  it('say whether the addon is there and what the policy is, at -v', () => {
    const lines = platformStartupLines(defaultSettings());
    const addon = loadNative().addon;
    expect(lines[0]).toEqual({
      level: 1,
      text: addon !== null
        ? 'native addon loaded: TCP Fast Open (-o tcp_fastopen), locked memory (-k), SO_REUSEPORT sockets available'
        : expect.stringMatching(/^native addon .*: TCP Fast Open \(-o tcp_fastopen\), locked memory \(-k\), SO_REUSEPORT sockets unavailable$/),
    });
    expect(lines.some((l) => l.level === 1 && /^scheduling: SCHED_\w+/.test(l.text))).toBe(true);
  });

  it('warn at any verbosity when the host ignores server-side Fast Open', () => {
    const sysctl = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_fastopen', 'latin1'));
    const lines = platformStartupLines({ ...defaultSettings(), tcpFastOpenQueue: 16 });
    expect(lines).toContainEqual({ level: 1, text: 'TCP Fast Open on TCP listeners, queue 16' });
    const warning = lines.find((l) => l.text.includes('net.ipv4.tcp_fastopen is'));
    if ((sysctl & 2) === 0) expect(warning?.level).toBe(0);
    else expect(warning).toBeUndefined();
  });

  it('need nothing from the platform by default', () => {
    expect(checkPlatform(defaultSettings())).toBeNull();
    const slabs = { onNewPage: null };
    expect(lockMemory(defaultSettings(), slabs, () => undefined)).toEqual([]);
    expect(slabs.onNewPage).toBeNull();
  });
});

describe('-L (large pages)', () => {
  it('is refused as memcached refuses it: transparent huge pages missing or set to never', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-thp-'));
    try {
      const on = path.join(dir, 'on');
      const never = path.join(dir, 'never');
      fs.writeFileSync(on, 'always [madvise] never\n');
      fs.writeFileSync(never, 'always madvise [never]\n');
      expect(largePagesProblem([on])).toBeNull();
      expect(largePagesProblem([path.join(dir, 'missing'), on])).toBeNull();
      expect(largePagesProblem([never])).toMatch(/cannot enable large pages on this system: transparent huge pages are set to never/);
      expect(largePagesProblem([path.join(dir, 'missing')])).toMatch(/support not detected/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
