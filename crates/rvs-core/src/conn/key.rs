//! Index keys and the randomly keyed hash.
//!
//! Two keys exist per entry:
//! * the **in** key `(proto, template?, caddr, cport, vaddr, vport)` — what a
//!   client packet (or a template lookup, with `cport` 0) carries;
//! * the **out** key `(proto, daddr, dport, caddr, cport)` — what a NAT reply
//!   from the real server carries.
//!
//! Both are hashed with ahash seeded by the 256-bit key handed to
//! [`super::ConnTable::new`]; every field an attacker can choose goes through
//! the keyed mixing, so colliding flows cannot be precomputed.

use core::hash::{BuildHasher, Hasher};
use core::net::IpAddr;

use super::Conn;

/// Domain-separation tags so an in key and an out key with the same fields
/// hash differently.
const TAG_IN: u64 = 0x01;
const TAG_OUT: u64 = 0x02;
const TAG_TEMPLATE: u64 = 0x04;

/// The keyed hasher of a table.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    state: ahash::RandomState,
}

impl core::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the key.
        f.write_str("KeyHasher { .. }")
    }
}

#[inline(always)]
fn family_bit(a: &IpAddr) -> u64 {
    match a {
        IpAddr::V4(_) => 0,
        IpAddr::V6(_) => 1,
    }
}

impl KeyHasher {
    pub(crate) fn new(key: [u64; 4]) -> Self {
        KeyHasher {
            state: ahash::RandomState::with_seeds(key[0], key[1], key[2], key[3]),
        }
    }

    /// Hash of two endpoints plus a header word.
    #[inline(always)]
    fn hash_pair(&self, tag: u64, proto: u8, a: &IpAddr, ap: u16, b: &IpAddr, bp: u16) -> u64 {
        let mut h = self.state.build_hasher();
        let head = tag
            | (u64::from(proto) << 8)
            | (u64::from(ap) << 16)
            | (u64::from(bp) << 32)
            | (family_bit(a) << 48)
            | (family_bit(b) << 49);
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                // Everything in one 128-bit block: one keyed multiply.
                let addrs = (u64::from(a.to_bits()) << 32) | u64::from(b.to_bits());
                h.write_u128((u128::from(head) << 64) | u128::from(addrs));
            }
            _ => {
                h.write_u64(head);
                h.write_u128(addr_bits(a));
                h.write_u128(addr_bits(b));
            }
        }
        h.finish()
    }

    /// Hash of an in key.
    #[inline]
    pub(crate) fn hash_in(
        &self,
        proto: u8,
        template: bool,
        caddr: &IpAddr,
        cport: u16,
        vaddr: &IpAddr,
        vport: u16,
    ) -> u64 {
        let tag = if template {
            TAG_IN | TAG_TEMPLATE
        } else {
            TAG_IN
        };
        self.hash_pair(tag, proto, caddr, cport, vaddr, vport)
    }

    /// Hash of an out key.
    #[inline]
    pub(crate) fn hash_out(
        &self,
        proto: u8,
        daddr: &IpAddr,
        dport: u16,
        caddr: &IpAddr,
        cport: u16,
    ) -> u64 {
        self.hash_pair(TAG_OUT, proto, daddr, dport, caddr, cport)
    }

    /// In-key hash of an entry.
    #[inline]
    pub(crate) fn hash_in_of(&self, c: &Conn) -> u64 {
        self.hash_in(
            c.proto,
            c.is_template(),
            &c.caddr,
            c.cport,
            &c.vaddr,
            c.vport,
        )
    }

    /// Out-key hash of an entry.
    #[inline]
    pub(crate) fn hash_out_of(&self, c: &Conn) -> u64 {
        self.hash_out(c.proto, &c.daddr, c.dport, &c.caddr, c.cport)
    }

    /// In-key hash of a snapshot.
    pub(crate) fn hash_in_snap(&self, k: &KeySnap) -> u64 {
        self.hash_in(k.proto, k.template, &k.caddr, k.cport, &k.vaddr, k.vport)
    }

    /// Out-key hash of a snapshot.
    pub(crate) fn hash_out_snap(&self, k: &KeySnap) -> u64 {
        self.hash_out(k.proto, &k.daddr, k.dport, &k.caddr, k.cport)
    }
}

#[inline(always)]
fn addr_bits(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(a.to_bits()),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// The fields that place an entry in the indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeySnap {
    pub proto: u8,
    pub template: bool,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
}

impl KeySnap {
    #[inline]
    pub(crate) fn of(c: &Conn) -> Self {
        KeySnap {
            proto: c.proto,
            template: c.is_template(),
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
        }
    }

    /// Whether the in key differs from `c`'s.
    #[inline]
    pub(crate) fn in_differs(&self, c: &Conn) -> bool {
        self.cport != c.cport
            || self.vport != c.vport
            || self.proto != c.proto
            || self.template != c.is_template()
            || self.caddr != c.caddr
            || self.vaddr != c.vaddr
    }

    /// Whether the out key differs from `c`'s.
    #[inline]
    pub(crate) fn out_differs(&self, c: &Conn) -> bool {
        self.cport != c.cport
            || self.dport != c.dport
            || self.proto != c.proto
            || self.caddr != c.caddr
            || self.daddr != c.daddr
    }
}
