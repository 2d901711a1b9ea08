//! The error type shared by every view, the flow parser and the rewrites.

use core::fmt;

/// Why a packet could not be parsed, or a rewrite could not be applied.
///
/// The data path drops (or passes to the kernel) any packet that yields an
/// error; the variants exist so that drops can be counted by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than a header, or than a length declared in a
    /// header (IPv4 total length, IPv6 payload length, UDP length, TCP data
    /// offset, ...).
    Truncated,
    /// A field holds a value that no valid packet can carry: wrong IP
    /// version, IPv4 IHL below 5, TCP data offset below 5, UDP length below 8,
    /// an embedded packet of the wrong family, ...
    Malformed,
    /// The IPv4 header checksum is wrong.
    BadChecksum,
    /// The packet is well formed but this crate does not handle it here:
    /// an ICMP rewrite asked for a packet that is not an ICMP error, an SCTP
    /// port rewrite on a fragment (its CRC32c covers the whole datagram), an
    /// IPv6 extension-header chain longer than the parser follows, ...
    Unsupported,
    /// An address passed to a rewrite is not of the packet's address family,
    /// or the source and destination of an outer header differ in family.
    AddressFamilyMismatch,
    /// There is not enough room in front of the frame to prepend a header.
    NoHeadroom,
    /// The output buffer is too small for the packet to be built.
    BufferTooSmall,
    /// RFC 1122 / RFC 1812 / RFC 4443 forbid sending an ICMP error about this
    /// packet (it is itself an ICMP error, a non-first fragment, or its source
    /// or destination is not a unicast address).
    IcmpNotAllowed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "packet truncated",
            Error::Malformed => "malformed packet",
            Error::BadChecksum => "bad IPv4 header checksum",
            Error::Unsupported => "unsupported packet",
            Error::AddressFamilyMismatch => "address family mismatch",
            Error::NoHeadroom => "not enough headroom before the frame",
            Error::BufferTooSmall => "output buffer too small",
            Error::IcmpNotAllowed => "an ICMP error must not be sent about this packet",
        })
    }
}

impl core::error::Error for Error {}

/// The result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;
