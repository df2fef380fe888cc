/**
 * Text-protocol commands: every command once, with its name. The request parser
 * (text/session.ts) recognises most commands by their length and bytes, as memcached 1.6.45's
 * process_request does; the rest are found by their first token in ADMIN_COMMANDS, as
 * memcached's table of other text commands. The latency histograms and `stats` name
 * commands from COMMANDS; the meta and binary protocols map onto the same engine operations
 * (see `Op`).
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
  DebugTime,
  DebugItem,
}

export interface CommandSpec {
  name: string;
  op: Op;
}

export const COMMANDS: readonly CommandSpec[] = [
  { name: 'get', op: Op.Get },
  { name: 'gets', op: Op.Gets },
  { name: 'gat', op: Op.Gat },
  { name: 'gats', op: Op.Gats },
  { name: 'set', op: Op.Set },
  { name: 'add', op: Op.Add },
  { name: 'replace', op: Op.Replace },
  { name: 'append', op: Op.Append },
  { name: 'prepend', op: Op.Prepend },
  { name: 'cas', op: Op.Cas },
  { name: 'incr', op: Op.Incr },
  { name: 'decr', op: Op.Decr },
  { name: 'delete', op: Op.Delete },
  { name: 'touch', op: Op.Touch },
  { name: 'stats', op: Op.Stats },
  { name: 'flush_all', op: Op.FlushAll },
  { name: 'version', op: Op.Version },
  { name: 'quit', op: Op.Quit },
  { name: 'shutdown', op: Op.Shutdown },
  { name: 'verbosity', op: Op.Verbosity },
  { name: 'cache_memlimit', op: Op.CacheMemlimit },
  { name: 'lru_crawler', op: Op.LruCrawler },
  { name: 'lru', op: Op.Lru },
  { name: 'slabs', op: Op.Slabs },
  { name: 'watch', op: Op.Watch },
  { name: 'mg', op: Op.MetaGet },
  { name: 'ms', op: Op.MetaSet },
  { name: 'md', op: Op.MetaDelete },
  { name: 'ma', op: Op.MetaArithmetic },
  { name: 'mn', op: Op.MetaNoop },
  { name: 'me', op: Op.MetaDebug },
  { name: 'refresh_certs', op: Op.RefreshCerts },
  { name: 'extstore', op: Op.Extstore },
  { name: 'debugtime', op: Op.DebugTime },
  { name: 'debugitem', op: Op.DebugItem },
];

/**
 * memcached 1.6.45's text_cmd_entries: commands the request parser does not know, found by
 * their first token. memcached's release build has these (with TLS and extstore compiled in).
 */
export const ADMIN_COMMANDS: ReadonlyMap<string, Op> = new Map([
  ['shutdown', Op.Shutdown],
  ['slabs', Op.Slabs],
  ['cache_memlimit', Op.CacheMemlimit],
  ['flush_all', Op.FlushAll],
  ['lru_crawler', Op.LruCrawler],
  ['verbosity', Op.Verbosity],
  ['lru', Op.Lru],
  ['extstore', Op.Extstore],
  ['refresh_certs', Op.RefreshCerts],
]);

/** memcached-debug's test commands this server has, only with `-o debug_commands`. */
export const DEBUG_COMMANDS: ReadonlyMap<string, Op> = new Map([['debugtime', Op.DebugTime], ['debugitem', Op.DebugItem]]);

/** The longest name in ADMIN_COMMANDS and DEBUG_COMMANDS. */
export const ADMIN_NAME_BYTES_MAX = Math.max(...[...ADMIN_COMMANDS.keys(), ...DEBUG_COMMANDS.keys()].map((n) => n.length));
