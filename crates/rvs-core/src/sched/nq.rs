//! `nq` — never queue (`ip_vs_nq.c`, reference §4.7).
//!
//! Among dests that are not OVERLOAD and have weight > 0, the first (in list
//! order) without active connections is taken at once; if every one is busy,
//! the SED choice (`sed_overhead` compared as in WLC).

use super::sed::sed_overhead;
use super::wlc::wlc_pick;
use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Never-queue scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        dests
            .iter()
            .position(|d| d.is_schedulable() && d.active() == 0)
            .or_else(|| wlc_pick(dests, sed_overhead))
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;

    #[test]
    fn first_idle_server_wins() {
        let mut dests = list(&[1, 5, 3]);
        conns(&mut dests, &[(2, 0), (0, 99), (0, 0)]);
        assert_eq!(pick(&mut NeverQueue, &dests, &input()), Some(2));
    }

    #[test]
    fn idle_but_unusable_is_skipped() {
        let mut dests = list(&[1, 0, 2]);
        dests[0].overload = true;
        conns(&mut dests, &[(0, 0), (0, 0), (0, 0)]);
        assert_eq!(pick(&mut NeverQueue, &dests, &input()), Some(3));
    }

    #[test]
    fn all_busy_falls_back_to_sed() {
        let mut dests = list(&[1, 3]);
        // (1+1)/1 vs (2+1)/3: B; inactive ignored.
        conns(&mut dests, &[(1, 0), (2, 500)]);
        assert_eq!(pick(&mut NeverQueue, &dests, &input()), Some(2));
        // (1+1)/1 vs (6+1)/3: A.
        conns(&mut dests, &[(1, 0), (6, 0)]);
        assert_eq!(pick(&mut NeverQueue, &dests, &input()), Some(1));
    }

    #[test]
    fn sequence_fills_idle_servers_first() {
        let mut dests = list(&[1, 3, 1]);
        // Idle ones first in list order; then SED on (active + 1) / weight:
        // A = 2/1 and C = 2/1 stay, B wins with 2/3, 3/3, 4/3, 5/3 and
        // ties A at 6/3, where the first (A) is kept.
        assert_eq!(
            simulate(&mut NeverQueue, &mut dests, 8),
            [1, 2, 3, 2, 2, 2, 2, 1]
        );
    }

    #[test]
    fn nothing_usable() {
        let mut dests = list(&[0, 1]);
        dests[1].overload = true;
        assert_eq!(pick(&mut NeverQueue, &dests, &input()), None);
    }
}
