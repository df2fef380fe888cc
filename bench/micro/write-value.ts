/**
 * Micro benchmark: response building, `TextSession#writeValue` (src/protocol/text/session.ts):
 * "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" appended to the connection's Output,
 * the reply to every get hit. writeValue is private; reaching it here is deliberate, and the
 * benchmark fails loudly if it is renamed so that it gets updated with the code.
 */
import { makeFixture } from './session-fixture';
import { measure, runMain, type MicroOptions, type MicroResult } from './timing';

type WriteValue = (ref: number, key: Buffer, keyStart: number, nkey: number, withCas: boolean) => void;

export function run(opts: MicroOptions): MicroResult[] {
  const fx = makeFixture();
  const writeValue = (fx.session as unknown as { writeValue?: WriteValue }).writeValue;
  if (typeof writeValue !== 'function') throw new Error('TextSession#writeValue is gone: update bench/micro/write-value.ts');
  const results: MicroResult[] = [];
  for (const [valueBytes, withCas] of [
    [100, false],
    [100, true],
    [4096, false],
  ] as const) {
    const key = Buffer.from(`memtier-${valueBytes}`, 'latin1');
    const stored = fx.send(Buffer.concat([Buffer.from(`set ${key.toString('latin1')} 0 0 ${valueBytes}\r\n`), Buffer.alloc(valueBytes, 0x61), Buffer.from('\r\n')]));
    if (stored !== 'STORED\r\n') throw new Error(`set failed: ${JSON.stringify(stored)}`);
    const ref = fx.engine.get(key, 0, key.length);
    if (ref === 0) throw new Error('stored item not found');
    const expected = fx.send(`get${withCas ? 's' : ''} ${key.toString('latin1')}\r\n`).replace(/END\r\n$/, '');
    fx.out.reset();
    writeValue.call(fx.session, ref, key, 0, key.length, withCas);
    const got = fx.out.buf.toString('latin1', 0, fx.out.length);
    if (got !== expected) throw new Error(`writeValue wrote ${JSON.stringify(got.slice(0, 60))}, a get replies ${JSON.stringify(expected.slice(0, 60))}`);
    const out = fx.out;
    const session = fx.session;
    results.push(
      measure(
        `writeValue: ${valueBytes}-byte value${withCas ? ' with CAS (gets)' : ''}`,
        (n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) {
            out.length = 0;
            writeValue.call(session, ref, key, 0, key.length, withCas);
            acc += out.length;
          }
          return acc;
        },
        opts,
      ),
    );
    out.reset();
  }
  return results;
}

if (require.main === module) runMain('TextSession#writeValue: response building (src/protocol/text/session.ts)', run);
