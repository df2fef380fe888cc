import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  argvWithoutDaemon,
  daemonize,
  dropPrivileges,
  ensureCoreDumps,
  Identity,
  lookupUser,
  removePidFile,
  writePidFile,
} from '../../src/cli/process';

let directory: string;

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'memcached-ts-cli-'));
});

afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

describe('pid file', () => {
  it('writes the pid and a newline, leaving no temporary file', () => {
    const path = join(directory, 'mc.pid');
    expect(writePidFile(path, 4242)).toEqual([]);
    expect(readFileSync(path, 'utf8')).toBe('4242\n');
    expect(existsSync(`${path}.tmp`)).toBe(false);
  });

  it('warns, as memcached does, when the old file names a running process', () => {
    const path = join(directory, 'mc.pid');
    writeFileSync(path, `${process.pid}\n`);
    expect(writePidFile(path, 4242)).toEqual([`WARNING: The pid file contained the following (running) pid: ${process.pid}`]);
    expect(readFileSync(path, 'utf8')).toBe('4242\n');
  });

  it('does not warn about a stale or garbled file', () => {
    const path = join(directory, 'mc.pid');
    writeFileSync(path, 'not a pid\n');
    expect(writePidFile(path, 4242)).toEqual([]);
  });

  it('reports, without throwing, a directory it cannot write', () => {
    const messages = writePidFile(join(directory, 'missing', 'mc.pid'), 4242);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('Could not write the pid file');
  });

  it('removes the file, and reports a file that is not there', () => {
    const path = join(directory, 'mc.pid');
    writePidFile(path, 4242);
    expect(removePidFile(path)).toBeNull();
    expect(existsSync(path)).toBe(false);
    expect(removePidFile(path)).toContain('Could not remove the pid file');
  });
});

describe('dropPrivileges', () => {
  function fakeIdentity(root: boolean, calls: string[], failures: Partial<Record<'setgroups' | 'setuid', Error>> = {}): Identity {
    return {
      isRoot: () => root,
      lookupUser: (name) => (name === 'memcache' ? { uid: 110, gid: 120 } : null),
      setgroups: (groups) => {
        calls.push(`setgroups ${groups.length}`);
        if (failures.setgroups) throw failures.setgroups;
      },
      setgid: (gid) => void calls.push(`setgid ${gid}`),
      setuid: (uid) => {
        calls.push(`setuid ${uid}`);
        if (failures.setuid) throw failures.setuid;
      },
    };
  }

  function errno(code: string): Error {
    return Object.assign(new Error(code), { code });
  }

  it('does nothing when not root, even with -u (memcached ignores it)', () => {
    const calls: string[] = [];
    expect(dropPrivileges({ username: 'memcache' }, fakeIdentity(false, calls))).toBeNull();
    expect(calls).toEqual([]);
  });

  it('refuses root without -u with memcached\'s message and EX_USAGE', () => {
    expect(dropPrivileges({ username: null }, fakeIdentity(true, []))).toEqual({
      message: "can't run as root without the -u switch",
      exitCode: 64,
    });
  });

  it('reports an unknown user with EX_NOUSER', () => {
    expect(dropPrivileges({ username: 'nobody-here' }, fakeIdentity(true, []))).toEqual({
      message: "can't find the user nobody-here to switch to",
      exitCode: 67,
    });
  });

  it('drops supplementary groups, then the group, then the user', () => {
    const calls: string[] = [];
    expect(dropPrivileges({ username: 'memcache' }, fakeIdentity(true, calls))).toBeNull();
    expect(calls).toEqual(['setgroups 0', 'setgid 120', 'setuid 110']);
  });

  it('carries on when setgroups says EPERM, and fails on other errors', () => {
    const calls: string[] = [];
    expect(dropPrivileges({ username: 'memcache' }, fakeIdentity(true, calls, { setgroups: errno('EPERM') }))).toBeNull();
    expect(calls).toEqual(['setgroups 0', 'setgid 120', 'setuid 110']);
    expect(dropPrivileges({ username: 'memcache' }, fakeIdentity(true, [], { setgroups: errno('EINVAL') }))?.exitCode).toBe(71);
  });

  it('reports a failed switch with EX_OSERR', () => {
    expect(dropPrivileges({ username: 'memcache' }, fakeIdentity(true, [], { setuid: errno('EPERM') }))).toEqual({
      message: 'failed to assume identity of user memcache',
      exitCode: 71,
    });
  });

  it('applies memcached\'s root rule on this machine', () => {
    const root = process.getuid?.() === 0 || process.geteuid?.() === 0;
    expect(dropPrivileges({ username: null })?.exitCode ?? null).toBe(root ? 64 : null);
  });
});

describe('lookupUser', () => {
  it('finds root', () => {
    expect(lookupUser('root')).toEqual({ uid: 0, gid: 0 });
  });

  it('returns null for a missing user and for anything that looks like an option', () => {
    expect(lookupUser('no-such-user-memcached-ts')).toBeNull();
    expect(lookupUser('-u')).toBeNull();
  });
});

describe('ensureCoreDumps (-r)', () => {
  function limits(core: string): string {
    const path = join(directory, 'limits');
    writeFileSync(
      path,
      'Limit                     Soft Limit           Hard Limit           Units     \n' +
        `Max core file size        ${core}            unlimited            bytes     \n`,
    );
    return path;
  }

  it('passes when core files can be written', () => {
    expect(ensureCoreDumps(limits('unlimited'))).toBeNull();
    expect(ensureCoreDumps(limits('1048576'))).toBeNull();
  });

  it('fails with EX_OSERR when the soft limit is 0, saying how to fix it', () => {
    const failure = ensureCoreDumps(limits('0'));
    expect(failure?.exitCode).toBe(71);
    expect(failure?.message).toContain('ulimit -c');
  });

  it('fails when the limit cannot be read', () => {
    expect(ensureCoreDumps(join(directory, 'absent'))?.exitCode).toBe(71);
  });
});

describe('argvWithoutDaemon', () => {
  it.each([
    [['-d'], []],
    [['-d', '-p', '11211'], ['-p', '11211']],
    [['--daemon', '-m', '64'], ['-m', '64']],
    [['-dvv'], ['-vv']],
    [['-vdv'], ['-vv']],
    [['-dp11211'], ['-p11211']],
    [['-dp', '11211'], ['-p', '11211']],
    [['-ud'], ['-ud']],
    [['-u', '-d'], ['-u', '-d']],
    [['-P', '-d', '-d'], ['-P', '-d']],
    [['--user', 'd', '-d'], ['--user', 'd']],
    [['--user=d', '-d'], ['--user=d']],
    [['-o', 'modern', '-d'], ['-o', 'modern']],
    [['-d', '--', '-d'], ['--', '-d']],
  ])('%j -> %j', (argv, expected) => {
    expect(argvWithoutDaemon(argv)).toEqual(expected);
  });
});

describe('daemonize', () => {
  it('starts the script again in its own session, in /, without -d', async () => {
    const script = join(directory, 'child.js');
    const report = join(directory, 'report.json');
    writeFileSync(
      script,
      "const fs = require('fs');\n" +
        "// After the command name: state, ppid, pgrp, session.\n" +
        "const stat = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');\n" +
        `fs.writeFileSync(${JSON.stringify(report)}, JSON.stringify({ argv: process.argv.slice(2), cwd: process.cwd(), pid: process.pid, sid: Number(stat[3]) }));\n`,
    );
    const savedScript = process.argv[1];
    const savedExecArgv = process.execArgv;
    process.argv[1] = script;
    // The test runner's own Node.js flags are not meant for the child script.
    Object.defineProperty(process, 'execArgv', { value: [], configurable: true });
    let result: ReturnType<typeof daemonize>;
    try {
      result = daemonize(['-d', '-p', '11300', '-dv'], { verbose: 0, maximizeCoreFile: false });
    } finally {
      process.argv[1] = savedScript;
      Object.defineProperty(process, 'execArgv', { value: savedExecArgv, configurable: true });
    }
    expect('pid' in result).toBe(true);
    const child = await waitForJson(report);
    expect(child).toEqual({ argv: ['-p', '11300', '-v'], cwd: '/', pid: (result as { pid: number }).pid, sid: child.pid });
  });
});

async function waitForJson(path: string): Promise<{ argv: string[]; cwd: string; pid: number; sid: number }> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (existsSync(path)) {
      // The child may be between creating the file and writing it: retry until it parses.
      try {
        return JSON.parse(readFileSync(path, 'utf8'));
      } catch {
        // not complete yet
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no report at ${path} within 5 s`);
}
