#!/usr/bin/env python3
"""Exercise a memcached-compatible server through pymemcache (Debian: python3-pymemcache).

Usage: pymemcache_check.py HOST PORT

Runs every basic command with noreply off and on, checks each result, prints one line per
failed check and exits 1 if any failed, 0 otherwise. The server is flushed first.
"""

import sys
import time

from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

failures = []
checks = 0


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(what)
        print("FAIL: " + what, flush=True)


class FlagsSerde:
    """Passes bytes through and remembers the flags of the last value read."""

    def __init__(self):
        self.last_flags = None
        self.next_flags = 0

    def serialize(self, key, value):
        return value, self.next_flags

    def deserialize(self, key, value, flags):
        self.last_flags = flags
        return value


def main(host, port):
    serde = FlagsSerde()
    client = Client((host, port), serde=serde, connect_timeout=5, timeout=5, default_noreply=False)

    version = client.version()
    check(isinstance(version, bytes) and len(version) > 0, "version returns a non-empty string: %r" % (version,))
    check(client.flush_all() is True, "flush_all")

    # set / get, noreply off and on
    check(client.set("a", b"1") is True, "set returns True")
    check(client.get("a") == b"1", "get after set")
    check(client.set("b", b"two", noreply=True) is True, "set noreply returns True")
    check(client.get("b") == b"two", "get after set noreply")
    check(client.get("missing") is None, "get of a missing key is None")
    check(client.set("empty", b"") is True and client.get("empty") == b"", "empty value round-trips")
    binary = bytes(range(256)) + b"\r\nEND\r\n"
    check(client.set("bin", binary) is True and client.get("bin") == binary, "binary value with CRLF round-trips")
    big = b"x" * 500_000
    check(client.set("big", big) is True and client.get("big") == big, "500 kB value round-trips")

    # flags through the serde
    for flags in (0, 1, 2**31, 2**32 - 1):
        serde.next_flags = flags
        client.set("flagged", b"f")
        client.get("flagged")
        check(serde.last_flags == flags, "flags %d round-trip (got %r)" % (flags, serde.last_flags))
    serde.next_flags = 0

    # get_many / set_many / delete_many
    values = {("k%d" % i): ("v%d" % i).encode() for i in range(100)}
    check(client.set_many(values) == [], "set_many stores everything")
    got = client.get_many(list(values) + ["nope1", "nope2"])
    check(got == values, "get_many returns exactly the stored keys (%d of %d)" % (len(got), len(values)))
    check(client.delete_many(list(values)) is True, "delete_many")
    check(client.get_many(list(values)) == {}, "get_many after delete_many is empty")

    # gets / cas
    client.set("c", b"v1")
    value, cas = client.gets("c")
    check(value == b"v1" and cas is not None, "gets returns value and cas")
    check(client.cas("c", b"v2", cas) is True, "cas with the current unique stores")
    check(client.cas("c", b"v3", cas) is False, "cas with a stale unique is refused (EXISTS)")
    check(client.get("c") == b"v2", "value after cas")
    check(client.cas("nocas", b"x", cas) is None, "cas on a missing key is NOT_FOUND (None)")
    value2, cas2 = client.gets("c")
    check(cas2 != cas, "cas unique changes after a store")
    check(client.cas("c", b"v4", cas2, noreply=True) is True, "cas noreply returns True")
    check(client.get("c") == b"v4", "cas noreply stored")
    many = client.gets_many(["c", "a", "missing"])
    check(set(many) == {"c", "a"} and all(v[1] is not None for v in many.values()), "gets_many")

    # add / replace
    check(client.add("a", b"x") is False, "add of an existing key is refused")
    check(client.add("newkey", b"n") is True, "add of a new key stores")
    check(client.add("newkey2", b"n2", noreply=True) is True, "add noreply returns True")
    check(client.get("newkey2") == b"n2", "add noreply stored")
    check(client.replace("missing", b"x") is False, "replace of a missing key is refused")
    check(client.replace("a", b"replaced") is True, "replace of an existing key stores")
    check(client.replace("a", b"replaced2", noreply=True) is True and client.get("a") == b"replaced2", "replace noreply")

    # append / prepend
    client.set("ap", b"mid")
    check(client.append("ap", b"_end") is True, "append")
    check(client.prepend("ap", b"start_") is True, "prepend")
    check(client.get("ap") == b"start_mid_end", "append/prepend result")
    check(client.append("missing", b"x") is False, "append to a missing key is refused")
    check(client.prepend("missing", b"x") is False, "prepend to a missing key is refused")
    client.append("ap", b"!", noreply=True)
    client.prepend("ap", b"<", noreply=True)
    check(client.get("ap") == b"<start_mid_end!", "append/prepend noreply")

    # incr / decr
    client.set("n", b"10")
    check(client.incr("n", 5) == 15, "incr")
    check(client.decr("n", 3) == 12, "decr")
    check(client.decr("n", 100) == 0, "decr does not go below 0")
    check(client.incr("missing", 1) is None, "incr of a missing key is None")
    check(client.decr("missing", 1) is None, "decr of a missing key is None")
    check(client.incr("n", 7, noreply=True) is None, "incr noreply returns None")
    check(int(client.get("n")) == 7, "incr noreply applied")
    client.decr("n", 2, noreply=True)
    check(int(client.get("n")) == 5, "decr noreply applied")
    client.set("w", b"18446744073709551615")
    check(client.incr("w", 1) == 0, "incr wraps at 2^64")
    client.set("s", b"abc")
    try:
        client.incr("s", 1)
        check(False, "incr of a non-numeric value raises")
    except MemcacheClientError as e:
        check("non-numeric" in str(e), "incr of a non-numeric value: %s" % e)

    # delete
    check(client.delete("a") is True, "delete of an existing key")
    check(client.delete("a") is False, "delete of a missing key")
    check(client.delete("b", noreply=True) is True and client.get("b") is None, "delete noreply")

    # touch / expiry
    client.set("t", b"t", expire=100)
    check(client.touch("t", 1) is True, "touch of an existing key")
    check(client.touch("missing", 10) is False, "touch of a missing key")
    check(client.touch("n", 100, noreply=True) is True, "touch noreply returns True")
    client.set("gone", b"x", expire=-1)
    check(client.get("gone") is None, "negative expiry is already expired")
    deadline = time.time() + 4
    while time.time() < deadline and client.get("t") is not None:
        time.sleep(0.2)
    check(client.get("t") is None, "touched key expired within 4 s")

    # too large
    try:
        client.set("huge", b"h" * (2 * 1024 * 1024))
        check(False, "a 2 MB value is refused")
    except MemcacheServerError as e:
        check("too large" in str(e), "2 MB value: %s" % e)
    check(client.get("huge") is None, "refused value is not stored")
    check(client.get("n") is not None, "connection still usable after a refused value")

    # stats
    stats = client.stats()
    for name in (b"pid", b"uptime", b"curr_items", b"total_items", b"cmd_get", b"cmd_set", b"get_hits", b"get_misses", b"curr_connections", b"bytes"):
        check(name in stats, "stats has %s" % name.decode())
    check(stats.get(b"cmd_set", 0) > 0 and stats.get(b"get_hits", 0) > 0, "stats counters counted our commands")
    settings = client.stats("settings")
    check(settings.get(b"maxbytes") == 64 * 1024 * 1024, "stats settings maxbytes is -m 64: %r" % settings.get(b"maxbytes"))
    check(settings.get(b"item_size_max") == 1024 * 1024, "stats settings item_size_max")

    # flush_all with noreply, then everything is gone
    check(client.flush_all(noreply=True) is True, "flush_all noreply")
    check(client.get("n") is None and client.get("ap") is None, "flush_all removed everything")
    check(client.flush_all(noreply=False) is True, "flush_all")

    # pipelined noreply storm, then one read sees them all
    for i in range(500):
        client.set("p%d" % i, str(i).encode(), noreply=True)
    got = client.get_many(["p%d" % i for i in range(500)])
    check(len(got) == 500, "500 noreply sets then get_many sees all (%d)" % len(got))
    client.quit()

    # a HashClient spreading keys over the same server twice is still consistent
    hashed = HashClient([(host, port)], connect_timeout=5, timeout=5, default_noreply=False)
    check(hashed.set("hk", b"hv") is True and hashed.get("hk") == b"hv", "HashClient round-trip")
    hashed.close()
    client.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: pymemcache_check.py HOST PORT", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except Exception as e:  # an unexpected exception is a failure too, with its trace
        import traceback

        traceback.print_exc()
        failures.append("exception: %r" % (e,))
    print("%d checks, %d failed" % (checks, len(failures)), flush=True)
    sys.exit(1 if failures else 0)
