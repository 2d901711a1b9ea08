// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Test harness of the XDP fast path (fastpath.h), for BPF_PROG_TEST_RUN
 * (crates/rvs-io/src/flowcache/testprog.rs FastPathTestProgram,
 * crates/rvs-io/tests/netns_fastpath.rs):
 *
 *  - rvs_fp_test: the fast path, then XDP_PASS for what it does not handle
 *    (where the classifier would go on);
 *  - rvs_fp_baseline: XDP_TX and nothing else, the cost floor of an XDP
 *    program that sends every frame back;
 *  - rvs_fp_bench, rvs_fp_bench_base: for BPF_PROG_TEST_RUN with repeat,
 *    which runs the program again and again on the same buffer: the first
 *    saves the frame's first RVS_FP_BENCH_SAVE bytes, runs the fast path
 *    and puts the frame back as it was (untagged, not IP-in-IP frames) (so every run sees the original
 *    packet: a NAT-out hit would otherwise run out of TTL, a tunnelled one
 *    be tunnelled again); the second does the same save and restore around
 *    a bare XDP_TX, its cost floor.
 */
#include "fastpath.h"

SEC("xdp")
int rvs_fp_test(struct xdp_md *ctx)
{
	int fp = rvs_fast_path(ctx);

	if (fp >= 0)
		return fp;
	return XDP_PASS;
}

SEC("xdp")
int rvs_fp_baseline(struct xdp_md *ctx)
{
	return XDP_TX;
}

#define RVS_FP_BENCH_SAVE 64

/*
 * Undoes what the fast path did to an untagged frame: drops an outer IPv4
 * or IPv6 tunnel header it added (the bench frame is never IP-in-IP
 * itself), then puts the saved head back.
 */
static __always_inline int rvs_fp_bench_restore(struct xdp_md *ctx, const __u8 *saved)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	int outer = 0;

	if (data + 14 + 40 > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if (ip->protocol == RVS_FP_IPPROTO_IPIP || ip->protocol == RVS_FP_IPPROTO_IPV6)
			outer = sizeof(struct iphdr);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if (ip6->nexthdr == RVS_FP_IPPROTO_IPIP || ip6->nexthdr == RVS_FP_IPPROTO_IPV6)
			outer = sizeof(struct ipv6hdr);
	}
	if (outer && bpf_xdp_adjust_head(ctx, outer))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + RVS_FP_BENCH_SAVE > end)
		return -1;
	__builtin_memcpy(data, saved, RVS_FP_BENCH_SAVE);
	return 0;
}

static __always_inline int rvs_fp_bench_save(struct xdp_md *ctx, __u8 *saved)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + RVS_FP_BENCH_SAVE > end)
		return -1;
	__builtin_memcpy(saved, data, RVS_FP_BENCH_SAVE);
	return 0;
}

SEC("xdp")
int rvs_fp_bench(struct xdp_md *ctx)
{
	__u8 saved[RVS_FP_BENCH_SAVE];
	int fp;

	if (rvs_fp_bench_save(ctx, saved))
		return XDP_ABORTED;
	fp = rvs_fast_path(ctx);
	if (rvs_fp_bench_restore(ctx, saved))
		return XDP_ABORTED;
	return fp >= 0 ? fp : XDP_PASS;
}

SEC("xdp")
int rvs_fp_bench_base(struct xdp_md *ctx)
{
	__u8 saved[RVS_FP_BENCH_SAVE];

	if (rvs_fp_bench_save(ctx, saved))
		return XDP_ABORTED;
	if (rvs_fp_bench_restore(ctx, saved))
		return XDP_ABORTED;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
