/**
 * Authentication, as memcached 1.6.18 offers it:
 *
 *  - SASL over the binary protocol (-S). memcached delegates to Cyrus SASL; memcached-ts
 *    implements the one mechanism clients use, PLAIN (RFC 4616), checked against the
 *    password file named by MEMCACHED_SASL_PWDB, the way memcached's sasl_defs.c reads it
 *    when built with --enable-sasl-pwdb: lines `user:password[:...]`, first line of a user
 *    decides. Cyrus hands that file the user name with "@<hostname>" appended, so memcached's
 *    own files say `user@host:password`; both `user@host` and plain `user` match here.
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


// ---------------------------------------------------------------- -S: SASL PLAIN

export const enum SaslResult {
  Ok = 0,
  Continue = 1,
  Fail = 2,
}

export const SASL_MECHANISMS = 'PLAIN';
const PLAIN = Buffer.from('PLAIN', 'latin1');

/** The server side of SASL: mechanisms and the password check. One per process. */
export class SaslServer {
  constructor(
    /** MEMCACHED_SASL_PWDB; null: no password file, every attempt fails. */
    readonly passwordDbPath: string | null,
    /** The realm Cyrus appends to user names (memcached passes gethostname()). */
    readonly realm: string = os.hostname(),
  ) {}

  /** Is `mech` (case-insensitive, as Cyrus compares) a mechanism offered? */
  offers(mech: Buffer, start: number, end: number): boolean {
    if (end - start !== PLAIN.length) return false;
    for (let i = 0; i < PLAIN.length; i++) if ((mech[start + i] & 0xdf) !== PLAIN[i]) return false;
    return true;
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
    const authzid = data.toString('latin1', 0, nul1);
    const authcid = data.toString('latin1', nul1 + 1, nul2);
    if (authcid === '') return false;
    if (authzid !== '' && this.canonical(authzid) !== this.canonical(authcid)) return false;
    return this.checkPassword(authcid, data.subarray(nul2 + 1, len));
  }

  private canonical(user: string): string {
    return user.includes('@') || this.realm === '' ? user : `${user}@${this.realm}`;
  }

  /** sasl_server_userdb_checkpass over the file, read afresh per attempt as memcached does. */
  checkPassword(user: string, pass: Buffer): boolean {
    if (this.passwordDbPath === null) return false;
    const names = [Buffer.from(this.canonical(user), 'latin1'), Buffer.from(user, 'latin1')];
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
}

/**
 * One connection's SASL exchange (memcached's sasl_conn plus sasl_started). PLAIN takes one
 * message: with SASL_AUTH, or after an empty SASL_AUTH with SASL_STEP.
 */
export class SaslConversation {
  /** memcached's c->sasl_started: set by SASL_AUTH when it did not fail. */
  started = false;
  private awaitingResponse = false;

  constructor(private readonly server: SaslServer) {}

  start(mech: Buffer, mechStart: number, mechEnd: number, data: Buffer, len: number, overlong: boolean): SaslResult {
    this.awaitingResponse = false;
    let r: SaslResult;
    if (!this.server.offers(mech, mechStart, mechEnd)) r = SaslResult.Fail;
    else if (len === 0 && !overlong) {
      this.awaitingResponse = true;
      r = SaslResult.Continue;
    } else r = !overlong && this.server.checkPlain(data, len) ? SaslResult.Ok : SaslResult.Fail;
    this.started = r !== SaslResult.Fail;
    return r;
  }

  step(data: Buffer, len: number, overlong: boolean): SaslResult {
    if (!this.started) return SaslResult.Fail;
    if (!this.awaitingResponse) return SaslResult.Fail;
    this.awaitingResponse = false;
    return !overlong && this.server.checkPlain(data, len) ? SaslResult.Ok : SaslResult.Fail;
  }
}

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
 * exit status 1, as memcached), read MEMCACHED_SASL_PWDB from `env` for -S.
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
    const pwdb = env.MEMCACHED_SASL_PWDB;
    if (pwdb === undefined || pwdb === '') {
      warnings.push('SASL: MEMCACHED_SASL_PWDB is not set; no user can authenticate');
    }
    sasl = new SaslServer(pwdb === undefined || pwdb === '' ? null : pwdb);
  }
  return { ok: true, auth: { sasl, authFile }, warnings };
}
