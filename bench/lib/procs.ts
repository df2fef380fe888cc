/**
 * Child processes of a bench run: every process the harness starts is registered here, is
 * bounded in time, and is stopped by its PID when the run ends, fails or is interrupted.
 *
 * Not for: knowing what a server or a load generator is (servers.ts, memtier.ts, memcaslap.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const stopGraceMs = 3_000;
const killWaitMs = 2_000;
const watchIntervalMs = 1_000;

const live = new Set<ChildProcess>();

/** Start a process with stdout and stderr appended to `logFile`; it is tracked until it exits. */
export function spawnLogged(file: string, args: string[], logFile: string, cwd?: string): ChildProcess {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `$ ${[file, ...args].join(' ')}\n`);
  let child: ChildProcess;
  try {
    child = spawn(file, args, { stdio: ['ignore', fd, fd], cwd });
  } finally {
    fs.closeSync(fd);
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return true;
  return await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM by PID, then SIGKILL if it has not gone after a grace period. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (hasExited(child) || child.pid === undefined) return;
  child.kill('SIGTERM');
  if (await waitExit(child, stopGraceMs)) return;
  child.kill('SIGKILL');
  await waitExit(child, killWaitMs);
}

export interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** What `watch` reported, if it stopped the process. */
  problem: string | null;
  elapsedMs: number;
}

/**
 * Run a process to completion, output to `logFile`, killed if it runs past `timeoutMs` or
 * if `watch` (polled every second) reports a problem, such as a stalled load generator.
 */
export async function runLogged(
  file: string,
  args: string[],
  logFile: string,
  timeoutMs: number,
  watch?: () => string | null,
): Promise<RunOutcome> {
  const started = Date.now();
  const child = spawnLogged(file, args, logFile);
  let timedOut = false;
  let problem: string | null = null;
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const poll =
    watch === undefined
      ? null
      : setInterval(() => {
          if (problem !== null || hasExited(child)) return;
          problem = watch();
          if (problem !== null) void stopProcess(child);
        }, watchIntervalMs);
  try {
    const exited = waitExit(child, timeoutMs);
    const first = await Promise.race([exited, spawnError]);
    if (first instanceof Error) throw new Error(`cannot run ${file}: ${first.message}`);
    if (!first) {
      timedOut = true;
      await stopProcess(child);
    }
  } finally {
    if (poll !== null) clearInterval(poll);
  }
  return { code: child.exitCode, signal: child.signalCode, timedOut, problem, elapsedMs: Date.now() - started };
}

/** Run a short command synchronously and return its stdout+stderr (null if it cannot run). */
export function captureSync(file: string, args: string[], timeoutMs = 10_000): string | null {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error !== undefined) return null;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

/** Full path of an executable found on PATH, or null. */
export function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Stop everything still running (end of run, error, or signal). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => stopProcess(c)));
}

/** On SIGINT/SIGTERM stop every child by PID, then exit with the conventional status. */
export function installSignalCleanup(onSignal: (signal: NodeJS.Signals) => void): void {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      onSignal(signal);
      void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}

/** Log tail, for error messages. */
export function tail(file: string, bytes = 2_000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > bytes ? `…${text.slice(-bytes)}` : text;
  } catch {
    return '';
  }
}

/**
 * A fresh directory for one run of a side bench, bench/results/tmp/<kind>-<time>/, and the
 * checkout's short commit id ("unknown" outside a git checkout).
 */
export function runDirectory(repo: string, kind: string): { dir: string; commit: string } {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const dir = path.join(repo, 'bench', 'results', 'tmp', `${kind}-${stamp}`);
  fs.mkdirSync(dir, { recursive: true });
  let commit = 'unknown';
  try {
    commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).stdout.trim() || 'unknown';
  } catch {
    // not a checkout
  }
  return { dir, commit };
}
