/**
 * The server as a process: memcached's command-line behaviour, signals and pid file.
 * Each case starts `bin/memcached-ts.js` on a free loopback port and stops it by PID.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { endsWith, withClient } from '../helpers/client';
import { canConnect, freePort, REPO_ROOT, sleep } from '../helpers/servers';
import { loadNative } from '../../src/platform/native';
import { largePagesProblem } from '../../src/platform/startup';

const BIN = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const started: number[] = [];

afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Starts the server and resolves once its port answers (bounded: 15 s). `onPortAnswers` runs
 * at that first moment, before anything else can happen (checks of what must exist by then).
 */
async function start(args: string[], onPortAnswers: () => void = () => undefined): Promise<{ pid: number; port: number; exited: Promise<number | null> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, '-p', String(port), '-l', '127.0.0.1', '-U', '0', '-u', 'nobody', ...args], {
    stdio: 'ignore',
  });
  started.push(child.pid!);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    exitCode = code;
    resolve(code);
  }));
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(port, '127.0.0.1', 1000))) {
    if (exitCode !== undefined) throw new Error(`the server exited (${exitCode}) before its port answered`);
    if (Date.now() > deadline) throw new Error('the server\'s port did not answer within 15 s');
    await sleep(5);
  }
  onPortAnswers();
  return { pid: child.pid!, port, exited };
}

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('signals', () => {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGUSR1'] as const) {
    it(`${signal} stops the server cleanly and removes the pid file`, async () => {
      const pidFile = path.join(os.tmpdir(), `mcts-${process.pid}-${signal}.pid`);
      let atFirstAnswer = '';
      const s = await start(['-P', pidFile], () => {
        atFirstAnswer = fs.readFileSync(pidFile, 'utf8');
      });
      expect(atFirstAnswer.trim()).toBe(String(s.pid));
      process.kill(s.pid, signal);
      const code = await Promise.race([s.exited, sleep(8000).then(() => 'timeout')]);
      expect(code).toBe(0);
      expect(fs.existsSync(pidFile)).toBe(false);
      expect(await canConnect(s.port)).toBe(false);
    });
  }
});

describe('-P pid file', () => {
  it('exists before the port answers, even when more startup follows the listeners (metrics endpoint)', async () => {
    const pidFile = path.join(os.tmpdir(), `mcts-${process.pid}-early.pid`);
    fs.rmSync(pidFile, { force: true });
    let atFirstAnswer: string | null = null;
    const metricsPort = await freePort();
    const s = await start(['-P', pidFile, '-o', `metrics_listen=127.0.0.1:${metricsPort}`], () => {
      atFirstAnswer = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8') : null;
    });
    expect(atFirstAnswer).toBe(`${s.pid}\n`);
    process.kill(s.pid, 'SIGTERM');
    expect(await Promise.race([s.exited, sleep(8000).then(() => 'timeout')])).toBe(0);
  });

  it('a startup that fails after writing it leaves it as it was', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const busy = (holder.address() as net.AddressInfo).port;
    try {
      const fresh = path.join(os.tmpdir(), `mcts-${process.pid}-fresh.pid`);
      fs.rmSync(fresh, { force: true });
      const a = runCli(['-p', String(busy), '-l', '127.0.0.1', '-U', '0', '-u', 'nobody', '-P', fresh]);
      expect(a.status, a.stderr).not.toBe(0);
      expect(a.stderr).toContain('failed to listen');
      expect(fs.existsSync(fresh)).toBe(false);
      // Another server's pid file (this test process stands for it) is put back.
      const other = path.join(os.tmpdir(), `mcts-${process.pid}-other.pid`);
      fs.writeFileSync(other, `${process.pid}\n`);
      const b = runCli(['-p', String(busy), '-l', '127.0.0.1', '-U', '0', '-u', 'nobody', '-P', other]);
      expect(b.status, b.stderr).not.toBe(0);
      expect(fs.readFileSync(other, 'utf8')).toBe(`${process.pid}\n`);
      fs.rmSync(other, { force: true });
    } finally {
      holder.close();
    }
  });
});

describe('-d', () => {
  it('the parent exits 0 once the daemon listens with its pid file written (systemd Type=forking)', async () => {
    const port = await freePort();
    const pidFile = path.join(os.tmpdir(), `mcts-${process.pid}-daemon.pid`);
    fs.rmSync(pidFile, { force: true });
    const r = runCli(['-d', '-p', String(port), '-l', '127.0.0.1', '-U', '0', '-u', 'nobody', '-P', pidFile]);
    expect(r.status, r.stderr).toBe(0);
    // Both hold the moment the parent is gone.
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    started.push(pid);
    expect(await canConnect(port)).toBe(true);
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 8000;
    while (fs.existsSync(pidFile) && Date.now() < deadline) await sleep(20);
    expect(fs.existsSync(pidFile)).toBe(false);
  });

  it('the parent reports the daemon\'s startup failure with its message and exit code', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const busy = (holder.address() as net.AddressInfo).port;
      const r = runCli(['-d', '-p', String(busy), '-l', '127.0.0.1', '-U', '0', '-u', 'nobody']);
      expect(r.status).toBe(71);
      expect(r.stderr).toContain('failed to listen on one of interface(s) 127.0.0.1: Address already in use');
    } finally {
      holder.close();
    }
  });
});

describe('command line', () => {
  it('refuses to run as root without -u, as memcached does', () => {
    if (process.getuid?.() !== 0) return;
    const r = runCli(['-p', '0', '-U', '0']);
    expect(r.status).toBe(64);
    expect(r.stderr).toContain("can't run as root without the -u switch");
  });
  it('rejects bad values with a message and a non-zero exit', () => {
    for (const args of [['-c', '0'], ['-t', '0'], ['-f', '1.0'], ['-m', 'lots'], ['-o', 'no_such_option']]) {
      const r = runCli([...args, '-u', 'nobody']);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr.length, args.join(' ')).toBeGreaterThan(0);
    }
  });
  it('fails at startup for options that are not implemented', () => {
    for (const args of [['-o', 'proxy_config=/tmp/x.lua'], ['-o', 'ssl_kernel_tls']]) {
      const r = runCli([...args, '-u', 'nobody']);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(/not (implemented|supported)/);
    }
  });
  const thpOn = largePagesProblem() === null && loadNative().addon !== null;
  (thpOn ? it : it.skip)('-L preallocates a slab page for every class, and refuses an -m below one page per class', async () => {
    const s = await start(['-L', '-m', '64']);
    const slabs = await withClient(s.port, (c) => c.request('stats slabs\r\n', endsWith('END\r\n')));
    const text = slabs.toString('latin1');
    const pages = [...text.matchAll(/STAT (\d+):total_pages (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    // memcached -L -m 64 (1.6.45): classes 1 to 39, each with one page.
    expect(pages.length).toBe(39);
    expect(pages.every(([, n]) => n === 1)).toBe(true);
    expect(text).toMatch(/STAT total_malloced 40894464\r\n/);
    const small = runCli(['-L', '-m', '16', '-u', 'nobody', '-p', '0', '-U', '0']);
    expect(small.status).toBe(1);
    expect(small.stderr).toContain('Error while preallocating slab memory!');
    expect(small.stderr).toContain('max memory must be at least 39 megabytes');
  });

  it('-h lists memcached flags and -V prints the version', () => {
    const h = runCli(['-h']);
    expect(h.status).toBe(0);
    for (const flag of ['-p, --port', '-m, --memory-limit', '-c, --conn-limit', '-t, --threads']) expect(h.stdout).toContain(flag);
    const v = runCli(['-V']);
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/memcached-ts \d+\.\d+\.\d+/);
  });
  it('shutdown is refused without -A and stops the server with -A', async () => {
    const s = await start(['-A']);
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('shutdown\r\n');
    const code = await Promise.race([s.exited, sleep(8000).then(() => 'timeout')]);
    sock.destroy();
    expect(code).toBe(0);
  });
});
