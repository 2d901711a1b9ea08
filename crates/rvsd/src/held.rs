//! Frames waiting for a next hop.
//!
//! When the engine answers [`rvs_core::Action::NeedHop`], the frame is
//! untouched and nothing was counted for it. Like the kernel's per-neighbour
//! queue of unresolved packets, the worker keeps a bounded number of such
//! frames and processes them again once the hop is known, instead of
//! dropping them (a dropped SYN-ACK costs the client a one-second
//! retransmission). Frames older than [`HOLD_LIMIT`] are dropped.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rvs_core::engine::PortId;

/// Free space kept in front of a held frame (IP-in-IP encapsulation).
pub const HEADROOM: usize = 128;
/// Frames held per worker.
pub const MAX_HELD: usize = 256;
/// Frames held per address (the kernel's `unres_qlen` is about 100 small
/// packets; a handful is enough for a handshake).
pub const MAX_PER_ADDR: usize = 16;
/// How long a frame may wait (the kernel gives up on an unresolved
/// neighbour after about 3 s).
pub const HOLD_LIMIT: Duration = Duration::from_secs(3);

/// One held frame.
#[derive(Debug)]
pub struct Held {
    /// The address whose hop was missing.
    pub addr: IpAddr,
    /// The port the frame came in on.
    pub ingress: PortId,
    /// When it was held.
    pub since: Instant,
    /// [`HEADROOM`] bytes, then the frame.
    pub buf: Vec<u8>,
}

impl Held {
    /// Length of the frame after the headroom.
    pub fn len(&self) -> usize {
        self.buf.len() - HEADROOM
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bounded queue of one worker.
#[derive(Debug, Default)]
pub struct HeldFrames {
    frames: VecDeque<Held>,
    /// Buffers to reuse.
    spare: Vec<Vec<u8>>,
}

impl HeldFrames {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Hold a copy of `frame`; returns how many frames were dropped to
    /// make room (0 or 1: the oldest of the same address, else the oldest).
    pub fn hold(&mut self, addr: IpAddr, ingress: PortId, frame: &[u8], now: Instant) -> u64 {
        let mut dropped = 0;
        let same = self.frames.iter().filter(|h| h.addr == addr).count();
        let victim = if same >= MAX_PER_ADDR {
            self.frames.iter().position(|h| h.addr == addr)
        } else if self.frames.len() >= MAX_HELD {
            Some(0)
        } else {
            None
        };
        if let Some(i) = victim
            && let Some(h) = self.frames.remove(i)
        {
            self.spare.push(h.buf);
            dropped += 1;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(HEADROOM, 0);
        buf.extend_from_slice(frame);
        self.frames.push_back(Held {
            addr,
            ingress,
            since: now,
            buf,
        });
        dropped
    }

    /// Take out, in arrival order, the frames whose hop `ready` says is now
    /// known, and drop those held longer than [`HOLD_LIMIT`]; returns the
    /// number dropped.
    pub fn take_ready(
        &mut self,
        now: Instant,
        mut ready: impl FnMut(IpAddr) -> bool,
        out: &mut Vec<Held>,
    ) -> u64 {
        let mut dropped = 0;
        let mut keep = VecDeque::with_capacity(self.frames.len());
        for h in self.frames.drain(..) {
            if ready(h.addr) {
                out.push(h);
            } else if now.duration_since(h.since) > HOLD_LIMIT {
                self.spare.push(h.buf);
                dropped += 1;
            } else {
                keep.push_back(h);
            }
        }
        self.frames = keep;
        dropped
    }

    /// Give a buffer back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < MAX_HELD {
            self.spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn a(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn held_frames_come_back_in_order_with_headroom() {
        let t0 = Instant::now();
        let mut q = HeldFrames::default();
        assert_eq!(q.hold(a(1), PortId(3), b"first", t0), 0);
        assert_eq!(q.hold(a(2), PortId(3), b"other", t0), 0);
        assert_eq!(q.hold(a(1), PortId(4), b"second", t0), 0);
        let mut out = Vec::new();
        assert_eq!(q.take_ready(t0, |x| x == a(1), &mut out), 0);
        let got: Vec<(&[u8], PortId)> = out
            .iter()
            .map(|h| (&h.buf[HEADROOM..], h.ingress))
            .collect();
        assert_eq!(
            got,
            vec![(&b"first"[..], PortId(3)), (&b"second"[..], PortId(4))]
        );
        assert_eq!(out[0].len(), 5);
        assert!(!q.is_empty());
    }

    #[test]
    fn bounded_per_address_and_in_total() {
        let t0 = Instant::now();
        let mut q = HeldFrames::default();
        let mut dropped = 0;
        for i in 0..MAX_PER_ADDR + 3 {
            dropped += q.hold(a(1), PortId(1), &[i as u8], t0);
        }
        assert_eq!(dropped, 3);
        let mut out = Vec::new();
        q.take_ready(t0, |_| true, &mut out);
        assert_eq!(out.len(), MAX_PER_ADDR);
        // The newest are kept.
        assert_eq!(out[0].buf[HEADROOM], 3);

        let mut q = HeldFrames::default();
        let mut dropped = 0;
        for i in 0..MAX_HELD + 5 {
            dropped += q.hold(a((i % 200) as u8), PortId(1), b"x", t0);
        }
        assert_eq!(dropped, 5);
        let mut out = Vec::new();
        q.take_ready(t0, |_| true, &mut out);
        assert_eq!(out.len(), MAX_HELD);
    }

    #[test]
    fn old_frames_are_dropped() {
        let t0 = Instant::now();
        let mut q = HeldFrames::default();
        q.hold(a(1), PortId(1), b"x", t0);
        let mut out = Vec::new();
        assert_eq!(
            q.take_ready(t0 + Duration::from_secs(1), |_| false, &mut out),
            0
        );
        assert!(!q.is_empty());
        assert_eq!(
            q.take_ready(
                t0 + HOLD_LIMIT + Duration::from_millis(1),
                |_| false,
                &mut out
            ),
            1
        );
        assert!(q.is_empty() && out.is_empty());
    }
}
