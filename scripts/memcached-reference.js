/**
 * Where the reference memcached lives: the one place that knows the path.
 *
 * The differential tests, the benchmark harness and the runner of memcached's own test suite
 * all compare against memcached 1.6.45 built from Debian's source tarball by
 * scripts/install-test-deps.sh into a cache outside the repository:
 *
 *   ${MCTS_CACHE_DIR:-$HOME/.cache/memcached-ts}/memcached-1.6.45/
 *     memcached, memcached-debug, timedrun, t/ (memcached's test suite), sources
 *
 *   MCTS_CACHE_DIR       the cache directory (default: $HOME/.cache/memcached-ts)
 *   MCTS_MEMCACHED_BIN   a reference binary to use instead of <tree>/memcached
 *
 * `node scripts/memcached-reference.js [--dir|--bin|--version]` prints the tree, the binary or
 * the pinned version (the install script asks it).
 */
'use strict';

const os = require('node:os');
const path = require('node:path');

/** The memcached release this server matches, and the one the install script builds. */
const REFERENCE_VERSION = '1.6.45';

/** The cache that holds built references (never inside the repository). */
function cacheDir() {
  const fromEnv = process.env.MCTS_CACHE_DIR;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return path.resolve(fromEnv);
  return path.join(process.env.HOME || os.homedir(), '.cache', 'memcached-ts');
}

/** The built source tree of the reference: binaries, `t/`, sources. */
function referenceDir() {
  return path.join(cacheDir(), `memcached-${REFERENCE_VERSION}`);
}

/** The reference binary (the release build; `memcached-debug` sits beside it). */
function referenceBin() {
  const fromEnv = process.env.MCTS_MEMCACHED_BIN;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv;
  return path.join(referenceDir(), 'memcached');
}

module.exports = { REFERENCE_VERSION, cacheDir, referenceDir, referenceBin };

if (require.main === module) {
  const arg = process.argv[2] ?? '--bin';
  const out = { '--dir': referenceDir, '--bin': referenceBin, '--version': () => REFERENCE_VERSION }[arg];
  if (out === undefined) {
    process.stderr.write('usage: memcached-reference.js [--dir|--bin|--version]\n');
    process.exit(64);
  }
  process.stdout.write(out() + '\n');
}
