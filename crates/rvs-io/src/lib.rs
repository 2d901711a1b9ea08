//! rvs-io: everything that moves packets between the wire and the engine.
//!
//! * [`xdp`]: the XDP classifier (bpf/classify.c) that steers what rvs owns to
//!   AF_XDP sockets and passes everything else to the kernel; its maps.
//! * [`xsk`]: AF_XDP sockets, UMEM and rings (xdpilone).
//! * [`packet`]: AF_PACKET raw sockets, the fallback where XDP is unavailable.
//! * [`nft`]: the nftables drop rules that keep the kernel from answering what
//!   rvs claims when it reads frames through [`packet`] sockets.
//! * [`flowcache`]: the XDP fast path's flow cache (bpf/fastpath.h): flows
//!   of established connections forwarded in the kernel.
//! * [`livefr`]: whether live-frames test runs may be used (some hosts
//!   refuse them).
//! * [`redirwatch`]: whether a veth takes redirected frames, decided from
//!   the fast path's own redirects where live-frames probes are refused.
//! * [`sched`]: real-time scheduling of the calling thread (the checker's
//!   `checker_rt_priority`).
//! * [`neigh`]: next hops (egress interface, MAC) from the kernel's routes and
//!   neighbours over netlink.
//!
//! This is the only crate of rvs with `unsafe` code; every block says why it
//! is sound.

pub mod decap;
mod ethtool;
pub mod flowcache;
pub mod livefr;
pub mod localaddr;
pub mod neigh;
pub mod nft;
pub mod packet;
pub mod redirwatch;
pub mod sched;
pub mod xdp;
pub mod xsk;
