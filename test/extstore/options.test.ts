/**
 * memcached's ext_* options: names, defaults, units, repetition, and the relations memcached
 * checks at startup (-I against ext_wbuf_size, UDP, page and buffer sizes).
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine, type ParseResult } from '../../src/cli/options';
import { helpText } from '../../src/cli/help';
import { defaultSettings, MIB, type Settings } from '../../src/settings';

function settingsOf(argv: string[]): Settings {
  const r = parseCommandLine(argv);
  if (r.kind !== 'run') throw new Error(`expected to run: ${r.stderr}`);
  return r.settings;
}

function exitOf(argv: string[]): Extract<ParseResult, { kind: 'exit' }> {
  const r = parseCommandLine(argv);
  if (r.kind !== 'exit') throw new Error(`expected an exit for ${argv.join(' ')}`);
  return r;
}

describe('ext_* options', () => {
  it('have memcached\'s defaults', () => {
    const d = defaultSettings();
    expect(d.extPaths).toEqual([]);
    expect(d.extPageBytes).toBe(64 * MIB);
    expect(d.extWbufBytes).toBe(4 * MIB);
    expect(d.extThreads).toBe(1);
    expect(d.extIoDepth).toBe(1);
    expect(d.extItemSizeBytes).toBe(512);
    expect(d.extItemAgeSeconds).toBe(4294967295);
    expect(d.extLowTtlSeconds).toBe(0);
    expect(d.extRecacheRate).toBe(2000);
    expect(d.extCompactUnderPages).toBe(0);
    expect(d.extDropUnderPages).toBe(0);
    expect(d.extMaxSleepMicros).toBe(1_000_000);
    expect(d.extMaxFrag).toBe(0.8);
    expect(d.extDropUnread).toBe(false);
    expect(d.slabAutomoveFreeRatio).toBe(0.01);
  });

  it('ext_path takes M, G, T and P sizes, and repeats', () => {
    const s = settingsOf(['-o', 'ext_path=/a/f:64m,ext_path=/b/f:2G', '-o', 'ext_path=/c/f:1t:default']);
    expect(s.extPaths).toEqual([
      { path: '/a/f', sizeBytes: 64 * MIB, bucket: 0 },
      { path: '/b/f', sizeBytes: 2048 * MIB, bucket: 0 },
      { path: '/c/f', sizeBytes: 1024 * 1024 * MIB, bucket: 0 },
    ]);
  });

  it("ext_path's bucket is one of memcached 1.6.45's six, numbered as it numbers them", () => {
    const names = ['default', 'compact', 'chunked', 'lowttl', 'coldcompact', 'old'];
    const s = settingsOf(['-o', names.map((n, i) => `ext_path=/f${i}:64m:${n}`).join(',')]);
    expect(s.extPaths.map((f) => f.bucket)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('every tunable parses into its setting', () => {
    const s = settingsOf(['-o', 'ext_page_size=8,ext_wbuf_size=2,ext_threads=8,ext_io_depth=4,ext_item_size=1024,' +
      'ext_item_age=60,ext_low_ttl=300,ext_recache_rate=10,ext_compact_under=3,ext_drop_under=2,ext_max_sleep=5000,' +
      'ext_max_frag=0.5,ext_drop_unread,ext_path=/tmp/x:64m']);
    expect(s.extPageBytes).toBe(8 * MIB);
    expect(s.extWbufBytes).toBe(2 * MIB);
    expect(s.extThreads).toBe(8);
    expect(s.extThreadsSet).toBe(true);
    expect(s.extIoDepth).toBe(4);
    expect(s.extItemSizeBytes).toBe(1024);
    expect(s.extItemAgeSeconds).toBe(60);
    expect(s.extLowTtlSeconds).toBe(300);
    expect(s.extRecacheRate).toBe(10);
    expect(s.extCompactUnderPages).toBe(3);
    expect(s.extDropUnderPages).toBe(2);
    expect(s.extMaxSleepMicros).toBe(5000);
    expect(s.extMaxFrag).toBe(0.5);
    expect(s.extDropUnread).toBe(true);
  });

  it('slab_automove_freeratio is refused, not ignored (the extstore automover is not implemented)', () => {
    const r = parseCommandLine(['-o', 'slab_automove_freeratio=0.05']);
    expect(r.kind).toBe('exit');
    if (r.kind === 'exit') expect(r.stderr).toContain('not implemented');
  });

  it.each([
    [['-o', 'ext_path=/x'], 'must supply size to ext_path'],
    [['-o', 'ext_path=/x:64'], 'must supply size to ext_path'],
    [['-o', 'ext_path=/x:64m:nope'], 'Unknown extstore bucket: nope'],
    [['-o', 'ext_max_frag=2'], 'ext_max_frag must be from 0 to 1'],
    [['-o', 'ext_threads=0'], 'ext_threads must be from 1'],
  ])('%j is refused', (argv, message) => {
    const e = exitOf(argv);
    expect(e.code).not.toBe(0);
    expect(e.stderr).toContain(message);
  });

  it.each([
    [['-o', 'ext_path=/x:64m', '-U', '11211'], 'Cannot use UDP with extstore enabled (-U 0 to disable)'],
    [['-I', '2m', '-o', 'ext_path=/x:64m,ext_wbuf_size=1'], '-I (item_size_max: 2097152) cannot be larger than ext_wbuf_size: 1048576'],
    [['-o', 'ext_path=/x:64m,ext_page_size=6'], 'page_size must be divisible by wbuf_size'],
    [['-o', 'ext_path=/x:32m'], 'hold no page'],
    [['-o', 'ext_page_size=1,ext_wbuf_size=1,ext_path=/x:65536m'], 'page_count must total to < 65536'],
    [['-o', 'ext_path=/x:64m,ext_path=/x:64m'], 'the same file is given twice'],
  ])('%j exits 64: %s', (argv, message) => {
    const e = exitOf(argv);
    expect(e.code).toBe(64);
    expect(e.stderr).toContain(message);
  });

  it('small pages for tests: ext_page_size=1 with ext_wbuf_size=1 and the default -I', () => {
    const s = settingsOf(['-o', 'ext_page_size=1,ext_wbuf_size=1,ext_path=/tmp/x:16m']);
    expect(s.extPageBytes).toBe(MIB);
    expect(s.extWbufBytes).toBe(MIB);
  });

  it('-h lists the ext_* options', () => {
    const h = helpText();
    for (const name of ['ext_path', 'ext_page_size', 'ext_wbuf_size', 'ext_threads', 'ext_item_size', 'ext_item_age',
      'ext_low_ttl', 'ext_drop_unread', 'ext_recache_rate', 'ext_compact_under', 'ext_drop_under', 'ext_max_frag']) {
      expect(h).toContain(`- ${name}:`);
    }
  });
});
