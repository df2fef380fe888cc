/**
 * Differential conformance: the same byte streams go to memcached 1.6.45 (the reference)
 * and to the target (MCTS_TARGET), and the replies must match byte for byte after
 * normalising only what memcached documents as variable (CAS values, the version text,
 * space padding of decremented numbers).
 *
 * Seeds: MCTS_SEED=<n> replays the random sequences; a failure prints the seed.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, lines, show } from '../helpers/client';
import { Prng, seedFromEnv } from '../helpers/prng';
import { CasNames, parseStats } from '../helpers/replies';
import { sleep, startReference, startTarget, stopAll, type ServerProcess } from '../helpers/servers';
import { CommandGenerator, afterFlush, getEveryKey, planCuts, type GenCommand } from './gen';
import { ConformanceError, PairSession, normalisePair, runScript } from './pair';
import { scenarios, type Scenario } from './scenarios';

const serverFlags = ['-m', '64'];
const baseSeed = seedFromEnv();
const sequenceCount = 10;
const commandsPerSequence = 1_000;
const batchSizeMax = 24;
const cutsPerBatchMax = 6;
const sequenceTimeMs = 60_000;

let reference: ServerProcess | undefined;
let target: ServerProcess | undefined;

function servers(): { reference: ServerProcess; target: ServerProcess } {
  if (reference === undefined || target === undefined) throw new Error('servers did not start');
  return { reference, target };
}

beforeAll(async () => {
  [reference, target] = await Promise.all([startReference(serverFlags), startTarget(serverFlags)]);
}, 40_000);

afterAll(async () => {
  await stopAll(reference, target);
}, 20_000);

function scenarioCommand(pieces: Scenario['batches'][number]): GenCommand {
  return {
    label: 'scenario batch',
    segments: pieces.send.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)),
    versionReplies: pieces.versions ?? 0,
  };
}

async function flushBoth(context: string): Promise<void> {
  const { reference: ref, target: tgt } = servers();
  const session = await PairSession.open(ref, tgt, context);
  try {
    // The deletes: memcached may keep items used in the second before the flush (gen.ts, afterFlush).
    await session.exchange([{ label: 'reset', segments: [Buffer.from('flush_all\r\nverbosity 0\r\n')], versionReplies: 0 }, afterFlush()], []);
  } finally {
    session.close();
  }
}

async function runScenario(scenario: Scenario, rng: Prng | undefined): Promise<void> {
  const { reference: ref, target: tgt } = servers();
  const context = `scenario "${scenario.name}"${rng === undefined ? '' : ` (random cuts; rerun with MCTS_SEED=${baseSeed})`}`;
  await flushBoth(context);
  const session = await PairSession.open(ref, tgt, context);
  try {
    for (const [index, batch] of scenario.batches.entries()) {
      const command = scenarioCommand(batch);
      const cuts = rng === undefined ? [] : planCuts(rng, command.segments, cutsPerBatchMax);
      const delays = rng === undefined ? [] : cuts.map(() => (rng.chance(0.3) ? rng.int(1, 3) : 0));
      const result = await session.exchange([command], cuts, delays);
      if (batch.expect !== undefined && rng === undefined) {
        const got = result.referenceNormalised.toString('latin1').replace(/VERSION <version>\r\n$/, '');
        expect(got, `${context} batch ${index}: memcached itself answered differently than this scenario records`).toBe(batch.expect);
      }
    }
  } finally {
    session.close();
  }
}

describe('fixed scenarios, replies compared with memcached', () => {
  for (const scenario of scenarios()) {
    it(`${scenario.name} (whole writes)`, async () => {
      await runScenario(scenario, undefined);
    }, 30_000);
    if (scenario.once !== true) {
      it(`${scenario.name} (random cuts)`, async () => {
        await runScenario(scenario, new Prng(baseSeed ^ 0x5eed));
      }, 30_000);
    }
  }
});

describe('random command sequences, replies compared with memcached', () => {
  for (let sequence = 0; sequence < sequenceCount; sequence++) {
    const seed = (baseSeed + sequence * 0x9e3779b1) >>> 0;
    it(`sequence ${sequence}`, { timeout: sequenceTimeMs + 10_000 }, async () => {
      const { reference: ref, target: tgt } = servers();
      const context = `random sequence ${sequence} (seed ${seed}; rerun with MCTS_SEED=${baseSeed})`;
      const rng = new Prng(seed);
      const generator = new CommandGenerator(rng, { nowSeconds: Math.floor(Date.now() / 1000) });
      await flushBoth(context);
      const session = await PairSession.open(ref, tgt, context);
      const deadline = Date.now() + sequenceTimeMs;
      try {
        let sent = 0;
        let batchIndex = 0;
        while (sent < commandsPerSequence) {
          if (Date.now() > deadline) throw new Error(`${context}: took longer than ${sequenceTimeMs} ms`);
          const batch = generator.batch(session.knownCas, batchSizeMax);
          const segments = batch.flatMap((c) => c.segments);
          const cuts = rng.chance(0.5) ? planCuts(rng, segments, cutsPerBatchMax) : [];
          const delays = cuts.map(() => (rng.chance(0.15) ? rng.int(1, 3) : 0));
          try {
            await session.exchange(batch, cuts, delays);
            // Failure reports number exchanges as session.history does, the deletes included.
            batchIndex++;
            const flush = batch[batch.length - 1].flush;
            if (flush !== undefined) {
              await emptyAfterFlush(session, tgt, flush === 'now', context);
              batchIndex++;
            }
          } catch (error) {
            if (error instanceof ConformanceError) {
              error.message = `batch ${batchIndex}: ${error.message}\n${await failureReport(ref.port, tgt.port, session.history, sequence)}`;
            }
            console.error(`differential: failing seed ${baseSeed} (sequence ${sequence}, batch ${batchIndex})`);
            throw error;
          }
          sent += batch.length;
        }
      } finally {
        session.close();
      }
      // The comparison is only meaningful while nothing was evicted (eviction order is an
      // implementation choice); guard the test's own assumption on the reference.
      const stats = await withStats(ref.port, 'stats');
      expect(stats.get('evictions'), `${context}: the reference evicted items; shrink the generator's values`).toBe('0');
      await flushBoth(context);
    });
  }
});

/** Counters that tell how items left a server: where the two servers differ, they say which way. */
const ITEM_FATE_STATS = ['curr_items', 'total_items', 'evictions', 'reclaimed', 'expired_unfetched', 'evicted_unfetched',
  'crawler_reclaimed', 'cmd_flush', 'delete_hits', 'slab_reassign_rescues', 'slab_reassign_busy_items',
  'lru_crawler_starts', 'time'];

/**
 * For a failed comparison: the item counters of both servers side by side, and the command
 * lines of every earlier batch, written to a file in the system's temporary directory (the
 * error message itself keeps only the last few batches).
 */
async function failureReport(refPort: number, tgtPort: number, history: readonly string[], sequence: number): Promise<string> {
  const lines: string[] = [];
  try {
    const [a, b] = await Promise.all([withStats(refPort, 'stats'), withStats(tgtPort, 'stats')]);
    lines.push('  item counters (reference / target):');
    for (const k of ITEM_FATE_STATS) lines.push(`    ${k}: ${a.get(k) ?? '-'} / ${b.get(k) ?? '-'}`);
  } catch (error) {
    lines.push(`  item counters: not read (${String(error)})`);
  }
  const file = path.join(os.tmpdir(), `mcts-differential-seq${sequence}-${process.pid}.txt`);
  fs.writeFileSync(file, history.map((h, i) => `batch ${i}: ${h}`).join('\n') + '\n');
  lines.push(`  every earlier batch's commands: ${file}`);
  return lines.join('\n');
}

/**
 * After a batch that ends in `flush_all`: memcached may keep some items a flush should have
 * removed (gen.ts, afterFlush), so only this server's state is checked (when the flush was
 * carried out, and not when memcached is the target), then both servers are emptied.
 */
async function emptyAfterFlush(session: PairSession, tgt: ServerProcess, carriedOut: boolean, context: string): Promise<void> {
  if (carriedOut && tgt.kind === 'ours') {
    const reply = await requestUntilEnd(tgt.port, getEveryKey());
    if (reply.toString('latin1') !== 'END\r\n') {
      throw new ConformanceError(`${context}: target (${tgt.kind}) still holds items after a flush: ${show(reply, 300)}`);
    }
  }
  await session.exchange([afterFlush()], []);
}

/** One request on a connection of its own, read until a reply ends in `END\r\n`. */
async function requestUntilEnd(port: number, request: Buffer | string): Promise<Buffer> {
  const client = await RawClient.connect(port);
  try {
    return await client.request(request, (b) => b.toString('latin1').endsWith('END\r\n'));
  } finally {
    client.close();
  }
}

async function withStats(port: number, command: string): Promise<Map<string, string>> {
  return parseStats(await requestUntilEnd(port, `${command}\r\n`));
}

describe('expiry with real time', () => {
  it('items with exptime 1-2 s expire on both; others stay', async () => {
    const { reference: ref, target: tgt } = servers();
    const setup =
      'set x1 0 1 1\r\na\r\nset x2 0 2 1\r\nb\r\nset x100 0 100 1\r\nc\r\nset x0 0 0 1\r\nd\r\n' +
      'set t1 0 0 1\r\ne\r\ntouch t1 1\r\nset g1 0 0 1\r\nf\r\ngat 2 g1\r\nversion\r\n';
    const expectedSetup = 'STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nTOUCHED\r\nSTORED\r\nVALUE g1 0 1\r\nf\r\nEND\r\n';
    const both = [ref, tgt];
    const setupReplies = await Promise.all(both.map(async (s) => await runScript(s, [setup])));
    for (const [i, reply] of setupReplies.entries()) {
      expect(reply.reply.toString('latin1').replace(/VERSION [^\r\n]*\r\n$/, ''), `${both[i].kind} setup`).toBe(expectedSetup);
    }
    const present = await Promise.all(both.map(async (s) => await runScript(s, ['get x100 x0\r\nversion\r\n'])));
    for (const [i, reply] of present.entries()) {
      expect(reply.reply.toString('latin1'), `${both[i].kind} right after setup`).toMatch(/^VALUE x100 0 1\r\nc\r\nVALUE x0 0 1\r\nd\r\nEND\r\n/);
    }
    // memcached's clock ticks once a second, so an item with exptime N lives between N-1
    // and N+1 seconds; 3.5 s is past every bound here.
    await sleep(3_500);
    const after = await Promise.all(both.map(async (s) => await runScript(s, ['get x1 x2 t1 g1 x100 x0\r\nversion\r\n'])));
    for (const [i, reply] of after.entries()) {
      expect(reply.reply.toString('latin1'), `${both[i].kind} after 3.5 s`).toMatch(/^VALUE x100 0 1\r\nc\r\nVALUE x0 0 1\r\nd\r\nEND\r\nVERSION /);
    }
  }, 20_000);
});

describe('hostile input', () => {
  async function compareScript(writes: Array<Buffer | string>, options: { untilClose?: boolean; versions?: number; gapMs?: number; timeoutMs?: number }): Promise<{ refReply: Buffer; refClosed: boolean }> {
    const { reference: ref, target: tgt } = servers();
    const [r, t] = await Promise.all([runScript(ref, writes, options), runScript(tgt, writes, options)]);
    const normalise = (b: Buffer): string => b.toString('latin1').replace(/VERSION [^\r\n]*\r\n/g, 'VERSION <version>\r\n');
    expect(show(normalise(t.reply)), 'target reply vs reference reply').toBe(show(normalise(r.reply)));
    expect(t.closed, `target closed the connection: ${String(t.closed)}, reference: ${String(r.closed)}`).toBe(r.closed);
    return { refReply: r.reply, refClosed: r.closed };
  }

  async function expectAlive(server: ServerProcess): Promise<void> {
    expect(server.isAlive(), `${server.describe()} died: ${server.exitDescription()}\n${server.logTail()}`).toBe(true);
    const client = await RawClient.connect(server.port);
    try {
      expect(await client.line('version\r\n')).toMatch(/^VERSION \S+/);
    } finally {
      client.close();
    }
  }

  it('an HTTP request line closes the connection without a reply', async () => {
    const outcome = await compareScript(['GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n'], { untilClose: true, timeoutMs: 3_000 });
    expect(outcome.refClosed).toBe(true);
    expect(outcome.refReply.length).toBe(0);
    await compareScript(['POST /x HTTP/1.0\r\n\r\n'], { untilClose: true, timeoutMs: 3_000 });
    // Replies queued before the closing line may be lost on close, so let them go out first.
    await compareScript(['set k 0 0 1\r\nx\r\n', 'HEAD / HTTP/1.1\r\n'], { untilClose: true, timeoutMs: 3_000, gapMs: 200 });
    await expectAlive(servers().target);
  }, 20_000);

  it('a line over 2048 bytes without a newline closes the connection (unless it is a get)', async () => {
    const outcome = await compareScript(['x'.repeat(3_000)], { untilClose: true, timeoutMs: 3_000 });
    expect(outcome.refClosed).toBe(true);
    await compareScript(['set ' + 'k'.repeat(4_000)], { untilClose: true, timeoutMs: 3_000 });
    await compareScript(['version\r\n', 'y'.repeat(2_100)], { untilClose: true, timeoutMs: 3_000, gapMs: 200 });
    await expectAlive(servers().target);
  }, 20_000);

  it('a get line over 2048 bytes arriving in pieces is still served', async () => {
    const keys = Array.from({ length: 400 }, (_, i) => `key${i}`).join(' ');
    const line = `get ${keys} k0\r\n`;
    const setup = 'set k0 0 0 2\r\nok\r\n';
    await compareScript([setup, line.slice(0, 2_500), line.slice(2_500), 'version\r\n'], { versions: 1, gapMs: 30 });
  }, 20_000);

  it('a huge declared length is rejected without allocating it', async () => {
    const tgt = servers().target;
    const rssBeforeKb = tgt.rssKb();
    const outcome = await compareScript(['set k 0 0 4294967295\r\n', 'version\r\n'], { versions: 1 });
    expect(outcome.refReply.toString('latin1')).toMatch(/^CLIENT_ERROR bad command line format\r\nVERSION /);
    await compareScript(['set k 0 0 2147483647\r\nversion\r\n'], { versions: 1 });
    await expectAlive(tgt);
    const growthKb = tgt.rssKb() - rssBeforeKb;
    expect(growthKb, `RSS grew by ${growthKb} KiB`).toBeLessThan(64 * 1024);
  }, 20_000);

  it('a too-large declared length is swallowed without buffering it', async () => {
    const tgt = servers().target;
    const declared = 1_073_741_824; // 1 GiB: over -I, so the server must skip the data
    const chunkBytes = 1_048_576;
    const sentBytesMax = 96 * chunkBytes;
    const rssBeforeKb = tgt.rssKb();
    const client = await RawClient.connect(tgt.port);
    let peakGrowthKb = 0;
    try {
      await client.send(`set huge 0 0 ${declared}\r\n`);
      const chunk = Buffer.alloc(chunkBytes, 0x61);
      for (let sent = 0; sent < sentBytesMax && !client.closed; sent += chunkBytes) {
        await client.send(chunk);
        if (sent % (16 * chunkBytes) === 0) peakGrowthKb = Math.max(peakGrowthKb, tgt.rssKb() - rssBeforeKb);
      }
      peakGrowthKb = Math.max(peakGrowthKb, tgt.rssKb() - rssBeforeKb);
      // memcached answers once the whole value is swallowed; a server may answer earlier.
      const early = client.pending.toString('latin1');
      expect('SERVER_ERROR object too large for cache\r\n'.startsWith(early), `unexpected early reply ${show(early)}`).toBe(true);
    } finally {
      client.close();
    }
    expect(peakGrowthKb, `RSS grew by ${peakGrowthKb} KiB while receiving ${sentBytesMax} bytes of a 1 GiB value`).toBeLessThan(48 * 1024);
    await expectAlive(tgt);
  }, 30_000);

  it('quit closes after answering what came before it', async () => {
    const outcome = await compareScript(['get a\r\nquit\r\nget b\r\n'], { untilClose: true, timeoutMs: 3_000 });
    expect(outcome.refReply.toString('latin1')).toBe('END\r\n');
    expect(outcome.refClosed).toBe(true);
  }, 20_000);

  it('bytes with no newline at all keep the connection open until closed', async () => {
    const { reference: ref, target: tgt } = servers();
    for (const server of [ref, tgt]) {
      const client = await RawClient.connect(server.port);
      try {
        await client.send('get abc');
        const received = await client.drainFor(300);
        expect(show(received), `${server.kind}: reply before the line ended`).toBe(show(''));
        expect(client.closed, `${server.kind} closed a connection with an unfinished short line`).toBe(false);
        expect(await client.request('\r\n', lines(1))).toEqual(Buffer.from('END\r\n'));
      } finally {
        client.close();
      }
    }
  }, 20_000);
});

describe('the comparison itself', () => {
  const differs = (ref: string, tgt: string): boolean =>
    normalisePair(Buffer.from(ref, 'latin1'), Buffer.from(tgt, 'latin1'), new CasNames(), new CasNames()).difference !== null;

  it('ignores only CAS values, the version text and numeric space padding', () => {
    expect(differs('VALUE k 0 3 77\r\nabc\r\nEND\r\nVERSION 1.6.45\r\n', 'VALUE k 0 3 9001\r\nabc\r\nEND\r\nVERSION 0.1.0\r\n')).toBe(false);
    expect(differs('VALUE n 0 3\r\n99 \r\nEND\r\n', 'VALUE n 0 2\r\n99\r\nEND\r\n')).toBe(false);
  });

  it('detects one changed byte, a changed length, flags or key', () => {
    expect(differs('VALUE k 0 3 77\r\nabc\r\nEND\r\n', 'VALUE k 0 3 77\r\nabd\r\nEND\r\n')).toBe(true);
    expect(differs('VALUE k 0 3\r\nabc\r\nEND\r\n', 'VALUE k 1 3\r\nabc\r\nEND\r\n')).toBe(true);
    expect(differs('VALUE k 0 3\r\nabc\r\nEND\r\n', 'VALUE K 0 3\r\nabc\r\nEND\r\n')).toBe(true);
    expect(differs('STORED\r\n', 'STORED\n')).toBe(true);
    expect(differs('VALUE k 0 3\r\nab \r\nEND\r\n', 'VALUE k 0 2\r\nab\r\nEND\r\n')).toBe(true);
  });

  it('compares CAS identity: one value shown twice is not two distinct values', () => {
    expect(differs('VALUE a 0 1 5\r\nx\r\nVALUE b 0 1 5\r\ny\r\nEND\r\n', 'VALUE a 0 1 6\r\nx\r\nVALUE b 0 1 7\r\ny\r\nEND\r\n')).toBe(true);
    expect(differs('VALUE a 0 1 5\r\nx\r\nVALUE b 0 1 6\r\ny\r\nEND\r\n', 'VALUE a 0 1 8\r\nx\r\nVALUE b 0 1 8\r\ny\r\nEND\r\n')).toBe(true);
  });
});
