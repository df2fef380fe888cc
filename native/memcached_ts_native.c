/*
 * memcached-ts's optional native addon: the few system calls Node.js does not expose.
 *
 * What it is for (DESIGN.md decisions 3, 6, 7, 8):
 *   setTcpFastOpen(fd, queue)       setsockopt(TCP_FASTOPEN) on a listening socket (-o tcp_fastopen)
 *   getTcpFastOpen(fd)              read it back (tests, startup check)
 *   socketFlags(fd)                 [TCP_NODELAY, SO_KEEPALIVE] of a socket (tests)
 *   tcpSocket(addr, port, shared)   a bound, non-blocking TCP socket (SO_REUSEPORT when shared), for
 *                                   server.listen({ fd }, backlog) in each serving thread
 *   localPort(fd)                   getsockname()'s port: the port a socket bound to port 0 got
 *   dupFd(fd)                       dup() with close-on-exec: an accepted unix connection handed
 *                                   to another serving thread (the accepting handle closes its own)
 *   lockFile(fd)                    fcntl(F_SETLK) write lock on a whole file, false when another
 *                                   process holds one: two servers never share an extstore file
 *   getScheduler(tid)               [policy, priority] of a process or thread (0 = caller)
 *   lockBuffer(view)                mlock() a typed array's bytes: -k locks each slab page
 *   adviseHugePages(view)           madvise(MADV_HUGEPAGE) over the whole 2 MiB pages inside a
 *                                   typed array's bytes: the store's arena and hash table, so
 *                                   random item access walks fewer page tables (returns the
 *                                   bytes advised)
 *   preadBatch(fds, positions, views, done)
 *                                   several pread()s in one job of libuv's thread pool, one
 *                                   callback for all (extstore's reads: one thread wake and one
 *                                   completion per batch instead of per value)
 *   preadNow(fd, pos, head, ho, hl, body, bo, bl)
 *                                   preadv2(RWF_NOWAIT) into two views on the calling thread:
 *                                   the bytes the page cache holds, without waiting for the
 *                                   disk (extstore answers a cached value at once, straight
 *                                   into the reply, and sends only the rest to the thread
 *                                   pool); returns bytes read or -errno
 *   copyBytes(dst, do, src, so, n)  memmove between views, one of them shared memory (V8's
 *                                   own copies there are relaxed-atomic and slow): values of
 *                                   512 bytes and more into and out of the store's arena
 *   crc32c(view, start, end, value) CRC-32C (Castagnoli) of view[start, end), continuing from
 *                                   value: SSE4.2's crc32 instruction over three interleaved
 *                                   streams where the CPU has it, slice-by-8 tables otherwise
 *                                   (extstore records, the -e memory file)
 *   addressInPage(view)             the view's start address modulo the system page size (-e:
 *                                   where its bytes can be mapped from a file, see mapFile)
 *   mapFile(view, fd, offset)       mmap(MAP_SHARED | MAP_FIXED) the file's bytes from offset over
 *                                   the whole system pages inside a view (a SharedArrayBuffer the
 *                                   store made): -e's memory file; returns [first byte mapped,
 *                                   bytes mapped] relative to the view
 *   syncFile(view)                  msync(MS_SYNC) over the whole pages inside a mapped view
 *   dropMapping(start, length)      madvise(MADV_DONTNEED) over [start, start + length): the
 *                                   server drops its mappings of read-only file pages (Node's
 *                                   own code that only ran at startup); the page cache keeps
 *                                   them and a later access maps them again
 *   yieldAfterPoll()                a uv_check handle on the calling thread's event loop that
 *                                   calls sched_yield() after each poll phase: a serving
 *                                   thread that shares its CPU with another lets it run once
 *                                   it has handled what it was woken for, instead of at the
 *                                   next scheduler tick (-o loop_yield, doc/threads.md)
 *   lockAllMemory()                 mlockall(MCL_CURRENT | MCL_FUTURE): NOT for the server.
 *                                   V8 releases heap pages with madvise(MADV_DONTNEED), which
 *                                   fails on locked memory, and V8 then aborts the process
 *                                   (Node 20, measured: test/platform/native.test.ts)
 *
 * What it is not for: anything Node.js can do itself, and changing the scheduling policy
 * (sched_setscheduler changes only the calling thread; launch under chrt or systemd instead).
 *
 * Failures throw an Error with `code` (the errno name, e.g. "EPERM"), `errno` and `syscall`.
 * Linux only; the server runs without this addon (src/platform/native.ts).
 */
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

#define ADDRESS_BYTES_MAX 64

static const char *errno_name(int e) {
    switch (e) {
        case EPERM: return "EPERM";
        case ENOENT: return "ENOENT";
        case ESRCH: return "ESRCH";
        case EINTR: return "EINTR";
        case EBADF: return "EBADF";
        case EAGAIN: return "EAGAIN";
        case ENOMEM: return "ENOMEM";
        case EACCES: return "EACCES";
        case EINVAL: return "EINVAL";
        case EMFILE: return "EMFILE";
        case ENFILE: return "ENFILE";
        case ENOTSOCK: return "ENOTSOCK";
        case ENOPROTOOPT: return "ENOPROTOOPT";
        case EOPNOTSUPP: return "EOPNOTSUPP";
        case EAFNOSUPPORT: return "EAFNOSUPPORT";
        case EADDRINUSE: return "EADDRINUSE";
        case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
        default: return "EUNKNOWN";
    }
}

/* Throw Error("<syscall>: <strerror>") with code, errno and syscall properties. */
static napi_value throw_errno(napi_env env, const char *syscall, int e) {
    char text[160];
    snprintf(text, sizeof text, "%s: %s", syscall, strerror(e));
    napi_value message, code, error, number, name;
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, message, &error);
    napi_create_int32(env, e, &number);
    napi_set_named_property(env, error, "errno", number);
    napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name);
    napi_set_named_property(env, error, "syscall", name);
    napi_throw(env, error);
    return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return NULL;
}

/* argv[index] as an int32, or a TypeError. */
static int int_arg(napi_env env, napi_value *argv, size_t argc, size_t index, int32_t *out) {
    napi_valuetype type;
    if (index >= argc || napi_typeof(env, argv[index], &type) != napi_ok || type != napi_number) return 0;
    return napi_get_value_int32(env, argv[index], out) == napi_ok;
}

static napi_value undefined_value(napi_env env) {
    napi_value u;
    napi_get_undefined(env, &u);
    return u;
}

static napi_value set_tcp_fast_open(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    int32_t fd, queue;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!int_arg(env, argv, argc, 0, &fd) || !int_arg(env, argv, argc, 1, &queue) || fd < 0 || queue < 0) {
        return throw_type(env, "setTcpFastOpen(fd, queueLength): two non-negative integers");
    }
    int value = queue;
    if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &value, sizeof value) != 0) {
        return throw_errno(env, "setsockopt(TCP_FASTOPEN)", errno);
    }
    return undefined_value(env);
}

/* The one argument of a function taking a descriptor: false when it is not one. */
static bool fd_only_arg(napi_env env, napi_callback_info info, int32_t *fd) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    return int_arg(env, argv, argc, 0, fd) && *fd >= 0;
}

static napi_value get_tcp_fast_open(napi_env env, napi_callback_info info) {
    int32_t fd;
    if (!fd_only_arg(env, info, &fd)) return throw_type(env, "getTcpFastOpen(fd): a descriptor");
    int value = 0;
    socklen_t size = sizeof value;
    if (getsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &value, &size) != 0) {
        return throw_errno(env, "getsockopt(TCP_FASTOPEN)", errno);
    }
    napi_value out;
    napi_create_int32(env, value, &out);
    return out;
}

/* [TCP_NODELAY, SO_KEEPALIVE] of a TCP socket, each 0 or 1 (tests). */
static napi_value socket_flags(napi_env env, napi_callback_info info) {
    int32_t fd;
    if (!fd_only_arg(env, info, &fd)) return throw_type(env, "socketFlags(fd): a descriptor");
    int nodelay = 0, keepalive = 0;
    socklen_t bytes = sizeof nodelay;
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &bytes) != 0) return throw_errno(env, "getsockopt(TCP_NODELAY)", errno);
    bytes = sizeof keepalive;
    if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive, &bytes) != 0) return throw_errno(env, "getsockopt(SO_KEEPALIVE)", errno);
    napi_value out, a, b;
    napi_create_array_with_length(env, 2, &out);
    napi_create_int32(env, nodelay != 0, &a);
    napi_create_int32(env, keepalive != 0, &b);
    napi_set_element(env, out, 0, a);
    napi_set_element(env, out, 1, b);
    return out;
}

static int set_flag(int fd, int level, int name) {
    int one = 1;
    return setsockopt(fd, level, name, &one, sizeof one);
}

/* A TCP socket bound to address:port with SO_REUSEADDR, and SO_REUSEPORT when `shared` is
 * true (other such sockets may bind the same port); non-blocking and close-on-exec, not yet
 * listening: Node's server.listen({ fd }, backlog) calls listen(). */
static napi_value tcp_socket(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    int32_t port;
    bool shared = false;
    char address[ADDRESS_BYTES_MAX];
    size_t length = 0;
    napi_valuetype type;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 2 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string ||
        napi_get_value_string_utf8(env, argv[0], address, sizeof address, &length) != napi_ok ||
        length >= sizeof address - 1 || !int_arg(env, argv, argc, 1, &port) || port < 0 || port > 65535 ||
        argc < 3 || napi_get_value_bool(env, argv[2], &shared) != napi_ok) {
        return throw_type(env, "tcpSocket(address, port, shared): an IP address, a port and a boolean");
    }
    struct sockaddr_storage storage;
    socklen_t storage_bytes;
    memset(&storage, 0, sizeof storage);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&storage;
    int family;
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
        family = AF_INET;
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        storage_bytes = sizeof *v4;
    } else if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
        family = AF_INET6;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        storage_bytes = sizeof *v6;
    } else {
        return throw_type(env, "tcpSocket: the address must be an IPv4 or IPv6 literal");
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return throw_errno(env, "socket", errno);
    const char *failed = NULL;
    if (set_flag(fd, SOL_SOCKET, SO_REUSEADDR) != 0) failed = "setsockopt(SO_REUSEADDR)";
    else if (shared && set_flag(fd, SOL_SOCKET, SO_REUSEPORT) != 0) failed = "setsockopt(SO_REUSEPORT)";
    else if (family == AF_INET6 && set_flag(fd, IPPROTO_IPV6, IPV6_V6ONLY) != 0) failed = "setsockopt(IPV6_V6ONLY)";
    /* As memcached's listening sockets: Linux copies both to every accepted socket, so no
     * setsockopt per connection. */
    else if (set_flag(fd, SOL_SOCKET, SO_KEEPALIVE) != 0) failed = "setsockopt(SO_KEEPALIVE)";
    else if (set_flag(fd, IPPROTO_TCP, TCP_NODELAY) != 0) failed = "setsockopt(TCP_NODELAY)";
    else if (bind(fd, (struct sockaddr *)&storage, storage_bytes) != 0) failed = "bind";
    if (failed != NULL) {
        int e = errno;
        close(fd);
        return throw_errno(env, failed, e);
    }
    napi_value out;
    napi_create_int32(env, fd, &out);
    return out;
}

/* The local port of a bound socket (getsockname), IPv4 or IPv6. */
static napi_value local_port(napi_env env, napi_callback_info info) {
    int32_t fd;
    if (!fd_only_arg(env, info, &fd)) return throw_type(env, "localPort(fd): a socket descriptor");
    struct sockaddr_storage storage;
    socklen_t bytes = sizeof storage;
    memset(&storage, 0, sizeof storage);
    if (getsockname(fd, (struct sockaddr *)&storage, &bytes) != 0) return throw_errno(env, "getsockname", errno);
    int port;
    if (storage.ss_family == AF_INET) port = ntohs(((struct sockaddr_in *)&storage)->sin_port);
    else if (storage.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&storage)->sin6_port);
    else return throw_type(env, "localPort: not an IP socket");
    napi_value out;
    napi_create_int32(env, port, &out);
    return out;
}

/* dup(fd) with FD_CLOEXEC. */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
    int32_t fd;
    if (!fd_only_arg(env, info, &fd)) return throw_type(env, "dupFd(fd): a descriptor");
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
    napi_value out;
    napi_create_int32(env, copy, &out);
    return out;
}

/* A write lock on the whole file (fcntl, released when the process ends): true when taken,
 * false when another process holds a lock on it; other failures throw. */
static napi_value lock_file(napi_env env, napi_callback_info info) {
    int32_t fd;
    if (!fd_only_arg(env, info, &fd)) return throw_type(env, "lockFile(fd): a descriptor");
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = 0;
    lock.l_len = 0;
    bool taken = true;
    if (fcntl(fd, F_SETLK, &lock) < 0) {
        if (errno != EAGAIN && errno != EACCES) return throw_errno(env, "fcntl(F_SETLK)", errno);
        taken = false;
    }
    napi_value out;
    napi_get_boolean(env, taken, &out);
    return out;
}

/* [policy, priority] of thread or process `tid` (0: the calling thread). The policy is
 * Linux's number (SCHED_OTHER 0, SCHED_FIFO 1, SCHED_RR 2, SCHED_BATCH 3, SCHED_IDLE 5,
 * SCHED_DEADLINE 6) without the SCHED_RESET_ON_FORK flag. */
static napi_value get_scheduler(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    int32_t tid = 0;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc > 0 && (!int_arg(env, argv, argc, 0, &tid) || tid < 0)) {
        return throw_type(env, "getScheduler(tid): a thread or process id, or 0");
    }
    int policy = sched_getscheduler((pid_t)tid);
    if (policy < 0) return throw_errno(env, "sched_getscheduler", errno);
#ifdef SCHED_RESET_ON_FORK
    policy &= ~SCHED_RESET_ON_FORK;
#endif
    struct sched_param param;
    if (sched_getparam((pid_t)tid, &param) != 0) return throw_errno(env, "sched_getparam", errno);
    napi_value out, p, q;
    napi_create_array_with_length(env, 2, &out);
    napi_create_int32(env, policy, &p);
    napi_create_int32(env, param.sched_priority, &q);
    napi_set_element(env, out, 0, p);
    napi_set_element(env, out, 1, q);
    return out;
}

/* The bytes of a TypedArray or Buffer argument; 0 (exception pending) when it is not one. */
static int view_bytes(napi_env env, napi_value view, const char *usage, char **data_out, size_t *bytes_out) {
    bool is_typed = false;
    if (napi_is_typedarray(env, view, &is_typed) != napi_ok || !is_typed) {
        throw_type(env, usage);
        return 0;
    }
    napi_typedarray_type type;
    size_t length;
    void *data;
    napi_value buffer;
    size_t offset;
    if (napi_get_typedarray_info(env, view, &type, &length, &data, &buffer, &offset) != napi_ok) {
        throw_type(env, usage);
        return 0;
    }
    size_t element = 1;
    switch (type) {
        case napi_int16_array: case napi_uint16_array: element = 2; break;
        case napi_int32_array: case napi_uint32_array: case napi_float32_array: element = 4; break;
        case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: element = 8; break;
        default: element = 1;
    }
    *data_out = data;
    *bytes_out = length * element;
    return 1;
}

/* The bytes of a function's one TypedArray or Buffer argument; 0 (exception pending) when
 * it is missing or not one. */
static int one_view_arg(napi_env env, napi_callback_info info, const char *usage, char **data, size_t *bytes) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 1) {
        throw_type(env, usage);
        return 0;
    }
    return view_bytes(env, argv[0], usage, data, bytes);
}

/* mlock() the bytes of a TypedArray or Buffer (also one over a SharedArrayBuffer). The
 * memory must outlive the lock's purpose: slab pages are never freed. */
static napi_value lock_buffer(napi_env env, napi_callback_info info) {
    char *data;
    size_t bytes;
    if (!one_view_arg(env, info, "lockBuffer(view): a Buffer or TypedArray", &data, &bytes)) return NULL;
    if (bytes > 0 && mlock(data, bytes) != 0) return throw_errno(env, "mlock", errno);
    return undefined_value(env);
}

#define HUGE_PAGE_BYTES ((uintptr_t)2 * 1024 * 1024)

/* madvise(MADV_HUGEPAGE) over the 2 MiB-aligned part of a view's bytes (the kernel's
 * transparent huge pages in "madvise" mode then back it with 2 MiB pages as it is touched).
 * Returns the bytes advised (0 when the view holds no whole 2 MiB page). */
static napi_value advise_huge_pages(napi_env env, napi_callback_info info) {
    char *data;
    size_t bytes;
    if (!one_view_arg(env, info, "adviseHugePages(view): a Buffer or TypedArray", &data, &bytes)) return NULL;
    uintptr_t start = ((uintptr_t)data + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
    uintptr_t end = ((uintptr_t)data + bytes) & ~(HUGE_PAGE_BYTES - 1);
    double advised = 0;
#ifdef MADV_HUGEPAGE
    if (end > start) {
        if (madvise((void *)start, end - start, MADV_HUGEPAGE) != 0) return throw_errno(env, "madvise", errno);
        advised = (double)(end - start);
    }
#endif
    napi_value out;
    napi_create_double(env, advised, &out);
    return out;
}

static int view_arg_at(napi_env env, napi_value *argv, size_t argc, size_t index, const char *usage, char **data, size_t *bytes) {
    if (index >= argc) {
        throw_type(env, usage);
        return 0;
    }
    return view_bytes(env, argv[index], usage, data, bytes);
}

static uintptr_t system_page_bytes(void) {
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (uintptr_t)page : 4096;
}

/* A view's start address modulo the page size: a file region can be mapped over the view's
 * interior only if the region's offset has the same remainder. */
static napi_value address_in_page(napi_env env, napi_callback_info info) {
    char *data;
    size_t bytes;
    if (!one_view_arg(env, info, "addressInPage(view): a Buffer or TypedArray", &data, &bytes)) return NULL;
    napi_value out;
    napi_create_double(env, (double)((uintptr_t)data % system_page_bytes()), &out);
    return out;
}

/* Map a file over the whole pages inside a view: view byte i becomes file byte offset + i
 * for every i in the mapped part. The memory stays owned by whoever allocated the view (V8);
 * when it is freed, munmap() removes the file mapping with it. The caller keeps the view for
 * the life of the process (the store's buffers are never freed). */
static napi_value map_file(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    const char *usage = "mapFile(view, fd, offset): a TypedArray, a file descriptor and a byte offset";
    char *data;
    size_t bytes;
    if (!view_arg_at(env, argv, argc, 0, usage, &data, &bytes)) return NULL;
    int32_t fd;
    if (!int_arg(env, argv, argc, 1, &fd)) return throw_type(env, usage);
    double offset_number;
    if (napi_get_value_double(env, argv[2], &offset_number) != napi_ok || offset_number < 0) return throw_type(env, usage);
    uintptr_t page = system_page_bytes();
    uintptr_t base = (uintptr_t)data;
    uint64_t offset = (uint64_t)offset_number;
    if ((base - (uintptr_t)offset) % page != 0) return throw_errno(env, "mmap", EINVAL);
    uintptr_t start = (base + page - 1) & ~(page - 1);
    uintptr_t end = (base + bytes) & ~(page - 1);
    double head = 0, mapped = 0;
    if (end > start) {
        void *at = mmap((void *)start, end - start, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                        (off_t)(offset + (start - base)));
        if (at == MAP_FAILED) return throw_errno(env, "mmap", errno);
        head = (double)(start - base);
        mapped = (double)(end - start);
    }
    napi_value out, h, m;
    napi_create_array_with_length(env, 2, &out);
    napi_create_double(env, head, &h);
    napi_create_double(env, mapped, &m);
    napi_set_element(env, out, 0, h);
    napi_set_element(env, out, 1, m);
    return out;
}

/* msync(MS_SYNC) the whole pages inside a view (mapped by mapFile). */
static napi_value sync_file(napi_env env, napi_callback_info info) {
    char *data;
    size_t bytes;
    if (!one_view_arg(env, info, "syncFile(view): a Buffer or TypedArray", &data, &bytes)) return NULL;
    uintptr_t page = system_page_bytes();
    uintptr_t start = ((uintptr_t)data + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)data + bytes) & ~(page - 1);
    if (end > start && msync((void *)start, end - start, MS_SYNC) != 0) return throw_errno(env, "msync", errno);
    return undefined_value(env);
}

/* madvise(MADV_DONTNEED) over an address range given as numbers (page aligned). Only for
 * read-only, private file mappings without anonymous (copied-on-write) pages: there it drops
 * this process's page table entries and nothing else; the caller checks that in smaps. */
static napi_value drop_mapping(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    const char *usage = "dropMapping(start, length): page-aligned numbers";
    double start, length;
    if (argc < 2 || napi_get_value_double(env, argv[0], &start) != napi_ok ||
        napi_get_value_double(env, argv[1], &length) != napi_ok || start < 0 || length < 0) return throw_type(env, usage);
    uintptr_t page = system_page_bytes();
    uintptr_t at = (uintptr_t)start;
    size_t bytes = (size_t)length;
    if (at % page != 0 || bytes % page != 0) return throw_errno(env, "madvise", EINVAL);
    if (bytes > 0 && madvise((void *)at, bytes, MADV_DONTNEED) != 0) return throw_errno(env, "madvise", errno);
    return undefined_value(env);
}

/* One pread of a batch: the target bytes stay valid while the batch holds a reference to
 * the array of views. */
typedef struct {
    int fd;
    char *data;
    size_t len;
    int64_t pos;
    int32_t result; /* bytes read, or -errno */
} read_op;

typedef struct {
    napi_async_work work;
    napi_ref done;
    napi_ref views;
    uint32_t count;
    read_op ops[];
} read_batch;

static void read_batch_execute(napi_env env, void *data) {
    (void)env;
    read_batch *b = data;
    for (uint32_t i = 0; i < b->count; i++) {
        read_op *op = &b->ops[i];
        ssize_t n;
        do {
            n = pread(op->fd, op->data, op->len, (off_t)op->pos);
        } while (n < 0 && errno == EINTR);
        op->result = n < 0 ? -errno : (int32_t)n;
    }
}

static void read_batch_complete(napi_env env, napi_status status, void *data) {
    read_batch *b = data;
    napi_value done, global, results_buffer, results, argv[1];
    void *results_data = NULL;
    napi_get_reference_value(env, b->done, &done);
    napi_get_global(env, &global);
    napi_create_arraybuffer(env, (size_t)b->count * 4, &results_data, &results_buffer);
    int32_t *out = results_data;
    for (uint32_t i = 0; i < b->count; i++) out[i] = status == napi_ok ? b->ops[i].result : -ECANCELED;
    napi_create_typedarray(env, napi_int32_array, b->count, results_buffer, 0, &results);
    argv[0] = results;
    napi_delete_reference(env, b->done);
    napi_delete_reference(env, b->views);
    napi_delete_async_work(env, b->work);
    free(b);
    napi_value ignored;
    napi_call_function(env, global, done, 1, argv, &ignored);
}

/* preadBatch(fds: Int32Array, positions: Float64Array, views: Uint8Array[], done(results)):
 * pread(fds[i], views[i], views[i].length, positions[i]) for every i in one thread pool job;
 * done gets an Int32Array of byte counts (or -errno), in order. */
static napi_value pread_batch(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    const char *usage = "preadBatch(fds: Int32Array, positions: Float64Array, views: Uint8Array[], done)";
    napi_valuetype done_type;
    bool is_array = false;
    if (argc < 4 || napi_typeof(env, argv[3], &done_type) != napi_ok || done_type != napi_function ||
        napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) return throw_type(env, usage);
    char *fds_data, *pos_data;
    size_t fds_bytes, pos_bytes;
    if (!view_bytes(env, argv[0], usage, &fds_data, &fds_bytes)) return NULL;
    if (!view_bytes(env, argv[1], usage, &pos_data, &pos_bytes)) return NULL;
    uint32_t count;
    napi_get_array_length(env, argv[2], &count);
    if (count == 0 || fds_bytes < (size_t)count * 4 || pos_bytes < (size_t)count * 8) return throw_type(env, usage);
    read_batch *b = calloc(1, sizeof(read_batch) + (size_t)count * sizeof(read_op));
    if (b == NULL) return throw_errno(env, "calloc", ENOMEM);
    b->count = count;
    for (uint32_t i = 0; i < count; i++) {
        napi_value view;
        napi_get_element(env, argv[2], i, &view);
        if (!view_bytes(env, view, usage, &b->ops[i].data, &b->ops[i].len)) {
            free(b);
            return NULL;
        }
        b->ops[i].fd = ((int32_t *)fds_data)[i];
        b->ops[i].pos = (int64_t)((double *)pos_data)[i];
    }
    napi_value name;
    napi_create_string_utf8(env, "memcached-ts:preadBatch", NAPI_AUTO_LENGTH, &name);
    napi_create_reference(env, argv[3], 1, &b->done);
    napi_create_reference(env, argv[2], 1, &b->views);
    if (napi_create_async_work(env, NULL, name, read_batch_execute, read_batch_complete, b, &b->work) != napi_ok ||
        napi_queue_async_work(env, b->work) != napi_ok) {
        napi_delete_reference(env, b->done);
        napi_delete_reference(env, b->views);
        free(b);
        return throw_errno(env, "napi_queue_async_work", EIO);
    }
    return undefined_value(env);
}

/* preadNow(fd, pos, head, headOffset, headLength, body, bodyOffset, bodyLength): one
 * preadv2(RWF_NOWAIT) from file position pos into head[headOffset, +headLength) and then
 * body[bodyOffset, +bodyLength) (an extstore record: its header and key into a scratch
 * buffer, its value straight into the reply), on the calling thread. Returns the bytes read
 * (fewer than asked when only part is in the page cache) or -errno: -EAGAIN when the first
 * byte would need the device, -EOPNOTSUPP where the file system or kernel cannot do it.
 * Never waits for the device. A number, not an exception: it is the fast path. */
static napi_value pread_now(napi_env env, napi_callback_info info) {
    size_t argc = 8;
    napi_value argv[8];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    const char *usage = "preadNow(fd, pos, head, headOffset, headLength, body, bodyOffset, bodyLength)";
    int32_t fd;
    double pos, ho, hl, bo, bl;
    char *head, *body;
    size_t head_bytes, body_bytes;
    if (argc < 8 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
        napi_get_value_double(env, argv[1], &pos) != napi_ok ||
        napi_get_value_double(env, argv[3], &ho) != napi_ok || napi_get_value_double(env, argv[4], &hl) != napi_ok ||
        napi_get_value_double(env, argv[6], &bo) != napi_ok || napi_get_value_double(env, argv[7], &bl) != napi_ok ||
        pos < 0 || ho < 0 || hl < 0 || bo < 0 || bl < 0) {
        return throw_type(env, usage);
    }
    if (!view_bytes(env, argv[2], usage, &head, &head_bytes)) return NULL;
    if (!view_bytes(env, argv[5], usage, &body, &body_bytes)) return NULL;
    if (ho + hl > (double)head_bytes || bo + bl > (double)body_bytes) return throw_type(env, usage);
    ssize_t n;
#ifdef RWF_NOWAIT
    struct iovec iov[2] = {
        { .iov_base = head + (size_t)ho, .iov_len = (size_t)hl },
        { .iov_base = body + (size_t)bo, .iov_len = (size_t)bl },
    };
    do {
        n = preadv2(fd, iov, 2, (off_t)pos, RWF_NOWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) n = -errno;
#else
    (void)head;
    (void)body;
    n = -EOPNOTSUPP;
#endif
    napi_value out;
    napi_create_int32(env, (int32_t)n, &out);
    return out;
}

/* copyBytes(dst, dstOffset, src, srcOffset, length): memmove between two TypedArrays or
 * Buffers, either of them over a SharedArrayBuffer. V8 copies into or out of shared memory
 * with relaxed atomic accesses (relaxed_memmove, a few bytes per cycle), which made 10% of
 * the server's cycles with 4 KiB values; libc's memmove moves 16 to 32 bytes per cycle. The
 * caller keeps the ranges in bounds (checked here too: a TypeError). Another thread writing
 * the same bytes meanwhile is the caller's race, as with the store's own copies. */
static napi_value copy_bytes(napi_env env, napi_callback_info info) {
    size_t argc = 5;
    napi_value argv[5];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    const char *usage = "copyBytes(dst, dstOffset, src, srcOffset, length)";
    double dst_at, src_at, n;
    char *dst, *src;
    size_t dst_bytes, src_bytes;
    if (argc < 5 || napi_get_value_double(env, argv[1], &dst_at) != napi_ok ||
        napi_get_value_double(env, argv[3], &src_at) != napi_ok || napi_get_value_double(env, argv[4], &n) != napi_ok ||
        dst_at < 0 || src_at < 0 || n < 0) {
        return throw_type(env, usage);
    }
    if (!view_bytes(env, argv[0], usage, &dst, &dst_bytes)) return NULL;
    if (!view_bytes(env, argv[2], usage, &src, &src_bytes)) return NULL;
    if (dst_at + n > (double)dst_bytes || src_at + n > (double)src_bytes) return throw_type(env, usage);
    memmove(dst + (size_t)dst_at, src + (size_t)src_at, (size_t)n);
    return NULL;
}

/* ---- CRC-32C (Castagnoli) -------------------------------------------------------------
 *
 * The checksum of extstore records and of the -e memory file, as memcached's extstore uses
 * CRC-32C. Reflected polynomial 0x82F63B78; the public value is the register inverted on the
 * way in and out, so crc32c(b, crc32c(a)) == crc32c(a || b), and "123456789" gives 0xE3069283.
 *
 * Two implementations give the same results:
 *   - slice-by-8 tables (any CPU): eight bytes per step through eight 256-entry tables;
 *   - SSE4.2 (x86-64 CPUs that report it): the crc32 instruction, 8 bytes per instruction.
 *     One stream is bound by the instruction's latency (3 cycles), so long inputs are cut into
 *     three blocks checksummed side by side and joined: the register is linear over GF(2), so
 *     crc(A || B) = zeros(crc(A), |B|) xor crc_from_zero(B), where zeros(r, n) is the register
 *     after n zero bytes. zeros() for each block size is four 256-entry tables built at load
 *     from the 32 basis registers (each fed n zero bytes).
 */
#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_slices[8][256];

static void crc32c_build_slices(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_slices[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc32c_slices[t - 1][n];
            crc32c_slices[t][n] = (prev >> 8) ^ crc32c_slices[0][prev & 0xff];
        }
    }
}

/* The register after the bytes (no inversion here). */
static uint32_t crc32c_soft(uint32_t reg, const unsigned char *p, size_t n) {
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        reg = (reg >> 8) ^ crc32c_slices[0][(reg ^ *p++) & 0xff];
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= reg;
        reg = crc32c_slices[7][w & 0xff] ^ crc32c_slices[6][(w >> 8) & 0xff] ^
              crc32c_slices[5][(w >> 16) & 0xff] ^ crc32c_slices[4][(w >> 24) & 0xff] ^
              crc32c_slices[3][(w >> 32) & 0xff] ^ crc32c_slices[2][(w >> 40) & 0xff] ^
              crc32c_slices[1][(w >> 48) & 0xff] ^ crc32c_slices[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) reg = (reg >> 8) ^ crc32c_slices[0][(reg ^ *p++) & 0xff];
    return reg;
}

#if defined(__x86_64__)
/* Block sizes of the three-stream rounds, largest first (multiples of 8). */
#define CRC32C_TIERS 4
static const size_t crc32c_block[CRC32C_TIERS] = {8192, 1344, 256, 64};
/* crc32c_zeros[t][k][b]: the register after crc32c_block[t] zero bytes, from b << 8k. */
static uint32_t crc32c_zeros[CRC32C_TIERS][4][256];
static bool crc32c_has_sse42 = false;

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw_one(uint32_t reg, const unsigned char *p, size_t n) {
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        reg = _mm_crc32_u8(reg, *p++);
        n--;
    }
    uint64_t r = reg;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        r = _mm_crc32_u64(r, w);
        p += 8;
        n -= 8;
    }
    reg = (uint32_t)r;
    while (n-- > 0) reg = _mm_crc32_u8(reg, *p++);
    return reg;
}

static uint32_t crc32c_shift(int tier, uint32_t reg) {
    const uint32_t (*z)[256] = crc32c_zeros[tier];
    return z[0][reg & 0xff] ^ z[1][(reg >> 8) & 0xff] ^ z[2][(reg >> 16) & 0xff] ^ z[3][reg >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t reg, const unsigned char *p, size_t n) {
    for (int t = 0; t < CRC32C_TIERS; t++) {
        size_t block = crc32c_block[t];
        while (n >= 3 * block) {
            uint64_t a = reg, b = 0, c = 0;
            const unsigned char *pa = p, *pb = p + block, *pc = p + 2 * block;
            for (size_t i = 0; i < block; i += 8) {
                uint64_t wa, wb, wc;
                memcpy(&wa, pa + i, 8);
                memcpy(&wb, pb + i, 8);
                memcpy(&wc, pc + i, 8);
                a = _mm_crc32_u64(a, wa);
                b = _mm_crc32_u64(b, wb);
                c = _mm_crc32_u64(c, wc);
            }
            reg = crc32c_shift(t, (uint32_t)a) ^ (uint32_t)b;
            reg = crc32c_shift(t, reg) ^ (uint32_t)c;
            p += 3 * block;
            n -= 3 * block;
        }
    }
    return crc32c_hw_one(reg, p, n);
}

static void crc32c_build_zeros(void) {
    static const unsigned char zeros[8192] = {0};
    for (int t = 0; t < CRC32C_TIERS; t++) {
        uint32_t basis[32];
        for (int bit = 0; bit < 32; bit++) basis[bit] = crc32c_hw_one(1u << bit, zeros, crc32c_block[t]);
        for (int k = 0; k < 4; k++) {
            for (uint32_t v = 0; v < 256; v++) {
                uint32_t r = 0;
                for (int bit = 0; bit < 8; bit++) {
                    if (v & (1u << bit)) r ^= basis[8 * k + bit];
                }
                crc32c_zeros[t][k][v] = r;
            }
        }
    }
}
#endif

static void crc32c_init(void) {
    crc32c_build_slices();
#if defined(__x86_64__)
    unsigned int eax, ebx, ecx, edx;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_SSE4_2) != 0) {
        crc32c_has_sse42 = true;
        crc32c_build_zeros();
    }
#endif
}

static uint32_t crc32c_update(uint32_t value, const unsigned char *p, size_t n) {
    uint32_t reg = ~value;
#if defined(__x86_64__)
    if (crc32c_has_sse42) return ~crc32c_hw(reg, p, n);
#endif
    return ~crc32c_soft(reg, p, n);
}

/* crc32c(view, start, end, value): CRC-32C of view's bytes [start, end), continuing from value
 * (0 to begin). Returns an unsigned 32-bit number. */
static napi_value crc32c_fn(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    const char *usage = "crc32c(view: Uint8Array, start, end, value)";
    char *data;
    size_t bytes;
    double start, end;
    uint32_t value;
    if (argc < 4 || napi_get_value_double(env, argv[1], &start) != napi_ok ||
        napi_get_value_double(env, argv[2], &end) != napi_ok ||
        napi_get_value_uint32(env, argv[3], &value) != napi_ok) return throw_type(env, usage);
    if (!view_bytes(env, argv[0], usage, &data, &bytes)) return NULL;
    if (!(start >= 0 && start <= end && end <= (double)bytes)) return throw_type(env, usage);
    uint32_t crc = crc32c_update(value, (const unsigned char *)data + (size_t)start, (size_t)(end - start));
    napi_value out;
    napi_create_uint32(env, crc, &out);
    return out;
}

/* Which CRC-32C implementation this CPU gets: "sse4.2" or "table". */
static napi_value crc32c_kind(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value out;
#if defined(__x86_64__)
    napi_create_string_utf8(env, crc32c_has_sse42 ? "sse4.2" : "table", NAPI_AUTO_LENGTH, &out);
#else
    napi_create_string_utf8(env, "table", NAPI_AUTO_LENGTH, &out);
#endif
    return out;
}

static napi_value lock_all_memory(napi_env env, napi_callback_info info) {
    (void)info;
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) return throw_errno(env, "mlockall", errno);
    return undefined_value(env);
}

/*
 * trimMalloc(): give free C heap memory back to the kernel (glibc's malloc_trim over every
 * arena, the worker threads' included); returns whether anything was released. V8's
 * compiler works in C heap zones that glibc keeps after they are freed.
 */
static napi_value trim_malloc(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value out;
#ifdef __GLIBC__
    napi_get_boolean(env, malloc_trim(0) == 1, &out);
#else
    napi_get_boolean(env, false, &out);
#endif
    return out;
}

/* After each poll phase, give the CPU to whatever else is runnable on it (nothing: returns at
 * once). The handle is unreferenced (it never keeps the loop alive) and closed when the
 * thread's environment is torn down. Its close callback is libc's free, not a function of this
 * library: a worker thread's environment unloads the addons it loaded before its loop runs
 * the close callbacks (a callback here would then jump into unmapped code; tested). */
static void yield_after_poll_cb(uv_check_t *handle) {
    (void)handle;
    sched_yield();
}

static void yield_cleanup(void *arg) {
    uv_close((uv_handle_t *)arg, (uv_close_cb)(void (*)(void))free);
}

static napi_value yield_after_poll(napi_env env, napi_callback_info info) {
    (void)info;
    struct uv_loop_s *loop = NULL;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) return throw_type(env, "yieldAfterPoll: no event loop");
    uv_check_t *handle = malloc(sizeof *handle);
    if (handle == NULL) return throw_errno(env, "malloc", ENOMEM);
    int rc = uv_check_init(loop, handle);
    if (rc == 0) rc = uv_check_start(handle, yield_after_poll_cb);
    if (rc != 0) {
        free(handle);
        return throw_errno(env, "uv_check_start", -rc);
    }
    uv_unref((uv_handle_t *)handle);
    napi_add_env_cleanup_hook(env, yield_cleanup, handle);
    napi_value out;
    napi_get_undefined(env, &out);
    return out;
}

/* setThreadName(name): the calling thread's name, as `ps -L`, `top -H` and
 * /proc/<pid>/task/<tid>/comm show it (prctl PR_SET_NAME). The kernel keeps 15 bytes; a longer
 * name is cut there. */
static napi_value set_thread_name(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    char name[16];
    size_t len = 0;
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok || len == 0) {
        return throw_type(env, "setThreadName(name): a non-empty string");
    }
    if (prctl(PR_SET_NAME, name, 0, 0, 0) != 0) return throw_errno(env, "prctl", errno);
    napi_value out;
    napi_get_undefined(env, &out);
    return out;
}

static napi_value init(napi_env env, napi_value exports) {
    crc32c_init();
    napi_property_descriptor functions[] = {
        {"setTcpFastOpen", NULL, set_tcp_fast_open, NULL, NULL, NULL, napi_enumerable, NULL},
        {"getTcpFastOpen", NULL, get_tcp_fast_open, NULL, NULL, NULL, napi_enumerable, NULL},
        {"socketFlags", NULL, socket_flags, NULL, NULL, NULL, napi_enumerable, NULL},
        {"tcpSocket", NULL, tcp_socket, NULL, NULL, NULL, napi_enumerable, NULL},
        {"localPort", NULL, local_port, NULL, NULL, NULL, napi_enumerable, NULL},
        {"dupFd", NULL, dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
        {"lockFile", NULL, lock_file, NULL, NULL, NULL, napi_enumerable, NULL},
        {"getScheduler", NULL, get_scheduler, NULL, NULL, NULL, napi_enumerable, NULL},
        {"lockBuffer", NULL, lock_buffer, NULL, NULL, NULL, napi_enumerable, NULL},
        {"adviseHugePages", NULL, advise_huge_pages, NULL, NULL, NULL, napi_enumerable, NULL},
        {"preadBatch", NULL, pread_batch, NULL, NULL, NULL, napi_enumerable, NULL},
        {"lockAllMemory", NULL, lock_all_memory, NULL, NULL, NULL, napi_enumerable, NULL},
        {"addressInPage", NULL, address_in_page, NULL, NULL, NULL, napi_enumerable, NULL},
        {"mapFile", NULL, map_file, NULL, NULL, NULL, napi_enumerable, NULL},
        {"syncFile", NULL, sync_file, NULL, NULL, NULL, napi_enumerable, NULL},
        {"dropMapping", NULL, drop_mapping, NULL, NULL, NULL, napi_enumerable, NULL},
        {"preadNow", NULL, pread_now, NULL, NULL, NULL, napi_enumerable, NULL},
        {"crc32c", NULL, crc32c_fn, NULL, NULL, NULL, napi_enumerable, NULL},
        {"crc32cKind", NULL, crc32c_kind, NULL, NULL, NULL, napi_enumerable, NULL},
        {"copyBytes", NULL, copy_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
        {"trimMalloc", NULL, trim_malloc, NULL, NULL, NULL, napi_enumerable, NULL},
        {"yieldAfterPoll", NULL, yield_after_poll, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setThreadName", NULL, set_thread_name, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
    napi_value version;
    napi_create_int32(env, 15, &version);
    napi_set_named_property(env, exports, "abiVersion", version);
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
