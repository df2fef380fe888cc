/*
 * Child process of fast-objects.test.ts, run with --allow-natives-syntax: which objects of the
 * built server (dist/) V8 keeps in dictionary mode. A property load from such an object is a
 * hash lookup through V8's generic load stub on every execution, even in optimized code.
 *
 * Looks at (1) every module's exports object (module code reads its own exported constants
 * through it: tsc compiles `TOKENS_MAX` to `exports.TOKENS_MAX`), and (2) every object and
 * prototype reachable from a text and a binary session over a real engine, and from a text
 * session over an engine with extstore, after requests that read values back from disk, and
 * (3) the native addon's exports as the server holds them (loadNative).
 *
 * argv[2]: the repository root. Output: one JSON object
 * { control, modules, slowExports, slowObjects, reached, diskReads, addonShape }.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const D = path.join(process.argv[2], 'dist');

// The check itself: an object given 25 properties by keyed stores is a dictionary on this V8.
const control = {};
for (let i = 0; i < 25; i++) control[`k${i}`] = i;
const controlIsSlow = !%HasFastProperties(control);

// A worker thread's entry point: it starts serving when loaded, so it is not loaded here.
const WORKER_ENTRY = path.join('cli', 'serving-thread.js');
const modules = [];
const slowExports = [];
(function walk(dir) {
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.js') && path.relative(D, p) !== WORKER_ENTRY) {
      const rel = path.relative(D, p);
      modules.push(rel);
      if (!%HasFastProperties(require(p))) slowExports.push(rel);
    }
  }
})(D);

const { Engine } = require(path.join(D, 'engine/engine'));
const { ServerStats } = require(path.join(D, 'metrics/stats'));
const { Output } = require(path.join(D, 'protocol/output'));
const { TextSession } = require(path.join(D, 'protocol/text/session'));
const { BinarySession } = require(path.join(D, 'protocol/binary/session'));
const { binaryRequest } = require(path.join(D, 'protocol/warmup'));
const { defaultSettings } = require(path.join(D, 'settings'));

const settings = defaultSettings();
settings.threadCount = 1;
const engine = new Engine(settings, new ServerStats());
const conn = { id: 1, transport: 'tcp', peerName: 'tcp:probe', lastCommandTime: 0, stateName: 'conn_parse_cmd' };
const textOut = new Output();
const text = new TextSession(engine, textOut, conn, {});
const binOut = new Output();
const binary = new BinarySession(engine, binOut, conn, {}, null);
const feed = (session, out, bytes) => { session.feed(bytes, 0, bytes.length); out.reset(); };
for (let k = 0; k < 100; k++) {
  feed(text, textOut, Buffer.from(`set k${k} 1 0 5\r\nhello\r\nget k${k} k${k + 1}\r\nmg k${k} v f t c\r\nincr k${k} 1\r\n`));
  feed(binary, binOut, binaryRequest(0x00, `k${k}`, Buffer.alloc(0), Buffer.alloc(0)));
}

// The same with extstore: values of 600 bytes into 8 MiB, so evictions write them to a file
// and gets read them back (from the write buffers or the page cache).
const os = require('node:os');
const MIB = 1024 * 1024;
const extDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcts-fast-objects-'));
const extEngine = new Engine({
  ...defaultSettings(), threadCount: 1, memoryLimitBytes: 8 * MIB, extPageBytes: MIB, extWbufBytes: MIB,
  extPaths: [{ path: path.join(extDir, 'extstore.0'), sizeBytes: 64 * MIB, bucket: 0 }],
}, new ServerStats());
const extOut = new Output();
const extText = new TextSession(extEngine, extOut, conn, {});
const big = 'x'.repeat(600);
for (let k = 0; k < 20000; k++) feed(extText, extOut, Buffer.from(`set e${k} 0 0 600\r\n${big}\r\n`));
for (let k = 0; k < 2000; k++) feed(extText, extOut, Buffer.from(`get e${k} e${k + 7000}\r\nmg e${k + 1} v\r\n`));
const diskReads = extEngine.stats.sum('get_extstore');

// Objects a request reaches, breadth first from the sessions, at most DEPTH_MAX links away.
const DEPTH_MAX = 5;
const seen = new Set();
const slowObjects = [];
let frontier = [[text, 'text'], [binary, 'binary'], [extText, 'extstore text']];
for (let depth = 0; depth <= DEPTH_MAX && frontier.length > 0; depth++) {
  const next = [];
  for (const [o, where] of frontier) {
    if (o === null || typeof o !== 'object' || seen.has(o)) continue;
    seen.add(o);
    if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer || o instanceof SharedArrayBuffer) continue;
    if (o instanceof Map || o instanceof Set || o instanceof WeakMap || o instanceof WeakSet) continue;
    if (Array.isArray(o)) {
      if (o.length > 0) next.push([o[0], `${where}[0]`]);
      continue;
    }
    if (!%HasFastProperties(o)) slowObjects.push(`${where} (${Object.getOwnPropertyNames(o).length} properties)`);
    // Methods and accessors live on prototypes (ServerStats' counters are accessors there).
    const proto = Object.getPrototypeOf(o);
    if (proto !== null && proto !== Object.prototype) next.push([proto, `${where}.__proto__`]);
    for (const k of Object.getOwnPropertyNames(o)) {
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d !== undefined && 'value' in d) next.push([d.value, `${where}.${k}`]);
    }
  }
  frontier = next;
}

// The native addon's functions are read from its exports object on every disk read (preadNow,
// crc32c): 'fast', 'slow', or 'absent' when the addon is not built.
const { loadNative } = require(path.join(D, 'platform/native'));
const addon = loadNative().addon;
const addonShape = addon === null ? 'absent' : %HasFastProperties(addon) ? 'fast' : 'slow';

extEngine.stop();
fs.rmSync(extDir, { recursive: true, force: true });
process.stdout.write(JSON.stringify({ control: controlIsSlow, modules, slowExports, slowObjects, reached: seen.size, diskReads, addonShape }));
