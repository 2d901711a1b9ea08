// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Real servers on hosts of their own, for the 1000-real-server TCP_CHECK
 * measurement (tests/netns_health.rs, `Farm::Remote`).
 *
 * On a director the real servers are other machines: their half of every
 * check's handshake (receive processing, the listener, accept, close) runs
 * on their CPUs, not the director's. On one 2-vCPU test host a namespace of
 * real servers puts that work on the CPUs that forward. This XDP program,
 * attached to the real servers' end of their veth, answers for them at the
 * cost of a few hundred nanoseconds a packet, so what is left on the host
 * is the director's own work for its checks:
 *
 *  - a TCP SYN (no ACK) to 10.9.0.0/16 gets a SYN-ACK (no options: MSS 536
 *    is assumed, which a check never reaches), sent back with XDP_TX;
 *  - a TCP FIN to 10.9.0.0/16 gets an RST (the remote socket is gone);
 *  - anything else to 10.9.0.0/16 (the handshake's ACK, an RST) is
 *    dropped, as a remote host would consume it;
 *  - everything else is passed: ARP, the veth's own addresses.
 *
 * Also attached (passing everything) to the director's end: a veth only
 * receives XDP_TX frames from its peer when it runs NAPI, which an XDP
 * program turns on.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SERVERS 0x0a090000 /* 10.9.0.0 */
#define SERVERS_MASK 0xffff0000
#define REPLY_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr))

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* The 16-bit one's complement sum of `n` 16-bit words at `p`. */
static __always_inline __u32 sum16(const __u16 *p, int n)
{
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < n; i++)
		sum += p[i];
	return sum;
}

SEC("xdp")
int remote_servers(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);

	if ((void *)(tcp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	if ((bpf_ntohl(ip->daddr) & SERVERS_MASK) != SERVERS)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_DROP;

	int syn = tcp->syn && !tcp->ack && !tcp->rst;
	int fin = tcp->fin && !tcp->rst;
	if (!syn && !fin)
		return XDP_DROP;

	/* The reply's fields, from the request before it is cut. */
	unsigned char mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__u32 saddr = ip->daddr, daddr = ip->saddr;
	__u16 sport = tcp->dest, dport = tcp->source;
	__u32 seq, ack_seq;
	if (syn) {
		seq = ~tcp->seq;
		ack_seq = bpf_htonl(bpf_ntohl(tcp->seq) + 1);
	} else {
		seq = tcp->ack_seq;
		ack_seq = 0;
	}

	/* Cut the frame to the headers (the options and any payload go). */
	if (bpf_xdp_adjust_tail(ctx, (int)REPLY_LEN - (int)(end - data)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip = (void *)(eth + 1);
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > end)
		return XDP_DROP;

	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);

	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = 0;
	ip->check = fold(sum16((__u16 *)ip, sizeof(struct iphdr) / 2));

	__builtin_memset(tcp, 0, sizeof(*tcp));
	tcp->source = sport;
	tcp->dest = dport;
	tcp->seq = seq;
	tcp->ack_seq = ack_seq;
	tcp->doff = sizeof(struct tcphdr) / 4;
	if (syn) {
		tcp->syn = 1;
		tcp->ack = 1;
		tcp->window = bpf_htons(65535);
	} else {
		tcp->rst = 1;
	}
	/* Pseudo header (addresses, protocol, TCP length) and the header. */
	__u32 sum = sum16((__u16 *)&ip->saddr, 4) + bpf_htons(IPPROTO_TCP) +
		    bpf_htons(sizeof(struct tcphdr)) + sum16((__u16 *)tcp, sizeof(*tcp) / 2);
	tcp->check = fold(sum);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
