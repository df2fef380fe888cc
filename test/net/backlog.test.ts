/**
 * Listen backlog (-b) on every stream listener, read back from the kernel with `ss -l`
 * (Send-Q of a listening socket is its backlog), and a connection storm at the default
 * backlog: thousands of simultaneous connects on loopback, none refused, every one served,
 * and memcached's connection counters afterwards equal to Debian memcached's in the same run.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReference, stopAll, type ServerProcess } from '../helpers/servers';
import { LOOPBACK, makePki, startInProcess, tlsArgs, type Pki } from './tls-fixtures';

const SOMAXCONN = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());

/** Send-Q of the listening socket: its accept queue limit. */
function tcpBacklog(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { timeout: 5000 }).toString().trim();
  const fields = out.split(/\s+/);
  if (fields[0] !== 'LISTEN') throw new Error(`no listening socket on ${port}: ${out}`);
  return Number(fields[2]);
}

function unixBacklog(socketPath: string): number {
  const out = execFileSync('ss', ['-lxH', 'src', socketPath], { timeout: 5000 }).toString().trim();
  const fields = out.split(/\s+/);
  if (fields[1] !== 'LISTEN') throw new Error(`no listening unix socket ${socketPath}: ${out}`);
  return Number(fields[3]);
}

describe('-b reaches the kernel on every listener', () => {
  let pki: Pki;

  beforeAll(() => {
    pki = makePki();
  });

  afterAll(() => {
    pki?.remove();
  });

  it('TLS and notls: TCP listeners', async () => {
    const server = await startInProcess(tlsArgs(pki, [], ['-b', '77']));
    try {
      expect(tcpBacklog(server.tlsPort)).toBe(77);
      expect(tcpBacklog(server.plainPort)).toBe(77);
    } finally {
      await server.stop();
    }
  });

  it('the unix socket', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-backlog-'));
    const socketPath = path.join(dir, 'mc.sock');
    const server = await startInProcess(['-s', socketPath, '-b', '33']);
    try {
      expect(unixBacklog(socketPath)).toBe(33);
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`is capped by net.core.somaxconn (${SOMAXCONN} here), as for memcached`, async () => {
    const server = await startInProcess(['-l', `${LOOPBACK}:0`, '-U', '0', '-b', String(SOMAXCONN + 1000)]);
    try {
      expect(tcpBacklog(server.plainPort)).toBe(SOMAXCONN);
    } finally {
      await server.stop();
    }
  });

  it('-b 0 asks for 1 (Node would turn 0 into 511)', async () => {
    const server = await startInProcess(['-l', `${LOOPBACK}:0`, '-U', '0', '-b', '0']);
    try {
      expect(tcpBacklog(server.plainPort)).toBe(1);
    } finally {
      await server.stop();
    }
  });

  it('the default, 1024, is what memcached sets too', async () => {
    const ours = await startInProcess(['-l', `${LOOPBACK}:0`, '-U', '0']);
    let reference: ServerProcess | undefined;
    try {
      reference = await startReference([]);
      expect(tcpBacklog(ours.plainPort)).toBe(Math.min(1024, SOMAXCONN));
      expect(tcpBacklog(reference.port)).toBe(Math.min(1024, SOMAXCONN));
    } finally {
      await ours.stop();
      await stopAll(reference);
    }
  });
});

const STORM_CONNECTIONS = 3000;
const STORM_TIMEOUT_MS = 15_000;

interface StormResult {
  served: number;
  failures: string[];
  sockets: net.Socket[];
}

/** Open `count` connections at once; each asks `version` and must get VERSION back. */
function storm(port: number, count: number): Promise<StormResult> {
  return new Promise((resolve) => {
    const sockets: net.Socket[] = [];
    const failures: string[] = [];
    let served = 0;
    let settled = 0;
    const timer = setTimeout(() => finish(), STORM_TIMEOUT_MS);
    const finish = (): void => {
      clearTimeout(timer);
      resolve({ served, failures, sockets });
    };
    const done = (): void => {
      if (++settled === count) finish();
    };
    for (let i = 0; i < count; i++) {
      const sock = net.connect({ port, host: LOOPBACK });
      sockets.push(sock);
      let text = '';
      let over = false;
      sock.on('connect', () => sock.write('version\r\n'));
      sock.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (!over && text.endsWith('\r\n')) {
          over = true;
          if (text.startsWith('VERSION ')) served++;
          else failures.push(text.trim());
          done();
        }
      });
      sock.on('error', (err: NodeJS.ErrnoException) => {
        if (over) return;
        over = true;
        failures.push(err.code ?? err.message);
        done();
      });
    }
  });
}

async function connectionCounters(port: number): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const sock = net.connect(port, LOOPBACK, () => sock.write('stats\r\n'));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.endsWith('END\r\n')) {
        sock.destroy();
        resolve(buf);
      }
    });
    sock.on('error', reject);
  });
  const out: Record<string, number> = {};
  for (const name of ['curr_connections', 'total_connections', 'rejected_connections', 'max_connections']) {
    const m = new RegExp(`^STAT ${name} (\\d+)\\r$`, 'm').exec(text);
    out[name] = m === null ? -1 : Number(m[1]);
  }
  return out;
}

/**
 * The storm, then the counters: curr_connections counts the listener, the storm and the
 * connection asking, minus that one (memcached's rule); total_connections grows by the storm
 * and the asking connection (measured as a difference: start-up probes count too).
 */
async function stormCounters(port: number): Promise<Record<string, number>> {
  const before = await connectionCounters(port);
  const r = await storm(port, STORM_CONNECTIONS);
  try {
    expect(r.failures.slice(0, 5)).toEqual([]);
    expect(r.served).toBe(STORM_CONNECTIONS);
    const after = await connectionCounters(port);
    return {
      curr_connections: after.curr_connections,
      total_connections_added: after.total_connections - before.total_connections,
      rejected_connections: after.rejected_connections,
    };
  } finally {
    for (const s of r.sockets) s.destroy();
  }
}

describe(`a storm of ${STORM_CONNECTIONS} simultaneous connects at the default backlog`, () => {
  const limit = ['-c', String(STORM_CONNECTIONS + 100)];
  const expected = { curr_connections: STORM_CONNECTIONS + 1, total_connections_added: STORM_CONNECTIONS + 1, rejected_connections: 0 };
  const counters: Record<string, Record<string, number>> = {};

  it('memcached-ts serves every one', async () => {
    const server = await startInProcess([...limit, '-l', `${LOOPBACK}:0`, '-U', '0']);
    try {
      counters.ours = await stormCounters(server.plainPort);
    } finally {
      await server.stop();
    }
    expect(counters.ours).toMatchObject(expected);
  }, 30_000);

  it('Debian memcached, the same storm, the same counters', async () => {
    let reference: ServerProcess | undefined;
    try {
      reference = await startReference(limit);
      counters.memcached = await stormCounters(reference.port);
    } finally {
      await stopAll(reference);
    }
    expect(counters.memcached).toMatchObject(expected);
    if (counters.ours !== undefined) expect(counters.ours).toEqual(counters.memcached);
  }, 30_000);
});
