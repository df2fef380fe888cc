/**
 * TLS in the real process (bin/memcached-ts.js, built): startup failure exit code, SIGHUP
 * reloading the certificates without dropping an open connection, refresh_certs through the
 * process's own hooks. The in-process details are in test/net/tls*.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canConnect, freePort, REPO_ROOT, sleep, stopProcess, trackProcess } from '../helpers/servers';
import { fingerprintOf, LOOPBACK, makePki, runWithInput, tlsExchange, TlsClient, type Pki } from '../net/tls-fixtures';

const BIN = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const rootArgs = process.getuid?.() === 0 ? ['-u', 'root'] : [];

let pki: Pki;

beforeAll(() => {
  pki = makePki();
});

afterAll(() => {
  pki?.remove();
});

describe('memcached-ts -Z', () => {
  let child: ChildProcess | undefined;
  let tlsPort = 0;
  let certPath = '';
  let keyPath = '';

  beforeAll(async () => {
    certPath = path.join(pki.dir, 'proc.crt');
    keyPath = path.join(pki.dir, 'proc.key');
    fs.copyFileSync(pki.serverCert, certPath);
    fs.copyFileSync(pki.serverKey, keyPath);
    const plainPort = await freePort();
    tlsPort = await freePort();
    child = spawn(process.execPath, [BIN, ...rootArgs, '-U', '0', '-Z', '-o', `ssl_chain_cert=${certPath},ssl_key=${keyPath}`,
      '-l', `notls:${LOOPBACK}:${plainPort},${LOOPBACK}:${tlsPort}`], { stdio: 'ignore' });
    trackProcess(child);
    const deadline = Date.now() + 15_000;
    while (!(await canConnect(plainPort)) || !(await canConnect(tlsPort))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('memcached-ts -Z did not start');
      await sleep(50);
    }
  }, 30_000);

  afterAll(async () => {
    if (child !== undefined) await stopProcess(child);
  });

  it('SIGHUP reloads the certificates; an open connection keeps working', async () => {
    const open = new TlsClient(tlsPort, { rejectUnauthorized: false });
    await open.connected();
    expect(open.socket.getPeerCertificate().fingerprint256).toBe(fingerprintOf(pki.serverCert));
    fs.copyFileSync(pki.serverCert2, certPath);
    fs.copyFileSync(pki.serverKey2, keyPath);
    process.kill((child as ChildProcess).pid as number, 'SIGHUP');
    const want = fingerprintOf(pki.serverCert2);
    const deadline = Date.now() + 5000;
    let seen = '';
    while (seen !== want && Date.now() < deadline) {
      seen = (await tlsExchange(tlsPort, 'version\r\n', { rejectUnauthorized: false })).fingerprint;
      if (seen !== want) await sleep(50);
    }
    expect(seen).toBe(want);
    expect(await open.request('version\r\n')).toMatch(/^VERSION /);
    open.close();
  });

  it('refresh_certs answers OK over TLS', async () => {
    const r = await tlsExchange(tlsPort, 'refresh_certs\r\n', { rejectUnauthorized: false });
    expect(r.text).toBe('OK\r\n');
  });
});

describe('-u', () => {
  const isRoot = process.getuid?.() === 0;
  it.skipIf(!isRoot)('reads the certificate and key before switching user, as memcached: files only root can read work', async () => {
    // makePki's directory is mode 0700, owned by root: user nobody cannot read in it.
    expect(fs.statSync(pki.dir).mode & 0o077).toBe(0);
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, '-u', 'nobody', '-U', '0', '-p', String(port), '-l', LOOPBACK, '-Z',
      '-o', `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKey}`], { stdio: 'ignore' });
    trackProcess(child);
    try {
      const deadline = Date.now() + 15_000;
      while (!(await canConnect(port))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`memcached-ts -u nobody -Z did not start (exit ${child.exitCode})`);
        await sleep(50);
      }
      expect((await tlsExchange(port, 'version\r\n', { rejectUnauthorized: false })).text).toMatch(/^VERSION /);
      const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
      expect(uid).not.toBe('0');
    } finally {
      await stopProcess(child);
    }
  }, 30_000);
});

describe('startup failures', () => {
  it('exits 64 with memcached\'s message when the certificate cannot be loaded', async () => {
    const port = await freePort();
    const r = await runWithInput(process.execPath, [BIN, ...rootArgs, '-U', '0', '-p', String(port), '-l', LOOPBACK, '-Z',
      '-o', 'ssl_chain_cert=/nonexistent/chain.pem'], '', 15_000);
    expect(r.code, r.stderr).toBe(64);
    expect(r.stderr).toContain('Error loading the certificate chain: /nonexistent/chain.pem : No such file or directory');
  });
});
