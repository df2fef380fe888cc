/**
 * TLS end to end (memcached's -Z and -o ssl_*): real clients (openssl s_client, pymemcache,
 * memtier_benchmark, node:tls) against an in-process server parsed from memcached's command
 * line; a notls: listener beside a TLS one; stats; client certificates; certificate reload.
 * Resumption has its own file (tls-resumption.test.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonWithPymemcache, which } from '../helpers/tools';
import {
  fingerprintOf, LOOPBACK, makePki, runWithInput, startInProcess, statsOver, tlsArgs, tlsExchange, TlsClient, Watcher,
  type InProcessServer, type Pki,
} from './tls-fixtures';

let pki: Pki;

beforeAll(() => {
  pki = makePki();
});

afterAll(() => {
  pki?.remove();
});

function plainExchange(port: number, request: string, until = '\r\n', timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const sock = net.connect(port, LOOPBACK, () => sock.write(request));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`timed out; received ${JSON.stringify(text)}`));
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

describe('a TLS listener and a notls: listener', () => {
  let server: InProcessServer;

  beforeAll(async () => {
    server = await startInProcess(tlsArgs(pki, [`ssl_ca_cert=${pki.caCert}`]));
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('binds both, TLS only where asked', () => {
    expect(server.tlsPort).toBeGreaterThan(0);
    expect(server.plainPort).toBeGreaterThan(0);
    expect(server.network.addresses().tls.map((a) => a.port)).toEqual([server.tlsPort]);
  });

  it('openssl s_client gets VERSION over TLS', async () => {
    const r = await runWithInput('openssl', ['s_client', '-connect', `${LOOPBACK}:${server.tlsPort}`, '-CAfile', pki.caCert,
      '-verify_return_error', '-quiet'], 'version\r\nquit\r\n', 15_000);
    expect(r.timedOut, r.stderr).toBe(false);
    expect(r.stdout).toMatch(/^VERSION 1\.6\.\d+\r\n$/);
  });

  it('the notls: listener serves plain text beside it', async () => {
    expect(await plainExchange(server.plainPort, 'version\r\n')).toMatch(/^VERSION /);
    await expect(tlsExchange(server.plainPort, 'version\r\n', { rejectUnauthorized: false }, '\r\n', 2000)).rejects.toThrow();
  });

  it('stores and reads values over TLS with node:tls, certificate verified against the CA', async () => {
    const c = new TlsClient(server.tlsPort, { ca: fs.readFileSync(pki.caCert) });
    await c.connected();
    expect(await c.request('set k 5 0 3\r\nabc\r\n')).toBe('STORED\r\n');
    expect(await c.request('get k\r\n', 'END\r\n')).toBe('VALUE k 5 3\r\nabc\r\nEND\r\n');
    c.close();
    // The value is the same store whichever listener serves it.
    expect(await plainExchange(server.plainPort, 'get k\r\n', 'END\r\n')).toBe('VALUE k 5 3\r\nabc\r\nEND\r\n');
  });

  it('a plain-text client on the TLS port: a protocol error, in watch connevents as memcached 1.6.45 writes it', async () => {
    const watcher = await Watcher.start(server.plainPort, 'connevents');
    const before = { proto: server.stats.ssl_proto_errors, handshake: server.stats.ssl_handshake_errors };
    let localPort = 0;
    await new Promise<void>((resolve) => {
      const sock = net.connect(server.tlsPort, LOOPBACK, () => {
        localPort = sock.localPort ?? 0;
        sock.write('version\r\n');
      });
      sock.on('error', () => undefined);
      sock.on('close', () => resolve());
      sock.resume();
    });
    const closed = await watcher.line(new RegExp(`^type=conn_close rip=127\\.0\\.0\\.1 rport=${localPort} `));
    const id = /cfd=(\d+)$/.exec(closed)?.[1];
    const mine = watcher.lines.filter((l) => l.endsWith(`cfd=${id}`) || l.startsWith(`type=conntlserr fd=${id} `));
    expect(mine).toEqual([
      `type=conn_new rip=127.0.0.1 rport=${localPort} transport=tcp cfd=${id}`,
      `type=conntlserr fd=${id} msg=error:0A00010B:SSL routines::wrong version number`,
      `type=conn_close rip=127.0.0.1 rport=${localPort} transport=tcp reason=error cfd=${id}`,
    ]);
    expect(server.stats.ssl_proto_errors).toBe(before.proto + 1);
    expect(server.stats.ssl_handshake_errors).toBe(before.handshake);
    watcher.close();
  });

  it('stats shows memcached\'s ssl_* lines with the real settings', async () => {
    const general = await statsOver(server.tlsPort);
    const names = [...general.keys()];
    const at = names.indexOf('log_watchers');
    // memcached prints ssl_new_sessions only with ssl_session_cache; ssl_resumed_sessions is ours.
    expect(names.slice(at + 1, at + 5)).toEqual(['ssl_resumed_sessions', 'ssl_handshake_errors', 'ssl_proto_errors',
      'time_since_server_cert_refresh']);
    const settings = await statsOver(server.tlsPort, 'settings');
    expect(settings.get('ssl_enabled')).toBe('yes');
    expect(settings.get('ssl_chain_cert')).toBe(pki.serverCert);
    expect(settings.get('ssl_key')).toBe(pki.serverKey);
    expect(settings.get('ssl_ca_cert')).toBe(pki.caCert);
    expect(settings.get('ssl_verify_mode')).toBe('0');
    expect(settings.get('ssl_keyformat')).toBe('1');
    expect(settings.get('ssl_ciphers')).toBe('NULL');
    expect(settings.get('ssl_wbuf_size')).toBe(String(16 * 1024));
    expect(settings.get('ssl_session_cache')).toBe('no');
    expect(settings.get('ssl_kernel_tls')).toBe('no');
    expect(settings.get('ssl_min_version')).toBe('tlsv1.2');
    expect(settings.get('inter')).toBe(`notls:${LOOPBACK}:0,${LOOPBACK}:0`);
  });

  it('pymemcache talks to it through an ssl context', async () => {
    const script = [
      'import ssl, sys',
      'from pymemcache.client.base import Client',
      'ctx = ssl.create_default_context(cafile=sys.argv[2])',
      "c = Client(('127.0.0.1', int(sys.argv[1])), tls_context=ctx, connect_timeout=5, timeout=5)",
      "c.set('py', b'over tls')",
      "print(c.get('py').decode(), c.version().decode())",
      'c.close()',
    ].join('\n');
    const r = await runWithInput(pythonWithPymemcache(), ['-c', script, String(server.tlsPort), pki.caCert], '', 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^over tls 1\.6\.\d+$/);
  });

  const memtier = which('memtier_benchmark');
  it.skipIf(memtier === undefined)('memtier_benchmark --tls runs a short load', async () => {
    const before = server.stats.total_connections;
    const r = await runWithInput(memtier as string, ['-s', LOOPBACK, '-p', String(server.tlsPort), '--protocol=memcache_text',
      '--tls', '--cacert', pki.caCert, '--tls-skip-verify', '-t', '1', '-c', '4', '-n', '200', '--ratio=1:4',
      '--data-size=64', '--key-maximum=500', '--hide-histogram'], '', 60_000);
    expect(r.timedOut).toBe(false);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const totals = /Totals\s+([\d.]+)/.exec(r.stdout);
    expect(totals, r.stdout.slice(-2000)).not.toBeNull();
    expect(Number((totals as RegExpExecArray)[1])).toBeGreaterThan(0);
    expect(server.stats.total_connections - before).toBeGreaterThanOrEqual(4);
  }, 90_000);
});

describe('refresh_certs', () => {
  let server: InProcessServer;
  let certPath: string;
  let keyPath: string;

  beforeAll(async () => {
    // The server reads these paths; the test swaps their contents.
    certPath = path.join(pki.dir, 'live.crt');
    keyPath = path.join(pki.dir, 'live.key');
    fs.copyFileSync(pki.serverCert, certPath);
    fs.copyFileSync(pki.serverKey, keyPath);
    server = await startInProcess(['-Z', '-o', `ssl_chain_cert=${certPath},ssl_key=${keyPath}`, '-l', `${LOOPBACK}:0`, '-U', '0']);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('swaps the certificate for new connections while an open one keeps working', async () => {
    const existing = new TlsClient(server.tlsPort, { rejectUnauthorized: false });
    await existing.connected();
    expect(existing.socket.getPeerCertificate().fingerprint256).toBe(fingerprintOf(pki.serverCert));
    expect(await existing.request('set before 0 0 1\r\nx\r\n')).toBe('STORED\r\n');

    fs.copyFileSync(pki.serverCert2, certPath);
    fs.copyFileSync(pki.serverKey2, keyPath);
    expect(await existing.request('refresh_certs\r\n')).toBe('OK\r\n');

    const fresh = await tlsExchange(server.tlsPort, 'get before\r\n', { rejectUnauthorized: false }, 'END\r\n');
    expect(fresh.fingerprint).toBe(fingerprintOf(pki.serverCert2));
    expect(fresh.text).toBe('VALUE before 0 1\r\nx\r\nEND\r\n');
    expect(await existing.request('version\r\n')).toMatch(/^VERSION /);
    expect(existing.socket.getPeerCertificate().fingerprint256).toBe(fingerprintOf(pki.serverCert));
    existing.close();
    const stats = await statsOver(server.tlsPort);
    expect(Number(stats.get('time_since_server_cert_refresh'))).toBeLessThanOrEqual(2);
  });

  it('keeps the old certificate and replies with memcached\'s error text when a file is bad', async () => {
    const served = (await tlsExchange(server.tlsPort, 'version\r\n', { rejectUnauthorized: false })).fingerprint;
    fs.writeFileSync(certPath, 'not a certificate\n');
    const c = new TlsClient(server.tlsPort, { rejectUnauthorized: false });
    await c.connected();
    expect(await c.request('refresh_certs\r\n')).toMatch(new RegExp(`^Error loading the certificate chain: ${escape(certPath)} : .+\\r\\n$`));
    // memcached writes the error even with noreply; OK is silent with noreply.
    expect(await c.request('refresh_certs noreply\r\n')).toMatch(/^Error loading the certificate chain: /);
    fs.copyFileSync(pki.serverCert2, certPath);
    fs.copyFileSync(pki.serverKey, keyPath);
    expect(await c.request('refresh_certs\r\n')).toBe('Error validating the certificate: the private key does not match the certificate\r\n');
    fs.copyFileSync(pki.serverKey2, keyPath);
    expect(await c.request('refresh_certs noreply\r\nversion\r\n')).toMatch(/^VERSION /);
    c.close();
    expect((await tlsExchange(server.tlsPort, 'version\r\n', { rejectUnauthorized: false })).fingerprint).toBe(served);
  });

  it('replies "Error TLS not enabled" without -Z, as memcached', async () => {
    const plain = await startInProcess(['-l', `${LOOPBACK}:0`, '-U', '0']);
    try {
      expect(await plainExchange(plain.plainPort, 'refresh_certs\r\nrefresh_certs noreply\r\n', 'enabled\r\nError TLS not enabled\r\n'))
        .toBe('Error TLS not enabled\r\nError TLS not enabled\r\n');
      expect(plain.network.reloadCertificates()).toBe('Error TLS not enabled');
    } finally {
      await plain.stop();
    }
  });
});

describe('client certificates (ssl_verify_mode)', () => {
  const withCert = (): { cert: Buffer; key: Buffer } => ({ cert: fs.readFileSync(pki.clientCert), key: fs.readFileSync(pki.clientKey) });
  const rogue = (): { cert: Buffer; key: Buffer } => ({ cert: fs.readFileSync(pki.rogueCert), key: fs.readFileSync(pki.rogueKey) });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`mode 2 (require) accepts a CA-signed client and rejects none or a foreign one, ${version}`, async () => {
      const server = await startInProcess(tlsArgs(pki, ['ssl_verify_mode=2', `ssl_ca_cert=${pki.caCert}`]));
      try {
        const opts = { rejectUnauthorized: false, maxVersion: version };
        const ok = await tlsExchange(server.tlsPort, 'version\r\n', { ...opts, ...withCert() });
        expect(ok.text).toMatch(/^VERSION /);
        await expect(tlsExchange(server.tlsPort, 'version\r\n', opts, '\r\n', 3000)).rejects.toThrow();
        await expect(tlsExchange(server.tlsPort, 'version\r\n', { ...opts, ...rogue() }, '\r\n', 3000)).rejects.toThrow();
        // memcached 1.6.45 counts failures inside the handshake as protocol errors.
        await waitUntil(() => server.stats.ssl_proto_errors === 2);
        expect(server.stats.ssl_handshake_errors).toBe(0);
        expect((await statsOver(server.tlsPort, 'settings', withCert())).get('ssl_verify_mode')).toBe('3');
      } finally {
        await server.stop();
      }
    });
  }

  it('mode 1 (request) accepts a client without a certificate but not one with a bad certificate', async () => {
    const server = await startInProcess(tlsArgs(pki, ['ssl_verify_mode=1', `ssl_ca_cert=${pki.caCert}`]));
    try {
      const opts = { rejectUnauthorized: false };
      expect((await tlsExchange(server.tlsPort, 'version\r\n', opts)).text).toMatch(/^VERSION /);
      expect((await tlsExchange(server.tlsPort, 'version\r\n', { ...opts, ...withCert() })).text).toMatch(/^VERSION /);
      await expect(tlsExchange(server.tlsPort, 'version\r\n', { ...opts, ...rogue() }, '\r\n', 3000)).rejects.toThrow();
      await waitUntil(() => server.stats.ssl_proto_errors === 1);
    } finally {
      await server.stop();
    }
  });
});

describe('limits', () => {
  it('a handshake in progress holds a -c slot; over the limit the client gets memcached\'s plain error line', async () => {
    const server = await startInProcess([...tlsArgs(pki), '-c', '2']);
    try {
      const idle: net.Socket[] = [];
      for (let i = 0; i < 2; i++) {
        const sock = net.connect(server.tlsPort, LOOPBACK);
        sock.on('error', () => undefined);
        idle.push(sock);
        await new Promise((r) => sock.once('connect', r));
      }
      const refused = await plainExchange(server.tlsPort, '', '\r\n');
      expect(refused).toBe('ERROR Too many open connections\r\n');
      expect(server.stats.rejected_connections).toBe(1);
      // Peers that leave before their ClientHello free their slots (memcached: "unexpected eof
      // while reading", a protocol error).
      for (const sock of idle) sock.destroy();
      await waitUntil(() => server.stats.ssl_proto_errors === 2, 3000, () => JSON.stringify(server.stats));
      expect((await tlsExchange(server.tlsPort, 'version\r\n', { rejectUnauthorized: false })).text).toMatch(/^VERSION /);
    } finally {
      await server.stop();
    }
  });
});

describe('startup', () => {
  it('reads a DER key with ssl_keyformat=2 and serves TLS 1.3 only with ssl_min_version=3', async () => {
    const server = await startInProcess(['-Z', '-o',
      `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKeyDer},ssl_keyformat=2,ssl_min_version=3`, '-l', `${LOOPBACK}:0`, '-U', '0']);
    try {
      const r = await tlsExchange(server.tlsPort, 'version\r\n', { rejectUnauthorized: false });
      expect(r.protocol).toBe('TLSv1.3');
      await expect(tlsExchange(server.tlsPort, 'version\r\n', { rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, '\r\n', 3000))
        .rejects.toThrow();
    } finally {
      await server.stop();
    }
  });

  it('takes the key from the chain file when ssl_key is not given', async () => {
    const both = path.join(pki.dir, 'both.pem');
    fs.writeFileSync(both, Buffer.concat([fs.readFileSync(pki.serverCert), fs.readFileSync(pki.serverKey)]));
    const server = await startInProcess(['-Z', '-o', `ssl_chain_cert=${both}`, '-l', `${LOOPBACK}:0`, '-U', '0']);
    try {
      expect((await tlsExchange(server.tlsPort, 'version\r\n', { rejectUnauthorized: false })).text).toMatch(/^VERSION /);
    } finally {
      await server.stop();
    }
  });

  it.each([
    [['ssl_chain_cert=/nonexistent/chain.pem'], /^Error loading the certificate chain: \/nonexistent\/chain\.pem : No such file or directory$/],
    [['ssl_chain_cert=CERT', 'ssl_key=/nonexistent/key.pem'], /^Error loading the key: \/nonexistent\/key\.pem : No such file or directory$/],
    [['ssl_chain_cert=CERT', 'ssl_key=ROGUE_KEY'], /^Error validating the certificate: /],
    [['ssl_chain_cert=CERT', 'ssl_key=KEY', 'ssl_ca_cert=/nonexistent/ca.pem'], /^Error loading the CA certificate: \/nonexistent\/ca\.pem : /],
    [['ssl_chain_cert=CERT', 'ssl_key=KEY', 'ssl_ciphers=NO-SUCH-CIPHER'], /^Error setting the provided cipher\(s\): NO-SUCH-CIPHER$/],
  ])('fails with memcached\'s message: %j', async (subs, message) => {
    const sub = subs.map((s) => s.replace('CERT', pki.serverCert).replace('ROGUE_KEY', pki.rogueKey).replace(/=KEY$/, `=${pki.serverKey}`));
    const failure = await startInProcess(['-Z', '-o', sub.join(','), '-l', `${LOOPBACK}:0`, '-U', '0']).then(
      async (s) => {
        await s.stop();
        return null;
      },
      (err: Error & { exitCode?: number }) => err,
    );
    expect(failure).not.toBeNull();
    expect(failure?.message).toMatch(message);
    expect(failure?.exitCode).toBe(64);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function waitUntil(cond: () => boolean, timeoutMs = 3000, what: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met in time ${what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
