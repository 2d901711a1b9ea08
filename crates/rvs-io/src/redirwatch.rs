//! Whether a veth takes the frames the fast path redirects into it, decided
//! without live-frames test runs: by watching the fast path's own
//! redirects. For hosts that refuse `BPF_PROG_TEST_RUN` in live-frames
//! mode ([`crate::livefr`]), where [`Classifier::probe_redirect`] cannot
//! answer.
//!
//! The evidence is the kernel's: a veth counts redirected frames in its
//! `tx_queue_N_xdp_xmit` / `_xdp_xmit_errors` statistics only while its
//! peer is in NAPI mode; otherwise `veth_xdp_xmit` refuses the whole batch
//! before counting anything and the frames are lost. So, per round (rvsd:
//! every second, and as soon as a trial's frame went), with the fast path
//! counting per watched interface the frames it redirected there
//! ([`FlowCache::watch`](crate::flowcache::FlowCache::watch)):
//!
//! * the xdp_xmit counters moved: the interface takes redirects (whoever
//!   redirected);
//! * frames were redirected and the counters did not move: it does not
//!   (they were lost);
//! * nothing was redirected and nothing moved: no evidence, no change.
//!
//! Frames towards an interface not known to take redirects are limited by
//! its gate ([`Gate`]): a *trial* lets [`TRIAL_BUDGET`] frame(s) through,
//! the rest of its flows go through the slow path; a trial that loses its
//! frames closes the gate for [`RETRY_FIRST`], doubling up to
//! [`RETRY_MAX`], before the next trial. An interface found to take
//! redirects has its gate open; [`FLIP_OFF`] rounds in a row of redirects
//! that left the counters still close it again (the peer left NAPI mode).
//! What is lost is thus at most [`TRIAL_BUDGET`] frames per trial (one
//! trial in the first second, then after 1, 2, 4... 60 s), and, for an
//! interface whose peer leaves NAPI mode, its fast-path traffic of about
//! [`FLIP_OFF`] rounds, as with the live-frames probe.
//!
//! [`Classifier::probe_redirect`]: crate::xdp::Classifier::probe_redirect

use std::time::{Duration, Instant};

use crate::flowcache::{Gate, WatchCounts};
use crate::xdp::{XmitCounters, redirect_taken};

/// Frames a trial may redirect (and lose, if the interface does not take
/// them).
pub const TRIAL_BUDGET: u32 = 1;
/// Wait after the first trial that lost its frames.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between trials.
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// Rounds in a row of lost redirects that turn an interface found to take
/// them off.
pub const FLIP_OFF: u8 = 2;

/// One round's readings: the fast path's counts (read first) and the
/// veth's XDP transmit counters (read after them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// [`crate::flowcache::FlowCache::watch_counts`].
    pub watch: WatchCounts,
    /// [`crate::xdp::xdp_xmit_counters`].
    pub counters: XmitCounters,
}

/// Where an interface stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// It takes redirects: gate open.
    On,
    /// A trial: up to [`TRIAL_BUDGET`] frames may be redirected there.
    Trial,
    /// A trial lost its frames: gate closed until `retry`.
    Off {
        /// When the next trial starts.
        retry: Instant,
    },
}

/// What a round decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// The gate to set, if it changes (or needs re-arming).
    pub gate: Option<Gate>,
    /// The interface now takes redirects (`Some(true)`) or no longer does.
    pub flip: Option<bool>,
}

/// The watch of one interface.
#[derive(Debug, Clone)]
pub struct RedirectWatch {
    phase: Phase,
    last: Sample,
    /// Wait after the next failed trial.
    backoff: Duration,
    /// Consecutive rounds of lost redirects while [`Phase::On`].
    against: u8,
    /// Frames redirected without the counters moving, since start.
    lost: u64,
    /// Trials so far.
    trials: u64,
    /// The last round's evidence, for [`RedirectWatch::describe`].
    last_evidence: Option<(bool, u64)>,
}

impl RedirectWatch {
    /// Start watching from `baseline` (read before any frame could be
    /// redirected under the watch): a trial, with the gate to set.
    pub fn new(baseline: Sample) -> (RedirectWatch, Gate) {
        let w = RedirectWatch {
            phase: Phase::Trial,
            last: baseline,
            backoff: RETRY_FIRST,
            against: 0,
            lost: 0,
            trials: 1,
            last_evidence: None,
        };
        (w, Gate::Budget(TRIAL_BUDGET))
    }

    /// Whether the interface is taken to take redirects.
    pub fn takes(&self) -> bool {
        self.phase == Phase::On
    }

    /// Where it stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Frames redirected there that the counters did not show (lost).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Trials started so far (the first one at [`RedirectWatch::new`]).
    pub fn trials(&self) -> u64 {
        self.trials
    }

    /// Whether `s` shows redirects and still counters: worth reading the
    /// counters again after a moment, since the fast path counts a
    /// redirect before the kernel sends the frame at the end of its poll.
    pub fn settle_wanted(&self, s: &Sample) -> bool {
        s.watch.redirected > self.last.watch.redirected
            && !redirect_taken(self.last.counters, s.counters)
    }

    /// Take one round's readings `s` at `now`.
    pub fn round(&mut self, s: Sample, now: Instant) -> Step {
        let prev = std::mem::replace(&mut self.last, s);
        // Below the last reading: the counters were reset (the interface
        // re-created); no evidence this round.
        let redirected = s.watch.redirected.saturating_sub(prev.watch.redirected);
        let evidence = if redirect_taken(prev.counters, s.counters) {
            Some(true)
        } else if redirected > 0 {
            Some(false)
        } else {
            None
        };
        if let Some(e) = evidence {
            self.last_evidence = Some((e, redirected));
        }
        if evidence == Some(false) {
            self.lost += redirected;
        }
        match (self.phase, evidence) {
            (Phase::On, Some(true)) | (Phase::On, None) => {
                if evidence.is_some() {
                    self.against = 0;
                }
                Step::default()
            }
            (Phase::On, Some(false)) => {
                self.against += 1;
                if self.against < FLIP_OFF {
                    return Step::default();
                }
                self.against = 0;
                self.close(now, true)
            }
            (_, Some(true)) => {
                self.phase = Phase::On;
                self.backoff = RETRY_FIRST;
                self.against = 0;
                Step {
                    gate: Some(Gate::Open),
                    flip: Some(true),
                }
            }
            (Phase::Trial, Some(false)) => self.close(now, false),
            (Phase::Trial, None) => {
                // A budget spent on a frame the fast path then left to the
                // slow path (TTL, MTU): re-arm it.
                if s.watch.budget_left.is_some_and(|b| b <= 0) {
                    Step {
                        gate: Some(Gate::Budget(TRIAL_BUDGET)),
                        flip: None,
                    }
                } else {
                    Step::default()
                }
            }
            (Phase::Off { retry }, _) => {
                if now < retry {
                    return Step::default();
                }
                self.phase = Phase::Trial;
                self.trials += 1;
                Step {
                    gate: Some(Gate::Budget(TRIAL_BUDGET)),
                    flip: None,
                }
            }
        }
    }

    /// Gate closed, next trial after the backoff (doubled for the next
    /// time, up to [`RETRY_MAX`]).
    fn close(&mut self, now: Instant, was_on: bool) -> Step {
        self.phase = Phase::Off {
            retry: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
        Step {
            gate: Some(Gate::Budget(0)),
            flip: was_on.then_some(false),
        }
    }

    /// Why the fast path sends there or not, for `rvs dataplane`.
    pub fn describe(&self, now: Instant) -> String {
        let seen = match self.last_evidence {
            Some((true, n)) => format!(
                "its xdp_xmit counters moved ({n} frame(s) redirected there since the \
                 look before): its peer is in NAPI mode"
            ),
            Some((false, n)) => format!(
                "{n} frame(s) redirected there left its xdp_xmit counters still: lost, \
                 its peer is not in NAPI mode (no XDP program or GRO on it)"
            ),
            None => "no redirect seen yet".into(),
        };
        match self.phase {
            Phase::On => format!("on: {seen}"),
            Phase::Trial => format!(
                "trial: its flows go through the engine except {TRIAL_BUDGET} frame(s) \
                 redirected to test it; {seen}; {} frame(s) lost, {} sent through the \
                 engine instead so far",
                self.lost, self.last.watch.held
            ),
            Phase::Off { retry } => format!(
                "off: {seen}; its flows go through the engine; next trial in {} s; \
                 {} frame(s) lost in {} trial(s), {} sent through the engine instead so far",
                retry.saturating_duration_since(now).as_secs_f64().ceil() as u64,
                self.lost,
                self.trials,
                self.last.watch.held
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(redirected: u64, delivered: u64, budget: Option<i64>) -> Sample {
        Sample {
            watch: WatchCounts {
                redirected,
                held: 0,
                budget_left: budget,
            },
            counters: XmitCounters {
                delivered,
                refused: 0,
            },
        }
    }

    #[test]
    fn a_trial_that_reaches_the_peer_opens_the_gate() {
        let t0 = Instant::now();
        let (mut w, g) = RedirectWatch::new(sample(0, 5, None));
        assert_eq!(g, Gate::Budget(TRIAL_BUDGET));
        // No traffic: no evidence.
        assert_eq!(w.round(sample(0, 5, Some(1)), t0), Step::default());
        assert_eq!(w.phase(), Phase::Trial);
        let s = w.round(sample(1, 6, Some(0)), t0);
        assert_eq!(s.gate, Some(Gate::Open));
        assert_eq!(s.flip, Some(true));
        assert!(w.takes());
        assert_eq!(w.lost(), 0);
    }

    #[test]
    fn a_lost_trial_backs_off_doubling() {
        let t0 = Instant::now();
        let (mut w, _) = RedirectWatch::new(sample(0, 0, None));
        let mut t = t0;
        let mut redirected = 0;
        let mut waits = Vec::new();
        for _ in 0..10 {
            redirected += 1;
            let s = w.round(sample(redirected, 0, Some(0)), t);
            assert_eq!(s.gate, Some(Gate::Budget(0)));
            assert_eq!(s.flip, None, "it was never on");
            let Phase::Off { retry } = w.phase() else {
                panic!("{:?}", w.phase());
            };
            waits.push((retry - t).as_secs());
            // Before the retry time: nothing; at it, a new trial.
            assert_eq!(w.round(sample(redirected, 0, Some(0)), t), Step::default());
            t = retry;
            let s = w.round(sample(redirected, 0, Some(0)), t);
            assert_eq!(s.gate, Some(Gate::Budget(TRIAL_BUDGET)));
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(w.lost(), 10);
        assert_eq!(w.trials(), 11);
    }

    #[test]
    fn on_flips_off_after_two_lost_rounds() {
        let t0 = Instant::now();
        let (mut w, _) = RedirectWatch::new(sample(0, 0, None));
        w.round(sample(1, 1, Some(0)), t0);
        assert!(w.takes());
        // One lost round (a flush not seen yet, say): no change.
        assert_eq!(w.round(sample(100, 1, None), t0), Step::default());
        // Counters moving again resets it.
        assert_eq!(w.round(sample(200, 50, None), t0), Step::default());
        assert_eq!(w.round(sample(300, 50, None), t0), Step::default());
        let s = w.round(sample(400, 50, None), t0);
        assert_eq!(s.flip, Some(false));
        assert_eq!(s.gate, Some(Gate::Budget(0)));
        assert!(!w.takes());
        assert_eq!(w.lost(), 99 + 100 + 100);
    }

    #[test]
    fn counters_moving_by_anyone_turn_it_on() {
        let t0 = Instant::now();
        let (mut w, _) = RedirectWatch::new(sample(0, 0, None));
        w.round(sample(1, 0, Some(0)), t0);
        assert!(matches!(w.phase(), Phase::Off { .. }));
        // Someone else's redirects are delivered: NAPI mode, no trial needed.
        let s = w.round(sample(1, 3, Some(0)), t0);
        assert_eq!(s.flip, Some(true));
        assert_eq!(s.gate, Some(Gate::Open));
    }

    #[test]
    fn a_spent_budget_without_redirect_is_rearmed() {
        let t0 = Instant::now();
        let (mut w, _) = RedirectWatch::new(sample(0, 0, None));
        let s = w.round(sample(0, 0, Some(0)), t0);
        assert_eq!(s.gate, Some(Gate::Budget(TRIAL_BUDGET)));
        assert_eq!(w.phase(), Phase::Trial);
    }
}
