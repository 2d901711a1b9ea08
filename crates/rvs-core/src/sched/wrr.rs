//! `wrr` — weighted round robin (`ip_vs_wrr.c`, reference §4.3).
//!
//! State: `cl` (current dest, or the list head), `cw` (current weight), `mw`
//! (maximum weight − (`di` − 1)) and `di` (gcd of the weights > 0, 1 if none).
//! A pick scans the dests after `cl` for the first one that is not OVERLOAD and
//! has `weight >= cw`. Each time the scan runs off the end of the list `cw`
//! drops by `di`; when it reaches 0 it wraps to `mw`. Passes are therefore
//! `cw = mw, mw − di, …, 1`, and a dest of weight `w` is chosen `w / di` times
//! per cycle. The kernel gives up ("all destinations are overloaded") once every
//! dest has been checked in a `cw ≤ di` pass: it then leaves `cl` where the scan
//! stopped.
//!
//! On any add/delete/edit: `cl` = head, `di` and `mw` are recomputed, and `cw`
//! is reset to `mw` when it exceeds it (or is 0), else — with `di` > 1 —
//! realigned to `(cw / di) * di + 1`.

//!
//! `cl` and `cw` live in a [`SharedPos`](super::shared::SharedPos) that
//! engine replicas of one service share (`rvsd --engines per-worker`): a
//! pick moves them with a compare-and-swap, so the service's picks follow
//! one cycle whichever workers make them, as under the kernel's lock.
//! `mw` and `di` follow from the list, the same in every replica.

use super::shared::{Pos, PosCell, Shared, key_of, resolve_key};
use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Weighted round-robin scheduler. A clone starts at the same position but
/// moves apart; replicas share one through [`Scheduler::share`].
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Current dest and where it was (`None` = the list head) and the
    /// current weight.
    pos: PosCell,
    /// Maximum weight, reduced by `di - 1`.
    mw: i64,
    /// Decreasing interval: gcd of the positive weights.
    di: i64,
}

impl Clone for WeightedRoundRobin {
    fn clone(&self) -> Self {
        WeightedRoundRobin {
            pos: self.pos.copy(),
            ..*self
        }
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl WeightedRoundRobin {
    /// `di` and `mw` for the current weights.
    fn recompute(&mut self, dests: &[Dest]) {
        let g = dests
            .iter()
            .map(|d| i64::from(d.weight))
            .filter(|&w| w > 0)
            .fold(0, gcd);
        self.di = if g == 0 { 1 } else { g };
        let max = dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
        self.mw = max - (self.di - 1);
    }

    /// One pick from position `seen`: the index chosen (if any) and the
    /// position after it.
    fn pick(&self, dests: &[Dest], seen: Pos) -> (Option<usize>, Pos) {
        let mut cw = seen.cw;
        let at = |i: usize, cw: i64| Pos {
            last: Some((key_of(&dests[i]), i as u32)),
            cw,
        };
        // Where the scan starts: after `cl`; `None` is the head.
        let last = seen
            .last
            .and_then(|(key, hint)| resolve_key(dests, key, hint));
        let mut from = last.map_or(0, |i| i + 1);
        let mut stop = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            for (i, d) in dests.iter().enumerate().skip(from) {
                if !d.overloaded() && i64::from(d.weight) >= cw {
                    return (Some(i), at(i, cw));
                }
                if stop == Some(i) {
                    // Every dest was checked for weight >= 1: give up here.
                    return (None, at(i, cw));
                }
            }
            // Ran off the end: next pass, from the head.
            from = 0;
            cw -= self.di;
            if cw <= 0 {
                cw = self.mw;
                if last_pass || last.is_none() {
                    return (None, Pos { last: None, cw });
                }
                restarted = true;
            }
            last_pass = cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first scan covered only the dests after `last` at
                // weight >= 1; this one finishes with those up to it.
                stop = last;
            }
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) -> Result<(), SchedError> {
        self.recompute(dests);
        let (mw, di) = (self.mw, self.di);
        // `cl` back to the head; `cw` reset or realigned. Applied twice
        // (by a second replica), the same word.
        self.pos.update(|p| Pos {
            last: None,
            cw: if change == DestChange::Init || p.cw > mw || p.cw == 0 {
                mw
            } else if di > 1 {
                (p.cw / di) * di + 1
            } else {
                p.cw
            },
        });
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        if self.mw <= 0 {
            return None;
        }
        loop {
            let seen = self.pos.load();
            let (found, next) = self.pick(dests, seen);
            if self.pos.advance(seen, next) {
                return found;
            }
        }
    }

    fn shared(&self) -> Option<Shared> {
        Some(Shared::Pos(self.pos.clone()))
    }

    fn share(&mut self, with: Shared) {
        if let Shared::Pos(p) = with {
            self.pos = p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;
    use crate::dest::DestId;
    use proptest::prelude::*;

    fn wrr(weights: &[u32]) -> (WeightedRoundRobin, Vec<Dest>) {
        let mut s = WeightedRoundRobin::default();
        let dests = list(weights);
        init(&mut s, &dests);
        (s, dests)
    }

    #[test]
    fn weights_3_2_1() {
        // Reference §4.3: A=3, B=2, C=1 (list order A, B, C) gives A A B A B C.
        let (mut s, dests) = wrr(&[3, 2, 1]);
        assert_eq!(
            picks(&mut s, &dests, 12),
            [1, 1, 2, 1, 2, 3, 1, 1, 2, 1, 2, 3]
        );
    }

    #[test]
    fn gcd_steps() {
        // di = 2, mw = 3: passes cw = 3 (A), cw = 1 (A, B).
        let (mut s, dests) = wrr(&[4, 2]);
        assert_eq!(picks(&mut s, &dests, 6), [1, 1, 2, 1, 1, 2]);
    }

    #[test]
    fn equal_weights_are_round_robin() {
        let (mut s, dests) = wrr(&[5, 5, 5]);
        assert_eq!(picks(&mut s, &dests, 6), [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn quiesced_never_chosen() {
        let (mut s, dests) = wrr(&[0, 2, 0, 1]);
        assert_eq!(picks(&mut s, &dests, 6), [2, 2, 4, 2, 2, 4]);
    }

    #[test]
    fn all_quiesced_fails() {
        let (mut s, dests) = wrr(&[0, 0]);
        assert_eq!(picks(&mut s, &dests, 2), [0, 0]);
        let (mut s, dests) = wrr(&[]);
        assert_eq!(picks(&mut s, &dests, 1), [0]);
    }

    #[test]
    fn overloaded_skipped_and_all_overloaded_fails() {
        let (mut s, mut dests) = wrr(&[3, 2, 1]);
        dests[0].overload = true;
        // Passes cw=3: none; cw=2: B; cw=1: B, C.
        assert_eq!(picks(&mut s, &dests, 6), [2, 2, 3, 2, 2, 3]);
        for d in &mut dests {
            d.overload = true;
        }
        assert_eq!(picks(&mut s, &dests, 3), [0, 0, 0]);
        for d in &mut dests {
            d.overload = false;
        }
        // Still usable afterwards; every dest keeps its share per cycle.
        let got = picks(&mut s, &dests, 12);
        for (id, want) in [(1, 6), (2, 4), (3, 2)] {
            assert_eq!(got.iter().filter(|&&x| x == id).count(), want);
        }
    }

    #[test]
    fn failure_in_the_middle_of_a_cycle_checks_every_dest_once() {
        // A=2, B=1: after A (cw=2), make A overloaded: the next picks are B
        // only (cw=1 then restart at cw=2 and down to 1 again).
        let (mut s, mut dests) = wrr(&[2, 1]);
        assert_eq!(picks(&mut s, &dests, 1), [1]);
        dests[0].overload = true;
        assert_eq!(picks(&mut s, &dests, 3), [2, 2, 2]);
        dests[1].overload = true;
        assert_eq!(picks(&mut s, &dests, 2), [0, 0]);
    }

    #[test]
    fn edit_recomputes_and_restarts_from_the_head() {
        let (mut s, mut dests) = wrr(&[3, 2, 1]);
        assert_eq!(picks(&mut s, &dests, 3), [1, 1, 2]); // now cw = 2, cl = B
        edit_weight(&mut s, &mut dests, DestId(3), 4);
        // di = 1, mw = 4, cw stays 2, cl = head:
        // cw=2: A B C; cw=1: A B C; cw=4: C; cw=3: A C; cw=2: A B C; …
        assert_eq!(
            picks(&mut s, &dests, 15),
            [1, 2, 3, 1, 2, 3, 3, 1, 3, 1, 2, 3, 1, 2, 3]
        );
    }

    #[test]
    fn edit_realigns_cw_to_the_new_gcd() {
        let (mut s, mut dests) = wrr(&[4, 2]);
        assert_eq!(picks(&mut s, &dests, 2), [1, 1]); // cw = 1, cl = A
        edit_weight(&mut s, &mut dests, DestId(2), 6);
        // di = 2, mw = 5; cw = (1 / 2) * 2 + 1 = 1, cl = head:
        // cw=1: A B; cw=5: B; cw=3: A B; cw=1: A B.
        assert_eq!(picks(&mut s, &dests, 7), [1, 2, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn edit_below_cw_resets_cw_to_mw() {
        let (mut s, mut dests) = wrr(&[5, 1]);
        assert_eq!(picks(&mut s, &dests, 1), [1]); // cw = 5
        edit_weight(&mut s, &mut dests, DestId(1), 2);
        // mw = 2 < cw: cw = 2: A; cw = 1: A B.
        assert_eq!(picks(&mut s, &dests, 6), [1, 1, 2, 1, 1, 2]);
    }

    #[test]
    fn add_and_remove_restart_from_the_head() {
        let mut s = WeightedRoundRobin::default();
        let mut dests = Vec::new();
        init(&mut s, &dests);
        add(&mut s, &mut dests, dest(1, 1));
        add(&mut s, &mut dests, dest(2, 2)); // list 2, 1
        // cw was 1 after the first add and is kept (1 <= mw = 2): the cycle
        // continues with the cw=1 pass before wrapping to cw=2.
        assert_eq!(picks(&mut s, &dests, 4), [2, 1, 2, 2]); // cw = 1, cl = 2
        remove(&mut s, &mut dests, DestId(2));
        assert_eq!(picks(&mut s, &dests, 2), [1, 1]);
    }

    proptest! {
        #[test]
        fn cycle_counts_equal_weights(weights in prop::collection::vec(0u32..=20, 1..8)) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let (mut s, dests) = wrr(&weights);
            let g = weights.iter().filter(|&&w| w > 0).fold(0, |a, &w| gcd(a, i64::from(w)));
            let total: u32 = weights.iter().sum();
            // One cycle: weight / gcd each; two cycles' worth of plain weights.
            let one = picks(&mut s, &dests, (i64::from(total) / g) as usize);
            let more = picks(&mut s, &dests, total as usize);
            for (i, &w) in weights.iter().enumerate() {
                let id = i as u32 + 1;
                prop_assert_eq!(
                    one.iter().filter(|&&x| x == id).count() as i64,
                    i64::from(w) / g
                );
                prop_assert_eq!(more.iter().filter(|&&x| x == id).count(), w as usize);
            }
            prop_assert!(!one.contains(&0));
        }
    }

    /// Two replicas picking at once from one shared position: every pick
    /// is one step of the one cycle, so the servers get exactly their
    /// weights' shares (a lost race retries; no step is taken twice).
    #[test]
    fn replicas_racing_share_one_cycle() {
        let dests = list(&[3, 2, 1]);
        let mut a = WeightedRoundRobin::default();
        init(&mut a, &dests);
        let mut b = WeightedRoundRobin::default();
        init(&mut b, &dests);
        b.share(a.shared().unwrap());
        let input = input();
        let counts = std::thread::scope(|s| {
            let run = |mut w: WeightedRoundRobin| {
                let dests = &dests;
                s.spawn(move || {
                    let mut n = [0u32; 3];
                    for _ in 0..30_000 {
                        n[w.schedule(dests, &input).unwrap()] += 1;
                    }
                    n
                })
            };
            let (ha, hb) = (run(a), run(b));
            let (x, y) = (ha.join().unwrap(), hb.join().unwrap());
            [x[0] + y[0], x[1] + y[1], x[2] + y[2]]
        });
        assert_eq!(counts, [30_000, 20_000, 10_000]);
    }
}
