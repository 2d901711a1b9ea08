// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rvs real-server decapsulator (`rvs realserver up --tun`).
 *
 * An LVS tunnel (TUN) director wraps the client's packet in an outer IP
 * header addressed to the real server: IPv4 (protocol 4, IPIP, for an IPv4
 * client packet; 41 for an IPv6 one) or IPv6 (next header 4 or 41, RFC
 * 2473). Where the kernel has no ipip/sit/ip6_tunnel module, this XDP
 * program strips the outer header instead: for a frame (no VLAN tag) whose
 * outer header is
 *
 *  - IPv4, not a fragment, protocol 4 or 41, or
 *  - IPv6 with next header 4 or 41 directly (no extension headers, so no
 *    fragment header either),
 *
 * and whose inner destination is in `vips`, the Ethernet header is moved
 * forward over the outer IP header (its ethertype set to the inner family)
 * and the frame is passed, so the kernel receives the client's packet as if
 * it came in directly. Everything else is passed untouched.
 *
 * Layout shared with crates/rvs-io/src/decap.rs: keep them in sync.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VIPS_MAX 4096
#define FAMILY_V4 4
#define FAMILY_V6 6

/* Key of `vips` (20 bytes, no implicit padding). */
struct vip_key {
	__u8 family;   /* FAMILY_V4 or FAMILY_V6 */
	__u8 pad[3];   /* 0 */
	__u32 addr[4]; /* network order; IPv4 in addr[0], addr[1..3] = 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_key);
	__type(value, __u32); /* reserved, 0 */
	__uint(max_entries, VIPS_MAX);
} vips SEC(".maps");

/*
 * The inner packet at `inner`, announced by outer protocol `proto` (4 or
 * 41): fills `k` with its destination and `eth_proto` with its ethertype.
 * 0 when it is not a well-formed IPv4/IPv6 header of that kind.
 */
static __always_inline int inner_key(void *inner, void *end, __u8 proto, struct vip_key *k,
				     __u16 *eth_proto)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (proto == IPPROTO_IPIP) {
		struct iphdr *ip = inner;

		if ((void *)(ip + 1) > end)
			return 0;
		if (ip->version != 4)
			return 0;
		k->family = FAMILY_V4;
		k->addr[0] = ip->daddr;
		*eth_proto = bpf_htons(ETH_P_IP);
		return 1;
	}
	if (proto == IPPROTO_IPV6) {
		struct ipv6hdr *ip6 = inner;

		if ((void *)(ip6 + 1) > end)
			return 0;
		if (ip6->version != 6)
			return 0;
		k->family = FAMILY_V6;
		k->addr[0] = ip6->daddr.in6_u.u6_addr32[0];
		k->addr[1] = ip6->daddr.in6_u.u6_addr32[1];
		k->addr[2] = ip6->daddr.in6_u.u6_addr32[2];
		k->addr[3] = ip6->daddr.in6_u.u6_addr32[3];
		*eth_proto = bpf_htons(ETH_P_IPV6);
		return 1;
	}
	return 0;
}

SEC("xdp")
int rvs_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vip_key k;
	struct ethhdr copy;
	__u16 inner_proto = 0;
	__u32 hlen;
	__u8 proto;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *outer = (void *)(eth + 1);

		if ((void *)(outer + 1) > data_end)
			return XDP_PASS;
		if (outer->version != 4 || outer->ihl < 5)
			return XDP_PASS;
		/* Fragments (MF set or an offset) are left to the kernel. */
		if (outer->frag_off & bpf_htons(0x3fff))
			return XDP_PASS;
		hlen = outer->ihl * 4;
		proto = outer->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *outer6 = (void *)(eth + 1);

		if ((void *)(outer6 + 1) > data_end)
			return XDP_PASS;
		if (outer6->version != 6)
			return XDP_PASS;
		/* Extension headers (fragments included) are left to the kernel. */
		hlen = sizeof(*outer6);
		proto = outer6->nexthdr;
	} else {
		return XDP_PASS;
	}
	if (hlen > 60)
		return XDP_PASS;
	if (!inner_key((void *)(eth + 1) + hlen, data_end, proto, &k, &inner_proto))
		return XDP_PASS;
	if (!bpf_map_lookup_elem(&vips, &k))
		return XDP_PASS;

	__builtin_memcpy(&copy, eth, sizeof(copy));
	copy.h_proto = inner_proto;
	if (bpf_xdp_adjust_head(ctx, (int)hlen))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP; /* cannot happen: the inner header was checked */
	__builtin_memcpy(eth, &copy, sizeof(copy));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
