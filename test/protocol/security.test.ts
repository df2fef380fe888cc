/**
 * Regression tests for the security fixes of memcached 1.6.42 to 1.6.45, against this
 * server: each sends what broke (or leaked from) a memcached without the fix, and checks the
 * reply memcached 1.6.45 gives, that nothing else was harmed and that the server still
 * serves. Where the reference memcached 1.6.45 is built (scripts/install-test-deps.sh), the
 * same bytes go to it too and the replies must be equal.
 *
 *   - password checks in constant time (SASL's MEMCACHED_SASL_PWDB and -Y's auth file):
 *     crypto.timingSafeEqual over every entry, no early exit on the first wrong byte; the
 *     sasldb (PLAIN, CRAM-MD5) compares fixed-length digests, known user or not;
 *   - binary protocol body lengths: a body shorter than key + extras, or over 1 GiB, is
 *     refused and the connection closed before any length is computed from it;
 *   - reference counts: tens of thousands of gets of one key in one request batch;
 *   - huge ASCII auth tokens (-Y): a length near 2^32 must not wrap into a small one;
 *   - command lines made only of spaces;
 *   - flag arguments at the end of a line: a flag with no argument must not read past it.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RawClient, endsWith, show } from '../helpers/client';
import { memcachedBin, startReference, startServer, startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { AuthFile, SaslServer } from '../../src/protocol/auth';
import { OP, parsePackets, req, setExtras } from './binary-helpers';

const haveReference = fs.existsSync(memcachedBin());

let dir = '';
let target: ServerProcess | undefined;
let reference: ServerProcess | undefined;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-security-'));
  [target, reference] = await Promise.all([
    startTarget(['-m', '64']),
    haveReference ? startReference(['-m', '64']) : Promise.resolve(undefined),
  ]);
}, 30_000);

afterAll(async () => {
  await stopAll(target, reference);
  fs.rmSync(dir, { recursive: true, force: true });
}, 20_000);

function servers(): ServerProcess[] {
  if (target === undefined) throw new Error('server did not start');
  return reference === undefined ? [target] : [target, reference];
}

/** Send `data`, read until the reply ends with `until` (or the server closes); bounded in time. */
async function exchange(s: ServerProcess, data: Buffer | string, until: string | RegExp, timeoutMs = 10_000): Promise<{ reply: string; closed: boolean }> {
  const c = await RawClient.connect(s.port);
  const done = (text: string): boolean => (typeof until === 'string' ? text.endsWith(until) : until.test(text));
  try {
    await c.send(data);
    const reply = await c.readUntil((b) => done(b.toString('latin1')) || c.closed, timeoutMs);
    return { reply: reply.toString('latin1'), closed: c.closed };
  } finally {
    c.close();
  }
}

async function expectServing(s: ServerProcess): Promise<void> {
  expect(s.isAlive(), `${s.describe()} died: ${s.exitDescription()}\n${s.logTail()}`).toBe(true);
  const c = await RawClient.connect(s.port);
  try {
    expect(await c.line('version\r\n')).toMatch(/^VERSION /);
  } finally {
    c.close();
  }
}

describe('password checks take the same time whichever byte is wrong', () => {
  it('SASL (MEMCACHED_SASL_PWDB): every line is compared with crypto.timingSafeEqual, right or wrong', () => {
    const file = path.join(dir, 'pwdb');
    fs.writeFileSync(file, 'alice:correct horse\nbob:battery staple\n');
    const server = new SaslServer({ passwordDbPath: file, sasldbPath: null, realm: 'example.org' });
    const spy = vi.spyOn(crypto, 'timingSafeEqual');
    try {
      const callsFor = (user: string, pass: string): { ok: boolean; calls: number; sawPass: boolean } => {
        spy.mockClear();
        const ok = server.checkPassword(user, Buffer.from(pass));
        const sawPass = spy.mock.calls.some(([, b]) => Buffer.from(b as Uint8Array).toString() === pass);
        return { ok, calls: spy.mock.calls.length, sawPass };
      };
      const right = callsFor('bob', 'battery staple');
      const firstByteWrong = callsFor('bob', 'Xattery staple');
      const lastByteWrong = callsFor('bob', 'battery staplX');
      expect(right.ok).toBe(true);
      expect(firstByteWrong.ok).toBe(false);
      expect(lastByteWrong.ok).toBe(false);
      // the password itself went through timingSafeEqual, and the work does not depend on
      // where the first wrong byte is (nor on whether it is right)
      expect(right.sawPass && firstByteWrong.sawPass && lastByteWrong.sawPass).toBe(true);
      expect(firstByteWrong.calls).toBe(lastByteWrong.calls);
      expect(right.calls).toBe(lastByteWrong.calls);
      expect(right.calls).toBeGreaterThanOrEqual(4); // two lines × (user, password)
    } finally {
      spy.mockRestore();
    }
  });

  it('SASL (sasldb): PLAIN and CRAM-MD5 compare in constant time, for known and unknown users alike', (ctx) => {
    const saslpasswd2 = ['/usr/sbin/saslpasswd2', '/usr/bin/saslpasswd2'].find((p) => fs.existsSync(p));
    if (saslpasswd2 === undefined) ctx.skip(); // sasl2-bin not installed
    const db = path.join(dir, 'sasldb');
    execFileSync(saslpasswd2!, ['-a', 'memcached', '-u', 'example.org', '-c', '-p', '-f', db, 'bob'], { input: 'battery staple' });
    const server = new SaslServer({ sasldbPath: db, realm: 'example.org' });
    const spy = vi.spyOn(crypto, 'timingSafeEqual');
    try {
      const plainCalls = (user: string, pass: string): { ok: boolean; calls: number } => {
        spy.mockClear();
        return { ok: server.checkPassword(user, Buffer.from(pass)), calls: spy.mock.calls.length };
      };
      const results = [plainCalls('bob', 'battery staple'), plainCalls('bob', 'Xattery staple'), plainCalls('bob', 'battery staplX'),
        plainCalls('bob', 'short'), plainCalls('nobody', 'battery staple')];
      expect(results.map((r) => r.ok)).toEqual([true, false, false, false, false]);
      expect(new Set(results.map((r) => r.calls)).size).toBe(1);
      expect(results[0].calls).toBeGreaterThan(0);
      const challenge = Buffer.from('<1.2@example.org>');
      const cramCalls = (user: string, pass: string): { ok: boolean; calls: number } => {
        spy.mockClear();
        const digest = crypto.createHmac('md5', pass).update(challenge).digest('hex');
        const data = Buffer.from(`${user} ${digest}`);
        return { ok: server.checkCram(challenge, data, data.length), calls: spy.mock.calls.length };
      };
      const cram = [cramCalls('bob', 'battery staple'), cramCalls('bob', 'wrong'), cramCalls('nobody', 'battery staple')];
      expect(cram.map((r) => r.ok)).toEqual([true, false, false]);
      expect(cram.map((r) => r.calls)).toEqual([1, 1, 1]);
    } finally {
      spy.mockRestore();
    }
  });

  it('-Y auth file: every entry of the right lengths is compared with crypto.timingSafeEqual', () => {
    const file = path.join(dir, 'auth');
    fs.writeFileSync(file, 'alice:secret1\nbob:secret2\ncarol:secret3\n');
    const auth = new AuthFile(file);
    expect(auth.load().ok).toBe(true);
    const spy = vi.spyOn(crypto, 'timingSafeEqual');
    try {
      const check = (text: string): { ok: boolean; calls: number } => {
        spy.mockClear();
        const b = Buffer.from(text, 'latin1');
        const space = b.indexOf(0x20);
        return { ok: auth.check(b, 0, space, space + 1, b.length), calls: spy.mock.calls.length };
      };
      const right = check('carol secret3');
      const firstWrong = check('carol Xecret3');
      const lastWrong = check('carol secretX');
      expect([right.ok, firstWrong.ok, lastWrong.ok]).toEqual([true, false, false]);
      expect(right.calls).toBeGreaterThan(0);
      expect(firstWrong.calls).toBe(lastWrong.calls);
      expect(right.calls).toBe(lastWrong.calls);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('binary protocol body lengths', () => {
  async function binary(s: ServerProcess, data: Buffer): Promise<{ packets: ReturnType<typeof parsePackets>['packets']; closed: boolean }> {
    const c = await RawClient.connect(s.port);
    try {
      await c.send(data);
      const { closed, received } = await c.waitForClose(5_000);
      return { packets: parsePackets(received).packets, closed };
    } finally {
      c.close();
    }
  }

  it('a body over 1 GiB is refused with EINVAL and the connection closed', async () => {
    for (const s of servers()) {
      for (const bodylen of [0xffffffff, 0x80000005, 1024 * 1024 * 1024 + 1]) {
        const r = await binary(s, req({ op: OP.SET, key: 'k', extras: setExtras(0, 0), bodylen, opaque: 7 }));
        expect(r.packets.map((p) => [p.status, p.opaque]), `${s.kind} bodylen ${bodylen}`).toEqual([[0x04, 7]]);
        expect(r.closed).toBe(true);
      }
      await expectServing(s);
    }
  });

  it('a body shorter than its key and extras is refused and the connection closed', async () => {
    for (const s of servers()) {
      // keylen + extlen > bodylen: "bodylen - keylen - extlen" would be negative (or huge)
      const r = await binary(s, req({ op: OP.SET, key: 'key', extras: setExtras(0, 0), bodylen: 5, opaque: 9 }));
      expect(r.packets.map((p) => [p.status, p.opaque]), s.kind).toEqual([[0x81, 9]]);
      expect(r.closed).toBe(true);
      await expectServing(s);
    }
  });
});

describe('many references to one item', () => {
  it('70,000 gets of one key in one line and 70,000 pipelined mg: every reply is the value', async () => {
    const count = 70_000;
    const s = servers()[0];
    const c = await RawClient.connect(s.port);
    try {
      expect((await c.request('set k 0 0 5\r\nhello\r\n', endsWith('\r\n'))).toString()).toBe('STORED\r\n');
      const line = `get ${Array(count).fill('k').join(' ')}\r\n`;
      const got = await c.request(line, endsWith('END\r\n'), 30_000);
      const hits = got.toString('latin1').split('VALUE k 0 5\r\nhello\r\n');
      expect(hits.length - 1).toBe(count);
      expect(hits.at(-1)).toBe('END\r\n');
      const mg = await c.request('mg k v\r\n'.repeat(count) + 'mn\r\n', endsWith('MN\r\n'), 30_000);
      expect(mg.toString('latin1')).toBe('VA 5\r\nhello\r\n'.repeat(count) + 'MN\r\n');
    } finally {
      c.close();
    }
    await expectServing(s);
  }, 60_000);
});

describe('ASCII authentication tokens', () => {
  let authTarget: ServerProcess | undefined;
  let authReference: ServerProcess | undefined;

  beforeAll(async () => {
    const file = path.join(dir, 'ascii-auth');
    fs.writeFileSync(file, 'user:pass\n');
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(file, 0o644);
    // -Y answers `version` with "unauthenticated": ready once it accepts connections
    [authTarget, authReference] = await Promise.all([
      startServer({ args: ['-Y', file], ready: 'connect' }),
      haveReference ? startServer({ kind: 'memcached', args: ['-Y', file], ready: 'connect' }) : Promise.resolve(undefined),
    ]);
  }, 30_000);
  afterAll(async () => {
    await stopAll(authTarget, authReference);
  }, 20_000);

  it('a length near 2^32 is too long (it must not wrap into a short payload); the connection stays', async () => {
    for (const s of [authTarget, authReference]) {
      if (s === undefined) continue;
      // 4294967294 + 2 is 0 in 32 bits: a server that adds before checking would take the
      // next line as the credentials.
      for (const len of ['4294967294', '4294967295', '2147483647', '16385']) {
        const r = await exchange(s, `set a 0 0 ${len}\r\n`, '\r\n');
        expect(r, `${s.kind} ${len}`).toEqual({ reply: 'CLIENT_ERROR auth token too long\r\n', closed: false });
      }
      const ok = await exchange(s, 'set a 0 0 9\r\nuser pass\r\nset k 0 0 1\r\nv\r\nget k\r\n', 'END\r\n');
      expect(ok.reply, s.kind).toBe('STORED\r\nSTORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n');
      await expectServingAuth(s);
    }
  });

  async function expectServingAuth(s: ServerProcess): Promise<void> {
    expect(s.isAlive(), `${s.describe()} died: ${s.logTail()}`).toBe(true);
  }
});

describe('command lines of spaces', () => {
  const cases: Array<[string, string]> = [
    ['    \r\n', 'ERROR\r\n'],
    [' \r\n', 'CLIENT_ERROR bad command line format\r\n'],
    ['  \n', 'CLIENT_ERROR bad command line format\r\n'],
    [' '.repeat(1_000) + '\r\n', 'ERROR\r\n'],
    [' '.repeat(2_040) + '\n', 'ERROR\r\n'],
  ];
  it('are answered as memcached 1.6.45 answers them, and harm nothing', async () => {
    for (const s of servers()) {
      for (const [line, expected] of cases) {
        const r = await exchange(s, line + 'version\r\n', /VERSION \S+\r\n$/);
        expect(r.reply.replace(/VERSION \S+\r\n$/, ''), `${s.kind}: ${show(line)}`).toBe(expected);
      }
      // spaces and no line end: more than 100 leading spaces cannot start a multiget
      const c = await RawClient.connect(s.port);
      try {
        await c.send(' '.repeat(3_000));
        expect((await c.waitForClose(5_000)).closed, s.kind).toBe(true);
      } finally {
        c.close();
      }
      await expectServing(s);
    }
  });
});

describe('meta flags at the end of a line', () => {
  // A flag that takes an argument, given without one as the last token: memcached before
  // 1.6.45 read the argument from the bytes after the token (the line end and beyond).
  const cases: Array<[string, string]> = [
    ['mg foo T\r\n', 'CLIENT_ERROR bad token in command line format\r\n'],
    ['mg foo N\r\n', 'CLIENT_ERROR bad token in command line format\r\n'],
    ['mg foo R\r\n', 'CLIENT_ERROR bad token in command line format\r\n'],
    ['mg foo E\r\n', 'CLIENT_ERROR bad token in command line format\r\n'],
    ['md foo C\r\n', 'CLIENT_ERROR bad token in command line format\r\n'],
    ['ma foo D\r\n', 'CLIENT_ERROR invalid or duplicate flag\r\n'],
    ['ma foo J\r\n', 'CLIENT_ERROR invalid or duplicate flag\r\n'],
    ['ma foo M\r\n', 'CLIENT_ERROR invalid mode for ma M token\r\n'],
    ['ms foo 2 M\r\nhi\r\n', 'CLIENT_ERROR invalid mode for ms M token\r\n'],
    ['ms foo 2 F\r\nhi\r\n', 'CLIENT_ERROR bad command line format\r\n'],
    ['ms foo 2 T\nhi\r\n', 'CLIENT_ERROR bad token in command line format\r\n'],
    ['mg foo O\r\n', 'EN O\r\n'],
  ];
  it('are refused (or taken as empty) without reading past the line', async () => {
    for (const s of servers()) {
      for (const [line, expected] of cases) {
        // the next line starts with digits that a flag reading past its token would take
        const r = await exchange(s, line + '1234 junk\r\nmn\r\n', 'MN\r\n');
        expect(r.reply, `${s.kind}: ${show(line)}`).toBe(expected + 'ERROR\r\nMN\r\n');
      }
      // the same flags with their arguments split over two writes
      const c = await RawClient.connect(s.port);
      try {
        await c.send('mg foo T');
        await c.send('\r\nmn\r\n');
        expect((await c.readUntil(endsWith('MN\r\n'))).toString('latin1'), s.kind).toBe('CLIENT_ERROR bad token in command line format\r\nMN\r\n');
      } finally {
        c.close();
      }
      await expectServing(s);
    }
  });
});
