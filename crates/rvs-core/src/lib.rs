//! rvs-core: the IPVS engine without I/O.
//!
//! Everything that decides lives here: virtual services and real servers,
//! the schedulers, the connection table with its state machine and timers,
//! persistence, statistics, and [`Engine::process`], the per-packet decision.
//! Nothing here reads a clock, touches a socket or spawns a thread: time comes
//! in as an [`Instant`], packets as byte slices, and decisions go out as
//! [`Action`]s. That keeps every behaviour deterministic and testable without
//! root (the model is `quinn-proto` and smoltcp's `Interface::poll`).
//! Clippy checks it (`clippy.toml` beside this crate's manifest).
//!
//! "Reference §N" in the docs of this workspace is section N of
//! `docs/ipvs-interface.md`, the IPVS interface reference; the design is
//! `docs/ARCHITECTURE.md`.

#![cfg_attr(not(test), warn(missing_docs))]

pub mod batch;
pub mod claims;
pub mod conn;
pub mod dest;
pub mod engine;
pub mod fastpath;
pub mod frag;
pub mod fwmark;
pub mod sched;
pub mod service;
pub mod stats;
pub mod sysctl;
pub mod time;
pub mod types;

pub use dest::{Dest, DestConfig, DestId};
pub use engine::{Action, Engine, EngineConfig};
pub use time::Instant;
pub use types::{Af, FwdMethod, Protocol, TunType, Tunnel};
