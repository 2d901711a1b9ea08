//! Small shared vocabulary: protocols, address families, forwarding methods.

use core::fmt;
use core::net::IpAddr;

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// From an IP protocol number.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Upper-case name as ipvsadm prints it (`TCP`, `UDP`, `SCTP`).
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Af {
    /// IPv4.
    Inet,
    /// IPv6.
    Inet6,
}

impl Af {
    /// The family of an address.
    pub const fn of(addr: &IpAddr) -> Af {
        match addr {
            IpAddr::V4(_) => Af::Inet,
            IpAddr::V6(_) => Af::Inet6,
        }
    }
}

/// Tunnel encapsulation of a tunnelling (`-i`) real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunType {
    /// IP-in-IP (default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation.
    Gue,
    /// GRE.
    Gre,
}

impl TunType {
    /// Name as ipvsadm prints and parses it.
    pub const fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }
}

/// Tunnel settings of a real server (`--tun-type`, `--tun-port`, checksum flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    /// Encapsulation.
    pub kind: TunType,
    /// UDP port for GUE (0 otherwise).
    pub port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*` bits: 1 = csum, 2 = remcsum.
    pub flags: u16,
}

/// How packets reach a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FwdMethod {
    /// NAT (`-m`): rewrite destination, rewrite replies.
    Masq,
    /// Direct routing (`-g`): rewrite the destination MAC only. The default.
    #[default]
    Route,
    /// IP-in-IP tunnelling (`-i`).
    Tunnel,
}

impl FwdMethod {
    /// The name ipvsadm prints in `-L` (`Masq`, `Route`, `Tunnel`).
    pub const fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Route => "Route",
            FwdMethod::Tunnel => "Tunnel",
        }
    }

    /// The `IP_VS_CONN_F_*` forwarding bits (MASQ 0, TUNNEL 2, DROUTE 3).
    pub const fn conn_flag(self) -> u32 {
        match self {
            FwdMethod::Masq => 0,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
        }
    }
}
