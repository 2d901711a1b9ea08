//! `ovf` — weighted overflow (`ip_vs_ovf.c`, reference §4.9).
//!
//! Dests that are OVERLOAD, have weight 0, or have more active connections
//! than their weight are skipped; among the rest the highest weight wins (the
//! first of equals). Connections go to the heaviest server until it holds more
//! than `weight` active ones, then overflow to the next.

use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Weighted overflow scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overflow;

impl Scheduler for Overflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            let w = d.weight;
            if d.overloaded() || d.active() > w || w == 0 {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;

    #[test]
    fn heaviest_not_overflowing() {
        let mut dests = list(&[2, 5, 5, 3]);
        conns(&mut dests, &[(3, 0), (6, 0), (5, 100), (0, 0)]);
        // 5 active on weight 5 is not "more than the weight".
        assert_eq!(pick(&mut Overflow, &dests, &input()), Some(3));
        dests[2].activeconns = 6;
        assert_eq!(pick(&mut Overflow, &dests, &input()), Some(4));
    }

    #[test]
    fn overflow_sequence() {
        // B (weight 2) takes connections while it has at most 2 active (three
        // in all), then A (weight 1) while it has at most 1 (two), then
        // nothing is left.
        let mut dests = list(&[1, 2]);
        assert_eq!(simulate(&mut Overflow, &mut dests, 6), [2, 2, 2, 1, 1, 0]);
    }

    #[test]
    fn overloaded_and_quiesced_skipped() {
        let mut dests = list(&[0, 4, 1]);
        dests[1].overload = true;
        assert_eq!(pick(&mut Overflow, &dests, &input()), Some(3));
        dests[2].overload = true;
        assert_eq!(pick(&mut Overflow, &dests, &input()), None);
    }
}
