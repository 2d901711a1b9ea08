//! Sync messages built by hand from the kernel's C structs
//! (`net/netfilter/ipvs/ip_vs_sync.c`, Linux 6.x): every field written at
//! its own offset, with the byte order the kernel's sender uses
//! (`htons`/`htonl` for the header size and the entry fields, ports and
//! addresses as stored in `struct ip_vs_conn` — network order —, the v1
//! sequence data through `hton_seq`, the v0 sequence data by `memcpy` of
//! the host's `struct ip_vs_seq`, little-endian on x86). Then both ways:
//! rvs decodes every field of the hand-built bytes, and rvs's encoder
//! produces exactly those bytes.
//!
//! The structs, as C lays them out (no implicit padding: every field is on
//! its natural alignment):
//!
//! ```text
//! struct ip_vs_sync_mesg      { u8 reserved; u8 syncid; be16 size; u8 nr_conns; s8 version; u16 spare; }   //  8
//! struct ip_vs_sync_mesg_v0   { u8 nr_conns; u8 syncid; be16 size; }                                       //  4
//! struct ip_vs_sync_v4        { u8 type; u8 protocol; be16 ver_size; be32 flags; be16 state;
//!                               be16 cport, vport, dport; be32 fwmark; be32 timeout;
//!                               be32 caddr, vaddr, daddr; }                                                // 36
//! struct ip_vs_sync_v6        { ...same to timeout...; struct in6_addr caddr, vaddr, daddr; }             // 72
//! struct ip_vs_seq            { u32 init_seq; u32 delta; u32 previous_delta; }                             // 12
//! struct ip_vs_sync_conn_options { struct ip_vs_seq in_seq, out_seq; }                                     // 24
//! struct ip_vs_sync_conn_v0   { u8 reserved; u8 protocol; be16 cport, vport, dport;
//!                               be32 caddr, vaddr, daddr; be16 flags; be16 state; }                        // 24
//! ```

use core::net::{Ipv4Addr, Ipv6Addr};

use rvs_wire::ipvs_sync::{
    CONN_V0_LEN, CONN_V4_LEN, CONN_V6_LEN, HEADER_V0_LEN, HEADER_V1_LEN, Message, SEQ_OPTIONS_LEN,
    SeqInfo, SeqOptions, SyncAddrs, SyncBuffer, SyncConn, Version, conn_flags,
};

/// Field offsets, one module per C struct.
mod mesg {
    pub const RESERVED: usize = 0;
    pub const SYNCID: usize = 1;
    pub const SIZE: usize = 2;
    pub const NR_CONNS: usize = 4;
    pub const VERSION: usize = 5;
    pub const SPARE: usize = 6;
    pub const SIZEOF: usize = 8;
}
mod mesg_v0 {
    pub const NR_CONNS: usize = 0;
    pub const SYNCID: usize = 1;
    pub const SIZE: usize = 2;
    pub const SIZEOF: usize = 4;
}
mod sync_v4 {
    pub const TYPE: usize = 0;
    pub const PROTOCOL: usize = 1;
    pub const VER_SIZE: usize = 2;
    pub const FLAGS: usize = 4;
    pub const STATE: usize = 8;
    pub const CPORT: usize = 10;
    pub const VPORT: usize = 12;
    pub const DPORT: usize = 14;
    pub const FWMARK: usize = 16;
    pub const TIMEOUT: usize = 20;
    pub const CADDR: usize = 24;
    pub const VADDR: usize = 28;
    pub const DADDR: usize = 32;
    pub const SIZEOF: usize = 36;
}
mod sync_v6 {
    pub use super::sync_v4::{
        CPORT, DPORT, FLAGS, FWMARK, PROTOCOL, STATE, TIMEOUT, TYPE, VER_SIZE, VPORT,
    };
    pub const CADDR: usize = 24;
    pub const VADDR: usize = 40;
    pub const DADDR: usize = 56;
    pub const SIZEOF: usize = 72;
}
mod conn_options {
    pub const IN_SEQ: usize = 0;
    pub const OUT_SEQ: usize = 12;
    pub const SIZEOF: usize = 24;
    // struct ip_vs_seq
    pub const INIT_SEQ: usize = 0;
    pub const DELTA: usize = 4;
    pub const PREVIOUS_DELTA: usize = 8;
}
mod conn_v0 {
    pub const RESERVED: usize = 0;
    pub const PROTOCOL: usize = 1;
    pub const CPORT: usize = 2;
    pub const VPORT: usize = 4;
    pub const DPORT: usize = 6;
    pub const CADDR: usize = 8;
    pub const VADDR: usize = 12;
    pub const DADDR: usize = 16;
    pub const FLAGS: usize = 20;
    pub const STATE: usize = 22;
    pub const SIZEOF: usize = 24;
}

// Option TLV types (IPVS_OPT_*).
const IPVS_OPT_SEQ_DATA: u8 = 1;
const IPVS_OPT_PE_DATA: u8 = 2;
const IPVS_OPT_PE_NAME: u8 = 3;

/// A message under construction: `at(base + field)` writes.
struct Raw(Vec<u8>);

impl Raw {
    fn u8(&mut self, off: usize, v: u8) {
        self.grow(off + 1);
        self.0[off] = v;
    }
    fn be16(&mut self, off: usize, v: u16) {
        self.bytes(off, &v.to_be_bytes());
    }
    fn be32(&mut self, off: usize, v: u32) {
        self.bytes(off, &v.to_be_bytes());
    }
    fn host32(&mut self, off: usize, v: u32) {
        self.bytes(off, &v.to_le_bytes()); // x86-64 / arm64 host order
    }
    fn bytes(&mut self, off: usize, b: &[u8]) {
        self.grow(off + b.len());
        self.0[off..off + b.len()].copy_from_slice(b);
    }
    fn grow(&mut self, len: usize) {
        if self.0.len() < len {
            self.0.resize(len, 0);
        }
    }
    /// Writes a `struct ip_vs_seq` at `off` with `put` for each u32.
    fn seq(&mut self, off: usize, s: SeqInfo, be: bool) {
        for (f, v) in [
            (conn_options::INIT_SEQ, s.init_seq),
            (conn_options::DELTA, s.delta),
            (conn_options::PREVIOUS_DELTA, s.previous_delta),
        ] {
            if be {
                self.be32(off + f, v);
            } else {
                self.host32(off + f, v);
            }
        }
    }
}

fn seq_opts() -> SeqOptions {
    SeqOptions {
        in_seq: SeqInfo {
            init_seq: 0x1122_3344,
            delta: 12,
            previous_delta: 5,
        },
        out_seq: SeqInfo {
            init_seq: 0xdead_beef,
            delta: 0xffff_fff4,
            previous_delta: 0x0000_0100,
        },
    }
}

#[test]
fn struct_sizes_match_the_kernel() {
    assert_eq!(mesg::SIZEOF, HEADER_V1_LEN);
    assert_eq!(mesg_v0::SIZEOF, HEADER_V0_LEN);
    assert_eq!(sync_v4::SIZEOF, CONN_V4_LEN);
    assert_eq!(sync_v6::SIZEOF, CONN_V6_LEN);
    assert_eq!(conn_v0::SIZEOF, CONN_V0_LEN);
    assert_eq!(conn_options::SIZEOF, SEQ_OPTIONS_LEN);
}

/// Version 0 (`ip_vs_sync_conn_v0`): a DR connection, then a NAT one with
/// sequence adjustment (`FULL_CONN_SIZE` = 48 bytes), as
/// `ip_vs_sync_conn_v0` writes them.
#[test]
fn v0_with_sequence_options() {
    let mut m = Raw(Vec::new());
    m.u8(mesg_v0::NR_CONNS, 2);
    m.u8(mesg_v0::SYNCID, 42);
    let s = mesg_v0::SIZEOF;
    // Entry 1: TCP 198.51.100.20:51000 -> 192.0.2.1:443 via 10.1.1.2:443,
    // DROUTE, ESTABLISHED.
    m.u8(s + conn_v0::RESERVED, 0);
    m.u8(s + conn_v0::PROTOCOL, 6);
    m.be16(s + conn_v0::CPORT, 51000);
    m.be16(s + conn_v0::VPORT, 443);
    m.be16(s + conn_v0::DPORT, 443);
    m.bytes(s + conn_v0::CADDR, &[198, 51, 100, 20]);
    m.bytes(s + conn_v0::VADDR, &[192, 0, 2, 1]);
    m.bytes(s + conn_v0::DADDR, &[10, 1, 1, 2]);
    m.be16(s + conn_v0::FLAGS, 0x0003);
    m.be16(s + conn_v0::STATE, 1);
    // Entry 2: TCP 198.51.100.21:2121 -> 192.0.2.1:21 via 10.1.1.3:21,
    // MASQ | IN_SEQ | OUT_SEQ | INACTIVE, FIN_WAIT, with the options.
    let s = s + conn_v0::SIZEOF;
    m.u8(s + conn_v0::PROTOCOL, 6);
    m.be16(s + conn_v0::CPORT, 2121);
    m.be16(s + conn_v0::VPORT, 21);
    m.be16(s + conn_v0::DPORT, 21);
    m.bytes(s + conn_v0::CADDR, &[198, 51, 100, 21]);
    m.bytes(s + conn_v0::VADDR, &[192, 0, 2, 1]);
    m.bytes(s + conn_v0::DADDR, &[10, 1, 1, 3]);
    m.be16(s + conn_v0::FLAGS, 0x0700);
    m.be16(s + conn_v0::STATE, 4);
    let o = s + conn_v0::SIZEOF;
    m.seq(o + conn_options::IN_SEQ, seq_opts().in_seq, false);
    m.seq(o + conn_options::OUT_SEQ, seq_opts().out_seq, false);
    let total = o + conn_options::SIZEOF;
    m.be16(mesg_v0::SIZE, total as u16);
    assert_eq!(m.0.len(), 4 + 24 + 48);

    let msg = Message::parse(&m.0).unwrap();
    assert_eq!(msg.version(), Version::V0);
    assert_eq!((msg.syncid(), msg.nr_conns(), msg.size()), (42, 2, 76));
    let got: Vec<SyncConn<'_>> = msg.conns().map(Result::unwrap).collect();
    let want = [
        SyncConn {
            protocol: 6,
            flags: conn_flags::DROUTE,
            state: 1,
            cport: 51000,
            vport: 443,
            dport: 443,
            addrs: SyncAddrs::V4 {
                caddr: Ipv4Addr::new(198, 51, 100, 20),
                vaddr: Ipv4Addr::new(192, 0, 2, 1),
                daddr: Ipv4Addr::new(10, 1, 1, 2),
            },
            fwmark: 0,
            timeout: 0,
            seq: None,
            pe_data: None,
            pe_name: None,
        },
        SyncConn {
            protocol: 6,
            flags: conn_flags::MASQ | conn_flags::SEQ_MASK | conn_flags::INACTIVE,
            state: 4,
            cport: 2121,
            vport: 21,
            dport: 21,
            addrs: SyncAddrs::V4 {
                caddr: Ipv4Addr::new(198, 51, 100, 21),
                vaddr: Ipv4Addr::new(192, 0, 2, 1),
                daddr: Ipv4Addr::new(10, 1, 1, 3),
            },
            fwmark: 0,
            timeout: 0,
            seq: Some(seq_opts()),
            pe_data: None,
            pe_name: None,
        },
    ];
    assert_eq!(got, want);
    assert_eq!(got[1].backup_flags(Version::V0), 0x0720);

    // The other way: rvs writes the same bytes (HASHED, which the kernel
    // clears, set here to check that it is cleared).
    let mut sb = SyncBuffer::new(vec![0u8; 1472], Version::V0, 42, 1472).unwrap();
    for c in want {
        let c = SyncConn {
            flags: c.flags | conn_flags::HASHED,
            ..c
        };
        assert!(sb.try_push(&c).unwrap());
    }
    assert_eq!(sb.as_bytes(), &m.0[..]);
}

/// Version 1: an IPv4 NAT connection with IPVS_OPT_SEQ_DATA (62 bytes, so
/// 2 bytes of padding follow), an IPv6 UDP connection with SIP PE data and
/// name (72 + 2 + 11 + 2 + 3 = 90 bytes, 2 bytes of padding), and a fwmark
/// template (protocol 0, vaddr = htonl(fwmark), ports 0).
#[test]
fn v1_ipv4_ipv6_options_pe_data_template() {
    let mut m = Raw(Vec::new());
    m.u8(mesg::RESERVED, 0);
    m.u8(mesg::SYNCID, 7);
    m.u8(mesg::NR_CONNS, 3);
    m.u8(mesg::VERSION, 1);
    m.be16(mesg::SPARE, 0);

    // Entry 1 (ip_vs_sync_v4 + SEQ_DATA).
    let s = mesg::SIZEOF;
    let len1 = sync_v4::SIZEOF + 2 + conn_options::SIZEOF;
    m.u8(s + sync_v4::TYPE, 0);
    m.u8(s + sync_v4::PROTOCOL, 6);
    m.be16(s + sync_v4::VER_SIZE, len1 as u16); // version 0 in the top bits
    m.be32(s + sync_v4::FLAGS, 0x0000_0600); // MASQ | IN_SEQ | OUT_SEQ
    m.be16(s + sync_v4::STATE, 1);
    m.be16(s + sync_v4::CPORT, 33000);
    m.be16(s + sync_v4::VPORT, 21);
    m.be16(s + sync_v4::DPORT, 2121);
    m.be32(s + sync_v4::FWMARK, 0);
    m.be32(s + sync_v4::TIMEOUT, 900);
    m.bytes(s + sync_v4::CADDR, &[203, 0, 113, 50]);
    m.bytes(s + sync_v4::VADDR, &[192, 0, 2, 10]);
    m.bytes(s + sync_v4::DADDR, &[10, 0, 0, 7]);
    let o = s + sync_v4::SIZEOF;
    m.u8(o, IPVS_OPT_SEQ_DATA);
    m.u8(o + 1, conn_options::SIZEOF as u8);
    m.seq(o + 2 + conn_options::IN_SEQ, seq_opts().in_seq, true);
    m.seq(o + 2 + conn_options::OUT_SEQ, seq_opts().out_seq, true);
    assert_eq!(m.0.len(), s + len1);
    let pad1 = (4 - (s + len1) % 4) % 4;
    assert_eq!(pad1, 2);

    // Entry 2 (ip_vs_sync_v6 + PE_DATA + PE_NAME).
    let s = s + len1 + pad1;
    let call_id = b"abc@example"; // 11 bytes
    let len2 = sync_v6::SIZEOF + 2 + call_id.len() + 2 + 3;
    m.u8(s + sync_v6::TYPE, 1); // STYPE_F_INET6
    m.u8(s + sync_v6::PROTOCOL, 17);
    m.be16(s + sync_v6::VER_SIZE, len2 as u16);
    m.be32(s + sync_v6::FLAGS, 0x0000_0103); // DROUTE | INACTIVE
    m.be16(s + sync_v6::STATE, 0);
    m.be16(s + sync_v6::CPORT, 5060);
    m.be16(s + sync_v6::VPORT, 5060);
    m.be16(s + sync_v6::DPORT, 5060);
    m.be32(s + sync_v6::FWMARK, 0);
    m.be32(s + sync_v6::TIMEOUT, 300);
    let (c6, v6, d6): (Ipv6Addr, Ipv6Addr, Ipv6Addr) = (
        "2001:db8:cafe::1".parse().unwrap(),
        "2001:db8::100".parse().unwrap(),
        "fd00::7".parse().unwrap(),
    );
    m.bytes(s + sync_v6::CADDR, &c6.octets());
    m.bytes(s + sync_v6::VADDR, &v6.octets());
    m.bytes(s + sync_v6::DADDR, &d6.octets());
    let o = s + sync_v6::SIZEOF;
    m.u8(o, IPVS_OPT_PE_DATA);
    m.u8(o + 1, call_id.len() as u8);
    m.bytes(o + 2, call_id);
    let o = o + 2 + call_id.len();
    m.u8(o, IPVS_OPT_PE_NAME);
    m.u8(o + 1, 3);
    m.bytes(o + 2, b"sip");
    assert_eq!(m.0.len(), s + len2);
    let pad2 = (4 - (s + len2) % 4) % 4;
    assert_eq!(pad2, 2);

    // Entry 3 (ip_vs_sync_v4): a persistence template of fwmark service 5:
    // <proto 0, caddr & netmask, cport 0, vaddr = htonl(5), vport 0, dest>.
    let s = s + len2 + pad2;
    m.u8(s + sync_v4::TYPE, 0);
    m.u8(s + sync_v4::PROTOCOL, 0);
    m.be16(s + sync_v4::VER_SIZE, sync_v4::SIZEOF as u16);
    m.be32(s + sync_v4::FLAGS, 0x0000_1003); // TEMPLATE | DROUTE
    m.be16(s + sync_v4::STATE, 0);
    m.be16(s + sync_v4::CPORT, 0);
    m.be16(s + sync_v4::VPORT, 0);
    m.be16(s + sync_v4::DPORT, 80);
    m.be32(s + sync_v4::FWMARK, 5);
    m.be32(s + sync_v4::TIMEOUT, 360);
    m.bytes(s + sync_v4::CADDR, &[203, 0, 113, 0]);
    m.be32(s + sync_v4::VADDR, 5);
    m.bytes(s + sync_v4::DADDR, &[10, 0, 0, 8]);
    let total = s + sync_v4::SIZEOF;
    m.be16(mesg::SIZE, total as u16);
    assert_eq!(m.0.len(), total);
    assert_eq!(total, 8 + 62 + 2 + 90 + 2 + 36);

    let msg = Message::parse(&m.0).unwrap();
    assert_eq!(msg.version(), Version::V1);
    assert_eq!((msg.syncid(), msg.nr_conns()), (7, 3));
    assert!(msg.accepted_by(0) && msg.accepted_by(7) && !msg.accepted_by(8));
    let got: Vec<SyncConn<'_>> = msg.conns().map(Result::unwrap).collect();
    let want = [
        SyncConn {
            protocol: 6,
            flags: conn_flags::MASQ | conn_flags::SEQ_MASK,
            state: 1,
            cport: 33000,
            vport: 21,
            dport: 2121,
            addrs: SyncAddrs::V4 {
                caddr: Ipv4Addr::new(203, 0, 113, 50),
                vaddr: Ipv4Addr::new(192, 0, 2, 10),
                daddr: Ipv4Addr::new(10, 0, 0, 7),
            },
            fwmark: 0,
            timeout: 900,
            seq: Some(seq_opts()),
            pe_data: None,
            pe_name: None,
        },
        SyncConn {
            protocol: 17,
            flags: conn_flags::DROUTE | conn_flags::INACTIVE,
            state: 0,
            cport: 5060,
            vport: 5060,
            dport: 5060,
            addrs: SyncAddrs::V6 {
                caddr: c6,
                vaddr: v6,
                daddr: d6,
            },
            fwmark: 0,
            timeout: 300,
            seq: None,
            pe_data: Some(call_id),
            pe_name: Some(b"sip"),
        },
        SyncConn {
            protocol: 0,
            flags: conn_flags::TEMPLATE | conn_flags::DROUTE,
            state: 0,
            cport: 0,
            vport: 0,
            dport: 80,
            addrs: SyncAddrs::V4 {
                caddr: Ipv4Addr::new(203, 0, 113, 0),
                vaddr: Ipv4Addr::from(5u32),
                daddr: Ipv4Addr::new(10, 0, 0, 8),
            },
            fwmark: 5,
            timeout: 360,
            seq: None,
            pe_data: None,
            pe_name: None,
        },
    ];
    assert_eq!(got, want);
    assert_eq!(
        got[1].backup_flags(Version::V1),
        conn_flags::DROUTE | conn_flags::INACTIVE | conn_flags::SYNC
    );

    let mut sb = SyncBuffer::new(vec![0u8; 1472], Version::V1, 7, 1472).unwrap();
    for c in &want {
        assert!(sb.try_push(c).unwrap());
    }
    assert_eq!(sb.as_bytes(), &m.0[..]);
}
