//! rvs-io: everything that moves packets between the wire and the engine.
//!
//! * [`xdp`]: the XDP classifier (bpf/classify.c) that steers what rvs owns to
//!   AF_XDP sockets and passes everything else to the kernel; its maps.
//! * [`xsk`]: AF_XDP sockets, UMEM and rings (xdpilone).
//! * [`neigh`]: next hops (egress interface, MAC) from the kernel's routes and
//!   neighbours over netlink.
//!
//! This is the only crate of rvs with `unsafe` code; every block says why it
//! is sound.

pub mod decap;
pub mod neigh;
pub mod xdp;
pub mod xsk;
