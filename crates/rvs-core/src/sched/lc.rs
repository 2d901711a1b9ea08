//! `lc` — least connection (`ip_vs_lc.c`, reference §4.4).
//!
//! Among dests that are not OVERLOAD and have weight > 0, the one with the
//! smallest `overhead = activeconns * 256 + inactconns`; strict `<`, so the
//! first in list order wins a tie. Weights only matter for being 0.

use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Least-connection scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastConn;

impl Scheduler for LeastConn {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_schedulable() {
                continue;
            }
            let doh = d.overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;

    #[test]
    fn least_overhead_first_among_equals() {
        let mut dests = list(&[1, 9, 1]);
        conns(&mut dests, &[(1, 0), (1, 0), (0, 255)]);
        assert_eq!(pick(&mut LeastConn, &dests, &input()), Some(3));
        conns(&mut dests, &[(1, 0), (0, 256), (0, 256)]);
        assert_eq!(pick(&mut LeastConn, &dests, &input()), Some(1));
        conns(&mut dests, &[(0, 300), (1, 0), (2, 0)]);
        assert_eq!(pick(&mut LeastConn, &dests, &input()), Some(2));
    }

    #[test]
    fn weights_ignored_except_zero() {
        let mut dests = list(&[1, 5, 1]);
        assert_eq!(
            simulate(&mut LeastConn, &mut dests, 7),
            [1, 2, 3, 1, 2, 3, 1]
        );
        let mut dests = list(&[0, 5, 1]);
        assert_eq!(simulate(&mut LeastConn, &mut dests, 4), [2, 3, 2, 3]);
    }

    #[test]
    fn overloaded_skipped() {
        let mut dests = list(&[1, 1]);
        conns(&mut dests, &[(0, 0), (7, 7)]);
        dests[0].overload = true;
        assert_eq!(pick(&mut LeastConn, &dests, &input()), Some(2));
        dests[1].weight = 0;
        assert_eq!(pick(&mut LeastConn, &dests, &input()), None);
    }
}
