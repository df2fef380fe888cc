/**
 * Text-protocol administrative commands: stats, flush_all, version, verbosity, shutdown,
 * cache_memlimit, lru_crawler, lru, slabs, refresh_certs. Rare and not on the hot path, so these favour
 * clarity over avoiding allocation.
 */
import {
  connsStats, extstoreStats, generalStats, itemsStats, settingsStats, sizesStats, slabsStats,
  type StatSink, type StatsContext,
} from '../../engine/stats';
import { ItemView } from '../../engine/item-view';
import { type ExtstoreSetting } from '../../engine/tuning';
import { WATCH_STREAMS, LOG_FETCHERS } from '../../metrics/logger';
import { MEMCACHED_COMPAT_VERSION } from '../../version';
import { Op } from '../commands';
import { parseU32, parsed, tokI32, tokI64, tokU32 } from '../numbers';
import { DebugClock } from '../../engine/debug-clock';
import { FeedStatus } from '../session';
import { R, type TextRequest } from './request';

export interface AdminHooks {
  stats: StatsContext;
  /** `shutdown` (-A): stop the server (graceful = SIGUSR1 semantics). */
  shutdown(graceful: boolean): void;
  /**
   * `refresh_certs`: reload the TLS certificates (NetworkHandle.reloadCertificates). Returns
   * null on success, else memcached's error text without CRLF. Absent: TLS is not enabled.
   */
  refreshCerts?: () => string | null;
  /**
   * A worker thread: run this request line (CRLF-terminated) on thread 0, which owns the
   * background work, the tuning and every listener's state, and return its reply bytes.
   * Absent: run here.
   */
  forward?: (request: Buffer, pipelined: boolean) => Buffer;
  /** Settings may have changed (runtime tuning): thread 0 tells the others. */
  changed?: () => void;
}

/**
 * Commands a worker thread hands to thread 0: they read or change what the
 * first thread owns (stats of the background work, tuning, crawler, mover, extstore, TLS).
 * The data commands, flush_all and version run on every thread.
 */
const FORWARDED: ReadonlySet<Op> = new Set([
  Op.Stats, Op.Verbosity, Op.Shutdown, Op.CacheMemlimit, Op.LruCrawler, Op.Lru, Op.Slabs,
  Op.RefreshCerts, Op.Extstore, Op.DebugTime, Op.DebugItem,
]);

/** memcached's refresh_certs reply when TLS is off (net/tls.ts TLS_NOT_ENABLED). */
const TLS_NOT_ENABLED = 'Error TLS not enabled';

/** memcached caps a cachedump reply at 2 MiB. */
const CACHEDUMP_BYTES_MAX = 2 * 1024 * 1024;
/** memcached's MAX_NUMBER_OF_SLAB_CLASSES. */
const SLAB_CLASS_IDS = 64;

export function runAdmin(s: TextRequest, op: Op, hooks: AdminHooks): void {
  if (FORWARDED.has(op)) {
    if (hooks.forward !== undefined) {
      const line = s.line.subarray(s.tokStart[0], s.tokEnd[s.ntokens - 1]);
      // `pipelined`: replies of earlier commands of this read are waiting (metadump and watch
      // refuse to follow them, as memcached).
      const reply = hooks.forward(Buffer.concat([line, CRLF]), s.out.length > 0);
      s.out.bytes(reply, 0, reply.length);
      return;
    }
    runAdminHere(s, op, hooks);
    // `stats detail on|off` and every tuning command change settings; telling the other
    // threads after each of these commands costs little (they are rare).
    hooks.changed?.();
    return;
  }
  runAdminHere(s, op, hooks);
}

const CRLF = Buffer.from('\r\n', 'latin1');

function runAdminHere(s: TextRequest, op: Op, hooks: AdminHooks): void {
  switch (op) {
    case Op.Stats: return stats(s, hooks.stats);
    case Op.FlushAll: return flushAll(s);
    case Op.Version: return s.replyString('VERSION ' + MEMCACHED_COMPAT_VERSION);
    case Op.Verbosity: return verbosity(s);
    case Op.Shutdown: return shutdown(s, hooks);
    case Op.CacheMemlimit: return memlimit(s);
    case Op.LruCrawler: return lruCrawler(s);
    case Op.Lru: return lru(s);
    case Op.Slabs: return slabs(s);
    case Op.Watch: return watch(s);
    case Op.RefreshCerts: return refreshCerts(s, hooks);
    case Op.Extstore: return extstoreCommand(s);
    case Op.DebugTime: return debugTime(s);
    case Op.DebugItem: return debugItem(s);
    default: return s.reply(R.ERROR);
  }
}

function statLines(s: TextRequest): StatSink {
  return (name, value) => {
    s.out.ascii(`STAT ${name} ${value}\r\n`);
  };
}

/**
 * memcached 1.6.45's process_stat: a subcommand may be abbreviated ("stats s" is "stats
 * settings": reset, detail, settings, cachedump, conns, extstore are tried in this order);
 * items, slabs and sizes must be spelled out.
 */
function stats(s: TextRequest, ctx: StatsContext): void {
  const engine = s.engine;
  if (s.ntokens === 1) {
    generalStats(ctx, statLines(s));
    s.out.bytes(R.END, 0, 5);
    return;
  }
  if (s.tokPrefixOf(1, 'reset')) {
    engine.resetAllStats();
    return s.replyString('RESET');
  }
  if (s.tokPrefixOf(1, 'detail')) {
    // -X (dump_enabled off) blocks stats detail too since memcached 1.6.19
    if (!engine.settings.dumpEnabled) return s.replyString('CLIENT_ERROR stats detail not allowed');
    // memcached matches "stats detail" without an argument against its own first token.
    const arg = s.ntokens < 3 ? 0 : 2;
    if (s.tokPrefixOf(arg, 'on') || s.tokPrefixOf(arg, 'off')) {
      engine.tuning.detailStats(s.tokPrefixOf(arg, 'on'));
      return s.reply(R.OK);
    }
    if (s.tokPrefixOf(arg, 'dump')) return s.out.ascii(engine.detail.dump());
    return s.replyString('CLIENT_ERROR usage: stats detail on|off|dump');
  }
  if (s.tokPrefixOf(1, 'settings')) settingsStats(ctx, statLines(s));
  else if (s.tokPrefixOf(1, 'cachedump')) return cachedump(s);
  else if (s.tokPrefixOf(1, 'conns')) connsStats(ctx, statLines(s));
  else if (s.tokPrefixOf(1, 'extstore')) extstoreStats(ctx, statLines(s));
  else if (s.tokEquals(1, ITEMS)) itemsStats(ctx, statLines(s));
  else if (s.tokEquals(1, SLABS)) slabsStats(ctx, statLines(s));
  else if (s.tokEquals(1, SIZES)) sizesStats(ctx, statLines(s));
  else return s.reply(R.ERROR);
  s.out.bytes(R.END, 0, 5);
}

const ITEMS = Buffer.from('items', 'latin1');
const SLABS = Buffer.from('slabs', 'latin1');
const SIZES = Buffer.from('sizes', 'latin1');

function cachedump(s: TextRequest): void {
  const engine = s.engine;
  if (!engine.settings.dumpEnabled) return s.replyString('CLIENT_ERROR stats cachedump not allowed');
  if (s.ntokens < 4) return s.replyString('CLIENT_ERROR bad command line');
  if (!tokU32(s.line, s.tokStart[2], s.tokEnd[2])) return s.replyString('CLIENT_ERROR bad command line format');
  const id = parsed.value;
  if (!tokU32(s.line, s.tokStart[3], s.tokEnd[3])) return s.replyString('CLIENT_ERROR bad command line format');
  const limit = parsed.value;
  if (id >= SLAB_CLASS_IDS) return s.replyString('CLIENT_ERROR Illegal slab id');
  const started = engine.clock.processStartedUnix;
  let text = '';
  let shown = 0;
  engine.dumpColdList(new ItemView(), id, (v) => {
    if (limit !== 0 && shown >= limit) return false;
    // memcached leaves out binary keys, and prints a key as a C string (up to a NUL byte).
    if (v.keyBinary) return true;
    const key = Buffer.from(v.keyBuf.subarray(v.keyStart, v.keyStart + v.keyLen)).toString('latin1');
    const nul = key.indexOf('\0');
    const line = `ITEM ${nul < 0 ? key : key.slice(0, nul)} [${v.nbytes} b; ${v.exptime === 0 ? 0 : v.exptime + started} s]\r\n`;
    if (text.length + line.length + 6 > CACHEDUMP_BYTES_MAX) return false;
    text += line;
    shown++;
    return true;
  });
  s.out.ascii(text + 'END\r\n');
}

/** flush_all [delay] [noreply]: counted even when refused. */
function flushAll(s: TextRequest): void {
  const engine = s.engine;
  engine.stats.cmd_flush++;
  if (!engine.settings.flushEnabled) return s.replyString('CLIENT_ERROR flush_all not allowed');
  let delay = 0;
  if (s.ntokens !== (s.noreplyGiven ? 2 : 1)) {
    if (!tokI32(s.line, s.tokStart[1], s.tokEnd[1])) return s.reply(R.BAD_EXPTIME);
    delay = parsed.value;
  }
  engine.flushAll(delay);
  s.reply(R.OK);
}

function verbosity(s: TextRequest): void {
  if (s.ntokens < 2 || !tokU32(s.line, s.tokStart[1], s.tokEnd[1])) return s.reply(R.BAD_FORMAT);
  s.engine.tuning.setVerbosity(parsed.value);
  s.reply(R.OK);
}

function shutdown(s: TextRequest, hooks: AdminHooks): void {
  if (!s.engine.settings.shutdownEnabled) return s.replyString('SERVER_ERROR: shutdown not enabled');
  if (s.ntokens === 1) {
    s.status = FeedStatus.Close;
    hooks.shutdown(false);
  } else if (s.ntokens === 2 && s.tokPrefixOf(1, 'graceful')) {
    s.status = FeedStatus.Close;
    hooks.shutdown(true);
  } else {
    s.replyString('CLIENT_ERROR invalid shutdown mode');
  }
}

/**
 * memcached-debug's `debugtime <seconds>|p|r` (only with -o debug_commands): moves the server
 * clock by a number of seconds, or pauses (p) and resumes (r) it. Its tests use it to expire
 * items without waiting.
 */
function debugTime(s: TextRequest): void {
  const clock = s.engine.clock;
  if (s.ntokens < 2 || !(clock instanceof DebugClock)) return s.reply(R.ERROR);
  if (s.tokPrefixOf(1, 'p')) {
    clock.pause();
  } else if (s.tokPrefixOf(1, 'r')) {
    clock.resume();
  } else {
    if (!tokI64(s.line, s.tokStart[1], s.tokEnd[1])) return s.reply(R.ERROR);
    clock.shift(parsed.value);
  }
  s.reply(R.OK);
}

/**
 * memcached-debug's `debugitem ref <key>` / `debugitem unref reffed|<key>` (only with -o
 * debug_commands): hold a reference on an item the way a reply in flight does, so its memory
 * is not reused after it is unlinked and compaction must give it a new header item instead
 * of updating it in place (memcached's "realloc rescue", which its extstore.t looks for).
 * `ref` keeps the item in this connection's one slot; `unref reffed` drops that reference,
 * `unref <key>` one on the item the key now names. `lock`/`unlock` (an item lock held across
 * commands) are not offered: ERROR.
 */
function debugItem(s: TextRequest): void {
  if (s.ntokens < 3) return s.reply(R.ERROR);
  const start = s.tokStart[2];
  const len = s.tokEnd[2] - start;
  const debug = s.engine.debugRefs;
  if (s.tokPrefixOf(1, 'lock') || s.tokPrefixOf(1, 'unlock')) return s.reply(R.ERROR);
  if (s.tokPrefixOf(1, 'ref')) {
    if (!debug.ref(s.conn.id, s.line, start, len)) return s.replyString('MISS');
  } else if (s.tokPrefixOf(1, 'unref')) {
    if (len === 6 && s.line.toString('latin1', start, start + 6) === 'reffed') debug.unrefSlot(s.conn.id);
    else if (!debug.unrefKey(s.line, start, len)) return s.replyString('MISS');
  } else {
    return s.reply(R.ERROR);
  }
  s.reply(R.OK);
}

/**
 * `extstore <setting> <value>`: memcached's runtime tuning (process_extstore_command). It
 * works whether or not extstore is enabled and answers OK or ERROR; a value that does not
 * parse leaves the setting alone.
 */
function extstoreCommand(s: TextRequest): void {
  const tuning = s.engine.tuning;
  const nt = s.ntokens;
  const u32 = (name: ExtstoreSetting): boolean => {
    if (!tokU32(s.line, s.tokStart[2], s.tokEnd[2])) return false;
    tuning.extstore(name, parsed.value);
    return true;
  };
  let ok: boolean;
  if (nt < 3) {
    ok = false;
  } else if (s.tokPrefixOf(1, 'free_memchunks') && nt > 3) {
    // Deprecated and ignored by memcached, but still checked.
    ok = tokU32(s.line, s.tokStart[2], s.tokEnd[2]) && parsed.value < SLAB_CLASS_IDS &&
      tokU32(s.line, s.tokStart[3], s.tokEnd[3]);
  } else if (s.tokPrefixOf(1, 'item_size')) {
    ok = u32('item_size');
  } else if (s.tokPrefixOf(1, 'item_age')) {
    ok = u32('item_age');
  } else if (s.tokPrefixOf(1, 'low_ttl')) {
    ok = u32('low_ttl');
  } else if (s.tokPrefixOf(1, 'recache_rate')) {
    ok = u32('recache_rate');
  } else if (s.tokPrefixOf(1, 'compact_under')) {
    ok = u32('compact_under');
  } else if (s.tokPrefixOf(1, 'drop_under')) {
    ok = u32('drop_under');
  } else if (s.tokPrefixOf(1, 'max_sleep')) {
    ok = u32('max_sleep');
  } else if (s.tokPrefixOf(1, 'max_frag')) {
    const v = tokDouble(s, 2);
    ok = v !== null;
    if (v !== null) tuning.extstore('max_frag', v);
  } else if (s.tokPrefixOf(1, 'drop_unread')) {
    ok = u32('drop_unread');
  } else {
    ok = false;
  }
  s.reply(ok ? R.OK : R.ERROR);
}

/**
 * memcached's mc_toktod: strtod over the token (at most 31 bytes), which must be a whole
 * number as strtod reads it. Null when it is not.
 */
function tokDouble(s: TextRequest, i: number): number | null {
  if (i >= s.ntokens || s.tokLen(i) > 31) return null;
  const text = s.tokString(i);
  if (!/^[\t\n\v\f\r ]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
    if (/^[\t\n\v\f\r ]*[+-]?(inf|infinity|nan)$/i.test(text)) return Number(text.trim().replace(/^([+-]?)inf(inity)?$/i, '$1Infinity'));
    return null;
  }
  const v = Number(text.trim());
  return Number.isFinite(v) ? v : null;
}

/** memcached: OK (noreply applies), or the error text (written even with noreply). */
function refreshCerts(s: TextRequest, hooks: AdminHooks): void {
  const error = hooks.refreshCerts === undefined ? TLS_NOT_ENABLED : hooks.refreshCerts();
  if (error === null) return s.reply(R.OK);
  s.out.ascii(error);
  s.out.crlf();
}

function memlimit(s: TextRequest): void {
  if (s.ntokens < 2 || !tokU32(s.line, s.tokStart[1], s.tokEnd[1])) return s.reply(R.ERROR);
  const mb = parsed.value;
  if (mb < 8) return s.replyString('MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m');
  if (mb > 1000000000) return s.replyString('MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes');
  const engine = s.engine;
  // The arena reserved at startup bounds how far the limit can be raised (doc/store.md).
  if (!engine.tuning.memoryLimit(mb * 1024 * 1024)) {
    return s.replyString('MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust');
  }
  engine.log(1, `maxbytes adjusted to ${mb}m`);
  s.reply(R.OK);
}

/** memcached's class list of lru_crawler: "all", "hash", or ids from 1 to 63 joined by ','. */
function crawlerClasses(arg: string): Uint8Array | null | 'hash' | 'bad' {
  if (arg === 'all') return null;
  if (arg === 'hash') return 'hash';
  const mask = new Uint8Array(SLAB_CLASS_IDS);
  for (const part of arg.split(',')) {
    if (part === '') continue; // strtok skips empty fields
    const id = parseU32(Buffer.from(part, 'latin1'), 0, part.length, true) ? parsed.value : -1;
    if (id < 1 || id >= SLAB_CLASS_IDS) return 'bad';
    mask[id] = 1;
  }
  return mask;
}

/**
 * memcached 1.6.45's process_lru_crawler_command: crawl, metadump, mgdump, tocrawl, sleep,
 * enable, disable (subcommands may be abbreviated).
 */
function lruCrawler(s: TextRequest): void {
  const engine = s.engine;
  const nt = s.ntokens;
  if (nt === 3 && s.tokPrefixOf(1, 'crawl')) {
    if (!engine.crawlerEnabled) return s.replyString('CLIENT_ERROR lru crawler disabled');
    const classes = crawlerClasses(s.tokString(2).slice(0, 511));
    if (classes === 'bad') return s.replyString('BADCLASS invalid class id');
    // memcached's expiry crawl cannot walk the hash table
    if (classes === 'hash') return s.replyString('ERROR an unknown error happened');
    if (classes !== null && !classes.some((v) => v !== 0)) return s.replyString('NOTSTARTED no items to crawl');
    if (!engine.crawl(classes)) return s.replyString('BUSY currently processing crawler request');
    return s.reply(R.OK);
  }
  const dump = nt === 3 && s.tokPrefixOf(1, 'metadump') ? 'metadump' : nt === 3 && s.tokPrefixOf(1, 'mgdump') ? 'mgdump' : null;
  if (dump !== null) {
    if (!engine.crawlerEnabled) return s.replyString('CLIENT_ERROR lru crawler disabled');
    if (!engine.settings.dumpEnabled) {
      return s.replyString(dump === 'metadump' ? 'ERROR metadump not allowed' : 'ERROR key dump not allowed');
    }
    if (s.out.length > 0) return s.replyString(`ERROR cannot pipeline other commands before ${dump}`);
    const classes = crawlerClasses(s.tokString(2).slice(0, 511));
    if (classes === 'bad') return s.replyString('BADCLASS invalid class id');
    if (classes !== null && classes !== 'hash' && !classes.some((v) => v !== 0)) {
      return s.replyString('NOTSTARTED no items to crawl');
    }
    return itemDump(s, classes === 'hash' ? null : classes, dump === 'mgdump');
  }
  if (nt === 3 && (s.tokPrefixOf(1, 'tocrawl') || s.tokPrefixOf(1, 'sleep'))) {
    const tocrawl = s.tokPrefixOf(1, 'tocrawl');
    if (!tokU32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.BAD_FORMAT);
    if (tocrawl) engine.tuning.crawlerToCrawl(parsed.value);
    else if (!engine.tuning.crawlerSleep(parsed.value)) return s.replyString('CLIENT_ERROR sleep must be one second or less');
    return s.reply(R.OK);
  }
  if (nt === 2) {
    if (s.tokPrefixOf(1, 'enable')) {
      // memcached cannot start a crawler thread that is already running
      if (!engine.tuning.crawlerEnabled(true)) return s.replyString('ERROR failed to start lru crawler thread');
      return s.reply(R.OK);
    }
    if (s.tokPrefixOf(1, 'disable')) {
      engine.tuning.crawlerEnabled(false);
      return s.reply(R.OK);
    }
  }
  s.reply(R.ERROR);
}

/** memcached's uri_encode: everything but [A-Za-z0-9-._~] as %XX. */
function uriEncode(key: string): string {
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    const plain = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ||
      c === 45 || c === 46 || c === 95 || c === 126;
    out += plain ? key[i] : '%' + c.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/**
 * lru_crawler metadump / mgdump: "OK", one line per live item, then "END" (metadump: a
 * key=value line ending in a space and a bare LF, as memcached writes it) or "EN" (mgdump:
 * an "mg <key>" line, base64 and " b" for binary keys). Produced in one pass.
 */
function itemDump(s: TextRequest, classes: Uint8Array | null, mg: boolean): void {
  const engine = s.engine;
  const started = engine.clock.processStartedUnix;
  const out = s.out;
  out.bytes(R.OK, 0, R.OK.length);
  engine.dumpLiveItems(new ItemView(), classes, (v) => {
    const key = v.keyBuf.subarray(v.keyStart, v.keyStart + v.keyLen);
    if (mg) {
      out.ascii('mg ');
      if (v.keyBinary) {
        out.ascii(Buffer.from(key).toString('base64'));
        out.ascii(' b\r\n');
      } else {
        out.bytes(v.keyBuf, v.keyStart, v.keyStart + v.keyLen);
        out.crlf();
      }
      return;
    }
    out.ascii(`key=${uriEncode(Buffer.from(key).toString('latin1'))} exp=${v.exptime === 0 ? -1 : v.exptime + started} ` +
      `la=${v.lastAccess + started} cas=${v.cas} fetch=${v.fetched ? 'yes' : 'no'} ` +
      `cls=${v.cls} size=${v.memcachedSize} flags=${v.flags} \n`);
  });
  out.ascii(mg ? 'EN\r\n' : 'END\r\n');
}

/** `lru tune|mode|temp_ttl`: runtime LRU tuning, as memcached's process_lru_command. */
function lru(s: TextRequest): void {
  const set = s.engine.settings;
  const tuning = s.engine.tuning;
  const nt = s.ntokens;
  if (nt >= 2 && s.tokPrefixOf(1, 'tune') && nt >= 6) {
    const hot = tokU32(s.line, s.tokStart[2], s.tokEnd[2]) ? parsed.value : -1;
    const warm = tokU32(s.line, s.tokStart[3], s.tokEnd[3]) ? parsed.value : -1;
    const hotF = tokDouble(s, 4);
    const warmF = tokDouble(s, 5);
    if (hot < 0 || warm < 0 || hotF === null || warmF === null) return s.reply(R.ERROR);
    const error = tuning.lruTune(hot, warm, hotF, warmF);
    return error === null ? s.reply(R.OK) : s.replyString(error);
  }
  if (nt >= 3 && s.tokPrefixOf(1, 'mode') && set.lruMaintainerThread) {
    if (s.tokPrefixOf(2, 'flat')) tuning.lruMode(false);
    else if (s.tokPrefixOf(2, 'segmented')) tuning.lruMode(true);
    else return s.reply(R.ERROR);
    return s.reply(R.OK);
  }
  if (nt >= 3 && s.tokPrefixOf(1, 'temp_ttl') && set.lruMaintainerThread) {
    if (!tokI32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.ERROR);
    tuning.lruTempTtl(parsed.value);
    return s.reply(R.OK);
  }
  s.reply(R.ERROR);
}

/** `slabs reassign <src> <dst>` and `slabs automove <0|1|2>|ratio <r>|window <n>`, as memcached. */
function slabs(s: TextRequest): void {
  const engine = s.engine;
  const nt = s.ntokens;
  if (nt === 4 && s.tokPrefixOf(1, 'reassign')) {
    if (!engine.settings.slabReassign) return s.replyString('CLIENT_ERROR slab reassignment disabled');
    if (!tokI32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.BAD_FORMAT);
    const src = parsed.value;
    if (!tokI32(s.line, s.tokStart[3], s.tokEnd[3])) return s.reply(R.BAD_FORMAT);
    return s.replyString(REASSIGN_REPLIES[engine.reassignPage(src, parsed.value)]);
  }
  if (nt >= 3 && s.tokPrefixOf(1, 'automove')) return automove(s);
  s.reply(R.ERROR);
}

function automove(s: TextRequest): void {
  const engine = s.engine;
  const nt = s.ntokens;
  if (s.tokPrefixOf(2, 'ratio')) {
    const ratio = nt < 4 ? null : tokDouble(s, 3);
    if (ratio === null) return s.reply(R.ERROR);
    engine.tuning.slabAutomoveRatio(ratio);
    return s.reply(R.OK);
  }
  if (s.tokPrefixOf(2, 'freeratio')) {
    // memcached's free-memory ratio tunes its extstore automover, not implemented here
    // (see doc/compatibility.md): refused as a value memcached cannot take is.
    return s.reply(R.ERROR);
  }
  if (s.tokPrefixOf(2, 'window')) {
    if (nt < 4 || !tokU32(s.line, s.tokStart[3], s.tokEnd[3])) return s.reply(R.BAD_FORMAT);
    const window = parsed.value;
    if (!engine.tuning.slabAutomoveWindow(window)) return s.replyString('CLIENT_ERROR automove window too low or too high');
    return s.reply(R.OK);
  }
  if (!tokU32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.BAD_FORMAT);
  if (parsed.value > 2) return s.reply(R.ERROR);
  engine.tuning.slabAutomove(parsed.value);
  s.reply(R.OK);
}

/** Replies to `slabs reassign`, by ReassignResult. */
const REASSIGN_REPLIES = [
  'OK',
  'BUSY currently processing reassign request',
  'BADCLASS invalid src or dst class id',
  'NOSPARE source class has no spare pages',
  'SAME src and dst class are identical',
];

/**
 * `watch [stream ...]` (memcached's process_watch_command): the connection stops taking
 * commands and receives the log lines of the streams named (fetchers when none is; a name
 * may be abbreviated, the first stream it begins wins), from src/metrics/logger.ts. "OK" is
 * not subject to noreply: memcached queues it in the watcher's own buffer.
 */
function watch(s: TextRequest): void {
  const engine = s.engine;
  if (!engine.settings.watchEnabled) return s.replyString('CLIENT_ERROR watch commands not allowed');
  if (s.out.length > 0) return s.replyString('ERROR cannot pipeline other commands before watch');
  let streams = 0;
  for (let i = 1; i < s.ntokens; i++) {
    let stream: number | undefined;
    for (const [name, bit] of WATCH_STREAMS) {
      if (s.tokPrefixOf(i, name)) {
        stream = bit;
        break;
      }
    }
    if (stream === undefined) return s.reply(R.ERROR);
    streams |= stream;
  }
  if (s.ntokens <= 1) streams = LOG_FETCHERS;
  const push = s.conn.push;
  if (push === undefined) return s.replyString('WATCHER_FAILED failed to add log watcher');
  const watcher = engine.logger.add(streams, push, s.conn.id);
  if (watcher === null) return s.replyString('WATCHER_TOO_MANY log watcher limit reached');
  s.out.bytes(R.OK, 0, R.OK.length);
  s.startWatching(watcher);
}
