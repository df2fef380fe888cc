/*
 * Child process of allocation.test.ts: runs request batches through real sessions (text,
 * meta, binary) over a real engine, from the built server (dist/), and prints the bytes the
 * JavaScript heap allocated per request in the steady state, measured by V8's sampling heap
 * profiler with collected objects included. Batches are copied into one input buffer before
 * each feed, as a connection reads into its one static buffer.
 *
 * argv[2]: the repository root. Output: one JSON object { workload: { bytesPerRequest, top } }.
 */
'use strict';
const inspector = require('node:inspector');
const D = `${process.argv[2]}/dist/`;
const { Engine } = require(D + 'engine/engine');
const { ServerStats } = require(D + 'metrics/stats');
const { Output } = require(D + 'protocol/output');
const { TextSession } = require(D + 'protocol/text/session');
const { BinarySession } = require(D + 'protocol/binary/session');
const { defaultSettings } = require(D + 'settings');

const settings = defaultSettings();
settings.threadCount = 1;
settings.requestsPerEvent = 1e9;
const engine = new Engine(settings, new ServerStats());
const conn = { id: 1, transport: 'tcp', peerName: 'tcp:probe', lastCommandTime: 0, stateName: 'conn_parse_cmd' };
const textOut = new Output();
const text = new TextSession(engine, textOut, conn, {});
const binOut = new Output();
const binary = new BinarySession(engine, binOut, conn, {}, null);
const input = Buffer.alloc(64 * 1024);

function feed(session, out, batch) {
  batch.copy(input, 0);
  const used = session.feed(input, 0, batch.length);
  if (used !== batch.length) throw new Error(`session consumed ${used} of ${batch.length} bytes`);
  out.reset();
}

const KEYS = 2000;
const value = 'v'.repeat(100);
for (let k = 0; k < KEYS; k++) feed(text, textOut, Buffer.from(`set key:${k} 0 0 100\r\n${value}\r\n`));
// Counters for incr/decr, with room for their digits to grow in place.
for (let k = 0; k < KEYS; k++) feed(text, textOut, Buffer.from(`set n:${k} 0 0 12\r\n1000000     \r\n`));

// The same request builder as the warm-up's.
const { binaryRequest } = require(D + 'protocol/warmup');
const setExtras = Buffer.alloc(8);
// delta 3, initial 0, expiration 0xffffffff (no auto-create).
const incrExtras = Buffer.from('0000000000000003000000000000000' + '0ffffffff', 'hex');

const workloads = {
  'text get': [text, textOut, (k) => `get key:${k}\r\n`],
  'text gets, 10 keys': [text, textOut, (k) => `gets ${Array.from({ length: 10 }, (_, i) => `key:${(k + i) % KEYS}`).join(' ')}\r\n`],
  'text set': [text, textOut, (k) => `set key:${k} 5 0 100\r\n${value}\r\n`],
  'meta mg v f t c': [text, textOut, (k) => `mg key:${k} v f t c\r\n`],
  'meta ms': [text, textOut, (k) => `ms key:${k} 100 T0 F3\r\n${value}\r\n`],
  'meta md q + mn': [text, textOut, (k) => `md missing:${k} q\r\nmn\r\n`],
  'binary get': [binary, binOut, (k) => binaryRequest(0x00, `key:${k}`, Buffer.alloc(0), Buffer.alloc(0))],
  'binary set': [binary, binOut, (k) => binaryRequest(0x01, `key:${k}`, setExtras, Buffer.from(value))],
  'text incr': [text, textOut, (k) => `incr n:${k} 3\r\n`],
  'text decr': [text, textOut, (k) => `decr n:${k} 1\r\n`],
  'meta ma D v': [text, textOut, (k) => `ma n:${k} D2 v\r\n`],
  'binary incr': [binary, binOut, (k) => binaryRequest(0x05, `n:${k}`, incrExtras, Buffer.alloc(0))],
};

const profiler = new inspector.Session();
profiler.connect();
function post(method, params) {
  let result;
  profiler.post(method, params, (err, r) => {
    if (err) throw err;
    result = r;
  });
  return result;
}

const REQUESTS_PER_BATCH = 16;
const report = {};
for (const [name, [session, out, make]] of Object.entries(workloads)) {
  const batches = [];
  for (let b = 0; b < 64; b++) {
    const parts = [];
    for (let i = 0; i < REQUESTS_PER_BATCH; i++) {
      const r = make(((b * REQUESTS_PER_BATCH + i) * 7) % KEYS);
      parts.push(typeof r === 'string' ? Buffer.from(r, 'latin1') : r);
    }
    batches.push(Buffer.concat(parts));
  }
  for (let i = 0; i < 20000; i++) feed(session, out, batches[i & 63]); // optimized code first
  post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const rounds = 8000;
  for (let i = 0; i < rounds; i++) feed(session, out, batches[i & 63]);
  const profile = post('HeapProfiler.stopSampling').profile;
  let bytes = 0;
  const sites = {};
  (function walk(node, stack) {
    const f = node.callFrame;
    const frame = `${f.functionName}@${f.url.split('/').slice(-2).join('/')}:${f.lineNumber}`;
    const here = [frame, ...stack].slice(0, 3);
    const probe = here.some((s) => s.includes('allocation-probe'));
    // The profiler's own calls (inspector, this file's post) are not the server's.
    if (node.selfSize > 0 && !probe && !here.some((s) => s.includes('inspector'))) {
      bytes += node.selfSize;
      const k = here.join(' < ');
      sites[k] = (sites[k] ?? 0) + node.selfSize;
    }
    for (const c of node.children) walk(c, here);
  })(profile.head, []);
  report[name] = {
    bytesPerRequest: bytes / (rounds * REQUESTS_PER_BATCH),
    top: Object.entries(sites).sort((a, b) => b[1] - a[1]).slice(0, 3),
  };
}
process.stdout.write(JSON.stringify(report));
