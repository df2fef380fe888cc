/**
 * What the server needs from the operating system at startup, and what it says about it:
 * the native addon (present or not, and what is then off), -k (locked memory), -o tcp_fastopen,
 * and the CPU scheduling policy it was launched with.
 *
 * The process entry (src/cli/main.ts) calls, in this order:
 *   keepYoungGenerationSmall()     first: V8's young generation stays at its initial size
 *   checkPlatform(settings)        before anything starts: a message to fail with, or null
 *   lockMemory(settings, slabs, log) after creating the engine, before listening (-k)
 *   adviseHugePages(buffers)       after creating the engine: the store's large buffers
 *   platformStartupLines(settings) after listening: lines to log at their -v level
 *
 * Not for: applying TCP Fast Open to listeners (src/net/listeners.ts does, through
 * src/platform/sockets.ts), or setting scheduling policies (launch under chrt).
 */
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import type { Settings } from '../settings';
import { loadNative } from './native';
import { schedulingLogLines } from './sched';
import { tcpFastOpenSysctlWarning } from './sockets';

/**
 * V8 grows the young generation's semi-spaces (up to 16 MiB each, 32 MiB resident in Node 20)
 * when scavenges find much of it alive, as during the startup and a cache fill, and never
 * gives the memory back. The server's request path allocates (almost) nothing
 * (test/protocol/allocation.test.ts), so a young generation at its initial size (two 1 MiB
 * semi-spaces) is scavenged rarely anyway. A growth factor of 1 keeps it there (measured at
 * -m 64 -t 1 after a fill: 5 MiB less resident; the flag is read when the space would grow,
 * so it works set at runtime, and every thread started later inherits it). An operator's own
 * `--max-semi-space-size` or `--semi-space-growth-factor` (NODE_OPTIONS, node's flags) wins.
 */
export const SEMI_SPACE_GROWTH_FACTOR = 1;

export function keepYoungGenerationSmall(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => /semi[-_]space/.test(a));
  if (!given) v8.setFlagsFromString(`--semi-space-growth-factor=${SEMI_SPACE_GROWTH_FACTOR}`);
}

/** A line for the startup log: shown when the -v count is at least `level`. */
export interface LogLine {
  readonly level: number;
  readonly text: string;
}

/** What only the addon provides, as the startup log names it. */
const ADDON_FEATURES = 'TCP Fast Open (-o tcp_fastopen), locked memory (-k), SO_REUSEPORT sockets';

/**
 * Options this process cannot honour: a message to exit with (EX_USAGE), or null. memcached
 * warns and goes on when mlockall() fails; a -k or tcp_fastopen that cannot even be tried
 * (no addon) is refused instead, like every option memcached-ts does not implement; so is
 * -o loop_yield=on (its default, auto, goes without).
 */
export function checkPlatform(settings: Settings): string | null {
  if (settings.largePages) {
    const thp = largePagesProblem();
    if (thp !== null) return thp;
  }
  const load = loadNative();
  if (load.addon !== null) return null;
  const needs: string[] = [];
  if (settings.lockMemory) needs.push('-k (locked memory)');
  if (settings.largePages) needs.push('-L (large pages)');
  if (settings.tcpFastOpenQueue > 0) needs.push(`-o tcp_fastopen=${settings.tcpFastOpenQueue}`);
  if (settings.loopYield === 'on') needs.push('-o loop_yield=on');
  if (needs.length === 0) return null;
  return `${needs.join(' and ')} need${needs.length === 1 ? 's' : ''} the native addon, which is ${load.reason}`;
}

/** Where Linux says whether transparent huge pages are on ("[never]" when off). */
export const THP_ENABLED_PATHS = ['/sys/kernel/mm/transparent_hugepage/enabled', '/sys/kernel/mm/redhat_transparent_hugepage/enabled'];

/**
 * -L as memcached's enable_large_pages() decides it: refused (memcached exits with status 1
 * and "Cannot enable large pages on this system") when the kernel has no transparent huge
 * pages or has them set to never. Returns the message, or null when -L can go on.
 */
export function largePagesProblem(paths: readonly string[] = THP_ENABLED_PATHS): string | null {
  for (const p of paths) {
    let text: string;
    try {
      text = fs.readFileSync(p, 'utf8');
    } catch {
      continue;
    }
    if (text.includes('[never]')) return `-L: cannot enable large pages on this system: transparent huge pages are set to never (${p})`;
    return null;
  }
  return '-L: cannot enable large pages on this system: transparent huge pages support not detected';
}

/** The slab allocator's hook for new pages (src/store/slabs.ts). */
export interface PageSource {
  onNewPage: ((page: Buffer) => void) | null;
}

/**
 * -k: lock the item memory in RAM. Every slab page is mlock()ed as the allocator takes it
 * (pages are taken lazily up to -m and never given back), so the cache is never swapped out.
 *
 * Not mlockall(): Node's V8 returns heap pages to the kernel with madvise(MADV_DONTNEED),
 * which fails on locked memory, and V8 then aborts the process (measured on Node 20, in a
 * test); mlockall(MCL_CURRENT) also faults in every mapping V8 has reserved (about 300 MB).
 *
 * Returns the startup lines; a page that cannot be locked (RLIMIT_MEMLOCK below -m: raise it
 * with ulimit -l or LimitMEMLOCK=infinity) is reported once through `log`, at level 0, in
 * memcached's words, and the server goes on, as memcached does when mlockall() fails.
 */
export function lockMemory(settings: Settings, slabs: PageSource, log: (level: number, text: string) => void): LogLine[] {
  if (!settings.lockMemory) return [];
  const load = loadNative();
  if (load.addon === null) return [{ level: 0, text: `warning: -k invalid, the native addon is ${load.reason}` }];
  const addon = load.addon;
  let warned = false;
  slabs.onNewPage = (page) => {
    try {
      addon.lockBuffer(page);
    } catch (error) {
      if (warned) return;
      warned = true;
      const e = error as Error & { code?: string };
      const hint = e.code === 'EPERM' || e.code === 'ENOMEM'
        ? ' (RLIMIT_MEMLOCK is below -m: ulimit -l unlimited, or LimitMEMLOCK=infinity)' : '';
      log(0, `warning: -k invalid, mlock() failed: ${e.message}${hint}; item memory is not locked from here on`);
    }
  };
  return [{ level: 1, text: '-k: item memory (slab pages) is locked in RAM as it is allocated' }];
}

/** Buffers smaller than this hold no whole 2 MiB page and are not advised. */
const HUGE_PAGE_BYTES = 2 * 1024 * 1024;

/**
 * Ask the kernel for transparent huge pages (madvise MADV_HUGEPAGE) over the store's large
 * shared buffers (the item arena's segments and the hash table), before anything touches
 * them. Every get reads a random item header and hash bucket; with 4 KiB pages most of those
 * reads also miss the TLB and walk the page tables. Measured at pipeline 16, 100-byte values,
 * 100,000 keys: about 8% less user CPU per request (doc/store.md). The kernel gives huge
 * pages only as memory is touched, so nothing is taken early; with transparent huge pages
 * "never" (or without the addon) the advice does nothing and the store works as before.
 * Returns a line for the startup log (-v).
 */
export function adviseHugePages(buffers: readonly SharedArrayBuffer[]): LogLine {
  const load = loadNative();
  if (load.addon === null) return { level: 1, text: `huge page advice off: the native addon is ${load.reason}` };
  let advised = 0;
  try {
    for (const b of buffers) {
      if (b.byteLength >= HUGE_PAGE_BYTES) advised += load.addon.adviseHugePages(new Uint8Array(b));
    }
  } catch (error) {
    return { level: 1, text: `huge page advice off: ${(error as Error).message}` };
  }
  return { level: 1, text: `store memory: transparent huge pages advised over ${Math.round(advised / (1024 * 1024))} MiB of address space` };
}

/**
 * Startup log lines: the addon and what is off without it (-v), the scheduling policy (-v),
 * threads under mixed policies and a host that ignores server-side Fast Open (always).
 */
export function platformStartupLines(settings: Settings): LogLine[] {
  const lines: LogLine[] = [];
  const load = loadNative();
  if (load.addon !== null) {
    lines.push({ level: 1, text: `native addon loaded: ${ADDON_FEATURES} available` });
  } else {
    lines.push({ level: 1, text: `native addon ${load.reason}: ${ADDON_FEATURES} unavailable` });
  }
  if (settings.tcpFastOpenQueue > 0) {
    lines.push({ level: 1, text: `TCP Fast Open on TCP listeners, queue ${settings.tcpFastOpenQueue}` });
    const warning = tcpFastOpenSysctlWarning();
    if (warning !== null) lines.push({ level: 0, text: `warning: ${warning}` });
  }
  for (const text of schedulingLogLines()) {
    lines.push({ level: text.startsWith('warning:') ? 0 : 1, text });
  }
  return lines;
}
