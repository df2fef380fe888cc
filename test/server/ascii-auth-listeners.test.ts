/**
 * -Y (ascii authentication) on every listener, as memcached 1.6.45: a proto[negotiating]
 * listener speaks ascii only (a binary request cannot skip the token), TLS listeners (default,
 * btls:, mtls:) and plain ones ask for the token alike, proto[binary] is refused at startup.
 * The real process (bin/memcached-ts.js); replies compared with memcached 1.6.45 where its
 * binary is present.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../src/cli/options';
import { canConnect, freePort, LOOPBACK, REPO_ROOT, sleep, stopProcess, trackProcess } from '../helpers/servers';
import { makePki, type Pki } from '../net/tls-fixtures';

const BIN = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const userArgs = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];

function referenceBin(): string {
  const fromEnv = process.env.MCTS_MEMCACHED_BIN;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv;
  const cache = process.env.MCTS_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'memcached-ts');
  return path.join(cache, 'memcached-1.6.45', 'memcached');
}

let pki: Pki;
let authDir = '';
let authFile = '';

beforeAll(() => {
  pki = makePki();
  // Read after -u, as memcached reads it: it must be readable by that user.
  authDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-auth-'));
  fs.chmodSync(authDir, 0o755);
  authFile = path.join(authDir, 'authfile');
  fs.writeFileSync(authFile, 'foo:bar\n', { mode: 0o644 });
});

afterAll(() => {
  pki?.remove();
  if (authDir !== '') fs.rmSync(authDir, { recursive: true, force: true });
});

/**
 * Sends `request` over a connection opened by `open`; returns what came until the peer closed,
 * or `quietMs` passed after the last data, or `silentMs` passed with no data at all.
 */
function exchange(open: () => net.Socket, request: Buffer | string, silentMs = 5000, quietMs = 300): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const sock = open();
    let timer = setTimeout(() => finish(), silentMs);
    const finish = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(text);
    };
    sock.on(sock instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => sock.write(request));
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(finish, quietMs);
    });
    sock.on('error', () => finish());
    sock.on('close', () => finish());
  });
}

interface Ports { negotiating: number; plain: number; tls: number; btls: number; mtls: number }

async function startServer(bin: string[], ports: Ports): Promise<ChildProcess> {
  const child = spawn(bin[0], [...bin.slice(1), ...userArgs, '-U', '0', '-Y', authFile, '-Z', '-p', String(ports.tls),
    '-o', `ssl_chain_cert=${pki.serverCert},ssl_key=${pki.serverKey},ssl_ca_cert=${pki.caCert}`,
    '-l', [`notls:proto[negotiating]:${LOOPBACK}:${ports.negotiating}`, `notls:${LOOPBACK}:${ports.plain}`, `${LOOPBACK}:${ports.tls}`,
      `btls:${LOOPBACK}:${ports.btls}`, `mtls:${LOOPBACK}:${ports.mtls}`].join(',')], { stdio: 'ignore' });
  trackProcess(child);
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(ports.plain))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${bin.join(' ')} did not start (exit ${child.exitCode})`);
    await sleep(50);
  }
  return child;
}

/** What each listener answers to an unauthenticated request, then to a login and a request. */
async function answers(ports: Ports): Promise<Record<string, string[]>> {
  const cert = { cert: fs.readFileSync(pki.clientCert), key: fs.readFileSync(pki.clientKey) };
  const openers: Record<string, () => net.Socket> = {
    negotiating: () => net.connect(ports.negotiating, LOOPBACK),
    plain: () => net.connect(ports.plain, LOOPBACK),
    tls: () => tls.connect({ host: LOOPBACK, port: ports.tls, rejectUnauthorized: false }),
    btls: () => tls.connect({ host: LOOPBACK, port: ports.btls, rejectUnauthorized: false }),
    mtls: () => tls.connect({ host: LOOPBACK, port: ports.mtls, rejectUnauthorized: false, ...cert }),
  };
  // A binary VERSION request (magic 0x80): on a negotiating listener without -Y it would be
  // answered in binary; under -Y it is the start of an ascii line.
  const binaryVersion = Buffer.from('800b00000000000000000000000000000000000000000000', 'hex');
  const out: Record<string, string[]> = {};
  await Promise.all(Object.entries(openers).map(async ([name, open]) => {
    out[name] = await Promise.all([
      exchange(open, 'get foo\r\n'),
      exchange(open, 'set x 0 0 7\r\nfoo bar\r\nset k 0 0 1\r\nv\r\nget k\r\n'),
    ]);
  }));
  out.negotiatingBinary = [await exchange(openers.negotiating, binaryVersion, 1000)];
  return out;
}

async function ports(): Promise<Ports> {
  return { negotiating: await freePort(), plain: await freePort(), tls: await freePort(), btls: await freePort(), mtls: await freePort() };
}

describe('-Y on every listener', () => {
  let ours: ChildProcess | undefined;
  let oursPorts: Ports;

  beforeAll(async () => {
    oursPorts = await ports();
    ours = await startServer([process.execPath, BIN], oursPorts);
  }, 30_000);

  afterAll(async () => {
    if (ours !== undefined) await stopProcess(ours);
  });

  it('asks every listener\'s clients for the token, and a negotiating listener speaks ascii only', async () => {
    const a = await answers(oursPorts);
    for (const name of ['negotiating', 'plain', 'tls', 'btls', 'mtls']) {
      expect(a[name][0], name).toBe('CLIENT_ERROR unauthenticated\r\n');
      expect(a[name][1], name).toBe('STORED\r\nSTORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n');
    }
    expect(a.negotiatingBinary[0]).toBe('');
  });

  const reference = referenceBin();
  it.skipIf(!fs.existsSync(reference))('memcached 1.6.45 answers the same bytes', async () => {
    const theirPorts = await ports();
    const theirs = await startServer([reference], theirPorts);
    try {
      expect(await answers(oursPorts)).toEqual(await answers(theirPorts));
    } finally {
      await stopProcess(theirs);
    }
  }, 30_000);

  it('refuses proto[binary] at startup with memcached\'s message, and warns about proto[negotiating]', () => {
    const binary = spawnSync(process.execPath, [BIN, ...userArgs, '-U', '0', '-Y', authFile, '-l', `proto[binary]:${LOOPBACK}:0`],
      { encoding: 'utf8', timeout: 10_000 });
    expect(binary.status).toBe(64);
    expect(binary.stderr).toContain('Cannot use binary protocol when ascii authentication enabled');
    const negotiating = parseCommandLine(['-U', '0', '-Y', authFile, '-l', `proto[negotiating]:${LOOPBACK}:0`]);
    if (negotiating.kind !== 'run') throw new Error(negotiating.stderr);
    expect(negotiating.settings.listeners[0].protocol).toBe('ascii');
    expect(negotiating.warnings.join('\n')).toContain('WARNING: negotiating ports are ascii only when ascii authentication enabled');
  });
});
