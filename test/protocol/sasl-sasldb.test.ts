/**
 * The Cyrus sasldb reader (src/protocol/sasldb.ts) against databases made by saslpasswd2
 * (sasl2-bin, which scripts/install-test-deps.sh installs) at test time, corrupt and
 * hostile files, and the Cyrus configuration reader (src/protocol/sasl-config.ts).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SASL_MECHANISMS_DEFAULT, SASLDB_DEFAULT_PATH, findSaslConfig, loadSaslConfig, parseSaslConfig,
} from '../../src/protocol/sasl-config';
import { SASLDB_BYTES_MAX, Sasldb, parseSasldb, sasldbKey } from '../../src/protocol/sasldb';

const PAGE = 4096;

function findSaslpasswd2(): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin']) {
    const p = path.join(dir, 'saslpasswd2');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

const SASLPASSWD2 = findSaslpasswd2();
const WHY_SKIPPED = 'saslpasswd2 is not installed (Debian: sasl2-bin; scripts/install-test-deps.sh installs it)';
if (SASLPASSWD2 === null) process.stderr.write(`sasl-sasldb.test.ts: skipping the sasldb tests: ${WHY_SKIPPED}\n`);

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-sasldb-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** saslpasswd2 -c (create or change) or -d (delete) a user in `db`. */
function setUser(db: string, user: string, pass: string, realm?: string): void {
  execFileSync(SASLPASSWD2!, ['-a', 'memcached', ...(realm === undefined ? [] : ['-u', realm]), '-c', '-p', '-f', db, user],
    { input: pass, stdio: ['pipe', 'ignore', 'pipe'] });
}
function deleteUser(db: string, user: string, realm: string): void {
  execFileSync(SASLPASSWD2!, ['-a', 'memcached', '-u', realm, '-d', '-f', db, user], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function passwordsOf(file: string): Record<string, string> | null {
  const m = parseSasldb(fs.readFileSync(file));
  if (m === null) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of m) out[k.replace('\0', '@')] = v.toString('latin1');
  return out;
}

/** A deterministic PRNG for the fuzzing below. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
}

describe.skipIf(SASLPASSWD2 === null)(`sasldb files made by saslpasswd2${SASLPASSWD2 === null ? ` (skipped: ${WHY_SKIPPED})` : ''}`, () => {
  let db = '';
  const expected: Record<string, string> = {};
  const longPass = 'p'.repeat(1999) + 'X';
  const longUser = 'u'.repeat(1500);

  beforeAll(() => {
    db = path.join(dir, 'main.sasldb');
    setUser(db, 'testuser', 'testpass', 'memcached.realm');
    setUser(db, 'testuser', 'other pass', 'second.realm');
    setUser(db, 'bob', 'bobpw'); // saslpasswd2's default realm: the host name
    setUser(db, 'x', 'with at', 'y@z'); // saslpasswd2 would split a user name x@y itself
    setUser(db, 'long', longPass, 'r');
    setUser(db, longUser, 'short', 'r');
    for (let i = 0; i < 60; i++) setUser(db, `user${i}`, `pw${i}-${'z'.repeat(i * 7)}`, i % 2 === 0 ? 'r' : 'r2');
    for (let i = 0; i < 60; i += 3) deleteUser(db, `user${i}`, i % 2 === 0 ? 'r' : 'r2');
    setUser(db, 'user1', 'changed', 'r2');
    Object.assign(expected, {
      'testuser@memcached.realm': 'testpass', 'testuser@second.realm': 'other pass', [`bob@${os.hostname()}`]: 'bobpw',
      'x@y@z': 'with at', 'long@r': longPass, [`${longUser}@r`]: 'short',
    });
    for (let i = 0; i < 60; i++) {
      if (i % 3 === 0) continue;
      expected[`user${i}@${i % 2 === 0 ? 'r' : 'r2'}`] = i === 1 ? 'changed' : `pw${i}-${'z'.repeat(i * 7)}`;
    }
  });

  it('reads every user, realm and password back, deletions and changes included', () => {
    expect(passwordsOf(db)).toEqual(expected);
  });

  it('reads passwords and user names kept on overflow pages', () => {
    const file = fs.readFileSync(db);
    const types = new Set<number>();
    for (let p = 0; p < file.length / PAGE; p++) types.add(file[p * PAGE + 25]);
    expect(types.has(7)).toBe(true); // overflow pages are in the file
    const m = parseSasldb(file)!;
    expect(m.get(sasldbKey('long', 'r'))?.toString()).toBe(longPass);
    expect(m.get(sasldbKey(longUser, 'r'))?.toString()).toBe('short');
  });

  it('Sasldb sees a change made with saslpasswd2 at the next lookup; a missing file holds nobody', () => {
    const file = path.join(dir, 'change.sasldb');
    const s = new Sasldb(file);
    expect(s.password('a', 'r')).toBeNull();
    setUser(file, 'a', 'first', 'r');
    expect(s.password('a', 'r')?.toString()).toBe('first');
    expect(s.password('a', 'r')?.toString()).toBe('first'); // cached: same file
    setUser(file, 'a', 'second', 'r');
    expect(s.password('a', 'r')?.toString()).toBe('second');
    deleteUser(file, 'a', 'r');
    expect(s.password('a', 'r')).toBeNull();
    fs.rmSync(file);
    expect(s.password('a', 'r')).toBeNull();
  });

  it('a truncated file never throws: whole pages read, a cut page is corrupt', () => {
    const file = fs.readFileSync(db);
    for (let len = 0; len <= file.length; len += len < 64 ? 1 : 509) {
      const r = parseSasldb(file.subarray(0, len));
      if (r !== null) for (const [k, v] of r) expect(expected[k.replace('\0', '@')]).toBe(v.toString('latin1'));
    }
  });

  it('random corruption never throws nor hangs', () => {
    const original = fs.readFileSync(db);
    const rnd = prng(20240610);
    const started = Date.now();
    for (let round = 0; round < 1500; round++) {
      const file = Buffer.from(original);
      const flips = 1 + Math.floor(rnd() * 8);
      for (let i = 0; i < flips; i++) {
        // aim most flips at page headers and item offsets, where damage matters
        const page = Math.floor(rnd() * (file.length / PAGE));
        const at = page * PAGE + (rnd() < 0.7 ? Math.floor(rnd() * 64) : Math.floor(rnd() * PAGE));
        file[at] = Math.floor(rnd() * 256);
      }
      expect(() => parseSasldb(file)).not.toThrow();
    }
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('an overflow chain that loops, or points past the file, reads as corrupt', () => {
    const file = Buffer.from(fs.readFileSync(db));
    const overflow: number[] = [];
    for (let p = 1; p < file.length / PAGE; p++) if (file[p * PAGE + 25] === 7) overflow.push(p);
    expect(overflow.length).toBeGreaterThan(0);
    const loop = Buffer.from(file);
    for (const p of overflow) {
      loop.writeUInt32LE(p, p * PAGE + 16); // next = itself
      loop.writeUInt16LE(1, p * PAGE + 22); // one byte a page: the chain never ends by length
    }
    expect(parseSasldb(loop)).toBeNull();
    // an item whose overflow chain starts past the end of the file
    const past = Buffer.from(file);
    let offpage = 0;
    for (let p = 1; p < past.length / PAGE; p++) {
      if (past[p * PAGE + 25] !== 13) continue;
      for (let i = 0; i < past.readUInt16LE(p * PAGE + 20); i++) {
        const at = p * PAGE + past.readUInt16LE(p * PAGE + 26 + 2 * i);
        if (past[at] === 3) {
          past.writeUInt32LE(0x7fffffff, at + 4);
          offpage++;
        }
      }
    }
    expect(offpage).toBeGreaterThan(0);
    expect(parseSasldb(past)).toBeNull();
  });
});

describe('sasldb: files that are not sasldbs', () => {
  it('empty, text, zeros, wrong version, encrypted, odd page sizes: no users', () => {
    expect(parseSasldb(Buffer.alloc(0))).toBeNull();
    expect(parseSasldb(Buffer.from('testuser:testpass\n'.repeat(100)))).toBeNull();
    expect(parseSasldb(Buffer.alloc(3 * PAGE))).toBeNull();
    const meta = (f: (b: Buffer) => void): Buffer => {
      const b = Buffer.alloc(2 * PAGE);
      b.writeUInt32LE(0x061561, 12);
      b.writeUInt32LE(9, 16);
      b.writeUInt32LE(PAGE, 20);
      b.writeUInt32LE(1, 32);
      f(b);
      return b;
    };
    expect(parseSasldb(meta(() => undefined))?.size).toBe(0); // valid, holds nobody
    expect(parseSasldb(meta((b) => b.writeUInt32LE(7, 16)))).toBeNull();
    expect(parseSasldb(meta((b) => b.writeUInt32LE(3000, 20)))).toBeNull();
    expect(parseSasldb(meta((b) => b.writeUInt32LE(1 << 20, 20)))).toBeNull();
    expect(parseSasldb(meta((b) => (b[24] = 1)))).toBeNull(); // encrypted
    expect(parseSasldb(meta((b) => (b[26] = 1)))).toBeNull(); // checksummed pages
    // a big-endian file (made on such a machine) has its magic the other way round
    const be = Buffer.alloc(2 * PAGE);
    be.writeUInt32BE(0x061561, 12);
    be.writeUInt32BE(9, 16);
    be.writeUInt32BE(PAGE, 20);
    be.writeUInt32BE(1, 32);
    be[PAGE + 25] = 13;
    be.writeUInt16BE(2, PAGE + 20);
    const key = Buffer.from('\x01u\0r\0userPassword', 'latin1');
    const val = Buffer.from('\x01pw', 'latin1');
    key.copy(be, 2 * PAGE - key.length);
    val.copy(be, 2 * PAGE - key.length - val.length);
    be.writeUInt16BE(PAGE - key.length, PAGE + 26);
    be.writeUInt16BE(PAGE - key.length - val.length, PAGE + 28);
    expect(parseSasldb(be)?.get(sasldbKey('u', 'r'))?.toString()).toBe('pw');
  });

  it('a file over SASLDB_BYTES_MAX is not read', () => {
    const file = path.join(dir, 'huge');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, SASLDB_BYTES_MAX + 1); // sparse
    expect(new Sasldb(file).passwords().size).toBe(0);
    fs.rmSync(file);
  });

  it('a directory or a missing file holds nobody', () => {
    expect(new Sasldb(dir).password('a', 'b')).toBeNull();
    expect(new Sasldb(path.join(dir, 'nope')).password('a', 'b')).toBeNull();
  });
});

describe('Cyrus configuration (memcached.conf)', () => {
  const parse = (s: string): Record<string, string> | null => {
    const m = parseSaslConfig(Buffer.from(s, 'latin1'));
    return m === null ? null : Object.fromEntries(m);
  };

  it('parses key: value lines as Cyrus does', () => {
    expect(parse('mech_list: plain cram-md5\nlog_level: 5\nsasldb_path: /tmp/x.sasldb\n')).toEqual({
      mech_list: 'plain cram-md5', log_level: '5', sasldb_path: '/tmp/x.sasldb',
    });
    expect(parse('# comment\n\n   \n  \tMECH_LIST:\t plain  \r\nmech_list: cram-md5\nFoo-Bar_2: x')).toEqual({
      mech_list: 'plain', 'foo-bar_2': 'x',
    });
    expect(parse('')).toEqual({});
  });

  it('refuses what Cyrus refuses: a line without a colon after the key, an empty value', () => {
    expect(parse('bad line\n')).toBeNull();
    expect(parse('mech_list:\n')).toBeNull();
    expect(parse('mech_list :plain\n')).toBeNull();
    expect(parse('mech.list: plain\n')).toBeNull();
  });

  it('finds memcached.conf in the first SASL_CONF_PATH directory that has one', () => {
    const a = path.join(dir, 'conf-a');
    const b = path.join(dir, 'conf-b');
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    fs.writeFileSync(path.join(b, 'memcached.conf'), 'mech_list: plain\n');
    expect(findSaslConfig({ SASL_CONF_PATH: `${a}:${b}` })).toBe(path.join(b, 'memcached.conf'));
    expect(findSaslConfig({ SASL_CONF_PATH: a })).toBeNull();
    expect(findSaslConfig({ SASL_CONF_PATH: '' })).toBeNull();
    expect(findSaslConfig({ SASL_CONF_PATH: path.join(b, 'memcached.conf') })).toBeNull(); // a file, not a directory
  });

  it('offers only the implemented mechanisms, in mech_list order; defaults without a file', () => {
    const c = path.join(dir, 'conf-c');
    fs.mkdirSync(c);
    const load = (text: string) => {
      fs.writeFileSync(path.join(c, 'memcached.conf'), text);
      return loadSaslConfig({ SASL_CONF_PATH: c });
    };
    const r1 = load('mech_list: plain foo Cram-MD5 digest-md5\nsasldb_path: /tmp/db\n');
    expect(r1.ok && r1.config.mechanisms).toEqual(['PLAIN', 'CRAM-MD5']);
    expect(r1.ok && r1.config.sasldbPath).toBe('/tmp/db');
    expect(r1.ok && r1.config.warnings.some((w) => w.includes('digest-md5'))).toBe(true);
    const r2 = load('mech_list: PLAIN,CRAM-MD5\n'); // Cyrus splits at white space only
    expect(r2.ok && r2.config.mechanisms).toEqual([]);
    expect(r2.ok && r2.config.sasldbPath).toBe(SASLDB_DEFAULT_PATH);
    const r3 = load('log_level: 5\n');
    expect(r3.ok && r3.config.mechanisms).toEqual([...SASL_MECHANISMS_DEFAULT]);
    const r4 = load('pwcheck_method: saslauthd\n');
    expect(r4.ok && r4.config.warnings.some((w) => w.includes('saslauthd'))).toBe(true);
    expect(load('mech_list:\n').ok).toBe(false);
    const none = loadSaslConfig({ SASL_CONF_PATH: path.join(dir, 'nothing-here') });
    expect(none.ok && none.config.file).toBeNull();
    expect(none.ok && none.config.mechanisms).toEqual(['CRAM-MD5', 'PLAIN']);
  });
});
