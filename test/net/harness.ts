/**
 * Test harness for src/net: a fake line protocol (so these tests do not depend on the real
 * protocol), a server starter on loopback, and a bounded byte-collecting client.
 *
 * The fake protocol, one request per LF-terminated line:
 *   big <n> <c>   reply n bytes of the character c, then "\r\n"
 *   seq <n> <k>   reply "<k>:" followed by n bytes that encode k (checkable byte for byte)
 *   quit          FeedStatus.Close
 *   anything else echo the line (without its CR/LF) followed by "\r\n"
 * After settings.requestsPerEvent requests in one feed() it returns FeedStatus.Yield.
 */
import * as net from 'node:net';
import { FeedStatus, type ConnectionInfo, type ProtocolSession, type SessionFactory } from '../../src/protocol/session';
import type { Output } from '../../src/protocol/output';
import { ServerStats } from '../../src/metrics/stats';
import { defaultSettings, type Settings } from '../../src/settings';
import { startNetwork, type NetworkHandle, type NetworkOptions } from '../../src/net/server';

export const LOOPBACK = '127.0.0.1';
const LF = 10;
const CR = 13;

export class LineSession implements ProtocolSession {
  status: FeedStatus = FeedStatus.Ok;
  released = false;
  /** Every complete line seen, for checking that split input arrives intact. */
  readonly lines: string[] = [];

  constructor(
    readonly conn: ConnectionInfo,
    private readonly out: Output,
    private readonly requestsPerEvent: number,
  ) {}

  feed(buf: Buffer, start: number, end: number): number {
    this.status = FeedStatus.Ok;
    let pos = start;
    let requests = 0;
    while (pos < end) {
      if (requests >= this.requestsPerEvent) {
        this.status = FeedStatus.Yield;
        break;
      }
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= end) break;
      const lineEnd = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl;
      const line = buf.toString('latin1', pos, lineEnd);
      pos = nl + 1;
      requests++;
      this.lines.push(line);
      if (this.handle(line)) {
        this.status = FeedStatus.Close;
        break;
      }
    }
    return pos - start;
  }

  release(): void {
    this.released = true;
  }

  /** Returns true for quit. */
  private handle(line: string): boolean {
    const words = line.split(' ');
    if (words[0] === 'quit') return true;
    if (words[0] === 'big') {
      const n = Number(words[1]);
      this.out.ensure(n + 2);
      this.out.buf.fill(words[2] ?? 'x', this.out.length, this.out.length + n, 'latin1');
      this.out.length += n;
      this.out.crlf();
      return false;
    }
    if (words[0] === 'seq') {
      this.out.ascii(seqReply(Number(words[1]), Number(words[2])));
      return false;
    }
    this.out.ascii(line);
    this.out.crlf();
    return false;
  }
}

/** The reply to `seq n k`: distinct per k, so an overwritten buffer shows up. */
export function seqReply(n: number, k: number): string {
  const unit = `${k}.`;
  return `${k}:` + unit.repeat(Math.ceil(n / unit.length)).slice(0, n) + '\r\n';
}

export class LineFactory implements SessionFactory {
  readonly sessions: LineSession[] = [];
  constructor(private readonly settings: Settings) {}
  create(conn: ConnectionInfo, output: Output): ProtocolSession {
    const s = new LineSession(conn, output, this.settings.requestsPerEvent);
    this.sessions.push(s);
    return s;
  }
}

export interface TestServer {
  readonly net: NetworkHandle;
  readonly stats: ServerStats;
  readonly settings: Settings;
  readonly factory: LineFactory;
  readonly logs: string[];
  /** The first TCP port (0 when TCP is off). */
  readonly port: number;
}

/** Settings for a loopback server on an ephemeral TCP port (memcached's -p -1). */
export function testSettings(overrides: Partial<Settings> = {}): Settings {
  return {
    ...defaultSettings(),
    tcpPort: -1,
    udpPort: 0,
    listenAddresses: [LOOPBACK],
    listeners: [{ host: LOOPBACK, port: null, protocol: null, tag: null }],
    ...overrides,
  };
}

export async function startTestServer(overrides: Partial<Settings> = {}, options: NetworkOptions = {}): Promise<TestServer> {
  const settings = testSettings(overrides);
  const stats = new ServerStats();
  const factory = new LineFactory(settings);
  const logs: string[] = [];
  const handle = await startNetwork(settings, stats, factory, (level, msg) => logs.push(`${level} ${msg}`), options);
  const tcp = handle.addresses().tcp;
  return { net: handle, stats, settings, factory, logs, port: tcp.length > 0 ? tcp[0].port : 0 };
}

/** A client that collects every byte it receives; all waits are bounded. */
export class Client {
  readonly socket: net.Socket;
  closed = false;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private readonly ready: Promise<void>;

  constructor(target: number | string) {
    this.socket = typeof target === 'number' ? net.connect(target, LOOPBACK) : net.connect(target);
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.chunkBytes += d.length;
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
    });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
  }

  /** Everything received so far (joined on demand: replies can be tens of megabytes). */
  get received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.alloc(0);
  }

  get receivedBytes(): number {
    return this.chunkBytes;
  }

  connected(): Promise<void> {
    return this.ready;
  }

  text(): string {
    return this.received.toString('latin1');
  }

  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  async waitBytes(count: number, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.chunkBytes >= count, timeoutMs, () => `${this.chunkBytes} of ${count} bytes`);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, () => 'connection still open');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
