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
import type { MessagePort } from 'node:worker_threads';
import type { ListenerTls, Settings, TlsVerifyMode, TlsVersionName } from '../settings';
import { strerror } from './addresses';
import { addressName, type ConnectionOrigin } from './connection';
import { verboseLines, type CloseReason, type NetContext } from './context';
import { installTicketKeyCallback, tlsRawSocket } from './node-internals';
import type { NetConnectionInfo, TrackedConnection } from './registry';
import {
  LocalSessionStore, probeTicketKeyRing, RemoteSessionCache, SessionCache, TicketKeyRing, type SessionStore,
  type TicketKeyState,
} from './tls-resumption';

/** memcached exits with EX_USAGE when ssl_init() cannot load the certificates. */
const EX_USAGE = 64;

/** The largest plaintext a TLS record carries (and node:tls's default fragment size). */
const TLS_RECORD_BYTES_MAX = 16 * 1024;

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
export interface TlsMaterial {
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
 * messages: chain, key, key against certificate, CA file; then the cipher list. Throws
 * TlsConfigError. memcached loads it at startup before it switches user (-u), so files only
 * root can read work; the process entry calls this then and hands the result to startNetwork.
 */
export function loadTlsMaterial(s: Settings): TlsMaterial {
  return loadMaterial(s);
}

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
  } else if (s.tlsVerifyMode !== 0 || s.listeners.some((l) => l.tls === 'mtls')) {
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

/**
 * ssl_verify_mode in effect on a listener: memcached 1.6.19+'s `btls:` asks for no client
 * certificate, `mtls:` requires one (its SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT); any other
 * TLS listener follows -o ssl_verify_mode.
 */
export function listenerVerifyMode(s: Settings, prefix: ListenerTls | null): TlsVerifyMode {
  if (prefix === 'btls') return 0;
  if (prefix === 'mtls') return 2;
  return s.tlsVerifyMode;
}

function serverOptions(s: Settings, m: TlsMaterial, ticketKeys: Buffer | undefined, verify: TlsVerifyMode): tls.TlsOptions {
  return {
    cert: m.cert,
    key: m.key,
    ca: m.ca,
    ciphers: s.tlsCiphers ?? undefined,
    minVersion: NODE_TLS_VERSIONS[s.tlsMinVersion],
    // ssl_verify_mode: 0 asks for nothing; 1 asks, and a certificate that is sent must verify
    // (checked on 'secureConnection'); 2 and 3 require one (OpenSSL's FAIL_IF_NO_PEER_CERT).
    // 3 adds CLIENT_ONCE, which only matters on renegotiation, and renegotiation is off.
    requestCert: verify !== 0,
    rejectUnauthorized: verify >= 2,
    // One context per verify mode: a session made where no certificate was asked for must
    // not resume where one is required (OpenSSL refuses a session from another context).
    sessionIdContext: `${SESSION_ID_CONTEXT}/${verify}`,
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

/**
 * OpenSSL 3's error strings for the conditions Node reports in its own words, as memcached
 * (ERR_error_string_n) writes them: the peer closed the connection in the middle of the
 * handshake (SSL_R_UNEXPECTED_EOF_WHILE_READING), and a client certificate that does not
 * verify (SSL_R_CERTIFICATE_VERIFY_FAILED; node:tls checks it after the handshake).
 */
const OPENSSL_UNEXPECTED_EOF = 'error:0A000126:SSL routines::unexpected eof while reading';
const OPENSSL_CERTIFICATE_VERIFY_FAILED = 'error:0A000086:SSL routines::certificate verify failed';

/** A TLS failure as memcached 1.6.45 reports it: its conntlserr text, and whether it counts in ssl_proto_errors. */
export interface TlsFailure {
  readonly message: string;
  readonly protocolError: boolean;
}

/**
 * memcached's ssl_read/ssl_write: an OpenSSL error is logged with OpenSSL's error string and
 * counted as a protocol error; a socket error (SSL_ERROR_SYSCALL) is logged as strerror()
 * and not counted.
 */
export function describeTlsFailure(err: Error, certificateRejected: boolean): TlsFailure {
  const e = err as NodeJS.ErrnoException;
  if (certificateRejected) return { message: OPENSSL_CERTIFICATE_VERIFY_FAILED, protocolError: true };
  // Node's text for OpenSSL errors: "<thread>:error:<code>:<library>:<function>:<reason>:<file>:<line>:..."
  const openssl = /error:([0-9A-Fa-f]{8}):([^:]*):[^:]*:([^:\n]*)/.exec(err.message);
  if (openssl !== null) return { message: `error:${openssl[1].toUpperCase()}:${openssl[2]}::${openssl[3]}`, protocolError: true };
  if (typeof e.syscall === 'string') return { message: strerror(err), protocolError: false };
  // node:tls's "socket hang up" and "Client network socket disconnected before secure TLS
  // connection was established": the peer's FIN before the handshake finished.
  if (e.code === 'ECONNRESET') return { message: OPENSSL_UNEXPECTED_EOF, protocolError: true };
  return { message: err.message, protocolError: false };
}

/**
 * A client accepted on a TLS listener whose handshake has not finished. memcached makes the
 * connection at accept time and runs the handshake inside its reads, so it counts in
 * curr_connections and total_connections, is listed by `stats conns` and holds a -c slot from
 * the start; so does this entry. When the handshake completes, the Connection that serves the
 * client takes over its id and its place in the registry.
 */
export class Handshake implements TrackedConnection {
  readonly info: NetConnectionInfo;
  readonly lastActiveSeconds: number;
  readonly writeBacklogBytes = 0;
  /** Why it closes, for `watch connevents`. */
  closeReason: CloseReason = 'error';
  /** The server closed it (shutdown, idle_timeout): what node:tls then reports is not the peer's failure. */
  closedByServer = false;

  constructor(ctx: NetContext, readonly raw: net.Socket, readonly origin: ConnectionOrigin) {
    this.info = {
      id: ctx.registry.nextId(),
      transport: 'tcp',
      peerName: addressName('tcp', raw.remoteAddress, raw.remotePort),
      localName: addressName('tcp', raw.localAddress, raw.localPort),
      protocol: origin.protocol,
      tag: origin.tag,
      lastCommandTime: ctx.registry.nowSeconds,
      stateName: 'conn_new_cmd',
    };
    this.lastActiveSeconds = ctx.registry.nowSeconds;
  }

  isIdle(): boolean {
    return true;
  }

  kickIdle(): void {
    this.closeBy('idle_timeout');
  }

  stopGracefully(): void {
    this.closeBy('shutdown');
  }

  destroy(): void {
    this.closeBy('shutdown');
  }

  private closeBy(reason: CloseReason): void {
    if (this.raw.destroyed) return;
    this.closedByServer = true;
    this.closeReason = reason;
    this.raw.destroy();
  }
}

/** What the Acceptor does with a client whose handshake completed and passed the checks. */
export interface TlsHandlers {
  secured(socket: tls.TLSSocket, origin: ConnectionOrigin, handshake: Handshake): void;
}

/** How session tickets are keyed: a ring of two keys (the private hook works) or one key. */
export type TicketKeyMode = 'current+previous' | 'single';

export class TlsService {
  handlers: TlsHandlers | null = null;
  readonly ticketKeyMode: TicketKeyMode;
  private readonly ctx: NetContext;
  private readonly servers = new Map<ConnectionOrigin, tls.Server>();
  /** Clients whose handshake has not finished, by their accepted socket. */
  private readonly handshaking = new Map<net.Socket, Handshake>();
  private readonly ring = new TicketKeyRing();
  private readonly sessions: SessionStore | null;
  private material: TlsMaterial;
  private rotationTimer: NodeJS.Timeout | null;
  private stopped = false;

  /** Thread 0: told the new keys after each rotation (the worker threads take them). */
  onTicketKeys: ((keys: TicketKeyState) => void) | null = null;
  /** A worker thread: keys come from thread 0, no rotation timer of its own. */
  private follower = false;

  /**
   * Load the material unless given (throws TlsConfigError) and check the ticket key hook.
   * With `keys` (a worker thread), the ticket keys are thread 0's.
   */
  static async start(ctx: NetContext, preloaded: TlsMaterial | null = null, keys: TicketKeyState | null = null,
    sessionPort: MessagePort | null = null): Promise<TlsService> {
    const s = ctx.settings;
    const material = preloaded ?? loadMaterial(s);
    let mode: TicketKeyMode = 'current+previous';
    if (!(await probeTicketKeyRing(serverOptions(s, material, undefined, 0), clientOptions(s)))) {
      mode = 'single';
      ctx.log(0, `TLS: several session ticket keys are unavailable on this Node.js: one key, replaced every ` +
        `${s.tlsTicketKeyRotationSeconds} s; tickets issued before a replacement then need a full handshake`);
    }
    const service = new TlsService(ctx, material, mode, sessionPort);
    if (keys !== null) service.follow(keys);
    return service;
  }

  private follow(keys: TicketKeyState): void {
    this.follower = true;
    if (this.rotationTimer !== null) clearInterval(this.rotationTimer);
    this.rotationTimer = null;
    this.setTicketKeys(keys);
  }

  /** Thread 0: its session-ID cache, which the worker threads use (null: none). */
  sessionCache(): SessionCache | null {
    return this.sessions instanceof LocalSessionStore ? this.sessions.cache : null;
  }

  /** The material in use and the ticket keys: what another serving thread starts with. */
  share(): { material: TlsMaterial; keys: TicketKeyState } {
    return { material: this.material, keys: this.ring.exportKeys() };
  }

  /** A worker thread: thread 0's keys after a rotation. */
  setTicketKeys(keys: TicketKeyState): void {
    this.ring.importKeys(keys);
    this.applySingleKey();
  }

  /** With one ticket key (no private hook), each server is given the ring's current key. */
  private applySingleKey(): void {
    if (this.ticketKeyMode !== 'single') return;
    const current = this.ring.currentAsTicketKeys();
    for (const server of this.servers.values()) server.setTicketKeys(current);
  }

  private constructor(ctx: NetContext, material: TlsMaterial, mode: TicketKeyMode, sessionPort: MessagePort | null) {
    const s = ctx.settings;
    this.ctx = ctx;
    this.ticketKeyMode = mode;
    this.material = material;
    // One session-ID cache per process: thread 0's (other threads reach it over sessionPort).
    if (!s.tlsSessionCache) this.sessions = null;
    else if (sessionPort !== null) this.sessions = new RemoteSessionCache(sessionPort);
    else this.sessions = new LocalSessionStore(new SessionCache(s.tlsSessionCacheEntriesMax, s.tlsSessionCacheBytesMax, s.tlsSessionTimeoutSeconds * 1000));
    this.rotationTimer = setInterval(() => this.rotateTicketKeys(), s.tlsTicketKeyRotationSeconds * 1000);
    this.rotationTimer.unref();
    // memcached loads its certificates before its clock starts, so its first
    // time_since_server_cert_refresh counts from clock zero; so does ours.
    ctx.stats.tlsCertsLoadedSeconds = 0;
    ctx.log(1, `TLS: min version ${s.tlsMinVersion}, ssl_verify_mode ${s.tlsVerifyMode}, session tickets ` +
      `(${mode} key, replaced every ${s.tlsTicketKeyRotationSeconds} s), session-ID cache ${s.tlsSessionCache ? 'on' : 'off'}`);
  }

  /** Handshakes in progress (each is also a client in the registry). */
  get handshakesInFlight(): number {
    return this.handshaking.size;
  }

  /** Session-ID cache entries (0 without ssl_session_cache). */
  get cachedSessions(): number {
    return this.sessions?.size ?? 0;
  }

  get ticketKeyRotations(): number {
    return this.ring.rotations;
  }

  /** Create the tls.Server of a listener (at bind time, so that any failure shows at startup). */
  register(origin: ConnectionOrigin): void {
    if (this.servers.has(origin)) return;
    const server = tls.createServer(this.optionsFor(origin));
    this.installTicketKeys(server);
    server.on('secureConnection', (sock: tls.TLSSocket) => this.onSecure(sock, origin));
    server.on('tlsClientError', (err: Error, sock: tls.TLSSocket) => this.onClientError(err, sock));
    const sessions = this.sessions;
    if (sessions !== null) {
      server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
        // memcached counts its new-session callback (OpenSSL's, called for each session it
        // would cache: one per full TLS 1.2 handshake, one per TLS 1.3 ticket).
        this.ctx.stats.ssl_new_sessions++;
        sessions.store(id, data);
        done();
      });
      server.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
        sessions.lookup(id, (data) => done(null, data));
      });
    }
    this.servers.set(origin, server);
  }

  /**
   * Start the handshake of a client accepted on a TLS listener. The client is a connection
   * from now on (counted, listed, holding a -c slot), as in memcached.
   */
  accept(raw: net.Socket, origin: ConnectionOrigin): void {
    if (this.stopped) {
      raw.destroy();
      return;
    }
    const ctx = this.ctx;
    if (raw.remoteAddress === undefined) {
      // Gone (reset) before it was accepted: memcached's first SSL_accept, in its accept
      // path, fails on such a socket and counts a handshake error against the listener.
      ctx.stats.ssl_handshake_errors++;
      this.report(origin.listenerId, 'Connection reset by peer');
      raw.destroy();
      return;
    }
    this.register(origin);
    const entry = new Handshake(ctx, raw, origin);
    this.handshaking.set(raw, entry);
    ctx.registry.add(entry);
    ctx.connectionEvents?.opened(entry.info);
    ctx.log(2, verboseLines.newClient(entry.info.id, origin.protocol ?? ctx.settings.bindProtocol));
    raw.once('close', () => this.onRawClose(raw, entry));
    (this.servers.get(origin) as tls.Server).emit('connection', raw);
  }

  /**
   * A TLS error on a served connection (memcached's ssl_read/ssl_write failures): logged to
   * `watch connevents`, OpenSSL errors counted in ssl_proto_errors.
   */
  connectionError(id: number, err: Error, certificateRejected = false): void {
    const failure = describeTlsFailure(err, certificateRejected);
    if (failure.protocolError) this.ctx.stats.ssl_proto_errors++;
    this.report(id, failure.message);
  }

  /**
   * refresh_certs and SIGHUP: read the certificate, key and CA files again and use them for
   * new handshakes. Connections already open keep their session. Returns null, or memcached's
   * error text (without CRLF), in which case the previous material stays in use.
   */
  reload(given: TlsMaterial | null = null): string | null {
    let material: TlsMaterial;
    try {
      material = given ?? loadMaterial(this.ctx.settings);
    } catch (err) {
      if (err instanceof TlsConfigError) return err.message;
      throw err;
    }
    const previous = this.material;
    this.material = material;
    const options = new Map<ConnectionOrigin, tls.TlsOptions>();
    try {
      // Built once more here so that a failure leaves every server as it was.
      for (const origin of this.servers.keys()) {
        const o = this.optionsFor(origin);
        tls.createSecureContext(o);
        options.set(origin, o);
      }
    } catch (err) {
      this.material = previous;
      return `Error validating the certificate: ${reason(err)}`;
    }
    for (const [origin, server] of this.servers) {
      server.setSecureContext(options.get(origin) as tls.TlsOptions);
      this.installTicketKeys(server);
    }
    // time_since_server_cert_refresh is thread 0's (stats sums the threads' rows).
    if (!this.follower) this.ctx.stats.tlsCertsLoadedSeconds = this.ctx.registry.nowSeconds;
    this.ctx.log(1, 'TLS certificates reloaded');
    return null;
  }

  /** Replace the ticket key now (the timer does it every tlsTicketKeyRotationSeconds). */
  rotateTicketKeys(): void {
    this.ring.rotate();
    this.applySingleKey();
    this.onTicketKeys?.(this.ring.exportKeys());
  }

  /** Stop rotating keys and drop handshakes in progress; open connections are not touched. */
  stop(): void {
    this.stopped = true;
    if (this.rotationTimer !== null) clearInterval(this.rotationTimer);
    this.rotationTimer = null;
    for (const entry of [...this.handshaking.values()]) entry.destroy();
  }

  private optionsFor(origin: ConnectionOrigin): tls.TlsOptions {
    const single = this.ticketKeyMode === 'single' ? this.ring.currentAsTicketKeys() : undefined;
    return serverOptions(this.ctx.settings, this.material, single, origin.tlsVerify ?? this.ctx.settings.tlsVerifyMode);
  }

  private installTicketKeys(server: tls.Server): void {
    if (this.ticketKeyMode === 'single') return;
    const ring = this.ring;
    if (!installTicketKeyCallback(server, (name, encrypt) => ring.answer(name, encrypt))) {
      // The probe passed, so this cannot happen unless Node changed under us.
      throw new Error('TLS: the session ticket key hook disappeared');
    }
  }

  /** The handshake entry a server-side TLS socket belongs to. */
  private entryOf(sock: tls.TLSSocket): Handshake | undefined {
    const raw = tlsRawSocket(sock);
    if (raw !== null) return this.handshaking.get(raw);
    const key = tupleKey(sock);
    if (key === null) return undefined;
    for (const entry of this.handshaking.values()) if (tupleKey(entry.raw) === key) return entry;
    return undefined;
  }

  private report(id: number, message: string): void {
    this.ctx.connectionEvents?.tlsError?.(id, message);
    this.ctx.log(1, `<${id} TLS error: ${message}`);
  }

  /** The handshake failed (or the peer left): memcached's ssl_read failure inside the handshake. */
  private onClientError(err: Error, sock: tls.TLSSocket): void {
    const entry = this.entryOf(sock);
    sock.destroy();
    if (entry === undefined || entry.closedByServer) return;
    entry.closeReason = 'error';
    // node:tls checks a client certificate after the handshake and records why it failed.
    this.connectionError(entry.info.id, err, Boolean(sock.authorizationError));
  }

  /**
   * The accepted socket closed before its handshake was handed over: the connection ends.
   * node:tls reports a peer that left ('tlsClientError') only after this socket's 'close', so
   * the entry stays findable until the next turn of the event loop.
   */
  private onRawClose(raw: net.Socket, entry: Handshake): void {
    if (this.handshaking.get(raw) !== entry) return;
    setImmediate(() => {
      if (this.handshaking.get(raw) !== entry) return;
      this.handshaking.delete(raw);
      this.ctx.registry.remove(entry);
      this.ctx.connectionEvents?.closed(entry.info, entry.closeReason);
      this.ctx.log(2, verboseLines.closed(entry.info.id));
    });
  }

  private onSecure(sock: tls.TLSSocket, origin: ConnectionOrigin): void {
    const entry = this.entryOf(sock);
    if (entry === undefined || this.stopped || this.handlers === null) {
      sock.destroy();
      return;
    }
    const { stats, settings } = this.ctx;
    if (origin.tlsVerify === 1 && sock.authorizationError && hasPeerCertificate(sock)) {
      // SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT: no certificate is fine, a bad one is not.
      this.onClientError(new Error('client certificate does not verify'), sock);
      return;
    }
    this.handshaking.delete(entry.raw);
    if (sock.isSessionReused()) stats.ssl_resumed_sessions++;
    // memcached's ssl_wbuf_size: no write, hence no TLS record, carries more than this much.
    if (settings.tlsWriteBufferBytes < TLS_RECORD_BYTES_MAX) sock.setMaxSendFragment(settings.tlsWriteBufferBytes);
    this.handlers.secured(sock, origin, entry);
  }
}
