// SPDX-License-Identifier: GPL-2.0-or-later
//! The BFD Control packet (RFC 5880 §4.1): parse and emit, nothing else.
//!
//! Invariants: [`Control::parse`] returns a packet only when every rule of
//! RFC 5880 §6.8.6 that can be judged from the bytes alone holds (version
//! 1, a Length field of at least 24 (26 with the A bit) and no larger than
//! the datagram, a non-zero Detect Mult and My Discriminator, no M bit, a
//! zero Your Discriminator only in Down or AdminDown); and, as keepalived's
//! `bfd_check_packet`, not both P and F, and a known diagnostic (0..=8).
//! An authentication section (A bit) is walked so that a truncated one is
//! told apart, then refused: authentication is not configured, and RFC 5880
//! says a packet with the A bit on a session without it is discarded (so
//! does keepalived, which has no authentication at all). Bytes past the
//! Length field are ignored, as the RFC allows. [`Control::emit`] writes
//! the 24 bytes keepalived sends (no authentication, no echo).

/// The length of a Control packet without authentication.
pub const LEN: usize = 24;

/// A session state (RFC 5880 §4.1 `Sta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// 0.
    AdminDown,
    /// 1.
    Down,
    /// 2.
    Init,
    /// 3.
    Up,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// keepalived's names (`BFD_STATE_STR`).
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

/// Diagnostic codes (RFC 5880 §4.1).
pub mod diag {
    /// No Diagnostic.
    pub const NONE: u8 = 0;
    /// Control Detection Time Expired.
    pub const EXPIRED: u8 = 1;
    /// Neighbor Signaled Session Down.
    pub const NEIGHBOR_DOWN: u8 = 3;
    /// Administratively Down.
    pub const ADMIN_DOWN: u8 = 7;
    /// The largest defined code (Reverse Concatenated Path Down).
    pub const MAX: u8 = 8;

    /// keepalived's names (`BFD_DIAG_STR`).
    pub fn name(d: u8) -> &'static str {
        match d {
            0 => "No Diagnostic",
            1 => "Control Detection Time Expired",
            2 => "Echo Function Failed",
            3 => "Neighbor Signaled Session Down",
            4 => "Forwarding Plane Reset",
            5 => "Path Down",
            6 => "Concatenated Path Down",
            7 => "Administratively Down",
            8 => "Reverse Concatenated Path Down",
            _ => "Unknown",
        }
    }
}

/// A valid Control packet, its fields in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// Diagnostic (0..=8).
    pub diag: u8,
    /// The sender's state.
    pub state: State,
    /// Poll.
    pub poll: bool,
    /// Final.
    pub fin: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    /// Demand.
    pub demand: bool,
    /// Detect Mult (non-zero).
    pub mult: u8,
    /// My Discriminator (non-zero).
    pub my_discr: u32,
    /// Your Discriminator.
    pub your_discr: u32,
    /// Desired Min TX Interval, microseconds.
    pub min_tx: u32,
    /// Required Min RX Interval, microseconds.
    pub min_rx: u32,
    /// Required Min Echo RX Interval, microseconds.
    pub min_echo_rx: u32,
}

#[cfg(test)]
impl Control {
    /// What a peer sends first: Down, from discriminator `my` to `your`,
    /// detect mult 3, `min_tx`/`min_rx` in µs, no flag, no echo.
    pub(crate) fn down(my: u32, your: u32, min_tx: u32, min_rx: u32) -> Control {
        Control {
            diag: 0,
            state: State::Down,
            poll: false,
            fin: false,
            cpi: false,
            demand: false,
            mult: 3,
            my_discr: my,
            your_discr: your,
            min_tx,
            min_rx,
            min_echo_rx: 0,
        }
    }
}

/// Why a datagram is not a usable Control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than 24 bytes, or than its Length field says.
    Short,
    /// The Length field is below 24 (26 with authentication).
    BadLength,
    /// Not version 1.
    Version(u8),
    /// Detect Mult is zero.
    ZeroMult,
    /// The Multipoint bit is set.
    Multipoint,
    /// My Discriminator is zero.
    ZeroMyDiscr,
    /// Your Discriminator is zero in a state other than Down or AdminDown.
    ZeroYourDiscr,
    /// Both Poll and Final.
    PollFinal,
    /// A diagnostic above 8.
    Diag(u8),
    /// The authentication section does not fit in the packet.
    BadAuth,
    /// Authentication present (its type): not supported, discarded.
    Auth(u8),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Short => write!(f, "packet is too small"),
            Error::BadLength => write!(f, "packet length field is too small"),
            Error::Version(v) => write!(f, "packet is of unsupported version: {v}"),
            Error::ZeroMult => write!(f, "packet 'detection multiplier' field is zero"),
            Error::Multipoint => write!(f, "packet has 'multipoint' flag"),
            Error::ZeroMyDiscr => write!(f, "packet 'my discriminator' field is zero"),
            Error::ZeroYourDiscr => write!(
                f,
                "packet 'your discriminator' field is zero and 'state' field is not Down or AdminDown"
            ),
            Error::PollFinal => write!(f, "packet has both poll and final flags set"),
            Error::Diag(d) => write!(f, "packet has invalid 'diag' field: {d}"),
            Error::BadAuth => write!(f, "packet's authentication section is truncated"),
            Error::Auth(t) => write!(
                f,
                "auth bit is set (type {t}), but no authentication is in use"
            ),
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Control {
    /// A datagram's payload as a Control packet, if valid.
    pub fn parse(b: &[u8]) -> Result<Control, Error> {
        if b.len() < LEN {
            return Err(Error::Short);
        }
        let version = b[0] >> 5;
        if version != 1 {
            return Err(Error::Version(version));
        }
        let flags = b[1];
        let auth = flags & 0x04 != 0;
        let len = usize::from(b[3]);
        if len < LEN || (auth && len < LEN + 2) {
            return Err(Error::BadLength);
        }
        if len > b.len() {
            return Err(Error::Short);
        }
        let c = Control {
            diag: b[0] & 0x1f,
            state: State::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            fin: flags & 0x10 != 0,
            cpi: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            mult: b[2],
            my_discr: be32(b, 4),
            your_discr: be32(b, 8),
            min_tx: be32(b, 12),
            min_rx: be32(b, 16),
            min_echo_rx: be32(b, 20),
        };
        if c.mult == 0 {
            return Err(Error::ZeroMult);
        }
        if flags & 0x01 != 0 {
            return Err(Error::Multipoint);
        }
        if c.my_discr == 0 {
            return Err(Error::ZeroMyDiscr);
        }
        if c.your_discr == 0 && !matches!(c.state, State::Down | State::AdminDown) {
            return Err(Error::ZeroYourDiscr);
        }
        if c.poll && c.fin {
            return Err(Error::PollFinal);
        }
        if c.diag > diag::MAX {
            return Err(Error::Diag(c.diag));
        }
        if auth {
            // Auth Type, Auth Len (which counts the whole section).
            let (kind, alen) = (b[LEN], usize::from(b[LEN + 1]));
            if alen < 2 || LEN + alen > len {
                return Err(Error::BadAuth);
            }
            return Err(Error::Auth(kind));
        }
        Ok(c)
    }

    /// The 24 bytes of this packet (no authentication).
    pub fn emit(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = 1 << 5 | (self.diag & 0x1f);
        b[1] = self.state.bits() << 6
            | u8::from(self.poll) << 5
            | u8::from(self.fin) << 4
            | u8::from(self.cpi) << 3
            | u8::from(self.demand) << 1;
        b[2] = self.mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        b[12..16].copy_from_slice(&self.min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.min_echo_rx.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Control {
        Control {
            diag: 0,
            state: State::Up,
            poll: false,
            fin: false,
            cpi: false,
            demand: false,
            mult: 3,
            my_discr: 0x0102_0304,
            your_discr: 7,
            min_tx: 300_000,
            min_rx: 100_000,
            min_echo_rx: 0,
        }
    }

    #[test]
    fn emit_parse_round_trip() {
        let mut c = up();
        for s in [State::AdminDown, State::Down, State::Init, State::Up] {
            for (poll, fin) in [(false, false), (true, false), (false, true)] {
                c.state = s;
                (c.poll, c.fin) = (poll, fin);
                c.demand = poll;
                c.diag = 3;
                assert_eq!(Control::parse(&c.emit()), Ok(c));
            }
        }
    }

    #[test]
    fn known_bytes() {
        // As BIRD sends its first packet: Down, diag 0, mult 5, len 24.
        let b = [
            0x20, 0x40, 5, 24, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40, 0, 0, 0x27, 0x10, 0, 0,
            0, 0,
        ];
        let c = Control::parse(&b).unwrap();
        assert_eq!(c.state, State::Down);
        assert_eq!((c.mult, c.my_discr, c.your_discr), (5, 9, 0));
        assert_eq!((c.min_tx, c.min_rx), (1_000_000, 10_000));
        assert_eq!(c.emit(), b);
    }

    #[test]
    fn every_validity_rule() {
        let good = up().emit();
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.to_vec();
            f(&mut b);
            Control::parse(&b)
        };
        assert_eq!(bad(&|b| b.truncate(23)), Err(Error::Short));
        assert_eq!(bad(&|b| b[0] = 2 << 5), Err(Error::Version(2)));
        assert_eq!(bad(&|b| b[3] = 23), Err(Error::BadLength));
        assert_eq!(bad(&|b| b[3] = 25), Err(Error::Short));
        assert_eq!(bad(&|b| b[2] = 0), Err(Error::ZeroMult));
        assert_eq!(bad(&|b| b[1] |= 1), Err(Error::Multipoint));
        assert_eq!(bad(&|b| b[4..8].fill(0)), Err(Error::ZeroMyDiscr));
        assert_eq!(bad(&|b| b[8..12].fill(0)), Err(Error::ZeroYourDiscr));
        assert_eq!(bad(&|b| b[1] |= 0x30), Err(Error::PollFinal));
        assert_eq!(bad(&|b| b[0] |= 9), Err(Error::Diag(9)));
        // Your Discriminator zero is fine in Down and AdminDown.
        for st in [0x40, 0x00] {
            let c = bad(&|b| {
                b[8..12].fill(0);
                b[1] = st;
            });
            assert!(c.is_ok(), "{c:?}");
        }
        // Trailing bytes past the Length field are ignored.
        assert_eq!(bad(&|b| b.extend([1, 2, 3])), Ok(up()));
        // Authentication: refused when well formed, told apart when not.
        let auth = |alen: u8, len: u8, extra: usize| {
            bad(&|b| {
                b[1] |= 0x04;
                b[3] = len;
                b.extend([1, alen]);
                b.extend(std::iter::repeat_n(0, extra));
            })
        };
        assert_eq!(auth(5, 29, 3), Err(Error::Auth(1)));
        assert_eq!(auth(5, 26, 3), Err(Error::BadAuth));
        assert_eq!(auth(1, 26, 0), Err(Error::BadAuth));
        assert_eq!(auth(2, 25, 0), Err(Error::BadLength));
        assert_eq!(auth(30, 54, 0), Err(Error::Short));
    }
}
