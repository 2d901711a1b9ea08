#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Independent generator of the Linux kernel's IPVS `mh` and `sh` tables.

Written from the kernel's algorithm (net/netfilter/ipvs/ip_vs_mh.c,
net/netfilter/ipvs/ip_vs_sh.c, lib/siphash.c, include/linux/hash.h), in
plain Python with the standard library only, and sharing no code with rvs.
The Rust test `sched::tests::kernel_tables` (crates/rvs-core) feeds it cases
and compares every slot with rvs's own tables, so that rvs directors and
kernel directors behind one ECMP group pick the same real server.

Usage:  ipvs_hash_tables.py [--lines] < cases.json > tables.json
        ipvs_hash_tables.py --self-test

Input: {"cases": [CASE, ...]} with
  CASE = {"sched": "mh" | "sh",
          "dests": [DEST, ...],         # in the kernel's list order (newest
                                        # first: ip_vs_ctl adds at the head)
          "clients": [[addr, port], ...],  # optional lookups
          "flags": {"fallback": bool, "port": bool}}  # mh-/sh- flags
  DEST = {"addr": "10.0.0.1" | "2001:db8::1", "port": 80,
          "weights": [w0, w1, ...]}     # w0 when added, then each -e edit

Output: {"tables": [{"table": [dest index | null, ...],  # 4093 or 256
                     "picks": [dest index | null, ...]}, ...]}
   or with --lines (no JSON parser needed by the reader): per case a line
   "table I I ..." and a line "picks I I ...", "-" standing for null.

What the kernel does, as modelled here:

* last_weight (ip_vs_ctl.c, __ip_vs_update_dest): set to the new weight
  when the dest is added or when the new weight is non-zero; so a dest
  added with weight 0 has last_weight 0, one edited to 0 keeps its old one.
* hsiphash on 64-bit hosts (lib/siphash.c): "HalfSipHash" is SipHash-1-3
  there: state v0..v3 = the four "somepseudorandomlygeneratedbytes"
  constants XOR the 64-bit key words (k0 into v0 and v2, k1 into v1 and
  v3); the final block carries len << 56 plus the trailing bytes (a u32 is
  read little-endian); one SipRound per block, v2 ^= 0xff, three rounds, the
  result v0^v1^v2^v3 truncated to u32 by the u32 return type.
* mh keys (ip_vs_mh.c, generate_hash_secret): hash1 = {2654435761,
  2654435761}, hash2 = {2654446892, 2654446892}.
* mh hash key (ip_vs_mh_hashkey): v = offset + ntohs(port) + ntohl(fold) as
  an unsigned int, fold = the IPv4 address or the XOR of the four IPv6
  words; hsiphash(&v, 4, key).
* mh table (ip_vs_mh_permutate / _populate): M = 4093 (IP_VS_MH_TAB_INDEX
  12 -> primes[4]); per dest offset = h1 % M, skip = h2 % (M - 1) + 1;
  gcd of the positive last_weights (none -> table emptied); rshift =
  max(0, fls(max_last_weight / gcd) - 6) (IP_VS_MH_TAB_BITS = 12 / 2);
  turns = (lw / gcd) >> rshift, or 1 if that is 0 and lw != 0.  Fill: walk
  the list repeatedly; a dest with turns 0 is skipped; each other dest
  takes, turns times in a row, the next free slot of its permutation
  (perm += skip mod M while taken), until all M slots are set.
* mh lookup (ip_vs_mh_schedule): slot = h1(client, port or 0, 0) % M; the
  dest there is used if its weight > 0 (and not overloaded); with
  mh-fallback, probe h1(client, port, (k + slot) % M) % M for k in 0..M-1,
  first usable wins; an empty slot ends the search.
* sh table (ip_vs_sh_reassign): 256 buckets; walk the list, each dest takes
  buckets until ++count >= weight (its current weight: weight 0 still takes
  one bucket), then the next dest, wrapping.
* sh lookup: bucket = (offset + hash_32(ntohs(port) + ntohl(fold), 8)) & 255
  with hash_32(x, b) = (x * 0x61C88647 mod 2^32) >> (32 - b); fallback
  probes offsets (k + bucket) % 256 the same way.
* The port is the client's source port only with the *-port flag (and a
  TCP/UDP/SCTP packet: these cases are TCP), else 0.
"""

import ipaddress
import json
import sys

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1

MH_TAB_SIZE = 4093
MH_TAB_BITS = 6
MH_HASH1 = (2654435761, 2654435761)
MH_HASH2 = (2654446892, 2654446892)

SH_TAB_BITS = 8
SH_TAB_SIZE = 1 << SH_TAB_BITS
GOLDEN_RATIO_32 = 0x61C88647


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK64


def _sipround(v):
    v0, v1, v2, v3 = v
    v0 = (v0 + v1) & MASK64
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & MASK64
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & MASK64
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & MASK64
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return [v0, v1, v2, v3]


def hsiphash64(data, key):
    """hsiphash() of a 64-bit kernel: SipHash-1-3, truncated to 32 bits."""
    k0, k1 = key
    v = [
        0x736F6D6570736575 ^ k0,
        0x646F72616E646F6D ^ k1,
        0x6C7967656E657261 ^ k0,
        0x7465646279746573 ^ k1,
    ]
    full = len(data) - len(data) % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v[3] ^= m
        v = _sipround(v)
        v[0] ^= m
    b = (len(data) << 56) & MASK64
    b |= int.from_bytes(data[full:], "little")
    v[3] ^= b
    v = _sipround(v)
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(3):
        v = _sipround(v)
    return (v[0] ^ v[1] ^ v[2] ^ v[3]) & MASK32


def addr_fold(addr):
    """ntohl(addr_fold): IPv4 as an integer, IPv6 words XOR-ed."""
    a = ipaddress.ip_address(addr)
    if a.version == 4:
        return int(a)
    raw = a.packed
    fold = 0
    for i in range(0, 16, 4):
        fold ^= int.from_bytes(raw[i:i + 4], "big")
    return fold


def mh_hashkey(addr, port, key, offset):
    v = (offset + port + addr_fold(addr)) & MASK32
    return hsiphash64(v.to_bytes(4, "little"), key)


def last_weight(weights):
    lw = 0
    for i, w in enumerate(weights):
        if i == 0 or w != 0:
            lw = w
    return lw


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def mh_table(dests):
    lws = [last_weight(d["weights"]) for d in dests]
    g = 0
    for w in lws:
        if w > 0:
            g = _gcd(w, g) if g > 0 else w
    table = [None] * MH_TAB_SIZE
    if g < 1:
        return table
    mw = max(lws) // g
    rshift = max(0, mw.bit_length() - MH_TAB_BITS)
    perm, skip, turns = [], [], []
    for d, lw in zip(dests, lws):
        perm.append(mh_hashkey(d["addr"], d["port"], MH_HASH1, 0) % MH_TAB_SIZE)
        skip.append(mh_hashkey(d["addr"], d["port"], MH_HASH2, 0) % (MH_TAB_SIZE - 1) + 1)
        t = (lw // g) >> rshift
        turns.append(t if t else (1 if lw != 0 else 0))
    filled = 0
    while filled < MH_TAB_SIZE:
        for i in range(len(dests)):
            if turns[i] < 1:
                continue
            for _ in range(turns[i]):
                while table[perm[i]] is not None:
                    perm[i] = (perm[i] + skip[i]) % MH_TAB_SIZE
                table[perm[i]] = i
                filled += 1
                if filled == MH_TAB_SIZE:
                    return table
    return table


def mh_pick(table, dests, addr, port, fallback):
    usable = [d["weights"][-1] > 0 for d in dests]
    first = mh_hashkey(addr, port, MH_HASH1, 0) % MH_TAB_SIZE
    i = table[first]
    if i is None or usable[i] or not fallback:
        return i if i is not None and usable[i] else None
    for k in range(MH_TAB_SIZE):
        slot = mh_hashkey(addr, port, MH_HASH1, (k + first) % MH_TAB_SIZE) % MH_TAB_SIZE
        i = table[slot]
        if i is None:
            return None
        if usable[i]:
            return i
    return None


def hash_32(val, bits):
    return ((val * GOLDEN_RATIO_32) & MASK32) >> (32 - bits)


def sh_table(dests):
    table = []
    if not dests:
        return [None] * SH_TAB_SIZE
    p, count = 0, 0
    for _ in range(SH_TAB_SIZE):
        table.append(p)
        count += 1
        if count >= dests[p]["weights"][-1]:
            p = (p + 1) % len(dests)
            count = 0
    return table


def sh_bucket(addr, port, offset):
    h = hash_32((port + addr_fold(addr)) & MASK32, SH_TAB_BITS)
    return (offset + h) & (SH_TAB_SIZE - 1)


def sh_pick(table, dests, addr, port, fallback):
    usable = [d["weights"][-1] > 0 for d in dests]
    first = sh_bucket(addr, port, 0)
    i = table[first]
    if i is None:
        return None
    if usable[i] or not fallback:
        return i if usable[i] else None
    for k in range(SH_TAB_SIZE):
        i = table[sh_bucket(addr, port, (k + first) % SH_TAB_SIZE)]
        if i is None:
            return None
        if usable[i]:
            return i
    return None


def run(case):
    flags = case.get("flags", {})
    fallback = bool(flags.get("fallback"))
    use_port = bool(flags.get("port"))
    dests = case["dests"]
    if case["sched"] == "mh":
        table, pick = mh_table(dests), mh_pick
    elif case["sched"] == "sh":
        table, pick = sh_table(dests), sh_pick
    else:
        raise SystemExit("unknown scheduler %r" % case["sched"])
    picks = []
    for addr, port in case.get("clients", []):
        picks.append(pick(table, dests, addr, port if use_port else 0, fallback))
    return {"table": table, "picks": picks}


def self_test():
    # SipHash-1-3 has no published vectors; check the round function with
    # the SipHash-2-4 paper's vector (key 00..0f, message 00..0e).
    def siphash24(data, k0, k1):
        v = [0x736F6D6570736575 ^ k0, 0x646F72616E646F6D ^ k1,
             0x6C7967656E657261 ^ k0, 0x7465646279746573 ^ k1]
        full = len(data) - len(data) % 8
        blocks = [int.from_bytes(data[i:i + 8], "little") for i in range(0, full, 8)]
        blocks.append(((len(data) << 56) & MASK64) | int.from_bytes(data[full:], "little"))
        for m in blocks:
            v[3] ^= m
            v = _sipround(_sipround(v))
            v[0] ^= m
        v[2] ^= 0xFF
        for _ in range(4):
            v = _sipround(v)
        return v[0] ^ v[1] ^ v[2] ^ v[3]

    key = bytes(range(16))
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    assert siphash24(bytes(range(15)), k0, k1) == 0xA129CA6149BE45E5
    t = mh_table([{"addr": "10.0.0.1", "port": 80, "weights": [1]}])
    assert t.count(0) == MH_TAB_SIZE
    print("ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    cases = json.load(sys.stdin)["cases"]
    results = [run(c) for c in cases]
    if sys.argv[1:] == ["--lines"]:
        def fmt(xs):
            return " ".join("-" if x is None else str(x) for x in xs)
        for r in results:
            sys.stdout.write("table %s\npicks %s\n" % (fmt(r["table"]), fmt(r["picks"])))
    else:
        json.dump({"tables": results}, sys.stdout)


if __name__ == "__main__":
    main()
