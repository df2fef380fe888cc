#!/usr/bin/env node
/**
 * Build the optional native addon in native/ (TCP Fast Open, SO_REUSEPORT sockets, scheduling
 * policy, mlock). Run by `npm ci`/`npm install` (the package's "install" script) and by
 * `npm run build:native`.
 *
 * The server builds, runs and passes its tests without the addon, so a machine without a C
 * compiler, make or python3 must still install: this script then prints what is off and exits
 * 0. With --strict (npm run build:native) a failed build exits 1.
 *
 * node-gyp comes with npm (npm_config_node_gyp during npm scripts, or npm's own copy next to
 * node). When Node's headers are installed beside the node binary (<prefix>/include/node, as
 * Debian's nodejs and the official images have), they are used with --nodedir so nothing is
 * downloaded.
 */
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const NATIVE_DIR = path.join(ROOT, 'native');
const ADDON = path.join(NATIVE_DIR, 'build', 'Release', 'memcached_ts_native.node');
const BUILD_TIMEOUT_MS = 180_000;
const OUTPUT_TAIL_BYTES = 3000;
const strict = process.argv.includes('--strict');

function say(message) {
  process.stderr.write(`memcached-ts native addon: ${message}\n`);
}

function done(ok, message) {
  say(message);
  if (!ok) {
    say('the server runs without it; TCP Fast Open (-o tcp_fastopen) and -k (locked memory) are then unavailable');
    if (strict) process.exit(1);
  }
  process.exit(0);
}

function onPath(command) {
  const r = spawnSync('sh', ['-c', `command -v "${command}"`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '';
}

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] }));
  } catch {
    // not a dependency of the project; npm's own copy below
  }
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => fs.existsSync(c)) ?? null;
}

function headersDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function main() {
  if (process.env.MEMCACHED_TS_NATIVE === 'skip') return done(false, 'skipped (MEMCACHED_TS_NATIVE=skip)');
  if (process.platform !== 'linux') return done(false, `not built: it is Linux-only (this is ${process.platform})`);
  const compiler = process.env.CC || 'cc';
  const missing = [compiler, 'make', 'python3'].filter((c) => !onPath(c));
  if (missing.length > 0) return done(false, `not built: ${missing.join(', ')} not found`);
  const nodeGyp = findNodeGyp();
  if (nodeGyp === null) return done(false, 'not built: node-gyp not found (it comes with npm)');
  const args = [nodeGyp, 'rebuild', `--directory=${NATIVE_DIR}`];
  const nodedir = headersDir();
  if (nodedir !== null) args.push(`--nodedir=${nodedir}`);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
  if (r.status !== 0) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    process.stderr.write(output.slice(-OUTPUT_TAIL_BYTES));
    const why = r.error ? r.error.message : `node-gyp exited with ${r.status ?? r.signal}`;
    return done(false, `not built: ${why}`);
  }
  try {
    const addon = require(ADDON);
    if (typeof addon.setTcpFastOpen !== 'function') throw new Error('unexpected exports');
  } catch (error) {
    return done(false, `built but does not load: ${error.message}`);
  }
  return done(true, `built ${path.relative(ROOT, ADDON)}`);
}

main();
