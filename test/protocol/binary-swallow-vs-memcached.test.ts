/**
 * What a binary connection sends while memcached swallows a body it will not use (unknown
 * opcode, value too large): nothing, until the last swallowed byte has come (memcached's
 * conn_swallow reads without transmitting). Our session in-process against memcached 1.6.45
 * over loopback, the same bytes in the same chunks, compared byte for byte after every chunk.
 *
 * The reference is the binary scripts/install-test-deps.sh builds (MCTS_MEMCACHED_BIN, else
 * $MCTS_CACHE_DIR or ~/.cache/memcached-ts, then memcached-1.6.45/memcached); without it the
 * cases are skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OP, get, makeBinaryHarness, noop, req, setExtras } from './binary-helpers';
import { connectTo, freePort } from './binary-memcached';

function referenceBin(): string {
  const fromEnv = process.env.MCTS_MEMCACHED_BIN;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv;
  const cache = process.env.MCTS_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'memcached-ts');
  return path.join(cache, 'memcached-1.6.45', 'memcached');
}

const BIN = referenceBin();
const present = fs.existsSync(BIN);
/** Bound on waiting for memcached's reply to a chunk, and the pause after it for anything more. */
const WAIT_MS = 5000;
const SETTLE_MS = 100;

let proc: ChildProcess | null = null;
let port = 0;

beforeAll(async () => {
  if (!present) return;
  port = await freePort();
  proc = spawn(BIN, ['-u', 'nobody', '-p', String(port), '-U', '0', '-l', '127.0.0.1', '-m', '64', '-I', '1k',
    '-o', 'slab_chunk_max=1'], { stdio: 'ignore' });
  (await connectTo(port)).destroy();
});

afterAll(() => {
  if (proc?.pid !== undefined && proc.exitCode === null) process.kill(proc.pid, 'SIGTERM');
});

/**
 * Sends the chunks to memcached one by one. After each, waits (bounded) until memcached has
 * sent what our session sent by then, then a little longer so that anything more it would
 * send shows up in the comparison: a late reply cannot make the test fail, only a
 * different one.
 */
async function viaReference(chunks: Buffer[], expected: string[]): Promise<{ after: string[]; closed: boolean }> {
  const sock = await connectTo(port);
  let received = Buffer.alloc(0);
  let closed = false;
  sock.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
  });
  sock.on('close', () => {
    closed = true;
  });
  sock.on('error', () => undefined);
  const after: string[] = [];
  for (let i = 0; i < chunks.length; i++) {
    if (!closed) sock.write(chunks[i]);
    const deadline = Date.now() + WAIT_MS;
    while (received.toString('hex') !== expected[i] && !closed && Date.now() < deadline) await sleep(10);
    await sleep(SETTLE_MS);
    after.push(received.toString('hex'));
  }
  sock.destroy();
  return { after, closed };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function viaOurs(chunks: Buffer[]): { after: string[]; closed: boolean } {
  const h = makeBinaryHarness({ itemSizeMaxBytes: 1024, slabChunkMaxBytes: 1024 });
  let received = Buffer.alloc(0);
  let closed = false;
  const after: string[] = [];
  for (const chunk of chunks) {
    const r = h.run([chunk]);
    received = Buffer.concat([received, r.reply]);
    closed ||= r.closed;
    after.push(received.toString('hex'));
  }
  return { after, closed };
}

const unknown = (bodylen: number, opaque: number): Buffer => req({ op: 0xf6, key: 'a', bodylen, opaque });

const cases: Record<string, Buffer[]> = {
  'opcode 0xf6, 1-byte key, nothing more': [unknown(1, 0xaabbccdd)],
  'opcode 0xf6, 1-byte key, then a NOOP whose magic it swallows': [unknown(1, 0xaabbccdd), noop(1)],
  'opcode 0xf6, 1-byte key and 4 more body bytes, in pieces': [unknown(5, 2), Buffer.from('xy'), Buffer.from('zw'), noop(3)],
  'a miss (sent at once) and an unknown opcode whose body comes later': [
    Buffer.concat([get('nope', { opaque: 4 }), unknown(3, 5)]), Buffer.from('b'), Buffer.concat([Buffer.from('c'), noop(6)]),
  ],
  'replies held by a swallow are lost when the next header is bad': [Buffer.concat([noop(7), unknown(1, 8)]), noop(9), noop(10)],
  'a value over -I: E2BIG after its last byte': [
    req({ op: OP.SET, key: 'k', extras: setExtras(0, 0), bodylen: 9 + 3000, opaque: 11 }), Buffer.alloc(1500), Buffer.concat([Buffer.alloc(1500), noop(12)]),
  ],
};

describe.skipIf(!present)(`binary swallows against memcached 1.6.45 (${BIN})`, () => {
  for (const [name, chunks] of Object.entries(cases)) {
    it(name, async () => {
      const ours = viaOurs(chunks);
      expect(await viaReference(chunks, ours.after)).toEqual(ours);
    });
  }
});
