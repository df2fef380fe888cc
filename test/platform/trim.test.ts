/**
 * src/platform/trim.ts: which mappings may be dropped (only private, read-only, file-backed
 * ones without copied-on-write pages), and that dropping them gives resident memory back in
 * a real process without breaking it.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/platform/native';
import { droppable, parseSmaps } from '../../src/platform/trim';

const SAMPLE = `00400000-00b6f000 r--p 00000000 fe:00 1234 /usr/bin/node
Size:               7612 kB
Rss:                6300 kB
Anonymous:             0 kB
00b72000-025fe000 r-xp 00772000 fe:00 1234 /usr/bin/node
Rss:               20600 kB
Anonymous:             0 kB
05640000-05650000 r--p 05440000 fe:00 1234 /usr/bin/node
Rss:                  64 kB
Anonymous:            64 kB
05650000-05660000 rw-p 05450000 fe:00 1234 /usr/bin/node
Rss:                  64 kB
Anonymous:            12 kB
7f00000000-7f40000000 rw-s 00000000 00:1a 99 /dev/shm/memcached-ts/memory
Rss:                1024 kB
Anonymous:             0 kB
7f50000000-7f50100000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
7f60000000-7f60010000 r-xp 00000000 fe:00 77 /usr/lib/libold.so (deleted)
Rss:                  64 kB
Anonymous:             0 kB
`;

describe('which mappings the trim drops', () => {
  const maps = parseSmaps(SAMPLE);

  it('reads every mapping with its resident and anonymous sizes', () => {
    expect(maps.map((m) => [m.perms, m.rssKiB, m.anonKiB])).toEqual([
      ['r--p', 6300, 0], ['r-xp', 20600, 0], ['r--p', 64, 64], ['rw-p', 64, 12], ['rw-s', 1024, 0], ['rw-p', 1024, 1024], ['r-xp', 64, 0],
    ]);
    expect(maps[1].start).toBe(0xb72000);
    expect(maps[1].end).toBe(0x25fe000);
  });

  it('drops read-only private file mappings only, never one with copied-on-write pages', () => {
    expect(maps.map(droppable)).toEqual([true, true, false, false, false, false, false]);
  });
});

describe.skipIf(loadNative().addon === null)('in a real process', () => {
  it('gives back most of the binary\'s resident pages and the process keeps working', () => {
    const script = `
      const { trimFileMappings } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/platform/trim.js'))});
      const { nativeAddon } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/platform/native.js'))});
      const fileKiB = () => Number(/RssFile:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]);
      const before = fileKiB();
      const r = trimFileMappings(nativeAddon());
      const after = fileKiB();
      // Run code again (JSON, regexps, zlib, crypto): it must still work.
      const ok = JSON.parse(JSON.stringify({ a: [1, 2] })).a[1] === 2 && require('zlib').gunzipSync(require('zlib').gzipSync('x')).toString() === 'x' &&
        require('crypto').createHash('sha256').update('x').digest('hex').length === 64;
      console.log(JSON.stringify({ before, after, dropped: r.bytes, ok }));
    `;
    const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(out.status, out.stderr).toBe(0);
    const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as { before: number; after: number; dropped: number; ok: boolean };
    expect(r.ok).toBe(true);
    expect(r.dropped).toBeGreaterThan(0);
    expect(r.after).toBeLessThan(r.before / 2);
  });
});
