//! The SYN guard's controller: how many of the pure TCP SYNs the XDP
//! classifier claims it lets through to the slow path, adapted every
//! [`INTERVAL`] to what the slow path keeps up with.
//!
//! A spoofed-SYN flood offered faster than rvsd's workers take frames
//! overflows their AF_XDP rings, and a full ring drops whatever comes: the
//! SYN-ACKs of real servers, the ACKs that complete real clients'
//! handshakes, the packets of connections the fast path has not cached yet.
//! A real client then gets through only by luck. Pure SYNs are the one kind
//! of frame that is cheap to turn away (a real client sends its SYN again),
//! so while the rings overflow and SYNs are a large part of what comes
//! (a SYN flood, not some other overload), the classifier sheds a share of
//! them at random before the ring (`classify.c`, `syn_guard`), so that the
//! rest, and everything else, fits.
//!
//! The control is AIMD on the admitted share `a`: each interval with ring
//! drops multiplies it by [`BACKOFF`]; each interval without raises it by
//! [`GROWTH`] until everything is admitted again. It is a pure function of
//! the counters, so it is tested here without packets; the namespace test
//! `netns_synflood` shows it under a real flood.

use std::time::Duration;

/// How often the sync thread steps the controller.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Admitted share after an interval with ring drops: `a * BACKOFF`.
const BACKOFF: f64 = 0.7;

/// Admitted share after an interval without: `a * GROWTH + GROWTH_STEP`.
const GROWTH: f64 = 1.05;
const GROWTH_STEP: f64 = 0.01;

/// Never shed more than this share (a real client's SYN must still get
/// through now and then, however big the flood).
const MIN_ADMIT: f64 = 0.02;

/// SYNs must be at least this share of the claimed frames for ring drops
/// to be blamed on them.
const SYN_SHARE: f64 = 0.25;

/// Counters the controller reads, cumulative (deltas are taken here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Frames the workers' rings dropped (the kernel's receive drops).
    pub ring_drops: u64,
    /// Frames the classifier redirected to the rings (the rings' drops
    /// among them).
    pub redirected: u64,
    /// Pure SYNs it claimed (shed or not).
    pub syns: u64,
    /// Pure SYNs it shed.
    pub shed: u64,
}

/// The controller.
#[derive(Debug, Clone)]
pub struct SynGuard {
    admit: f64,
    last: Option<Reading>,
}

impl Default for SynGuard {
    fn default() -> Self {
        SynGuard {
            admit: 1.0,
            last: None,
        }
    }
}

impl SynGuard {
    /// One step with the counters as they are now: the share of pure SYNs
    /// to shed from now on (0.0 = none).
    pub fn step(&mut self, now: Reading) -> f64 {
        let Some(last) = self.last.replace(now) else {
            return self.shed();
        };
        let drops = now.ring_drops.saturating_sub(last.ring_drops);
        let frames = now.redirected.saturating_sub(last.redirected);
        let syns = now.syns.saturating_sub(last.syns);
        // Shed SYNs were not redirected, but came all the same.
        let came = frames + now.shed.saturating_sub(last.shed);
        let syn_flood = came > 0 && syns as f64 >= SYN_SHARE * came as f64;
        if drops > 0 && syn_flood {
            self.admit = (self.admit * BACKOFF).max(MIN_ADMIT);
        } else {
            self.admit = (self.admit * GROWTH + GROWTH_STEP).min(1.0);
        }
        self.shed()
    }

    /// The share shed now.
    pub fn shed(&self) -> f64 {
        if self.admit >= 1.0 {
            0.0
        } else {
            1.0 - self.admit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(ring_drops: u64, redirected: u64, syns: u64) -> Reading {
        Reading {
            ring_drops,
            redirected,
            syns,
            shed: 0,
        }
    }

    #[test]
    fn quiet_traffic_sheds_nothing() {
        let mut g = SynGuard::default();
        let mut r = Reading::default();
        for _ in 0..50 {
            r.redirected += 10_000;
            r.syns += 9_000;
            assert_eq!(g.step(r), 0.0);
        }
    }

    #[test]
    fn a_syn_flood_that_overflows_the_rings_is_shed_then_released() {
        let mut g = SynGuard::default();
        let mut r = Reading::default();
        g.step(r);
        // A flood twice what the slow path takes: the rings drop half.
        let mut shed = 0.0;
        for _ in 0..5 {
            r.redirected += 20_000;
            r.syns += 20_000;
            r.ring_drops += 10_000;
            shed = g.step(r);
        }
        assert!(shed > 0.5 && shed <= 1.0 - MIN_ADMIT, "{shed}");
        // However long it lasts, some SYNs still get through.
        for _ in 0..100 {
            r.redirected += 1_000;
            r.syns += 1_000;
            r.ring_drops += 10;
            shed = g.step(r);
        }
        assert!((shed - (1.0 - MIN_ADMIT)).abs() < 1e-9, "{shed}");
        // Over: it lets everything through again within a few seconds.
        let mut steps = 0;
        while g.step({
            r.redirected += 1_000;
            r.syns += 100;
            r
        }) > 0.0
        {
            steps += 1;
            assert!(steps < 100, "still shedding after 10 s");
        }
    }

    #[test]
    fn ring_drops_of_another_overload_do_not_shed_syns() {
        let mut g = SynGuard::default();
        let mut r = Reading::default();
        g.step(r);
        for _ in 0..20 {
            // A UDP flood: few SYNs among the frames.
            r.redirected += 100_000;
            r.syns += 100;
            r.ring_drops += 50_000;
            assert_eq!(g.step(r), 0.0);
        }
    }

    #[test]
    fn counters_that_go_back_do_not_panic() {
        let mut g = SynGuard::default();
        g.step(reading(100, 100, 100));
        assert_eq!(g.step(reading(0, 0, 0)), 0.0);
    }
}
