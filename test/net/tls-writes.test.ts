/**
 * The TLS data path under load: decrypted bytes read into the connection's static buffer, and
 * replies written straight to the TLS handle one write at a time, what the sessions write
 * meanwhile gathered into the next write (src/net/connection.ts, tlsWriter). Checked with
 * self-checking traffic: pipelined batches of sets and gets of random sizes whose whole reply
 * stream is known in advance and compared byte for byte; a reader that stops reading while
 * megabytes of replies are due; a close right behind a large reply; watch lines written
 * beside a reply still in flight.
 */
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prng, seedFromEnv } from '../helpers/prng';
import { LOOPBACK, makePki, startInProcess, tlsArgs, TlsClient, type InProcessServer, type Pki } from './tls-fixtures';

const BATCHES = 120;
const DEADLINE_MS = 20_000;

let pki: Pki;
let server: InProcessServer;
/** The same server on the fallback path ('data' events, socket.write). */
let fallback: InProcessServer;

beforeAll(async () => {
  pki = makePki();
  server = await startInProcess([...tlsArgs(pki), '-m', '128', '-I', '2m']);
  fallback = await startInProcess([...tlsArgs(pki), '-m', '128', '-I', '2m'], {}, 'data');
});

afterAll(async () => {
  await server?.stop();
  await fallback?.stop();
  pki?.remove();
});

/** A value that names its key and version, so a torn or misplaced reply cannot pass. */
function valueOf(key: string, version: number, size: number): Buffer {
  const stamp = Buffer.from(`${key}/${version}:`, 'latin1');
  const v = Buffer.alloc(size);
  for (let i = 0; i < size; i++) v[i] = stamp[i % stamp.length];
  return v;
}

/** A raw TLS connection collecting every byte; `waitFor` bounds the wait by bytes received. */
class Raw {
  readonly socket: tls.TLSSocket;
  private chunks: Buffer[] = [];
  received = 0;
  closed = false;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = tls.connect({ host: LOOPBACK, port, servername: 'localhost', ca: fs.readFileSync(pki.caCert) });
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.received += d.length;
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
    });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('secureConnect', () => resolve());
      this.socket.once('error', reject);
    });
  }

  async waitFor(bytes: number, timeoutMs = DEADLINE_MS): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received < bytes) {
      if (Date.now() > deadline || (this.closed && this.received < bytes)) {
        throw new Error(`got ${this.received} of ${bytes} bytes${this.closed ? ' (closed)' : ''}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(bytes)];
    this.received -= bytes;
    return all.subarray(0, bytes);
  }

  async waitClosed(timeoutMs = DEADLINE_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('not closed');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** One connection's random pipelined traffic; every reply byte is predicted. */
async function randomTraffic(port: number, prng: Prng, name: string): Promise<void> {
  const c = new Raw(port);
  await c.ready;
  const versions = new Map<string, { version: number; size: number }>();
  try {
    for (let batch = 0; batch < BATCHES; batch++) {
      const requests: Buffer[] = [];
      const expected: Buffer[] = [];
      const n = prng.int(1, 40);
      for (let i = 0; i < n; i++) {
        const key = `${name}-${prng.int(0, 30)}`;
        if (prng.chance(0.3)) {
          const size = prng.chance(0.1) ? prng.int(16_000, 300_000) : prng.int(0, 2_000);
          const version = (versions.get(key)?.version ?? 0) + 1;
          versions.set(key, { version, size });
          requests.push(Buffer.from(`set ${key} ${version} 0 ${size}\r\n`, 'latin1'), valueOf(key, version, size), Buffer.from('\r\n'));
          expected.push(Buffer.from('STORED\r\n'));
        } else {
          const keys = Array.from({ length: prng.int(1, 4) }, () => `${name}-${prng.int(0, 30)}`);
          requests.push(Buffer.from(`get ${keys.join(' ')}\r\n`, 'latin1'));
          for (const k of keys) {
            const v = versions.get(k);
            if (v === undefined) continue;
            expected.push(Buffer.from(`VALUE ${k} ${v.version} ${v.size}\r\n`, 'latin1'), valueOf(k, v.version, v.size), Buffer.from('\r\n'));
          }
          expected.push(Buffer.from('END\r\n'));
        }
      }
      // Sent in pieces of random size, so requests straddle reads.
      const wire = Buffer.concat(requests);
      for (let at = 0; at < wire.length;) {
        const len = Math.min(wire.length - at, prng.int(1, 70_000));
        c.socket.write(wire.subarray(at, at + len));
        at += len;
      }
      const want = Buffer.concat(expected);
      const got = await c.waitFor(want.length);
      if (!got.equals(want)) {
        let i = 0;
        while (i < want.length && got[i] === want[i]) i++;
        throw new Error(`${name} batch ${batch}: replies differ at byte ${i}: ` +
          `${JSON.stringify(got.toString('latin1', i, i + 60))} vs ${JSON.stringify(want.toString('latin1', i, i + 60))}`);
      }
    }
  } finally {
    c.socket.destroy();
  }
}

describe('TLS writes straight to the handle', () => {
  it('answers random pipelined traffic on four connections byte for byte', async () => {
    const seed = seedFromEnv();
    await Promise.all([0, 1, 2, 3].map(async (i) => await randomTraffic(server.tlsPort, new Prng(seed + i), `c${i}`)));
  }, 60_000);

  it('answers the same traffic alike on the fallback path (\'data\' events, socket.write)', async () => {
    const seed = seedFromEnv();
    await Promise.all([0, 1].map(async (i) => await randomTraffic(fallback.tlsPort, new Prng(seed + i), `f${i}`)));
  }, 60_000);

  it('answers requests the client sent with the end of its handshake', async () => {
    for (const port of [server.tlsPort, fallback.tlsPort]) {
      // Written before the handshake completes: node:tls sends them right behind its
      // Finished, into a connection that is only just being handed over.
      const c = new Raw(port);
      const value = valueOf('early', 1, 5000);
      const lines = [Buffer.from(`set early 1 0 ${value.length}\r\n`), value, Buffer.from('\r\n')];
      for (let i = 0; i < 200; i++) lines.push(Buffer.from('get early\r\n'));
      c.socket.write(Buffer.concat(lines));
      const one = Buffer.concat([Buffer.from(`VALUE early 1 ${value.length}\r\n`), value, Buffer.from('\r\nEND\r\n')]);
      const want = Buffer.concat([Buffer.from('STORED\r\n'), ...Array.from({ length: 200 }, () => one)]);
      expect((await c.waitFor(want.length)).equals(want)).toBe(true);
      c.socket.destroy();
    }
  });

  it('holds replies for a client that stops reading, then delivers all of them in order', async () => {
    const setter = new TlsClient(server.tlsPort, { ca: fs.readFileSync(pki.caCert) });
    await setter.connected();
    const big = valueOf('slow', 1, 400_000);
    await setter.request(`set slow 1 0 ${big.length}\r\n${big.toString('latin1')}\r\n`, 'STORED\r\n');
    setter.close();
    const c = new Raw(server.tlsPort);
    await c.ready;
    c.socket.pause();
    const count = 30;
    c.socket.write('get slow\r\n'.repeat(count));
    await new Promise((r) => setTimeout(r, 300));
    c.socket.resume();
    const one = Buffer.concat([Buffer.from(`VALUE slow 1 ${big.length}\r\n`), big, Buffer.from('\r\nEND\r\n')]);
    const got = await c.waitFor(one.length * count);
    for (let i = 0; i < count; i++) expect(got.subarray(i * one.length, (i + 1) * one.length).equals(one)).toBe(true);
    // Still serving after the backlog.
    c.socket.write('version\r\n');
    expect((await c.waitFor(9)).toString()).toMatch(/^VERSION /);
    c.socket.destroy();
  }, 30_000);

  it('closes only after a large reply is written when quit follows it', async () => {
    const c = new Raw(server.tlsPort);
    await c.ready;
    const big = valueOf('q', 1, 1_500_000);
    c.socket.write(Buffer.concat([Buffer.from(`set q 1 0 ${big.length} noreply\r\n`), big, Buffer.from('\r\nget q\r\nquit\r\n')]));
    const one = Buffer.concat([Buffer.from(`VALUE q 1 ${big.length}\r\n`), big, Buffer.from('\r\nEND\r\n')]);
    expect((await c.waitFor(one.length)).equals(one)).toBe(true);
    await c.waitClosed();
  }, 30_000);

  it('a TLS watcher gets OK, then the log lines, while others are served', async () => {
    const w = new Raw(server.tlsPort);
    await w.ready;
    w.socket.write('watch fetchers\r\n');
    expect((await w.waitFor(4)).toString()).toBe('OK\r\n');
    const c = new TlsClient(server.tlsPort, { ca: fs.readFileSync(pki.caCert) });
    await c.connected();
    for (let i = 0; i < 20; i++) await c.request(`get watched${i}\r\n`, 'END\r\n');
    c.close();
    const deadline = Date.now() + DEADLINE_MS;
    let text = '';
    while (!text.includes('key=watched19')) {
      if (Date.now() > deadline) throw new Error(`watch lines: ${JSON.stringify(text)}`);
      await new Promise((r) => setTimeout(r, 10));
      if (w.received > 0) text += (await w.waitFor(w.received)).toString('latin1');
    }
    for (let i = 0; i < 20; i++) expect(text).toContain(`key=watched${i} `);
    w.socket.destroy();
  }, 30_000);
});
