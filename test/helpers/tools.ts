/**
 * Running external client programs (memccapable, memcslap, python scripts, nutcracker)
 * with a time bound, capturing their output. A program still running at the bound is
 * stopped by PID (SIGTERM, then SIGKILL).
 *
 *   MCTS_PYTHON   python interpreter with pymemcache (default: the first of /usr/bin/python3,
 *                 python3 that can import it)
 */

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { REPO_ROOT, stopProcess, trackProcess } from './servers';

export interface ToolResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export async function runTool(
  file: string,
  args: readonly string[],
  options: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<ToolResult> {
  const started = Date.now();
  const child = spawn(file, [...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackProcess(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopProcess(child, 1_000);
  }, options.timeoutMs);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve({ code: c, signal: s }));
  }).finally(() => clearTimeout(timer));
  return { command: [file, ...args].join(' '), code, signal, stdout, stderr, timedOut, durationMs: Date.now() - started };
}

/** A one-paragraph description of a finished tool run, for assertion messages. */
export function describeRun(result: ToolResult, tailChars = 3_000): string {
  const tail = (s: string): string => (s.length > tailChars ? '…' + s.slice(-tailChars) : s);
  return (
    `${result.command}\n  exit ${String(result.code)} signal ${String(result.signal)}` +
    `${result.timedOut ? ' (timed out)' : ''} after ${result.durationMs} ms\n` +
    `  stdout: ${tail(result.stdout)}\n  stderr: ${tail(result.stderr)}`
  );
}

/** Absolute path of an executable found on PATH (or given as a path), or undefined. */
export function which(name: string): string | undefined {
  if (name.includes('/')) return fs.existsSync(name) ? name : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const candidate = `${dir}/${name}`;
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** The path of a required tool; throws with the Debian package to install otherwise. */
export function requireTool(name: string, debianPackage: string): string {
  const found = which(name) ?? which(`/usr/bin/${name}`) ?? which(`/usr/sbin/${name}`);
  if (found === undefined) throw new Error(`${name} not found: install the Debian package ${debianPackage}`);
  return found;
}

let pythonCache: string | undefined;

/** A python3 that can `import pymemcache` (package python3-pymemcache). */
export function pythonWithPymemcache(): string {
  if (pythonCache !== undefined) return pythonCache;
  const candidates = [process.env.MCTS_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => c !== undefined && c !== '');
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['-c', 'import pymemcache'], { timeout: 10_000, stdio: 'ignore' });
    if (probe.status === 0) {
      pythonCache = candidate;
      return candidate;
    }
  }
  throw new Error(`no python3 with pymemcache among ${candidates.join(', ')}: install the Debian package python3-pymemcache or set MCTS_PYTHON`);
}
