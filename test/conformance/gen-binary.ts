/**
 * Random binary-protocol request sequences for differential-binary.test.ts, built with the
 * encoders of test/protocol/binary-helpers.ts.
 *
 * Like gen.ts, no server state is modelled; the rules that keep memcached's answers
 * independent of timing:
 *   - expiry times are 0, at least 1000 s away, or absolute times long past (expired at once);
 *   - flush only without delay and only at the start of a sequence (the test does it);
 *   - incr/decr only touch the numeric keys, which only ever hold small decimal numbers
 *     (deltas and initial values stay small, far below 2^63), and are never appended to;
 *     GET of a decremented number may show memcached's space padding, normalised away;
 *   - the request CAS is 0, a bogus value, or a CAS the server showed earlier (per server,
 *     by first-seen order, so both servers get "the same" CAS).
 * Each batch ends with a NOOP carrying SENTINEL_OPAQUE, which also flushes quiet replies.
 */

import { Prng } from '../helpers/prng';
import { OP, incrExtras, req, setExtras, u32 } from '../protocol/binary-helpers';

export const SENTINEL_OPAQUE = 0xfeedf00d;

export interface BinCommand {
  label: string;
  /** Renders the request; `casOf(id)` is this server's CAS value shown as #id. */
  render(casOf: (id: number) => bigint): Buffer;
  /** Fixed length of the rendered request (CAS values are 8 bytes on every server). */
  length: number;
}

const plainKeys = ['k0', 'k1', 'k2', 'k3', 'user:1', 'K'.repeat(250), '\x00\x01\xff', 'sp ace\r\n'];
const numericKeys = ['n0', 'n1', 'n2'];
const numericValues = ['0', '1', '9', '10', '42', '99', '100', '007', '4294967295', '123456789012'];

export class BinaryGenerator {
  constructor(private readonly rng: Prng) {}

  private opaque(): number {
    return this.rng.chance(0.2) ? 0 : this.rng.u32() & 0x7fffffff;
  }

  private exptime(): number {
    return this.rng.weighted<() => number>([[5, () => 0], [3, () => this.rng.int(1000, 100_000)], [1, () => this.rng.int(2_592_001, 100_000_000)]])();
  }

  private flags(): number {
    return this.rng.pick([0, 0, 1, 42, 0xdeadbeef, 0xffffffff]);
  }

  private value(): Buffer {
    const length = this.rng.weighted([[2, 0], [10, this.rng.int(1, 30)], [3, this.rng.int(31, 2000)]] as const);
    return this.rng.bytes(length);
  }

  private cas(known: readonly number[]): ((casOf: (id: number) => bigint) => bigint) {
    const r = this.rng.float();
    if (r < 0.6 || known.length === 0) return () => 0n;
    if (r < 0.7) {
      const bogus = BigInt(this.rng.int(1, 1_000_000));
      return () => bogus;
    }
    const id = this.rng.pick(known.slice(-6));
    return (casOf) => casOf(id);
  }

  private make(label: string, build: (casOf: (id: number) => bigint) => Buffer): BinCommand {
    return { label, render: build, length: build(() => 1n).length };
  }

  next(known: readonly number[]): BinCommand {
    const numeric = this.rng.chance(0.3);
    const key = numeric ? this.rng.pick(numericKeys) : this.rng.pick(plainKeys);
    const opaque = this.opaque();
    const cas = this.cas(known);
    const quiet = this.rng.chance(0.3);
    const kind = this.rng.weighted<string>([
      [20, 'get'], [18, 'store'], [6, 'delete'], [numeric ? 14 : 0, 'arith'], [numeric ? 0 : 6, 'concat'],
      [4, 'touch'], [5, 'gat'], [3, 'noop'], [1, 'version'],
    ]);
    switch (kind) {
      case 'get': {
        const op = this.rng.pick([OP.GET, OP.GETQ, OP.GETK, OP.GETKQ]);
        return this.make(`get op=${op} ${JSON.stringify(key)}`, () => req({ op, key, opaque }));
      }
      case 'store': {
        const op = this.rng.pick(quiet ? [OP.SETQ, OP.ADDQ, OP.REPLACEQ] : [OP.SET, OP.SET, OP.ADD, OP.REPLACE]);
        const value = numeric ? Buffer.from(this.rng.pick(numericValues)) : this.value();
        const extras = setExtras(this.flags(), this.exptime());
        return this.make(`store op=${op} ${JSON.stringify(key)} len=${value.length}`, (c) => req({ op, key, value, extras, opaque, cas: cas(c) }));
      }
      case 'delete': {
        const op = quiet ? OP.DELETEQ : OP.DELETE;
        return this.make(`delete op=${op} ${JSON.stringify(key)}`, (c) => req({ op, key, opaque, cas: cas(c) }));
      }
      case 'arith': {
        const op = this.rng.pick(quiet ? [OP.INCRQ, OP.DECRQ] : [OP.INCR, OP.DECR]);
        const extras = incrExtras(BigInt(this.rng.pick([0, 1, 1, 2, 7, 100, 5000])), BigInt(this.rng.int(0, 1000)),
          this.rng.pick([0, 0xffffffff, 0xffffffff, this.rng.int(1000, 100_000)]));
        return this.make(`arith op=${op} ${key}`, (c) => req({ op, key, extras, opaque, cas: cas(c) }));
      }
      case 'concat': {
        const op = this.rng.pick(quiet ? [OP.APPENDQ, OP.PREPENDQ] : [OP.APPEND, OP.PREPEND]);
        const value = this.value();
        return this.make(`concat op=${op} ${JSON.stringify(key)}`, (c) => req({ op, key, value, opaque, cas: cas(c) }));
      }
      case 'touch': {
        const extras = u32(this.exptime());
        return this.make(`touch ${JSON.stringify(key)}`, () => req({ op: OP.TOUCH, key, extras, opaque }));
      }
      case 'gat': {
        const op = quiet ? OP.GATQ : OP.GAT;
        const extras = u32(this.exptime());
        return this.make(`gat op=${op} ${JSON.stringify(key)}`, () => req({ op, key, extras, opaque }));
      }
      case 'noop':
        return this.make('noop', () => req({ op: OP.NOOP, opaque }));
      default:
        return this.make('version', () => req({ op: OP.VERSION, opaque }));
    }
  }

  batch(known: readonly number[], sizeMax: number): BinCommand[] {
    const out: BinCommand[] = [];
    const size = this.rng.int(1, sizeMax);
    for (let i = 0; i < size; i++) out.push(this.next(known));
    out.push(binarySentinel());
    return out;
  }
}

export function binarySentinel(): BinCommand {
  const bytes = req({ op: OP.NOOP, opaque: SENTINEL_OPAQUE });
  return { label: 'noop (sentinel)', render: () => bytes, length: bytes.length };
}
