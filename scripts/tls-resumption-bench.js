#!/usr/bin/env node
'use strict';
/**
 * Reconnect storm over TLS: N sequential connections, each a handshake plus one `version`
 * round trip, first with full handshakes, then offering the previous connection's session
 * (ticket, or session ID when tickets are off). Reports connections per second of wall time
 * and, with --pid, per second of the server's CPU time (from /proc/<pid>/stat), for TLS 1.2
 * and TLS 1.3. Works against any memcached-compatible TLS server.
 *
 *   node scripts/tls-resumption-bench.js --port 11211 [--host 127.0.0.1] [--count 2000] [--pid <server pid>]
 *       [--no-tickets]   (TLS 1.2 clients that resume by session ID only: needs -o ssl_session_cache)
 *
 * Not a test: it asserts nothing. doc/tls.md records its numbers.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const tls = require('node:tls');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}

const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '11211'));
const count = Number(arg('count', '2000'));
const pid = arg('pid', null);
const noTickets = process.argv.includes('--no-tickets');
const ticks = 100; // USER_HZ on Linux

function serverCpuSeconds() {
  if (pid === null) return NaN;
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

function once(version, session) {
  return new Promise((resolve, reject) => {
    let latest = null;
    let reused = false;
    const sock = tls.connect({
      host, port, rejectUnauthorized: false, maxVersion: version, minVersion: version, session,
      secureOptions: noTickets ? crypto.constants.SSL_OP_NO_TICKET : 0,
    });
    sock.on('secureConnect', () => {
      reused = sock.isSessionReused();
      sock.write('version\r\n');
    });
    sock.on('session', (s) => {
      latest = s;
    });
    sock.on('data', () => sock.end());
    sock.on('error', reject);
    sock.on('close', () => resolve({ reused, session: latest ?? session }));
  });
}

async function run(version, resume) {
  let session;
  let resumed = 0;
  const cpu0 = serverCpuSeconds();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const r = await once(version, resume ? session : undefined);
    if (r.reused) resumed++;
    session = r.session;
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = serverCpuSeconds() - cpu0;
  return { wall, cpu, resumed };
}

(async () => {
  console.log(`${count} sequential connections to ${host}:${port}${noTickets ? ' (client refuses tickets)' : ''}`);
  for (const version of ['TLSv1.2', 'TLSv1.3']) {
    const full = await run(version, false);
    const reuse = await run(version, true);
    const rate = (r) => (count / r.wall).toFixed(0);
    const perCpu = (r) => (Number.isNaN(r.cpu) ? '-' : (count / r.cpu).toFixed(0));
    console.log(`${version} full:    ${rate(full)} conn/s wall, ${perCpu(full)} conn per server CPU s (resumed ${full.resumed})`);
    console.log(`${version} resumed: ${rate(reuse)} conn/s wall, ${perCpu(reuse)} conn per server CPU s (resumed ${reuse.resumed})`);
    const cpuRatio = Number.isNaN(full.cpu) ? '-' : (full.cpu / reuse.cpu).toFixed(2);
    console.log(`${version} ratio:   ${(full.wall / reuse.wall).toFixed(2)}x wall, ${cpuRatio}x server CPU`);
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
