/**
 * Spawns memcached-compatible servers for black-box tests and stops them again.
 *
 * Every suite starts its own server processes on free loopback ports and stops them by PID
 * in `afterAll` (SIGTERM, then SIGKILL after a bound). Which implementation is "the target"
 * comes from the environment, so the same suites judge our server and Debian's memcached:
 *
 *   MCTS_TARGET          `ours` (default) or `memcached`
 *   MCTS_OURS_CMD        command line that starts ours (default: `<node> <repo>/bin/memcached-ts.js`)
 *   MCTS_MEMCACHED_BIN   reference memcached binary (default: the 1.6.45 build that
 *                        scripts/install-test-deps.sh makes; see scripts/memcached-reference.js)
 *   MCTS_START_TIMEOUT_MS  bound on waiting for a server to accept connections (default 15000)
 *   MCTS_KEEP_LOGS=1     keep server logs (stdout+stderr, $TMPDIR/mcts-<kind>-<port>-XXXXXX) after a stop
 *
 * Not for: talking the protocol (see client.ts) or running client tools (see tools.ts).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { referenceBin } from '../../scripts/memcached-reference';

export type ServerKind = 'ours' | 'memcached';

export const LOOPBACK = '127.0.0.1';
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

const startTimeoutMsDefault = 15_000;
const stopGraceMs = 3_000;
const killWaitMs = 2_000;
const connectProbeIntervalMs = 50;
const portAttemptsMax = 4;
const logTailBytesMax = 4_000;

/** The implementation under test, from `MCTS_TARGET`. */
export function targetKind(): ServerKind {
  const value = (process.env.MCTS_TARGET ?? 'ours').trim().toLowerCase();
  if (value === '' || value === 'ours' || value === 'memcached-ts') return 'ours';
  if (value === 'memcached') return 'memcached';
  throw new Error(`MCTS_TARGET must be "ours" or "memcached", got ${JSON.stringify(value)}`);
}

/** The reference memcached (1.6.45, built outside the repository by install-test-deps.sh). */
export function memcachedBin(): string {
  return referenceBin();
}

function commandFor(kind: ServerKind): { file: string; args: string[] } {
  if (kind === 'memcached') return { file: memcachedBin(), args: [] };
  const override = process.env.MCTS_OURS_CMD;
  if (override !== undefined && override.trim() !== '') {
    const words = override.trim().split(/\s+/);
    return { file: words[0], args: words.slice(1) };
  }
  return { file: process.execPath, args: [path.join(REPO_ROOT, 'bin', 'memcached-ts.js')] };
}

/** A free TCP port on loopback (bind to 0, read, close; the caller retries on a race). */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: LOOPBACK, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no port from listen(0)'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** True once `host:port` accepts a TCP connection (one attempt, bounded by `timeoutMs`). */
export async function canConnect(port: number, host = LOOPBACK, timeoutMs = 500): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Sends `version` and resolves true if a `VERSION ` line comes back within `timeoutMs`. */
async function answersVersion(port: number, host: string, timeoutMs: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    let received = '';
    const socket = net.connect({ port, host });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => socket.write('version\r\n'));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n')) done(received.startsWith('VERSION '));
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

// Every process started here, so an aborted run still kills them when the worker exits.
const liveProcesses = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveProcesses) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
  });
}

/** Registers a child started elsewhere (proxies, tools) for the exit-time safety net. */
export function trackProcess(child: ChildProcess): void {
  installExitHook();
  liveProcesses.add(child);
  child.once('exit', () => liveProcesses.delete(child));
}

/** Stops a child by PID: SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = stopGraceMs): Promise<void> {
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  if (child.pid === undefined || exited()) return;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const waitExit = async (ms: number): Promise<boolean> => {
    if (exited()) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const result = await Promise.race([exitPromise.then(() => true), timeout]);
    clearTimeout(timer);
    return result || exited();
  };
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitExit(graceMs)) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitExit(killWaitMs);
}

export function readTail(file: string, bytesMax = logTailBytesMax): string {
  try {
    const data = fs.readFileSync(file);
    return data.subarray(Math.max(0, data.length - bytesMax)).toString('utf8');
  } catch {
    return '';
  }
}

export interface ServerOptions {
  /** Which implementation; defaults to `targetKind()`. */
  kind?: ServerKind;
  /** memcached flags other than `-p` and `-l`, which are always added. `-U 0` is added unless given. */
  args?: readonly string[];
  startTimeoutMs?: number;
  /** How readiness is seen: a `version` reply (default), or only an accepted connection (-Y). */
  ready?: 'version' | 'connect';
  /** The server's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export class ServerProcess {
  private stopped = false;

  constructor(
    readonly kind: ServerKind,
    readonly host: string,
    readonly port: number,
    readonly args: readonly string[],
    readonly logPath: string,
    private readonly child: ChildProcess,
  ) {}

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('server has no pid');
    return this.child.pid;
  }

  /** `host:port`, as client tools want it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  isAlive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  exitDescription(): string {
    return `exit code ${String(this.child.exitCode)}, signal ${String(this.child.signalCode)}`;
  }

  /** Resident set size in KiB from /proc/<pid>/status (VmRSS). */
  rssKb(): number {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    if (match === null) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(match[1]);
  }

  logTail(bytesMax = logTailBytesMax): string {
    return readTail(this.logPath, bytesMax);
  }

  describe(): string {
    return `${this.kind} pid ${this.child.pid ?? '?'} on ${this.address} (${this.args.join(' ')})`;
  }

  /**
   * Send `signal` and wait (bounded) for the process to exit: its exit code, or the signal
   * that ended it. The log stays until stop().
   */
  async signalAndWait(signal: NodeJS.Signals, timeoutMs = 15_000): Promise<number | string> {
    const child = this.child;
    const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
    if (!exited()) {
      const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(this.pid, signal);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exit, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
      clearTimeout(timer);
    }
    if (!exited()) {
      await stopProcess(child);
      throw new Error(`${this.describe()} did not exit within ${timeoutMs} ms of ${signal}`);
    }
    return child.exitCode ?? String(child.signalCode);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await stopProcess(this.child);
    if (process.env.MCTS_KEEP_LOGS !== '1') fs.rmSync(path.dirname(this.logPath), { recursive: true, force: true });
  }
}

function withDefaults(args: readonly string[]): string[] {
  const out = [...args];
  if (!out.includes('-U') && !out.some((a) => a.startsWith('--udp-port'))) out.push('-U', '0');
  // memcached refuses to start as root without -u; pass the same flag to every kind so
  // both implementations see identical command lines.
  if (process.getuid?.() === 0 && !out.includes('-u') && !out.some((a) => a.startsWith('--user'))) {
    out.push('-u', 'root');
  }
  return out;
}

async function startOnce(kind: ServerKind, port: number, args: string[], startTimeoutMs: number,
  ready: 'version' | 'connect' = 'version', env: NodeJS.ProcessEnv = process.env): Promise<ServerProcess | 'port-in-use'> {
  const command = commandFor(kind);
  const fullArgs = [...args, '-p', String(port), '-l', LOOPBACK];
  // One directory per server (removed by stop() unless MCTS_KEEP_LOGS=1).
  const logPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), `mcts-${kind}-${port}-`)), 'server.log');
  // Both servers write MEMCACHED_PORT_FILENAME once every listener is up (memcached-ts: once
  // every serving thread listens); not with -s.
  const portFile = args.includes('-s') ? null : path.join(path.dirname(logPath), 'ports');
  const logFd = fs.openSync(logPath, 'w');
  let child: ChildProcess;
  try {
    child = spawn(command.file, [...command.args, ...fullArgs], {
      stdio: ['ignore', logFd, logFd],
      cwd: REPO_ROOT,
      env: portFile === null ? env : { ...env, MEMCACHED_PORT_FILENAME: portFile },
    });
  } finally {
    fs.closeSync(logFd);
  }
  trackProcess(child);
  let spawnError: Error | undefined;
  child.once('error', (error) => {
    spawnError = error;
  });
  const server = new ServerProcess(kind, LOOPBACK, port, fullArgs, logPath, child);
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    if (spawnError !== undefined) {
      throw new Error(`cannot spawn ${command.file}: ${spawnError.message}`);
    }
    if (!server.isAlive()) {
      const log = server.logTail();
      if (/address already in use|EADDRINUSE|failed to listen/i.test(log)) {
        fs.rmSync(path.dirname(logPath), { recursive: true, force: true });
        return 'port-in-use';
      }
      throw new Error(`${server.describe()} exited during startup (${server.exitDescription()}):\n${log}`);
    }
    const up = portFile === null || fs.existsSync(portFile);
    if (up && (await canConnect(port)) && (ready === 'connect' || (await answersVersion(port, LOOPBACK, 1_000)))) return server;
    await sleep(connectProbeIntervalMs);
  }
  const log = server.logTail();
  await server.stop();
  throw new Error(`${server.describe()} did not accept connections within ${startTimeoutMs} ms:\n${log}`);
}

/** Starts a server on a free loopback port and resolves once it answers `version`. */
export async function startServer(options: ServerOptions = {}): Promise<ServerProcess> {
  const kind = options.kind ?? targetKind();
  const args = withDefaults(options.args ?? []);
  const startTimeoutMs = options.startTimeoutMs ?? Number(process.env.MCTS_START_TIMEOUT_MS ?? startTimeoutMsDefault);
  for (let attempt = 1; attempt <= portAttemptsMax; attempt++) {
    const port = await freePort();
    const result = await startOnce(kind, port, args, startTimeoutMs, options.ready, options.env);
    if (result !== 'port-in-use') return result;
  }
  throw new Error(`could not find a free port for ${kind} after ${portAttemptsMax} attempts`);
}

/** Starts the implementation under test (`MCTS_TARGET`). */
export async function startTarget(args: readonly string[] = [], startTimeoutMs?: number): Promise<ServerProcess> {
  return await startServer({ kind: targetKind(), args, startTimeoutMs });
}

/** Starts the reference memcached (1.6.45). */
export async function startReference(args: readonly string[] = [], startTimeoutMs?: number): Promise<ServerProcess> {
  return await startServer({ kind: 'memcached', args, startTimeoutMs });
}

/** Stops every given server (ignoring undefined), even if some stops fail. */
export async function stopAll(...servers: Array<ServerProcess | undefined>): Promise<void> {
  const results = await Promise.allSettled(servers.map(async (s) => await s?.stop()));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
}
