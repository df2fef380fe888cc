/**
 * ASCII authentication (-Y) against the reference memcached (1.6.45) started with the same auth
 * file: the same scripts, replies compared byte for byte.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { ServerStats } from '../../src/metrics/stats';
import { AuthFile, initAuth, parseAuthFile } from '../../src/protocol/auth';
import { createSession } from '../../src/protocol/dispatch';
import { Output } from '../../src/protocol/output';
import { FeedStatus, type ConnectionInfo } from '../../src/protocol/session';
import { defaultSettings } from '../../src/settings';
import { freePort, connectTo } from './binary-memcached';
import { memcachedBin } from '../helpers/servers';

const FILE = 'alice:secret\r\nbob:pa:ss\nnoterm:last\n';
let dir = '';
let file = '';
let mc: ChildProcess | undefined;
let port = 0;

function harness(authFile: string) {
  const settings = { ...defaultSettings(), memoryLimitBytes: 8 * 1024 * 1024, bindProtocol: 'ascii' as const, authFile };
  const engine = new Engine(settings, new ServerStats());
  const out = new Output(1024);
  const conn: ConnectionInfo = { id: 1, transport: 'tcp', peerName: 'x', lastCommandTime: 0, stateName: '' };
  const stats = { engine, startedUnixSeconds: 0, connections: () => [conn], acceptingConnections: () => true };
  const init = initAuth(settings);
  if (!init.ok) throw new Error(init.message);
  const session = createSession(engine, out, conn, { stats: stats as never, shutdown: () => undefined, auth: init.auth }, settings);
  let pending = Buffer.alloc(0);
  let closed = false;
  const run = (chunks: Buffer[]): { reply: string; closed: boolean } => {
    let reply = '';
    for (const c of chunks) {
      if (closed) break;
      pending = Buffer.concat([pending, c]);
      for (let guard = 0; guard < 1000; guard++) {
        const used = session.feed(pending, 0, pending.length);
        pending = pending.subarray(used);
        reply += out.buf.toString('latin1', 0, out.length);
        out.reset();
        if (session.status === FeedStatus.Close) closed = true;
        if (session.status !== FeedStatus.Yield) break;
      }
    }
    return { reply, closed };
  };
  return { engine, run };
}

/** Send, then collect until 300 ms pass without data or the server closes. */
async function viaMemcached(data: Buffer): Promise<{ reply: string; closed: boolean }> {
  const sock = await connectTo(port);
  let reply = '';
  let closed = false;
  await new Promise<void>((resolve) => {
    let idle = setTimeout(done, 300);
    const cap = setTimeout(done, 5000);
    function done(): void {
      clearTimeout(idle);
      clearTimeout(cap);
      sock.destroy();
      resolve();
    }
    sock.on('data', (d) => {
      reply += d.toString('latin1');
      clearTimeout(idle);
      idle = setTimeout(done, 300);
    });
    sock.on('close', () => {
      closed = true;
      done();
    });
    sock.on('error', () => undefined);
    sock.write(data);
  });
  return { reply, closed };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-ascii-auth-'));
  file = path.join(dir, 'auth');
  fs.writeFileSync(file, FILE);
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(file, 0o644);
  port = await freePort();
  mc = spawn(memcachedBin(), ['-u', 'nobody', '-p', String(port), '-U', '0', '-l', '127.0.0.1', '-Y', file], { stdio: 'ignore' });
  (await connectTo(port)).destroy();
});

afterAll(() => {
  if (mc?.pid !== undefined && mc.exitCode === null) process.kill(mc.pid, 'SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

const scripts: Record<string, string> = {
  'commands before authenticating': 'get a\r\nversion\r\nset a 0 0\r\nsets a 0 0 5\r\nSET a 0 0 12\r\n\r\n',
  'good credentials, then the text protocol': 'set x 0 0 12\r\nalice secret\r\nset k 1 0 2\r\nhi\r\nget k\r\nversion\r\n',
  'bad then good': 'set x 0 0 11\r\nalice wrong\r\nget k2\r\nset any 99 99 12 noreply\r\nalice secret\r\nget k2\r\n',
  'replies of one read replace each other until authenticated': 'get a\r\nset x 0 0 3\r\na b\r\nget b\r\n',
  'password with a colon and LF-only lines': 'set x 0 0 9\nbob pa:ss\r\nmn\r\n',
  'unterminated payload': 'set x 0 0 3\r\nalice secret\r\nget a\r\n',
  'one token': 'set x 0 0 5\r\nalice\r\nget a\r\n',
  'extra tokens after the password': 'set x 0 0 19\r\nalice secret extra\r\n\r\nmn\r\n',
  'empty payload': 'set x 0 0 0\r\n\r\nmn\r\n',
  'last entry of the file': 'set x 0 0 11\r\nnoterm last\r\nmn\r\n',
  'auth then quit': 'set x 0 0 12\r\nalice secret\r\nquit\r\nget a\r\n',
  'a long line without newline closes': 'g'.repeat(3000),
  'binary request is just text here': '\x80\x0a\x00\x00\r\nmn\r\n',
  'a token over 16 KiB is refused, the connection stays': 'set x 0 0 16385\r\n',
  'a token of 2^31-2 bytes is refused, the connection stays': 'set x 0 0 2147483646\r\n',
  'a short line closes without sending earlier replies': 'get a\r\nget\r\n',
  'the command only has to begin with set': 'setx x 0 0 12\r\nalice secret\r\nversion\r\n',
  'a length that is not a plain number': 'set x 0 0 +12\r\nalice secret\r\nset x 0 0 12 \r\nalice secret\r\nversion\r\n',
};

describe('-Y ASCII authentication matches memcached 1.6.45', () => {
  for (const [name, script] of Object.entries(scripts)) {
    it(name, async () => {
      const data = Buffer.from(script, 'latin1');
      const theirs = await viaMemcached(data);
      const ours = harness(file).run([data]);
      expect(ours.reply).toBe(theirs.reply);
      expect(ours.closed).toBe(theirs.closed);
    });
  }
});

describe('-Y in-process', () => {
  it('the same replies at every split', () => {
    const data = Buffer.from('set x 0 0 12\r\nalice secret\r\nset k 0 0 1\r\nv\r\nget k\r\n', 'latin1');
    const whole = harness(file).run([data]).reply;
    expect(whole).toBe('STORED\r\nSTORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n');
    for (let i = 1; i < data.length; i++) expect(harness(file).run([data.subarray(0, i), data.subarray(i)]).reply).toBe(whole);
  });

  it('counts auth_cmds and auth_errors', () => {
    const h = harness(file);
    h.run([Buffer.from('set x 0 0 3\r\na b\r\nset x 0 0 12\r\nalice secret\r\n')]);
    expect([h.engine.stats.auth_cmds, h.engine.stats.auth_errors]).toEqual([2, 1]);
  });

  it('parses auth files as memcached: user up to the first colon, at most 8 entries, no blank lines', () => {
    const lines = Array.from({ length: 10 }, (_, i) => `u${i}:p${i}`).join('\n') + '\n';
    expect(parseAuthFile(Buffer.from(lines))!.length).toBe(8);
    expect(parseAuthFile(Buffer.from('a:b\n\nc:d\n'))).toBeNull();
    expect(parseAuthFile(Buffer.from('nocolon\n'))).toBeNull();
    expect(parseAuthFile(Buffer.from('a:b:c\r\n'))![0].pass.toString()).toBe('b:c');
    expect(parseAuthFile(Buffer.from(''))!.length).toBe(0);
  });

  it('a malformed or missing file is a startup error; reload keeps the old table on failure', () => {
    const bad = path.join(dir, 'bad');
    fs.writeFileSync(bad, 'nocolon\n');
    const settings = { ...defaultSettings(), authFile: bad };
    const r = initAuth(settings);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toBe(`Authfile [${bad}] has a malformed entry. Should be 'user:password'`);
    expect(initAuth({ ...settings, authFile: path.join(dir, 'missing') }).ok).toBe(false);
    const f = new AuthFile(file);
    expect(f.load().ok).toBe(true);
    fs.writeFileSync(path.join(dir, 'swap'), 'x\n');
    const g = new AuthFile(path.join(dir, 'swap'));
    expect(g.load().ok).toBe(false);
    expect(f.entryCount).toBe(3);
  });
});
