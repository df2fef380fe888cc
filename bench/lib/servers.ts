/**
 * The two servers a bench run compares: this project's (`ours`, bin/memcached-ts.js) and
 * Debian's memcached, started the same way (loopback only, same -m and -t, same CPU pinning)
 * on a free port, probed with `version` until ready, measured through /proc, stopped by PID.
 *
 * Not for: generating load or judging results.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { LOOPBACK, version } from './client';
import { hasExited, spawnLogged, stopProcess, tail } from './procs';

export type Role = 'ours' | 'memcached';

/** How to start one slot's server: an executable and the arguments before memcached's flags. */
export interface ServerCommand {
  role: Role;
  /** Name in reports: "memcached-ts", "memcached", or "memcached (in ours' slot)". */
  label: string;
  file: string;
  args: string[];
}

export interface ServerConfig {
  memoryMiB: number;
  threads: number;
  /**
   * TLS for the load: both servers get -Z with this certificate and key on the port the load
   * generator uses, and a plain (notls:) listener on `port` for the harness's own probes,
   * fills and stats. Null: no TLS.
   */
  tls: { certPath: string; keyPath: string } | null;
  /** taskset CPU list for the server, or null to run unpinned. */
  cpus: string | null;
  tasksetPath: string | null;
  startTimeoutMs: number;
}

export interface RunningServer {
  command: ServerCommand;
  pid: number;
  port: number;
  version: string;
  /** The TLS port the load generator uses (ServerConfig.tls), else null. */
  tlsPort: number | null;
  /** CPUs the server process may run on, as the kernel reports them. */
  cpusAllowed: string | null;
  child: ChildProcess;
  logFile: string;
}

const portAttemptsMax = 4;
const probeIntervalMs = 50;

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

/** memcached's own flags, identical for both servers (`tlsPort`: with config.tls). */
export function memcachedFlags(port: number, config: ServerConfig, tlsPort: number | null = null): string[] {
  const flags = config.tls === null || tlsPort === null
    ? ['-p', String(port), '-U', '0', '-l', LOOPBACK]
    : ['-p', String(tlsPort), '-U', '0', '-l', `${LOOPBACK},notls:${LOOPBACK}:${port}`, '-Z',
      '-o', `ssl_chain_cert=${config.tls.certPath},ssl_key=${config.tls.keyPath}`];
  flags.push('-m', String(config.memoryMiB), '-t', String(config.threads));
  // Both refuse to run as root unless told which user to be.
  if (typeof process.getuid === 'function' && process.getuid() === 0) flags.push('-u', 'root');
  return flags;
}

export async function startServer(command: ServerCommand, config: ServerConfig, logFile: string): Promise<RunningServer> {
  let lastError: Error | null = null;
  for (let attempt = 0; attempt < portAttemptsMax; attempt++) {
    const port = await freePort();
    const tlsPort = config.tls === null ? null : await freePort();
    const args = [...command.args, ...memcachedFlags(port, config, tlsPort)];
    // taskset execs the server, so the child's PID is the server's own.
    const child =
      config.cpus !== null && config.tasksetPath !== null
        ? spawnLogged(config.tasksetPath, ['-c', config.cpus, command.file, ...args], logFile)
        : spawnLogged(command.file, args, logFile);
    try {
      const v = await waitReady(child, port, config.startTimeoutMs, logFile);
      const pid = child.pid as number;
      return { command, pid, port, tlsPort, version: v, cpusAllowed: procStatusField(pid, 'Cpus_allowed_list'), child, logFile };
    } catch (err) {
      await stopProcess(child);
      lastError = err as Error;
      if (!/in use|EADDRINUSE/i.test(tail(logFile))) break;
    }
  }
  throw new Error(`${command.label} did not start: ${lastError?.message ?? 'unknown'}`);
}

async function waitReady(child: ChildProcess, port: number, timeoutMs: number, logFile: string): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let spawnError: Error | null = null;
  child.once('error', (err) => (spawnError = err));
  for (;;) {
    if (spawnError !== null) throw spawnError;
    if (hasExited(child)) {
      throw new Error(`exited (code ${child.exitCode}, signal ${child.signalCode}) before accepting connections; log:\n${tail(logFile)}`);
    }
    try {
      return await version(port, 500);
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`not answering "version" on ${LOOPBACK}:${port} after ${timeoutMs} ms; log:\n${tail(logFile)}`);
    await new Promise((r) => setTimeout(r, probeIntervalMs));
  }
}

export async function stopServer(server: RunningServer): Promise<void> {
  await stopProcess(server.child);
}

/** A field of /proc/<pid>/status, or null (process gone, or not Linux). */
export function procStatusField(pid: number, name: string): string | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text);
    return m === null ? null : m[1].trim();
  } catch {
    return null;
  }
}

/** Resident and peak resident memory of the server process, in KiB. */
export function memoryKiB(pid: number): { rssKiB: number | null; hwmKiB: number | null } {
  const kib = (field: string): number | null => {
    const v = procStatusField(pid, field);
    if (v === null) return null;
    const n = Number.parseInt(v, 10);
    return Number.isFinite(n) ? n : null;
  };
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
}

/** The executable the process runs now (to confirm taskset exec'd into the server). */
export function processName(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}
