/**
 * Authentication, as memcached 1.6.45 offers it:
 *
 *  - SASL over the binary protocol (-S). memcached delegates to Cyrus SASL; memcached-ts
 *    implements the two mechanisms of Cyrus' plugins that need only a password: PLAIN
 *    (RFC 4616) and CRAM-MD5 (RFC 2195). The configuration is Cyrus' (sasl-config.ts:
 *    mech_list, sasldb_path); passwords come from the Cyrus sasldb (sasldb.ts, as
 *    saslpasswd2 writes it) and, for PLAIN, also from the file named by MEMCACHED_SASL_PWDB,
 *    the way memcached's sasl_defs.c reads it when built with --enable-sasl-pwdb: lines
 *    `user:password[:...]`. Cyrus hands that file the user name with "@<hostname>" appended,
 *    so memcached's own files say `user@host:password`; both `user@host` and plain `user`
 *    match here.
 *  - ASCII authentication (-Y <file>, memcached's authfile.c): up to 8 `user:password` lines,
 *    loaded at startup (a bad file stops the server) and again on SIGHUP; a client
 *    authenticates with `set <any> <any> <any> <len>\r\n<user> <password>\r\n`.
 *
 * Not for: the protocol state machines (binary/session.ts, ascii-auth.ts). Nothing here runs
 * on the request path after a connection has authenticated.
 */
import crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Settings } from '../settings';
import { SASL_MECHANISMS_DEFAULT, loadSaslConfig } from './sasl-config';
import { Sasldb } from './sasldb';

/** memcached's MAX_ENTRY_LEN for both password files: fgets() reads 255 bytes a line. */
const ENTRY_BYTES_MAX = 256;
/** authfile.c's MAX_ENTRIES: later lines are ignored. */
export const AUTH_FILE_ENTRIES_MAX = 8;
/** Enough of an auth file for 8 entries of at most 255 bytes. */
const AUTH_FILE_BYTES_READ_MAX = AUTH_FILE_ENTRIES_MAX * ENTRY_BYTES_MAX + 16;
/** A SASL password file is read per attempt; past this size the rest is not looked at. */
const PWDB_BYTES_READ_MAX = 4 * 1024 * 1024;
/** PLAIN data longer than this cannot authenticate (user + password are at most 252 bytes). */
export const SASL_DATA_BYTES_MAX = 1024;

const COLON = 0x3a;
const LF = 0x0a;
const CR = 0x0d;

// ---------------------------------------------------------------- -Y: ASCII auth file

interface Entry {
  user: Buffer;
  pass: Buffer;
}

export type LoadResult = { ok: true } | { ok: false; message: string };

export class AuthFile {
  private entries: Entry[] = [];

  constructor(readonly path: string) {}

  /**
   * Read the file. On failure the entries loaded before stay in force (memcached keeps the
   * old table when a SIGHUP reload fails).
   */
  load(): LoadResult {
    let data: Buffer;
    try {
      const fd = fs.openSync(this.path, 'r');
      try {
        const buf = Buffer.alloc(AUTH_FILE_BYTES_READ_MAX);
        const n = fs.readSync(fd, buf, 0, buf.length, 0);
        data = buf.subarray(0, n);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return { ok: false, message: `Could not open authfile [${this.path}] for reading, error ${why}` };
    }
    const parsed = parseAuthFile(data);
    if (parsed === null) {
      return { ok: false, message: `Authfile [${this.path}] has a malformed entry. Should be 'user:password'` };
    }
    this.entries = parsed;
    return { ok: true };
  }

  get entryCount(): number {
    return this.entries.length;
  }

  /**
   * authfile_check: exact user and password bytes. Every entry of the right lengths is
   * compared in constant time (crypto.timingSafeEqual, as memcached's safe_memcmp), so the
   * time taken does not tell how many leading bytes of a guess were right.
   */
  check(b: Buffer, userStart: number, userEnd: number, passStart: number, passEnd: number): boolean {
    let ok = false;
    const user = b.subarray(userStart, userEnd);
    const pass = b.subarray(passStart, passEnd);
    for (const e of this.entries) {
      if (e.user.length !== user.length || e.pass.length !== pass.length) continue;
      const userMatch = crypto.timingSafeEqual(e.user, user);
      const passMatch = crypto.timingSafeEqual(e.pass, pass);
      if (userMatch && passMatch) ok = true;
    }
    return ok;
  }
}

/**
 * memcached's authfile rules: each line is `user:password`; the user ends at the first ':',
 * the password at CR, LF or the end; a line without ':' (an empty line included) makes the
 * whole file malformed; only the first 8 entries count. Lines must fit memcached's 255-byte
 * entry. Returns null when malformed.
 *
 * Unlike memcached 1.6.18, whose buffer arithmetic drops the last byte of a file that does
 * not end in a newline, the last line is read whole.
 */
export function parseAuthFile(data: Buffer): Entry[] | null {
  const entries: Entry[] = [];
  let pos = 0;
  while (pos < data.length && entries.length < AUTH_FILE_ENTRIES_MAX) {
    let nl = data.indexOf(LF, pos);
    if (nl < 0) nl = data.length;
    const line = data.subarray(pos, nl);
    pos = nl + 1;
    if (line.length >= ENTRY_BYTES_MAX) return null;
    const colon = line.indexOf(COLON);
    const nul = line.indexOf(0);
    if (colon < 0 || (nul >= 0 && nul < colon)) return null;
    let passEnd = colon + 1;
    while (passEnd < line.length && line[passEnd] !== CR && line[passEnd] !== 0) passEnd++;
    entries.push({ user: Buffer.from(line.subarray(0, colon)), pass: Buffer.from(line.subarray(colon + 1, passEnd)) });
  }
  return entries;
}


// ---------------------------------------------------------------- -S: SASL

export const enum SaslResult {
  Ok = 0,
  Continue = 1,
  Fail = 2,
}

/** The mechanisms implemented. */
export const enum Mechanism {
  Plain = 0,
  CramMd5 = 1,
}

const MECHANISM_NAMES: ReadonlyMap<string, Mechanism> = new Map([['PLAIN', Mechanism.Plain], ['CRAM-MD5', Mechanism.CramMd5]]);
/** The longest name in MECHANISM_NAMES. */
const MECHANISM_NAME_BYTES_MAX = 8;
/** RFC 2195: the digest is 16 bytes, sent as 32 lower-case hex digits. */
const CRAM_DIGEST_HEX_BYTES = 32;
const SPACE = 0x20;

const isSpace = (c: number): boolean => c === SPACE || (c >= 0x09 && c <= 0x0d);

/** `name` without the white space (C's isspace) around it. */
function trimSpace(name: string): string {
  let s = 0;
  let e = name.length;
  while (s < e && isSpace(name.charCodeAt(s))) s++;
  while (e > s && isSpace(name.charCodeAt(e - 1))) e--;
  return name.slice(s, e);
}

export interface SaslServerOptions {
  /** MEMCACHED_SASL_PWDB (PLAIN only); null: none. */
  passwordDbPath?: string | null;
  /** The Cyrus sasldb (PLAIN and CRAM-MD5); null: none. */
  sasldbPath?: string | null;
  /** Offered mechanisms, upper case, in listing order; default CRAM-MD5 then PLAIN. */
  mechanisms?: readonly string[];
  /** The realm of user names without one (memcached passes gethostname() to Cyrus). */
  realm?: string;
}

/**
 * The server side of SASL: offered mechanisms and the password checks. One per process.
 *
 * User names are taken as Cyrus canonicalises them for memcached: white space around the
 * name is dropped, and a name without '@' gets `@<realm>` appended (memcached gives Cyrus
 * its host name). The sasldb key is the name split at its first '@' into user and realm
 * (as Cyrus' sasldb lookup splits it: `x@y@z` is user x in realm y@z).
 * PLAIN admits a password that MEMCACHED_SASL_PWDB or the sasldb holds (Cyrus asks the
 * password-file callback first, then its sasldb); CRAM-MD5 needs the password in clear, so
 * only sasldb users can use it.
 */
export class SaslServer {
  readonly passwordDbPath: string | null;
  readonly sasldb: Sasldb | null;
  readonly realm: string;
  /** The SASL_LIST_MECHS answer; null when no mechanism is offered (Cyrus fails the listing). */
  readonly mechanismList: Buffer | null;
  private readonly offered: Set<Mechanism>;
  /** Key of the HMACs that compare sasldb passwords without revealing lengths or positions. */
  private readonly compareKey = crypto.randomBytes(32);

  constructor(o: SaslServerOptions = {}) {
    this.passwordDbPath = o.passwordDbPath ?? null;
    this.sasldb = o.sasldbPath === undefined || o.sasldbPath === null ? null : new Sasldb(o.sasldbPath);
    this.realm = o.realm ?? os.hostname();
    const names = o.mechanisms ?? SASL_MECHANISMS_DEFAULT;
    this.offered = new Set();
    const listed: string[] = [];
    for (const name of names) {
      const m = MECHANISM_NAMES.get(name);
      if (m === undefined) continue;
      this.offered.add(m);
      listed.push(name);
    }
    this.mechanismList = listed.length === 0 ? null : Buffer.from(listed.join(' '), 'latin1');
  }

  /** The offered mechanism named by `mech` (case-insensitive, as Cyrus compares), or null. */
  mechanism(mech: Buffer, start: number, end: number): Mechanism | null {
    if (end - start > MECHANISM_NAME_BYTES_MAX) return null;
    const m = MECHANISM_NAMES.get(mech.toString('latin1', start, end).toUpperCase());
    return m !== undefined && this.offered.has(m) ? m : null;
  }

  /** Cyrus' canonical form of a user name; null when nothing is left of it. */
  canonical(name: string): string | null {
    const user = trimSpace(name);
    if (user === '') return null;
    return user.includes('@') || this.realm === '' ? user : `${user}@${this.realm}`;
  }

  /**
   * PLAIN's message: authzid NUL authcid NUL password, the password without NUL. An authzid,
   * if given, must name the same user (Cyrus' default proxy policy).
   */
  checkPlain(data: Buffer, len: number): boolean {
    const nul1 = data.indexOf(0, 0);
    if (nul1 < 0 || nul1 >= len) return false;
    const nul2 = data.indexOf(0, nul1 + 1);
    if (nul2 < 0 || nul2 >= len) return false;
    const extra = data.indexOf(0, nul2 + 1);
    if (extra >= 0 && extra < len) return false;
    if (nul2 + 1 === len) return false;
    const authcid = data.toString('latin1', nul1 + 1, nul2);
    const canonical = this.canonical(authcid);
    if (canonical === null) return false;
    if (nul1 > 0 && this.canonical(data.toString('latin1', 0, nul1)) !== canonical) return false;
    return this.checkPassword(authcid, data.subarray(nul2 + 1, len));
  }

  /**
   * The password check of PLAIN: MEMCACHED_SASL_PWDB, then the sasldb. Both are always
   * consulted, so the time taken does not tell which one (if any) knows the user.
   */
  checkPassword(user: string, pass: Buffer): boolean {
    const canonical = this.canonical(user);
    if (canonical === null) return false;
    const inFile = this.checkPasswordFile(canonical, trimSpace(user), pass);
    const inDb = this.checkSasldb(canonical, pass);
    return inFile || inDb;
  }

  /** The cleartext sasldb password of a canonical user name, or null. */
  private sasldbPassword(canonical: string): Buffer | null {
    if (this.sasldb === null) return null;
    const at = canonical.indexOf('@');
    return at < 0 ? null : this.sasldb.password(canonical.slice(0, at), canonical.slice(at + 1));
  }

  private checkSasldb(canonical: string, pass: Buffer): boolean {
    const stored = this.sasldbPassword(canonical);
    // HMACs of both under a per-process key: equal-length digests for timingSafeEqual, so
    // neither the stored password's length nor the first differing byte shows in the time
    const mac = (b: Buffer): Buffer => crypto.createHmac('sha256', this.compareKey).update(b).digest();
    const want = mac(stored ?? this.compareKey);
    return crypto.timingSafeEqual(want, mac(pass)) && stored !== null;
  }

  /** sasl_server_userdb_checkpass over MEMCACHED_SASL_PWDB, read afresh per attempt as memcached does. */
  private checkPasswordFile(canonical: string, user: string, pass: Buffer): boolean {
    if (this.passwordDbPath === null) return false;
    const names = [Buffer.from(canonical, 'latin1'), Buffer.from(user, 'latin1')];
    if (pass.length + names[0].length > ENTRY_BYTES_MAX - 4) return false;
    let data: Buffer;
    try {
      const fd = fs.openSync(this.passwordDbPath, 'r');
      try {
        const size = Math.min(fs.fstatSync(fd).size, PWDB_BYTES_READ_MAX);
        data = Buffer.alloc(size);
        const n = fs.readSync(fd, data, 0, size, 0);
        data = data.subarray(0, n);
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return false;
    }
    // fgets() with a 256-byte buffer: lines, and long lines cut into 255-byte pieces. As
    // memcached 1.6.45, every line is checked (no early exit) and bytes are compared in
    // constant time (crypto.timingSafeEqual; memcached's safe_memcmp) against the line as
    // memcached's zero-filled buffer holds it.
    const entry = Buffer.alloc(ENTRY_BYTES_MAX);
    let ok = false;
    let pos = 0;
    while (pos < data.length) {
      let end = data.indexOf(LF, pos);
      end = end < 0 ? data.length : end + 1;
      if (end - pos > ENTRY_BYTES_MAX - 1) end = pos + ENTRY_BYTES_MAX - 1;
      entry.fill(0);
      data.copy(entry, 0, pos, end);
      pos = end;
      for (const name of names) {
        const userMatch = crypto.timingSafeEqual(entry.subarray(0, name.length), name) && entry[name.length] === COLON;
        const at = name.length + 1;
        const passMatch = crypto.timingSafeEqual(entry.subarray(at, at + pass.length), pass);
        const after = entry[at + pass.length];
        if (userMatch && passMatch && (after === COLON || after === LF || after === CR || after === 0)) ok = true;
      }
    }
    return ok;
  }

  /** A CRAM-MD5 challenge (RFC 2195): `<random.time@host>`. */
  cramChallenge(): Buffer {
    const host = this.realm === '' ? 'localhost' : this.realm;
    return Buffer.from(`<${crypto.randomBytes(4).readUInt32BE(0)}.${Math.floor(Date.now() / 1000)}@${host}>`, 'latin1');
  }

  /**
   * A CRAM-MD5 response to `challenge`: `user SP digest`, split at the last space, the user
   * name ending at a NUL as Cyrus copies it; the digest is the hex HMAC-MD5 of the challenge
   * keyed by the user's sasldb password, compared over its 32 digits (anything after them
   * is not looked at, as Cyrus compares).
   */
  checkCram(challenge: Buffer, data: Buffer, len: number): boolean {
    let space = len - 1;
    while (space > 0 && data[space] !== SPACE) space--;
    if (space <= 0 || len - (space + 1) < CRAM_DIGEST_HEX_BYTES) return false;
    let nameEnd = data.indexOf(0, 0);
    if (nameEnd < 0 || nameEnd > space) nameEnd = space;
    const canonical = this.canonical(data.toString('latin1', 0, nameEnd));
    if (canonical === null) return false;
    const stored = this.sasldbPassword(canonical);
    const digest = crypto.createHmac('md5', stored ?? this.compareKey).update(challenge).digest('hex');
    const given = data.subarray(space + 1, space + 1 + CRAM_DIGEST_HEX_BYTES);
    return crypto.timingSafeEqual(Buffer.from(digest, 'latin1'), given) && stored !== null;
  }
}

const enum Phase {
  /** No exchange under way (or it ended: success, or CRAM-MD5's one answer was wrong). */
  Idle,
  /** PLAIN started without data: each SASL_STEP tries a message until one succeeds. */
  PlainAwaiting,
  /** CRAM-MD5 sent its challenge: one SASL_STEP answers it. */
  CramAwaiting,
}

/**
 * One connection's SASL exchange (memcached's sasl_conn plus sasl_started), with the way
 * Cyrus behaves when memcached reuses a connection's sasl_conn:
 *  - PLAIN may carry its message in SASL_AUTH, or start empty (Continue, nothing sent back)
 *    and take it in SASL_STEP; a wrong message there may be followed by another.
 *  - CRAM-MD5 starts empty: SASL_AUTH answers the challenge, one SASL_STEP the response.
 *  - after a success, the next run of a mechanism on the connection fails, and that failure
 *    (or any failed SASL_AUTH) makes the one after it work again; an empty PLAIN start runs
 *    no mechanism yet, and a SASL_STEP after the exchange ended runs none.
 */
export class SaslConversation {
  /** memcached's c->sasl_started: set by SASL_AUTH when it did not fail. */
  started = false;
  /** What a Continue result sends back (the CRAM-MD5 challenge; empty for PLAIN). */
  reply: Buffer = EMPTY;
  private phase = Phase.Idle;
  private challenge: Buffer = EMPTY;
  /** A success is behind this connection: the next mechanism run fails. */
  private succeeded = false;

  constructor(readonly server: SaslServer) {}

  start(mech: Buffer, mechStart: number, mechEnd: number, data: Buffer, len: number, overlong: boolean): SaslResult {
    this.phase = Phase.Idle;
    this.reply = EMPTY;
    this.challenge = EMPTY;
    const m = this.server.mechanism(mech, mechStart, mechEnd);
    let r = SaslResult.Fail;
    if (m === Mechanism.Plain && len === 0 && !overlong) {
      this.phase = Phase.PlainAwaiting;
      r = SaslResult.Continue;
    } else if (this.succeeded) {
      r = SaslResult.Fail;
    } else if (m === Mechanism.Plain) {
      if (!overlong && this.server.checkPlain(data, len)) r = SaslResult.Ok;
    } else if (m === Mechanism.CramMd5 && len === 0 && !overlong) {
      // the server speaks first: data with SASL_AUTH is a protocol error
      this.challenge = this.server.cramChallenge();
      this.reply = this.challenge;
      this.phase = Phase.CramAwaiting;
      r = SaslResult.Continue;
    }
    this.started = r !== SaslResult.Fail;
    if (r === SaslResult.Fail) this.succeeded = false;
    else if (r === SaslResult.Ok) this.succeeded = true;
    return r;
  }

  step(data: Buffer, len: number, overlong: boolean): SaslResult {
    this.reply = EMPTY;
    if (!this.started) return SaslResult.Fail;
    switch (this.phase) {
      case Phase.PlainAwaiting:
        if (this.succeeded) {
          this.succeeded = false;
          this.phase = Phase.Idle;
          return SaslResult.Fail;
        }
        if (len === 0 || overlong || !this.server.checkPlain(data, len)) return SaslResult.Fail;
        this.phase = Phase.Idle;
        this.succeeded = true;
        return SaslResult.Ok;
      case Phase.CramAwaiting: {
        this.phase = Phase.Idle;
        const ok = !overlong && this.server.checkCram(this.challenge, data, len);
        this.challenge = EMPTY;
        if (ok) this.succeeded = true;
        return ok ? SaslResult.Ok : SaslResult.Fail;
      }
      default:
        return SaslResult.Fail;
    }
  }
}

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------- startup

/** What sessions need for authentication; built once at startup. */
export interface Authenticators {
  /** -S: SASL for binary connections. */
  sasl: SaslServer | null;
  /** -Y: ASCII authentication for text connections. */
  authFile: AuthFile | null;
}

export type AuthInit =
  | { ok: true; auth: Authenticators; warnings: string[] }
  | { ok: false; message: string; exitCode: number };

/**
 * Build the authenticators for `settings`: load the -Y file (failure stops the server with
 * exit status 1, as memcached), and for -S read the SASL configuration (an invalid file
 * stops the server with status 1, as Cyrus' failed initialisation stops memcached) and
 * MEMCACHED_SASL_PWDB from `env`.
 */
export function initAuth(settings: Settings, env: NodeJS.ProcessEnv = process.env): AuthInit {
  const warnings: string[] = [];
  let authFile: AuthFile | null = null;
  if (settings.authFile !== null) {
    authFile = new AuthFile(settings.authFile);
    const r = authFile.load();
    if (!r.ok) return { ok: false, message: r.message, exitCode: 1 };
  }
  let sasl: SaslServer | null = null;
  if (settings.saslEnabled) {
    const conf = loadSaslConfig(env);
    if (!conf.ok) return { ok: false, message: conf.message, exitCode: 1 };
    const { config } = conf;
    warnings.push(`SASL: configuration ${config.file === null ? 'not found; defaults apply' : `from ${config.file}`}`);
    warnings.push(...config.warnings);
    const pwdb = env.MEMCACHED_SASL_PWDB;
    const hasPwdb = pwdb !== undefined && pwdb !== '';
    if (!hasPwdb && !fs.existsSync(config.sasldbPath)) {
      warnings.push(`SASL: MEMCACHED_SASL_PWDB is not set and there is no sasldb at ${config.sasldbPath} (yet); no user can authenticate`);
    }
    sasl = new SaslServer({
      passwordDbPath: hasPwdb ? pwdb : null,
      sasldbPath: config.sasldbPath,
      mechanisms: config.mechanisms,
    });
  }
  return { ok: true, auth: { sasl, authFile }, warnings };
}
