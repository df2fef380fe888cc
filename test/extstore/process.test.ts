/**
 * The extstore options through the real command line and process: startup failure as
 * memcached's, a running server with the tier on, and a restart that starts empty.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startServer, type ServerProcess } from '../helpers/servers';
import { Client, fill, tempDir, valueOf, valueReply } from './harness';

const BIN = path.join(REPO_ROOT, 'bin', 'memcached-ts.js');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function statsMap(c: Client): Promise<Record<string, string>> {
  const text = (await c.request('stats\r\n', 'END\r\n')).toString('latin1');
  return Object.fromEntries(text.split('\r\n').filter((l) => l.startsWith('STAT ')).map((l) => l.slice(5).split(' ')));
}

describe('extstore from the command line', () => {
  it('exits 1 with memcached\'s message when a file cannot be opened', () => {
    const args = ['-p', '0', '-U', '0', '-o', 'ext_path=/nonexistent-dir/x/extstore:64m'];
    if (process.getuid?.() === 0) args.push('-u', 'root');
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Failed to initialize external storage: failed to open file /nonexistent-dir/x/extstore');
  });

  it('serves values from disk, and starts empty after a restart', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const file = path.join(dir, 'extstore');
    // One serving thread: a set that evicts writes the value out at once (beyond memcached; with
    // -t N only the background writer does, and a burst faster than it evicts, as memcached's).
    const args = ['-t', '1', '-m', '8', '-o', `ext_page_size=1,ext_wbuf_size=1,ext_threads=2,ext_path=${file}:32m`];
    let server: ServerProcess | null = await startServer({ kind: 'ours', args });
    try {
      const c = new Client(server.port);
      await fill(c, 6000, 2000);
      const st = await statsMap(c);
      expect(Number(st.extstore_objects_written)).toBeGreaterThan(2000);
      expect(Number(st.curr_items)).toBe(6000);
      const reply = await c.request('get k0 k5999\r\n', 'END\r\n');
      expect(reply.equals(Buffer.concat([valueReply('k0', 0, valueOf(0, 2000)), valueReply('k5999', 5999, valueOf(5999, 2000)),
        Buffer.from('END\r\n')]))).toBe(true);
      c.close();
      await server.stop();
      expect(fs.statSync(file).size).toBeGreaterThan(0);
      server = await startServer({ kind: 'ours', args });
      expect(fs.statSync(file).size).toBe(0);
      const c2 = new Client(server.port);
      const st2 = await statsMap(c2);
      expect(st2.curr_items).toBe('0');
      expect(st2.extstore_objects_used).toBe('0');
      expect((await c2.request('get k0\r\n', 'END\r\n')).toString()).toBe('END\r\n');
      c2.close();
    } finally {
      await server?.stop();
    }
  });

  it('a second server on the same file fails to start and leaves the first one\'s data alone', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const file = path.join(dir, 'extstore');
    const args = ['-t', '1', '-m', '8', '-o', `ext_page_size=1,ext_wbuf_size=1,ext_threads=2,ext_path=${file}:32m`];
    const server = await startServer({ kind: 'ours', args });
    try {
      const c = new Client(server.port);
      await fill(c, 6000, 2000);
      const size = fs.statSync(file).size;
      expect(size).toBeGreaterThan(0);
      const second = ['-p', '0', '-U', '0', '-o', `ext_page_size=1,ext_wbuf_size=1,ext_path=${file}:32m`];
      if (process.getuid?.() === 0) second.push('-u', 'root');
      const r = spawnSync(process.execPath, [BIN, ...second], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`Failed to initialize external storage: failed to open file ${file}`);
      // Not truncated by the second server: every value still reads back from disk.
      // (The first server's writer may still be flushing: the file only grows.)
      expect(fs.statSync(file).size).toBeGreaterThanOrEqual(size);
      const reply = await c.request('get k0 k1\r\n', 'END\r\n');
      expect(reply.equals(Buffer.concat([valueReply('k0', 0, valueOf(0, 2000)), valueReply('k1', 1, valueOf(1, 2000)),
        Buffer.from('END\r\n')]))).toBe(true);
      c.close();
    } finally {
      await server.stop();
    }
  });
});
