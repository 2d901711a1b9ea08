//! rvs-bench: the benchmark tooling of rvs, kept out of the production
//! crates (rvsd, rvsadm and the `rvs` binary link none of it).
//!
//! * [`bench`](mod@bench): `rvs bench [packet|syn|http|conntable|control]`, rvs measured
//!   side by side with the kernel and the proxies, in one run. The `rvs`
//!   binary execs the `rvs-bench` binary installed next to it.
//! * [`trafficgen`]: the packet generator and sink of `rvs bench packet`
//!   (bpf/trafficgen.c): native XDP frames sent with `BPF_PROG_TEST_RUN`,
//!   or an AF_PACKET fallback; also the SYN frames of the SYN-flood test.

pub mod bench;
pub mod trafficgen;

// The namespace and child-process helpers `rvs lab` uses too: one source,
// compiled into both binaries (no crate for 150 lines of `ip netns`).
#[path = "../../rvs/src/child.rs"]
mod child;
#[path = "../../rvs/src/netns.rs"]
mod netns;
