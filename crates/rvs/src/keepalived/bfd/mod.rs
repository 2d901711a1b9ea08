// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's BFD process, as a part of `rvs health run`: the sessions
//! of the `bfd_instance` blocks that BFD_CHECKs follow (RFC 5880
//! asynchronous mode over RFC 5881 single-hop and RFC 5883 multihop UDP).
//!
//! * [`wire`]: the Control packet, parsed and emitted (pure);
//! * [`session`]: one session's state machine, fed time, packets and
//!   random numbers (pure);
//! * [`io`]: the thread that runs every session: its sockets, timers, and
//!   the state changes it hands to the scheduler.

#[cfg(test)]
mod fuzz;
pub mod io;
pub mod session;
pub mod wire;
