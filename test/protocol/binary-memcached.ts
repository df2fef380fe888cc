/**
 * The reference memcached (1.6.45) for the binary differential tests: start one on a free loopback port,
 * send it request bytes, collect its replies up to a NOOP sentinel or until it closes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { memcachedBin } from '../helpers/servers';
import { OP, noop, parsePackets } from './binary-helpers';

export const SENTINEL = 0x5e171e1;

export interface Memcached {
  proc: ChildProcess;
  port: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

export async function connectTo(port: number): Promise<net.Socket> {
  for (let i = 0; i < 100; i++) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      });
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('memcached did not start');
}

/** The reference memcached on a free loopback port; stop it with stopMemcached. */
export async function startMemcached(args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<Memcached> {
  const port = await freePort();
  const proc = spawn(memcachedBin(), ['-u', 'nobody', '-p', String(port), '-U', '0', '-l', '127.0.0.1', '-m', '64', ...args],
    { stdio: 'ignore', env });
  (await connectTo(port)).destroy();
  return { proc, port };
}

export function stopMemcached(m: Memcached | undefined): void {
  if (m?.proc.pid !== undefined && m.proc.exitCode === null) process.kill(m.proc.pid, 'SIGTERM');
}

/**
 * Send `data` (then a NOOP sentinel unless the script closes the connection); collect the
 * replies up to the sentinel's, or until memcached closes.
 */
export async function viaMemcached(port: number, data: Buffer, closes: boolean, timeoutMs = 5000): Promise<Buffer> {
  const sock = await connectTo(port);
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    const finish = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(() => {
      sock.destroy();
      if (closes) reject(new Error(`memcached did not close; got ${Buffer.concat(chunks).toString('hex')}`));
      else reject(new Error(`timeout; got ${Buffer.concat(chunks).toString('hex')}`));
    }, timeoutMs);
    sock.on('data', (d) => {
      chunks.push(d);
      if (closes) return;
      const all = Buffer.concat(chunks);
      const { packets } = parsePackets(all);
      const last = packets[packets.length - 1];
      if (last !== undefined && last.opcode === OP.NOOP && last.opaque === SENTINEL) {
        chunks.length = 0;
        chunks.push(all.subarray(0, all.length - 24));
        finish();
      }
    });
    sock.on('close', finish);
    sock.on('error', () => undefined);
  });
  sock.write(closes ? data : Buffer.concat([data, noop(SENTINEL)]));
  return await done;
}
