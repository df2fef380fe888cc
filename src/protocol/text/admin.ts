/**
 * Text-protocol administrative commands: stats, flush_all, version, verbosity, shutdown,
 * cache_memlimit, lru_crawler, lru, slabs, refresh_certs. Rare and not on the hot path, so these favour
 * clarity over avoiding allocation.
 */
import {
  connsStats, extstoreStats, generalStats, itemsStats, settingsStats, sizesStats, slabsStats,
  type StatSink, type StatsContext,
} from '../../engine/stats';
import { forEachItem } from '../../store/crawler';
import { COLD_LRU } from '../../store/items';
import { WATCH_STREAMS, LOG_FETCHERS } from '../../metrics/logger';
import { MEMCACHED_COMPAT_VERSION } from '../../version';
import { Op } from '../commands';
import { parseI32, parseU32, parsed } from '../numbers';
import { FeedStatus } from '../session';
import { R, type TextSession } from './session';

export interface AdminHooks {
  stats: StatsContext;
  /** `shutdown` (-A): stop the server (graceful = SIGUSR1 semantics). */
  shutdown(graceful: boolean): void;
  /**
   * `refresh_certs`: reload the TLS certificates (NetworkHandle.reloadCertificates). Returns
   * null on success, else memcached's error text without CRLF. Absent: TLS is not enabled.
   */
  refreshCerts?: () => string | null;
}

/** memcached's refresh_certs reply when TLS is off (net/tls.ts TLS_NOT_ENABLED). */
const TLS_NOT_ENABLED = 'Error TLS not enabled';

/** memcached's MAX_VERBOSITY_LEVEL. */
const VERBOSITY_MAX = 2;
/** memcached caps a cachedump reply at 2 MiB. */
const CACHEDUMP_BYTES_MAX = 2 * 1024 * 1024;
/** memcached's MAX_NUMBER_OF_SLAB_CLASSES. */
const SLAB_CLASS_IDS = 64;

export function runAdmin(s: TextSession, op: Op, hooks: AdminHooks): void {
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
    default: return s.reply(R.ERROR);
  }
}

function statLines(s: TextSession): StatSink {
  return (name, value) => {
    s.out.ascii(`STAT ${name} ${value}\r\n`);
  };
}

function stats(s: TextSession, ctx: StatsContext): void {
  const engine = s.engine;
  if (s.ntokens === 2) {
    generalStats(ctx, statLines(s));
    s.out.bytes(R.END, 0, 5);
    return;
  }
  const sub = s.tokString(1);
  switch (sub) {
    case 'reset':
      engine.stats.reset();
      engine.resetStats();
      return s.replyString('RESET');
    case 'detail': {
      const arg = s.ntokens < 4 ? '' : s.tokString(2);
      if (arg === 'on' || arg === 'off') {
        engine.detail.enabled = arg === 'on';
        return s.reply(R.OK);
      }
      if (arg === 'dump') return s.out.ascii(engine.detail.dump());
      return s.replyString('CLIENT_ERROR usage: stats detail on|off|dump');
    }
    case 'settings':
      settingsStats(ctx, statLines(s));
      break;
    case 'items':
      itemsStats(ctx, statLines(s));
      break;
    case 'slabs':
      slabsStats(ctx, statLines(s));
      break;
    case 'sizes':
      sizesStats(ctx, statLines(s));
      break;
    case 'conns':
      connsStats(ctx, statLines(s));
      break;
    case 'extstore':
      extstoreStats(ctx, statLines(s));
      break;
    case 'cachedump':
      return cachedump(s);
    default:
      return s.reply(R.ERROR);
  }
  s.out.bytes(R.END, 0, 5);
}

function cachedump(s: TextSession): void {
  const engine = s.engine;
  if (!engine.settings.dumpEnabled) return s.replyString('CLIENT_ERROR stats cachedump not allowed');
  if (s.ntokens < 5) return s.replyString('CLIENT_ERROR bad command line');
  if (!parseU32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.BAD_FORMAT);
  const id = parsed.value;
  if (!parseU32(s.line, s.tokStart[3], s.tokEnd[3])) return s.reply(R.BAD_FORMAT);
  const limit = parsed.value;
  if (id >= SLAB_CLASS_IDS) return s.replyString('CLIENT_ERROR Illegal slab id');
  const items = engine.items;
  const started = engine.clock.processStartedUnix;
  let text = '';
  let shown = 0;
  if (id >= 1 && id <= engine.slabs.largestClass) {
    for (let ref = items.lruHead[(id << 2) | COLD_LRU]; ref !== 0 && (limit === 0 || shown < limit); ref = items.next(ref)) {
      const exp = items.exptime(ref);
      const line = `ITEM ${items.keyString(ref)} [${items.nbytes(ref)} b; ${exp === 0 ? 0 : exp + started} s]\r\n`;
      if (text.length + line.length + 6 > CACHEDUMP_BYTES_MAX) break;
      text += line;
      shown++;
    }
  }
  s.out.ascii(text + 'END\r\n');
}

function flushAll(s: TextSession): void {
  const engine = s.engine;
  const noreply = s.setNoreplyMaybe();
  if (!engine.settings.flushEnabled) {
    engine.stats.cmd_flush++;
    return s.replyString('CLIENT_ERROR flush_all not allowed');
  }
  let delay = 0;
  if (s.ntokens !== (noreply ? 3 : 2)) {
    if (!parseI32(s.line, s.tokStart[1], s.tokEnd[1])) {
      engine.stats.cmd_flush++;
      return s.reply(R.BAD_EXPTIME);
    }
    delay = parsed.value;
  }
  engine.flushAll(delay);
  s.reply(R.OK);
}

function verbosity(s: TextSession): void {
  s.setNoreplyMaybe();
  if (!parseU32(s.line, s.tokStart[1], s.tokEnd[1])) return s.reply(R.BAD_FORMAT);
  s.engine.settings.verbose = Math.min(parsed.value, VERBOSITY_MAX);
  s.reply(R.OK);
}

function shutdown(s: TextSession, hooks: AdminHooks): void {
  if (!s.engine.settings.shutdownEnabled) return s.replyString('ERROR: shutdown not enabled');
  if (s.ntokens === 2) {
    s.status = FeedStatus.Close;
    hooks.shutdown(false);
  } else if (s.ntokens === 3 && s.tokString(1) === 'graceful') {
    s.status = FeedStatus.Close;
    hooks.shutdown(true);
  } else {
    s.replyString('CLIENT_ERROR invalid shutdown mode');
  }
}

/**
 * `extstore <setting> <value>`: memcached's runtime tuning (process_extstore_command). It
 * works whether or not extstore is enabled, parses as safe_strtoul/safe_strtod (a bad value
 * still zeroes the setting) and answers OK or ERROR.
 */
function extstoreCommand(s: TextSession): void {
  s.setNoreplyMaybe();
  const set = s.engine.settings;
  const nt = s.ntokens;
  const sub = nt >= 2 ? s.tokString(1) : '';
  const u32 = (apply: (v: number) => void): boolean => {
    const ok = parseU32(s.line, s.tokStart[2], s.tokEnd[2]);
    apply(ok ? parsed.value : 0);
    return ok;
  };
  let ok: boolean;
  if (nt < 4) {
    ok = false;
  } else if (sub === 'free_memchunks' && nt > 4) {
    // Deprecated and ignored by memcached, but still checked.
    const cls = parseU32(s.line, s.tokStart[2], s.tokEnd[2]) ? parsed.value : -1;
    ok = cls >= 0 && cls < SLAB_CLASS_IDS && parseU32(s.line, s.tokStart[3], s.tokEnd[3]);
  } else if (sub === 'item_size') {
    ok = u32((v) => void (set.extItemSizeBytes = v));
  } else if (sub === 'item_age') {
    ok = u32((v) => void (set.extItemAgeSeconds = v));
  } else if (sub === 'low_ttl') {
    ok = u32((v) => void (set.extLowTtlSeconds = v));
  } else if (sub === 'recache_rate') {
    ok = u32((v) => void (set.extRecacheRate = v));
  } else if (sub === 'compact_under') {
    ok = u32((v) => void (set.extCompactUnderPages = v));
  } else if (sub === 'drop_under') {
    ok = u32((v) => void (set.extDropUnderPages = v));
  } else if (sub === 'max_sleep') {
    ok = u32((v) => void (set.extMaxSleepMicros = v));
  } else if (sub === 'max_frag') {
    const text = s.tokString(2);
    const v = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text) ? Number(text) : NaN;
    ok = Number.isFinite(v);
    set.extMaxFrag = ok ? v : 0;
  } else if (sub === 'drop_unread') {
    let v = 0;
    ok = u32((n) => void (v = n));
    if (ok) set.extDropUnread = v !== 0;
  } else {
    ok = false;
  }
  s.reply(ok ? R.OK : R.ERROR);
}

/** memcached: OK (noreply applies), or the error text (written even with noreply). */
function refreshCerts(s: TextSession, hooks: AdminHooks): void {
  s.setNoreplyMaybe();
  const error = hooks.refreshCerts === undefined ? TLS_NOT_ENABLED : hooks.refreshCerts();
  if (error === null) return s.reply(R.OK);
  s.out.ascii(error);
  s.out.crlf();
}

function memlimit(s: TextSession): void {
  s.setNoreplyMaybe();
  if (!parseU32(s.line, s.tokStart[1], s.tokEnd[1])) return s.reply(R.ERROR);
  const mb = parsed.value;
  if (mb < 8) return s.replyString('MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m');
  if (mb > 1000000000) return s.replyString('MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes');
  const engine = s.engine;
  // The arena reserved at startup bounds how far the limit can be raised (doc/store.md).
  if (!engine.slabs.setMemoryLimit(mb * 1024 * 1024)) {
    return s.replyString('MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust');
  }
  engine.settings.memoryLimitBytes = mb * 1024 * 1024;
  s.reply(R.OK);
}

function lruCrawler(s: TextSession): void {
  const engine = s.engine;
  const crawler = engine.crawler;
  const nt = s.ntokens;
  const sub = nt >= 3 ? s.tokString(1) : '';
  if (nt === 4 && sub === 'crawl') {
    if (!crawler.enabled) return s.replyString('CLIENT_ERROR lru crawler disabled');
    const classes = crawler.parseClasses(s.tokString(2));
    if (classes === 'bad') return s.replyString('BADCLASS invalid class id');
    if (!crawler.crawl(classes)) return s.replyString('BUSY currently processing crawler request');
    return s.reply(R.OK);
  }
  if (nt === 4 && sub === 'metadump') {
    if (!crawler.enabled) return s.replyString('CLIENT_ERROR lru crawler disabled');
    if (!engine.settings.dumpEnabled) return s.replyString('ERROR metadump not allowed');
    if (s.out.length > 0) return s.replyString('ERROR cannot pipeline other commands before metadump');
    const arg = s.tokString(2);
    const classes = arg === 'hash' ? null : crawler.parseClasses(arg);
    if (classes === 'bad') return s.replyString('BADCLASS invalid class id');
    return metadump(s, classes);
  }
  if (nt === 4 && (sub === 'tocrawl' || sub === 'sleep')) {
    if (!parseU32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.BAD_FORMAT);
    if (sub === 'tocrawl') {
      crawler.toCrawl = parsed.value;
      engine.settings.lruCrawlerToCrawl = parsed.value;
    } else {
      if (parsed.value > 1000000) return s.replyString('CLIENT_ERROR sleep must be one second or less');
      crawler.sleepMicros = parsed.value;
      engine.settings.lruCrawlerSleepMicros = parsed.value;
    }
    return s.reply(R.OK);
  }
  if (nt === 3 && (sub === 'enable' || sub === 'disable')) {
    crawler.enabled = sub === 'enable';
    engine.settings.lruCrawler = crawler.enabled;
    return s.reply(R.OK);
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

function metadump(s: TextSession, classes: Uint8Array | null): void {
  const engine = s.engine;
  const items = engine.items;
  const started = engine.clock.processStartedUnix;
  engine.clock.tick();
  forEachItem(items, classes, (ref, cls) => {
    if (items.isDead(ref)) return;
    const exp = items.exptime(ref);
    s.out.ascii(`key=${uriEncode(items.keyString(ref))} exp=${exp === 0 ? -1 : exp + started} ` +
      `la=${items.atime(ref) + started} cas=${items.cas(ref)} fetch=${(items.iflags(ref) & 0x10) !== 0 ? 'yes' : 'no'} ` +
      `cls=${cls} size=${items.memcachedItemTotal(items.nkey(ref), items.nbytes(ref), items.flags(ref))}\r\n`);
  });
  s.out.bytes(R.END, 0, 5);
}

/** `lru tune|mode|temp_ttl`: runtime LRU tuning, as memcached's process_lru_command. */
function lru(s: TextSession): void {
  const set = s.engine.settings;
  const opts = s.engine.items.opts;
  const sub = s.tokString(1);
  const nt = s.ntokens;
  if (sub === 'tune' && nt >= 7) {
    const hot = Number(s.tokString(2));
    const warm = Number(s.tokString(3));
    const hotF = Number(s.tokString(4));
    const warmF = Number(s.tokString(5));
    if (![hot, warm, hotF, warmF].every(Number.isFinite)) return s.reply(R.ERROR);
    if (hot + warm > 80) return s.replyString('ERROR hot and warm pcts must not exceed 80');
    if (hotF <= 0 || warmF <= 0) return s.replyString('ERROR hot/warm age factors must be greater than 0');
    set.hotLruPct = opts.hotLruPct = hot;
    set.warmLruPct = opts.warmLruPct = warm;
    set.hotMaxFactor = opts.hotMaxFactor = hotF;
    set.warmMaxFactor = opts.warmMaxFactor = warmF;
    return s.reply(R.OK);
  }
  if (sub === 'mode' && nt >= 4) {
    const mode = s.tokString(2);
    if (mode === 'flat') set.lruSegmented = opts.lruSegmented = false;
    else if (mode === 'segmented') set.lruSegmented = opts.lruSegmented = true;
    else return s.reply(R.ERROR);
    return s.reply(R.OK);
  }
  if (sub === 'temp_ttl' && nt >= 4) {
    const ttl = Number(s.tokString(2));
    if (!Number.isInteger(ttl)) return s.reply(R.ERROR);
    if (ttl < 0) {
      set.tempLru = opts.tempLru = false;
    } else {
      set.tempLru = opts.tempLru = true;
      set.temporaryTtlSeconds = opts.temporaryTtlSeconds = ttl;
    }
    return s.reply(R.OK);
  }
  s.reply(R.ERROR);
}

/** `slabs reassign <src> <dst>` and `slabs automove <0|1|2>|ratio <r>|window <n>`, as memcached. */
function slabs(s: TextSession): void {
  const engine = s.engine;
  const sub = s.ntokens >= 3 ? s.tokString(1) : '';
  if (s.ntokens === 5 && sub === 'reassign') {
    if (!engine.settings.slabReassign) return s.replyString('CLIENT_ERROR slab reassignment disabled');
    if (!parseI32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.BAD_FORMAT);
    const src = parsed.value;
    if (!parseI32(s.line, s.tokStart[3], s.tokEnd[3])) return s.reply(R.BAD_FORMAT);
    return s.replyString(REASSIGN_REPLIES[engine.mover.reassign(src, parsed.value, true)]);
  }
  if (s.ntokens >= 4 && sub === 'automove') return slabsAutomove(s);
  s.reply(R.ERROR);
}

/** Replies to `slabs reassign`, by ReassignResult. */
const REASSIGN_REPLIES = [
  'OK',
  'BUSY currently processing reassign request',
  'BADCLASS invalid src or dst class id',
  'NOSPARE source class has no spare pages',
  'SAME src and dst class are identical',
];

function slabsAutomove(s: TextSession): void {
  const settings = s.engine.settings;
  s.setNoreplyMaybe();
  const what = s.tokString(2);
  if (what === 'ratio') {
    const ratio = Number(s.tokString(3));
    if (s.ntokens < 5 || s.tokLen(3) === 0 || !Number.isFinite(ratio)) return s.reply(R.ERROR);
    settings.slabAutomoveRatio = ratio;
    return s.reply(R.OK);
  }
  if (what === 'window') {
    if (s.ntokens < 5 || !parseU32(s.line, s.tokStart[3], s.tokEnd[3])) return s.reply(R.BAD_FORMAT);
    if (parsed.value < 3 || parsed.value > 1800) return s.replyString('CLIENT_ERROR automove window too low or too high');
    settings.slabAutomoveWindowSamples = parsed.value;
    return s.reply(R.OK);
  }
  if (!parseU32(s.line, s.tokStart[2], s.tokEnd[2])) return s.reply(R.BAD_FORMAT);
  if (parsed.value > 2) return s.reply(R.ERROR);
  settings.slabAutomove = parsed.value;
  s.reply(R.OK);
}

/**
 * `watch [stream ...]` (memcached's process_watch_command): the connection stops taking
 * commands and receives the log lines of the streams named (fetchers when none is), from
 * src/metrics/logger.ts. "OK" is not subject to noreply: memcached queues it in the
 * watcher's own buffer.
 */
function watch(s: TextSession): void {
  s.setNoreplyMaybe();
  const engine = s.engine;
  if (!engine.settings.watchEnabled) return s.replyString('CLIENT_ERROR watch commands not allowed');
  if (s.out.length > 0) return s.replyString('ERROR cannot pipeline other commands before watch');
  let streams = 0;
  for (let i = 1; i < s.ntokens - 1; i++) {
    const stream = WATCH_STREAMS.get(s.tokString(i));
    if (stream === undefined) return s.reply(R.ERROR);
    streams |= stream;
  }
  if (s.ntokens <= 2) streams = LOG_FETCHERS;
  const push = s.conn.push;
  if (push === undefined) return s.replyString('WATCHER_FAILED failed to add log watcher');
  const watcher = engine.logger.add(streams, push, s.conn.id);
  if (watcher === null) return s.replyString('WATCHER_TOO_MANY log watcher limit reached');
  s.out.bytes(R.OK, 0, R.OK.length);
  s.startWatching(watcher);
}
