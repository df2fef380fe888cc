/**
 * TLS on TCP listeners: memcached's -Z and -o ssl_* options on node:tls.
 *
 * What it is for: loading the certificate material (at startup, and again on `refresh_certs`
 * and SIGHUP without dropping a connection), the TLS handshake of every client accepted on a
 * TLS listener, client certificate checks (ssl_verify_mode), session resumption (tickets and
 * the session-ID cache, see tls-resumption.ts) and memcached's ssl_* counters.
 * What it is not for: binding and accepting (listeners.ts: the plain net.Server accepts, so -b,
 * -c and maxconns_fast work as for plain TCP), and serving clients after the handshake
 * (connection.ts, on its 'data' path: a TLS socket has no libuv handle that could read into a
 * static buffer, so only plain TCP keeps the onread fast path).
 *
 *   net.Server (-b) ─accept─► Acceptor (-c) ─► TlsService.accept ─emit('connection')─► tls.Server
 *      tls.Server ─'secureConnection'─► checks, counters ─► Connection ('data' events)
 *                 └'tlsClientError'──► ssl_handshake_errors, socket destroyed
 *
 * One tls.Server per TLS listener, none of them listening: raw sockets are handed over with
 * `server.emit('connection', socket)`, which node:tls documents for this use. All of them
 * share the certificate material, the ticket keys and the session cache.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import type { Settings, TlsVersionName } from '../settings';
import { strerror } from './addresses';
import type { ConnectionOrigin } from './connection';
import type { NetContext } from './context';
import { installTicketKeyCallback } from './node-internals';
import { probeTicketKeyRing, SessionCache, TicketKeyRing } from './tls-resumption';

/** memcached exits with EX_USAGE when ssl_init() cannot load the certificates. */
const EX_USAGE = 64;

/** A TLS setting that cannot be applied; the message is memcached's wording where it has one. */
export class TlsConfigError extends Error {
  readonly exitCode = EX_USAGE;
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

/** memcached's reply to refresh_certs when TLS is off. */
export const TLS_NOT_ENABLED = 'Error TLS not enabled';

const NODE_TLS_VERSIONS: Record<TlsVersionName, tls.SecureVersion> = {
  'tlsv1.0': 'TLSv1',
  'tlsv1.1': 'TLSv1.1',
  'tlsv1.2': 'TLSv1.2',
  'tlsv1.3': 'TLSv1.3',
};

/**
 * OpenSSL refuses to resume a session under client-certificate checking without a session ID
 * context; Node's default is a hash of argv, which would differ between workers and restarts.
 */
const SESSION_ID_CONTEXT = 'memcached-ts';

/** The files of -o ssl_chain_cert, ssl_key and ssl_ca_cert, read and checked. */
interface TlsMaterial {
  readonly cert: Buffer;
  /** PEM: a DER key (ssl_keyformat=2) is converted on load. */
  readonly key: string;
  /** undefined: Node's root CAs (never used: no client certificates are asked for). */
  readonly ca: Buffer[] | undefined;
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  if (typeof e?.code === 'string' && e.code.startsWith('E') && typeof e.errno === 'number') return strerror(err);
  return e?.message ?? String(err);
}

function readFile(path: string, what: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (err) {
    throw new TlsConfigError(`${what}: ${path} : ${reason(err)}`);
  }
}

const DER_KEY_TYPES = ['pkcs8', 'pkcs1', 'sec1'] as const;

function parsePrivateKey(data: Buffer, format: 1 | 2): crypto.KeyObject {
  if (format === 1) return crypto.createPrivateKey({ key: data, format: 'pem' });
  let last: unknown = null;
  for (const type of DER_KEY_TYPES) {
    try {
      return crypto.createPrivateKey({ key: data, format: 'der', type });
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/**
 * Read and check the material in memcached's order (tls.c load_server_certificates), with its
 * messages: chain, key, key against certificate, CA file; then the cipher list.
 */
function loadMaterial(s: Settings): TlsMaterial {
  const chainPath = s.tlsChainCertPath;
  const chainWhat = 'Error loading the certificate chain';
  if (chainPath === null) throw new TlsConfigError(`${chainWhat}: (null) : -Z needs -o ssl_chain_cert=<PEM file>`);
  const cert = readFile(chainPath, chainWhat);
  let leaf: crypto.X509Certificate;
  try {
    leaf = new crypto.X509Certificate(cert);
  } catch (err) {
    throw new TlsConfigError(`${chainWhat}: ${chainPath} : ${reason(err)}`);
  }
  // memcached's help: the key may be part of the chain file when ssl_key is not given.
  const keyPath = s.tlsKeyPath ?? chainPath;
  const keyWhat = 'Error loading the key';
  let key: crypto.KeyObject;
  try {
    key = parsePrivateKey(readFile(keyPath, keyWhat), s.tlsKeyFormat);
  } catch (err) {
    if (err instanceof TlsConfigError) throw err;
    throw new TlsConfigError(`${keyWhat}: ${keyPath} : ${reason(err)}`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsConfigError('Error validating the certificate: the private key does not match the certificate');
  }
  const keyPem = key.export({ format: 'pem', type: 'pkcs8' }) as string;
  let ca: Buffer[] | undefined;
  if (s.tlsCaCertPath !== null) {
    const caWhat = 'Error loading the CA certificate';
    ca = [readFile(s.tlsCaCertPath, caWhat)];
    try {
      tls.createSecureContext({ ca });
    } catch (err) {
      throw new TlsConfigError(`${caWhat}: ${s.tlsCaCertPath} : ${reason(err)}`);
    }
  } else if (s.tlsVerifyMode !== 0) {
    // As memcached, which loads no default CAs: a client certificate cannot verify.
    ca = [];
  }
  if (s.tlsCiphers !== null) {
    try {
      tls.createSecureContext({ ciphers: s.tlsCiphers });
    } catch {
      throw new TlsConfigError(`Error setting the provided cipher(s): ${s.tlsCiphers}`);
    }
  }
  return { cert, key: keyPem, ca };
}

function serverOptions(s: Settings, m: TlsMaterial, ticketKeys: Buffer | undefined): tls.TlsOptions {
  return {
    cert: m.cert,
    key: m.key,
    ca: m.ca,
    ciphers: s.tlsCiphers ?? undefined,
    minVersion: NODE_TLS_VERSIONS[s.tlsMinVersion],
    // ssl_verify_mode: 0 asks for nothing; 1 asks, and a certificate that is sent must verify
    // (checked on 'secureConnection'); 2 and 3 require one (OpenSSL's FAIL_IF_NO_PEER_CERT).
    // 3 adds CLIENT_ONCE, which only matters on renegotiation, and renegotiation is off.
    requestCert: s.tlsVerifyMode !== 0,
    rejectUnauthorized: s.tlsVerifyMode >= 2,
    sessionIdContext: SESSION_ID_CONTEXT,
    sessionTimeout: s.tlsSessionTimeoutSeconds,
    handshakeTimeout: s.tlsHandshakeTimeoutSeconds * 1000,
    // memcached sets SSL_OP_NO_RENEGOTIATION too.
    secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION,
    ticketKeys,
  };
}

function clientOptions(s: Settings): tls.ConnectionOptions {
  return { minVersion: NODE_TLS_VERSIONS[s.tlsMinVersion], ciphers: s.tlsCiphers ?? undefined };
}

function hasPeerCertificate(sock: tls.TLSSocket): boolean {
  return Object.keys(sock.getPeerCertificate()).length > 0;
}

/** Identifies a TCP connection from either of its sockets (the raw one and the TLS one). */
function tupleKey(sock: net.Socket): string | null {
  if (sock.remoteAddress === undefined) return null;
  return `${sock.remoteAddress}|${sock.remotePort ?? 0}|${sock.localAddress ?? ''}|${sock.localPort ?? 0}`;
}

/** What the Acceptor does with the outcome of a handshake. */
export interface TlsHandlers {
  /** The handshake completed and the client passed the checks: serve it. */
  secured(socket: tls.TLSSocket, origin: ConnectionOrigin): void;
  /** A connection that was handshaking is gone: its -c slot is free. */
  slotFreed(): void;
}

/** How session tickets are keyed: a ring of two keys (the private hook works) or one key. */
export type TicketKeyMode = 'current+previous' | 'single';

export class TlsService {
  handlers: TlsHandlers | null = null;
  readonly ticketKeyMode: TicketKeyMode;
  private readonly ctx: NetContext;
  private readonly servers = new Map<ConnectionOrigin, tls.Server>();
  /** Raw sockets whose handshake has not finished, by tupleKey; they count toward -c. */
  private readonly handshaking = new Map<string, net.Socket>();
  private readonly ring = new TicketKeyRing();
  private readonly cache: SessionCache | null;
  private options: tls.TlsOptions;
  private rotationTimer: NodeJS.Timeout | null;
  private stopped = false;

  /** Load the material (throws TlsConfigError) and check the ticket key hook. */
  static async start(ctx: NetContext): Promise<TlsService> {
    const s = ctx.settings;
    const material = loadMaterial(s);
    let mode: TicketKeyMode = 'current+previous';
    if (!(await probeTicketKeyRing(serverOptions(s, material, undefined), clientOptions(s)))) {
      mode = 'single';
      ctx.log(0, `TLS: several session ticket keys are unavailable on this Node.js: one key, replaced every ` +
        `${s.tlsTicketKeyRotationSeconds} s; tickets issued before a replacement then need a full handshake`);
    }
    return new TlsService(ctx, material, mode);
  }

  private constructor(ctx: NetContext, material: TlsMaterial, mode: TicketKeyMode) {
    const s = ctx.settings;
    this.ctx = ctx;
    this.ticketKeyMode = mode;
    this.options = this.optionsFor(material);
    this.cache = s.tlsSessionCache
      ? new SessionCache(s.tlsSessionCacheEntriesMax, s.tlsSessionCacheBytesMax, s.tlsSessionTimeoutSeconds * 1000)
      : null;
    this.rotationTimer = setInterval(() => this.rotateTicketKeys(), s.tlsTicketKeyRotationSeconds * 1000);
    this.rotationTimer.unref();
    // memcached loads its certificates before its clock starts, so its first
    // time_since_server_cert_refresh counts from clock zero; so does ours.
    ctx.stats.tlsCertsLoadedSeconds = 0;
    ctx.log(1, `TLS: min version ${s.tlsMinVersion}, ssl_verify_mode ${s.tlsVerifyMode}, session tickets ` +
      `(${mode} key, replaced every ${s.tlsTicketKeyRotationSeconds} s), session-ID cache ${s.tlsSessionCache ? 'on' : 'off'}`);
  }

  /** Handshakes in progress: they hold a -c slot before they become connections. */
  get handshakesInFlight(): number {
    return this.handshaking.size;
  }

  /** Session-ID cache entries (0 without ssl_session_cache). */
  get cachedSessions(): number {
    return this.cache?.size ?? 0;
  }

  get ticketKeyRotations(): number {
    return this.ring.rotations;
  }

  /** Create the tls.Server of a listener (at bind time, so that any failure shows at startup). */
  register(origin: ConnectionOrigin): void {
    if (this.servers.has(origin)) return;
    const server = tls.createServer(this.options);
    this.installTicketKeys(server);
    server.on('secureConnection', (sock: tls.TLSSocket) => this.onSecure(sock, origin));
    server.on('tlsClientError', (err: Error, sock: tls.TLSSocket) => {
      this.ctx.stats.ssl_handshake_errors++;
      this.ctx.log(1, `SSL connection failed: ${err.message.trim()}`);
      sock.destroy();
    });
    const cache = this.cache;
    if (cache !== null) {
      server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
        cache.store(id, data);
        done();
      });
      server.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
        done(null, cache.lookup(id));
      });
    }
    this.servers.set(origin, server);
  }

  /** Start the handshake of a client accepted on a TLS listener. */
  accept(raw: net.Socket, origin: ConnectionOrigin): void {
    const key = tupleKey(raw);
    if (this.stopped || key === null) {
      // Stopping, or the peer is already gone (no address to read).
      raw.destroy();
      return;
    }
    this.register(origin);
    this.handshaking.set(key, raw);
    raw.once('close', () => {
      if (this.handshaking.get(key) !== raw) return;
      this.handshaking.delete(key);
      this.handlers?.slotFreed();
    });
    (this.servers.get(origin) as tls.Server).emit('connection', raw);
  }

  /**
   * refresh_certs and SIGHUP: read the certificate, key and CA files again and use them for
   * new handshakes. Connections already open keep their session. Returns null, or memcached's
   * error text (without CRLF), in which case the previous material stays in use.
   */
  reload(): string | null {
    let material: TlsMaterial;
    try {
      material = loadMaterial(this.ctx.settings);
    } catch (err) {
      if (err instanceof TlsConfigError) return err.message;
      throw err;
    }
    const options = this.optionsFor(material);
    try {
      // Built once more here so that a failure leaves every server as it was.
      tls.createSecureContext(options);
    } catch (err) {
      return `Error validating the certificate: ${reason(err)}`;
    }
    for (const server of this.servers.values()) {
      server.setSecureContext(options);
      this.installTicketKeys(server);
    }
    this.options = options;
    this.ctx.stats.tlsCertsLoadedSeconds = this.ctx.registry.nowSeconds;
    this.ctx.log(1, 'TLS certificates reloaded');
    return null;
  }

  /** Replace the ticket key now (the timer does it every tlsTicketKeyRotationSeconds). */
  rotateTicketKeys(): void {
    this.ring.rotate();
    if (this.ticketKeyMode === 'single') {
      const keys = this.ring.currentAsTicketKeys();
      for (const server of this.servers.values()) server.setTicketKeys(keys);
    }
  }

  /** Stop rotating keys and drop handshakes in progress; open connections are not touched. */
  stop(): void {
    this.stopped = true;
    if (this.rotationTimer !== null) clearInterval(this.rotationTimer);
    this.rotationTimer = null;
    for (const raw of [...this.handshaking.values()]) raw.destroy();
  }

  private optionsFor(material: TlsMaterial): tls.TlsOptions {
    const single = this.ticketKeyMode === 'single' ? this.ring.currentAsTicketKeys() : undefined;
    return serverOptions(this.ctx.settings, material, single);
  }

  private installTicketKeys(server: tls.Server): void {
    if (this.ticketKeyMode === 'single') return;
    const ring = this.ring;
    if (!installTicketKeyCallback(server, (name, encrypt) => ring.answer(name, encrypt))) {
      // The probe passed, so this cannot happen unless Node changed under us.
      throw new Error('TLS: the session ticket key hook disappeared');
    }
  }

  private onSecure(sock: tls.TLSSocket, origin: ConnectionOrigin): void {
    const key = tupleKey(sock);
    if (key !== null && this.handshaking.get(key) !== undefined) this.handshaking.delete(key);
    const { stats, settings } = this.ctx;
    if (this.stopped || this.handlers === null) {
      sock.destroy();
      return;
    }
    if (settings.tlsVerifyMode === 1 && sock.authorizationError && hasPeerCertificate(sock)) {
      // SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT: no certificate is fine, a bad one is not.
      stats.ssl_handshake_errors++;
      this.ctx.log(1, `SSL connection failed: client certificate: ${String(sock.authorizationError)}`);
      sock.destroy();
      this.handlers.slotFreed();
      return;
    }
    if (sock.isSessionReused()) stats.ssl_resumed_sessions++;
    else stats.ssl_new_sessions++;
    this.handlers.secured(sock, origin);
  }
}
