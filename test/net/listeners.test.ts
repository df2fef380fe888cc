/**
 * Listeners: backlog as the kernel reports it, unix socket mode and stale-file handling,
 * memcached's startup error messages, and -p 0.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ListenError, strerror } from '../../src/net/addresses';
import { Client, LOOPBACK, startTestServer, waitFor, type TestServer } from './harness';

const opened: { servers: TestServer[]; clients: Client[] } = { servers: [], clients: [] };
let dir = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-net-'));
});

afterEach(async () => {
  for (const c of opened.clients.splice(0)) c.destroy();
  for (const s of opened.servers.splice(0)) await s.net.close();
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function server(...args: Parameters<typeof startTestServer>): Promise<TestServer> {
  const s = await startTestServer(...args);
  opened.servers.push(s);
  return s;
}

/** Send-Q of a listening TCP socket is its accept backlog (ss(8)). */
function listenBacklog(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8', timeout: 5000 });
  const line = out.split('\n').find((l) => l.includes(`:${port}`));
  if (line === undefined) throw new Error(`no listening socket on ${port} in: ${out}`);
  return Number(line.trim().split(/\s+/)[2]);
}

describe('TCP listener', () => {
  it('listens with the configured backlog (capped by net.core.somaxconn)', async () => {
    const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const s = await server({ backlog: 77 });
    expect(listenBacklog(s.port)).toBe(Math.min(77, somaxconn));
    const s2 = await server({ backlog: 1024 });
    expect(listenBacklog(s2.port)).toBe(Math.min(1024, somaxconn));
  });

  it('fails to start on a port in use with memcached\'s message', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen({ host: LOOPBACK, port: 0 }, resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(startTestServer({ tcpPort: port })).rejects.toThrow(
        `failed to listen on one of interface(s) 127.0.0.1: Address already in use`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('formats errors as perror() does', () => {
    const err = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE', errno: -98 });
    expect(new ListenError('failed to listen on TCP port 11211', err).message)
      .toBe('failed to listen on TCP port 11211: Address already in use');
    expect(strerror(Object.assign(new Error('x'), { code: 'EXDEV', errno: -18 }))).toBe('Cross-device link not permitted');
  });

  it('binds no TCP socket when the port is 0 (-p 0)', async () => {
    const s = await server({ tcpPort: 0 });
    expect(s.net.addresses().tcp).toEqual([]);
    expect([...s.net.connections()]).toEqual([]);
  });
});

describe('unix socket listener', () => {
  it('creates the socket with mode -a 0700 by default and serves clients', async () => {
    const sock = path.join(dir, 'default.sock');
    const s = await server({ socketPath: sock });
    expect(fs.statSync(sock).mode & 0o777).toBe(0o700);
    expect(s.net.addresses()).toEqual({ tcp: [], tls: [], udp: [], unix: sock });
    const c = new Client(sock);
    opened.clients.push(c);
    await c.connected();
    await c.send('over unix\r\n');
    await c.waitBytes(11);
    expect(c.text()).toBe('over unix\r\n');
    const conns = [...s.net.connections()];
    expect(conns.map((i) => [i.transport, i.peerName, i.stateName])).toEqual([
      ['unix', `unix:${sock}`, 'conn_listening'],
      ['unix', `unix:${sock}`, 'conn_new_cmd'],
    ]);
  });

  it('applies -a exactly, whatever the process umask', async () => {
    const sock = path.join(dir, 'mode.sock');
    const old = process.umask(0o077);
    try {
      await server({ socketPath: sock, socketAccessMask: 0o766 });
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(sock).mode & 0o777).toBe(0o766);
  });

  it('replaces a stale socket file left by a killed process', async () => {
    const sock = path.join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`]);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('child did not listen')), 5000);
        child.stdout.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((resolve) => child.once('exit', resolve));
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    await server({ socketPath: sock });
    const c = new Client(sock);
    opened.clients.push(c);
    await c.connected();
    await c.send('fresh\r\n');
    await c.waitBytes(7);
  });

  it('refuses to replace a file that is not a socket', async () => {
    const file = path.join(dir, 'not-a-socket');
    fs.writeFileSync(file, 'keep me');
    await expect(startTestServer({ socketPath: file })).rejects.toThrow(
      `failed to listen on UNIX socket: ${file}: Address already in use`,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('removes the socket file on close', async () => {
    const sock = path.join(dir, 'closed.sock');
    const s = await startTestServer({ socketPath: sock });
    await s.net.close();
    await waitFor(() => !fs.existsSync(sock), 2000, () => 'socket file still there');
  });
});
