//! `sed` — shortest expected delay (`ip_vs_sed.c`, reference §4.6).
//!
//! WLC (`wlc_pick`) with the expected delay `activeconns + 1` as overhead:
//! the incoming job is counted and inactive connections are ignored.

use super::wlc::wlc_pick;
use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Shortest-expected-delay scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShortestExpectedDelay;

/// The SED/NQ overhead: `activeconns + 1`.
pub(crate) fn sed_overhead(d: &Dest) -> u64 {
    u64::from(d.active()) + 1
}

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        wlc_pick(dests, sed_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;

    #[test]
    fn sequence_counts_the_incoming_job() {
        // Expected delays (a+1)/w: A=1/1 vs B=1/3 -> B; 1/1 vs 2/3 -> B;
        // 1/1 vs 3/3 tie -> A; 2/1 vs 3/3 -> B; 2 vs 4/3 -> B; 2 vs 5/3 -> B;
        // 2 vs 6/3 tie -> A.
        let mut dests = list(&[1, 3]);
        assert_eq!(
            simulate(&mut ShortestExpectedDelay, &mut dests, 7),
            [2, 2, 1, 2, 2, 2, 1]
        );
    }

    #[test]
    fn differs_from_wlc_when_idle() {
        // WLC sees 0/1 vs 0/3 and keeps the first; SED prefers the faster one.
        let dests = list(&[1, 3]);
        assert_eq!(pick(&mut ShortestExpectedDelay, &dests, &input()), Some(2));
        assert_eq!(
            pick(&mut super::super::wlc::WeightedLeastConn, &dests, &input()),
            Some(1)
        );
    }

    #[test]
    fn inactive_ignored() {
        let mut dests = list(&[1, 1]);
        conns(&mut dests, &[(0, 1000), (1, 0)]);
        assert_eq!(pick(&mut ShortestExpectedDelay, &dests, &input()), Some(1));
    }

    #[test]
    fn quiesced_and_overloaded_skipped() {
        let mut dests = list(&[0, 1, 1]);
        dests[1].overload = true;
        conns(&mut dests, &[(0, 0), (0, 0), (40, 0)]);
        assert_eq!(pick(&mut ShortestExpectedDelay, &dests, &input()), Some(3));
        dests[2].overload = true;
        assert_eq!(pick(&mut ShortestExpectedDelay, &dests, &input()), None);
    }
}
