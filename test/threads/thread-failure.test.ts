/**
 * A serving thread that dies stops the server (src/cli/threads.ts), as a crashing thread takes
 * memcached with it: it may have held a lock of the shared store, and the other threads would
 * then wait on that lock for ever. The failure is injected into a copy of the built server
 * whose serving thread 2 throws a second after it starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, LOOPBACK, REPO_ROOT, stopProcess, trackProcess } from '../helpers/servers';

const EXIT_WAIT_MS = 15_000;
let child: ChildProcess | null = null;
let dir: string | null = null;

afterEach(async () => {
  if (child !== null && child.exitCode === null) await stopProcess(child);
  child = null;
  if (dir !== null) fs.rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/** The built server in a temporary directory, with `injected` appended to the serving thread's module. */
function patchedServer(injected: string): string {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-thread-failure-'));
  fs.cpSync(path.join(REPO_ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.cpSync(path.join(REPO_ROOT, 'bin'), path.join(dir, 'bin'), { recursive: true });
  // The addon is found beside dist/ (native/build/Release), the dependencies in node_modules.
  fs.symlinkSync(path.join(REPO_ROOT, 'native'), path.join(dir, 'native'));
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  fs.appendFileSync(path.join(dir, 'dist', 'cli', 'serving-thread.js'), `\n${injected}\n`);
  return path.join(dir, 'bin', 'memcached-ts.js');
}

describe('a serving thread that dies', () => {
  it('stops the whole server with EX_SOFTWARE (70) and says which thread, instead of serving on', async () => {
    // Serving thread 2 throws a second after it started: an uncaught exception on that thread.
    const bin = patchedServer(`if (require('node:worker_threads').workerData.thread === 2) {
  setTimeout(() => { throw new Error('injected failure'); }, 1000);
}`);
    const port = await freePort();
    let stderr = '';
    const proc = spawn(process.execPath, [bin, '-p', String(port), '-U', '0', '-t', '2', '-l', LOOPBACK,
      ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    trackProcess(proc);
    proc.stderr?.on('data', (d: Buffer) => void (stderr += d.toString()));
    const code = await new Promise<number | null | 'running'>((resolve) => {
      const timer = setTimeout(() => resolve('running'), EXIT_WAIT_MS);
      proc.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, stderr).toBe(70);
    expect(stderr).toMatch(/serving thread 2 failed: Error: injected failure/);
    expect(stderr).toMatch(/serving thread 2 exited \(code 1\): the server stops/);
  }, EXIT_WAIT_MS + 10_000);
});
