/**
 * In-process servers with extstore for the tests in this folder: a real Engine, the real
 * network layer and text sessions on a loopback port, files in a fresh temporary directory,
 * small pages (1 MiB) and a small -m so values reach the disk after a few MiB of sets.
 * The engine is exposed so tests can see which items are headers and inject IO faults.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine } from '../../src/engine/engine';
import type { StatsContext } from '../../src/engine/stats';
import { generalStats } from '../../src/engine/stats';
import { ServerStats } from '../../src/metrics/stats';
import { startNetwork, type NetworkHandle } from '../../src/net/server';
import type { Output } from '../../src/protocol/output';
import type { ConnectionInfo, ProtocolSession, SessionFactory } from '../../src/protocol/session';
import type { AdminHooks } from '../../src/protocol/text/admin';
import { createSession } from '../../src/protocol/dispatch';
import { defaultSettings, MIB, type Settings } from '../../src/settings';
import { startServer, type ServerProcess } from '../helpers/servers';

export const LOOPBACK = '127.0.0.1';

export interface ExtServer {
  engine: Engine;
  net: NetworkHandle;
  port: number;
  dir: string;
  paths: string[];
  logs: string[];
  settings: Settings;
  stop(): Promise<void>;
}

export interface ExtServerOptions {
  memoryMb?: number;
  pageMb?: number;
  wbufMb?: number;
  fileMb?: number;
  files?: number;
  /** Directory for the files (default: a fresh one under the OS temp dir). */
  dir?: string;
  settings?: Partial<Settings>;
}

export function tempDir(prefix = 'mcts-ext-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startExtServer(o: ExtServerOptions = {}): Promise<ExtServer> {
  const dir = o.dir ?? tempDir();
  const files = o.files ?? 1;
  const paths = Array.from({ length: files }, (_, i) => path.join(dir, `extstore.${i}`));
  const settings: Settings = {
    ...defaultSettings(),
    tcpPort: -1,
    udpPort: 0,
    listenAddresses: [LOOPBACK],
    listeners: [{ host: LOOPBACK, port: null, protocol: null, tag: null }],
    memoryLimitBytes: (o.memoryMb ?? 8) * MIB,
    extPaths: paths.map((p) => ({ path: p, sizeBytes: (o.fileMb ?? 64) * MIB, bucket: 0 })),
    extPageBytes: (o.pageMb ?? 1) * MIB,
    extWbufBytes: (o.wbufMb ?? 1) * MIB,
    ...o.settings,
  };
  const stats = new ServerStats();
  const engine = new Engine(settings, stats);
  const logs: string[] = [];
  engine.log = (level, message) => void logs.push(`${level} ${message}`);
  let network: NetworkHandle | null = null;
  const statsContext: StatsContext = {
    engine,
    startedUnixSeconds: engine.clock.processStartedUnix,
    connections: () => network?.connections() ?? [],
    acceptingConnections: () => true,
  };
  const hooks: AdminHooks = { stats: statsContext, shutdown: () => {} };
  const factory: SessionFactory = {
    create(conn: ConnectionInfo, output: Output): ProtocolSession {
      return createSession(engine, output, conn, hooks, settings);
    },
  };
  engine.start();
  network = await startNetwork(settings, stats, factory, () => {}, { clockSeconds: () => engine.clock.now });
  const handle = network;
  const port = handle.addresses().tcp[0].port;
  return {
    engine, net: handle, port, dir, paths, logs, settings,
    async stop() {
      await handle.close();
      engine.stop();
      if (o.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `stats` of an in-process engine as a name → number map (no socket needed). */
export function statsOf(engine: Engine): Record<string, number> {
  const out: Record<string, number> = {};
  generalStats({ engine, startedUnixSeconds: 0, connections: () => [], acceptingConnections: () => true },
    (k, v) => void (out[k] = Number(v)));
  return out;
}

/** Wait (bounded) until `cond` holds. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The value stored for key number i: distinct per key and position, so mix-ups show. */
export function valueOf(i: number, bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let j = 0; j < bytes; j++) b[j] = (i * 131 + j * 7 + (j >>> 8)) & 0xff;
  return b;
}

export function setCommand(key: string, flags: number, value: Buffer, noreply = false): Buffer {
  return Buffer.concat([
    Buffer.from(`set ${key} ${flags} 0 ${value.length}${noreply ? ' noreply' : ''}\r\n`, 'latin1'),
    value,
    Buffer.from('\r\n', 'latin1'),
  ]);
}

/** A client that collects every byte; reads wait (bounded) for a terminator count. */
export class Client {
  readonly socket: net.Socket;
  /** Received and not yet taken, chunk by chunk (joined once, when taken: replies run to MBs). */
  private chunks: Buffer[] = [];
  private readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect(port, LOOPBACK);
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
    });
    this.socket.on('error', () => {});
    this.ready = new Promise((resolve) => this.socket.once('connect', () => resolve()));
  }

  async send(bytes: Buffer | string): Promise<void> {
    await this.ready;
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Wait until the received bytes contain `count` copies of `marker`; returns and clears them. */
  async until(marker: string, count = 1, timeoutMs = 10_000): Promise<Buffer> {
    const m = Buffer.from(marker, 'latin1');
    // Each chunk is scanned once, with the end of the one before (a marker may straddle them).
    let found = 0;
    let scanned = 0;
    let carry = Buffer.alloc(0);
    const enough = (): boolean => {
      for (; scanned < this.chunks.length; scanned++) {
        const piece = carry.length === 0 ? this.chunks[scanned] : Buffer.concat([carry, this.chunks[scanned]]);
        found += countOf(piece, m);
        carry = piece.subarray(Math.max(0, piece.length - (m.length - 1)));
      }
      return found >= count;
    };
    await waitFor(enough, `${count} x ${JSON.stringify(marker)}`, timeoutMs);
    return this.take();
  }

  /** Everything received so far (cleared). */
  take(): Buffer {
    const out = Buffer.concat(this.chunks);
    this.chunks = [];
    return out;
  }

  /** Send, then wait for `count` markers. */
  async request(bytes: Buffer | string, marker: string, count = 1): Promise<Buffer> {
    await this.send(bytes);
    return await this.until(marker, count);
  }

  close(): void {
    this.socket.destroy();
  }
}

function countOf(b: Buffer, m: Buffer): number {
  let n = 0;
  let p = 0;
  while ((p = b.indexOf(m, p)) >= 0) {
    n++;
    p += m.length;
  }
  return n;
}

/** Store `count` values of `bytes` each as k<i> (flags i), pipelined with noreply, and wait. */
export async function fill(c: Client, count: number, bytes: number, prefix = 'k'): Promise<void> {
  const chunk: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    chunk.push(setCommand(`${prefix}${i}`, i, valueOf(i, bytes), true));
    if (chunk.length === 256) {
      await c.send(Buffer.concat(chunk));
      chunk.length = 0;
    }
  }
  chunk.push(Buffer.from('mn\r\n'));
  await c.send(Buffer.concat(chunk));
  await c.until('MN\r\n');
}

/** The reply memcached gives to `get <key>` for a value: VALUE line, data, CRLF. */
export function valueReply(key: string, flags: number, value: Buffer, cas?: number): Buffer {
  return Buffer.concat([
    Buffer.from(`VALUE ${key} ${flags} ${value.length}${cas === undefined ? '' : ` ${cas}`}\r\n`, 'latin1'),
    value,
    Buffer.from('\r\n', 'latin1'),
  ]);
}

/** Is key `key` in the cache as a header item (value on disk)? */
export function onDisk(engine: Engine, key: string): boolean {
  const k = Buffer.from(key, 'latin1');
  const ref = engine.peek(k, 0, k.length);
  return ref !== 0 && engine.items.isHdr(ref);
}

/** Is key `key` in the cache with its value in memory? */
export function inMemory(engine: Engine, key: string): boolean {
  const k = Buffer.from(key, 'latin1');
  const ref = engine.peek(k, 0, k.length);
  return ref !== 0 && !engine.items.isHdr(ref);
}

/** Wait until every write buffer with data is on disk (flushing partly filled ones). */
export async function flushToDisk(engine: Engine): Promise<void> {
  const ext = engine.storage!.ext;
  ext.flushAll();
  await waitFor(() => ext.ioQueue === 0, 'write buffers on disk');
}

/** Where header item `key`'s record lives: file path and byte position, record length. */
export function recordLocation(engine: Engine, key: string): { path: string; position: number; len: number } {
  const items = engine.items;
  const k = Buffer.from(key, 'latin1');
  const ref = engine.peek(k, 0, k.length);
  if (ref === 0 || !items.isHdr(ref)) throw new Error(`${key} is not on disk`);
  const page = engine.storage!.ext.pages[items.diskPage(ref)];
  return { path: page.file.path, position: page.offset + items.diskOffset(ref), len: items.diskLength(ref) };
}

/** This server and memcached 1.6.45 as processes, each with a temporary directory of its own. */
export interface ServerPair {
  readonly ours: ServerProcess;
  readonly theirs: ServerProcess;
  /** Stop both (by PID) and remove their directories. */
  stop(): Promise<void>;
}

/** Start both with the arguments `argsFor(dir)` gives for each one's directory. */
export async function startPair(argsFor: (dir: string) => string[]): Promise<ServerPair> {
  const dirs = [tempDir(), tempDir()];
  const started = await Promise.allSettled([
    startServer({ kind: 'ours', args: argsFor(dirs[0]) }),
    startServer({ kind: 'memcached', args: argsFor(dirs[1]) }),
  ]);
  const stop = async (): Promise<void> => {
    await Promise.all(started.map(async (r) => (r.status === 'fulfilled' ? await r.value.stop() : undefined)));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    await stop();
    throw failed.reason;
  }
  const [ours, theirs] = started.map((r) => (r as PromiseFulfilledResult<ServerProcess>).value);
  return { ours, theirs, stop };
}
