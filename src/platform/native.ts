/**
 * The optional native addon (native/; why it is optional: doc/platform.md, "The native
 * addon"): loaded once per process, or absent with a reason the startup log prints.
 *
 * What it is for: the system calls Node.js does not expose (TCP_FASTOPEN, SO_REUSEPORT,
 * sched_getscheduler/sched_getparam, mlock). Everything that uses it has a fallback or a
 * clear startup error; the server builds, runs and passes its tests without it.
 * Not for: loading anything else native.
 *
 * MEMCACHED_TS_NATIVE=off in the environment makes the server behave as if the addon were
 * not built (tests of the fallbacks use it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The addon's exports (native/memcached_ts_native.c). Failures throw Errors with `code`. */
export interface NativeAddon {
  /** setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, queueLength) on a listening socket. */
  setTcpFastOpen(fd: number, queueLength: number): void;
  /** getsockopt(TCP_FASTOPEN): the queue length set, 0 when off. */
  getTcpFastOpen(fd: number): number;
  /** [TCP_NODELAY, SO_KEEPALIVE] of a TCP socket, each 0 or 1 (tests). */
  socketFlags(fd: number): [number, number];
  /**
   * A TCP socket bound to address:port with SO_REUSEADDR, and SO_REUSEPORT when `shared`
   * (IPV6_V6ONLY for IPv6), and SO_KEEPALIVE and TCP_NODELAY, which accepted sockets inherit;
   * non-blocking, close-on-exec, not listening: for `server.listen({ fd }, backlog)`.
   */
  tcpSocket(address: string, port: number, shared: boolean): number;
  /** getsockname()'s port of a bound socket (what a bind to port 0 got). */
  localPort(fd: number): number;
  /** dup() with close-on-exec (an accepted unix connection handed to another serving thread). */
  dupFd(fd: number): number;
  /**
   * fcntl(F_SETLK) write lock on the whole file: false when another process holds a lock on
   * it (memcached's guard against two servers on one extstore file).
   */
  lockFile(fd: number): boolean;
  /** [Linux policy number, priority] of a thread or process (0: the calling thread). */
  getScheduler(tid: number): [number, number];
  /** mlock() the bytes of a Buffer or TypedArray (also over a SharedArrayBuffer): -k, per slab page. */
  lockBuffer(view: ArrayBufferView): void;
  /**
   * madvise(MADV_HUGEPAGE) over the whole 2 MiB pages inside a view's bytes (also over a
   * SharedArrayBuffer); returns the bytes advised.
   */
  adviseHugePages(view: ArrayBufferView): number;
  /**
   * pread(fds[i], views[i], views[i].length, positions[i]) for every i, in one job of libuv's
   * thread pool; `done` gets the byte counts (or -errno), in order.
   */
  preadBatch(fds: Int32Array, positions: Float64Array, views: Uint8Array[], done: (results: Int32Array) => void): void;
  /**
   * mlockall(MCL_CURRENT | MCL_FUTURE). Not for the server: V8 gives heap pages back with
   * madvise(MADV_DONTNEED), which fails on locked memory, and then aborts the process.
   */
  lockAllMemory(): void;
  /** The view's start address modulo the system page size (where a file can be mapped over it). */
  addressInPage(view: ArrayBufferView): number;
  /**
   * mmap(MAP_SHARED | MAP_FIXED) over the whole system pages inside the view: view byte i is
   * file byte offset + i there. The offset must have the view's addressInPage remainder.
   * Returns [first view byte mapped, bytes mapped]; the bytes before and after are not.
   */
  mapFile(view: ArrayBufferView, fd: number, offset: number): [number, number];
  /** msync(MS_SYNC) over the whole pages inside a view mapped by mapFile. */
  syncFile(view: ArrayBufferView): void;
  /**
   * madvise(MADV_DONTNEED) over [start, start + length) (page aligned): only for read-only
   * private file mappings with no anonymous pages (see src/platform/trim.ts).
   */
  dropMapping(start: number, length: number): void;
  /**
   * One preadv2(RWF_NOWAIT) from file position pos into head[headOffset, +headLength) then
   * body[bodyOffset, +bodyLength), on the calling thread: bytes read (fewer than asked when
   * only part is in the page cache) or -errno (-EAGAIN: it would wait for the device;
   * -EOPNOTSUPP: the file system cannot say). Never blocks on the device.
   */
  preadNow(fd: number, pos: number, head: Uint8Array, headOffset: number, headLength: number,
    body: Uint8Array, bodyOffset: number, bodyLength: number): number;
  /**
   * CRC-32C (Castagnoli) of view[start, end), continuing from value (0 to begin): the
   * public CRC value, as src/extstore/crc32c.ts computes it.
   */
  crc32c(view: Uint8Array, start: number, end: number, value: number): number;
  /** Which crc32c implementation this CPU gets: "sse4.2" or "table". */
  crc32cKind(): string;
  /**
   * memmove(dst + dstOffset, src + srcOffset, length): V8 copies into or out of a
   * SharedArrayBuffer with relaxed atomics, several times slower (src/bytes.ts).
   */
  copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): void;
  /**
   * glibc's malloc_trim(0): free C heap memory of every arena back to the kernel (V8's
   * compiler zones, freed but kept by glibc); true when some was released.
   */
  trimMalloc(): boolean;
  /**
   * A uv_check handle on the calling thread's event loop that calls sched_yield() after each
   * poll phase (unreferenced; closed with the thread's environment): -o loop_yield.
   */
  yieldAfterPoll(): void;
  /**
   * prctl(PR_SET_NAME): the calling thread's name in `ps -L`, `top -H` and /proc (15 bytes kept):
   * each serving worker names itself mc-worker, as memcached's workers are named.
   */
  setThreadName(name: string): void;
  /** Bumped when the exports change incompatibly. */
  readonly abiVersion: number;
}

export type NativeLoad =
  | { readonly addon: NativeAddon; readonly path: string }
  | { readonly addon: null; readonly reason: string };

/** The exports this build of the TypeScript side expects. */
const ABI_VERSION = 15;
const FUNCTIONS = ['setTcpFastOpen', 'getTcpFastOpen', 'socketFlags', 'tcpSocket', 'localPort', 'dupFd', 'lockFile', 'getScheduler', 'lockBuffer', 'adviseHugePages', 'preadBatch', 'lockAllMemory', 'addressInPage', 'mapFile', 'syncFile', 'dropMapping', 'preadNow', 'crc32c', 'crc32cKind', 'copyBytes', 'trimMalloc', 'yieldAfterPoll', 'setThreadName'] as const;

/** native/build/Release/ from both src/platform/ (tests) and dist/platform/ (the server). */
export const ADDON_PATH = path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'memcached_ts_native.node');

let loaded: NativeLoad | null = null;

/** The addon, or null with why (loaded on the first call). */
export function loadNative(): NativeLoad {
  loaded ??= tryLoad();
  return loaded;
}

/** The addon, or null when it is not available. */
export function nativeAddon(): NativeAddon | null {
  return loadNative().addon;
}

function tryLoad(): NativeLoad {
  if (process.env.MEMCACHED_TS_NATIVE === 'off') return { addon: null, reason: 'disabled by MEMCACHED_TS_NATIVE=off' };
  if (process.platform !== 'linux') return { addon: null, reason: `it is Linux-only (this is ${process.platform})` };
  if (!fs.existsSync(ADDON_PATH)) return { addon: null, reason: 'not built (npm run build:native)' };
  let loadedModule: unknown;
  try {
    // A computed path: bundlers and tsc leave it alone, and a missing file is not a crash.
    loadedModule = require(ADDON_PATH) as unknown;
  } catch (error) {
    return { addon: null, reason: `does not load: ${error instanceof Error ? error.message : String(error)}` };
  }
  const candidate = loadedModule as Record<string, unknown>;
  const missing = FUNCTIONS.filter((name) => typeof candidate[name] !== 'function');
  if (missing.length > 0 || candidate.abiVersion !== ABI_VERSION) {
    return { addon: null, reason: 'is from another version (npm run build:native)' };
  }
  // A copy: the module object N-API fills, one property at a time, is a dictionary in V8, so
  // every addon.crc32c or addon.preadNow read from it would go through the generic load stub
  // (doc/network.md, "Property loads V8 cannot inline"); a spread copy has a fixed shape.
  return { addon: { ...candidate } as unknown as NativeAddon, path: ADDON_PATH };
}
