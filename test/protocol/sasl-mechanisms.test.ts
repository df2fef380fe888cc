/**
 * SASL PLAIN and CRAM-MD5 end to end over the binary protocol, against a started server
 * (and the reference memcached 1.6.45 with Cyrus SASL, when built, given the same
 * configuration, sasldb and MEMCACHED_SASL_PWDB): Cyrus' memcached.conf from
 * SASL_CONF_PATH, users made with saslpasswd2, realms, the CRAM-MD5 challenge and answer,
 * and the auth counters. Needs saslpasswd2 (sasl2-bin); skipped without it.
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/client';
import { REPO_ROOT, memcachedBin, startServer, stopAll, type ServerProcess } from '../helpers/servers';
import { SaslServer } from '../../src/protocol/auth';
import { OP, get, parsePackets, req, type Packet } from './binary-helpers';

const SASLPASSWD2 = ['/usr/sbin/saslpasswd2', '/usr/bin/saslpasswd2'].find((p) => fs.existsSync(p)) ?? null;
const WHY_SKIPPED = 'saslpasswd2 is not installed (Debian: sasl2-bin; scripts/install-test-deps.sh installs it)';
if (SASLPASSWD2 === null) process.stderr.write(`sasl-mechanisms.test.ts: skipping: ${WHY_SKIPPED}\n`);
const haveReference = fs.existsSync(memcachedBin());
const HOST = os.hostname();
const REALM = 'memcached.realm';

const hmac = (pass: string, challenge: Buffer): string => crypto.createHmac('md5', pass).update(challenge).digest('hex');
const plain = (authzid: string, user: string, pass: string, op: number = OP.SASL_AUTH): Buffer =>
  req({ op, key: 'PLAIN', value: `${authzid}\0${user}\0${pass}` });
const cramStart = (mech = 'CRAM-MD5', data = ''): Buffer => req({ op: OP.SASL_AUTH, key: mech, value: data });
/** A SASL_STEP answering the challenge of the previous reply. */
const cramAnswer = (answer: (challenge: Buffer) => string) =>
  (prev: Packet | undefined): Buffer => req({ op: OP.SASL_STEP, key: 'CRAM-MD5', value: answer(prev?.value ?? Buffer.alloc(0)) });

/** Where a scenario goes on over a new connection. */
const RECONNECT = 'reconnect';
type Step = Buffer | ((prev: Packet | undefined) => Buffer) | typeof RECONNECT;

/** Each step is sent once the previous reply is in; RECONNECT starts a new connection. */
async function converse(port: number, steps: Step[]): Promise<Packet[]> {
  let c = await RawClient.connect(port);
  const replies: Packet[] = [];
  try {
    for (const step of steps) {
      if (step === RECONNECT) {
        c.close();
        c = await RawClient.connect(port);
        continue;
      }
      await c.send(typeof step === 'function' ? step(replies[replies.length - 1]) : step);
      const data = await c.readUntil((b) => parsePackets(b).packets.length > 0 && parsePackets(b).rest.length === 0);
      replies.push(...parsePackets(data).packets);
    }
  } finally {
    c.close();
  }
  return replies;
}

async function stats(port: number): Promise<Record<string, string>> {
  const c = await RawClient.connect(port);
  try {
    // -S: stats need an authenticated connection (this auth counts too)
    await c.request(plain('', 'bob', 'bobpw'), (b) => parsePackets(b).packets.length === 1);
    const data = await c.request(req({ op: OP.STAT }), (b) => parsePackets(b).packets.some((p) => p.key.length === 0));
    return Object.fromEntries(parsePackets(data).packets.map((p) => [p.key.toString(), p.value.toString()]));
  } finally {
    c.close();
  }
}

interface Scenario {
  steps: Step[];
  statuses: number[];
}

const upperHost = HOST.toUpperCase() !== HOST;
const scenarios: Record<string, Scenario> = {
  'PLAIN user@realm': { steps: [plain('', `testuser@${REALM}`, 'testpass'), get('k')], statuses: [0, 1] },
  'PLAIN without a realm: the host name is the realm': { steps: [plain('', 'testuser', 'testpass')], statuses: [0x20] },
  'PLAIN user of the host realm, with and without it': {
    steps: [plain('', 'bob', 'bobpw'), RECONNECT, plain('', `bob@${HOST}`, 'bobpw'), RECONNECT, plain('', `bob@${HOST}`, 'bobpw!')],
    statuses: [0, 0, 0x20],
  },
  'PLAIN trims white space around the name only': {
    steps: [plain('', ' \tbob ', 'bobpw'), RECONNECT, plain('', `bob@${HOST} `, 'bobpw'), RECONNECT, plain('', `bob @${HOST}`, 'bobpw'),
      plain('', 'bob', ' bobpw'), plain('', '   ', 'bobpw'), plain('', 'bob', '')],
    statuses: [0, 0, 0x20, 0x20, 0x20, 0x20],
  },
  'PLAIN: a realm is compared exactly': { steps: upperHost ? [plain('', `bob@${HOST.toUpperCase()}`, 'bobpw')] : [], statuses: upperHost ? [0x20] : [] },
  'PLAIN splits at the first @': {
    steps: [plain('', 'x@y@z', 'xpw'), RECONNECT, plain('', 'a@b@c', 'abpw'), plain('', 'a@b', 'abpw')], statuses: [0, 0x20, 0],
  },
  'PLAIN authzid must canonicalise to the authcid': {
    steps: [plain('bob', `bob@${HOST}`, 'bobpw'), RECONNECT, plain(` bob@${HOST}`, 'bob', 'bobpw'), RECONNECT, plain('bob@other', 'bob', 'bobpw'),
      plain('testuser', `testuser@${REALM}`, 'testpass')],
    statuses: [0, 0, 0x20, 0x20],
  },
  'PLAIN users of MEMCACHED_SASL_PWDB and the sasldb together': {
    steps: [plain('', 'pwuser', 'pwpass'), RECONNECT, plain('', 'bob', 'bobpw'), RECONNECT, plain('', 'bob', 'pwdb-bob')], statuses: [0, 0, 0],
  },
  'PLAIN empty start, then steps until one succeeds': {
    steps: [req({ op: OP.SASL_AUTH, key: 'PLAIN' }), plain('', 'bob', 'x', OP.SASL_STEP), req({ op: OP.SASL_STEP, key: 'PLAIN' }),
      plain('', 'bob', 'bobpw', OP.SASL_STEP), plain('', 'bob', 'bobpw', OP.SASL_STEP)],
    statuses: [0x21, 0x20, 0x20, 0, 0x20],
  },
  'CRAM-MD5: challenge, answer, then commands work': {
    steps: [cramStart(), cramAnswer((c) => `testuser@${REALM} ${hmac('testpass', c)}`), get('k')], statuses: [0x21, 0, 1],
  },
  'CRAM-MD5 lower-case mechanism name, host realm': {
    steps: [cramStart('cram-md5'), cramAnswer((c) => `bob ${hmac('bobpw', c)}`)], statuses: [0x21, 0],
  },
  'CRAM-MD5 wrong password, then even the right one fails': {
    steps: [cramStart(), cramAnswer((c) => `bob ${hmac('bobpwx', c)}`), cramAnswer((c) => `bob ${hmac('bobpw', c)}`)], statuses: [0x21, 0x20, 0x20],
  },
  'CRAM-MD5 answer forms': {
    steps: [
      cramStart(), cramAnswer((c) => `  bob  ${hmac('bobpw', c)}`),
      RECONNECT, cramStart(), cramAnswer((c) => `bob ${hmac('bobpw', c)}x`),
      RECONNECT, cramStart(), cramAnswer((c) => `bob ${hmac('bobpw', c)}\0`),
      RECONNECT, cramStart(), cramAnswer((c) => `bob ${hmac('bobpw', c).toUpperCase()}`),
      RECONNECT, cramStart(), cramAnswer((c) => `bob${hmac('bobpw', c)}`),
      RECONNECT, cramStart(), cramAnswer((c) => `bob ${hmac('bobpw', c).slice(0, 31)}`),
      RECONNECT, cramStart(), cramAnswer((c) => `bob ${hmac('bobpw', c)} `),
      RECONNECT, cramStart(), cramAnswer((c) => ` ${hmac('bobpw', c)}`),
      RECONNECT, cramStart(), cramAnswer(() => ''),
      RECONNECT, cramStart(), cramAnswer((c) => `bob ${hmac('bobpw', Buffer.concat([c, Buffer.from('x')]))}`),
      RECONNECT, cramStart(), cramAnswer((c) => `x@y@z ${hmac('xpw', c)}`),
    ],
    statuses: [0x21, 0, 0x21, 0, 0x21, 0, 0x21, 0x20, 0x21, 0x20, 0x21, 0x20, 0x21, 0x20, 0x21, 0x20, 0x21, 0x20, 0x21, 0x20, 0x21, 0],
  },
  'CRAM-MD5 needs a sasldb user: MEMCACHED_SASL_PWDB does not serve it': {
    steps: [cramStart(), cramAnswer((c) => `pwuser ${hmac('pwpass', c)}`)], statuses: [0x21, 0x20],
  },
  'CRAM-MD5 with data in SASL_AUTH fails, and so does the step after it': {
    steps: [cramStart('CRAM-MD5', 'hello'), cramAnswer((c) => `bob ${hmac('bobpw', c)}`)], statuses: [0x20, 0x20],
  },
  'a new SASL_AUTH replaces a CRAM-MD5 exchange; a step after success fails': {
    steps: [cramStart(), plain('', 'bob', 'bobpw'), plain('', 'bob', 'bobpw', OP.SASL_STEP)], statuses: [0x21, 0, 0x20],
  },
  'after a success, the next mechanism run on the connection fails (Cyrus reusing its sasl_conn)': {
    steps: [
      plain('', 'bob', 'bobpw'), plain('', 'bob', 'bobpw'), plain('', 'bob', 'bobpw'), plain('', 'bob', 'bobpw'), RECONNECT,
      plain('', 'bob', 'bobpw'), plain('', 'bob', 'bobpw', OP.SASL_STEP), req({ op: OP.SASL_LIST }), plain('', 'bob', 'bobpw'),
      plain('', 'bob', 'bobpw'), RECONNECT,
      plain('', 'bob', 'bobpw'), cramStart(), cramStart(), RECONNECT,
      plain('', 'bob', 'bobpw'), cramStart('FOO'), plain('', 'bob', 'bobpw'), RECONNECT,
      plain('', 'bob', 'bobpw'), cramStart('X'.repeat(40)), plain('', 'bob', 'bobpw'), RECONNECT,
      req({ op: OP.SASL_AUTH, key: 'PLAIN' }), plain('', 'bob', 'bobpw', OP.SASL_STEP), req({ op: OP.SASL_AUTH, key: 'PLAIN' }),
      plain('', 'bob', 'bobpw', OP.SASL_STEP), plain('', 'bob', 'bobpw', OP.SASL_STEP), RECONNECT,
      plain('', 'bob', 'bobpw'), cramStart('CRAM-MD5', 'x'), plain('', 'bob', 'bobpw'),
    ],
    statuses: [0, 0x20, 0, 0x20, 0, 0x20, 0, 0x20, 0, 0, 0x20, 0x21, 0, 0x20, 0, 0, 0x04, 0x20, 0x21, 0, 0x21, 0x20, 0x20,
      0, 0x20, 0],
  },
  'step without auth, a 40-byte mechanism, an unknown mechanism': {
    steps: [plain('', 'bob', 'bobpw', OP.SASL_STEP), cramStart('X'.repeat(40)), cramStart('DIGEST-MD5'), cramStart('PLAIN ')],
    statuses: [0x20, 0x04, 0x20, 0x20],
  },
};

describe.skipIf(SASLPASSWD2 === null)(`SASL over the binary protocol with a Cyrus sasldb${SASLPASSWD2 === null ? ` (skipped: ${WHY_SKIPPED})` : ''}`, () => {
  let dir = '';
  let env: NodeJS.ProcessEnv = {};
  let ours: ServerProcess | undefined;
  let reference: ServerProcess | undefined;
  const tally = { cmds: 0, errors: 0 };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-sasl-mech-'));
    const conf = path.join(dir, 'conf');
    fs.mkdirSync(conf);
    const db = path.join(dir, 'sasldb');
    fs.writeFileSync(path.join(conf, 'memcached.conf'), `# as memcached's t/sasl\nmech_list: plain cram-md5\nlog_level: 5\nsasldb_path: ${db}\n`);
    const add = (user: string, pass: string, realm?: string): void => {
      execFileSync(SASLPASSWD2!, ['-a', 'memcached', ...(realm === undefined ? [] : ['-u', realm]), '-c', '-p', '-f', db, user],
        { input: pass, stdio: ['pipe', 'ignore', 'pipe'] });
    };
    add('testuser', 'testpass', REALM);
    add('bob', 'bobpw');
    add('x', 'xpw', 'y@z');
    add('a@b', 'abpw', 'c'); // saslpasswd2 itself takes this as user a in realm b
    const pwdb = path.join(dir, 'pwdb');
    fs.writeFileSync(pwdb, `pwuser@${HOST}:pwpass\nbob@${HOST}:pwdb-bob\n`);
    for (const p of [dir, conf]) fs.chmodSync(p, 0o755);
    for (const p of [db, pwdb]) fs.chmodSync(p, 0o644);
    env = { ...process.env, SASL_CONF_PATH: conf, MEMCACHED_SASL_PWDB: pwdb };
    const args = ['-S', '-B', 'binary'];
    [ours, reference] = await Promise.all([
      startServer({ kind: 'ours', args, ready: 'connect', env }),
      haveReference ? startServer({ kind: 'memcached', args, ready: 'connect', env }) : Promise.resolve(undefined),
    ]);
  }, 30_000);

  afterAll(async () => {
    await stopAll(ours, reference);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 20_000);

  it('lists the mechanisms of mech_list, in its order', async () => {
    for (const s of [ours!, ...(reference ? [reference] : [])]) {
      const [r] = await converse(s.port, [req({ op: OP.SASL_LIST })]);
      expect([s.kind, r.status, r.value.toString()]).toEqual([s.kind, 0, 'PLAIN CRAM-MD5']);
    }
  });

  for (const [name, sc] of Object.entries(scenarios)) {
    it(name, async () => {
      const mine = await converse(ours!.port, sc.steps);
      expect(mine.map((p) => p.status)).toEqual(sc.statuses);
      for (const p of mine) {
        if (p.opcode !== OP.SASL_AUTH && p.opcode !== OP.SASL_STEP) continue;
        if (p.status === 0 || p.status === 0x20) tally.cmds++;
        if (p.status === 0x20) tally.errors++;
      }
      for (const p of mine) {
        if (p.opcode !== OP.SASL_AUTH && p.opcode !== OP.SASL_STEP) continue;
        if (p.status === 0) expect(p.value.toString()).toBe('Authenticated');
        if (p.status === 0x20) expect(p.value.toString()).toBe('Auth failure.');
        if (p.status === 0x21 && p.opcode === OP.SASL_AUTH && p.key.length === 0 && p.value.length > 0) {
          expect(p.value.toString()).toMatch(new RegExp(`^<\\d+\\.\\d+@${HOST.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}>$`));
        }
      }
      if (reference !== undefined) {
        const theirs = await converse(reference.port, sc.steps);
        expect(theirs.map((p) => p.status)).toEqual(sc.statuses);
      }
    });
  }

  it('a CRAM-MD5 challenge is new each time', async () => {
    const [a] = await converse(ours!.port, [cramStart()]);
    const [b] = await converse(ours!.port, [cramStart()]);
    expect(a.value.toString()).not.toBe(b.value.toString());
  });

  it('counts auth_cmds and auth_errors as memcached (every finished SASL_AUTH/SASL_STEP)', async () => {
    const mine = await stats(ours!.port);
    // every SASL_AUTH/SASL_STEP reply of the scenarios but 0x21 (continue) and 0x04 (a
    // mechanism name too long to try), plus the stats connection's own auth
    expect([Number(mine.auth_cmds), Number(mine.auth_errors)]).toEqual([tally.cmds + 1, tally.errors]);
    if (reference !== undefined) {
      const theirs = await stats(reference.port);
      expect([theirs.auth_cmds, theirs.auth_errors]).toEqual([mine.auth_cmds, mine.auth_errors]);
    }
  });
});

describe('SASL startup and offers', () => {
  it('an invalid memcached.conf stops the server with status 1, as Cyrus stops memcached', async () => {
    const conf = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-sasl-bad-'));
    try {
      fs.writeFileSync(path.join(conf, 'memcached.conf'), 'mech_list plain\n');
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'memcached-ts.js'), '-S', '-B', 'binary', '-p', '0', '-U', '0',
          '-l', '127.0.0.1', ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])],
        { env: { ...process.env, SASL_CONF_PATH: conf }, stdio: 'ignore' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      expect(code).toBe(1);
    } finally {
      fs.rmSync(conf, { recursive: true, force: true });
    }
  }, 20_000);

  it('mech_list without an implemented mechanism: listing and every SASL_AUTH fail', () => {
    const s = new SaslServer({ mechanisms: [], sasldbPath: null });
    expect(s.mechanismList).toBeNull();
    expect(s.mechanism(Buffer.from('PLAIN'), 0, 5)).toBeNull();
    const both = new SaslServer({ mechanisms: ['PLAIN', 'PLAIN', 'CRAM-MD5'], sasldbPath: null });
    expect(both.mechanismList?.toString()).toBe('PLAIN PLAIN CRAM-MD5'); // Cyrus lists mech_list as written
  });
});
