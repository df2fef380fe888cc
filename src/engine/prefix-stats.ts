/**
 * Per-prefix counters for `stats detail on|off|dump`, as memcached keeps them: a key's prefix
 * is everything before the first -D delimiter; keys without one are not counted. Only active
 * after `stats detail on`; the number of prefixes is capped so a hostile key space cannot
 * grow memory without bound.
 */
const PREFIXES_MAX = 10000;

interface PrefixCounters {
  get: number;
  hit: number;
  set: number;
  del: number;
}

export class PrefixStats {
  enabled = false;
  private readonly table = new Map<string, PrefixCounters>();

  constructor(private readonly delimiter: number) {}

  private entry(key: Uint8Array, start: number, len: number): PrefixCounters | null {
    let i = 0;
    while (i < len && key[start + i] !== this.delimiter && key[start + i] !== 0) i++;
    if (i === len || key[start + i] === 0) return null;
    const prefix = Buffer.from(key.buffer, key.byteOffset + start, i).toString('latin1');
    let e = this.table.get(prefix);
    if (!e) {
      if (this.table.size >= PREFIXES_MAX) return null;
      e = { get: 0, hit: 0, set: 0, del: 0 };
      this.table.set(prefix, e);
    }
    return e;
  }

  recordGet(key: Uint8Array, start: number, len: number, hit: boolean): void {
    const e = this.entry(key, start, len);
    if (!e) return;
    e.get++;
    if (hit) e.hit++;
  }

  recordSet(key: Uint8Array, start: number, len: number): void {
    const e = this.entry(key, start, len);
    if (e) e.set++;
  }

  recordDelete(key: Uint8Array, start: number, len: number): void {
    const e = this.entry(key, start, len);
    if (e) e.del++;
  }

  /** memcached's dump format, ending in END. */
  dump(): string {
    let s = '';
    for (const [p, e] of this.table) s += `PREFIX ${p} get ${e.get} hit ${e.hit} set ${e.set} del ${e.del}\r\n`;
    return s + 'END\r\n';
  }

  clear(): void {
    this.table.clear();
  }
}
