//! `wlc` — weighted least connection, the default scheduler (`ip_vs_wlc.c`,
//! reference §4.5).
//!
//! The first dest that is not OVERLOAD and has weight > 0 is the initial
//! choice `L`; every later non-OVERLOAD dest `D` replaces it when
//! `overhead(L) * weight(D) > overhead(D) * weight(L)` (64-bit products,
//! strict, so ties keep the earlier dest), with
//! `overhead = activeconns * 256 + inactconns`.
//!
//! The comparison itself, `wlc_pick` / `wlc_pick_among`, is shared with
//! `sed`/`nq` (another overhead) and `lblc`/`lblcr` (their fallback and the
//! lblcr set minimum).

use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Weighted least-connection scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedLeastConn;

/// The weighted least-loaded of `candidates` (`(index, dest)` pairs in list
/// order) by `overhead`: the kernel's two-stage WLC loop.
///
/// Only OVERLOAD-free dests with weight > 0 are considered. The kernel lets
/// weight-0 dests after the first candidate into the comparison, but with
/// `weight(D) = 0` the left side is 0 and the strict `>` never holds, so
/// leaving them out is the same.
pub(crate) fn wlc_pick_among<'a, I, F>(candidates: I, overhead: F) -> Option<usize>
where
    I: IntoIterator<Item = (usize, &'a Dest)>,
    F: Fn(&Dest) -> u64,
{
    // (index, overhead, weight) of the current least loaded.
    let mut least: Option<(usize, u64, u32)> = None;
    for (i, d) in candidates {
        if !d.is_schedulable() {
            continue;
        }
        let doh = overhead(d);
        let better = match least {
            None => true,
            // u128: overheads are u64 and weights u32, so this never wraps.
            Some((_, loh, lw)) => {
                u128::from(loh) * u128::from(d.weight) > u128::from(doh) * u128::from(lw)
            }
        };
        if better {
            least = Some((i, doh, d.weight));
        }
    }
    least.map(|(i, _, _)| i)
}

/// [`wlc_pick_among`] over a whole dest list.
pub(crate) fn wlc_pick<F: Fn(&Dest) -> u64>(dests: &[Dest], overhead: F) -> Option<usize> {
    wlc_pick_among(dests.iter().enumerate(), overhead)
}

impl Scheduler for WeightedLeastConn {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        wlc_pick(dests, Dest::overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;

    fn one(dests: &[Dest]) -> Option<u32> {
        pick(&mut WeightedLeastConn, dests, &input())
    }

    #[test]
    fn weighted_overhead_decides() {
        let mut dests = list(&[1, 2, 3]);
        // overheads 256, 356, 512: 256*2 > 356*1 -> B; 356*3 > 512*2 -> C.
        conns(&mut dests, &[(1, 0), (1, 100), (2, 0)]);
        assert_eq!(one(&dests), Some(3));
        // 356*3 = 1068 vs 540*2 = 1080: B stays.
        conns(&mut dests, &[(1, 0), (1, 100), (2, 28)]);
        assert_eq!(one(&dests), Some(2));
    }

    #[test]
    fn ties_keep_the_first() {
        let mut dests = list(&[1, 2]);
        conns(&mut dests, &[(1, 0), (2, 0)]); // 256/1 == 512/2
        assert_eq!(one(&dests), Some(1));
        let dests = list(&[4, 4, 4]);
        assert_eq!(one(&dests), Some(1));
    }

    #[test]
    fn quiesced_never_wins() {
        let mut dests = list(&[1, 0]);
        conns(&mut dests, &[(50, 0), (0, 0)]);
        assert_eq!(one(&dests), Some(1));
        let dests = list(&[0, 0, 1]);
        assert_eq!(one(&dests), Some(3));
        assert_eq!(one(&list(&[0, 0])), None);
    }

    #[test]
    fn overloaded_skipped_even_when_idle() {
        let mut dests = list(&[5, 1]);
        conns(&mut dests, &[(0, 0), (9, 9)]);
        dests[0].overload = true;
        assert_eq!(one(&dests), Some(2));
        dests[1].overload = true;
        assert_eq!(one(&dests), None);
    }

    #[test]
    fn sequence_follows_weights() {
        let mut dests = list(&[1, 2]);
        assert_eq!(
            simulate(&mut WeightedLeastConn, &mut dests, 9),
            [1, 2, 2, 1, 2, 2, 1, 2, 2]
        );
    }

    #[test]
    fn inactive_connections_count_one_256th() {
        let mut dests = list(&[1, 1]);
        conns(&mut dests, &[(0, 256), (1, 0)]); // equal: first
        assert_eq!(one(&dests), Some(1));
        conns(&mut dests, &[(0, 257), (1, 0)]);
        assert_eq!(one(&dests), Some(2));
    }
}
