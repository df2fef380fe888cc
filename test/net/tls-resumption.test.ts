/**
 * TLS session resumption: tickets (TLS 1.2 and 1.3) and the session-ID cache (TLS 1.2,
 * ssl_session_cache) through the server, counted as ssl_resumed_sessions (and ssl_new_sessions,
 * the sessions put in the cache);
 * ticket key rotation (the previous key still opens tickets for one period); the cache bounds.
 * Timing is measured elsewhere (doc/tls.md); nothing here asserts speed.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { MessageChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installTicketKeyCallback } from '../../src/net/node-internals';
import {
  probeTicketKeyRing, REMOTE_SESSION_LOOKUP_TIMEOUT_MS, RemoteSessionCache, serveSessionCache, SessionCache, sessionProtocolVersion,
  TicketKeyRing,
} from '../../src/net/tls-resumption';
import { LOOPBACK, makePki, startInProcess, tlsArgs, tlsExchange, type InProcessServer, type Pki } from './tls-fixtures';

let pki: Pki;

beforeAll(() => {
  pki = makePki();
});

afterAll(() => {
  pki?.remove();
});

const NO_TICKET = { secureOptions: crypto.constants.SSL_OP_NO_TICKET };

/** Two connections, the second offering the first one's session. */
async function resumeOnce(port: number, options: tls.ConnectionOptions): Promise<{ first: boolean; second: boolean; session: Buffer }> {
  const opts = { rejectUnauthorized: false, ...options };
  const first = await tlsExchange(port, 'version\r\n', opts);
  if (first.session === null) throw new Error('the server gave no session');
  const second = await tlsExchange(port, 'version\r\n', { ...opts, session: first.session });
  return { first: first.reused, second: second.reused, session: first.session };
}

describe('through the server', () => {
  let tickets: InProcessServer;
  let cached: InProcessServer;

  beforeAll(async () => {
    tickets = await startInProcess(tlsArgs(pki));
    cached = await startInProcess(tlsArgs(pki, ['ssl_session_cache']));
  });

  afterAll(async () => {
    await tickets?.stop();
    await cached?.stop();
  });

  it('uses the two-key ticket ring (the private hook passed its startup probe)', () => {
    expect(tickets.logs.join('\n')).not.toContain('several session ticket keys are unavailable');
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`resumes with a session ticket, ${version}`, async () => {
      const before = { n: tickets.stats.ssl_new_sessions, r: tickets.stats.ssl_resumed_sessions };
      const r = await resumeOnce(tickets.tlsPort, { maxVersion: version });
      expect(r).toMatchObject({ first: false, second: true });
      // Without ssl_session_cache nothing goes into the server's cache (memcached's ssl_new_sessions).
      expect(tickets.stats.ssl_new_sessions - before.n).toBe(0);
      expect(tickets.stats.ssl_resumed_sessions - before.r).toBe(1);
    });
  }

  it('resumes a TLS 1.2 client that takes no tickets from the session-ID cache (ssl_session_cache)', async () => {
    const r = await resumeOnce(cached.tlsPort, { maxVersion: 'TLSv1.2', ...NO_TICKET });
    expect(r).toMatchObject({ first: false, second: true });
    expect(cached.stats.ssl_resumed_sessions).toBe(1);
    expect(cached.stats.ssl_new_sessions).toBe(1);
  });

  it('does not resume that client without ssl_session_cache', async () => {
    const before = tickets.stats.ssl_resumed_sessions;
    const r = await resumeOnce(tickets.tlsPort, { maxVersion: 'TLSv1.2', ...NO_TICKET });
    expect(r).toMatchObject({ first: false, second: false });
    expect(tickets.stats.ssl_resumed_sessions - before).toBe(0);
  });

  it('ssl_new_sessions counts the sessions put in the cache, as memcached\'s new-session callback', async () => {
    const before = cached.stats.ssl_new_sessions;
    const r = await resumeOnce(cached.tlsPort, { maxVersion: 'TLSv1.2', ...NO_TICKET });
    expect(r).toMatchObject({ first: false, second: true });
    // One full TLS 1.2 handshake; the resumed one makes no new session.
    expect(cached.stats.ssl_new_sessions - before).toBe(1);
  });

  it('sessions survive a certificate reload (tickets and the session-ID cache)', async () => {
    const opts = { rejectUnauthorized: false };
    const ticket = await tlsExchange(tickets.tlsPort, 'version\r\n', { ...opts, maxVersion: 'TLSv1.3' });
    const byId = await tlsExchange(cached.tlsPort, 'version\r\n', { ...opts, maxVersion: 'TLSv1.2', ...NO_TICKET });
    expect(tickets.network.reloadCertificates()).toBeNull();
    expect(cached.network.reloadCertificates()).toBeNull();
    expect((await tlsExchange(tickets.tlsPort, 'version\r\n', { ...opts, maxVersion: 'TLSv1.3', session: ticket.session as Buffer })).reused)
      .toBe(true);
    expect((await tlsExchange(cached.tlsPort, 'version\r\n', { ...opts, maxVersion: 'TLSv1.2', ...NO_TICKET, session: byId.session as Buffer })).reused)
      .toBe(true);
  });

  it('a session from another server (other ticket keys) gets a full handshake', async () => {
    const foreign = await resumeOnce(cached.tlsPort, { maxVersion: 'TLSv1.3' });
    const r = await tlsExchange(tickets.tlsPort, 'version\r\n', { rejectUnauthorized: false, session: foreign.session });
    expect(r.reused).toBe(false);
    expect(r.text).toMatch(/^VERSION /);
  });
});

describe('ticket key rotation', () => {
  let server: tls.Server;
  let port: number;
  const ring = new TicketKeyRing();

  beforeAll(async () => {
    server = tls.createServer({ cert: fs.readFileSync(pki.serverCert), key: fs.readFileSync(pki.serverKey) });
    expect(installTicketKeyCallback(server, (name, encrypt) => ring.answer(name, encrypt))).toBe(true);
    server.on('secureConnection', (s: tls.TLSSocket) => {
      s.on('error', () => undefined);
      s.on('data', () => s.write('VERSION x\r\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    server?.close();
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`keeps the previous key valid for one period, ${version}`, async () => {
      const opts = { rejectUnauthorized: false, maxVersion: version };
      const first = await tlsExchange(port, 'version\r\n', opts);
      ring.rotate();
      const afterOne = await tlsExchange(port, 'version\r\n', { ...opts, session: first.session as Buffer });
      expect(afterOne.reused).toBe(true);
      ring.rotate();
      ring.rotate();
      const afterThree = await tlsExchange(port, 'version\r\n', { ...opts, session: first.session as Buffer });
      expect(afterThree.reused).toBe(false);
      const renewed = await tlsExchange(port, 'version\r\n', { ...opts, session: afterThree.session as Buffer });
      expect(renewed.reused).toBe(true);
    });
  }

  it('the startup probe passes on this Node.js', async () => {
    const options = { cert: fs.readFileSync(pki.serverCert), key: fs.readFileSync(pki.serverKey) };
    expect(await probeTicketKeyRing(options, {})).toBe(true);
  });
});

describe('SessionCache', () => {
  const id = (n: number): Buffer => Buffer.alloc(32, n);
  const session12 = Buffer.from('3082000a020101020203030000', 'hex');
  const session13 = Buffer.from('3082000a020101020203040000', 'hex');

  it('reads the protocol version of a serialized session', async () => {
    const server = await startInProcess(tlsArgs(pki));
    try {
      for (const [version, code] of [['TLSv1.2', 0x0303], ['TLSv1.3', 0x0304]] as const) {
        const r = await tlsExchange(server.tlsPort, 'version\r\n', { rejectUnauthorized: false, maxVersion: version });
        expect(sessionProtocolVersion(r.session as Buffer)).toBe(code);
      }
    } finally {
      await server.stop();
    }
    expect(sessionProtocolVersion(Buffer.from('nonsense'))).toBe(-1);
  });

  it('is bounded by entries, oldest out first', () => {
    const cache = new SessionCache(3, 1 << 20, 60_000);
    for (let i = 1; i <= 5; i++) cache.store(id(i), session12);
    expect(cache.size).toBe(3);
    expect(cache.lookup(id(1))).toBeNull();
    expect(cache.lookup(id(2))).toBeNull();
    expect(cache.lookup(id(5))).toEqual(session12);
  });

  it('is bounded by bytes', () => {
    const big = Buffer.concat([session12, Buffer.alloc(1000)]);
    const cache = new SessionCache(100, 3000, 60_000);
    for (let i = 1; i <= 10; i++) cache.store(id(i), big);
    expect(cache.bytes).toBeLessThanOrEqual(3000);
    expect(cache.size).toBe(2);
    expect(cache.lookup(id(10))).not.toBeNull();
  });

  it('forgets expired sessions and skips TLS 1.3 ones', () => {
    let now = 0;
    const cache = new SessionCache(100, 1 << 20, 1000, () => now);
    cache.store(id(1), session12);
    cache.store(id(2), session13);
    expect(cache.size).toBe(1);
    now = 999;
    expect(cache.lookup(id(1))).not.toBeNull();
    now = 1000;
    expect(cache.lookup(id(1))).toBeNull();
    expect(cache.size).toBe(0);
  });
});

describe('one session cache across serving threads', () => {
  const id = (n: number): Buffer => Buffer.alloc(32, n);
  const session12 = Buffer.from('3082000a020101020203030000', 'hex');
  const lookup = (remote: RemoteSessionCache, key: Buffer): Promise<Buffer | null> =>
    new Promise((resolve) => remote.lookup(key, resolve));

  it('another thread stores into thread 0\'s cache and finds sessions there, over a message port', async () => {
    const cache = new SessionCache(16, 1 << 20, 60_000);
    const { port1, port2 } = new MessageChannel();
    serveSessionCache(port1, cache);
    const remote = new RemoteSessionCache(port2);
    try {
      remote.store(id(1), session12);
      expect(await lookup(remote, id(1))).toEqual(session12);
      expect(cache.size).toBe(1);
      expect(remote.size).toBe(0);
      expect(await lookup(remote, id(2))).toBeNull();
      cache.store(id(3), session12);
      expect(await lookup(remote, id(3))).toEqual(session12);
    } finally {
      port1.close();
    }
  });

  it('a lookup nobody answers resumes nothing once its time is up', async () => {
    const { port1, port2 } = new MessageChannel();
    const remote = new RemoteSessionCache(port2);
    try {
      const started = Date.now();
      expect(await lookup(remote, id(1))).toBeNull();
      expect(Date.now() - started).toBeGreaterThanOrEqual(REMOTE_SESSION_LOOKUP_TIMEOUT_MS - 50);
    } finally {
      port1.close();
    }
  });
});
