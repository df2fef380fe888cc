/**
 * Random meta-protocol command sequences (mg, ms, md, ma, mn) mixed with text commands, for
 * the differential test against memcached 1.6.45 (differential-meta.test.ts).
 *
 * Like gen.ts, the generator does not model server state; it draws commands over a small key
 * space and lets the reference define the answers. It keeps to the rules gen.ts documents
 * (no expiry near "now", no flush delays, numeric keys only ever hold small decimal numbers
 * and are never appended to, no '-' bytes, lines well under 2048 bytes, no key over 250
 * bytes), plus these for meta:
 *   - `t` (remaining TTL) is requested freely but normalised when positive (it depends on
 *     memcached's clock tick); `-1` (no expiry) is compared exactly. `l` (seconds since last
 *     access) is never requested, nor `h` (hit before): memcached's incr/decr sometimes
 *     replaces the item (resetting its fetched bit) depending on whether an unsent reply
 *     still references it, the same timing dependence as gen.ts's incr padding rule.
 *   - TTLs (T, N) are 0, -1 (expired at once) or at least 1000 s; R (recache) thresholds are
 *     either far below (<= 100) or far above (>= 100000) every TTL, so winning never depends
 *     on time.
 *   - ma only touches the numeric keys, with small deltas and initial values, so numbers stay
 *     far below 2^63; ms on numeric keys only stores small numbers in modes S/E/R.
 *   - every ms is followed by exactly its data block with a valid length.
 *   - numeric keys never carry item state beyond the value: no ms/mg/md with b, no I (stale),
 *     no N or R on mg (the win token), and no `s` on mg (the size shows incr padding).
 *     When memcached's incr/decr cannot
 *     rewrite the number in place (it grew, or an unsent reply holds the item) it allocates
 *     a new item that loses the stale/win bits and the binary-key flag; whether that happens
 *     depends on timing. (ma with b only echoes the key: covered.)
 * Every batch ends with `mn`, whose `MN` tells the reader the batch is complete.
 */

import { Prng } from '../helpers/prng';

/**
 * A base64 key whose bytes hold CR or LF. memcached does not mark an item autovivified by
 * mg N as having a binary key, so its `k` flag then prints the raw bytes and the reply line
 * breaks in two; the comparison cannot tell the CAS on the second half from data, so these
 * keys are never vivified by mg (a plain key with such bytes cannot be sent at all). Other
 * commands can leave such an item without the flag too (MCTS_SEED=1310998139 made one, and
 * both servers then echoed the raw bytes alike), so mg never asks these keys for `k`; the
 * echo of binary keys stays covered by the other binary keys.
 */
function lineBreaking(key: { text: string; base64: boolean }): boolean {
  return key.base64 && Buffer.from(key.text, 'base64').some((b) => b === 0x0d || b === 0x0a);
}
import type { GenCommand, Segment } from './gen';

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

export const metaKeys = {
  plain: ['k0', 'k1', 'k2', 'k3', 'k4', 'user:1001', 'a.b_c~d', 'K'.repeat(250)],
  numeric: ['n0', 'n1', 'n2'],
  /** Raw keys only reachable through base64 (b flag); k0 and k1 alias the plain items. */
  binary: [Buffer.from('k0'), Buffer.from('k1'), Buffer.from([0, 1, 2, 3]), Buffer.from([0xff, 0x20, 0x0d, 0x0a, 0x7f]), Buffer.from('sp ace')],
};

const numericValues = ['0', '1', '9', '10', '42', '99', '100', '007', '4294967295', '4294967296', '123456789012'];
const printable = latin1('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !"#$%&\'()*+,./:;<=>?@[\\]^_`{|}~');
const binaryAlphabet = Buffer.from(Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== 0x2d));
const opaqueAlphabet = latin1('abcdefghijklmnopqrstuvwxyz0123456789');

export class MetaGenerator {
  constructor(private readonly rng: Prng) {}

  private ttl(): string {
    return this.rng.weighted<() => string>([
      [4, () => '0'],
      [1, () => '-1'],
      [5, () => String(this.rng.int(1000, 100_000))],
    ])();
  }

  private opaque(): string {
    return 'O' + this.rng.bytes(this.rng.int(1, 12), opaqueAlphabet).toString('latin1');
  }

  /** A key, and whether it is sent base64 (with the b flag). */
  private key(kind: 'any' | 'numeric'): { text: string; base64: boolean; numeric: boolean } {
    if (kind === 'numeric' || this.rng.chance(0.2)) {
      const k = this.rng.pick(metaKeys.numeric);
      // ma may send numeric keys base64 (the b only shapes the reply); see the module comment.
      return kind === 'numeric' && this.rng.chance(0.15) ? { text: Buffer.from(k).toString('base64'), base64: true, numeric: true } : { text: k, base64: false, numeric: true };
    }
    if (this.rng.chance(0.15)) return { text: this.rng.pick(metaKeys.binary).toString('base64'), base64: true, numeric: false };
    return { text: this.rng.pick(metaKeys.plain), base64: false, numeric: false };
  }

  private casToken(known: readonly number[]): Segment[] {
    if (known.length > 0 && this.rng.chance(0.7)) {
      const recent = known.slice(-6);
      return [latin1('C'), { casId: this.rng.pick(recent) }];
    }
    return [latin1(`C${this.rng.pick(['1', '0', '999999', String(this.rng.int(1, 500))])}`)];
  }

  private value(numeric: boolean): Buffer {
    if (numeric) return latin1(this.rng.pick(numericValues));
    const length = this.rng.weighted([[3, 0], [10, this.rng.int(1, 20)], [3, this.rng.int(21, 300)], [1, this.rng.int(301, 5000)]] as const);
    return this.rng.bytes(length, this.rng.chance(0.7) ? printable : binaryAlphabet);
  }

  /** Picks some flags from `table` (each with its own chance), shuffled. */
  private flags(table: ReadonlyArray<readonly [number, () => Segment[]]>): Segment[][] {
    const chosen: Segment[][] = [];
    for (const [chance, make] of table) if (this.rng.chance(chance)) chosen.push(make());
    for (let i = chosen.length - 1; i > 0; i--) {
      const j = this.rng.int(0, i);
      [chosen[i], chosen[j]] = [chosen[j], chosen[i]];
    }
    return chosen;
  }

  private line(label: string, head: string, flags: Segment[][], data?: Buffer): GenCommand {
    const segments: Segment[] = [latin1(head)];
    for (const flag of flags) segments.push(latin1(' '), ...flag);
    segments.push(latin1('\r\n'));
    if (data !== undefined) segments.push(Buffer.concat([data, latin1('\r\n')]));
    return { label, segments: mergeBuffers(segments), versionReplies: 0 };
  }

  private mg(): GenCommand {
    const key = this.key('any');
    const f = (s: string) => () => [latin1(s)];
    const flags = this.flags([
      [0.6, f('v')], [lineBreaking(key) ? 0 : 0.4, f('k')], [0.4, f('c')], [0.3, f('f')], [key.numeric ? 0 : 0.3, f('s')], [0.2, f('t')],
      [0.15, () => [latin1(`T${this.ttl()}`)]], [key.numeric || lineBreaking(key) ? 0 : 0.15, () => [latin1(`N${this.ttl()}`)]],
      [key.numeric ? 0 : 0.1, () => [latin1(`R${this.rng.pick(['30', '100', '100000', '999999'])}`)]],
      [0.25, f('q')], [0.4, () => [latin1(this.opaque())]], [0.05, f('u')],
    ]);
    if (key.base64) flags.push([latin1('b')]);
    return this.line('mg', `mg ${key.text}`, flags);
  }

  private ms(known: readonly number[]): GenCommand {
    const key = this.key('any');
    const f = (s: string) => () => [latin1(s)];
    const modes = key.numeric ? ['S', 'E', 'R'] : ['S', 'E', 'A', 'P', 'R'];
    const flags = this.flags([
      [0.3, () => [latin1(`T${this.ttl()}`)]], [0.3, () => [latin1(`F${this.rng.pick(['0', '1', '42', '65535', '4294967295'])}`)]],
      [0.35, () => [latin1(`M${this.rng.pick(modes)}`)]], [0.25, () => this.casToken(known)], [key.numeric ? 0 : 0.1, f('I')],
      [0.3, f('c')], [0.2, f('k')], [0.25, f('q')], [0.3, () => [latin1(this.opaque())]],
      [key.numeric ? 0 : 0.05, () => [latin1(`N${this.ttl()}`)]],
    ]);
    if (key.base64) flags.push([latin1('b')]);
    const data = this.value(key.numeric);
    return this.line('ms', `ms ${key.text} ${data.length}`, flags, data);
  }

  private md(known: readonly number[]): GenCommand {
    const key = this.key('any');
    const f = (s: string) => () => [latin1(s)];
    const flags = this.flags([
      [key.numeric ? 0 : 0.25, f('I')], [0.2, () => [latin1(`T${this.rng.pick(['0', '30', '1000', '5000'])}`)]], [0.2, () => this.casToken(known)],
      [0.25, f('q')], [0.3, f('k')], [0.3, () => [latin1(this.opaque())]],
    ]);
    if (key.base64) flags.push([latin1('b')]);
    return this.line('md', `md ${key.text}`, flags);
  }

  private ma(known: readonly number[]): GenCommand {
    const key = this.key('numeric');
    const f = (s: string) => () => [latin1(s)];
    const flags = this.flags([
      [0.3, () => [latin1(`N${this.ttl()}`)]], [0.3, () => [latin1(`J${this.rng.int(0, 1000)}`)]],
      [0.5, () => [latin1(`D${this.rng.pick(['0', '1', '1', '2', '7', '100', '5000'])}`)]],
      [0.4, () => [latin1(`M${this.rng.pick(['I', 'i', '+', 'D', 'd', '-'])}`)]],
      [0.2, () => this.casToken(known)],
      [0.25, f('q')], [0.5, f('v')], [0.25, f('c')], [0.2, f('k')], [0.1, f('t')], [0.3, () => [latin1(this.opaque())]],
    ]);
    if (key.base64) flags.push([latin1('b')]);
    return this.line('ma', `ma ${key.text}`, flags);
  }

  private text(known: readonly number[]): GenCommand {
    const numeric = this.rng.chance(0.3);
    const key = numeric ? this.rng.pick(metaKeys.numeric) : this.rng.pick(metaKeys.plain);
    const kind = this.rng.pick(numeric ? ['set', 'get', 'gets', 'incr', 'decr', 'delete', 'touch', 'cas'] : ['set', 'add', 'append', 'get', 'gets', 'delete', 'touch', 'cas']);
    const exptime = (): string => this.rng.pick(['0', '0', '-1', String(this.rng.int(1000, 100_000))]);
    const noreply = this.rng.chance(0.1) ? ' noreply' : '';
    const storage = (cmd: string, cas: Segment[] = []): GenCommand => {
      const data = this.value(numeric);
      const head: Segment[] = [latin1(`${cmd} ${key} ${this.rng.pick(['0', '7', '4294967295'])} ${exptime()} ${data.length}`)];
      if (cas.length > 0) head.push(latin1(' '), ...cas);
      head.push(latin1(`${noreply}\r\n`), Buffer.concat([data, latin1('\r\n')]));
      return { label: cmd, segments: mergeBuffers(head), versionReplies: 0 };
    };
    const simple = (line: string): GenCommand => ({ label: kind, segments: [latin1(line + '\r\n')], versionReplies: 0 });
    switch (kind) {
      case 'set':
      case 'add':
      case 'append':
        return storage(kind);
      case 'cas': {
        const token = this.casToken(known);
        const first = token[0];
        return storage('cas', token.length === 1 && Buffer.isBuffer(first) ? [first.subarray(1)] : token.slice(1));
      }
      case 'get':
      case 'gets':
        return simple(`${kind} ${key}${this.rng.chance(0.3) ? ' ' + this.rng.pick(metaKeys.plain.slice(0, 5)) : ''}`);
      case 'incr':
      case 'decr':
        return simple(`${kind} ${key} ${this.rng.pick(['1', '5', '100'])}${noreply}`);
      case 'delete':
        return simple(`delete ${key}${noreply}`);
      default:
        return simple(`touch ${key} ${exptime()}${noreply}`);
    }
  }

  /** One command; `known` are CAS ids the reference has shown so far. */
  next(known: readonly number[]): GenCommand {
    return this.rng.weighted<() => GenCommand>([
      [30, () => this.mg()],
      [25, () => this.ms(known)],
      [10, () => this.md(known)],
      [12, () => this.ma(known)],
      [4, () => ({ label: 'mn', segments: [latin1('mn\r\n')], versionReplies: 0 })],
      [15, () => this.text(known)],
    ])();
  }

  /** A batch of 1..sizeMax commands, ending with the `mn` terminator. */
  batch(known: readonly number[], sizeMax: number): GenCommand[] {
    const out: GenCommand[] = [];
    const size = this.rng.int(1, sizeMax);
    for (let i = 0; i < size; i++) out.push(this.next(known));
    out.push(metaTerminator());
    return out;
  }
}

export function metaTerminator(): GenCommand {
  return { label: 'mn (terminator)', segments: [latin1('mn\r\n')], versionReplies: 0 };
}

/** Joins adjacent buffers so only CAS references stay separate segments. */
function mergeBuffers(segments: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) {
    const last = out[out.length - 1];
    if (Buffer.isBuffer(s) && last !== undefined && Buffer.isBuffer(last)) out[out.length - 1] = Buffer.concat([last, s]);
    else out.push(s);
  }
  return out;
}

// ---- reply scanning and normalisation --------------------------------------------------

export interface MetaUnit {
  line: string;
  data?: Buffer;
}

const vaPattern = /^VA (\d+)(.*)$/;
const valuePattern = /^VALUE (\S+) (\d+) (\d+)(?: (\d+))?$/;

/** Splits a mixed text/meta reply stream into units; VA and VALUE lines own their data. */
export function scanMeta(buf: Buffer): { units: MetaUnit[]; rest: Buffer } {
  const units: MetaUnit[] = [];
  let at = 0;
  while (at < buf.length) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) break;
    const line = buf.toString('latin1', at, eol);
    const va = vaPattern.exec(line);
    const value = va === null ? valuePattern.exec(line) : null;
    const size = va !== null ? Number(va[1]) : value !== null ? Number(value[3]) : -1;
    if (size >= 0) {
      const end = eol + 2 + size + 2;
      if (end > buf.length) break;
      units.push({ line, data: buf.subarray(eol + 2, end) });
      at = end;
      continue;
    }
    units.push({ line });
    at = eol + 2;
  }
  return { units, rest: buf.subarray(at) };
}

export function countTerminators(buf: Buffer): number {
  return scanMeta(buf).units.filter((u) => u.line === 'MN').length;
}

/**
 * Normalises units: CAS values (VALUE's fifth token, meta `c<cas>` return flags) renamed by
 * `casName` in order of first appearance; positive `t<ttl>` to `t<ttl>`; the VERSION text;
 * space padding after a decremented number (with the size token adjusted).
 */
export function normaliseMeta(units: readonly MetaUnit[], casName: (value: string) => string): Buffer {
  const parts: Buffer[] = [];
  for (const unit of units) {
    let data = unit.data;
    let line = unit.line;
    if (data !== undefined) {
      const padded = /^([0-9]+) +\r\n$/.exec(data.toString('latin1'));
      if (padded !== null) data = latin1(padded[1] + '\r\n');
    }
    const value = valuePattern.exec(line);
    if (line.startsWith('VERSION ')) {
      line = 'VERSION <version>';
    } else if (value !== null) {
      line = `VALUE ${value[1]} ${value[2]} ${data === undefined ? value[3] : data.length - 2}${value[4] === undefined ? '' : ' ' + casName(value[4])}`;
    } else if (/^(VA|HD|EN|NS|EX|NF) ?/.test(line)) {
      const words = line.split(' ');
      for (let i = 1; i < words.length; i++) {
        const w = words[i];
        if (i === 1 && words[0] === 'VA') {
          if (data !== undefined) words[i] = String(data.length - 2);
          continue;
        }
        if (/^c\d+$/.test(w)) words[i] = 'c' + casName(w.slice(1));
        else if (/^t\d+$/.test(w) && w !== 't0') words[i] = 't<ttl>';
      }
      line = words.join(' ');
    }
    parts.push(latin1(line + '\r\n'));
    if (data !== undefined) parts.push(data);
  }
  return Buffer.concat(parts);
}

/** Raw CAS values shown in `units`, in order (VALUE cas tokens and meta c flags). */
export function casValuesIn(units: readonly MetaUnit[]): string[] {
  const out: string[] = [];
  for (const unit of units) {
    const value = valuePattern.exec(unit.line);
    if (value !== null) {
      if (value[4] !== undefined) out.push(value[4]);
      continue;
    }
    if (!/^(VA|HD|EN|NS|EX|NF)( |$)/.test(unit.line)) continue;
    for (const w of unit.line.split(' ').slice(1)) if (/^c\d+$/.test(w)) out.push(w.slice(1));
  }
  return out;
}
