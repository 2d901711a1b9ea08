//! The IPVS schedulers, one file each, with the kernel's exact semantics
//! (reference §4).
//!
//! A scheduler sees the service's real servers as a slice in the kernel's list
//! order: **newest first**. It keeps its own state (position, tables) keyed by
//! [`DestId`], is told about every change of the list through
//! [`Scheduler::update`], and picks an index into the slice for each new
//! connection.

use core::fmt::Debug;
use core::net::IpAddr;

use crate::dest::{Dest, DestId};
use crate::time::Instant;

pub mod dh;
pub mod fo;
mod hash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod shared;
pub mod wlc;
pub mod wrr;

pub use hash::{addr_fold, hash_32};

/// Service flag: the first scheduler flag (`flag-1`, `sh-fallback`, `mh-fallback`).
pub const SCHED_FLAG1: u32 = 0x0008;
/// Service flag: the second scheduler flag (`flag-2`, `sh-port`, `mh-port`).
pub const SCHED_FLAG2: u32 = 0x0010;
/// Service flag: the third scheduler flag (`flag-3`).
pub const SCHED_FLAG3: u32 = 0x0020;

/// Names of every scheduler rvs knows, as `-s` accepts them.
pub const NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf",
];

/// What a scheduler may look at for one new connection.
#[derive(Debug, Clone, Copy)]
pub struct SchedInput {
    /// Packet source (client) address.
    pub saddr: IpAddr,
    /// Packet source port (0 if the protocol has none).
    pub sport: u16,
    /// Packet destination (virtual) address.
    pub daddr: IpAddr,
    /// Packet destination port.
    pub dport: u16,
    /// IP protocol number of the packet.
    pub proto: u8,
    /// The service's flags (`SCHED_FLAG*` bits among them).
    pub svc_flags: u32,
    /// Now.
    pub now: Instant,
}

/// A change to a service's real-server list, reported after it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestChange {
    /// The scheduler was just bound to the service (also after `-E` changes it).
    Init,
    /// A real server was added (it is now at index 0).
    Added(DestId),
    /// A real server was removed from index `index` of the old list.
    Removed {
        /// Who left.
        id: DestId,
        /// Its key across replicas ([`shared::dest_key`]).
        key: u64,
        /// Where it was in the list before removal.
        index: usize,
    },
    /// A real server's configuration (weight, thresholds, method) changed.
    Edited(DestId),
}

/// Error from [`Scheduler::update`] (the kernel's `add_dest` may fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// The scheduler cannot hold that many real servers (`mh`: more than its table size).
    #[error("too many destinations for the scheduler")]
    TooManyDests,
}

/// A connection scheduler.
pub trait Scheduler: Debug + Send {
    /// The name (`rr`, `wlc`, …).
    fn name(&self) -> &'static str;

    /// The real-server list changed (or the scheduler was just bound): rebuild
    /// whatever state depends on it. `dests` is the list after the change.
    fn update(&mut self, dests: &[Dest], change: DestChange) -> Result<(), SchedError>;

    /// Pick a real server for a new connection: an index into `dests`, or
    /// `None` when no server is available ("no destination available").
    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize>;

    /// Periodic housekeeping (lblc/lblcr garbage collection). Default: nothing.
    fn tick(&mut self, _now: Instant) {}

    /// The state engine replicas of the service share (`rr`/`wrr`'s
    /// position, `lblc`/`lblcr`'s table); `None` for schedulers whose
    /// state is the list alone or the servers' shared counts.
    fn shared(&self) -> Option<shared::Shared> {
        None
    }

    /// Use from now on `with`, another replica's state of the same service
    /// and scheduler ([`Scheduler::shared`]), instead of this one's own.
    fn share(&mut self, _with: shared::Shared) {}
}

/// A fresh scheduler by name, or `None` if unknown.
pub fn by_name(name: &str) -> Option<Box<dyn Scheduler>> {
    Some(match name {
        "rr" => Box::new(rr::RoundRobin::default()),
        "wrr" => Box::new(wrr::WeightedRoundRobin::default()),
        "lc" => Box::new(lc::LeastConn),
        "wlc" => Box::new(wlc::WeightedLeastConn),
        "sed" => Box::new(sed::ShortestExpectedDelay),
        "nq" => Box::new(nq::NeverQueue),
        "lblc" => Box::new(lblc::Lblc::default()),
        "lblcr" => Box::new(lblcr::Lblcr::default()),
        "dh" => Box::new(dh::DestHash::default()),
        "sh" => Box::new(sh::SourceHash::default()),
        "mh" => Box::new(mh::Maglev::default()),
        "fo" => Box::new(fo::FailOver),
        "ovf" => Box::new(ovf::Overflow),
        _ => return None,
    })
}

#[cfg(test)]
#[path = "tests/kernel_tables.rs"]
mod kernel_tables;
