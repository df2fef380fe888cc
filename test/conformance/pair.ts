/**
 * Drives the reference server (memcached 1.6.45) and the target with identical byte
 * streams and compares their replies after normalisation (see helpers/replies.ts).
 *
 * A batch always ends with the `version` sentinel; a reply stream is complete when it holds
 * as many `VERSION` replies as the batch asked for, so completion never depends on timing.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { RawClient, show } from '../helpers/client';
import { CasNames, countVersionReplies, firstDifference, normaliseUnits, scanReplies } from '../helpers/replies';
import type { ServerProcess } from '../helpers/servers';
import { sleep } from '../helpers/servers';
import { describeCommand, flatten, renderChunks, sentinel, type Cut, type GenCommand, type KnownCas } from './gen';

const batchReplyTimeoutMs = 10_000;
const valueLinePattern = /^VALUE (\S+) \d+ \d+ (\d+)$/;

export interface Side {
  name: string;
  server: ServerProcess;
  client: RawClient;
  cas: CasNames;
}

export class ConformanceError extends Error {}

export interface NormalisedPair {
  referenceNormalised: Buffer;
  targetNormalised: Buffer;
  difference: ReturnType<typeof firstDifference>;
}

/** Normalises two complete reply streams (each with its own CAS names) and diffs them. */
export function normalisePair(refReply: Buffer, targetReply: Buffer, refCas: CasNames, targetCas: CasNames): NormalisedPair {
  const refScan = scanReplies(refReply);
  const targetScan = scanReplies(targetReply);
  const referenceNormalised = Buffer.concat([normaliseUnits(refScan.units, refCas), refScan.rest]);
  const targetNormalised = Buffer.concat([normaliseUnits(targetScan.units, targetCas), targetScan.rest]);
  return { referenceNormalised, targetNormalised, difference: firstDifference(referenceNormalised, targetNormalised) };
}

/** One connection to each server, used for one command sequence. */
export class PairSession {
  /** CAS ids the reference has shown, with their keys, in order of first appearance. */
  readonly knownCas: KnownCas[] = [];
  /** Every batch exchanged and matched so far, one line each (the error shows the last three). */
  readonly history: string[] = [];

  private constructor(
    readonly reference: Side,
    readonly target: Side,
    private readonly context: string,
  ) {}

  static async open(reference: ServerProcess, target: ServerProcess, context: string): Promise<PairSession> {
    const [refClient, targetClient] = await Promise.all([RawClient.connect(reference.port), RawClient.connect(target.port)]);
    return new PairSession(
      { name: `reference (${reference.kind})`, server: reference, client: refClient, cas: new CasNames() },
      { name: `target (${target.kind})`, server: target, client: targetClient, cas: new CasNames() },
      context,
    );
  }

  close(): void {
    this.reference.client.close();
    this.target.client.close();
  }

  private async sendChunks(side: Side, chunks: readonly Buffer[], delaysMs: readonly number[]): Promise<void> {
    for (let i = 0; i < chunks.length; i++) {
      await side.client.send(chunks[i]);
      const delay = delaysMs[i] ?? 0;
      if (delay > 0) await sleep(delay);
    }
  }

  private casValueFor(side: Side): (id: number) => string {
    return (id) => {
      const value = side.cas.valueOf(id);
      if (value === undefined) throw new ConformanceError(`${side.name} never showed CAS #${id}`);
      return value;
    };
  }

  /**
   * Sends `commands` plus the sentinel to both servers, cut at `cuts`, with `delaysMs[i]`
   * after write i, reads both reply streams to completion and compares them.
   */
  async exchange(commands: readonly GenCommand[], cuts: readonly Cut[], delaysMs: readonly number[] = []): Promise<NormalisedPair> {
    const all = [...commands, sentinel()];
    const segments = flatten(all);
    const expectedVersions = all.reduce((n, c) => n + c.versionReplies, 0);
    const complete = (buf: Buffer): boolean => countVersionReplies(buf) >= expectedVersions;
    const run = async (side: Side): Promise<Buffer> => {
      const chunks = renderChunks(segments, cuts, this.casValueFor(side));
      this.trace(side, 'sent', Buffer.concat(chunks));
      const [, reply] = await Promise.all([
        this.sendChunks(side, chunks, delaysMs),
        side.client.readUntil(complete, batchReplyTimeoutMs),
      ]);
      return reply;
    };
    const describeBatch = (): string => all.map((c) => '    ' + describeCommand(c)).join('\n');
    const [refResult, targetResult] = await Promise.allSettled([run(this.reference), run(this.target)]);
    if (refResult.status === 'rejected') {
      throw new ConformanceError(
        `${this.context}: the reference failed (a test-generator bug?): ${String(refResult.reason)}\n  batch:\n${describeBatch()}`,
      );
    }
    if (targetResult.status === 'rejected') {
      throw new ConformanceError(
        `${this.context}: ${this.target.name} did not answer like the reference: ${String(targetResult.reason)}\n` +
          `  reference answered ${show(refResult.value)}\n  batch (cut at ${JSON.stringify(cuts)}):\n${describeBatch()}\n` +
          this.describeHistory(),
      );
    }
    this.trace(this.reference, 'received', refResult.value);
    this.trace(this.target, 'received', targetResult.value);
    const result = this.compare(refResult.value, targetResult.value, () => `batch (cut at ${JSON.stringify(cuts)}):\n${describeBatch()}`);
    this.history.push(all.map((c) => describeCommand(c, 80)).join(' | '));
    return result;
  }

  /** Normalises both reply streams, records CAS sightings, and throws on any difference. */
  compare(refReply: Buffer, targetReply: Buffer, describe: () => string): NormalisedPair {
    const result = normalisePair(refReply, targetReply, this.reference.cas, this.target.cas);
    for (const unit of scanReplies(refReply).units) {
      const match = valueLinePattern.exec(unit.line);
      if (match === null) continue;
      const id = Number(this.reference.cas.nameOf(match[2]).slice(1));
      if (!this.knownCas.some((k) => k.id === id)) this.knownCas.push({ id, key: match[1] });
    }
    const diff = result.difference;
    if (diff === null) return result;
    throw new ConformanceError(
      `${this.context}: replies differ at normalised byte ${diff.offset}\n` +
        `  after:     ${show(diff.common)}\n  reference: ${show(diff.a)}\n  target:    ${show(diff.b)}\n` +
        `  full reference reply: ${show(refReply, 1_500)}\n  full target reply:    ${show(targetReply, 1_500)}\n` +
        `  ${describe()}\n${this.describeHistory()}`,
    );
  }

  /** With MCTS_TRACE_DIR set, appends every byte sent and received to one file per side. */
  private trace(side: Side, what: string, bytes: Buffer): void {
    const dir = process.env.MCTS_TRACE_DIR;
    if (dir === undefined || dir === '') return;
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${this.context.replace(/[^A-Za-z0-9]+/g, '_').slice(0, 80)}.${side === this.reference ? 'reference' : 'target'}.log`);
    fs.appendFileSync(file, `=== ${what} ${bytes.length}\n${show(bytes, 20_000)}\n`);
  }

  private describeHistory(): string {
    if (this.history.length === 0) return '';
    return '  previous batches (most recent last):\n' + this.history.slice(-3).map((h) => '    ' + h.slice(0, 1_000)).join('\n');
  }
}

export interface ScriptOutcome {
  reply: Buffer;
  closed: boolean;
}

/**
 * Runs a fixed script (already split into writes) on a fresh connection to `server`.
 * `untilClose`: read until the server closes (bounded); otherwise the script must end with
 * commands that produce `versions` VERSION replies.
 */
export async function runScript(
  server: ServerProcess,
  writes: ReadonlyArray<Buffer | string>,
  options: { untilClose?: boolean; versions?: number; timeoutMs?: number; gapMs?: number } = {},
): Promise<ScriptOutcome> {
  const client = await RawClient.connect(server.port);
  try {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const sender = (async () => {
      for (const w of writes) {
        if (client.closed) break;
        try {
          await client.send(w);
        } catch {
          break; // The server may close while we still write; the outcome records it.
        }
        if (options.gapMs !== undefined && options.gapMs > 0) await sleep(options.gapMs);
      }
    })();
    let outcome: ScriptOutcome;
    if (options.untilClose === true) {
      const { closed, received } = await client.waitForClose(timeoutMs);
      outcome = { reply: received, closed };
    } else {
      const versions = options.versions ?? 1;
      const reply = await client.readUntil((buf) => countVersionReplies(buf) >= versions, timeoutMs);
      outcome = { reply, closed: false };
    }
    await sender;
    return outcome;
  } finally {
    client.close();
  }
}
