//! Test-only views of the table: the keyed hash of a tuple and the
//! consistency check of the arena, the indices and the timer wheel.

use super::*;

impl ConnTable {
    /// Keyed in-hash of a tuple (tests).
    pub(crate) fn debug_hash_in(
        &self,
        proto: u8,
        caddr: IpAddr,
        cport: u16,
        vaddr: IpAddr,
        vport: u16,
    ) -> u64 {
        self.hasher
            .hash_in(proto, false, &caddr, cport, &vaddr, vport)
    }

    /// Internal consistency check (tests).
    pub(crate) fn check_invariants(&self) {
        let live = self.slots.iter().flatten().count();
        assert_eq!(live, self.len);
        assert_eq!(self.idx_in.len(), self.len);
        assert_eq!(self.free.len() + self.len, self.slots.len());
        let outs = self.idx_in.iter().filter(|&&v| v & OUT_BIT != 0).count();
        assert_eq!(outs, self.idx_out.len());
        for (i, c) in self.slots.iter().enumerate() {
            let Some(c) = c else { continue };
            let i = i as u32;
            let h = self.hasher.hash_in_of(c);
            assert!(self.idx_in.find(h, |&v| v & IDX_MASK == i).is_some());
            let n = self
                .slots
                .iter()
                .flatten()
                .filter(|o| o.control == Some(ConnId::from_index(i)))
                .count();
            assert_eq!(n as u32, c.n_control, "n_control of {i}");
            // Armed in the future, and not later than its due tick.
            let armed = self.armed[i as usize];
            let p = self.wheel.processed() as u32;
            assert!(armed.wrapping_sub(p) >= 1);
            assert!(
                !self.wheel.earlier(self.wheel.tick_for(c.expires), armed),
                "entry {i} armed too late"
            );
        }
        assert!(self.wheel.refs() >= self.len);
    }
}
