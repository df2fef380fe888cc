/**
 * Real binary-protocol clients against the server process: the memjs npm client (with and
 * without SASL) and libmemcached's `memccapable -b`. Each suite starts its own server on a
 * loopback port and stops it by PID. The same suites run against memcached 1.6.45
 * (MCTS_TARGET=memcached), which is how the expectations here were checked.
 *
 * The server command is `node bin/memcached-ts.js` (after `npm run build`), or MCTS_OURS_CMD.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'memjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OP, parsePackets, req } from './binary-helpers';
import { connectTo, freePort } from './binary-memcached';
import { memcachedBin } from '../helpers/servers';

const REPO = path.resolve(__dirname, '..', '..');
const TARGET = (process.env.MCTS_TARGET ?? 'ours').trim() === 'memcached' ? 'memcached' : 'ours';

interface Running {
  proc: ChildProcess;
  port: number;
  log: string;
}

function command(): { file: string; args: string[] } {
  if (TARGET === 'memcached') return { file: memcachedBin(), args: [] };
  const override = process.env.MCTS_OURS_CMD?.trim();
  if (override) {
    const words = override.split(/\s+/);
    return { file: words[0], args: words.slice(1) };
  }
  return { file: process.execPath, args: [path.join(REPO, 'bin', 'memcached-ts.js')] };
}

/** Does the server answer a binary VERSION? (works with -B binary, auto and -S) */
async function answersBinaryVersion(port: number): Promise<boolean> {
  try {
    const sock = await connectTo(port);
    return await new Promise<boolean>((resolve) => {
      let data = Buffer.alloc(0);
      const timer = setTimeout(() => done(false), 1000);
      function done(ok: boolean): void {
        clearTimeout(timer);
        sock.destroy();
        resolve(ok);
      }
      sock.on('data', (d) => {
        data = Buffer.concat([data, d]);
        const p = parsePackets(data).packets[0];
        if (p !== undefined) done(p.opcode === OP.VERSION && p.status === 0);
      });
      sock.on('error', () => done(false));
      sock.on('close', () => done(false));
      sock.write(req({ op: OP.VERSION }));
    });
  } catch {
    return false;
  }
}

async function startServer(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Running> {
  const cmd = command();
  const port = await freePort();
  const user = process.getuid?.() === 0 ? ['-u', TARGET === 'memcached' ? 'nobody' : 'root'] : [];
  const log = path.join(os.tmpdir(), `mcts-interop-${process.pid}-${port}.log`);
  const fd = fs.openSync(log, 'w');
  const proc = spawn(cmd.file, [...cmd.args, '-p', String(port), '-U', '0', '-l', '127.0.0.1', ...user, ...args],
    { stdio: ['ignore', fd, fd], env, cwd: REPO });
  fs.closeSync(fd);
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    if (await answersBinaryVersion(port)) return { proc, port, log };
    await new Promise((r) => setTimeout(r, 100));
  }
  const text = fs.readFileSync(log, 'utf8');
  stopServer({ proc, port, log });
  throw new Error(`server ${cmd.file} ${args.join(' ')} did not start: ${text}`);
}

function stopServer(s: Running | undefined): void {
  if (s === undefined) return;
  if (s.proc.pid !== undefined && s.proc.exitCode === null) s.proc.kill('SIGTERM');
  fs.rmSync(s.log, { force: true });
}

function client(port: number, user?: string, pass?: string): Client {
  const auth = user !== undefined ? `${user}:${pass}@` : '';
  return Client.create(`${auth}127.0.0.1:${port}`, { retries: 0, timeout: 2, logger: { log: () => undefined } });
}

function statsOf(c: Client): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => c.stats((err, _server, stats) => (err ? reject(err) : resolve(stats ?? {}))));
}

describe.each([['-B', 'binary'], ['-B', 'auto']])('memjs against %s %s', (flag, value) => {
  let server: Running | undefined;
  let mc: Client;

  beforeAll(async () => {
    server = await startServer([flag, value]);
    mc = client(server.port);
  });

  afterAll(() => {
    mc?.close();
    stopServer(server);
  });

  it('set, get, add, replace, delete', async () => {
    expect(await mc.set('k', 'v1')).toBe(true);
    expect((await mc.get('k')).value?.toString()).toBe('v1');
    expect(await mc.add('k', 'v2')).toBe(false);
    expect(await mc.add('fresh', 'v')).toBe(true);
    expect(await mc.replace('k', 'v3')).toBe(true);
    expect(await mc.replace('absent', 'v')).toBe(false);
    expect((await mc.get('k')).value?.toString()).toBe('v3');
    expect(await mc.delete('k')).toBe(true);
    expect(await mc.delete('k')).toBe(false);
    expect((await mc.get('k')).value).toBeNull();
  });

  it('flags round-trip', async () => {
    const raw = new Client((mc as unknown as { servers: Client['servers'] }).servers, {
      serializer: {
        serialize: (_op: number, v: string | Buffer, extras: Buffer) => {
          extras.writeUInt32BE(42, 0);
          return { value: v, extras };
        },
        deserialize: (_op: number, v: Buffer | null, extras: Buffer) => ({ value: v, extras }),
      },
    } as never);
    await raw.set('f', 'x');
    const got = await raw.get('f');
    expect(got.flags?.readUInt32BE(0)).toBe(42);
  });

  it('increment with an initial value, decrement', async () => {
    expect(await mc.increment('n', 5, { initial: 10 })).toEqual({ success: true, value: 10 });
    expect(await mc.increment('n', 5)).toEqual({ success: true, value: 15 });
    expect(await mc.decrement('n', 20, {})).toEqual({ success: true, value: 0 });
    await mc.set('s', 'abc');
    await expect(mc.increment('s', 1)).rejects.toThrow();
  });

  it('append, touch', async () => {
    // memjs 1.3's prepend() sends APPEND's opcode, so only append is checked here
    await mc.set('a', 'mid');
    expect(await mc.append('a', '>')).toBe(true);
    expect((await mc.get('a')).value?.toString()).toBe('mid>');
    await expect(mc.append('missing', 'x')).rejects.toThrow(/not stored/);
    expect(await mc.touch('a', 100)).toBe(true);
    expect(await mc.touch('missing', 100)).toBe(false);
  });

  it('large values spanning many reads', async () => {
    const big = Buffer.alloc(900 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    expect(await mc.set('big', big)).toBe(true);
    expect((await mc.get('big')).value?.equals(big)).toBe(true);
    await expect(mc.set('huge', Buffer.alloc(2 * 1024 * 1024))).rejects.toThrow();
    expect(await mc.set('after', 'ok')).toBe(true);
  });

  it('stats, flush', async () => {
    const stats = await statsOf(mc);
    expect(stats.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Number(stats.cmd_set)).toBeGreaterThan(0);
    expect(Object.keys(stats)).toContain('curr_connections');
    await mc.set('gone', 'x');
    await mc.flush();
    expect((await mc.get('gone')).value).toBeNull();
  });
});

describe('memccapable -b', () => {
  let server: Running | undefined;
  let available = true;

  beforeAll(async () => {
    try {
      execFileSync('memccapable', ['--help'], { stdio: 'ignore' });
    } catch (e) {
      available = (e as { code?: string }).code !== 'ENOENT';
    }
    if (available) server = await startServer([]);
  });

  afterAll(() => stopServer(server));

  it('passes every binary test', async (ctx) => {
    if (!available) ctx.skip();
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      execFile('memccapable', ['-h', '127.0.0.1', '-p', String(server!.port), '-b'], { timeout: 60000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, text: stdout + stderr }));
    });
    expect(out.text).not.toMatch(/\[fail\]/);
    expect(out.text).toContain('All tests passed');
    expect(out.code).toBe(0);
  });
});

describe('memjs with SASL (-S)', () => {
  let server: Running | undefined;
  let dir = '';

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-sasl-interop-'));
    const env: NodeJS.ProcessEnv = { ...process.env };
    const haveSaslpasswd2 = ['/usr/sbin/saslpasswd2', '/usr/bin/saslpasswd2'].some((p) => fs.existsSync(p));
    if (TARGET === 'memcached' || haveSaslpasswd2) {
      // Cyrus SASL's own sasldb (memcached works with it with or without --enable-sasl-pwdb;
      // this server reads it too)
      const db = path.join(dir, 'sasldb2');
      fs.writeFileSync(path.join(dir, 'memcached.conf'), `mech_list: plain\nsasldb_path: ${db}\n`);
      execFileSync('saslpasswd2', ['-a', 'memcached', '-c', '-p', '-f', db, 'user'], { input: 'secret', stdio: ['pipe', 'ignore', 'ignore'] });
      fs.chmodSync(db, 0o644);
      env.SASL_CONF_PATH = dir;
    } else {
      fs.writeFileSync(path.join(dir, 'pwdb'), 'user:secret\n');
      env.MEMCACHED_SASL_PWDB = path.join(dir, 'pwdb');
    }
    fs.chmodSync(dir, 0o755);
    server = await startServer(['-S'], env);
  });

  afterAll(() => {
    stopServer(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('authenticates with PLAIN and then works', async () => {
    const c = client(server!.port, 'user', 'secret');
    try {
      expect(await c.set('k', 'v')).toBe(true);
      expect((await c.get('k')).value?.toString()).toBe('v');
      expect((await c.increment('n', 1, { initial: 7 })).value).toBe(7);
      const stats = await statsOf(c);
      expect(stats.auth_enabled_sasl).toBeUndefined(); // general stats do not list settings
      expect(Number(stats.auth_cmds)).toBeGreaterThan(0);
    } finally {
      c.close();
    }
  });

  it('a wrong password gets nothing', async () => {
    const c = client(server!.port, 'user', 'wrong');
    try {
      await expect(c.get('k')).rejects.toThrow();
    } finally {
      c.close();
    }
  });

  it('no credentials: refused', async () => {
    const c = client(server!.port);
    try {
      await expect(c.get('k')).rejects.toThrow();
    } finally {
      c.close();
    }
  });
});
