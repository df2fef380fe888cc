/**
 * Reading memcached text-protocol reply streams: splitting them into reply units, counting
 * them, normalising what memcached documents as variable, and parsing `stats` output.
 *
 * A reply unit is one CRLF-terminated line, except that a `VALUE <key> <flags> <bytes>[ <cas>]`
 * line owns the following `<bytes>` of data and their CRLF, so data that happens to look like
 * a reply line is never mistaken for one.
 *
 * Normalised (documented as variable, protocol.txt):
 *   - CAS unique values: each server's values are renamed `#1`, `#2`, ... in order of first
 *     appearance, per server, so equal/unequal relations are still compared;
 *   - the text after `VERSION `;
 *   - trailing space padding of numeric values ("The number MAY be space-padded at the end"
 *     after incr/decr): a data block of digits followed by spaces loses the spaces.
 * Everything else is compared byte for byte.
 */

const CRLF = '\r\n';
const valueLinePattern = /^VALUE (\S+) (\d+) (\d+)(?: (\d+))?$/;
const paddedNumberPattern = /^([0-9]+) +$/;

export interface ReplyUnit {
  /** The line without CRLF (latin1: one char per byte). */
  line: string;
  /** For VALUE units: the data block without its CRLF. */
  data?: Buffer;
}

export interface ScanResult {
  units: ReplyUnit[];
  /** Bytes that do not (yet) form a complete unit. */
  rest: Buffer;
}

/** Splits `buf` into complete reply units; the incomplete tail is returned as `rest`. */
export function scanReplies(buf: Buffer): ScanResult {
  const units: ReplyUnit[] = [];
  let at = 0;
  while (at < buf.length) {
    const eol = buf.indexOf(CRLF, at, 'latin1');
    if (eol < 0) break;
    const line = buf.toString('latin1', at, eol);
    const value = valueLinePattern.exec(line);
    if (value !== null) {
      const dataBytes = Number(value[3]);
      const dataStart = eol + 2;
      const dataEnd = dataStart + dataBytes;
      if (dataEnd + 2 > buf.length) break;
      // A data block not followed by CRLF is malformed; keep it in the unit so the
      // comparison shows it rather than resynchronising silently.
      units.push({ line, data: buf.subarray(dataStart, dataEnd + 2) });
      at = dataEnd + 2;
      continue;
    }
    units.push({ line });
    at = eol + 2;
  }
  return { units, rest: buf.subarray(at) };
}

/** Number of complete `VERSION ...` reply lines in `buf` (outside data blocks). */
export function countVersionReplies(buf: Buffer): number {
  let count = 0;
  for (const unit of scanReplies(buf).units) if (unit.line.startsWith('VERSION ')) count++;
  return count;
}

/** Maps one server's CAS values to stable ids in order of first appearance. */
export class CasNames {
  private readonly idByValue = new Map<string, number>();
  private readonly valueById: string[] = [''];

  nameOf(value: string): string {
    let id = this.idByValue.get(value);
    if (id === undefined) {
      id = this.valueById.length;
      this.idByValue.set(value, id);
      this.valueById.push(value);
    }
    return `#${id}`;
  }

  /** The real CAS value behind id `id` (1-based), if this server has shown one. */
  valueOf(id: number): string | undefined {
    return this.valueById[id];
  }

  /** Number of ids assigned so far. */
  get count(): number {
    return this.valueById.length - 1;
  }
}

/** Normalises reply units to bytes (see the module comment for what is normalised). */
export function normaliseUnits(units: readonly ReplyUnit[], cas: CasNames): Buffer {
  const parts: Buffer[] = [];
  for (const unit of units) {
    if (unit.line.startsWith('VERSION ')) {
      parts.push(Buffer.from(`VERSION <version>${CRLF}`, 'latin1'));
      continue;
    }
    const value = unit.data === undefined ? null : valueLinePattern.exec(unit.line);
    if (value !== null && unit.data !== undefined) {
      let data = unit.data;
      let bytes = value[3];
      const body = data.subarray(0, data.length - 2).toString('latin1');
      const padded = paddedNumberPattern.exec(body);
      if (padded !== null && data.subarray(data.length - 2).toString('latin1') === CRLF) {
        data = Buffer.from(padded[1] + CRLF, 'latin1');
        bytes = String(padded[1].length);
      }
      const casPart = value[4] === undefined ? '' : ` ${cas.nameOf(value[4])}`;
      parts.push(Buffer.from(`VALUE ${value[1]} ${value[2]} ${bytes}${casPart}${CRLF}`, 'latin1'));
      parts.push(data);
      continue;
    }
    parts.push(Buffer.from(unit.line + CRLF, 'latin1'));
  }
  return Buffer.concat(parts);
}

/** Describes the first difference between two byte strings with some context. */
export interface Difference {
  /** Offset of the first differing byte. */
  offset: number;
  /** Up to `beforeBytes` equal bytes before the difference. */
  common: Buffer;
  /** Each side from the difference on, up to `afterBytes`. */
  a: Buffer;
  b: Buffer;
}

export function firstDifference(a: Buffer, b: Buffer, beforeBytes = 80, afterBytes = 160): Difference | null {
  const n = Math.min(a.length, b.length);
  let offset = 0;
  while (offset < n && a[offset] === b[offset]) offset++;
  if (offset === n && a.length === b.length) return null;
  return {
    offset,
    common: a.subarray(Math.max(0, offset - beforeBytes), offset),
    a: a.subarray(offset, Math.min(a.length, offset + afterBytes)),
    b: b.subarray(offset, Math.min(b.length, offset + afterBytes)),
  };
}

/** Parses `STAT <name> <value>` lines up to `END` into an ordered map. */
export function parseStats(reply: Buffer | string): Map<string, string> {
  const text = typeof reply === 'string' ? reply : reply.toString('latin1');
  const stats = new Map<string, string>();
  for (const line of text.split(CRLF)) {
    if (line === '' || line === 'END') continue;
    const match = /^STAT (\S+) ?(.*)$/.exec(line);
    if (match === null) throw new Error(`not a STAT line: ${JSON.stringify(line)}`);
    stats.set(match[1], match[2]);
  }
  return stats;
}
