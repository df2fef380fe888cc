/**
 * TLS as memcached 1.6.45 does it at the connection level: a client is a connection from the
 * moment it is accepted (counted, listed, announced) while its handshake runs; btls:/mtls:
 * listeners; ssl_proto_errors, ssl_handshake_errors and `watch connevents` conntlserr lines;
 * ssl_wbuf_size as the largest TLS record; close_notify on an idle kick.
 *
 * Connection counting is compared with memcached 1.6.45 itself when its binary is there
 * (MCTS_MEMCACHED_BIN, else ~/.cache/memcached-ts/memcached-1.6.45/memcached).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopProcess, trackProcess } from '../helpers/servers';
import {
  LOOPBACK, makePki, RecordingProxy, startInProcess, tlsExchange, TlsClient, Watcher, type InProcessServer, type Pki,
} from './tls-fixtures';

let pki: Pki;

beforeAll(() => {
  pki = makePki();
});

afterAll(() => {
  pki?.remove();
});

function waitUntil(cond: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out: ${what()}`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

/** One plain-text request on a new connection, read until `until`. */
function plainRequest(port: number, request: string, until = 'END\r\n', timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const sock = net.connect(port, LOOPBACK, () => sock.write(request));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply; got ${JSON.stringify(text)}`));
    }, timeoutMs);
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.endsWith(until)) {
        clearTimeout(timer);
        sock.destroy();
        resolve(text);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function plainStats(port: number, group = ''): Promise<Map<string, string>> {
  const text = await plainRequest(port, `stats${group === '' ? '' : ' ' + group}\r\n`);
  const map = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) map.set(m[1], m[2]);
  }
  return map;
}

function connectRaw(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, LOOPBACK, () => resolve(sock));
    sock.on('error', reject);
  });
}

function counters(stats: Map<string, string>): [number, number] {
  return [Number(stats.get('curr_connections')), Number(stats.get('total_connections'))];
}

/** A plain connection for `stats`: the same asker throughout, so only other clients change the counters. */
class StatsClient {
  private readonly sock: net.Socket;
  private text = '';

  constructor(port: number) {
    this.sock = net.connect(port, LOOPBACK);
    this.sock.on('data', (d: Buffer) => {
      this.text += d.toString('latin1');
    });
    this.sock.on('error', () => undefined);
  }

  async stats(group = ''): Promise<Map<string, string>> {
    this.text = '';
    this.sock.write(`stats${group === '' ? '' : ' ' + group}\r\n`);
    const deadline = Date.now() + 5000;
    while (!this.text.endsWith('END\r\n')) {
      if (Date.now() > deadline) throw new Error(`no stats reply; got ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const map = new Map<string, string>();
    for (const line of this.text.split('\r\n')) {
      const m = /^STAT (\S+) (.*)$/.exec(line);
      if (m !== null) map.set(m[1], m[2]);
    }
    return map;
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * Counting through a handshake, measured over the plain listener: a TCP client on the TLS
 * port that sends nothing, then a TLS client that completes. Returns curr/total_connections
 * relative to the start after each step, and the `stats conns` state of the silent client.
 */
async function countThroughHandshake(plainPort: number, tlsPort: number): Promise<{ steps: [number, number][]; state: string | undefined }> {
  const asker = new StatsClient(plainPort);
  try {
    // Start from quiet: connections of earlier steps (a start-up probe, earlier tests) may
    // still be closing on the server; wait (bounded) until the asker is its only client.
    const clients = async (): Promise<number> => {
      const conns = await asker.stats('conns');
      return [...conns].filter(([name, value]) => name.endsWith(':state') && value !== 'conn_listening').length;
    };
    for (const deadline = Date.now() + 5000; (await clients()) !== 1;) {
      if (Date.now() > deadline) throw new Error('the server still has other clients');
      await new Promise((r) => setTimeout(r, 20));
    }
    const [curr0, total0] = counters(await asker.stats());
    const delta = async (): Promise<[number, number]> => {
      const [curr, total] = counters(await asker.stats());
      return [curr - curr0, total - total0];
    };
    const steps: [number, number][] = [];
    const silent = await connectRaw(tlsPort);
    silent.on('error', () => undefined);
    // The server accepts on its own schedule: wait until it counts the connection (bounded).
    let now = await delta();
    for (const deadline = Date.now() + 5000; now[1] === 0 && Date.now() < deadline; now = await delta()) {
      await new Promise((r) => setTimeout(r, 20));
    }
    steps.push(now);
    const conns = await asker.stats('conns');
    let state: string | undefined;
    for (const [name, value] of conns) {
      const m = /^(\d+):addr$/.exec(name);
      if (m !== null && value === `tcp:127.0.0.1:${silent.localPort}`) state = conns.get(`${m[1]}:state`);
    }
    const client = new TlsClient(tlsPort, { rejectUnauthorized: false });
    await client.connected();
    expect(await client.request('version\r\n')).toMatch(/^VERSION /);
    steps.push(await delta());
    client.close();
    silent.destroy();
    return { steps, state };
  } finally {
    asker.close();
  }
}

function referenceBin(): string {
  const fromEnv = process.env.MCTS_MEMCACHED_BIN;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv;
  const cache = process.env.MCTS_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'memcached-ts');
  return path.join(cache, 'memcached-1.6.45', 'memcached');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, LOOPBACK, () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

describe('a client in its TLS handshake is a connection, as in memcached', () => {
  let server: InProcessServer;

  beforeAll(async () => {
    server = await startInProcess(['-Z', '-o', `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKey}`,
      '-l', `notls:${LOOPBACK}:0,${LOOPBACK}:0`, '-U', '0']);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('counts it in curr_connections and total_connections once, and lists it in stats conns', async () => {
    const r = await countThroughHandshake(server.plainPort, server.tlsPort);
    expect(r.steps).toEqual([[1, 1], [2, 2]]);
    expect(r.state).toBe('conn_new_cmd');
    await waitUntil(() => server.stats.curr_connections === 1, () => `curr ${server.stats.curr_connections}`);
  });

  it('announces it in watch connevents when accepted, before any handshake byte', async () => {
    const watcher = await Watcher.start(server.plainPort, 'connevents');
    const silent = await connectRaw(server.tlsPort);
    silent.on('error', () => undefined);
    const line = await watcher.line(new RegExp(`^type=conn_new rip=127\\.0\\.0\\.1 rport=${silent.localPort} transport=tcp cfd=\\d+$`));
    const id = (/cfd=(\d+)$/.exec(line) as RegExpExecArray)[1];
    silent.destroy();
    // Gone before its ClientHello: memcached's "unexpected eof while reading".
    await watcher.line(new RegExp(`^type=conn_close .* reason=error cfd=${id}$`));
    expect(watcher.lines.filter((l) => l.startsWith(`type=conntlserr fd=${id} `))).toEqual([
      `type=conntlserr fd=${id} msg=error:0A000126:SSL routines::unexpected eof while reading`,
    ]);
    watcher.close();
  });

  const reference = referenceBin();
  it.skipIf(!fs.existsSync(reference))('memcached 1.6.45 counts the same', async () => {
    const plainPort = await freePort();
    const tlsPort = await freePort();
    const args = ['-p', String(tlsPort), '-U', '0', '-Z', '-o', `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKey}`,
      '-l', `notls:${LOOPBACK}:${plainPort},${LOOPBACK}:${tlsPort}`];
    if (process.getuid?.() === 0) args.push('-u', 'nobody');
    const child: ChildProcess = spawn(reference, args, { stdio: 'ignore' });
    trackProcess(child);
    try {
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          (await connectRaw(plainPort)).destroy();
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const theirs = await countThroughHandshake(plainPort, tlsPort);
      const ours = await countThroughHandshake(server.plainPort, server.tlsPort);
      expect(ours).toEqual(theirs);
    } finally {
      await stopProcess(child);
    }
  });
});

describe('btls: and mtls: listeners', () => {
  const withCert = (): { cert: Buffer; key: Buffer } => ({ cert: fs.readFileSync(pki.clientCert), key: fs.readFileSync(pki.clientKey) });
  const rogue = (): { cert: Buffer; key: Buffer } => ({ cert: fs.readFileSync(pki.rogueCert), key: fs.readFileSync(pki.rogueKey) });

  async function listeners(verifyMode: number): Promise<{ server: InProcessServer; plain: number; dflt: number; btls: number; mtls: number }> {
    const server = await startInProcess(['-Z', '-o',
      `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKey},ssl_ca_cert=${pki.caCert},ssl_verify_mode=${verifyMode}`,
      '-l', `notls:${LOOPBACK}:0,${LOOPBACK}:0,btls:${LOOPBACK}:0,mtls:${LOOPBACK}:0`, '-U', '0']);
    const [plain, dflt, btls, mtls] = server.network.addresses().tcp.map((a) => a.port);
    return { server, plain, dflt, btls, mtls };
  }

  const served = async (port: number, options: tls.ConnectionOptions): Promise<boolean> =>
    tlsExchange(port, 'version\r\n', { rejectUnauthorized: false, ...options }, '\r\n', 3000).then(
      (r) => /^VERSION /.test(r.text),
      () => false,
    );

  it('mtls: requires a CA-signed client certificate and btls: asks for none, whatever ssl_verify_mode says', async () => {
    for (const mode of [0, 2]) {
      const l = await listeners(mode);
      try {
        for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
          const v = { maxVersion: version };
          expect(await served(l.btls, v), `btls, mode ${mode}, ${version}`).toBe(true);
          expect(await served(l.mtls, v), `mtls without a certificate, mode ${mode}, ${version}`).toBe(false);
          expect(await served(l.mtls, { ...v, ...rogue() }), `mtls, foreign certificate, mode ${mode}, ${version}`).toBe(false);
          expect(await served(l.mtls, { ...v, ...withCert() }), `mtls, CA-signed, mode ${mode}, ${version}`).toBe(true);
          expect(await served(l.dflt, v), `default listener without a certificate, mode ${mode}, ${version}`).toBe(mode === 0);
        }
        // Refused handshakes are protocol errors in memcached 1.6.45.
        const refused = mode === 0 ? 4 : 6;
        await waitUntil(() => l.server.stats.ssl_proto_errors === refused, () => `ssl_proto_errors ${l.server.stats.ssl_proto_errors}`);
        expect(l.server.stats.ssl_handshake_errors).toBe(0);
        // stats settings keeps memcached's global value; the listeners are in `inter` as given.
        const settings = await plainStats(l.plain, 'settings');
        expect(settings.get('ssl_verify_mode')).toBe(mode === 0 ? '0' : '3');
        expect(settings.get('inter')).toBe(`notls:${LOOPBACK}:0,${LOOPBACK}:0,btls:${LOOPBACK}:0,mtls:${LOOPBACK}:0`);
      } finally {
        await l.server.stop();
      }
    }
  });

  it('an mtls: client without a certificate: memcached\'s conntlserr line', async () => {
    const l = await listeners(0);
    try {
      const watcher = await Watcher.start(l.plain, 'connevents');
      expect(await served(l.mtls, { maxVersion: 'TLSv1.3' })).toBe(false);
      const line = await watcher.line(/^type=conntlserr /);
      expect(line).toMatch(/^type=conntlserr fd=\d+ msg=error:0A0000C7:SSL routines::peer did not return a certificate$/);
      expect(await served(l.mtls, { maxVersion: 'TLSv1.3', ...rogue() })).toBe(false);
      await watcher.until(() => watcher.lines.filter((x) => x.startsWith('type=conntlserr')).length === 2);
      expect(watcher.lines.filter((x) => x.startsWith('type=conntlserr'))[1])
        .toMatch(/^type=conntlserr fd=\d+ msg=error:0A000086:SSL routines::certificate verify failed$/);
      watcher.close();
    } finally {
      await l.server.stop();
    }
  });

  it('a session from a btls: listener does not resume on an mtls: one', async () => {
    const l = await listeners(0);
    try {
      for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
        const opts = { rejectUnauthorized: false, maxVersion: version, ...withCert() };
        const basic = await tlsExchange(l.btls, 'version\r\n', opts);
        expect(basic.session).not.toBeNull();
        const again = await tlsExchange(l.btls, 'version\r\n', { ...opts, session: basic.session as Buffer });
        expect(again.reused, version).toBe(true);
        const strict = await tlsExchange(l.mtls, 'version\r\n', { ...opts, session: basic.session as Buffer });
        expect(strict.reused, version).toBe(false);
        expect(strict.text).toMatch(/^VERSION /);
      }
    } finally {
      await l.server.stop();
    }
  });
});

describe('TLS errors and closes', () => {
  let server: InProcessServer;

  beforeAll(async () => {
    server = await startInProcess(['-Z', '-o', `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKey}`,
      '-l', `notls:${LOOPBACK}:0,${LOOPBACK}:0`, '-U', '0']);
  });

  afterAll(async () => {
    await server?.stop();
  });

  async function throughProxy(version: 'TLSv1.2' | 'TLSv1.3'): Promise<{ proxy: RecordingProxy; client: TlsClient }> {
    const proxy = await RecordingProxy.start(server.tlsPort);
    const client = new TlsClient(proxy.port, { rejectUnauthorized: false, maxVersion: version });
    await client.connected();
    expect(await client.request('version\r\n')).toMatch(/^VERSION /);
    return { proxy, client };
  }

  it('a corrupt record on a served connection: a protocol error and memcached\'s conntlserr line', async () => {
    const watcher = await Watcher.start(server.plainPort, 'connevents');
    const before = server.stats.ssl_proto_errors;
    const { proxy, client } = await throughProxy('TLSv1.3');
    (proxy.upstream as net.Socket).write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), Buffer.alloc(32, 7)]));
    const line = await watcher.line(/^type=conntlserr /);
    expect(line).toMatch(/^type=conntlserr fd=\d+ msg=error:0A000119:SSL routines::decryption failed or bad record mac$/);
    const id = (/fd=(\d+)/.exec(line) as RegExpExecArray)[1];
    await watcher.line(new RegExp(`^type=conn_close .* reason=error cfd=${id}$`));
    expect(server.stats.ssl_proto_errors).toBe(before + 1);
    client.close();
    proxy.close();
    watcher.close();
  });

  it('a reset on a served connection: strerror in conntlserr, not a protocol error (SSL_ERROR_SYSCALL)', async () => {
    const watcher = await Watcher.start(server.plainPort, 'connevents');
    const before = server.stats.ssl_proto_errors;
    const { proxy, client } = await throughProxy('TLSv1.3');
    (proxy.upstream as net.Socket).resetAndDestroy();
    expect(await watcher.line(/^type=conntlserr /)).toMatch(/^type=conntlserr fd=\d+ msg=Connection reset by peer$/);
    await watcher.line(/^type=conn_close .* reason=error /);
    expect(server.stats.ssl_proto_errors).toBe(before);
    client.close();
    proxy.close();
    watcher.close();
  });

  it('a client reset before the server accepted it: ssl_handshake_errors, logged against the listener', async () => {
    const conns = await plainStats(server.plainPort, 'conns');
    let listenerId = '';
    for (const [name, value] of conns) {
      const m = /^(\d+):addr$/.exec(name);
      if (m !== null && value === `tcp:127.0.0.1:${server.tlsPort}` && conns.get(`${m[1]}:state`) === 'conn_listening') listenerId = m[1];
    }
    expect(listenerId).not.toBe('');
    const watcher = await Watcher.start(server.plainPort, 'connevents');
    const before = { handshake: server.stats.ssl_handshake_errors, total: server.stats.total_connections };
    // This event loop (which accepts for the server) is blocked while another process
    // connects and resets: the kernel queues the connection, the server accepts it dead.
    const child = spawnSync(process.execPath, ['-e',
      `const s = require('net').connect(${server.tlsPort}, '127.0.0.1', () => s.resetAndDestroy()); s.on('error', () => {});`],
    { timeout: 10_000 });
    expect(child.status).toBe(0);
    await waitUntil(() => server.stats.ssl_handshake_errors === before.handshake + 1, () => `ssl_handshake_errors ${server.stats.ssl_handshake_errors}`);
    expect(await watcher.line(/^type=conntlserr /)).toBe(`type=conntlserr fd=${listenerId} msg=Connection reset by peer`);
    // No connection was made: nothing counted, no conn_new.
    expect(server.stats.total_connections).toBe(before.total);
    expect(watcher.lines.filter((l) => l.startsWith('type=conn_new'))).toEqual([]);
    watcher.close();
  });

  it('an idle kick ends the TLS session with close_notify, as memcached\'s SSL_shutdown', async () => {
    const idle = await startInProcess(['-Z', '-o', `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKey}`,
      '-l', `${LOOPBACK}:0`, '-U', '0'], { idleTimeoutSeconds: 1 });
    const proxy = await RecordingProxy.start(idle.tlsPort);
    try {
      // TLS 1.2: alerts travel as their own record type (21); TLS 1.3 hides them in type 23.
      const client = new TlsClient(proxy.port, { rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
      await client.connected();
      expect(await client.request('version\r\n')).toMatch(/^VERSION /);
      await waitUntil(() => proxy.serverEnded, () => 'the server did not close', 8000);
      const records = proxy.records();
      expect(records[records.length - 1].type).toBe(21);
      expect(idle.stats.idle_kicks).toBe(1);
      client.close();
    } finally {
      proxy.close();
      await idle.stop();
    }
  });
});

describe('ssl_wbuf_size', () => {
  async function recordsOfGet(wbufKib: number | null): Promise<number[]> {
    const sub = [`ssl_chain_cert=${pki.serverCert}`, `ssl_key=${pki.serverKey}`];
    if (wbufKib !== null) sub.push(`ssl_wbuf_size=${wbufKib}`);
    const server = await startInProcess(['-Z', '-o', sub.join(','), '-l', `${LOOPBACK}:0`, '-U', '0']);
    const proxy = await RecordingProxy.start(server.tlsPort);
    try {
      const client = new TlsClient(proxy.port, { rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
      await client.connected();
      const value = 'v'.repeat(12_000);
      expect(await client.request(`set big 0 0 ${value.length}\r\n${value}\r\n`)).toBe('STORED\r\n');
      const before = proxy.records().length;
      expect(await client.request('get big\r\n', 'END\r\n')).toBe(`VALUE big 0 ${value.length}\r\n${value}\r\nEND\r\n`);
      client.close();
      return proxy.records().slice(before).filter((r) => r.type === 23).map((r) => r.length);
    } finally {
      proxy.close();
      await server.stop();
    }
  }

  it('no TLS record carries more than ssl_wbuf_size bytes of reply', async () => {
    // Record overhead under TLS 1.2: at most an 8-byte explicit nonce and a 16-byte tag.
    const small = await recordsOfGet(1);
    expect(Math.max(...small)).toBeLessThanOrEqual(1024 + 24);
    expect(small.length).toBeGreaterThanOrEqual(12);
    const whole = await recordsOfGet(null);
    expect(Math.max(...whole)).toBeGreaterThan(12_000);
  });
});
