/**
 * Operations across serving threads (-t 4): with many connections, the kernel puts them on
 * every thread, so each check below uses enough connections that some land off thread 0.
 * `watch` sees every thread's events, `stats conns` lists every thread's clients,
 * `flush_all` and the clock (`debugtime`) act on all, `shutdown` from any connection stops
 * the whole server. The server listens on 127.0.0.1 and is stopped by PID.
 */
import { spawn, spawnSync } from 'node:child_process';
import { constants as cryptoConstants } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  canConnect, freePort, LOOPBACK, REPO_ROOT, sleep, startServer, startTarget, stopAll, stopProcess, targetKind, trackProcess, type ServerProcess,
} from '../helpers/servers';
import { fingerprintOf, makePki, tlsExchange } from '../net/tls-fixtures';
import { loadNative } from '../../src/platform/native';
import { OP, parsePackets, req } from '../protocol/binary-helpers';

const BIN = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const rootArgs = process.getuid?.() === 0 ? ['-u', 'root'] : [];

const CONNECTIONS = 12;
/** A bound on each wait for a reply (the machine may be busy: CI runs two test files at once). */
const WAIT_MS = 10_000;

let server: ServerProcess | undefined;
afterEach(async () => {
  await stopAll(server);
  server = undefined;
});

/** A connection that collects what it receives. */
class Client {
  readonly sock: net.Socket;
  got = '';
  constructor(port: number, socketPath?: string) {
    this.sock = socketPath !== undefined ? net.connect(socketPath) : net.connect(port, LOOPBACK);
    this.sock.on('data', (d) => { this.got += d.toString('latin1'); });
    this.sock.on('error', () => undefined);
  }
  async ready(): Promise<void> {
    if (this.sock.readyState === 'open') return;
    await new Promise((r) => this.sock.once('connect', r));
  }
  async ask(text: string | Buffer, until: (got: string) => boolean): Promise<string> {
    this.got = '';
    this.sock.write(text);
    const deadline = Date.now() + WAIT_MS;
    while (!until(this.got) && Date.now() < deadline) await sleep(5);
    return this.got;
  }
}

async function clients(port: number, n: number): Promise<Client[]> {
  const list = Array.from({ length: n }, () => new Client(port));
  await Promise.all(list.map((c) => c.ready()));
  return list;
}

const endsWith = (s: string) => (got: string): boolean => got.endsWith(s);

describe('-t 4: operations see every thread', () => {
  it('each serving thread is named mc-worker, as memcached\'s workers are (ps -L, top -H)', async () => {
    // Without the native addon the threads keep Node's name: nothing to check then.
    if (targetKind() === 'ours' && loadNative().addon === null) return;
    server = await startTarget(['-t', '3']);
    const names = fs.readdirSync(`/proc/${server.pid}/task`)
      .map((tid) => { try { return fs.readFileSync(`/proc/${server!.pid}/task/${tid}/comm`, 'utf8').trim(); } catch { return ''; } });
    expect(names.filter((n) => n === 'mc-worker')).toHaveLength(3);
  }, 30_000);

  it('watch fetchers: every watcher, on whichever thread, gets every thread\'s lines', async () => {
    server = await startTarget(['-t', '4']);
    const watchers = await clients(server.port, 6);
    for (const w of watchers) expect(await w.ask('watch fetchers\r\n', endsWith('OK\r\n'))).toBe('OK\r\n');
    for (const w of watchers) w.got = '';
    // memcached's watchers start receiving once their logger registration is seen.
    await sleep(200);
    const users = await clients(server.port, CONNECTIONS);
    for (const [i, c] of users.entries()) await c.ask(`get key${i}\r\n`, endsWith('END\r\n'));
    const deadline = Date.now() + WAIT_MS;
    while (watchers.some((w) => (w.got.match(/type=item_get/g) ?? []).length < CONNECTIONS) && Date.now() < deadline) await sleep(10);
    for (const w of watchers) {
      const lines = w.got.split('\n').filter((l) => l.includes('type=item_get'));
      expect(lines).toHaveLength(CONNECTIONS);
      expect(new Set(lines.map((l) => /key=(\S+)/.exec(l)?.[1])).size).toBe(CONNECTIONS);
      // Connection ids are unique across threads.
      expect(new Set(lines.map((l) => /cfd=(\d+)/.exec(l)?.[1])).size).toBe(CONNECTIONS);
    }
    for (const c of [...watchers, ...users]) c.sock.destroy();
  }, 30_000);

  it('a new watcher sees the very next mutation, whichever threads the watcher and the client are on', async () => {
    server = await startTarget(['-t', '4']);
    const rounds = 12;
    for (let r = 0; r < rounds; r++) {
      const [watcher, client] = await clients(server.port, 2);
      expect(await watcher.ask('watch mutations\r\n', endsWith('OK\r\n'))).toBe('OK\r\n');
      watcher.got = '';
      expect(await client.ask(`set race${r} 0 0 1\r\nx\r\n`, endsWith('\r\n'))).toBe('STORED\r\n');
      const deadline = Date.now() + WAIT_MS;
      while (!watcher.got.includes(`key=race${r} `) && Date.now() < deadline) await sleep(5);
      expect(watcher.got).toContain(`key=race${r} status=stored cmd=set`);
      watcher.sock.destroy();
      client.sock.destroy();
    }
    expect(await (await clients(server.port, 1))[0].ask('stats\r\n', endsWith('END\r\n'))).toMatch(/STAT log_watchers [01]\r\n/);
  }, 60_000);

  it('binary stats from every thread show thread 0\'s background counters and every thread\'s detail counts', async () => {
    server = await startServer({ args: ['-t', '4', '-B', 'binary'], ready: 'connect' });
    const users = await clients(server.port, CONNECTIONS);
    const statsOf = async (c: Client, key: string): Promise<Map<string, string>> => {
      const end = (got: string): boolean => {
        const { packets } = parsePackets(Buffer.from(got, 'latin1'));
        return packets.some((p) => p.opcode === OP.STAT && p.key.length === 0);
      };
      const got = await c.ask(req({ op: OP.STAT, key }), end);
      return new Map(parsePackets(Buffer.from(got, 'latin1')).packets.filter((p) => p.key.length > 0)
        .map((p) => [p.key.toString('latin1'), p.value.toString('latin1')]));
    };
    // The LRU maintainer (thread 0) runs every 100 ms: its count is above 0 after a while.
    for (const until = Date.now() + WAIT_MS; Date.now() < until;) {
      await sleep(100);
      if (Number((await statsOf(users[0], '')).get('lru_maintainer_juggles')) > 0) break;
    }
    expect((await statsOf(users[0], 'detail on')).size).toBe(0);
    // As in memcached, the setting is in force on every thread once the reply is out: no wait.
    for (const [i, c] of users.entries()) {
      const got = await c.ask(req({ op: OP.GETK, key: `pfx:${i}` }), (g) => parsePackets(Buffer.from(g, 'latin1')).packets.length > 0);
      expect(got.length).toBeGreaterThan(0);
    }
    for (const c of users) {
      const general = await statsOf(c, '');
      expect(Number(general.get('lru_maintainer_juggles'))).toBeGreaterThan(0);
      expect(general.get('threads')).toBe('4');
    }
    // Each thread hands its detail counts to thread 0 every 50 ms (the asking one at once).
    const want = `PREFIX pfx get ${CONNECTIONS} hit 0 set 0 del 0`;
    let detail = await statsOf(users[5], 'detail dump');
    for (const until = Date.now() + WAIT_MS; !(detail.get('detailed') ?? '').includes(want) && Date.now() < until;) {
      await sleep(50);
      detail = await statsOf(users[5], 'detail dump');
    }
    expect(detail.get('detailed')).toContain(want);
    for (const c of users) c.sock.destroy();
  }, 30_000);

  it('stats conns lists the clients of every thread', async () => {
    server = await startTarget(['-t', '4']);
    const users = await clients(server.port, CONNECTIONS);
    for (const c of users) await c.ask('version\r\n', endsWith('\r\n'));
    // Threads report their clients at most every 20 ms; the asking thread reports its own at once.
    await sleep(300);
    const reply = await users[0].ask('stats conns\r\n', endsWith('END\r\n'));
    const ports = new Set([...reply.matchAll(/^STAT \d+:addr tcp:127\.0\.0\.1:(\d+)\r$/gm)].map((m) => Number(m[1])));
    for (const c of users) expect(ports.has(c.sock.localPort as number)).toBe(true);
    // In id order, as memcached lists by descriptor: a client takes the last entry for its newest
    // connection (memcached's t/watcher_connid.t does).
    const ids = [...reply.matchAll(/^STAT (\d+):addr /gm)].map((m) => Number(m[1]));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    for (const c of users) c.sock.destroy();
  }, 30_000);

  it('UDP: every thread serves a copy of the socket, listed and counted per thread as memcached', async () => {
    const udpPort = await freePort();
    server = await startTarget(['-t', '4', '-U', String(udpPort)]);
    const [c] = await clients(server.port, 1);
    // memcached 1.6.45 -t 4 -U: the TCP listener, one UDP connection per thread, this client
    await sleep(300);
    const conns = await c.ask('stats conns\r\n', endsWith('END\r\n'));
    expect(conns.match(new RegExp(`^STAT \\d+:addr udp:127\\.0\\.0\\.1:${udpPort}\\r$`, 'gm'))).toHaveLength(4);
    const stats = await c.ask('stats\r\n', endsWith('END\r\n'));
    expect(/STAT curr_connections (\d+)/.exec(stats)?.[1]).toBe('5');
    // Many clients (source ports), each a set then a get of another's key: every datagram answered.
    const SOCKETS = 24;
    const socks = await Promise.all(Array.from({ length: SOCKETS }, async () => {
      const u = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => u.bind(0, LOOPBACK, resolve));
      return u;
    }));
    try {
      const frame = (id: number, body: string): Buffer => {
        const h = Buffer.alloc(8);
        h.writeUInt16BE(id, 0);
        h.writeUInt16BE(1, 4);
        return Buffer.concat([h, Buffer.from(body, 'latin1')]);
      };
      const exchange = async (bodyOf: (i: number) => string): Promise<string[]> => await Promise.all(socks.map((u, i) =>
        new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no UDP reply for socket ${i}`)), WAIT_MS);
          u.once('message', (m: Buffer) => {
            clearTimeout(timer);
            resolve(m.readUInt16BE(0) === i ? m.subarray(8).toString('latin1') : `wrong request id ${m.readUInt16BE(0)}`);
          });
          u.send(frame(i, bodyOf(i)), udpPort, LOOPBACK);
        })));
      expect(await exchange((i) => `set udp${i} ${i} 0 ${String(i).length}\r\n${i}\r\n`)).toEqual(socks.map(() => 'STORED\r\n'));
      const other = (i: number): number => (i + 5) % SOCKETS;
      expect(await exchange((i) => `get udp${other(i)}\r\n`)).toEqual(
        socks.map((_, i) => `VALUE udp${other(i)} ${other(i)} ${String(other(i)).length}\r\n${other(i)}\r\nEND\r\n`));
      // and TCP clients on any thread see them
      const users = await clients(server.port, CONNECTIONS);
      for (const [i, u] of users.entries()) {
        expect(await u.ask(`get udp${i}\r\n`, endsWith('END\r\n'))).toBe(`VALUE udp${i} ${i} ${String(i).length}\r\n${i}\r\nEND\r\n`);
      }
      for (const u of users) u.sock.destroy();
    } finally {
      for (const u of socks) u.close();
      c.sock.destroy();
    }
  }, 30_000);

  it('flush_all on one connection empties the cache for every connection', async () => {
    server = await startTarget(['-t', '4']);
    const users = await clients(server.port, CONNECTIONS);
    for (const [i, c] of users.entries()) expect(await c.ask(`set k${i} 0 0 1\r\nx\r\n`, endsWith('\r\n'))).toBe('STORED\r\n');
    expect(await users[3].ask('flush_all\r\n', endsWith('\r\n'))).toBe('OK\r\n');
    for (const [i, c] of users.entries()) expect(await c.ask(`get k${(i + 1) % CONNECTIONS}\r\n`, endsWith('END\r\n'))).toBe('END\r\n');
    for (const c of users) c.sock.destroy();
  }, 30_000);

  it.runIf(targetKind() === 'ours')('debugtime moves the clock of every thread (items expire everywhere)', async () => {
    server = await startTarget(['-t', '4', '-o', 'debug_commands']);
    const users = await clients(server.port, CONNECTIONS);
    for (const [i, c] of users.entries()) expect(await c.ask(`set k${i} 0 100 1\r\nx\r\n`, endsWith('\r\n'))).toBe('STORED\r\n');
    expect(await users[5].ask('debugtime 200\r\n', endsWith('\r\n'))).toBe('OK\r\n');
    // Threads read the clock thread 0 publishes; give the next tick a moment.
    await sleep(50);
    for (const [i, c] of users.entries()) expect(await c.ask(`get k${i}\r\n`, endsWith('END\r\n'))).toBe('END\r\n');
    for (const c of users) c.sock.destroy();
  }, 30_000);

  it('shutdown from any connection stops the whole server', async () => {
    server = await startTarget(['-t', '4', '-A']);
    const users = await clients(server.port, CONNECTIONS);
    for (const c of users) await c.ask('version\r\n', endsWith('\r\n'));
    users[CONNECTIONS - 1].sock.write('shutdown\r\n');
    const deadline = Date.now() + WAIT_MS;
    while (server.isAlive() && Date.now() < deadline) await sleep(20);
    expect(server.isAlive()).toBe(false);
    for (const c of users) c.sock.destroy();
  }, 30_000);
});

/**
 * memcached-ts -t 4 -Z on a free loopback port with the certificate and key given (and more
 * -o options), once every thread listens: the port file is written then (the port answers
 * earlier, on the threads already listening).
 */
async function startTlsThreads(dir: string, certPath: string, keyPath: string, moreOptions = ''):
  Promise<{ child: ReturnType<typeof spawn>; tlsPort: number }> {
  const tlsPort = await freePort();
  const portFile = path.join(dir, 'ports');
  const child = spawn(process.execPath, [BIN, ...rootArgs, '-t', '4', '-U', '0', '-Z', '-o', `ssl_chain_cert=${certPath},ssl_key=${keyPath}${moreOptions}`,
    '-l', `${LOOPBACK}:${tlsPort}`], { stdio: 'ignore', env: { ...process.env, MEMCACHED_PORT_FILENAME: portFile } });
  trackProcess(child);
  const deadline = Date.now() + 15_000;
  while (!fs.existsSync(portFile) || !(await canConnect(tlsPort))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      await stopProcess(child);
      throw new Error('memcached-ts -Z -t 4 did not start');
    }
    await sleep(50);
  }
  return { child, tlsPort };
}

describe.runIf(targetKind() === 'ours')('-t 4 with TLS: every thread serves TLS with the same certificates and ticket keys', () => {
  it('a ticket from one connection resumes on whichever thread the next lands; SIGHUP reloads every thread', async () => {
    const pki = makePki();
    const certPath = path.join(pki.dir, 'threads.crt');
    const keyPath = path.join(pki.dir, 'threads.key');
    fs.copyFileSync(pki.serverCert, certPath);
    fs.copyFileSync(pki.serverKey, keyPath);
    let child: ReturnType<typeof spawn> | null = null;
    try {
      const started = await startTlsThreads(pki.dir, certPath, keyPath);
      child = started.child;
      const tlsPort = started.tlsPort;
      const opts = { rejectUnauthorized: false, maxVersion: 'TLSv1.3' as const };
      const first = await tlsExchange(tlsPort, 'version\r\n', opts);
      expect(first.session).not.toBeNull();
      const resumed = await Promise.all(Array.from({ length: CONNECTIONS }, () =>
        tlsExchange(tlsPort, 'version\r\n', { ...opts, session: first.session as Buffer })));
      for (const r of resumed) {
        expect(r.text).toMatch(/^VERSION /);
        expect(r.reused, `resumed: ${resumed.filter((x) => x.reused).length}`).toBe(true);
      }
      fs.copyFileSync(pki.serverCert2, certPath);
      fs.copyFileSync(pki.serverKey2, keyPath);
      process.kill(child.pid as number, 'SIGHUP');
      const want = fingerprintOf(pki.serverCert2);
      const until = Date.now() + WAIT_MS;
      let seen: string[] = [];
      while (Date.now() < until) {
        seen = (await Promise.all(Array.from({ length: CONNECTIONS }, () => tlsExchange(tlsPort, 'version\r\n', opts)))).map((r) => r.fingerprint);
        if (seen.every((f) => f === want)) break;
        await sleep(50);
      }
      expect(seen.every((f) => f === want)).toBe(true);
    } finally {
      if (child !== null) await stopProcess(child);
      pki.remove();
    }
  }, 60_000);

  it('ssl_session_cache: a TLS 1.2 session resumes by ID on whichever thread the next connection lands', async () => {
    const pki = makePki();
    let child: ReturnType<typeof spawn> | null = null;
    try {
      const started = await startTlsThreads(pki.dir, pki.serverCert, pki.serverKey, ',ssl_session_cache');
      child = started.child;
      const tlsPort = started.tlsPort;
      // No ticket: the client asks for none, so only the server's session-ID cache can resume it.
      const opts = { rejectUnauthorized: false, maxVersion: 'TLSv1.2' as const, secureOptions: cryptoConstants.SSL_OP_NO_TICKET };
      const first = await tlsExchange(tlsPort, 'version\r\n', opts);
      expect(first.session).not.toBeNull();
      // the thread that served it hands the session to thread 0's cache by message
      await sleep(100);
      const resumed = await Promise.all(Array.from({ length: CONNECTIONS }, () =>
        tlsExchange(tlsPort, 'version\r\n', { ...opts, session: first.session as Buffer })));
      for (const r of resumed) {
        expect(r.text).toMatch(/^VERSION /);
        expect(r.reused, `resumed: ${resumed.filter((x) => x.reused).length} of ${resumed.length}`).toBe(true);
      }
    } finally {
      if (child !== null) await stopProcess(child);
      pki.remove();
    }
  }, 60_000);
});

describe.runIf(targetKind() === 'ours')('-t 4 with -s: thread 0 accepts on the unix socket and deals connections out', () => {
  it('every connection is served, and the clients of every thread are counted and listed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-unix-threads-'));
    const socketPath = path.join(dir, 'mc.sock');
    const child = spawn(process.execPath, [BIN, ...rootArgs, '-t', '4', '-s', socketPath, '-vv'], { stdio: ['ignore', 'ignore', 'pipe'] });
    trackProcess(child);
    let log = '';
    child.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
    try {
      const deadline = Date.now() + 15_000;
      while (!log.includes('started, pid')) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`memcached-ts -s -t 4 did not start: ${log}`);
        await sleep(50);
      }
      const users = Array.from({ length: CONNECTIONS }, () => {
        const c = new Client(0, socketPath);
        return c;
      });
      await Promise.all(users.map((c) => c.ready()));
      for (const [i, c] of users.entries()) {
        expect(await c.ask(`set u${i} 0 0 2\r\nv${i % 10}\r\nget u${i}\r\n`, endsWith('END\r\n'))).toBe(`STORED\r\nVALUE u${i} 0 2\r\nv${i % 10}\r\nEND\r\n`);
      }
      await sleep(100);
      const stats = await users[0].ask('stats\r\n', endsWith('END\r\n'));
      expect(stats).toContain(`STAT curr_connections ${CONNECTIONS}\r\n`);
      const conns = await users[1].ask('stats conns\r\n', endsWith('END\r\n'));
      expect((conns.match(/:addr unix:/g) ?? []).length).toBe(CONNECTIONS + 1);
      for (const c of users) c.sock.destroy();
    } finally {
      await stopProcess(child);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe.runIf(targetKind() === 'ours')('-t 4 with -o metrics_listen: the endpoint counts every thread', () => {
  function scrape(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: LOOPBACK, port, path: '/metrics', timeout: WAIT_MS }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); });
        res.on('end', () => resolve(body));
      });
      req.on('timeout', () => req.destroy(new Error('scrape timed out')));
      req.on('error', reject);
    });
  }
  /** Samples of `name` as [labels text, value]. */
  const samples = (text: string, name: string): Array<[string, number]> =>
    [...text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))].map((m) => [m[1] ?? '', Number(m[2])]);

  it('command-time histograms and per-thread series cover the commands of every thread', async () => {
    const metricsPort = await freePort();
    server = await startServer({ kind: 'ours', args: ['-t', '4', '-o', `metrics_listen=${LOOPBACK}:${metricsPort}`] });
    const users = await clients(server.port, CONNECTIONS);
    for (const [i, c] of users.entries()) {
      expect(await c.ask(`set m${i} 0 0 1\r\nx\r\nget m${i}\r\nget m${i}\r\nget m${i}\r\n`, (got) => got.split('END\r\n').length > 3))
        .toBe('STORED\r\n' + `VALUE m${i} 0 1\r\nx\r\nEND\r\n`.repeat(3));
    }
    const text = await scrape(metricsPort);
    const counts = samples(text, 'memcached_command_duration_seconds_count');
    // Every thread's gets, timed: before, only thread 0's were.
    expect(counts.find(([l]) => l === 'command="get"')?.[1], JSON.stringify(counts)).toBe(3 * CONNECTIONS);
    expect(counts.find(([l]) => l === 'command="set"')?.[1], JSON.stringify(counts)).toBe(CONNECTIONS);
    // One series per thread (thread 0, which serves no client at -t 4, and the four serving
    // threads); they add up to the totals, and the clients are on more than one thread.
    const gets = samples(text, 'memcached_thread_commands_total').filter(([l]) => l.includes('command="get"'));
    expect(gets.map(([l]) => /thread="(\d+)"/.exec(l)?.[1]).sort()).toEqual(['0', '1', '2', '3', '4']);
    expect(gets.find(([l]) => l.includes('thread="0"'))?.[1]).toBe(0);
    expect(gets.reduce((a, [, v]) => a + v, 0)).toBe(3 * CONNECTIONS);
    const conns = samples(text, 'memcached_thread_current_connections');
    expect(conns, JSON.stringify(conns)).toHaveLength(5);
    expect(conns.reduce((a, [, v]) => a + v, 0)).toBe(samples(text, 'memcached_current_connections')[0][1]);
    expect(conns.filter(([, v]) => v > 0).length).toBeGreaterThan(1);
    for (const c of users) c.sock.destroy();
  }, 60_000);

  /** Each worker thread's client connections, from the endpoint (thread 0's row left out). */
  async function workerConnections(metricsPort: number): Promise<number[]> {
    const conns = samples(await scrape(metricsPort), 'memcached_thread_current_connections');
    return conns.filter(([l]) => !l.includes('thread="0"')).map(([, v]) => v);
  }

  it('TCP connections are dealt out to the worker threads in turn (-o tcp_accept=dispatch, the default)', async () => {
    const metricsPort = await freePort();
    server = await startServer({ kind: 'ours', args: ['-t', '4', '-o', `metrics_listen=${LOOPBACK}:${metricsPort}`] });
    // Opened all at once: the kernel's SO_REUSEPORT hash would put 7 to 19 of 48 on a thread.
    const perThread = 12;
    const users = await clients(server.port, 4 * perThread);
    for (const c of users) expect(await c.ask('version\r\n', endsWith('\r\n'))).toMatch(/^VERSION /);
    expect(await workerConnections(metricsPort)).toEqual([perThread, perThread, perThread, perThread]);
    // A slot freed on one thread is taken by whichever thread the next turn names: -c and the
    // counts stay right as connections come and go.
    for (const c of users.slice(0, 4)) c.sock.destroy();
    const more = await clients(server.port, 4);
    for (const c of more) expect(await c.ask('version\r\n', endsWith('\r\n'))).toMatch(/^VERSION /);
    const counts = await workerConnections(metricsPort);
    expect(counts.reduce((a, v) => a + v, 0)).toBe(4 * perThread);
    for (const c of [...users, ...more]) c.sock.destroy();
  }, 60_000);

  it('-o tcp_accept=reuseport: each worker thread accepts on a socket of its own, and thread 0 on none', async () => {
    const metricsPort = await freePort();
    server = await startServer({ kind: 'ours', args: ['-t', '4', '-o', `tcp_accept=reuseport,metrics_listen=${LOOPBACK}:${metricsPort}`] });
    const users = await clients(server.port, 4 * 6);
    for (const c of users) expect(await c.ask('version\r\n', endsWith('\r\n'))).toMatch(/^VERSION /);
    const counts = await workerConnections(metricsPort);
    expect(counts.reduce((a, v) => a + v, 0)).toBe(24);
    expect(counts.filter((v) => v > 0).length).toBeGreaterThan(1);
    const conns = await users[0].ask('stats conns\r\n', endsWith('END\r\n'));
    // Thread 0's bound socket is the one listening entry, as with dispatch.
    expect((conns.match(/:state conn_listening\r\n/g) ?? []).length).toBe(1);
    for (const c of users) c.sock.destroy();
  }, 60_000);
});

describe.runIf(targetKind() === 'ours')('-t 2: the port is this server\'s alone', () => {
  /** Start a second server on `port` and return its exit code and stderr (it must not start). */
  function second(port: number, mode: string): { status: number | null; stderr: string } {
    const r = spawnSync(process.execPath, [BIN, ...rootArgs, '-t', '2', '-U', '0', '-p', String(port), '-l', LOOPBACK, '-o', `tcp_accept=${mode}`],
      { encoding: 'utf8', timeout: 20_000 });
    return { status: r.status, stderr: r.stderr };
  }

  for (const first of ['dispatch', 'reuseport']) {
    it(`a second server on the port of a running one (-o tcp_accept=${first}) refuses to start, as memcached`, async () => {
      server = await startServer({ kind: 'ours', args: ['-t', '2', '-o', `tcp_accept=${first}`] });
      // With SO_REUSEPORT a second server of the same user could join the port and take half
      // of the clients to another cache; memcached exits with 71 and this message.
      for (const mode of ['dispatch', 'reuseport']) {
        const r = second(server.port, mode);
        expect(r.status, r.stderr).toBe(71);
        expect(r.stderr).toContain(`failed to listen on one of interface(s) ${LOOPBACK}: Address already in use`);
      }
      const c = new Client(server.port);
      await c.ready();
      expect(await c.ask('version\r\n', endsWith('\r\n'))).toMatch(/^VERSION /);
      c.sock.destroy();
    }, 60_000);
  }
});

describe.runIf(targetKind() === 'ours')('-t 4 with -c and -o no_maxconns_fast', () => {
  it('a held client is served when a slot frees on any thread, not only on its own', async () => {
    const max = 8;
    server = await startServer({ kind: 'ours', args: ['-t', '4', '-c', String(max), '-o', 'no_maxconns_fast'] });
    const first = await clients(server.port, max);
    for (const c of first) expect(await c.ask('version\r\n', endsWith('\r\n'))).toMatch(/^VERSION /);
    // The next ones wait (memcached's disabled listener), spread by the kernel over the threads.
    const held = await clients(server.port, max);
    for (const c of held) c.sock.write('version\r\n');
    await sleep(300);
    expect(held.map((c) => c.got)).toEqual(held.map(() => ''));
    // Free every slot: each held client's thread may not be the one its slot frees on.
    for (const c of first) c.sock.destroy();
    const deadline = Date.now() + WAIT_MS;
    while (held.some((c) => !c.got.startsWith('VERSION ')) && Date.now() < deadline) await sleep(10);
    expect(held.filter((c) => c.got.startsWith('VERSION ')).length).toBe(max);
    for (const c of held) c.sock.destroy();
  }, 60_000);
});
