/**
 * twemproxy (Debian: nutcracker) in front of two target instances: keys routed through the
 * proxy (ketama over fnv1a_64) must all be retrievable through it, each must live on exactly
 * one backend, and both backends must hold some.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, endsWith, lines } from '../helpers/client';
import { scanReplies } from '../helpers/replies';
import { LOOPBACK, canConnect, freePort, readTail, sleep, startTarget, stopAll, stopProcess, trackProcess, type ServerProcess } from '../helpers/servers';
import { requireTool } from '../helpers/tools';

const keyCount = 200;
const proxyStartTimeoutMs = 10_000;

let backends: ServerProcess[] = [];
let proxy: ChildProcess | undefined;
let proxyPort = 0;
let workDir = '';
let proxyLog = '';

beforeAll(async () => {
  backends = await Promise.all([startTarget(['-m', '64']), startTarget(['-m', '64'])]);
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-twemproxy-'));
  proxyLog = path.join(workDir, 'nutcracker.log');
  const nutcracker = requireTool('nutcracker', 'nutcracker');
  for (let attempt = 0; attempt < 3 && proxy === undefined; attempt++) {
    proxyPort = await freePort();
    const statsPort = await freePort();
    const config = path.join(workDir, 'nutcracker.yml');
    fs.writeFileSync(
      config,
      [
        'mcts:',
        `  listen: ${LOOPBACK}:${proxyPort}`,
        '  hash: fnv1a_64',
        '  distribution: ketama',
        '  redis: false', // i.e. the memcached protocol
        '  timeout: 2000',
        '  auto_eject_hosts: false',
        '  servers:',
        ...backends.map((b, i) => `    - ${b.host}:${b.port}:1 backend${i}`),
        '',
      ].join('\n'),
    );
    const child = spawn(
      nutcracker,
      ['-c', config, '-s', String(statsPort), '-a', LOOPBACK, '-o', proxyLog, '-p', path.join(workDir, 'nutcracker.pid'), '-v', '6'],
      { stdio: 'ignore' },
    );
    trackProcess(child);
    const deadline = Date.now() + proxyStartTimeoutMs;
    while (Date.now() < deadline && child.exitCode === null && !(await canConnect(proxyPort))) await sleep(50);
    if (child.exitCode === null && (await canConnect(proxyPort))) proxy = child;
    else await stopProcess(child);
  }
  if (proxy === undefined) throw new Error(`nutcracker did not start:\n${readTail(proxyLog)}`);
}, 40_000);

afterAll(async () => {
  if (proxy !== undefined) await stopProcess(proxy);
  await stopAll(...backends);
  if (workDir !== '') fs.rmSync(workDir, { recursive: true, force: true });
}, 20_000);

const keyOf = (i: number): string => `tw:key:${i}`;
const valueOf = (i: number): string => `value-${i}-${'v'.repeat(i % 50)}`;

async function getAll(port: number, keys: readonly string[]): Promise<Map<string, string>> {
  const client = await RawClient.connect(port);
  try {
    const found = new Map<string, string>();
    // A few keys per request: the proxy splits multi-gets across backends and merges them.
    for (let i = 0; i < keys.length; i += 20) {
      const reply = await client.request(`get ${keys.slice(i, i + 20).join(' ')}\r\n`, endsWith('END\r\n'));
      for (const unit of scanReplies(reply).units) {
        const match = /^VALUE (\S+) 0 \d+$/.exec(unit.line);
        if (match !== null && unit.data !== undefined) found.set(match[1], unit.data.subarray(0, -2).toString('latin1'));
      }
    }
    return found;
  } finally {
    client.close();
  }
}

describe('twemproxy (nutcracker) in front of two instances', () => {
  it(`routes ${keyCount} keys, all retrievable through the proxy and spread over both backends`, async () => {
    const keys = Array.from({ length: keyCount }, (_, i) => keyOf(i));
    const client = await RawClient.connect(proxyPort);
    try {
      for (let i = 0; i < keyCount; i++) {
        const value = valueOf(i);
        const reply = await client.request(`set ${keyOf(i)} 0 0 ${value.length}\r\n${value}\r\n`, lines(1));
        expect(reply.toString('latin1'), `set ${keyOf(i)} through the proxy`).toBe('STORED\r\n');
      }
    } finally {
      client.close();
    }

    const viaProxy = await getAll(proxyPort, keys);
    expect(viaProxy.size, `keys retrievable through the proxy; proxy log:\n${readTail(proxyLog)}`).toBe(keyCount);
    for (let i = 0; i < keyCount; i++) expect(viaProxy.get(keyOf(i))).toBe(valueOf(i));

    const perBackend = await Promise.all(backends.map(async (b) => await getAll(b.port, keys)));
    const counts = perBackend.map((m) => m.size);
    expect(counts.every((n) => n > 0), `keys per backend: ${counts.join(', ')}`).toBe(true);
    expect(counts.reduce((a, b) => a + b, 0), `keys per backend: ${counts.join(', ')}`).toBe(keyCount);
    for (const key of keys) {
      expect(perBackend.filter((m) => m.has(key)).length, `${key} is on exactly one backend`).toBe(1);
    }
  }, 60_000);

  it('deletes, incr and multi-get through the proxy reach the right backend', async () => {
    const client = await RawClient.connect(proxyPort);
    try {
      for (let i = 0; i < 20; i++) {
        expect((await client.request(`delete ${keyOf(i)}\r\n`, lines(1))).toString('latin1')).toBe('DELETED\r\n');
      }
      await client.request('set tw:counter 0 0 1\r\n5\r\n', lines(1));
      expect((await client.request('incr tw:counter 10\r\n', lines(1))).toString('latin1')).toBe('15\r\n');
    } finally {
      client.close();
    }
    const remaining = await getAll(proxyPort, Array.from({ length: keyCount }, (_, i) => keyOf(i)));
    expect(remaining.size).toBe(keyCount - 20);
    const direct = await Promise.all(backends.map(async (b) => await getAll(b.port, ['tw:counter'])));
    expect(direct.map((m) => m.get('tw:counter') ?? '').join('|').replace(/\|/g, '').trim()).toBe('15');
    for (const backend of backends) expect(backend.isAlive(), backend.describe()).toBe(true);
  }, 60_000);
});
