/**
 * Process-level startup actions behind -P, -d, -u and -r.
 *
 * What it is for: doing what memcached does with these flags, as far as Node.js allows, and
 * reporting failures as values (message and exit code) so the caller decides how to exit.
 * What it is not for: parsing (options.ts) or deciding the order of startup (the caller's
 * main; memcached's order is: check -r, switch user, daemonize, bind, write the pid file, accept).
 */

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { Settings } from '../settings';
import { EX_NOUSER, EX_OSERR, EX_USAGE, OPTION_SPECS } from './options';

/** A startup failure: print `message` on stderr and exit with `exitCode`. */
export interface ProcessError {
  message: string;
  exitCode: number;
}

/** `id` answers from the local databases or NSS; a hung directory service must not hang startup. */
const USER_LOOKUP_TIMEOUT_MS = 5000;
/** memcached reads a pid file with a 1 KiB buffer; a pid is a few digits. */
const PID_FILE_BYTES_MAX = 1024;

// --- -P

/**
 * Writes `pid` to `path` through a temporary file and a rename, so that a reader never sees
 * an empty file. Returns messages for stderr; none is fatal, as in memcached.
 */
export function writePidFile(path: string, pid: number = process.pid): string[] {
  const messages: string[] = [];
  const runningPid = readRunningPid(path);
  if (runningPid !== null) messages.push(`WARNING: The pid file contained the following (running) pid: ${runningPid}`);
  const temporaryPath = `${path}.tmp`;
  try {
    fs.writeFileSync(temporaryPath, `${pid}\n`);
    fs.renameSync(temporaryPath, path);
  } catch (error) {
    messages.push(`Could not write the pid file ${path}: ${errorText(error)}`);
  }
  return messages;
}

/** A pid file written at startup; release() undoes it when startup fails. */
export interface ClaimedPidFile {
  release(): void;
}

/**
 * Writes the pid file (messages go to stderr, as writePidFile's) and remembers what it
 * replaced, so that a startup that fails afterwards (a port in use) leaves the file as it
 * found it: another server's pid stays, a file that did not exist is removed.
 */
export function claimPidFile(path: string, pid: number = process.pid, stderr: (line: string) => void = (l) => process.stderr.write(l + '\n')): ClaimedPidFile {
  let previous: Buffer | null = null;
  try {
    previous = fs.readFileSync(path);
  } catch {
    previous = null;
  }
  for (const m of writePidFile(path, pid)) stderr(m);
  return {
    release(): void {
      try {
        if (fs.readFileSync(path, 'latin1').trim() !== String(pid)) return;
      } catch {
        return;
      }
      if (previous === null) {
        const m = removePidFile(path);
        if (m !== null) stderr(m);
        return;
      }
      try {
        fs.writeFileSync(path, previous);
      } catch (error) {
        stderr(`Could not restore the pid file ${path}: ${errorText(error)}`);
      }
    },
  };
}

/** Returns a message for stderr when the file could not be removed. */
export function removePidFile(path: string): string | null {
  try {
    fs.unlinkSync(path);
    return null;
  } catch (error) {
    return `Could not remove the pid file ${path}: ${errorText(error)}`;
  }
}

/** The pid in an existing pid file, when that process is still alive. */
function readRunningPid(path: string): number | null {
  let text: string;
  try {
    const fd = fs.openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(PID_FILE_BYTES_MAX);
      text = buffer.toString('latin1', 0, fs.readSync(fd, buffer, 0, PID_FILE_BYTES_MAX, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
  const match = /^\s*(\d{1,10})\s*$/.exec(text);
  if (match === null) return null;
  const pid = Number(match[1]);
  return pid > 0 && isAlive(pid) ? pid : null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// --- -u

/** What dropPrivileges needs from the system; tests pass a fake. */
export interface Identity {
  isRoot(): boolean;
  /** uid and primary gid of a user, or null when there is no such user. */
  lookupUser(name: string): { uid: number; gid: number } | null;
  setgroups(groups: number[]): void;
  setgid(gid: number): void;
  setuid(uid: number): void;
}

export const systemIdentity: Identity = {
  isRoot: () => process.getuid?.() === 0 || process.geteuid?.() === 0,
  lookupUser,
  setgroups: (groups) => process.setgroups?.(groups),
  setgid: (gid) => process.setgid?.(gid),
  setuid: (uid) => process.setuid?.(uid),
};

/**
 * memcached's rule: as root, -u is required and the process becomes that user (its primary
 * group, no supplementary groups); as anyone else, -u is ignored.
 */
export function dropPrivileges(
  settings: Pick<Settings, 'username'>,
  identity: Identity = systemIdentity,
): ProcessError | null {
  const username = settings.username;
  if (!identity.isRoot()) return null;
  if (username === null || username === '') {
    return { message: "can't run as root without the -u switch", exitCode: EX_USAGE };
  }
  const user = identity.lookupUser(username);
  if (user === null) return { message: `can't find the user ${username} to switch to`, exitCode: EX_NOUSER };
  const groupsError = dropSupplementaryGroups(identity);
  if (groupsError !== null) return groupsError;
  try {
    // The group first: once the uid is not root, the gid can no longer change.
    identity.setgid(user.gid);
    identity.setuid(user.uid);
  } catch {
    return { message: `failed to assume identity of user ${username}`, exitCode: EX_OSERR };
  }
  return null;
}

function dropSupplementaryGroups(identity: Identity): ProcessError | null {
  try {
    identity.setgroups([]);
    return null;
  } catch (error) {
    // EPERM means the groups are already as small as they can be made (as in memcached).
    if ((error as NodeJS.ErrnoException).code === 'EPERM') return null;
    return { message: `failed to drop supplementary groups: ${errorText(error)}`, exitCode: EX_OSERR };
  }
}

/** Node.js has no getpwnam(); `id` resolves through NSS like it does. */
export function lookupUser(name: string): { uid: number; gid: number } | null {
  if (name.startsWith('-')) return null;
  const uid = idNumber('-u', name);
  const gid = idNumber('-g', name);
  return uid === null || gid === null ? null : { uid, gid };
}

function idNumber(flag: '-u' | '-g', name: string): number | null {
  try {
    const output = execFileSync('id', [flag, name], {
      encoding: 'utf8',
      timeout: USER_LOOKUP_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return /^\d+$/.test(output.trim()) ? Number(output.trim()) : null;
  } catch {
    return null;
  }
}

// --- -r

/**
 * memcached raises RLIMIT_CORE and fails only if the soft limit ends up 0. Node.js cannot
 * call setrlimit(), so the limit is read and startup fails only where memcached would have
 * had to raise it.
 */
export function ensureCoreDumps(limitsPath: string = '/proc/self/limits'): ProcessError | null {
  const softLimit = readCoreSoftLimit(limitsPath);
  if (softLimit === 'unlimited' || (softLimit !== null && softLimit > 0)) return null;
  const fix = 'raise it before starting (ulimit -c unlimited, or LimitCORE=infinity in the systemd unit)';
  const reason =
    softLimit === null
      ? `cannot read the core file size limit from ${limitsPath}`
      : 'the core file size limit is 0 and Node.js cannot raise it';
  return { message: `-r: failed to ensure corefile creation: ${reason}; ${fix}`, exitCode: EX_OSERR };
}

function readCoreSoftLimit(limitsPath: string): number | 'unlimited' | null {
  let text: string;
  try {
    text = fs.readFileSync(limitsPath, 'utf8');
  } catch {
    return null;
  }
  const match = /^Max core file size\s+(\S+)/m.exec(text);
  if (match === null) return null;
  if (match[1] === 'unlimited') return 'unlimited';
  return /^\d+$/.test(match[1]) ? Number(match[1]) : null;
}

// --- -d

/** The environment variable that tells a daemon child which descriptor reports its startup. */
export const STARTUP_FD_ENV = 'MEMCACHED_TS_STARTUP_FD';

/** How a daemon child's startup went, as its parent learns it. */
export type DaemonOutcome = { ready: true } | { ready: false; exitCode: number; message: string };

/**
 * Starts this program again, detached in its own session, with the same arguments minus -d.
 * As in memcached, the child's stdio is /dev/null unless verbose (daemon(3)'s noclose, so
 * -d -vv still logs), and its working directory is / unless -r (so that core files land where
 * it was started). `argv` is the arguments after the program name.
 *
 * memcached forks after it has set everything up but before it binds, so its parent's exit
 * says little. Here the child starts from scratch, so it reports over a pipe (descriptor 3,
 * named by STARTUP_FD_ENV) once it is listening with its pid file written, or why it failed;
 * `outcome` resolves with that, and the parent exits 0 only then (what systemd's
 * Type=forking and PIDFile= expect of a daemon's parent). Returns the child's pid.
 */
export function daemonize(
  argv: string[],
  settings: Pick<Settings, 'verbose' | 'maximizeCoreFile'>,
): { pid: number; outcome: Promise<DaemonOutcome> } | ProcessError {
  if (process.argv[1] === undefined) return { message: '-d: cannot tell which script to start again', exitCode: 1 };
  // Absolute, because the child starts in /.
  const script = resolvePath(process.argv[1]);
  const output = settings.verbose > 0 ? 'inherit' : 'ignore';
  const child = spawn(process.execPath, [...process.execArgv, script, ...argvWithoutDaemon(argv)], {
    detached: true,
    cwd: settings.maximizeCoreFile ? process.cwd() : '/',
    stdio: ['ignore', output, output, 'pipe'],
    env: { ...process.env, [STARTUP_FD_ENV]: '3' },
  });
  // A failed spawn also emits 'error' later; the missing pid already reports it.
  child.on('error', () => {});
  if (child.pid === undefined) return { message: 'failed to daemon() in order to daemonize', exitCode: 1 };
  child.unref();
  const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  const outcome = new Promise<DaemonOutcome>((resolve) => {
    let text = '';
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      text += chunk;
    });
    pipe.on('error', () => undefined);
    pipe.on('close', () => {
      const reported = parseStartupReport(text);
      if (reported !== null) {
        resolve(reported);
        return;
      }
      // Gone without a word (killed, crashed): its exit status is all there is.
      const settle = (code: number | null, signal: NodeJS.Signals | null): void => resolve({
        ready: false,
        exitCode: code !== null && code !== 0 ? code : 1,
        message: `the daemon (pid ${child.pid}) exited during startup (${signal ?? `exit code ${code}`})`,
      });
      if (child.exitCode !== null || child.signalCode !== null) settle(child.exitCode, child.signalCode);
      else child.once('exit', settle);
    });
  });
  return { pid: child.pid, outcome };
}

function parseStartupReport(text: string): DaemonOutcome | null {
  if (text === 'ready\n') return { ready: true };
  const failed = /^failed (\d+) ([^]*)\n$/.exec(text);
  if (failed === null) return null;
  return { ready: false, exitCode: Number(failed[1]), message: failed[2] };
}

/**
 * In a daemon child (STARTUP_FD_ENV set): tells the waiting parent that startup is complete, or
 * why it failed. Once only; nothing happens in a process that was not started by daemonize().
 */
export function reportStartup(outcome: DaemonOutcome): void {
  const fdText = process.env[STARTUP_FD_ENV];
  if (fdText === undefined) return;
  delete process.env[STARTUP_FD_ENV];
  const fd = Number(fdText);
  if (!Number.isSafeInteger(fd) || fd < 3) return;
  const line = outcome.ready ? 'ready\n' : `failed ${outcome.exitCode} ${outcome.message.replace(/\n/g, ' ')}\n`;
  try {
    fs.writeSync(fd, line);
  } catch {
    // The parent is gone: nobody to tell.
  }
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * argv with every -d / --daemon removed, reading it as getopt does: a letter that takes a
 * value swallows the rest of its word or the next word, so `-ud` (user "d") is left alone
 * and `-dv` becomes `-v`.
 */
export function argvWithoutDaemon(argv: string[]): string[] {
  const output: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const word = argv[index];
    if (word === '--') {
      output.push(...argv.slice(index));
      break;
    }
    if (keepWord(word, output) && index + 1 < argv.length) output.push(argv[++index]);
  }
  return output;
}

/** Returns whether the next word is this option's value. */
function keepLongOption(word: string, output: string[]): boolean {
  const name = word.slice(2).split('=')[0];
  if (name === 'daemon') return false;
  output.push(word);
  const spec = OPTION_SPECS.find((candidate) => candidate.long === name);
  return spec !== undefined && spec.valueName !== null && !word.includes('=');
}

/** Returns whether the next word is the value of the cluster's last letter. */
function keepShortCluster(word: string, output: string[]): boolean {
  let kept = '-';
  for (let position = 1; position < word.length; position++) {
    const letter = word[position];
    const spec = OPTION_SPECS.find((candidate) => candidate.short === letter);
    if (spec !== undefined && spec.valueName !== null) {
      output.push(kept + word.slice(position));
      return position === word.length - 1;
    }
    if (letter !== 'd') kept += letter;
  }
  if (kept !== '-' || word === '-') output.push(kept);
  return false;
}

/** Copies `word` to `output` unless it is -d; returns whether the next word is a value. */
function keepWord(word: string, output: string[]): boolean {
  if (word.startsWith('--')) return keepLongOption(word, output);
  if (word.startsWith('-')) return keepShortCluster(word, output);
  output.push(word);
  return false;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
