/**
 * No dictionary-mode objects on the request path. V8 turns an object into a hash table when,
 * for example, more than a few properties are added to it by keyed stores, or an exported
 * constant is redefined as a getter (tsc's `export { X }` of an imported name did that to
 * three modules' exports objects); every load from it then goes through the generic load stub,
 * even in optimized code. perf showed those stubs at 3.5% of the server's cycles at pipeline
 * 16 (doc/network.md). The probe (fast-objects-probe.cjs) runs the built server's modules with
 * V8's natives syntax and lists the dictionaries it finds: every module's exports, and every
 * object and prototype reachable from text and binary sessions over an engine, and from a text
 * session over an engine with extstore whose gets read values back from disk; and the native
 * addon as loadNative() hands it out.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/servers';

interface Report {
  control: boolean; modules: string[]; slowExports: string[]; slowObjects: string[]; reached: number; diskReads: number;
  addonShape: 'fast' | 'slow' | 'absent';
}

it('module exports and the objects a request reaches keep fast properties', () => {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', path.join(__dirname, 'fast-objects-probe.cjs'), REPO_ROOT],
    { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  const report = JSON.parse(r.stdout) as Report;
  // The check can fail: an object built as the counters once were is a dictionary here.
  expect(report.control).toBe(true);
  expect(report.modules).toContain(path.join('protocol', 'text', 'session.js'));
  expect(report.modules.length).toBeGreaterThan(40);
  expect(report.reached).toBeGreaterThan(200);
  // The extstore engine's gets did read values back from its file's tier.
  expect(report.diskReads).toBeGreaterThan(100);
  expect(report.slowExports).toEqual([]);
  expect(report.slowObjects).toEqual([]);
  // The native addon as the server holds it (a module object N-API filled is a dictionary).
  expect(report.addonShape).not.toBe('slow');
}, 60_000);
