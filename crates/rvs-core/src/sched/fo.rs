//! `fo` — weighted fail-over (`ip_vs_fo.c`, reference §4.8).
//!
//! Among dests that are not OVERLOAD, the one with the highest weight
//! (strictly greater replaces, so the first of equals wins; weight 0 never
//! qualifies). Connection counts are not looked at.

use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Weighted fail-over scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailOver;

impl Scheduler for FailOver {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut hw = 0;
        for (i, d) in dests.iter().enumerate() {
            if !d.overloaded() && d.weight > hw {
                best = Some(i);
                hw = d.weight;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;

    #[test]
    fn highest_weight_first_among_equals() {
        let dests = list(&[2, 5, 5, 3]);
        assert_eq!(pick(&mut FailOver, &dests, &input()), Some(2));
    }

    #[test]
    fn load_is_ignored() {
        let mut dests = list(&[1, 5]);
        assert_eq!(simulate(&mut FailOver, &mut dests, 3), [2, 2, 2]);
    }

    #[test]
    fn fails_over_when_overloaded_or_quiesced() {
        let mut dests = list(&[2, 5, 5, 3]);
        dests[1].overload = true;
        assert_eq!(pick(&mut FailOver, &dests, &input()), Some(3));
        dests[2].weight = 0;
        assert_eq!(pick(&mut FailOver, &dests, &input()), Some(4));
        dests[3].overload = true;
        assert_eq!(pick(&mut FailOver, &dests, &input()), Some(1));
        dests[0].weight = 0;
        assert_eq!(pick(&mut FailOver, &dests, &input()), None);
    }
}
