/**
 * -c in the real process: a refused connection gets memcached's error line and its descriptor
 * is closed at once (memcached: write(), close()), even when the client keeps its end open.
 * Descriptors are read from /proc/<pid>/fd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, LOOPBACK, REPO_ROOT, sleep, stopProcess, trackProcess } from '../helpers/servers';

const BIN = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const rootArgs = process.getuid?.() === 0 ? ['-u', 'root'] : [];
const REFUSED = 'ERROR Too many open connections\r\n';
/** Refused clients, opened this many at a time. */
const CLIENTS = 400;
const BATCH = 50;

function descriptors(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Connects, sends `version`, resolves with the open socket once VERSION came back. */
function served(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let text = '';
    const sock = net.connect(port, LOOPBACK, () => sock.write('version\r\n'));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no VERSION; got ${JSON.stringify(text)}`));
    }, 10_000);
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.startsWith('VERSION ') && text.endsWith('\r\n')) {
        clearTimeout(timer);
        resolve(sock);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * A client that never closes its side (allowHalfOpen): resolves with what it read once the
 * server's FIN came. The socket stays open.
 */
function refused(port: number, kept: net.Socket[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const sock = net.connect({ port, host: LOOPBACK, allowHalfOpen: true });
    kept.push(sock);
    const timer = setTimeout(() => reject(new Error(`no FIN; got ${JSON.stringify(text)}`)), 10_000);
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    sock.on('end', () => {
      clearTimeout(timer);
      resolve(text);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('-c: refused connections', () => {
  let child: ChildProcess;
  let port = 0;
  const clients: net.Socket[] = [];

  beforeAll(async () => {
    port = await freePort();
    // The port file appears once every serving thread listens (and has opened what it keeps
    // open), so the descriptor count taken next is the steady one.
    const portFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-limits-')), 'ports');
    child = spawn(process.execPath, [BIN, ...rootArgs, '-p', String(port), '-l', LOOPBACK, '-U', '0', '-c', '2'],
      { stdio: 'ignore', env: { ...process.env, MEMCACHED_PORT_FILENAME: portFile } });
    trackProcess(child);
    const deadline = Date.now() + 15_000;
    while (!fs.existsSync(portFile)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('memcached-ts -c 2 did not start');
      await sleep(50);
    }
    fs.rmSync(path.dirname(portFile), { recursive: true, force: true });
    for (;;) {
      try {
        clients.push(await served(port));
        break;
      } catch (err) {
        if (Date.now() > deadline || child.exitCode !== null) throw err;
        await sleep(50);
      }
    }
    clients.push(await served(port));
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) c.destroy();
    if (child !== undefined) await stopProcess(child);
  });

  it('get memcached\'s error line and hold no descriptor once it is written, though the client keeps its end open', async () => {
    const pid = child.pid as number;
    const before = descriptors(pid);
    for (let done = 0; done < CLIENTS; done += BATCH) {
      const replies = await Promise.all(Array.from({ length: BATCH }, () => refused(port, clients)));
      expect(new Set(replies)).toEqual(new Set([REFUSED]));
    }
    // The server closes before the FIN each client has seen: nothing is left to wait for.
    expect(descriptors(pid)).toBeLessThanOrEqual(before);
    // Still serving the two that fit.
    clients[0].write('version\r\n');
    await new Promise<void>((resolve) => clients[0].once('data', () => resolve()));
  }, 60_000);
});
