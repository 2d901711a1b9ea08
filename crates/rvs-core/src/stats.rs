//! Traffic counters and the kernel's 2-second EWMA rate estimator (reference §6).
//!
//! Counters only grow; zeroing (`-Z`) records the current values as the zero
//! point, exactly as the kernel's `kstats0` does, so a reader always sees
//! `counters - zero_point`.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::Arc;

use crate::time::Instant;

/// How often the estimator samples the counters.
pub const ESTIMATOR_PERIOD: Duration = Duration::from_secs(2);

/// The five IPVS counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Connections scheduled (templates excluded).
    pub conns: u64,
    /// Packets client → real server.
    pub inpkts: u64,
    /// Packets real server → client (NAT only).
    pub outpkts: u64,
    /// Bytes client → real server (IP length).
    pub inbytes: u64,
    /// Bytes real server → client.
    pub outbytes: u64,
}

impl Counters {
    /// Field-wise `self - other`, wrapping like the kernel's u64 arithmetic.
    pub fn since(&self, zero: &Counters) -> Counters {
        Counters {
            conns: self.conns.wrapping_sub(zero.conns),
            inpkts: self.inpkts.wrapping_sub(zero.inpkts),
            outpkts: self.outpkts.wrapping_sub(zero.outpkts),
            inbytes: self.inbytes.wrapping_sub(zero.inbytes),
            outbytes: self.outbytes.wrapping_sub(zero.outbytes),
        }
    }

    /// Field-wise sum.
    pub fn add(&mut self, o: &Counters) {
        self.conns = self.conns.wrapping_add(o.conns);
        self.inpkts = self.inpkts.wrapping_add(o.inpkts);
        self.outpkts = self.outpkts.wrapping_add(o.outpkts);
        self.inbytes = self.inbytes.wrapping_add(o.inbytes);
        self.outbytes = self.outbytes.wrapping_add(o.outbytes);
    }
}

/// Rates as ipvsadm shows them (per second, rounded as the kernel does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// The kernel estimator state (`struct ip_vs_estimator`), scaled values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimator {
    last: Counters,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

impl Estimator {
    /// One 2-second sample of `cur` (`ip_vs_estimation_chain`).
    pub fn sample(&mut self, cur: &Counters) {
        fn ewma(avg: &mut i64, cur: u64, last: u64, shift: u32) {
            let raw = (cur.wrapping_sub(last) as i64).wrapping_shl(shift);
            *avg = avg.wrapping_add(raw.wrapping_sub(*avg) >> 2);
        }
        ewma(&mut self.cps, cur.conns, self.last.conns, 9);
        ewma(&mut self.inpps, cur.inpkts, self.last.inpkts, 9);
        ewma(&mut self.outpps, cur.outpkts, self.last.outpkts, 9);
        ewma(&mut self.inbps, cur.inbytes, self.last.inbytes, 4);
        ewma(&mut self.outbps, cur.outbytes, self.last.outbytes, 4);
        self.last = *cur;
    }

    /// Read-out as `ip_vs_read_estimator` does.
    pub fn rates(&self) -> Rates {
        let pps = |v: i64| ((v as u64).wrapping_add(0x1FF)) >> 10;
        let bps = |v: i64| ((v as u64).wrapping_add(0xF)) >> 5;
        Rates {
            cps: pps(self.cps),
            inpps: pps(self.inpps),
            outpps: pps(self.outpps),
            inbps: bps(self.inbps),
            outbps: bps(self.outbps),
        }
    }

    /// Zeroing: rates to 0, `last` to the current counters.
    pub fn reset(&mut self, cur: &Counters) {
        *self = Estimator {
            last: *cur,
            ..Estimator::default()
        };
    }
}

/// The five counters in [`Counters`]' order.
fn to_array(c: &Counters) -> [u64; 5] {
    [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes]
}

fn from_array(a: [u64; 5]) -> Counters {
    Counters {
        conns: a[0],
        inpkts: a[1],
        outpkts: a[2],
        inbytes: a[3],
        outbytes: a[4],
    }
}

fn load(cells: &[AtomicU64; 5], order: Ordering) -> [u64; 5] {
    [0, 1, 2, 3, 4].map(|i| cells[i].load(order))
}

/// Add `n` to a counter only its owner writes: a load and a store, not a
/// locked read-modify-write (as cheap as a plain `+=`); readers on other
/// threads see each counter whole.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// What [`Stats`] shows, in atomics: its raw counters, the zero point of
/// the last `-Z` and the estimator's rates. The engine replica that owns
/// the [`Stats`] is the only writer (under its `&mut`); a reader on any
/// other thread holds an `Arc` of the cells ([`Stats::cells`]) and reads
/// them without the replica, so listing statistics stops no worker — the
/// kernel's per-CPU `ip_vs_stats`, summed when read, in the same spirit.
/// A read is a consistent value per counter, not a snapshot of all five
/// at one instant (nor is the kernel's).
#[derive(Debug, Default)]
pub struct StatCells {
    counters: [AtomicU64; 5],
    zero: [AtomicU64; 5],
    rates: [AtomicU64; 5],
}

impl StatCells {
    /// The raw counters.
    pub fn counters(&self) -> Counters {
        from_array(load(&self.counters, Ordering::Relaxed))
    }

    /// The counters since the last `-Z` (the zero point read first, with
    /// acquire: counters read after it are never below it).
    pub fn shown(&self) -> Counters {
        let zero = from_array(load(&self.zero, Ordering::Acquire));
        self.counters().since(&zero)
    }

    /// The rates of the last estimator sample.
    pub fn rates(&self) -> Rates {
        let r = load(&self.rates, Ordering::Relaxed);
        Rates {
            cps: r[0],
            inpps: r[1],
            outpps: r[2],
            inbps: r[3],
            outbps: r[4],
        }
    }

    fn set_rates(&self, r: &Rates) {
        for (c, v) in self
            .rates
            .iter()
            .zip([r.cps, r.inpps, r.outpps, r.inbps, r.outbps])
        {
            c.store(v, Ordering::Relaxed);
        }
    }

    fn copy(&self) -> StatCells {
        let cells = StatCells::default();
        for (to, from) in [
            (&cells.counters, &self.counters),
            (&cells.zero, &self.zero),
            (&cells.rates, &self.rates),
        ] {
            for (t, f) in to.iter().zip(from) {
                t.store(f.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        cells
    }
}

/// Counters, zero point and estimator of one service, real server or the
/// whole table. The values live in [`StatCells`], readable from other
/// threads; the estimator's state is the owner's alone. A clone has cells
/// of its own (an engine replica counts apart from the others).
#[derive(Debug, Default)]
pub struct Stats {
    cells: Arc<StatCells>,
    est: Estimator,
    next_sample: Option<Instant>,
}

impl Clone for Stats {
    fn clone(&self) -> Stats {
        Stats {
            cells: Arc::new(self.cells.copy()),
            est: self.est,
            next_sample: self.next_sample,
        }
    }
}

impl Stats {
    /// The cells, for a reader on another thread.
    pub fn cells(&self) -> &Arc<StatCells> {
        &self.cells
    }

    /// Raw counters since creation.
    pub fn counters(&self) -> Counters {
        self.cells.counters()
    }

    /// Counters as shown to the operator (since the last `-Z`).
    pub fn shown(&self) -> Counters {
        self.cells.shown()
    }

    /// Current rates.
    pub fn rates(&self) -> Rates {
        self.cells.rates()
    }

    /// `-Z`.
    pub fn zero(&mut self) {
        let cur = self.counters();
        for (z, v) in self.cells.zero.iter().zip(to_array(&cur)) {
            z.store(v, Ordering::Release);
        }
        self.est.reset(&cur);
        self.cells.set_rates(&self.est.rates());
    }

    /// Run the estimator for every 2-second period that ended by `now`.
    /// The first call only arms the timer.
    pub fn estimate(&mut self, now: Instant) {
        let cur = self.counters();
        match self.next_sample {
            None => {
                self.est.reset(&cur);
                self.next_sample = Some(now + ESTIMATOR_PERIOD);
            }
            Some(mut at) => {
                if at > now {
                    return;
                }
                // Missed periods see no new traffic beyond the first sample.
                while at <= now {
                    self.est.sample(&cur);
                    at = at + ESTIMATOR_PERIOD;
                }
                self.next_sample = Some(at);
            }
        }
        self.cells.set_rates(&self.est.rates());
    }

    /// Count one connection scheduled.
    #[inline]
    pub fn count_conn(&mut self) {
        bump(&self.cells.counters[0], 1);
    }

    /// Count one incoming packet of `bytes` (IP length).
    #[inline]
    pub fn count_in(&mut self, bytes: usize) {
        self.count_in_many(1, bytes as u64);
    }

    /// Count one outgoing packet.
    #[inline]
    pub fn count_out(&mut self, bytes: usize) {
        self.count_out_many(1, bytes as u64);
    }

    /// Count `packets` incoming packets of `bytes` bytes in all (traffic
    /// the XDP fast path forwarded, credited in bulk).
    #[inline]
    pub fn count_in_many(&mut self, packets: u64, bytes: u64) {
        bump(&self.cells.counters[1], packets);
        bump(&self.cells.counters[3], bytes);
    }

    /// Count `packets` outgoing packets of `bytes` bytes in all.
    #[inline]
    pub fn count_out_many(&mut self, packets: u64, bytes: u64) {
        bump(&self.cells.counters[2], packets);
        bump(&self.cells.counters[4], bytes);
    }

    /// Add `c` to the raw counters (tests, and state carried over).
    pub fn add(&mut self, c: &Counters) {
        for (cell, v) in self.cells.counters.iter().zip(to_array(c)) {
            bump(cell, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_converges_and_rounds() {
        let mut st = Stats::default();
        let mut t = Instant::ZERO;
        st.estimate(t);
        for _ in 0..60 {
            // 100 conns/s, 1000 pkts/s in, 64000 bytes/s in.
            st.add(&Counters {
                conns: 200,
                inpkts: 2000,
                inbytes: 128_000,
                ..Counters::default()
            });
            t = t + ESTIMATOR_PERIOD;
            st.estimate(t);
        }
        let r = st.rates();
        assert_eq!(r.cps, 100);
        assert_eq!(r.inpps, 1000);
        assert_eq!(r.inbps, 64_000);
        assert_eq!(r.outpps, 0);
    }

    #[test]
    fn ewma_weight_is_one_quarter() {
        let mut e = Estimator::default();
        let c = Counters {
            conns: 2,
            ..Counters::default()
        };
        e.sample(&c);
        // raw = 2 << 9 = 1024 (= 1/s scaled by 1024); avg = 1024/4 = 256 -> (256+511)>>10 = 0
        assert_eq!(e.cps, 256);
        assert_eq!(e.rates().cps, 0);
        let c2 = Counters {
            conns: 4,
            ..Counters::default()
        };
        e.sample(&c2);
        assert_eq!(e.cps, 256 + ((1024 - 256) >> 2));
        assert_eq!(e.rates().cps, 0); // 448 + 511 < 1024
        e.sample(&Counters {
            conns: 6,
            ..Counters::default()
        });
        assert_eq!(e.cps, 448 + ((1024 - 448) >> 2)); // 592 -> rounds to 1
        assert_eq!(e.rates().cps, 1);
    }

    #[test]
    fn zero_keeps_raw_counters_and_resets_rates() {
        let mut st = Stats::default();
        st.estimate(Instant::ZERO);
        st.count_in(100);
        st.add(&Counters {
            conns: 7,
            ..Counters::default()
        });
        st.estimate(Instant::from_secs(2));
        assert!(st.est.inpps > 0);
        st.zero();
        assert_eq!(st.shown(), Counters::default());
        assert_eq!(st.rates(), Rates::default());
        st.count_in(50);
        assert_eq!(st.shown().inpkts, 1);
        assert_eq!(st.shown().inbytes, 50);
        assert_eq!(st.counters().inpkts, 2);
    }

    /// A reader on another thread, while the owner counts and zeroes,
    /// never sees a counter below its zero point (which would show as a
    /// wrapped, huge value) and sees the counters grow between zeroings.
    #[test]
    // The test's own reader thread: the engine never starts one.
    #[allow(clippy::disallowed_methods)]
    fn cells_read_on_another_thread_never_wrap() {
        let mut st = Stats::default();
        let cells = Arc::clone(st.cells());
        let done = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let reader = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) || reads == 0 {
                    let c = cells.shown();
                    assert!(c.inpkts <= 200_000, "{c:?}");
                    assert_eq!(c.inbytes % 10, 0, "{c:?}");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..200_000u32 {
            st.count_in(10);
            if i % 50_000 == 0 {
                st.zero();
            }
        }
        done.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(st.shown().inpkts, 49_999);
    }

    #[test]
    fn falling_traffic_decays() {
        let mut st = Stats::default();
        st.estimate(Instant::ZERO);
        st.add(&Counters {
            inpkts: 20_000,
            ..Counters::default()
        });
        st.estimate(Instant::from_secs(2));
        let first = st.rates().inpps;
        assert_eq!(first, 2500); // 10000/s * 1/4
        st.estimate(Instant::from_secs(4));
        assert_eq!(st.rates().inpps, 1875);
    }
}
