/**
 * Runtime tuning: the one writer of settings while the server runs. `lru`, `cache_memlimit`,
 * `slabs automove`, `lru_crawler`, `verbosity`, `stats detail` and `extstore <setting>` change
 * settings here and nowhere else; the store and the engine read the live settings object
 * (they keep no copies), so a change takes effect at once.
 *
 * Not for: parsing commands or choosing replies (src/protocol/text/admin.ts), startup
 * options (src/cli/options.ts, which fills the settings before anything runs).
 */
import type { Settings } from '../settings';
import type { Crawler } from '../store/crawler';
import type { SlabAllocator } from '../store/slabs';
import type { PrefixStats } from './prefix-stats';

/** memcached's MAX_VERBOSITY_LEVEL. */
export const VERBOSITY_MAX = 2;
/** memcached's cap on `lru_crawler sleep`: one second. */
const CRAWLER_SLEEP_MICROS_MAX = 1_000_000;
/** memcached's bounds for `slabs automove window`. */
const AUTOMOVE_WINDOW_MIN = 3;
const AUTOMOVE_WINDOW_MAX = 1800;

/** extstore settings `extstore <name> <value>` may change (memcached's process_extstore_command). */
export type ExtstoreSetting = 'item_size' | 'item_age' | 'low_ttl' | 'recache_rate' | 'compact_under' |
  'drop_under' | 'max_sleep' | 'max_frag' | 'drop_unread';

/** What runtime tuning changes besides the settings themselves. */
export interface Tunables {
  readonly settings: Settings;
  readonly slabs: SlabAllocator;
  readonly crawler: Crawler;
  readonly detail: PrefixStats;
}

export class Tuning {
  private readonly settings: Settings;

  constructor(private readonly engine: Tunables) {
    this.settings = engine.settings;
  }

  setVerbosity(level: number): void {
    this.settings.verbose = Math.min(level, VERBOSITY_MAX);
  }

  /** `lru tune`: null when applied, else memcached's error line. */
  lruTune(hotPct: number, warmPct: number, hotFactor: number, warmFactor: number): string | null {
    if (hotPct + warmPct > 80) return 'ERROR hot and warm pcts must not exceed 80';
    if (hotFactor <= 0 || warmFactor <= 0) return 'ERROR hot/warm age factors must be greater than 0';
    const s = this.settings;
    s.hotLruPct = hotPct;
    s.warmLruPct = warmPct;
    s.hotMaxFactor = hotFactor;
    s.warmMaxFactor = warmFactor;
    return null;
  }

  /** `lru mode flat|segmented`. */
  lruMode(segmented: boolean): void {
    this.settings.lruSegmented = segmented;
  }

  /** `lru temp_ttl <seconds>` (negative turns the TEMP LRU off). */
  lruTempTtl(seconds: number): void {
    const s = this.settings;
    if (seconds < 0) {
      s.tempLru = false;
    } else {
      s.tempLru = true;
      s.temporaryTtlSeconds = seconds;
    }
  }

  /** `cache_memlimit <mb>`: false when the arena reserved at startup cannot hold it. */
  memoryLimit(bytes: number): boolean {
    if (!this.engine.slabs.setMemoryLimit(bytes)) return false;
    this.settings.memoryLimitBytes = bytes;
    return true;
  }

  crawlerToCrawl(count: number): void {
    this.settings.lruCrawlerToCrawl = count;
    this.engine.crawler.toCrawl = count;
  }

  /** `lru_crawler sleep`: false above memcached's one-second bound. */
  crawlerSleep(micros: number): boolean {
    if (micros > CRAWLER_SLEEP_MICROS_MAX) return false;
    this.settings.lruCrawlerSleepMicros = micros;
    this.engine.crawler.sleepMicros = micros;
    return true;
  }

  /** `lru_crawler enable|disable`: false when enabling a crawler already enabled (memcached fails then). */
  crawlerEnabled(on: boolean): boolean {
    const crawler = this.engine.crawler;
    if (on && crawler.enabled) return false;
    crawler.enabled = on;
    this.settings.lruCrawler = on;
    return true;
  }

  slabAutomove(mode: number): void {
    this.settings.slabAutomove = mode;
  }

  slabAutomoveRatio(ratio: number): void {
    this.settings.slabAutomoveRatio = ratio;
  }

  /** `slabs automove window <n>`: false outside memcached's bounds. The automover starts a new window. */
  slabAutomoveWindow(samples: number): boolean {
    if (samples < AUTOMOVE_WINDOW_MIN || samples > AUTOMOVE_WINDOW_MAX) return false;
    this.settings.slabAutomoveWindowSamples = samples;
    return true;
  }

  /** `stats detail on|off`. */
  detailStats(on: boolean): void {
    // In the settings too, so the worker threads take it (cli/threads.ts).
    this.settings.detailEnabled = on;
    this.engine.detail.enabled = on;
  }

  /** `extstore <name> <value>`; the value is already parsed (booleans as 0/1). */
  extstore(name: ExtstoreSetting, value: number): void {
    const s = this.settings;
    switch (name) {
      case 'item_size': s.extItemSizeBytes = value; break;
      case 'item_age': s.extItemAgeSeconds = value; break;
      case 'low_ttl': s.extLowTtlSeconds = value; break;
      case 'recache_rate': s.extRecacheRate = value; break;
      case 'compact_under': s.extCompactUnderPages = value; break;
      case 'drop_under': s.extDropUnderPages = value; break;
      case 'max_sleep': s.extMaxSleepMicros = value; break;
      case 'max_frag': s.extMaxFrag = value; break;
      case 'drop_unread': s.extDropUnread = value !== 0; break;
    }
  }
}
