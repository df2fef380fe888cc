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
    return this.counters(Buffer.from(key.buffer, key.byteOffset + start, i).toString('latin1'));
  }

  /** The counters of `prefix`, made if there is room (null past PREFIXES_MAX). */
  private counters(prefix: string): PrefixCounters | null {
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

  /**
   * A worker thread counts here and hands its counts to thread 0 (which
   * answers `stats detail dump`): what was counted since the last call, as
   * [prefix, get, hit, set, del, ...], and the table emptied.
   */
  drain(): (string | number)[] {
    const out: (string | number)[] = [];
    for (const [p, e] of this.table) out.push(p, e.get, e.hit, e.set, e.del);
    this.table.clear();
    return out;
  }

  /** Thread 0: counts another serving thread drained. */
  add(counts: readonly (string | number)[]): void {
    for (let i = 0; i + 4 < counts.length; i += 5) {
      const e = this.counters(counts[i] as string);
      if (e === null) continue;
      e.get += counts[i + 1] as number;
      e.hit += counts[i + 2] as number;
      e.set += counts[i + 3] as number;
      e.del += counts[i + 4] as number;
    }
  }

  /** Something was counted since the last drain (a worker thread). */
  get pending(): boolean {
    return this.table.size > 0;
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
