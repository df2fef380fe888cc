/**
 * The server as a process: memcached's command-line behaviour, signals and pid file.
 * Each case starts `bin/memcached-ts.js` on a free loopback port and stops it by PID.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { canConnect, freePort, REPO_ROOT, sleep } from '../helpers/servers';

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

async function start(args: string[]): Promise<{ pid: number; port: number; exited: Promise<number | null> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, '-p', String(port), '-l', '127.0.0.1', '-U', '0', '-u', 'nobody', ...args], {
    stdio: 'ignore',
  });
  started.push(child.pid!);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 200 && !(await canConnect(port)); i++) await sleep(25);
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
      const s = await start(['-P', pidFile]);
      expect(await canConnect(s.port)).toBe(true);
      expect(fs.readFileSync(pidFile, 'utf8').trim()).toBe(String(s.pid));
      process.kill(s.pid, signal);
      const code = await Promise.race([s.exited, sleep(8000).then(() => 'timeout')]);
      expect(code).toBe(0);
      expect(fs.existsSync(pidFile)).toBe(false);
      expect(await canConnect(s.port)).toBe(false);
    });
  }
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
    for (const args of [['-o', 'proxy_config=/tmp/x.lua'], ['-o', 'ssl_kernel_tls'], ['-L']]) {
      const r = runCli([...args, '-u', 'nobody']);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(/not (implemented|supported)/);
    }
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
    const net = await import('node:net');
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('shutdown\r\n');
    const code = await Promise.race([s.exited, sleep(8000).then(() => 'timeout')]);
    sock.destroy();
    expect(code).toBe(0);
  });
});
