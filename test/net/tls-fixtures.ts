/**
 * TLS test fixtures: a throwaway PKI made with `openssl` in a temp dir, an in-process server
 * speaking the real text protocol (parsed from memcached's command line, so the CLI, the
 * network layer and the stats renderers are all exercised), TLS clients, and a bounded runner
 * for external tools that need stdin.
 *
 * The in-process server wires AdminHooks.refreshCerts the way src/cli/main.ts is expected to.
 * Everything listens on 127.0.0.1; every process started here is stopped by PID.
 */
import { spawn, execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { parseCommandLine } from '../../src/cli/options';
import { Engine } from '../../src/engine/engine';
import type { StatsContext } from '../../src/engine/stats';
import { connectionEventsFor } from '../../src/metrics/logger';
import { ServerStats } from '../../src/metrics/stats';
import { startNetwork, type NetworkHandle } from '../../src/net/server';
import type { Output } from '../../src/protocol/output';
import type { ConnectionInfo, ProtocolSession, SessionFactory } from '../../src/protocol/session';
import type { AdminHooks } from '../../src/protocol/text/admin';
import { TextSession } from '../../src/protocol/text/session';
import type { Settings } from '../../src/settings';
import { stopProcess, trackProcess } from '../helpers/servers';

export const LOOPBACK = '127.0.0.1';
const OPENSSL_TIMEOUT_MS = 20_000;

// --- PKI

export interface Pki {
  readonly dir: string;
  readonly caCert: string;
  /** Server certificate A (CN localhost, SAN 127.0.0.1) and its key. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** The same key in DER (ssl_keyformat=2). */
  readonly serverKeyDer: string;
  /** Server certificate B, for reload tests. */
  readonly serverCert2: string;
  readonly serverKey2: string;
  /** A client certificate signed by the CA. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** A self-signed client certificate the CA never saw. */
  readonly rogueCert: string;
  readonly rogueKey: string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: OPENSSL_TIMEOUT_MS });
}

/** EC P-256 keys: generated in milliseconds, unlike RSA. */
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function issue(dir: string, name: string, subject: string, extensions: string): void {
  openssl(['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  fs.writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
}

export function makePki(): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-tls-'));
  openssl(['req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=memcached-ts test CA'], dir);
  const serverExt = 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n';
  issue(dir, 'server', '/CN=localhost', serverExt);
  issue(dir, 'server2', '/CN=localhost', serverExt);
  issue(dir, 'client', '/CN=client', 'extendedKeyUsage=clientAuth\n');
  openssl(['req', '-x509', ...EC_KEY, '-keyout', 'rogue.key', '-out', 'rogue.crt', '-days', '2', '-subj', '/CN=rogue'], dir);
  openssl(['pkey', '-in', 'server.key', '-outform', 'DER', '-out', 'server.der'], dir);
  const p = (f: string): string => path.join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    serverKeyDer: p('server.der'),
    serverCert2: p('server2.crt'),
    serverKey2: p('server2.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    rogueCert: p('rogue.crt'),
    rogueKey: p('rogue.key'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** SHA-256 fingerprint of a PEM certificate file, as TLSSocket#getPeerCertificate() shows it. */
export function fingerprintOf(certPath: string): string {
  return new crypto.X509Certificate(fs.readFileSync(certPath)).fingerprint256;
}

// --- in-process server

export interface InProcessServer {
  readonly settings: Settings;
  readonly stats: ServerStats;
  readonly network: NetworkHandle;
  readonly logs: string[];
  /** First TLS address's port, or 0. */
  readonly tlsPort: number;
  /** First plain TCP address's port, or 0. */
  readonly plainPort: number;
  stop(): Promise<void>;
}

/**
 * Parse `argv` as memcached's command line, apply `overrides` (limits that have no flag),
 * and serve the text protocol in this process (`readMode` 'data': 'data' events and
 * socket.write, the fallback of the static-buffer paths).
 */
export async function startInProcess(argv: string[], overrides: Partial<Settings> = {},
  readMode: 'auto' | 'data' = 'auto'): Promise<InProcessServer> {
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'exit') throw new Error(`command line refused (${parsed.code}): ${parsed.stderr}`);
  const settings: Settings = { ...parsed.settings, ...overrides };
  const stats = new ServerStats();
  const engine = new Engine(settings, stats);
  const logs: string[] = [];
  const log = (level: number, msg: string): void => {
    if (level <= 1) logs.push(msg);
  };
  let network: NetworkHandle | null = null;
  const statsContext: StatsContext = {
    engine,
    startedUnixSeconds: engine.clock.processStartedUnix,
    connections: () => network?.connections() ?? [],
    acceptingConnections: () => network?.acceptingConnections() ?? false,
  };
  const hooks: AdminHooks = {
    stats: statsContext,
    shutdown: () => undefined,
    // null means OK: not `network?.reloadCertificates() ?? ...`, which would turn OK into an error.
    refreshCerts: () => (network === null ? 'Error TLS not enabled' : network.reloadCertificates()),
  };
  const factory: SessionFactory = {
    create(conn: ConnectionInfo, output: Output): ProtocolSession {
      return new TextSession(engine, output, conn, hooks);
    },
  };
  engine.start();
  try {
    network = await startNetwork(settings, stats, factory, log, {
      clockSeconds: () => engine.clock.now,
      connectionEvents: connectionEventsFor(engine.logger),
      readMode,
    });
  } catch (err) {
    engine.stop();
    throw err;
  }
  const handle = network;
  const addresses = handle.addresses();
  const tlsPorts = new Set(addresses.tls.map((a) => a.port));
  const plain = addresses.tcp.find((a) => !tlsPorts.has(a.port));
  return {
    settings,
    stats,
    network: handle,
    logs,
    tlsPort: addresses.tls[0]?.port ?? 0,
    plainPort: plain?.port ?? 0,
    stop: async () => {
      await handle.close();
      engine.stop();
    },
  };
}

/** memcached's TLS flags for a server on 127.0.0.1: a TLS listener and a notls: one, both ephemeral. */
export function tlsArgs(pki: Pki, extraSubOptions: string[] = [], extra: string[] = []): string[] {
  const sub = [`ssl_chain_cert=${pki.serverCert}`, `ssl_key=${pki.serverKey}`, ...extraSubOptions].join(',');
  return ['-Z', '-o', sub, '-l', `notls:${LOOPBACK}:0,${LOOPBACK}:0`, '-U', '0', ...extra];
}

// --- TLS client

export interface TlsExchange {
  readonly text: string;
  readonly reused: boolean;
  readonly protocol: string | null;
  readonly fingerprint: string;
  /** The last session the server gave this connection (ticket or session ID), if any. */
  readonly session: Buffer | null;
}

/**
 * Connect with TLS, send `request`, read until the reply ends with `until`, then close and
 * wait for the session the server issued (TLS 1.3 tickets arrive after the handshake).
 */
export function tlsExchange(
  port: number,
  request: string,
  options: tls.ConnectionOptions = {},
  until = '\r\n',
  timeoutMs = 5000,
): Promise<TlsExchange> {
  return new Promise<TlsExchange>((resolve, reject) => {
    let text = '';
    let session: Buffer | null = null;
    let reused = false;
    let protocol: string | null = null;
    let fingerprint = '';
    let answered = false;
    const sock = tls.connect({ host: LOOPBACK, port, servername: 'localhost', ...options });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`TLS exchange timed out after ${timeoutMs} ms; received ${JSON.stringify(text)}`));
    }, timeoutMs);
    sock.on('secureConnect', () => {
      reused = sock.isSessionReused();
      protocol = sock.getProtocol();
      fingerprint = sock.getPeerCertificate().fingerprint256;
      sock.write(request);
    });
    sock.on('session', (s: Buffer) => {
      session = s;
    });
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!answered && text.endsWith(until)) {
        answered = true;
        sock.end();
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (answered) resolve({ text, reused, protocol, fingerprint, session });
      else reject(new Error(`connection closed before the reply; received ${JSON.stringify(text)}`));
    });
  });
}

/** A TLS connection kept open across several requests. */
export class TlsClient {
  readonly socket: tls.TLSSocket;
  private received = '';
  private readonly ready: Promise<void>;

  constructor(port: number, options: tls.ConnectionOptions = {}) {
    this.socket = tls.connect({ host: LOOPBACK, port, servername: 'localhost', ...options });
    this.socket.on('data', (d: Buffer) => {
      this.received += d.toString('latin1');
    });
    this.socket.on('error', () => undefined);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('secureConnect', () => resolve());
      this.socket.once('error', reject);
    });
  }

  connected(): Promise<void> {
    return this.ready;
  }

  /** Send a request and resolve with everything up to and including `until`. */
  async request(line: string, until = '\r\n', timeoutMs = 5000): Promise<string> {
    this.received = '';
    this.socket.write(line);
    const deadline = Date.now() + timeoutMs;
    while (!this.received.endsWith(until)) {
      if (Date.now() > deadline) throw new Error(`no reply to ${JSON.stringify(line)}: ${JSON.stringify(this.received)}`);
      if (this.socket.destroyed) throw new Error(`connection closed; received ${JSON.stringify(this.received)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.received;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A plain client that sent `watch <streams>` and collects the log lines it gets. */
export class Watcher {
  readonly socket: net.Socket;
  private text = '';

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.text += d.toString('latin1');
    });
    socket.on('error', () => undefined);
  }

  static async start(port: number, streams: string, timeoutMs = 5000): Promise<Watcher> {
    const w = new Watcher(net.connect(port, LOOPBACK));
    w.socket.write(`watch ${streams}\r\n`);
    await w.until((t) => t.startsWith('OK\r\n'), timeoutMs);
    return w;
  }

  /** The lines after OK, without their ts= and gid= fields. */
  get lines(): string[] {
    return this.text.split(/\r?\n/).slice(1).filter((l) => l !== '').map((l) => l.replace(/^ts=\S+ gid=\d+ /, ''));
  }

  async until(cond: (text: string) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond(this.text)) {
      if (Date.now() > deadline) throw new Error(`watch: timed out; received ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits (bounded) until a line matches. */
  async line(pattern: RegExp, timeoutMs = 5000): Promise<string> {
    await this.until(() => this.lines.some((l) => pattern.test(l)), timeoutMs);
    return this.lines.find((l) => pattern.test(l)) as string;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** One TLS record as seen on the wire: content type (21 alert, 22 handshake, 23 data) and length. */
export interface WireRecord {
  readonly type: number;
  readonly length: number;
}

/**
 * A TCP relay between a client and `target` that keeps what the server sent, to read TLS
 * record boundaries, and lets a test write raw bytes to the server or reset either side.
 */
export class RecordingProxy {
  readonly fromServer: Buffer[] = [];
  /** The relay's connection to the server, once a client came. */
  upstream: net.Socket | null = null;
  serverEnded = false;
  private readonly server: net.Server;

  private constructor(server: net.Server) {
    this.server = server;
  }

  static async start(target: number): Promise<RecordingProxy> {
    let proxy: RecordingProxy | null = null;
    const server = net.createServer((down) => {
      const up = net.connect(target, LOOPBACK);
      const p = proxy as RecordingProxy;
      p.upstream = up;
      up.on('data', (d: Buffer) => {
        p.fromServer.push(d);
        down.write(d);
      });
      up.on('end', () => {
        p.serverEnded = true;
        down.end();
      });
      down.on('data', (d: Buffer) => up.write(d));
      down.on('end', () => up.end());
      for (const s of [up, down]) s.on('error', () => undefined);
      up.on('close', () => down.destroy());
      down.on('close', () => up.destroy());
    });
    proxy = new RecordingProxy(server);
    await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** The records the server sent, in order (a trailing partial record is left out). */
  records(): WireRecord[] {
    const all = Buffer.concat(this.fromServer);
    const out: WireRecord[] = [];
    for (let p = 0; p + 5 <= all.length;) {
      const length = all.readUInt16BE(p + 3);
      if (p + 5 + length > all.length) break;
      out.push({ type: all[p], length });
      p += 5 + length;
    }
    return out;
  }

  close(): void {
    this.upstream?.destroy();
    this.server.close();
  }
}

/** `stats` (or `stats <group>`) over TLS, as a name → value map. */
export async function statsOver(port: number, group = '', options: tls.ConnectionOptions = {}): Promise<Map<string, string>> {
  const reply = await tlsExchange(port, `stats${group === '' ? '' : ' ' + group}\r\n`, { rejectUnauthorized: false, ...options }, 'END\r\n');
  const map = new Map<string, string>();
  for (const line of reply.text.split('\r\n')) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) map.set(m[1], m[2]);
  }
  return map;
}

// --- external tools

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Run a program with `input` on stdin, bounded in time, stopped by PID on timeout. */
export function runWithInput(file: string, args: string[], input: string, timeoutMs: number): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    trackProcess(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      timedOut = true;
      void stopProcess(child, 1000);
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
