/**
 * Where to listen: wildcard expansion, name resolution, and memcached-style startup error
 * messages.
 *
 * Not for: parsing -l (src/cli/ fills settings.listeners), binding (listeners.ts, udp.ts).
 */
import * as dns from 'node:dns';
import * as net from 'node:net';
import * as util from 'node:util';
import type { BindProtocol, ListenerSpec, ListenerTls } from '../settings';

export interface ListenTarget {
  readonly address: string;
  readonly family: 4 | 6;
  /** 0 asks the kernel for a free port. */
  readonly port: number;
  /**
   * True when this target is one of several an entry expanded to (the wildcard, or a name with
   * several addresses): failing because the host lacks that address family is then tolerated,
   * as long as another target of the same entry binds.
   */
  readonly optional: boolean;
  /** The -l entry's proto[...] and tag[...]. */
  readonly protocol: BindProtocol | null;
  readonly tag: string | null;
  /** The -l entry's notls:, btls: or mtls: prefix; null: none. */
  readonly tls: ListenerTls | null;
}

/**
 * memcached's port numbers: 0 disables a transport, -1 asks for an ephemeral port (its test
 * suite runs `-p -1`), otherwise the port itself.
 */
export function bindPort(port: number): number {
  return port === -1 ? 0 : port;
}

/**
 * Expand -l entries (parsed by the CLI into settings.listeners) into concrete addresses, one
 * group per entry. No entries, or a host of null ('*'), means all interfaces: IPv4 and IPv6,
 * as memcached's getaddrinfo(NULL, AI_PASSIVE) gives. A port given with the host overrides
 * `defaultPort` (-p or -U), as in memcached.
 */
export async function resolveTargets(listeners: readonly ListenerSpec[], defaultPort: number): Promise<ListenTarget[][]> {
  if (listeners.length === 0) return [wildcard(ALL_INTERFACES, bindPort(defaultPort))];
  const groups: ListenTarget[][] = [];
  for (const l of listeners) {
    const port = bindPort(l.port ?? defaultPort);
    groups.push(l.host === null ? wildcard(l, port) : await resolveHost(l, l.host, port));
  }
  return groups;
}

const ALL_INTERFACES: ListenerSpec = { host: null, port: null, protocol: null, tag: null };

function wildcard(l: ListenerSpec, port: number): ListenTarget[] {
  const { protocol, tag } = l;
  const tls = l.tls ?? null;
  return [
    { address: '0.0.0.0', family: 4, port, optional: true, protocol, tag, tls },
    { address: '::', family: 6, port, optional: true, protocol, tag, tls },
  ];
}

async function resolveHost(l: ListenerSpec, host: string, port: number): Promise<ListenTarget[]> {
  const { protocol, tag } = l;
  const tls = l.tls ?? null;
  const family = net.isIP(host);
  if (family === 4 || family === 6) return [{ address: host, family, port, optional: false, protocol, tag, tls }];
  const found = await dns.promises.lookup(host, { all: true });
  const unique = new Map<string, 4 | 6>();
  for (const a of found) unique.set(a.address, a.family === 6 ? 6 : 4);
  const optional = unique.size > 1;
  return [...unique].map(([address, fam]) => ({ address, family: fam, port, optional, protocol, tag, tls }));
}

/** Errors that mean "this host has no such address family", not "something is wrong". */
export function isFamilyUnavailable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL' || code === 'EPROTONOSUPPORT';
}

/** glibc's strerror texts, which memcached prints; other codes use libuv's text. */
const STRERROR: Record<string, string> = {
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ENOTDIR: 'Not a directory',
  ENAMETOOLONG: 'File name too long',
  EINVAL: 'Invalid argument',
  EMFILE: 'Too many open files',
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
};

/** The text perror() would print for a Node system error. */
export function strerror(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  const code = e?.code;
  if (code !== undefined && STRERROR[code] !== undefined) return STRERROR[code];
  if (typeof e?.errno === 'number') {
    const known = util.getSystemErrorMap().get(e.errno);
    if (known !== undefined) return known[1].charAt(0).toUpperCase() + known[1].slice(1);
  }
  return e?.message ?? String(err);
}

/** A startup error carrying memcached's message and the underlying errno code. */
export class ListenError extends Error {
  readonly code: string | undefined;
  constructor(message: string, cause: unknown) {
    super(`${message}: ${strerror(cause)}`);
    this.name = 'ListenError';
    this.code = (cause as NodeJS.ErrnoException | null)?.code;
  }
}
