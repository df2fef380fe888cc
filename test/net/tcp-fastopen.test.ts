/**
 * -o tcp_fastopen end to end (doc/platform.md, "TCP Fast Open"): inside a network namespace
 * this test creates (so the host's net.ipv4.tcp_fastopen is untouched), with tcp_fastopen=3
 * there, a server started with -o tcp_fastopen=16 accepts data carried in the SYN: a client
 * that connects twice with MSG_FASTOPEN (the first connection fetches the cookie, the second
 * sends `version` in its SYN) raises TcpExtTCPFastOpenPassive. A server without the option,
 * in the same namespace, does not.
 *
 * Skipped, saying why, when network namespaces cannot be created (not root, no iproute2) or
 * the native addon is not built. The namespace and the servers are removed/stopped by name
 * and PID in afterAll.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative } from '../../src/platform/native';
import { REPO_ROOT, sleep, stopProcess, trackProcess } from '../helpers/servers';

const NS = `mcts-tfo-${process.pid}`;
const SERVER = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const PORT_TFO = 11311;
const PORT_PLAIN = 11312;
const START_TIMEOUT_MS = 15_000;

/** Two connections with MSG_FASTOPEN; prints the replies. */
const CLIENT = `
import socket, sys
port = int(sys.argv[1])
for attempt in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Blocking: with a timeout Python makes the socket non-blocking, and a Fast Open
    # sendto() then fails with EINPROGRESS.
    s.sendto(b"version\\r\\n", socket.MSG_FASTOPEN, ("127.0.0.1", port))
    s.settimeout(5)
    reply = b""
    while not reply.endswith(b"\\r\\n"):
        chunk = s.recv(1000)
        if not chunk:
            break
        reply += chunk
    s.close()
    print(reply.decode().strip())
`;

function inNs(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', NS, ...args], { encoding: 'utf8', input, timeout: 20_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error?.message ?? '') };
}

/** TcpExt counters of the namespace, from /proc/net/netstat read inside it. */
function tcpExt(): Map<string, number> {
  const r = inNs(['cat', '/proc/net/netstat']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  return new Map(names.map((n, i) => [n, values[i]]));
}

function whyCannotRun(): string | null {
  if (process.getuid?.() !== 0) return 'not root: network namespaces need CAP_SYS_ADMIN';
  const load = loadNative();
  if (load.addon === null) return `the native addon is ${load.reason}`;
  const add = spawnSync('ip', ['netns', 'add', NS], { encoding: 'utf8' });
  if (add.error !== undefined) return `ip not found (iproute2): ${add.error.message}`;
  if (add.status !== 0) return `ip netns add is not permitted here: ${add.stderr.trim()}`;
  return null;
}

const started: ChildProcess[] = [];
let skipReason: string | null = null;

async function startInNs(args: string[]): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, SERVER, '-u', 'root', '-U', '0', '-l', '127.0.0.1', '-v', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
  trackProcess(child);
  started.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!output.includes(' started, pid ')) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${output}`);
    if (Date.now() > deadline) throw new Error(`server did not start: ${output}`);
    await sleep(50);
  }
  return child;
}

beforeAll(async () => {
  skipReason = whyCannotRun();
  if (skipReason !== null) {
    console.warn(`TCP Fast Open test skipped: ${skipReason}`);
    return;
  }
  const setup = inNs(['sh', '-c', 'ip link set lo up && sysctl -q -w net.ipv4.tcp_fastopen=3']);
  if (setup.status !== 0) throw new Error(`namespace setup failed: ${setup.stderr}`);
  await startInNs(['-p', String(PORT_TFO), '-o', 'tcp_fastopen=16']);
  await startInNs(['-p', String(PORT_PLAIN)]);
});

afterAll(async () => {
  for (const child of started) await stopProcess(child);
  if (skipReason === null) spawnSync('ip', ['netns', 'del', NS]);
});

describe('TCP Fast Open', () => {
  it('a -o tcp_fastopen server takes data in the SYN of a returning client', (ctx) => {
    if (skipReason !== null) return ctx.skip();
    const before = tcpExt();
    const r = inNs(['python3', '-c', CLIENT, String(PORT_TFO)]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['VERSION 1.6.45', 'VERSION 1.6.45']);
    const after = tcpExt();
    // The first connection asks for a cookie, the second sends data with it.
    expect((after.get('TCPFastOpenCookieReqd') ?? 0) - (before.get('TCPFastOpenCookieReqd') ?? 0)).toBeGreaterThanOrEqual(1);
    expect((after.get('TCPFastOpenPassive') ?? 0) - (before.get('TCPFastOpenPassive') ?? 0)).toBeGreaterThanOrEqual(1);
  });

  it('a server without the option does not (the kernel falls back to a normal handshake)', (ctx) => {
    if (skipReason !== null) return ctx.skip();
    const before = tcpExt();
    const r = inNs(['python3', '-c', CLIENT, String(PORT_PLAIN)]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['VERSION 1.6.45', 'VERSION 1.6.45']);
    const after = tcpExt();
    expect((after.get('TCPFastOpenPassive') ?? 0) - (before.get('TCPFastOpenPassive') ?? 0)).toBe(0);
  });

  it('stats settings reports the queue length', (ctx) => {
    if (skipReason !== null) return ctx.skip();
    const r = inNs(['python3', '-c', `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"stats settings\\r\\n")
data = b""
while not data.endswith(b"END\\r\\n"):
    data += s.recv(65536)
print(data.decode())
`, String(PORT_TFO)]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('STAT tcp_fastopen 16\r\n');
  });
});
