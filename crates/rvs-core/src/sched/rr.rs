//! `rr` — round robin (`ip_vs_rr.c`, reference §4.2).
//!
//! The kernel keeps a pointer to the list node of the last chosen dest,
//! initially the list head. A pick walks forward from the node after it,
//! wrapping once, and takes the first dest with weight > 0 that is not
//! OVERLOAD (the saved dest itself is the last candidate). When the saved dest
//! is deleted the pointer moves to the entry before it (or the head). Adding a
//! dest does not touch the pointer.
//!
//! Here the pointer is the saved dest's key (address and port) plus the
//! index where it was last seen, so that a pick stays O(1) + the walk; it
//! lives in a [`SharedPos`](super::shared::SharedPos) that engine replicas of one service share
//! (`rvsd --engines per-worker`), so that their picks make one round robin,
//! as the kernel's CPUs do under the service's lock (see `shared.rs`).

use super::shared::{Pos, PosCell, Shared, key_of, resolve_key};
use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;

/// Round-robin scheduler. A clone starts at the same position but moves
/// apart; replicas share one through [`Scheduler::share`].
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Last chosen dest and where it was; `None` = the list head.
    pos: PosCell,
}

impl Clone for RoundRobin {
    fn clone(&self) -> Self {
        RoundRobin {
            pos: self.pos.copy(),
        }
    }
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) -> Result<(), SchedError> {
        match change {
            DestChange::Init => self.pos.update(|_| Pos::HEAD),
            DestChange::Removed { key, index, .. } => self.pos.update(|p| match p.last {
                // The saved dest left: the previous entry of the old list
                // is at index-1 in the new one too; index 0 had the head
                // before it. (Another replica that applies the same change
                // next finds the position moved: idempotent.)
                Some((last, _)) if last == key => Pos {
                    last: index
                        .checked_sub(1)
                        .and_then(|i| dests.get(i).map(|d| (key_of(d), i as u32))),
                    cw: 0,
                },
                _ => p,
            }),
            DestChange::Added(_) | DestChange::Edited(_) => {}
        }
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        loop {
            let seen = self.pos.load();
            // From the head: one pass over the list. From dest `s`: the
            // dests after it, then from the start up to and including `s`.
            let resume = match seen.last {
                Some((key, hint)) => resolve_key(dests, key, hint).map_or(0, |s| s + 1),
                None => 0,
            };
            let found = (resume..dests.len())
                .chain(0..resume)
                .find(|&i| dests[i].is_schedulable())?;
            let next = Pos {
                last: Some((key_of(&dests[found]), found as u32)),
                cw: 0,
            };
            if self.pos.advance(seen, next) {
                return Some(found);
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

    fn rr_with(ids_added_in_order: &[u32]) -> (RoundRobin, Vec<Dest>) {
        let mut s = RoundRobin::default();
        let mut dests = Vec::new();
        init(&mut s, &dests);
        for &n in ids_added_in_order {
            add(&mut s, &mut dests, dest(n, 1));
        }
        (s, dests)
    }

    #[test]
    fn newest_first_order() {
        // Adding A, B, C gives the list C, B, A: picks are C, B, A, C, …
        let (mut s, dests) = rr_with(&[1, 2, 3]);
        assert_eq!(picks(&mut s, &dests, 7), [3, 2, 1, 3, 2, 1, 3]);
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let (mut s, mut dests) = rr_with(&[1, 2, 3, 4]);
        // list 4, 3, 2, 1
        dests[1].weight = 0; // 3
        dests[3].overload = true; // 1
        assert_eq!(picks(&mut s, &dests, 5), [4, 2, 4, 2, 4]);
    }

    #[test]
    fn only_the_saved_dest_left_is_picked_again() {
        let (mut s, mut dests) = rr_with(&[1, 2, 3]);
        assert_eq!(picks(&mut s, &dests, 2), [3, 2]);
        dests[0].weight = 0;
        dests[2].overload = true;
        assert_eq!(picks(&mut s, &dests, 3), [2, 2, 2]);
    }

    #[test]
    fn nothing_usable_fails_without_moving() {
        let (mut s, mut dests) = rr_with(&[1, 2, 3]);
        assert_eq!(picks(&mut s, &dests, 1), [3]);
        for d in &mut dests {
            d.weight = 0;
        }
        assert_eq!(picks(&mut s, &dests, 2), [0, 0]);
        for d in &mut dests {
            d.weight = 1;
        }
        assert_eq!(picks(&mut s, &dests, 3), [2, 1, 3]);
    }

    #[test]
    fn removing_the_saved_dest_moves_to_the_previous_entry() {
        let (mut s, mut dests) = rr_with(&[1, 2, 3, 4]);
        // list 4, 3, 2, 1
        assert_eq!(picks(&mut s, &dests, 3), [4, 3, 2]);
        remove(&mut s, &mut dests, DestId(2)); // saved -> 3
        assert_eq!(picks(&mut s, &dests, 4), [1, 4, 3, 1]);
    }

    #[test]
    fn removing_the_saved_head_entry_goes_back_to_the_head() {
        let (mut s, mut dests) = rr_with(&[1, 2, 3]);
        assert_eq!(picks(&mut s, &dests, 1), [3]);
        remove(&mut s, &mut dests, DestId(3)); // saved -> head
        assert_eq!(picks(&mut s, &dests, 3), [2, 1, 2]);
    }

    #[test]
    fn removing_another_dest_keeps_the_position() {
        let (mut s, mut dests) = rr_with(&[1, 2, 3, 4]);
        assert_eq!(picks(&mut s, &dests, 2), [4, 3]);
        remove(&mut s, &mut dests, DestId(4));
        assert_eq!(picks(&mut s, &dests, 3), [2, 1, 3]);
    }

    #[test]
    fn adding_keeps_the_position_and_new_dest_comes_first_in_the_cycle() {
        let (mut s, mut dests) = rr_with(&[1, 2, 3]);
        assert_eq!(picks(&mut s, &dests, 2), [3, 2]);
        add(&mut s, &mut dests, dest(4, 1)); // list 4, 3, 2, 1
        assert_eq!(picks(&mut s, &dests, 5), [1, 4, 3, 2, 1]);
    }

    #[test]
    fn init_resets_to_the_head() {
        let (mut s, dests) = rr_with(&[1, 2, 3]);
        assert_eq!(picks(&mut s, &dests, 2), [3, 2]);
        init(&mut s, &dests);
        assert_eq!(picks(&mut s, &dests, 1), [3]);
    }

    #[test]
    fn a_clone_starts_where_it_was_and_moves_apart() {
        let (mut s, dests) = rr_with(&[1, 2, 3]);
        assert_eq!(picks(&mut s, &dests, 1), [3]);
        let mut c = s.clone();
        assert_eq!(picks(&mut c, &dests, 2), [2, 1]);
        assert_eq!(picks(&mut s, &dests, 1), [2], "the original did not move");
    }
}
