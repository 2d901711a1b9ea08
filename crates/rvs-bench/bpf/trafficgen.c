// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rvs bench's packet generator and sink (crates/rvs-bench/src/trafficgen.rs).
 *
 * rvs_gen is never attached: user space runs it with BPF_PROG_TEST_RUN in
 * live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, kernel 5.18+), with the
 * generator's interface as the ingress, so that XDP_TX sends every frame
 * out of that interface as a native XDP frame (the technique of
 * xdp-trafficgen), as fast as the CPU allows or paced at a given rate
 * (frames not yet due are dropped unsent). The kernel recycles the frames with whatever the path
 * downstream wrote into them, so the program writes the whole header from
 * the template each time, then the source port of the next flow.
 *
 * rvs_sink is attached to the sink's interface: it counts IPv4 frames and
 * their bytes and drops them; everything else (ARP, IPv6) passes.
 *
 * rvs_pass passes everything (NAPI mode for a veth).
 *
 * rvs_redirect is the bench's bare XDP forwarder, the floor of what an XDP
 * program can cost per packet: it rewrites the Ethernet addresses of every
 * IPv4 frame and redirects it out of one interface.
 *
 * Layouts shared with trafficgen.rs: keep them in sync.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Ethernet + IPv4 (no options) + UDP. */
#define HDR_LEN 42
/* Offset of the UDP source port. */
#define SPORT_OFF 34
/* Offset of the UDP checksum. */
#define UCSUM_OFF 40

/* Ethernet + IPv4 + TCP (no options): a SYN. */
#define SYN_LEN 54
/* Offsets in a SYN: the low 16 bits of the IPv4 source address, the IPv4
 * header checksum, the TCP source port, the TCP checksum. */
#define SRC_LO_OFF 28
#define IPCSUM_OFF 24
#define TSPORT_OFF 34
#define TCSUM_OFF 50

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* struct gen_cfg of trafficgen.rs. */
struct gen_cfg {
	__u8 hdr[HDR_LEN + 6]; /* the first HDR_LEN bytes are used */
	__u32 flows;           /* source ports sport_base .. sport_base + flows - 1 */
	__u16 sport_base;
	__u16 pad;
	__u64 rate;    /* frames per second; 0: as fast as possible */
	__u64 burst;   /* frames a late generator may send back to back */
	__u64 quantum; /* paced frames go out this many at a time (>= 1) */
	/*
	 * csum_full: write each flow's full UDP checksum, from csum_base (the
	 * folded sum of the pseudo-header and the segment with source port and
	 * checksum zero) plus the source port; otherwise the template's
	 * checksum field goes out as it is (zero, or a partial checksum, which
	 * does not depend on the ports).
	 */
	__u32 csum_base;
	__u32 csum_full;
	/*
	 * syn: TCP SYNs of new connections instead of UDP. syn_hdr holds
	 * the first SYN_LEN bytes of the template (Ethernet, IPv4, TCP), whose
	 * source address has its low 16 bits zero and whose source port is 0;
	 * flow f comes from that address plus f >> 10 (its low 16 bits) and
	 * port sport_base + (f & 1023). ip_base and tcp_base: the folded sums
	 * of the template's IP header and of its TCP pseudo-header and header,
	 * checksums zero, to which the program adds those two fields.
	 */
	__u8 syn_hdr[SYN_LEN + 2];
	__u32 syn;
	__u32 ip_base;
	__u32 tcp_base;
	__u32 pad2;
};

/*
 * Pacing state (one CPU runs the generator): when the paced run started
 * (0: not yet) and the frames it has sent. Reset by user space before a
 * paced run.
 */
struct gen_pace {
	__u64 start_ns;
	__u64 sent;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_pace);
	__uint(max_entries, 1);
} gen_pace SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_cfg);
	__uint(max_entries, 1);
} gen_cfg SEC(".maps");

/* Per-CPU: [0] frames generated (program runs), [1] next flow. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} gen_state SEC(".maps");

SEC("xdp")
int rvs_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, one = 1;
	struct gen_cfg *cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
	__u64 *sent = bpf_map_lookup_elem(&gen_state, &zero);
	__u64 *next = bpf_map_lookup_elem(&gen_state, &one);

	if (!cfg || !sent || !next || data + HDR_LEN > data_end)
		return XDP_ABORTED;
	if (cfg->rate) {
		/*
		 * Paced: frames go out only when due, rate frames a second from
		 * the start, quantum at a time (as a NIC coalesces interrupts:
		 * evenly spaced single frames would wake the receiver's NAPI
		 * once each, which on a VM costs more than forwarding them);
		 * the other turns of the kernel's loop drop their frame unsent.
		 * A generator late by more than burst frames (descheduled,
		 * between system calls) forgets the rest, so it never sends a
		 * burst the receiver's ring cannot hold.
		 */
		struct gen_pace *pace = bpf_map_lookup_elem(&gen_pace, &zero);
		if (!pace)
			return XDP_ABORTED;
		__u64 now = bpf_ktime_get_ns();
		if (!pace->start_ns)
			pace->start_ns = now;
		__u64 due = (now - pace->start_ns) * cfg->rate / 1000000000ULL;
		if (cfg->quantum > 1)
			due -= due % cfg->quantum;
		if (pace->sent >= due)
			return XDP_DROP;
		if (due - pace->sent > cfg->burst)
			pace->sent = due - cfg->burst;
		pace->sent += 1;
	}
	__u64 flow = *next;
	if (flow + 1 >= cfg->flows)
		*next = 0;
	else
		*next = flow + 1;
	if (cfg->syn) {
		if (data + SYN_LEN > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(data, cfg->syn_hdr, SYN_LEN);
		__u16 host = (__u16)(flow >> 10);
		__u16 tport = cfg->sport_base + (__u16)(flow & 1023);
		*(__u16 *)(data + SRC_LO_OFF) = bpf_htons(host);
		*(__u16 *)(data + IPCSUM_OFF) =
			bpf_htons((__u16)~fold((cfg->ip_base & 0xffff) + host));
		*(__u16 *)(data + TSPORT_OFF) = bpf_htons(tport);
		*(__u16 *)(data + TCSUM_OFF) =
			bpf_htons((__u16)~fold((cfg->tcp_base & 0xffff) + host + tport));
		*sent += 1;
		return XDP_TX;
	}
	__builtin_memcpy(data, cfg->hdr, HDR_LEN);
	__u16 sport = cfg->sport_base + (__u16)flow;
	*(__u16 *)(data + SPORT_OFF) = bpf_htons(sport);
	if (cfg->csum_full) {
		__u32 sum = (cfg->csum_base & 0xffff) + sport;
		sum = (sum & 0xffff) + (sum >> 16);
		__u16 csum = ~sum & 0xffff;
		*(__u16 *)(data + UCSUM_OFF) = bpf_htons(csum ? csum : 0xffff);
	}
	*sent += 1;
	return XDP_TX;
}

/* Per-CPU: [0] IPv4 frames dropped, [1] their bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} sink_count SEC(".maps");

SEC("xdp")
int rvs_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0, one = 1;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	__u64 *packets = bpf_map_lookup_elem(&sink_count, &zero);
	__u64 *bytes = bpf_map_lookup_elem(&sink_count, &one);
	if (packets)
		*packets += 1;
	if (bytes)
		*bytes += (__u64)(data_end - data);
	return XDP_DROP;
}

/* struct redirect_cfg of trafficgen.rs. */
struct redirect_cfg {
	__u8 dst[6];
	__u8 src[6];
	__u32 ifindex;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct redirect_cfg);
	__uint(max_entries, 1);
} redirect_cfg SEC(".maps");

SEC("xdp")
int rvs_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct redirect_cfg *cfg = bpf_map_lookup_elem(&redirect_cfg, &zero);
	if (!cfg || !cfg->ifindex)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, cfg->dst, 6);
	__builtin_memcpy(eth->h_source, cfg->src, 6);
	return bpf_redirect(cfg->ifindex, 0);
}

/*
 * rvs_pass passes every frame: attached only to put a veth in NAPI mode,
 * so that it takes the XDP frames its peer sends (for contenders that use
 * no XDP of their own).
 */
SEC("xdp")
int rvs_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
