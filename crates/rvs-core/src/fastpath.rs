//! What the XDP fast path may do for a connection, decided from what the
//! engine knows: pure functions, no I/O.
//!
//! The data plane keeps a cache of forwarding decisions in the kernel (an
//! XDP program with a flow map, rvs-io's `flowcache`): packets of an
//! established flow are rewritten and sent there, byte for byte as
//! [`crate::Engine::process`] would, without coming up to user space. This
//! module describes those decisions in the engine's terms:
//!
//! * [`eligibility`]: whether a connection's packets may be forwarded
//!   without the engine seeing them. Only flows whose next packets cannot
//!   change the engine's state qualify: TCP in ESTABLISHED (the fast path
//!   itself sends every SYN, FIN and RST to the engine), UDP once the entry
//!   exists, SCTP in ESTABLISHED; never templates or one-packet (`-o`)
//!   connections, and never NAT of SCTP (its CRC32c covers the whole packet).
//! * [`flow_in`], [`flow_out`]: the keys of the client → server packets and,
//!   for NAT, of the server → client replies, as they arrive.
//! * [`action_in`], [`action_out`]: the rewrite, egress and MACs, from the
//!   connection, its next hop and the egress port, exactly as the engine's
//!   own forwarding picks them.
//!
//! The data plane turns a [`FastAction`] into a map entry (its `PortId`
//! into an interface index) and removes the entries when the connection
//! leaves ESTABLISHED, expires or is flushed, when its real server is
//! deleted (or quiesced with `expire_nodest_conn`), when the next hop or
//! the port changes, and on any configuration change that could alter the
//! decision.

use core::net::IpAddr;

use rvs_wire::EthernetAddress;

use crate::conn::state::{SctpState, TcpState};
use crate::conn::{Conn, ConnId, flags};
use crate::dest::DestId;
use crate::engine::{Hop, PortConfig, PortId};

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

/// TTL of the outer header of tunnelled packets (as the engine's).
pub const TUNNEL_TTL: u8 = 64;

/// A flow as its packets arrive at the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IP protocol: 6, 17 or 132.
    pub proto: u8,
    /// Source address of the packets.
    pub src: IpAddr,
    /// Destination address of the packets.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The rewrite the fast path applies (besides new MACs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FastRewrite {
    /// Direct routing: MACs only.
    Dr,
    /// IP-in-IP to `dst` from `src` (TTL [`TUNNEL_TTL`]); a packet that
    /// would not fit the port's MTU goes to the engine.
    Tun {
        /// The director's address on the egress link.
        src: IpAddr,
        /// The real server.
        dst: IpAddr,
    },
    /// NAT in: destination := (`addr`, `port`).
    NatIn {
        /// Real-server address.
        addr: IpAddr,
        /// Real-server port.
        port: u16,
    },
    /// NAT out: TTL − 1, source := (`addr`, `port`).
    NatOut {
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
}

/// A decision for the fast path: rewrite, egress, MACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastAction {
    /// The rewrite.
    pub rewrite: FastRewrite,
    /// Egress port (the data plane maps it to an interface).
    pub port: PortId,
    /// Source MAC: the egress port's.
    pub src_mac: EthernetAddress,
    /// Destination MAC: the next hop's.
    pub dst_mac: EthernetAddress,
    /// IP MTU of the egress port.
    pub mtu: u16,
    /// The connection, for crediting the fast path's counters.
    pub conn: ConnId,
}

/// Why a connection's packets must keep going through the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotEligible {
    /// A persistence template: it forwards nothing itself.
    Template,
    /// One-packet scheduling (`-o`): every packet is scheduled anew.
    OnePacket,
    /// Not NAT, DR or TUN (local node, bypass).
    Method,
    /// Not a protocol the fast path handles.
    Protocol,
    /// TCP or SCTP not in ESTABLISHED: the engine must see what comes next.
    State,
    /// NAT of SCTP: the CRC32c must be recomputed over the whole packet.
    SctpNat,
}

/// Whether the fast path may forward `c`'s packets.
pub fn eligibility(c: &Conn) -> Result<(), NotEligible> {
    if c.is_template() {
        return Err(NotEligible::Template);
    }
    if c.flags & flags::ONE_PACKET != 0 {
        return Err(NotEligible::OnePacket);
    }
    let fwd = c.fwd();
    if !matches!(fwd, flags::MASQ | flags::TUNNEL | flags::DROUTE) {
        return Err(NotEligible::Method);
    }
    match c.proto {
        TCP if c.state == TcpState::Established as u8 => Ok(()),
        TCP => Err(NotEligible::State),
        // The entry exists: the engine saw (and scheduled) the first packet.
        UDP => Ok(()),
        SCTP if fwd == flags::MASQ => Err(NotEligible::SctpNat),
        SCTP if c.state == SctpState::Established as u8 => Ok(()),
        SCTP => Err(NotEligible::State),
        _ => Err(NotEligible::Protocol),
    }
}

/// The key of `c`'s client → server packets (client → virtual service).
pub fn flow_in(c: &Conn) -> FlowKey {
    FlowKey {
        proto: c.proto,
        src: c.caddr,
        dst: c.vaddr,
        sport: c.cport,
        dport: c.vport,
    }
}

/// The key of `c`'s server → client replies, which only NAT sees
/// (real server → client).
pub fn flow_out(c: &Conn) -> Option<FlowKey> {
    (c.fwd() == flags::MASQ).then_some(FlowKey {
        proto: c.proto,
        src: c.daddr,
        dst: c.caddr,
        sport: c.dport,
        dport: c.cport,
    })
}

/// What the engine does to `c`'s client → server packets, sent through
/// `hop` (the real server's) on `port`. `None` when the method cannot be
/// expressed (TUN with no director address of the real server's family on
/// the port, which the engine drops too) or `c` is not eligible.
pub fn action_in(c: &Conn, id: ConnId, hop: &Hop, port: &PortConfig) -> Option<FastAction> {
    eligibility(c).ok()?;
    let rewrite = match c.fwd() {
        flags::DROUTE => FastRewrite::Dr,
        flags::MASQ => FastRewrite::NatIn {
            addr: c.daddr,
            port: c.dport,
        },
        flags::TUNNEL => {
            let src = match c.daddr {
                IpAddr::V4(_) => port.addr_v4.map(IpAddr::V4),
                IpAddr::V6(_) => port.addr_v6.map(IpAddr::V6),
            }?;
            FastRewrite::Tun { src, dst: c.daddr }
        }
        _ => return None,
    };
    Some(FastAction {
        rewrite,
        port: hop.port,
        src_mac: port.mac,
        dst_mac: hop.mac,
        mtu: port.mtu,
        conn: id,
    })
}

/// What the engine does to `c`'s NAT replies, sent through `hop` (the
/// client's, or its router's) on `port`. `None` for DR and TUN (no replies
/// come back) and when `c` is not eligible.
pub fn action_out(c: &Conn, id: ConnId, hop: &Hop, port: &PortConfig) -> Option<FastAction> {
    eligibility(c).ok()?;
    if c.fwd() != flags::MASQ {
        return None;
    }
    Some(FastAction {
        rewrite: FastRewrite::NatOut {
            addr: c.vaddr,
            port: c.vport,
        },
        port: hop.port,
        src_mac: port.mac,
        dst_mac: hop.mac,
        mtu: port.mtu,
        conn: id,
    })
}

/// A cached flow as the engine accounts for it: whose counters the fast
/// path's traffic on `key` is credited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastFlow {
    /// The packets' key.
    pub key: FlowKey,
    /// The connection (checked with [`matches`] before use: handles are
    /// reused).
    pub conn: ConnId,
    /// The service ([`crate::service::ServiceRef::to_owner`]).
    pub owner: u64,
    /// The real server.
    pub dest: DestId,
    /// NAT replies (server → client, counted as outgoing); else the
    /// client → server packets (incoming).
    pub reply: bool,
}

/// Work for the data plane, in order: what to put into and take out of
/// the fast path's cache ([`crate::Engine::take_fast_path_ops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastPathOp {
    /// Install (or replace) the entry of `flow.key`.
    Install(FastFlow, FastAction),
    /// Remove the entry of `flow.key`, crediting what it counted since the
    /// last read with [`crate::Engine::credit_fast_path`].
    Remove(FastFlow),
    /// Remove every entry (after `-C`), crediting them as `Remove` does.
    RemoveAll,
}

/// Whether the fast path's entry for `key`, installed for connection `id`,
/// still describes `c` (the table reuses handles: credit counters only
/// when this holds).
pub fn matches(key: &FlowKey, c: &Conn) -> bool {
    *key == flow_in(c) || flow_out(c).is_some_and(|k| *key == k)
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::conn::state::UDP_NORMAL;
    use crate::time::Instant;

    const RS_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 4]);
    const PORT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 3]);

    fn conn(proto: u8, fwd: u32, state: u8, daddr: IpAddr) -> Conn {
        Conn {
            proto,
            caddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            cport: 40000,
            vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            vport: 80,
            daddr,
            dport: 8080,
            fwmark: 0,
            flags: fwd,
            state,
            timeout_ms: 900_000,
            expires: Instant::ZERO,
            owner: 0,
            dest: DestId(1),
            control: None,
            n_control: 0,
            in_pkts: 1,
            old_state: 0,
        }
    }

    fn rs4() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 1, 0, 5))
    }

    fn port(v4: bool, v6: bool) -> PortConfig {
        PortConfig {
            mac: PORT_MAC,
            mtu: 1500,
            addr_v4: v4.then_some(Ipv4Addr::new(10, 1, 0, 1)),
            addr_v6: v6.then_some(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)),
        }
    }

    const HOP: Hop = Hop {
        port: PortId(2),
        mac: RS_MAC,
    };
    const ES: u8 = TcpState::Established as u8;

    fn id() -> ConnId {
        ConnId::from_index(5)
    }

    #[test]
    fn eligibility_rules() {
        let ok = |c: &Conn| eligibility(c);
        assert_eq!(ok(&conn(TCP, flags::DROUTE, ES, rs4())), Ok(()));
        assert_eq!(ok(&conn(TCP, flags::MASQ, ES, rs4())), Ok(()));
        assert_eq!(ok(&conn(TCP, flags::TUNNEL, ES, rs4())), Ok(()));
        for s in [
            TcpState::SynRecv,
            TcpState::FinWait,
            TcpState::TimeWait,
            TcpState::None,
        ] {
            assert_eq!(
                ok(&conn(TCP, flags::DROUTE, s as u8, rs4())),
                Err(NotEligible::State)
            );
        }
        assert_eq!(ok(&conn(UDP, flags::MASQ, UDP_NORMAL, rs4())), Ok(()));
        let mut one = conn(UDP, flags::MASQ | flags::ONE_PACKET, UDP_NORMAL, rs4());
        assert_eq!(ok(&one), Err(NotEligible::OnePacket));
        one.flags = flags::DROUTE | flags::TEMPLATE;
        assert_eq!(ok(&one), Err(NotEligible::Template));
        let sctp_es = SctpState::Established as u8;
        assert_eq!(ok(&conn(SCTP, flags::DROUTE, sctp_es, rs4())), Ok(()));
        assert_eq!(
            ok(&conn(SCTP, flags::DROUTE, SctpState::Init as u8, rs4())),
            Err(NotEligible::State)
        );
        assert_eq!(
            ok(&conn(SCTP, flags::MASQ, sctp_es, rs4())),
            Err(NotEligible::SctpNat)
        );
        assert_eq!(
            ok(&conn(TCP, flags::LOCALNODE, ES, rs4())),
            Err(NotEligible::Method)
        );
        assert_eq!(
            ok(&conn(TCP, flags::BYPASS, ES, rs4())),
            Err(NotEligible::Method)
        );
        assert_eq!(
            ok(&conn(1, flags::DROUTE, 0, rs4())),
            Err(NotEligible::Protocol)
        );
    }

    #[test]
    fn keys_both_ways() {
        let c = conn(TCP, flags::MASQ, ES, rs4());
        let k = flow_in(&c);
        assert_eq!(
            (k.src, k.dst, k.sport, k.dport),
            (c.caddr, c.vaddr, 40000, 80)
        );
        let o = flow_out(&c).unwrap();
        assert_eq!(
            (o.src, o.dst, o.sport, o.dport),
            (c.daddr, c.caddr, 8080, 40000)
        );
        assert!(matches(&k, &c) && matches(&o, &c));
        let dr = conn(TCP, flags::DROUTE, ES, rs4());
        assert_eq!(flow_out(&dr), None, "DR replies bypass the director");
        assert!(!matches(&o, &dr));
        let mut other = c;
        other.cport = 40001;
        assert!(!matches(&k, &other), "a reused handle is told apart");
    }

    #[test]
    fn actions_per_method() {
        let p = port(true, false);
        let dr = action_in(&conn(TCP, flags::DROUTE, ES, rs4()), id(), &HOP, &p).unwrap();
        assert_eq!(dr.rewrite, FastRewrite::Dr);
        assert_eq!(
            (dr.port, dr.src_mac, dr.dst_mac, dr.mtu, dr.conn),
            (PortId(2), PORT_MAC, RS_MAC, 1500, id())
        );

        let c = conn(TCP, flags::MASQ, ES, rs4());
        let nat = action_in(&c, id(), &HOP, &p).unwrap();
        assert_eq!(
            nat.rewrite,
            FastRewrite::NatIn {
                addr: rs4(),
                port: 8080
            }
        );
        let out = action_out(&c, id(), &HOP, &p).unwrap();
        assert_eq!(
            out.rewrite,
            FastRewrite::NatOut {
                addr: c.vaddr,
                port: 80
            }
        );
        assert_eq!(
            action_out(&conn(TCP, flags::DROUTE, ES, rs4()), id(), &HOP, &p),
            None
        );

        let tun = action_in(&conn(UDP, flags::TUNNEL, UDP_NORMAL, rs4()), id(), &HOP, &p).unwrap();
        assert_eq!(
            tun.rewrite,
            FastRewrite::Tun {
                src: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
                dst: rs4()
            }
        );
        // An IPv6 real server needs an IPv6 address on the port, as the
        // engine does (it drops the packet otherwise).
        let rs6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 5));
        let c6 = conn(TCP, flags::TUNNEL, ES, rs6);
        assert_eq!(action_in(&c6, id(), &HOP, &p), None);
        let t6 = action_in(&c6, id(), &HOP, &port(true, true)).unwrap();
        assert!(matches!(
            t6.rewrite,
            FastRewrite::Tun {
                src: IpAddr::V6(_),
                ..
            }
        ));

        // Not eligible: no action either way.
        let syn = conn(TCP, flags::MASQ, TcpState::SynRecv as u8, rs4());
        assert_eq!(action_in(&syn, id(), &HOP, &p), None);
        assert_eq!(action_out(&syn, id(), &HOP, &p), None);
    }
}
