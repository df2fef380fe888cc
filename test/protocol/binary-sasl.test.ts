/**
 * SASL over the binary protocol (-S).
 *
 * The reference memcached 1.6.45 is run here with a Cyrus sasldb (made with saslpasswd2, when
 * sasl2-bin is installed) and `mech_list: plain` (Debian's own build could not read
 * MEMCACHED_SASL_PWDB; the 1.6.45 reference could, the sasldb keeps the test independent of
 * that); our session reads the same user from a MEMCACHED_SASL_PWDB file. The two must then
 * answer every exchange byte for byte.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SaslServer } from '../../src/protocol/auth';
import { OP, get, makeBinaryHarness, normalise, parsePackets, req, set, splits } from './binary-helpers';
import { SENTINEL, startMemcached, stopMemcached, viaMemcached, type Memcached } from './binary-memcached';

const USER = 'testuser';
const PASS = 'testpass';
const plain = (authzid: string, user: string, pass: string): string => `${authzid}\0${user}\0${pass}`;
const auth = (data: string, mech = 'PLAIN', opaque = 0): Buffer => req({ op: OP.SASL_AUTH, key: mech, value: data, opaque });
const step = (data: string, mech = 'PLAIN'): Buffer => req({ op: OP.SASL_STEP, key: mech, value: data });
const good = auth(plain('', USER, PASS), 'PLAIN', 1);

let dir = '';
let pwdb = '';

function saslHarness(file: string | null = pwdb) {
  return makeBinaryHarness({ saslEnabled: true, bindProtocol: 'binary' }, {
    auth: { sasl: new SaslServer({ passwordDbPath: file, sasldbPath: null, mechanisms: ['PLAIN'], realm: os.hostname() }), authFile: null },
  });
}

function ours(data: Buffer): { reply: Buffer; closed: boolean } {
  return saslHarness().run([data]);
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-sasl-'));
  pwdb = path.join(dir, 'pwdb');
  fs.writeFileSync(pwdb, `other:x\n${USER}:${PASS}\n`);
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Script {
  parts: Buffer[];
  closes?: boolean;
}

const scripts: Record<string, Script> = {
  'unauthenticated get is refused and closes': { parts: [get('a', { opaque: 4 }), get('b')], closes: true },
  'version works before authenticating, then a get closes': {
    parts: [req({ op: OP.VERSION, opaque: 1 }), req({ op: OP.NOOP })], closes: true,
  },
  'list mechanisms': { parts: [req({ op: OP.SASL_LIST, opaque: 9 }), req({ op: OP.SASL_LIST }), get('k')], closes: true },
  'plain auth, then commands work': {
    parts: [good, set('stored', 'v'), get('stored'), req({ op: OP.SETQ, key: 'q', value: 'v', extras: Buffer.alloc(8) }),
      req({ op: OP.STAT, key: 'nothing' })],
  },
  'wrong password fails without closing, then a get closes': {
    parts: [auth(plain('', USER, 'nope'), 'PLAIN', 2), auth(plain('', 'nobody', PASS)), auth(plain('', USER, PASS + 'x')),
      auth(plain('', USER, PASS.slice(0, 4))), get('a')],
    closes: true,
  },
  'empty auth continues, step completes': { parts: [auth(''), step(plain('', USER, PASS)), get('k')] },
  'empty auth continues, bad step fails': { parts: [auth(''), step(plain('', USER, 'bad')), get('k')], closes: true },
  'step without auth fails': { parts: [step(plain('', USER, PASS)), req({ op: OP.NOOP })], closes: true },
  'lower-case mechanism name': { parts: [auth(plain('', USER, PASS), 'plain'), get('k')] },
  'unknown mechanism fails': { parts: [auth(plain('', USER, PASS), 'CRAM-MD5'), auth(plain('', USER, PASS), 'FOO'), get('k')], closes: true },
  'mechanism longer than 32 bytes: invalid arguments, data swallowed': {
    parts: [auth(plain('', USER, PASS), 'M'.repeat(33)), req({ op: OP.VERSION }), get('k')], closes: true,
  },
  'authzid equal to the user is accepted, another is refused': {
    parts: [auth(plain(USER, USER, PASS)), get('k'), auth(plain('other', USER, PASS)), get('k')], closes: true,
  },
  'malformed plain messages fail': {
    parts: [auth(`${USER}\0${PASS}`), auth(`\0${USER}\0${PASS}\0x`), auth(`\0\0${PASS}`), get('k')], closes: true,
  },
  'list mechanisms drops the authentication': { parts: [good, get('k'), req({ op: OP.SASL_LIST }), get('k')], closes: true },
  'a failed second auth drops the authentication': { parts: [good, get('k'), auth(plain('', USER, 'bad')), get('k')], closes: true },
  'step after success fails and drops the authentication': { parts: [good, step(plain('', USER, PASS)), get('k')], closes: true },
  'auth with extras closes': { parts: [req({ op: OP.SASL_AUTH, key: 'PLAIN', extras: Buffer.alloc(4) })], closes: true },
  'list mechanisms with a key closes': { parts: [req({ op: OP.SASL_LIST, key: 'x' })], closes: true },
};

describe('SASL PLAIN matches memcached 1.6.45 with Cyrus SASL', () => {
  let mc: Memcached | undefined;
  let available = true;

  beforeAll(async () => {
    try {
      const conf = path.join(dir, 'conf');
      fs.mkdirSync(conf);
      const db = path.join(conf, 'sasldb2');
      fs.writeFileSync(path.join(conf, 'memcached.conf'), `mech_list: plain\nsasldb_path: ${db}\n`);
      execFileSync('saslpasswd2', ['-a', 'memcached', '-c', '-p', '-f', db, USER], { input: PASS, stdio: ['pipe', 'ignore', 'ignore'] });
      fs.chmodSync(db, 0o644);
      fs.chmodSync(dir, 0o755);
      fs.chmodSync(conf, 0o755);
      mc = await startMemcached(['-S'], { ...process.env, SASL_CONF_PATH: conf });
    } catch {
      available = false; // no saslpasswd2 (sasl2-bin): the in-process tests below still run
    }
  });

  afterAll(() => stopMemcached(mc));

  for (const [name, s] of Object.entries(scripts)) {
    it(name, async (ctx) => {
      if (!available) ctx.skip();
      const data = Buffer.concat(s.parts);
      const closes = s.closes === true;
      const theirs = await viaMemcached(mc!.port, data, closes);
      const mine = ours(Buffer.concat([data, ...(closes ? [] : [req({ op: OP.NOOP, opaque: SENTINEL })])]));
      const reply = closes ? mine.reply : mine.reply.subarray(0, mine.reply.length - 24);
      expect(normalise(reply)).toBe(normalise(theirs));
      expect(mine.closed).toBe(closes);
    });
  }
});

describe('SASL in-process', () => {
  it('counts auth_cmds and auth_errors as memcached', () => {
    const h = saslHarness();
    h.run([auth(plain('', USER, 'bad')), good, auth('')]);
    expect(h.engine.stats.auth_cmds).toBe(2);
    expect(h.engine.stats.auth_errors).toBe(1);
  });

  it('accepts memcached-style user@hostname lines and plain user lines; every line is checked (1.6.45)', () => {
    fs.writeFileSync(path.join(dir, 'pw2'), `${USER}@${os.hostname()}:other\n${USER}:${PASS}\nu2:p2:extra\r\nu3:p3\n`);
    const server = new SaslServer({ passwordDbPath: path.join(dir, 'pw2'), sasldbPath: null, realm: os.hostname() });
    expect(server.checkPassword(USER, Buffer.from(PASS))).toBe(true);
    expect(server.checkPassword(USER, Buffer.from('other'))).toBe(true);
    expect(server.checkPassword(USER, Buffer.from('nope'))).toBe(false);
    expect(server.checkPassword('u2', Buffer.from('p2'))).toBe(true);
    expect(server.checkPassword('u2', Buffer.from('p'))).toBe(false);
    expect(server.checkPassword('u3', Buffer.from('p3'))).toBe(true);
    expect(server.checkPassword(`u3@${os.hostname()}`, Buffer.from('p3'))).toBe(false);
    expect(server.checkPassword('nobody', Buffer.from('p3'))).toBe(false);
  });

  it('without MEMCACHED_SASL_PWDB nobody authenticates', () => {
    const h = saslHarness(null);
    const { reply } = h.run([good]);
    expect(parsePackets(reply).packets[0].status).toBe(0x20);
  });

  it('SASL data spanning reads at every split', () => {
    const data = Buffer.concat([auth(plain('', USER, PASS)), set('k', 'v'), get('k')]);
    const expected = saslHarness().run([data]).reply;
    expect(parsePackets(expected).packets.map((p) => p.status)).toEqual([0, 0, 0]);
    for (const chunks of splits(data)) expect(saslHarness().run(chunks).reply.equals(expected)).toBe(true);
  });

  it('overlong PLAIN data is read and refused', () => {
    const h = saslHarness();
    const { reply, closed } = h.run([auth(plain('', USER, 'x'.repeat(5000))), req({ op: OP.VERSION })]);
    expect(parsePackets(reply).packets.map((p) => p.status)).toEqual([0x20, 0]);
    expect(closed).toBe(false);
  });
});
