/**
 * Socket options Node.js does not offer, through the native addon: TCP Fast Open on listening
 * sockets (-o tcp_fastopen, doc/platform.md "TCP Fast Open") and SO_REUSEPORT listening
 * sockets for the worker threads to come (doc/threads.md, "Worker threads").
 *
 * Not for: finding a server's descriptor (src/net/node-internals.ts keeps that private-field
 * use), or anything that works without the addon.
 */
import * as fs from 'node:fs';
import { nativeAddon, loadNative, type NativeAddon } from './native';

/** net.ipv4.tcp_fastopen bit that enables the server side (1 is the client side). */
const TFO_SERVER_BIT = 2;
const TFO_SYSCTL_PATH = '/proc/sys/net/ipv4/tcp_fastopen';

function requireAddon(what: string): NativeAddon {
  const load = loadNative();
  if (load.addon === null) throw new Error(`${what} needs the native addon, which is ${load.reason}`);
  return load.addon;
}

/**
 * Set TCP_FASTOPEN with a queue of `queueLength` pending Fast Open requests on a listening
 * socket, and read it back: returns the queue length in force (the kernel caps it at
 * net.core.somaxconn). Throws an Error saying what failed.
 */
export function enableTcpFastOpen(fd: number, queueLength: number): number {
  if (!(Number.isInteger(queueLength) && queueLength > 0)) throw new Error(`TCP Fast Open queue length ${queueLength}`);
  const addon = requireAddon('-o tcp_fastopen');
  addon.setTcpFastOpen(fd, queueLength);
  const set = addon.getTcpFastOpen(fd);
  if (!(set > 0 && set <= queueLength)) {
    throw new Error(`TCP_FASTOPEN reads back ${set} after setting ${queueLength} on descriptor ${fd}`);
  }
  return set;
}

/** The TCP Fast Open queue length of a socket (0: off), or null without the addon. */
export function tcpFastOpenQueue(fd: number): number | null {
  const addon = nativeAddon();
  return addon === null ? null : addon.getTcpFastOpen(fd);
}

/**
 * A bound, non-blocking TCP socket with SO_REUSEPORT, for `server.listen({ fd }, backlog)`
 * (the backlog as listen()'s second argument: inside the options object it is ignored for an
 * fd, see doc/network.md, "Listen backlog"). Several such sockets on one address and port
 * share its connections, one per worker. `address` is an IPv4 or IPv6 literal.
 */
export function reusePortSocket(address: string, port: number): number {
  return requireAddon('an SO_REUSEPORT socket').tcpSocket(address, port, true);
}

/**
 * A bound, non-blocking TCP socket no other socket may share (no SO_REUSEPORT), to listen on
 * later with `server.listen({ fd }, backlog)`: the bind fails with EADDRINUSE while another
 * socket listens on the port, as memcached's does, and so does the listen() if another socket
 * bound the port since.
 */
export function exclusiveTcpSocket(address: string, port: number): number {
  return requireAddon('a TCP socket bound before it listens').tcpSocket(address, port, false);
}

/** A copy of a descriptor (close-on-exec), for handing a connection to another thread. */
export function duplicateFd(fd: number): number {
  return requireAddon('handing a connection to another thread').dupFd(fd);
}

/** The port a bound socket got (a bind to port 0 picks one). */
export function socketLocalPort(fd: number): number {
  return requireAddon('the port of an SO_REUSEPORT socket').localPort(fd);
}

/**
 * The host's net.ipv4.tcp_fastopen (of this network namespace), or null when unreadable.
 * Passive (server) Fast Open needs bit 2: 2 or 3.
 */
export function tcpFastOpenSysctl(): number | null {
  try {
    const value = Number(fs.readFileSync(TFO_SYSCTL_PATH, 'latin1').trim());
    return Number.isInteger(value) ? value : null;
  } catch {
    return null;
  }
}

/** A warning when the host will ignore the server side of TCP Fast Open, else null. */
export function tcpFastOpenSysctlWarning(): string | null {
  const value = tcpFastOpenSysctl();
  if (value === null || (value & TFO_SERVER_BIT) !== 0) return null;
  return `-o tcp_fastopen: net.ipv4.tcp_fastopen is ${value} on this host, so the kernel ignores Fast Open ` +
    `requests from clients; it needs 2 or 3 (sysctl -w net.ipv4.tcp_fastopen=3)`;
}
