//! [`ConnMut`]: the guard [`ConnTable::get_mut`] returns, which re-arms the
//! entry's timer when its expiry moved earlier and (debug builds) checks
//! that no key field changed through it.

use super::*;

/// Mutable access to one entry; see [`ConnTable::get_mut`]. Derefs to [`Conn`].
pub struct ConnMut<'a> {
    pub(super) conn: &'a mut Conn,
    pub(super) armed: &'a mut u32,
    pub(super) wheel: &'a mut Wheel,
    pub(super) idx: u32,
    pub(super) old_expires: Instant,
    #[cfg(debug_assertions)]
    pub(super) check: (KeySnap, Option<ConnId>, u32),
}

impl ConnMut<'_> {
    /// The entry's handle.
    pub fn id(&self) -> ConnId {
        ConnId::from_index(self.idx)
    }
}

impl Deref for ConnMut<'_> {
    type Target = Conn;
    #[inline(always)]
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl DerefMut for ConnMut<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
    }
}

impl Drop for ConnMut<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.conn.expires < self.old_expires {
            let tick = self.wheel.tick_for(self.conn.expires);
            if self.wheel.earlier(tick, *self.armed) {
                *self.armed = tick as u32;
                self.wheel.push(tick, self.idx);
            }
        }
        #[cfg(debug_assertions)]
        if !std::thread::panicking() {
            let c = &*self.conn;
            assert!(
                self.check == (KeySnap::of(c), c.control, c.n_control),
                "ConnTable::get_mut: key fields, control and n_control must not be \
                 changed through the guard; use ConnTable::rekey / set_control"
            );
        }
    }
}

impl fmt::Debug for ConnMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnMut").field(&*self.conn).finish()
    }
}
