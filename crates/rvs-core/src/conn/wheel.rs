//! A single-level hashed timing wheel with lazy re-arming.
//!
//! Time is cut into ticks of `tick_ms`. Tick `k` is *due* once
//! `now >= k * tick_ms`. An entry that expires at `E` is armed at tick
//! `ceil(E / tick_ms)`, so when that tick is processed `E <= now` holds
//! (never early) and, if the caller polls at least once per tick, the entry
//! goes less than one tick after `E`.
//!
//! The wheel has `W` (a power of two) slots; slot `k mod W` holds the
//! references armed for tick `k`. Arming is clamped to the window
//! `processed+1 ..= processed+W-1`, so a slot only ever holds references for
//! one tick: timeouts longer than the span are armed at the window's end and
//! re-armed when that tick comes (a few visits for a 24 h timeout).
//!
//! A reference is just the entry's slab index (4 bytes). The entry's own
//! armed tick lives in a parallel array owned by the table; a reference is
//! *valid* when the slab slot is occupied and its armed tick maps to this
//! slot and is not in the future. Removal and re-arming therefore never
//! search the wheel: they leave stale references behind, which are dropped
//! when their slot comes round. Duplicate references to one entry in one
//! slot are harmless: handling the first one changes the armed tick (or
//! frees the entry), which invalidates the others.

use crate::time::Instant;

/// Half the `u32` range: armed ticks are compared with wrapping arithmetic.
const HALF: u32 = 1 << 31;

#[derive(Debug, Clone)]
pub(crate) struct Wheel {
    slots: Vec<Vec<u32>>,
    /// `W - 1`.
    mask: u64,
    tick_ms: u64,
    /// Every tick `<= processed` has been handled.
    processed: u64,
    /// `processed` has been initialised from the first time seen.
    started: bool,
}

impl Wheel {
    /// A wheel of `slots` (rounded up to a power of two, at least 4) slots of `tick_ms` (at least 1).
    pub(crate) fn new(tick_ms: u64, slots: usize) -> Self {
        let n = slots.clamp(4, 1 << 24).next_power_of_two();
        Wheel {
            slots: (0..n).map(|_| Vec::new()).collect(),
            mask: (n - 1) as u64,
            tick_ms: tick_ms.max(1),
            processed: 0,
            started: false,
        }
    }

    #[inline]
    pub(crate) fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    #[inline]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn processed(&self) -> u64 {
        self.processed
    }

    /// Initialise the clock from the first instant seen.
    #[inline]
    pub(crate) fn start(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            self.processed = now.as_millis() / self.tick_ms;
        }
    }

    #[inline]
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// The tick an entry expiring at `at` is armed at.
    #[inline]
    pub(crate) fn tick_for(&self, at: Instant) -> u64 {
        let due = at.as_millis().div_ceil(self.tick_ms);
        due.clamp(self.processed + 1, self.processed + self.mask)
    }

    /// Whether an entry armed at tick `new` would fire before one armed at `armed`.
    #[inline]
    pub(crate) fn earlier(&self, new: u64, armed: u32) -> bool {
        let p = self.processed as u32;
        (new as u32).wrapping_sub(p) < armed.wrapping_sub(p)
    }

    /// Add a reference to slab index `idx` at tick `tick` (from [`Self::tick_for`]).
    #[inline]
    pub(crate) fn push(&mut self, tick: u64, idx: u32) {
        self.slots[(tick & self.mask) as usize].push(idx);
    }

    /// Whether a reference found while processing tick `k` is valid for an
    /// entry whose armed tick is `armed`.
    #[inline]
    pub(crate) fn ref_valid(&self, k: u64, armed: u32) -> bool {
        let d = (k as u32).wrapping_sub(armed);
        (u64::from(d) & self.mask) == 0 && d < HALF
    }

    /// The ticks to process for a poll at `now`: `first..=last`. Empty when
    /// nothing is due. After a gap longer than the wheel, every slot is
    /// visited once.
    #[inline]
    pub(crate) fn due_range(&self, now: Instant) -> (u64, u64) {
        let target = now.as_millis() / self.tick_ms;
        if !self.started || target <= self.processed {
            return (1, 0);
        }
        let width = self.mask + 1;
        let first = if target - self.processed > width {
            target + 1 - width
        } else {
            self.processed + 1
        };
        (first, target)
    }

    /// Take the references of tick `k`'s slot and mark `k` processed.
    #[inline]
    pub(crate) fn take(&mut self, k: u64) -> Vec<u32> {
        self.processed = self.processed.max(k);
        core::mem::take(&mut self.slots[(k & self.mask) as usize])
    }

    /// Give back the (drained) buffer of tick `k`'s slot, keeping at most
    /// `keep` elements of capacity so a burst does not pin memory forever.
    #[inline]
    pub(crate) fn give_back(&mut self, k: u64, mut buf: Vec<u32>, keep: usize) {
        buf.clear();
        if buf.capacity() > keep {
            buf.shrink_to(keep);
        }
        let slot = &mut self.slots[(k & self.mask) as usize];
        if slot.is_empty() {
            *slot = buf;
        }
    }

    /// The first tick boundary at or after the next non-empty slot, if any.
    pub(crate) fn next_nonempty(&self) -> Option<Instant> {
        (self.processed + 1..=self.processed + self.mask)
            .find(|&k| !self.slots[(k & self.mask) as usize].is_empty())
            .map(|k| Instant::from_millis(k.saturating_mul(self.tick_ms)))
    }

    /// Total references held (valid and stale).
    #[cfg(test)]
    pub(crate) fn refs(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    /// Heap bytes held by the slots.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Vec<u32>>()
            + self
                .slots
                .iter()
                .map(|s| s.capacity() * core::mem::size_of::<u32>())
                .sum::<usize>()
    }

    /// Drop every reference (keeps the clock).
    pub(crate) fn clear(&mut self) {
        for s in &mut self.slots {
            *s = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_is_ceil_and_clamped() {
        let mut w = Wheel::new(1000, 8);
        w.start(Instant::from_millis(10_500));
        assert_eq!(w.processed(), 10);
        // Already due or due within the current tick: next tick.
        assert_eq!(w.tick_for(Instant::from_millis(0)), 11);
        assert_eq!(w.tick_for(Instant::from_millis(10_999)), 11);
        assert_eq!(w.tick_for(Instant::from_millis(11_000)), 11);
        assert_eq!(w.tick_for(Instant::from_millis(11_001)), 12);
        // Beyond the span: clamped to the window end.
        assert_eq!(w.tick_for(Instant::from_secs(1_000_000)), 17);
    }

    #[test]
    fn due_range_after_long_gap_visits_each_slot_once() {
        let mut w = Wheel::new(1000, 8);
        w.start(Instant::from_secs(0));
        assert_eq!(w.due_range(Instant::from_millis(999)), (1, 0));
        assert_eq!(w.due_range(Instant::from_secs(3)), (1, 3));
        assert_eq!(w.due_range(Instant::from_secs(100)), (93, 100));
    }

    #[test]
    fn validity_rule() {
        let w = Wheel::new(1000, 8);
        assert!(w.ref_valid(5, 5));
        assert!(!w.ref_valid(5, 6));
        assert!(!w.ref_valid(5, 13));
        assert!(w.ref_valid(13, 5)); // seen in a catch-up pass
        assert!(!w.ref_valid(5, 4));
    }
}
