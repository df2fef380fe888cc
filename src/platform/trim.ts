/**
 * Resident memory after startup: drop this process's mappings of read-only file pages.
 *
 * Most of a Node process's resident set at rest is not its own data but pages of the node
 * binary (measured: 37 of 55 MiB at -m 64 -t 1, idle): startup runs a lot of code once
 * (module loading, the bootstrap, the compiler's first tiers), and the kernel maps 64 KiB
 * around every page fault of a file already in the page cache. Those pages count in RSS for
 * as long as the mapping holds them. Once the server is up, `trimFileMappings` asks the
 * kernel (madvise MADV_DONTNEED, through the native addon) to drop this process's page table
 * entries for every private, read-only, file-backed mapping that holds no anonymous
 * (copied-on-write) page: the page cache keeps the pages, and the code requests run maps
 * them again on its first use (a minor fault, no disk read while the page cache holds them).
 *
 * Safety: MADV_DONTNEED on a private file mapping drops copied-on-write pages too, which
 * would lose the dynamic linker's relocations; a mapping with any anonymous page (smaps'
 * `Anonymous:`) is therefore never touched, nor is anything writable or shared (the -e
 * memory file is a shared mapping).
 */
import * as fs from 'node:fs';

/** What the trim needs of the native addon (src/platform/native.ts). */
export interface MappingDropper {
  dropMapping(start: number, length: number): void;
}

export interface TrimResult {
  /** Resident bytes of the mappings dropped (smaps' Rss before the drop). */
  readonly bytes: number;
  readonly mappings: number;
}

interface Mapping {
  start: number;
  end: number;
  perms: string;
  path: string;
  rssKiB: number;
  anonKiB: number;
}

/** The mappings of /proc/self/smaps (or of `text`, for tests). */
export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | null = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      cur = { start: parseInt(head[1], 16), end: parseInt(head[2], 16), perms: head[3], path: head[4], rssKiB: 0, anonKiB: 0 };
      out.push(cur);
      continue;
    }
    if (cur === null) continue;
    const field = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (field !== null) {
      if (field[1] === 'Rss') cur.rssKiB = Number(field[2]);
      else cur.anonKiB = Number(field[2]);
    }
  }
  return out;
}

/** May this mapping's page table entries be dropped without losing anything? */
export function droppable(m: Mapping): boolean {
  return m.path.startsWith('/') && m.perms[0] === 'r' && m.perms[1] === '-' && m.perms[3] === 'p' &&
    m.anonKiB === 0 && m.rssKiB > 0 && !m.path.endsWith(' (deleted)');
}

/** Drop the droppable file mappings of this process; null when /proc is not there. */
export function trimFileMappings(dropper: MappingDropper, smapsPath = '/proc/self/smaps'): TrimResult | null {
  let text: string;
  try {
    text = fs.readFileSync(smapsPath, 'latin1');
  } catch {
    return null;
  }
  let bytes = 0;
  let mappings = 0;
  for (const m of parseSmaps(text)) {
    if (!droppable(m)) continue;
    try {
      dropper.dropMapping(m.start, m.end - m.start);
    } catch {
      continue;
    }
    bytes += m.rssKiB * 1024;
    mappings++;
  }
  return { bytes, mappings };
}
