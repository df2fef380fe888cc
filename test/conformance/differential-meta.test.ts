/**
 * Differential conformance for the meta protocol: seeded random sequences of mg/ms/md/ma/mn
 * with random flags (gen-meta.ts), mixed with text commands, pipelined in batches and cut at
 * random offsets into several writes, go to memcached 1.6.45 and to the target
 * (MCTS_TARGET); the reply streams must be equal byte for byte after normalising CAS values
 * (VALUE and `c` flags, per server in order of first appearance), positive `t` values, the
 * VERSION text and the space padding of decremented numbers.
 *
 * Seeds: MCTS_SEED=<n> replays the sequences; a failure prints the seed.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, show } from '../helpers/client';
import { Prng, seedFromEnv } from '../helpers/prng';
import { CasNames, firstDifference } from '../helpers/replies';
import { sleep, startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { describeCommand, flatten, planCuts, renderChunks, type Cut, type GenCommand } from './gen';
import { MetaGenerator, casValuesIn, countTerminators, normaliseMeta, scanMeta } from './gen-meta';

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

interface Side {
  name: string;
  client: RawClient;
  cas: CasNames;
}

async function runBatch(side: Side, commands: readonly GenCommand[], cuts: readonly Cut[], delays: readonly number[]): Promise<Buffer> {
  const segments = flatten(commands);
  const chunks = renderChunks(segments, cuts, (id) => {
    const value = side.cas.valueOf(id);
    if (value === undefined) throw new Error(`${side.name} never showed CAS #${id}`);
    return value;
  });
  const expected = commands.filter((c) => c.segments.length === 1 && Buffer.isBuffer(c.segments[0]) && c.segments[0].toString('latin1') === 'mn\r\n').length;
  const reading = side.client.readUntil((buf) => countTerminators(buf) >= expected, batchTimeoutMs);
  for (let i = 0; i < chunks.length; i++) {
    await side.client.send(chunks[i]);
    if ((delays[i] ?? 0) > 0) await sleep(delays[i]);
  }
  return await reading;
}

describe('random meta command sequences, replies compared with memcached', () => {
  for (let sequence = 0; sequence < sequenceCount; sequence++) {
    const seed = (baseSeed + sequence * 0x9e3779b1) >>> 0;
    it(`sequence ${sequence}`, async () => {
      if (reference === undefined || target === undefined) throw new Error('servers did not start');
      const context = `meta sequence ${sequence} (seed ${seed}; rerun with MCTS_SEED=${baseSeed})`;
      const rng = new Prng(seed);
      const generator = new MetaGenerator(rng);
      const [refClient, tgtClient] = await Promise.all([RawClient.connect(reference.port), RawClient.connect(target.port)]);
      const ref: Side = { name: `reference (${reference.kind})`, client: refClient, cas: new CasNames() };
      const tgt: Side = { name: `target (${target.kind})`, client: tgtClient, cas: new CasNames() };
      const known: number[] = [];
      const history: string[] = [];
      const deadline = Date.now() + sequenceTimeMs;
      try {
        const reset: GenCommand[] = [{ label: 'reset', segments: [Buffer.from('flush_all\r\n')], versionReplies: 0 }, { label: 'mn', segments: [Buffer.from('mn\r\n')], versionReplies: 0 }];
        await Promise.all([runBatch(ref, reset, [], []), runBatch(tgt, reset, [], [])]);
        let sent = 0;
        for (let batchIndex = 0; sent < commandsPerSequence; batchIndex++) {
          if (Date.now() > deadline) throw new Error(`${context}: took longer than ${sequenceTimeMs} ms`);
          const batch = generator.batch(known, batchSizeMax);
          const segments = flatten(batch);
          const cuts = rng.chance(0.6) ? planCuts(rng, segments, cutsPerBatchMax) : [];
          const delays = cuts.map(() => (rng.chance(0.1) ? rng.int(1, 3) : 0));
          const describeBatch = (): string => batch.map((c) => '    ' + describeCommand(c, 300)).join('\n');
          const [r, t] = await Promise.allSettled([runBatch(ref, batch, cuts, delays), runBatch(tgt, batch, cuts, delays)]);
          if (r.status === 'rejected') throw new Error(`${context} batch ${batchIndex}: the reference failed (generator bug?): ${String(r.reason)}\n${describeBatch()}`);
          if (t.status === 'rejected') {
            console.error(`differential-meta: failing seed ${baseSeed} (sequence ${sequence}, batch ${batchIndex})`);
            throw new Error(`${context} batch ${batchIndex}: target failed: ${String(t.reason)}\n  reference: ${show(r.value, 2_000)}\n${describeBatch()}`);
          }
          const refScan = scanMeta(r.value);
          const tgtScan = scanMeta(t.value);
          const refNorm = Buffer.concat([normaliseMeta(refScan.units, (v) => ref.cas.nameOf(v)), refScan.rest]);
          const tgtNorm = Buffer.concat([normaliseMeta(tgtScan.units, (v) => tgt.cas.nameOf(v)), tgtScan.rest]);
          for (const value of casValuesIn(refScan.units)) {
            const id = Number(ref.cas.nameOf(value).slice(1));
            if (!known.includes(id)) known.push(id);
          }
          const diff = firstDifference(refNorm, tgtNorm);
          if (diff !== null) {
            console.error(`differential-meta: failing seed ${baseSeed} (sequence ${sequence}, batch ${batchIndex})`);
            throw new Error(
              `${context} batch ${batchIndex}: replies differ at normalised byte ${diff.offset}\n` +
                `  after:     ${show(diff.common)}\n  reference: ${show(diff.a)}\n  target:    ${show(diff.b)}\n` +
                `  full reference reply: ${show(r.value, 2_000)}\n  full target reply:    ${show(t.value, 2_000)}\n` +
                `  batch (cut at ${JSON.stringify(cuts)}):\n${describeBatch()}\n  previous batches:\n${history.map((h) => '    ' + h).join('\n')}`,
            );
          }
          history.push(batch.map((c) => describeCommand(c, 120)).join(' | ').slice(0, 1_500));
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
