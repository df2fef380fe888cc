/**
 * The command table: every text-protocol command once, with memcached's token-count rules.
 * Dispatch, `stats` and tests read this table; the meta and binary protocols map onto the
 * same engine operations (see `Op`).
 *
 * Token counts follow memcached's convention: the command, its arguments, plus one terminal
 * token ("get a b" has 4). `counts` lists the exact allowed counts; `min`/`max` bound them.
 */

export const enum Op {
  Get, Gets, Gat, Gats,
  Set, Add, Replace, Append, Prepend, Cas,
  Incr, Decr, Delete, Touch,
  Stats, FlushAll, Version, Quit, Shutdown, Verbosity, CacheMemlimit,
  LruCrawler, Lru, Slabs, Watch,
  MetaGet, MetaSet, MetaDelete, MetaArithmetic, MetaNoop, MetaDebug,
  RefreshCerts,
  Extstore,
}

export interface CommandSpec {
  name: string;
  op: Op;
  /** Exact allowed token counts (memcached's WANT_TOKENS_OR). */
  counts?: number[];
  /** Inclusive bounds (WANT_TOKENS / WANT_TOKENS_MIN). */
  min?: number;
  max?: number;
}

export const COMMANDS: readonly CommandSpec[] = [
  { name: 'get', op: Op.Get, min: 3 },
  { name: 'bget', op: Op.Get, min: 3 },
  { name: 'gets', op: Op.Gets, min: 3 },
  { name: 'gat', op: Op.Gat, min: 3 },
  { name: 'gats', op: Op.Gats, min: 3 },
  { name: 'set', op: Op.Set, counts: [6, 7] },
  { name: 'add', op: Op.Add, counts: [6, 7] },
  { name: 'replace', op: Op.Replace, counts: [6, 7] },
  { name: 'append', op: Op.Append, counts: [6, 7] },
  { name: 'prepend', op: Op.Prepend, counts: [6, 7] },
  { name: 'cas', op: Op.Cas, counts: [7, 8] },
  { name: 'incr', op: Op.Incr, counts: [4, 5] },
  { name: 'decr', op: Op.Decr, counts: [4, 5] },
  { name: 'delete', op: Op.Delete, min: 3, max: 5 },
  { name: 'touch', op: Op.Touch, counts: [4, 5] },
  { name: 'stats', op: Op.Stats },
  { name: 'flush_all', op: Op.FlushAll, min: 2, max: 4 },
  { name: 'version', op: Op.Version },
  { name: 'quit', op: Op.Quit },
  { name: 'shutdown', op: Op.Shutdown },
  { name: 'verbosity', op: Op.Verbosity, counts: [3, 4] },
  { name: 'cache_memlimit', op: Op.CacheMemlimit, counts: [3, 4] },
  { name: 'lru_crawler', op: Op.LruCrawler },
  { name: 'lru', op: Op.Lru, min: 3 },
  { name: 'slabs', op: Op.Slabs },
  // memcached takes any number of stream names.
  { name: 'watch', op: Op.Watch },
  // memcached takes any number of tokens (and ignores them, noreply aside).
  { name: 'refresh_certs', op: Op.RefreshCerts },
  { name: 'extstore', op: Op.Extstore },
];

/** FNV-1a over bytes, used to find a command without making a string. */
export function nameHash(b: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5;
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}

export interface CommandEntry extends CommandSpec {
  bytes: Buffer;
}

/** Lookup from command-name bytes to its entry. */
export class CommandTable {
  private readonly byHash = new Map<number, CommandEntry[]>();

  constructor(specs: readonly CommandSpec[]) {
    for (const spec of specs) {
      const bytes = Buffer.from(spec.name, 'latin1');
      const h = nameHash(bytes, 0, bytes.length);
      const list = this.byHash.get(h) ?? [];
      list.push({ ...spec, bytes });
      this.byHash.set(h, list);
    }
  }

  find(b: Uint8Array, s: number, e: number): CommandEntry | undefined {
    const list = this.byHash.get(nameHash(b, s, e));
    if (list === undefined) return undefined;
    const n = e - s;
    for (const entry of list) {
      if (entry.bytes.length !== n) continue;
      let i = 0;
      while (i < n && entry.bytes[i] === b[s + i]) i++;
      if (i === n) return entry;
    }
    return undefined;
  }
}

/** memcached's WANT_TOKENS rules for an entry. */
export function tokenCountOk(entry: CommandSpec, ntokens: number): boolean {
  if (entry.counts !== undefined) return entry.counts.includes(ntokens);
  if (entry.min !== undefined && ntokens < entry.min) return false;
  if (entry.max !== undefined && ntokens > entry.max) return false;
  return true;
}
