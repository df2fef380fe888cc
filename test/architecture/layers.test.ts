/**
 * The layer rule (net -> protocol -> engine -> store/extstore, written once in
 * .dependency-cruiser.cjs) checked over src/ with dependency-cruiser, and shown to bite on a
 * fixture where a protocol module imports the store.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/servers';

const DEPCRUISE = path.join(REPO_ROOT, 'node_modules', '.bin', 'depcruise');
const CONFIG = path.join(REPO_ROOT, '.dependency-cruiser.cjs');

function cruise(cwd: string): { status: number | null; output: string } {
  const r = spawnSync(DEPCRUISE, ['src', '--config', CONFIG, '--output-type', 'err'], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('layers', () => {
  it('src/ keeps net -> protocol -> engine -> store/extstore, with no import cycle', () => {
    const r = cruise(REPO_ROOT);
    expect(r.output).toContain('no dependency violations');
    expect(r.status).toBe(0);
  }, 60_000);

  it('the check rejects a protocol module that imports the store', () => {
    const r = cruise(path.join(__dirname, 'fixture'));
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('protocol-not-into-store');
  }, 60_000);
});
