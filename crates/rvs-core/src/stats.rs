//! Traffic counters and the kernel's 2-second EWMA rate estimator (reference §6).
//!
//! Counters only grow; zeroing (`-Z`) records the current values as the zero
//! point, exactly as the kernel's `kstats0` does, so a reader always sees
//! `counters - zero_point`.

use core::time::Duration;

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

/// Counters, zero point and estimator of one service, real server or the whole table.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Raw counters since creation.
    pub counters: Counters,
    zero: Counters,
    est: Estimator,
    next_sample: Option<Instant>,
}

impl Stats {
    /// Counters as shown to the operator (since the last `-Z`).
    pub fn shown(&self) -> Counters {
        self.counters.since(&self.zero)
    }

    /// Current rates.
    pub fn rates(&self) -> Rates {
        self.est.rates()
    }

    /// `-Z`.
    pub fn zero(&mut self) {
        self.zero = self.counters;
        self.est.reset(&self.counters);
    }

    /// Run the estimator for every 2-second period that ended by `now`.
    /// The first call only arms the timer.
    pub fn estimate(&mut self, now: Instant) {
        match self.next_sample {
            None => {
                self.est.reset(&self.counters);
                self.next_sample = Some(now + ESTIMATOR_PERIOD);
            }
            Some(mut at) => {
                // Missed periods see no new traffic beyond the first sample.
                while at <= now {
                    self.est.sample(&self.counters);
                    at = at + ESTIMATOR_PERIOD;
                }
                self.next_sample = Some(at);
            }
        }
    }

    /// Count one incoming packet of `bytes` (IP length).
    #[inline]
    pub fn count_in(&mut self, bytes: usize) {
        self.counters.inpkts += 1;
        self.counters.inbytes += bytes as u64;
    }

    /// Count one outgoing packet.
    #[inline]
    pub fn count_out(&mut self, bytes: usize) {
        self.counters.outpkts += 1;
        self.counters.outbytes += bytes as u64;
    }

    /// Count `packets` incoming packets of `bytes` bytes in all (traffic
    /// the XDP fast path forwarded, credited in bulk).
    #[inline]
    pub fn count_in_many(&mut self, packets: u64, bytes: u64) {
        self.counters.inpkts = self.counters.inpkts.wrapping_add(packets);
        self.counters.inbytes = self.counters.inbytes.wrapping_add(bytes);
    }

    /// Count `packets` outgoing packets of `bytes` bytes in all.
    #[inline]
    pub fn count_out_many(&mut self, packets: u64, bytes: u64) {
        self.counters.outpkts = self.counters.outpkts.wrapping_add(packets);
        self.counters.outbytes = self.counters.outbytes.wrapping_add(bytes);
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
            st.counters.conns += 200;
            st.counters.inpkts += 2000;
            st.counters.inbytes += 128_000;
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
        st.counters.conns = 7;
        st.estimate(Instant::from_secs(2));
        assert!(st.est.inpps > 0);
        st.zero();
        assert_eq!(st.shown(), Counters::default());
        assert_eq!(st.rates(), Rates::default());
        st.count_in(50);
        assert_eq!(st.shown().inpkts, 1);
        assert_eq!(st.shown().inbytes, 50);
        assert_eq!(st.counters.inpkts, 2);
    }

    #[test]
    fn falling_traffic_decays() {
        let mut st = Stats::default();
        st.estimate(Instant::ZERO);
        st.counters.inpkts = 20_000;
        st.estimate(Instant::from_secs(2));
        let first = st.rates().inpps;
        assert_eq!(first, 2500); // 10000/s * 1/4
        st.estimate(Instant::from_secs(4));
        assert_eq!(st.rates().inpps, 1875);
    }
}
