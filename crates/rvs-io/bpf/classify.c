// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rvs XDP classifier.
 *
 * Steers to the AF_XDP socket of (ingress interface, rx queue) every frame
 * that rvs owns, and passes everything else to the kernel (ARP, ND, SSH to
 * the director, routing protocols...). A frame is rvs's when:
 *
 *  1. it is TCP, UDP or SCTP to a virtual service: `services` holds
 *     (proto, dst addr, dst port), or (proto, dst addr, 0) for a service that
 *     owns every port of its address;
 *  2. it is TCP, UDP or SCTP from a NAT real server: `nat_src` holds
 *     (proto, src addr, src port), or (proto, src addr, 0); but not when
 *     its destination is one of the director's own addresses (`local_addr`,
 *     kept by rvsd): that is the director's own connection to the real
 *     server (a health check, an operator's curl), the kernel's, not a
 *     reply to a client;
 *  3. it is an ICMP/ICMPv6 error (v4 types 3, 4, 11, 12; v6 types 1-4) whose
 *     quoted packet is rvs's: the quoted destination is in `nat_src` and its
 *     source is not the director's (an error about a director-to-real-server
 *     packet of a NAT service) or the quoted
 *     source is in `services` (an error about a VIP-to-client packet);
 *  4. it is TCP, UDP or SCTP that a fwmark rule of a fwmark service matches:
 *     `fwm_v4` / `fwm_v6` (longest-prefix-match tries on the destination)
 *     hold, for each rule prefix, every (protocol, ingress interface, ports)
 *     matcher of the rules whose prefix covers it, so the longest match alone
 *     decides;
 *  5. it is an IPv4 fragment (MF set or a non-zero offset) of TCP, UDP or
 *     SCTP, claimed by address since only the first fragment has ports:
 *     `frag_dst` holds (proto, virtual address, 0) of every service address,
 *     `frag_src` (proto, NAT real server, 0), and a fwmark prefix covering
 *     the destination with a matcher of that protocol and interface (any
 *     port) claims it too. The engine tracks fragments by datagram (the
 *     first fragment decides for all). Fragments to a virtual address but
 *     for a port no service has are claimed all the same and then lost (an
 *     AF_XDP socket cannot hand a frame back, and the kernel could not
 *     reassemble a datagram it got only part of): fragmented traffic to
 *     other ports of a virtual address is not supported. STAT_FRAG_CLAIMED
 *     counts them.
 *
 * A pure TCP SYN among rvs's frames may be shed (XDP_DROP) by the SYN guard
 * (`syn_guard`, set by rvsd while its slow path is congested).
 *
 * Passed without looking further: IPv6 packets with extension headers
 * (including fragments: IPv6 fragments are not tracked), IPv4 fragments
 * not claimed by address (counted as STAT_FRAGMENT; a first fragment
 * whose protocol is not TCP, UDP or SCTP is classified as an unfragmented
 * packet), anything but IPv4/IPv6 after at most one VLAN tag. Truncated or
 * malformed frames are passed and counted.
 *
 * The socket slot is if_base[ingress ifindex] + rx_queue_index; a missing
 * if_base entry or an empty xsks slot passes the frame (counted as
 * STAT_NO_SOCKET) so the kernel behaves as if rvs were not there.
 *
 * Before all of this, the fast path (fastpath.h) forwards the packets of
 * established flows rvsd cached in `rvs_flows`; what it does not handle
 * comes here unchanged.
 *
 * Layouts shared with crates/rvs-io/src/xdp.rs (constants) and xdp/maps.rs,
 * xdp/fwmark.rs (the key and fwmark structs): keep them in sync.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fastpath.h"

/*
 * linux/icmp.h drags in glibc headers that do not build for the BPF target:
 * the 8-byte ICMP and ICMPv6 header is declared here.
 */
struct icmp_hdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest;
};

#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8

#define FAMILY_V4 4
#define FAMILY_V6 6

/* Key of `services` and `nat_src` (24 bytes, no implicit padding). */
struct class_key {
	__u8 proto;    /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 family;   /* FAMILY_V4 or FAMILY_V6 */
	__u8 pad[2];   /* 0 */
	__u32 addr[4]; /* network order; IPv4 in addr[0], addr[1..3] = 0 */
	__u16 port;    /* network order; 0 = every port */
	__u16 pad2;    /* 0 */
};

/* Indices of `stats` (per-CPU u64 counters). */
enum {
	STAT_REDIRECTED = 0, /* handed to an AF_XDP socket */
	STAT_PASSED = 1,     /* not rvs's: XDP_PASS */
	STAT_NO_SOCKET = 2,  /* rvs's, but no if_base entry or empty xsks slot: XDP_PASS */
	STAT_MALFORMED = 3,  /* truncated or malformed frame: XDP_PASS */
	STAT_FRAGMENT = 4,   /* IPv4 fragment not claimed by address: XDP_PASS */
	STAT_FRAG_CLAIMED = 5, /* IPv4 fragment claimed by address: redirected */
	STAT_SYN = 6,	     /* pure TCP SYNs among the claimed frames */
	STAT_SYN_SHED = 7,   /* of those, shed by the SYN guard: XDP_DROP */
	STAT_MAX = 8,
};

#define SERVICES_MAX 16384
#define FWM_PREFIXES_MAX 4096
#define FWM_MATCH_MAX 8  /* matchers per prefix */
#define FWM_PORTS_MAX 16 /* ports per matcher */
#define NAT_SRC_MAX 16384
#define FRAG_DST_MAX 16384
#define FRAG_SRC_MAX 16384
#define LOCAL_ADDR_MAX 4096
#define IF_BASE_MAX 256
#define XSKS_MAX 1024

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct class_key);
	__type(value, __u32); /* reserved, 0 */
	__uint(max_entries, SERVICES_MAX);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct class_key);
	__type(value, __u32); /* reserved, 0 */
	__uint(max_entries, NAT_SRC_MAX);
} nat_src SEC(".maps");

/* The director's own addresses: (proto 0, address, port 0) keys. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct class_key);
	__type(value, __u32); /* reserved, 0 */
	__uint(max_entries, LOCAL_ADDR_MAX);
} local_addr SEC(".maps");

/* Fragments by address: (proto, address, port 0) keys. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct class_key);
	__type(value, __u32); /* reserved, 0 */
	__uint(max_entries, FRAG_DST_MAX);
} frag_dst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct class_key);
	__type(value, __u32); /* reserved, 0 */
	__uint(max_entries, FRAG_SRC_MAX);
} frag_src SEC(".maps");

/* Keys of `fwm_v4` / `fwm_v6`: prefix length, then the address (network order). */
struct fwm_key_v4 {
	__u32 prefixlen;
	__u32 addr;
};

struct fwm_key_v6 {
	__u32 prefixlen;
	__u32 addr[4];
};

/* One matcher: packets of `proto` to one of `ports`, arriving on `iif`. */
struct fwm_match {
	__u8 proto;  /* 0 = TCP, UDP and SCTP */
	__u8 nports; /* 0 = every port; else ports[0..nports] */
	__u16 pad;   /* 0 */
	__u32 iif;   /* ingress ifindex; 0 = any */
	__u16 ports[FWM_PORTS_MAX]; /* network order */
};

/* Value of `fwm_v4` / `fwm_v6` (324 bytes). */
struct fwm_value {
	__u32 count; /* matchers in use, at most FWM_MATCH_MAX */
	struct fwm_match m[FWM_MATCH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fwm_key_v4);
	__type(value, struct fwm_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FWM_PREFIXES_MAX);
} fwm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fwm_key_v6);
	__type(value, struct fwm_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FWM_PREFIXES_MAX);
} fwm_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);   /* ingress ifindex */
	__type(value, __u32); /* first xsks slot of that interface */
	__uint(max_entries, IF_BASE_MAX);
} if_base SEC(".maps");

/*
 * The MAC address of each served interface (rvsd keeps it in step): a
 * unicast frame addressed to another station (a switch flooding an unknown
 * or aged-out address, a bridge port) is not the host's, the kernel drops
 * it (PACKET_OTHERHOST), and neither claims nor forwards it here: another
 * director's traffic would otherwise be forwarded twice. Frames to a VRRP
 * virtual MAC (00:00:5e:00:01:xx, IPv6 00:00:5e:00:02:xx: keepalived's
 * use_vmac) are the host's. Without an entry every frame is judged as
 * before.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);   /* ingress ifindex */
	__type(value, __u64); /* MAC: bytes 0..5 of the value, in wire order */
	__uint(max_entries, IF_BASE_MAX);
} if_mac SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, XSKS_MAX);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

/*
 * The SYN guard: while rvsd's slow path cannot keep up (its AF_XDP rings
 * overflow, dropping whatever comes: handshakes in progress, replies of
 * real servers), rvsd sets the share of pure SYNs to shed here, before the
 * ring, so that the frames of connections already under way get through
 * (a spoofed-SYN flood: rvsd's sync thread adapts it, crates/rvsd).
 * Entry 0: drop a pure SYN when bpf_get_prandom_u32() < this; 0 = off.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} syn_guard SEC(".maps");

/* What the parser decided. */
enum verdict {
	V_NOT_OURS,
	V_OURS,
	V_MALFORMED,
	V_FRAGMENT,
	V_OURS_SYN, /* ours, and a TCP segment with SYN set and ACK clear */
	V_FRAG_OURS,
};

/* TCP flags byte: offset 13 of the header. */
#define TCP_FLAGS_OFF 13
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* V_OURS_SYN for a pure SYN (SYN without ACK) at `l4`, else V_OURS. */
static __always_inline enum verdict ours(__u8 proto, void *l4, void *end)
{
	__u8 *flags = l4 + TCP_FLAGS_OFF;

	if (proto != IPPROTO_TCP || (void *)(flags + 1) > end)
		return V_OURS;
	return (*flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN ? V_OURS_SYN : V_OURS;
}

struct l4ports {
	__u16 src; /* network order */
	__u16 dst; /* network order */
};

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &idx);

	if (c)
		*c += 1;
}

static __always_inline int is_l4(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* Exact key, then the same key with port 0 (a service owning every port). */
static __always_inline int lookup_port_or_any(void *map, struct class_key *k)
{
	if (bpf_map_lookup_elem(map, k))
		return 1;
	if (k->port == 0)
		return 0;
	k->port = 0;
	return bpf_map_lookup_elem(map, k) != NULL;
}

static __always_inline void key_v4(struct class_key *k, __u8 proto, __u32 addr, __u16 port)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->proto = proto;
	k->family = FAMILY_V4;
	k->addr[0] = addr;
	k->port = port;
}

static __always_inline void key_v6(struct class_key *k, __u8 proto, const struct in6_addr *a,
				   __u16 port)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->proto = proto;
	k->family = FAMILY_V6;
	k->addr[0] = a->in6_u.u6_addr32[0];
	k->addr[1] = a->in6_u.u6_addr32[1];
	k->addr[2] = a->in6_u.u6_addr32[2];
	k->addr[3] = a->in6_u.u6_addr32[3];
	k->port = port;
}

/* Whether `addr` is one of the director's own addresses. */
static __always_inline int local_v4(__u32 addr)
{
	struct class_key k;

	key_v4(&k, 0, addr, 0);
	return bpf_map_lookup_elem(&local_addr, &k) != NULL;
}

static __always_inline int local_v6(const struct in6_addr *addr)
{
	struct class_key k;

	key_v6(&k, 0, addr, 0);
	return bpf_map_lookup_elem(&local_addr, &k) != NULL;
}

/* Whether a matcher of `v` takes (proto, dport, iif); bounded loops. */
static __always_inline int fwm_matches(const struct fwm_value *v, __u8 proto, __u16 dport,
				       __u32 iif)
{
	__u32 n = v->count;
	__u32 i, j;

	for (i = 0; i < FWM_MATCH_MAX; i++) {
		const struct fwm_match *m = &v->m[i];

		if (i >= n)
			break;
		if (m->proto && m->proto != proto)
			continue;
		if (m->iif && m->iif != iif)
			continue;
		if (!m->nports)
			return 1;
		for (j = 0; j < FWM_PORTS_MAX; j++) {
			if (j >= m->nports)
				break;
			if (m->ports[j] == dport)
				return 1;
		}
	}
	return 0;
}

static __always_inline int fwmark_v4(__u8 proto, __u32 daddr, __u16 dport, __u32 iif)
{
	struct fwm_key_v4 k = { .prefixlen = 32, .addr = daddr };
	struct fwm_value *v = bpf_map_lookup_elem(&fwm_v4, &k);

	return v && fwm_matches(v, proto, dport, iif);
}

/* Whether a matcher of `v` takes `proto` on `iif`, whatever the port. */
static __always_inline int fwm_matches_any_port(const struct fwm_value *v, __u8 proto, __u32 iif)
{
	__u32 n = v->count;
	__u32 i;

	for (i = 0; i < FWM_MATCH_MAX; i++) {
		const struct fwm_match *m = &v->m[i];

		if (i >= n)
			break;
		if (m->proto && m->proto != proto)
			continue;
		if (m->iif && m->iif != iif)
			continue;
		return 1;
	}
	return 0;
}

/* An IPv4 fragment, by address: to a service address, from a NAT real
 * server, or to a fwmark prefix. */
static __always_inline int frag_owned_v4(__u8 proto, __u32 saddr, __u32 daddr, __u32 iif)
{
	struct fwm_key_v4 fk = { .prefixlen = 32, .addr = daddr };
	struct fwm_value *v;
	struct class_key k;

	key_v4(&k, proto, daddr, 0);
	if (bpf_map_lookup_elem(&frag_dst, &k))
		return 1;
	key_v4(&k, proto, saddr, 0);
	if (bpf_map_lookup_elem(&frag_src, &k) && !local_v4(daddr))
		return 1;
	v = bpf_map_lookup_elem(&fwm_v4, &fk);
	return v && fwm_matches_any_port(v, proto, iif);
}

static __always_inline int fwmark_v6(__u8 proto, const struct in6_addr *daddr, __u16 dport,
				     __u32 iif)
{
	struct fwm_key_v6 k = { .prefixlen = 128 };
	struct fwm_value *v;

	k.addr[0] = daddr->in6_u.u6_addr32[0];
	k.addr[1] = daddr->in6_u.u6_addr32[1];
	k.addr[2] = daddr->in6_u.u6_addr32[2];
	k.addr[3] = daddr->in6_u.u6_addr32[3];
	v = bpf_map_lookup_elem(&fwm_v6, &k);
	return v && fwm_matches(v, proto, dport, iif);
}

/*
 * A TCP/UDP/SCTP packet seen directly: to a service, from a NAT real server,
 * or matched by a fwmark rule.
 */
static __always_inline int owned_v4(__u8 proto, __u32 saddr, __u32 daddr, const struct l4ports *p,
				    __u32 iif)
{
	struct class_key k;

	key_v4(&k, proto, daddr, p->dst);
	if (lookup_port_or_any(&services, &k))
		return 1;
	key_v4(&k, proto, saddr, p->src);
	if (lookup_port_or_any(&nat_src, &k) && !local_v4(daddr))
		return 1;
	return fwmark_v4(proto, daddr, p->dst, iif);
}

static __always_inline int owned_v6(__u8 proto, const struct in6_addr *saddr,
				    const struct in6_addr *daddr, const struct l4ports *p, __u32 iif)
{
	struct class_key k;

	key_v6(&k, proto, daddr, p->dst);
	if (lookup_port_or_any(&services, &k))
		return 1;
	key_v6(&k, proto, saddr, p->src);
	if (lookup_port_or_any(&nat_src, &k) && !local_v6(daddr))
		return 1;
	return fwmark_v6(proto, daddr, p->dst, iif);
}

/*
 * The packet quoted by an ICMP error travelled the other way: its destination
 * is a NAT real server (director -> real server), or its source is a service
 * (VIP -> client).
 */
static __always_inline int quoted_owned_v4(__u8 proto, __u32 saddr, __u32 daddr,
					   const struct l4ports *p)
{
	struct class_key k;

	key_v4(&k, proto, daddr, p->dst);
	if (lookup_port_or_any(&nat_src, &k) && !local_v4(saddr))
		return 1;
	key_v4(&k, proto, saddr, p->src);
	return lookup_port_or_any(&services, &k);
}

static __always_inline int quoted_owned_v6(__u8 proto, const struct in6_addr *saddr,
					   const struct in6_addr *daddr, const struct l4ports *p)
{
	struct class_key k;

	key_v6(&k, proto, daddr, p->dst);
	if (lookup_port_or_any(&nat_src, &k) && !local_v6(saddr))
		return 1;
	key_v6(&k, proto, saddr, p->src);
	return lookup_port_or_any(&services, &k);
}

static __always_inline int icmp4_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_TIME_EXCEEDED ||
	       type == ICMP_PARAMETERPROB;
}

static __always_inline int icmp6_is_error(__u8 type)
{
	return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

/* ICMPv4 error at `icmp`: the quoted IPv4 header and 8 bytes of its payload follow. */
static __always_inline enum verdict classify_icmp4(void *icmp, void *end)
{
	struct icmp_hdr *ih = icmp;
	struct iphdr *in;
	struct l4ports *p;
	__u32 ihl;

	if ((void *)(ih + 1) > end)
		return V_MALFORMED;
	if (!icmp4_is_error(ih->type))
		return V_NOT_OURS;
	in = (void *)(ih + 1);
	if ((void *)(in + 1) > end)
		return V_MALFORMED;
	if (in->version != 4 || in->ihl < 5)
		return V_MALFORMED;
	if (!is_l4(in->protocol))
		return V_NOT_OURS;
	/* A quoted non-first fragment has no ports. */
	if (in->frag_off & bpf_htons(0x1fff))
		return V_NOT_OURS;
	ihl = in->ihl * 4;
	p = (void *)in + ihl;
	if ((void *)(p + 1) > end)
		return V_MALFORMED;
	return quoted_owned_v4(in->protocol, in->saddr, in->daddr, p) ? V_OURS : V_NOT_OURS;
}

/* ICMPv6 error at `icmp`: the quoted IPv6 header follows. */
static __always_inline enum verdict classify_icmp6(void *icmp, void *end)
{
	struct icmp_hdr *ih = icmp;
	struct ipv6hdr *in;
	struct l4ports *p;

	if ((void *)(ih + 1) > end)
		return V_MALFORMED;
	if (!icmp6_is_error(ih->type))
		return V_NOT_OURS;
	in = (void *)(ih + 1);
	if ((void *)(in + 1) > end)
		return V_MALFORMED;
	if (in->version != 6)
		return V_MALFORMED;
	/* Extension headers in the quoted packet: not walked. */
	if (!is_l4(in->nexthdr))
		return V_NOT_OURS;
	p = (void *)(in + 1);
	if ((void *)(p + 1) > end)
		return V_MALFORMED;
	return quoted_owned_v6(in->nexthdr, &in->saddr, &in->daddr, p) ? V_OURS : V_NOT_OURS;
}

static __always_inline enum verdict classify_v4(void *l3, void *end, __u32 iif)
{
	struct iphdr *ip = l3;
	struct l4ports *p;
	__u32 ihl;

	if ((void *)(ip + 1) > end)
		return V_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return V_MALFORMED;
	ihl = ip->ihl * 4;
	if (l3 + ihl > end)
		return V_MALFORMED;
	/* MF or a non-zero offset: a fragment, claimed by address. */
	if (ip->frag_off & bpf_htons(0x3fff)) {
		if (is_l4(ip->protocol) && frag_owned_v4(ip->protocol, ip->saddr, ip->daddr, iif))
			return V_FRAG_OURS;
		if (ip->frag_off & bpf_htons(0x1fff) || is_l4(ip->protocol))
			return V_FRAGMENT;
	}
	if (ip->protocol == IPPROTO_ICMP)
		return classify_icmp4(l3 + ihl, end);
	if (!is_l4(ip->protocol))
		return V_NOT_OURS;
	p = l3 + ihl;
	if ((void *)(p + 1) > end)
		return V_MALFORMED;
	return owned_v4(ip->protocol, ip->saddr, ip->daddr, p, iif) ? ours(ip->protocol, p, end)
								    : V_NOT_OURS;
}

static __always_inline enum verdict classify_v6(void *l3, void *end, __u32 iif)
{
	struct ipv6hdr *ip6 = l3;
	struct l4ports *p;

	if ((void *)(ip6 + 1) > end)
		return V_MALFORMED;
	if (ip6->version != 6)
		return V_MALFORMED;
	if (ip6->nexthdr == IPPROTO_ICMPV6)
		return classify_icmp6((void *)(ip6 + 1), end);
	/* Extension headers (hop-by-hop, routing, fragment...): not walked. */
	if (!is_l4(ip6->nexthdr))
		return V_NOT_OURS;
	p = (void *)(ip6 + 1);
	if ((void *)(p + 1) > end)
		return V_MALFORMED;
	return owned_v6(ip6->nexthdr, &ip6->saddr, &ip6->daddr, p, iif) ? ours(ip6->nexthdr, p, end)
									: V_NOT_OURS;
}

static __always_inline enum verdict classify(void *data, void *end, __u32 iif)
{
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return V_MALFORMED;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_)) {
		/* One tag: TCI, then the encapsulated EtherType. */
		__u16 *tag = l3;

		if ((void *)(tag + 2) > end)
			return V_MALFORMED;
		proto = tag[1];
		l3 = tag + 2;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return classify_v4(l3, end, iif);
	if (proto == bpf_htons(ETH_P_IPV6))
		return classify_v6(l3, end, iif);
	return V_NOT_OURS;
}

/* A unicast frame addressed to another station than the interface (see
 * `if_mac`). */
static __always_inline int for_another_station(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *d = data;
	__u32 ifindex = ctx->ingress_ifindex;
	__u8 *mac;

	if ((void *)(d + 6) > end)
		return 0;
	if (d[0] & 1) /* multicast, broadcast */
		return 0;
	if (d[0] == 0x00 && d[1] == 0x00 && d[2] == 0x5e && d[3] == 0x00 &&
	    (d[4] == 0x01 || d[4] == 0x02)) /* VRRP virtual MAC */
		return 0;
	mac = bpf_map_lookup_elem(&if_mac, &ifindex);
	if (!mac)
		return 0;
	return d[0] != mac[0] || d[1] != mac[1] || d[2] != mac[2] ||
	       d[3] != mac[3] || d[4] != mac[4] || d[5] != mac[5];
}

SEC("xdp")
int rvs_classify(struct xdp_md *ctx)
{
	if (for_another_station(ctx)) {
		count(STAT_PASSED);
		return XDP_PASS;
	}

	/* Established flows rvsd cached are forwarded here (fastpath.h); it
	 * must run before the packet pointers are read (it may trim padding). */
	int fp = rvs_fast_path(ctx);
	if (fp >= 0)
		return fp;

	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 ifindex, slot, *base;
	long act;

	switch (classify(data, end, ctx->ingress_ifindex)) {
	case V_OURS:
		break;
	case V_OURS_SYN: {
		__u32 zero = 0, *shed = bpf_map_lookup_elem(&syn_guard, &zero);

		count(STAT_SYN);
		if (shed && *shed && bpf_get_prandom_u32() < *shed) {
			count(STAT_SYN_SHED);
			return XDP_DROP;
		}
		break;
	}
	case V_FRAG_OURS:
		count(STAT_FRAG_CLAIMED);
		break;
	case V_MALFORMED:
		count(STAT_MALFORMED);
		return XDP_PASS;
	case V_FRAGMENT:
		count(STAT_FRAGMENT);
		return XDP_PASS;
	default:
		count(STAT_PASSED);
		return XDP_PASS;
	}

	ifindex = ctx->ingress_ifindex;
	base = bpf_map_lookup_elem(&if_base, &ifindex);
	if (!base) {
		count(STAT_NO_SOCKET);
		return XDP_PASS;
	}
	slot = *base + ctx->rx_queue_index;
	/* An empty slot (or one past the map) returns the fallback, XDP_PASS. */
	act = bpf_redirect_map(&xsks, slot, XDP_PASS);
	count(act == XDP_REDIRECT ? STAT_REDIRECTED : STAT_NO_SOCKET);
	return act;
}

/*
 * The redirect probe (Classifier::probe_redirect in xdp.rs), never
 * attached: run with BPF_PROG_TEST_RUN in live-frames mode and an ingress
 * interface, XDP_TX becomes a redirect out of that interface, which tells
 * whether frames the fast path redirects there are delivered (a veth drops
 * them unless its peer is in NAPI mode).
 */
SEC("xdp")
int rvs_probe(struct xdp_md *ctx)
{
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
