/**
 * Differential conformance for the binary protocol: seeded random request sequences
 * (gen-binary.ts: get/getq/getk/getkq, set/add/replace(q) with random flags, exptime and CAS,
 * delete(q), incr/decr(q) with initial values and 0xffffffff expiry, append/prepend(q),
 * touch, gat/gatq, noop, version; random opaques) go to memcached 1.6.45 and the target
 * (MCTS_TARGET), pipelined in batches cut at random offsets; every response packet must be
 * equal after renaming CAS values per server in first-seen order, blanking the version
 * body, and dropping the space padding of a decremented number in GET values.
 *
 * Seeds: MCTS_SEED=<n> replays the sequences; a failure prints the seed.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/client';
import { Prng, seedFromEnv } from '../helpers/prng';
import { sleep, startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { OP, parsePackets, req, type Packet } from '../protocol/binary-helpers';
import { BinaryGenerator, SENTINEL_OPAQUE, binarySentinel, type BinCommand } from './gen-binary';

const serverFlags = ['-m', '64'];
const baseSeed = seedFromEnv();
const sequenceCount = 6;
const commandsPerSequence = 400;
const batchSizeMax = 24;
const cutsPerBatchMax = 6;
const batchTimeoutMs = 10_000;
const sequenceTimeMs = 15_000;

let reference: ServerProcess | undefined;
let target: ServerProcess | undefined;

beforeAll(async () => {
  [reference, target] = await Promise.all([startReference(serverFlags), startTarget(serverFlags)]);
}, 40_000);

afterAll(async () => {
  await stopAll(reference, target);
}, 20_000);

class Side {
  private readonly ids = new Map<bigint, number>();
  private readonly values: bigint[] = [0n];
  constructor(readonly name: string, readonly client: RawClient) {}

  casName(value: bigint): string {
    if (value === 0n) return '0';
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return `#${id}`;
  }

  casOf(id: number): bigint {
    const value = this.values[id];
    if (value === undefined) throw new Error(`${this.name} never showed CAS #${id}`);
    return value;
  }
}

const sentinelDone = (buf: Buffer): boolean => {
  const { packets } = parsePackets(buf);
  const last = packets[packets.length - 1];
  return last !== undefined && last.opcode === OP.NOOP && last.opaque === SENTINEL_OPAQUE;
};

function describePacket(p: Packet, side: Side): string {
  let value = p.value.toString('latin1');
  if (p.opcode === OP.VERSION && p.status === 0) value = '<version>';
  const padded = /^([0-9]+) +$/.exec(value);
  if (padded !== null && (p.opcode === OP.GET || p.opcode === OP.GETK || p.opcode === OP.GETQ || p.opcode === OP.GETKQ || p.opcode === OP.GAT || p.opcode === OP.GATQ)) value = padded[1];
  return `op=${p.opcode.toString(16)} st=${p.status.toString(16)} magic=${p.magic.toString(16)} dt=${p.datatype} opq=${p.opaque} ` +
    `cas=${side.casName(p.cas)} ext=${p.extras.toString('hex')} key=${JSON.stringify(p.key.toString('latin1'))} val=${JSON.stringify(value)}`;
}

async function runBatch(side: Side, commands: readonly BinCommand[], cuts: readonly number[], delays: readonly number[]): Promise<Buffer> {
  const bytes = Buffer.concat(commands.map((c) => c.render((id) => side.casOf(id))));
  const reading = side.client.readUntil(sentinelDone, batchTimeoutMs);
  let from = 0;
  for (const [i, cut] of [...cuts, bytes.length].entries()) {
    await side.client.send(bytes.subarray(from, cut));
    from = cut;
    if ((delays[i] ?? 0) > 0) await sleep(delays[i]);
  }
  return await reading;
}

describe('random binary request sequences, replies compared with memcached', () => {
  for (let sequence = 0; sequence < sequenceCount; sequence++) {
    const seed = (baseSeed + sequence * 0x9e3779b1) >>> 0;
    it(`sequence ${sequence}`, async () => {
      if (reference === undefined || target === undefined) throw new Error('servers did not start');
      const context = `binary sequence ${sequence} (seed ${seed}; rerun with MCTS_SEED=${baseSeed})`;
      const rng = new Prng(seed);
      const generator = new BinaryGenerator(rng);
      const [refClient, tgtClient] = await Promise.all([RawClient.connect(reference.port), RawClient.connect(target.port)]);
      const ref = new Side(`reference (${reference.kind})`, refClient);
      const tgt = new Side(`target (${target.kind})`, tgtClient);
      const known: number[] = [];
      const history: string[] = [];
      const deadline = Date.now() + sequenceTimeMs;
      try {
        const flush = req({ op: OP.FLUSH, opaque: 1 });
        const reset: BinCommand[] = [{ label: 'flush', render: () => flush, length: flush.length }, binarySentinel()];
        await Promise.all([runBatch(ref, reset, [], []), runBatch(tgt, reset, [], [])]);
        let sent = 0;
        for (let batchIndex = 0; sent < commandsPerSequence; batchIndex++) {
          if (Date.now() > deadline) throw new Error(`${context}: took longer than ${sequenceTimeMs} ms`);
          const batch = generator.batch(known, batchSizeMax);
          const total = batch.reduce((n, c) => n + c.length, 0);
          const cuts = rng.chance(0.6) ? [...new Set(Array.from({ length: rng.int(1, cutsPerBatchMax) }, () => rng.int(1, total - 1)))].sort((a, b) => a - b) : [];
          const delays = cuts.map(() => (rng.chance(0.1) ? rng.int(1, 3) : 0));
          const describeBatch = (): string => batch.map((c) => '    ' + c.label).join('\n');
          const [r, t] = await Promise.allSettled([runBatch(ref, batch, cuts, delays), runBatch(tgt, batch, cuts, delays)]);
          if (r.status === 'rejected') throw new Error(`${context} batch ${batchIndex}: the reference failed (generator bug?): ${String(r.reason)}\n${describeBatch()}`);
          if (t.status === 'rejected') {
            console.error(`differential-binary: failing seed ${baseSeed} (sequence ${sequence}, batch ${batchIndex})`);
            throw new Error(`${context} batch ${batchIndex}: target failed: ${String(t.reason)}\n${describeBatch()}`);
          }
          const refPackets = parsePackets(r.value).packets;
          const tgtPackets = parsePackets(t.value).packets;
          const refLines = refPackets.map((p) => describePacket(p, ref));
          const tgtLines = tgtPackets.map((p) => describePacket(p, tgt));
          for (const p of refPackets) {
            if (p.cas === 0n) continue;
            const id = Number(ref.casName(p.cas).slice(1));
            if (!known.includes(id)) known.push(id);
          }
          const firstBad = refLines.findIndex((line, i) => line !== tgtLines[i]);
          if (firstBad >= 0 || refLines.length !== tgtLines.length) {
            console.error(`differential-binary: failing seed ${baseSeed} (sequence ${sequence}, batch ${batchIndex})`);
            const at = firstBad >= 0 ? firstBad : Math.min(refLines.length, tgtLines.length);
            throw new Error(
              `${context} batch ${batchIndex}: response ${at} differs\n  reference: ${refLines[at] ?? '(none)'}\n  target:    ${tgtLines[at] ?? '(none)'}\n` +
                `  all reference responses:\n${refLines.map((l) => '    ' + l.slice(0, 300)).join('\n')}\n` +
                `  all target responses:\n${tgtLines.map((l) => '    ' + l.slice(0, 300)).join('\n')}\n` +
                `  batch (cut at ${JSON.stringify(cuts)}):\n${describeBatch()}\n  previous batches:\n${history.map((h) => '    ' + h).join('\n')}`,
            );
          }
          history.push(batch.map((c) => c.label).join(' | ').slice(0, 1_500));
          if (history.length > 3) history.shift();
          sent += batch.length;
        }
      } finally {
        refClient.close();
        tgtClient.close();
      }
      expect(known.length, 'the sequence showed CAS values').toBeGreaterThan(0);
    }, sequenceTimeMs + 10_000);
  }
});
