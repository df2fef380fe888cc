/**
 * Differential test with values on disk: the same random commands go to memcached 1.6.45 and
 * to this server, both with extstore and `ext_item_age=0` (every value of 100 bytes or more
 * is written out as soon as the writer runs), and their replies must match byte for byte
 * (CAS values compared by order of first appearance).
 *
 * Each round: a write phase (set/add/replace/ms of random values, flags, sizes), then a wait
 * until every live item of both servers is on disk (extstore_objects_used = curr_items),
 * then a read phase over those headers: get/gets/gat with several keys, mg with value and
 * metadata flags, and the commands whose answer depends on the value being on disk
 * (append/prepend refused, incr/decr/ma as non-numeric), touch, delete. Recache is off on
 * both (`ext_recache_rate=0`) so no value moves back to memory during a read phase.
 *
 * Seeds: MCTS_SEED=<n> replays a run; a failure prints the seed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, show } from '../helpers/client';
import { Prng, seedFromEnv } from '../helpers/prng';
import { firstDifference } from '../helpers/replies';
import { memcachedBin, sleep, startServer, stopAll, type ServerProcess } from '../helpers/servers';
import { tempDir } from './harness';

const haveMemcached = fs.existsSync(memcachedBin());
const baseSeed = seedFromEnv();
const ROUNDS = 3;
const KEYS = 90;
const WRITES_PER_ROUND = 120;
const READS_PER_ROUND = 160;
const BATCH_MAX = 16;
const FLUSH_WAIT_MS = 15_000;
/** Values: lowercase, digits, spaces and CR/LF, never the upper-case terminator `MN`. */
const ALPHABET = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789 \r\n', 'latin1');

function serverArgs(file: string): string[] {
  return ['-m', '64', '-o',
    `ext_path=${file}:64m,ext_page_size=2,ext_wbuf_size=2,ext_item_age=0,ext_item_size=100,ext_max_sleep=20000,ext_recache_rate=0`];
}

let dir = '';
let reference: ServerProcess | undefined;
let target: ServerProcess | undefined;

beforeAll(async () => {
  if (!haveMemcached) return;
  dir = tempDir('mcts-ext-diff-');
  [reference, target] = await Promise.all([
    startServer({ kind: 'memcached', args: serverArgs(path.join(dir, 'reference')) }),
    startServer({ kind: 'ours', args: serverArgs(path.join(dir, 'target')) }),
  ]);
}, 40_000);

afterAll(async () => {
  await stopAll(reference, target);
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
}, 20_000);

/** Replace each CAS value with #n, n its order of first appearance on that side. */
function normaliseCas(reply: string): string {
  const names = new Map<string, string>();
  return reply.replace(/^(VALUE \S+ \d+ \d+ )(\d+)\r\n/gm, (_m, head: string, cas: string) => {
    let name = names.get(cas);
    if (name === undefined) {
      name = `#${names.size}`;
      names.set(cas, name);
    }
    return `${head}${name}\r\n`;
  });
}

class Generator {
  constructor(private readonly rng: Prng) {}

  key(): string {
    return `k${this.rng.int(0, KEYS - 1)}`;
  }

  value(): Buffer {
    const rng = this.rng;
    if (rng.chance(0.15)) return Buffer.from('7'.repeat(rng.int(100, 140)), 'latin1'); // digits only
    return rng.bytes(rng.int(100, 9000), ALPHABET);
  }

  flags(): number {
    return this.rng.chance(0.3) ? this.rng.u32() : this.rng.pick([0, 1, 42]);
  }

  write(): Buffer {
    const rng = this.rng;
    const key = this.key();
    const v = this.value();
    const f = this.flags();
    const head = rng.weighted<string>([
      [60, `set ${key} ${f} 0 ${v.length}`],
      [10, `add ${key} ${f} 0 ${v.length}`],
      [10, `replace ${key} ${f} 0 ${v.length}`],
      [20, `ms ${key} ${v.length} F${f} T0`],
    ]);
    return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), v, Buffer.from('\r\n', 'latin1')]);
  }

  read(): Buffer {
    const rng = this.rng;
    const keys = (n: number): string => Array.from({ length: n }, () => this.key()).join(' ');
    const kind = rng.weighted<string>([
      [25, 'get'], [10, 'gets'], [6, 'gat'], [25, 'mg'], [6, 'append'], [6, 'incr'], [4, 'ma'], [5, 'touch'], [4, 'delete'],
    ]);
    switch (kind) {
      case 'get': return Buffer.from(`get ${keys(rng.int(1, 6))}\r\n`, 'latin1');
      case 'gets': return Buffer.from(`gets ${keys(rng.int(1, 4))}\r\n`, 'latin1');
      case 'gat': return Buffer.from(`gat 0 ${keys(rng.int(1, 3))}\r\n`, 'latin1');
      case 'mg': {
        const flags = ['v', 'f', 's', 'k', `O${rng.int(1, 999)}`, 'q'].filter(() => rng.chance(0.6));
        return Buffer.from(`mg ${this.key()}${flags.length > 0 ? ' ' : ''}${flags.join(' ')}\r\n`, 'latin1');
      }
      case 'append': {
        const verb = rng.chance(0.5) ? 'append' : 'prepend';
        return Buffer.from(`${verb} ${this.key()} 0 0 3\r\nabc\r\n`, 'latin1');
      }
      case 'incr': return Buffer.from(`${rng.chance(0.5) ? 'incr' : 'decr'} ${this.key()} ${rng.int(1, 5)}\r\n`, 'latin1');
      case 'ma': return Buffer.from(`ma ${this.key()} v\r\n`, 'latin1');
      case 'touch': return Buffer.from(`touch ${this.key()} 0\r\n`, 'latin1');
      default: return Buffer.from(`delete ${this.key()}\r\n`, 'latin1');
    }
  }
}

/** Send `commands` then `mn`; the whole reply up to and including `MN\r\n`. */
async function exchange(client: RawClient, commands: readonly Buffer[]): Promise<string> {
  const reply = await client.request(Buffer.concat([...commands, Buffer.from('mn\r\n')]),
    (b) => b.length >= 4 && b.toString('latin1', b.length - 4) === 'MN\r\n', 10_000);
  return reply.toString('latin1');
}

async function stats(client: RawClient): Promise<Map<string, number>> {
  const reply = await client.request('stats\r\n', (b) => b.toString('latin1').endsWith('END\r\n'));
  const out = new Map<string, number>();
  for (const line of reply.toString('latin1').split('\r\n')) {
    const m = /^STAT (\S+) (\d+)$/.exec(line);
    if (m !== null) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** Until every live item is a header with its value on disk. */
async function waitAllOnDisk(client: RawClient, name: string): Promise<void> {
  const deadline = Date.now() + FLUSH_WAIT_MS;
  for (;;) {
    const s = await stats(client);
    if (s.get('extstore_objects_used') === s.get('curr_items')) return;
    if (Date.now() > deadline) {
      throw new Error(`${name}: values still in memory after ${FLUSH_WAIT_MS} ms ` +
        `(curr_items ${s.get('curr_items')}, extstore_objects_used ${s.get('extstore_objects_used')})`);
    }
    await sleep(50);
  }
}

describe.skipIf(!haveMemcached)('values on disk, replies compared with memcached 1.6.45', () => {
  it('random writes, then reads and refused updates of the values on disk, alike', async () => {
    const [ref, tgt] = await Promise.all([RawClient.connect(reference!.port), RawClient.connect(target!.port)]);
    const rng = new Prng(baseSeed);
    const gen = new Generator(rng);
    const context = `seed ${baseSeed} (rerun with MCTS_SEED=${baseSeed})`;
    const compare = async (commands: Buffer[], what: string): Promise<void> => {
      const [r, t] = await Promise.all([exchange(ref, commands), exchange(tgt, commands)]);
      const a = normaliseCas(r);
      const b = normaliseCas(t);
      if (a === b) return;
      const d = firstDifference(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
      throw new Error(`${context}, ${what}: replies differ at byte ${d?.offset}\n  after:     ${show(d?.common ?? '')}\n` +
        `  reference: ${show(d?.a ?? '')}\n  target:    ${show(d?.b ?? '')}\n  sent: ${show(Buffer.concat(commands), 800)}`);
    };
    try {
      let readsOnDisk = 0;
      for (let round = 0; round < ROUNDS; round++) {
        for (let sent = 0; sent < WRITES_PER_ROUND;) {
          const n = Math.min(rng.int(1, BATCH_MAX), WRITES_PER_ROUND - sent);
          await compare(Array.from({ length: n }, () => gen.write()), `round ${round} writes`);
          sent += n;
        }
        await Promise.all([waitAllOnDisk(ref, 'reference'), waitAllOnDisk(tgt, 'target')]);
        const before = await stats(tgt);
        for (let sent = 0; sent < READS_PER_ROUND;) {
          const n = Math.min(rng.int(1, BATCH_MAX), READS_PER_ROUND - sent);
          await compare(Array.from({ length: n }, () => gen.read()), `round ${round} reads`);
          sent += n;
        }
        readsOnDisk += (await stats(tgt)).get('get_extstore')! - before.get('get_extstore')!;
      }
      // The comparison was about values on disk: most reads must have been of them.
      expect(readsOnDisk, context).toBeGreaterThan(ROUNDS * 50);
      const s = await stats(ref);
      expect(s.get('evictions'), `${context}: the reference evicted`).toBe(0);
    } finally {
      ref.close();
      tgt.close();
    }
  }, 120_000);
});
