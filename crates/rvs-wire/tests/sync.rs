//! Properties of the IPVS sync codec (`rvs_wire::ipvs_sync`):
//! (1) encode → decode gives back every connection, in order, across as many
//!     messages as `max_len` makes, for versions 0 and 1;
//! (2) any bytes decode without panic, the walk is bounded by the count, and
//!     the result depends only on the datagram's own bytes.

use core::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rvs_wire::ipvs_sync::{
    HEADER_V0_LEN, HEADER_V1_LEN, MAX_CONNS, MAX_ENTRY_LEN, Message, SeqInfo, SeqOptions,
    SyncAddrs, SyncBuffer, SyncConn, SyncError, Version, conn_flags,
};

/// An owned connection (the codec's type borrows PE data).
#[derive(Debug, Clone)]
struct Owned {
    protocol: u8,
    flags: u32,
    state: u16,
    ports: [u16; 3],
    addrs: SyncAddrs,
    fwmark: u32,
    timeout: u32,
    seq: Option<SeqOptions>,
    pe_data: Option<Vec<u8>>,
    pe_name: Option<Vec<u8>>,
}

impl Owned {
    fn conn(&self) -> SyncConn<'_> {
        SyncConn {
            protocol: self.protocol,
            flags: self.flags,
            state: self.state,
            cport: self.ports[0],
            vport: self.ports[1],
            dport: self.ports[2],
            addrs: self.addrs,
            fwmark: self.fwmark,
            timeout: self.timeout,
            seq: self.seq,
            pe_data: self.pe_data.as_deref(),
            pe_name: self.pe_name.as_deref(),
        }
    }
}

fn seq() -> impl Strategy<Value = SeqOptions> {
    any::<[u32; 6]>().prop_map(|w| SeqOptions {
        in_seq: SeqInfo {
            init_seq: w[0],
            delta: w[1],
            previous_delta: w[2],
        },
        out_seq: SeqInfo {
            init_seq: w[3],
            delta: w[4],
            previous_delta: w[5],
        },
    })
}

fn addrs(v6: bool) -> BoxedStrategy<SyncAddrs> {
    if v6 {
        any::<[u128; 3]>()
            .prop_map(|a| SyncAddrs::V6 {
                caddr: Ipv6Addr::from(a[0]),
                vaddr: Ipv6Addr::from(a[1]),
                daddr: Ipv6Addr::from(a[2]),
            })
            .boxed()
    } else {
        any::<[u32; 3]>()
            .prop_map(|a| SyncAddrs::V4 {
                caddr: Ipv4Addr::from(a[0]),
                vaddr: Ipv4Addr::from(a[1]),
                daddr: Ipv4Addr::from(a[2]),
            })
            .boxed()
    }
}

/// A connection as a kernel v1 sender could write it: any flags but HASHED,
/// PE data only with a PE name (the receiver skips data without a name).
fn conn_v1() -> impl Strategy<Value = Owned> {
    let pe = prop_oneof![
        Just((None, None)),
        (
            proptest::collection::vec(any::<u8>(), 1..=255),
            proptest::collection::vec(any::<u8>(), 1..=16)
        )
            .prop_map(|(d, n)| (Some(d), Some(n))),
        proptest::collection::vec(any::<u8>(), 1..=16).prop_map(|n| (None, Some(n))),
    ];
    (
        any::<bool>().prop_flat_map(addrs),
        any::<(u8, u32, u16, [u16; 3], u32, u32)>(),
        proptest::option::of(seq()),
        pe,
    )
        .prop_map(
            |(addrs, (protocol, flags, state, ports, fwmark, timeout), seq, (pe_data, pe_name))| {
                Owned {
                    protocol,
                    flags: flags & !conn_flags::HASHED,
                    state,
                    ports,
                    addrs,
                    fwmark,
                    timeout,
                    seq,
                    pe_data,
                    pe_name,
                }
            },
        )
}

/// A connection as a v0 message can carry it: IPv4, 16-bit flags, sequence
/// data exactly when the flags say so, no fwmark, timeout or PE data.
fn conn_v0() -> impl Strategy<Value = Owned> {
    (addrs(false), any::<(u8, u16, u16, [u16; 3])>(), seq()).prop_map(
        |(addrs, (protocol, flags, state, ports), s)| {
            let flags = u32::from(flags) & !conn_flags::HASHED;
            Owned {
                protocol,
                flags,
                state,
                ports,
                addrs,
                fwmark: 0,
                timeout: 0,
                seq: (flags & conn_flags::SEQ_MASK != 0).then_some(s),
                pe_data: None,
                pe_name: None,
            }
        },
    )
}

/// Encodes `conns` into as many messages as `max_len` needs.
fn encode(conns: &[Owned], version: Version, syncid: u8, max_len: usize) -> Vec<Vec<u8>> {
    let buf = vec![0u8; max_len.max(MAX_ENTRY_LEN + HEADER_V1_LEN)];
    let mut sb = SyncBuffer::new(buf, version, syncid, max_len).unwrap();
    let mut out = Vec::new();
    for c in conns {
        if !sb.try_push(&c.conn()).unwrap() {
            assert!(!sb.is_empty(), "an empty message refused an entry");
            out.push(sb.as_bytes().to_vec());
            sb.reset();
            assert!(sb.try_push(&c.conn()).unwrap());
        }
    }
    if !sb.is_empty() {
        out.push(sb.as_bytes().to_vec());
    }
    out
}

fn check_round_trip(conns: &[Owned], version: Version, syncid: u8, max_len: usize) {
    let messages = encode(conns, version, syncid, max_len);
    let mut decoded = Vec::new();
    for m in &messages {
        let msg = Message::parse(m).unwrap();
        assert_eq!(msg.version(), version);
        assert_eq!(msg.syncid(), syncid);
        assert_eq!(usize::from(msg.size()), m.len());
        assert!(usize::from(msg.nr_conns()) <= MAX_CONNS);
        let n = usize::from(msg.nr_conns());
        let hlen = match version {
            Version::V0 => HEADER_V0_LEN,
            Version::V1 => HEADER_V1_LEN,
        };
        // Within max_len, unless one oversized entry is alone in it.
        assert!(m.len() <= max_len || n == 1, "{} > {max_len}", m.len());
        assert!(m.len() > hlen);
        let before = decoded.len();
        for r in msg.conns() {
            decoded.push(r.unwrap());
        }
        assert_eq!(decoded.len() - before, n);
    }
    assert_eq!(decoded.len(), conns.len());
    for (d, c) in decoded.iter().zip(conns) {
        assert_eq!(*d, c.conn());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_v1(
        conns in proptest::collection::vec(conn_v1(), 1..40),
        syncid in any::<u8>(),
        max_len in prop_oneof![Just(1usize), 40usize..600, Just(1472), Just(9000)],
    ) {
        check_round_trip(&conns, Version::V1, syncid, max_len);
    }

    #[test]
    fn round_trip_v0(
        conns in proptest::collection::vec(conn_v0(), 1..40),
        syncid in any::<u8>(),
        max_len in prop_oneof![Just(1usize), 28usize..400, Just(1472)],
    ) {
        check_round_trip(&conns, Version::V0, syncid, max_len);
    }

    /// Arbitrary bytes, alone and after a valid header: no panic, at most
    /// nr_conns items, nothing after a rest-dropping error, PE slices inside
    /// the datagram, and the same result whatever follows the datagram in
    /// memory.
    #[test]
    fn any_bytes_decode_safely(
        head in prop_oneof![
            Just(vec![]),
            (any::<u8>(), 0u8..=255).prop_map(|(id, n)| vec![0, id, 0, 0, n, 1, 0, 0]),
            any::<u8>().prop_map(|n| vec![n, 1, 0, 0]),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..700),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        fix_size in any::<bool>(),
    ) {
        let mut d = head;
        d.extend_from_slice(&body);
        if fix_size && d.len() >= 4 && d.len() <= 65535 {
            let n = d.len() as u16;
            d[2..4].copy_from_slice(&n.to_be_bytes());
        }
        let n = d.len();
        let mut big = d.clone();
        big.extend_from_slice(&tail);
        let a = summarize(&d);
        let b = summarize(&big[..n]);
        prop_assert_eq!(a, b);
    }
}

#[derive(Debug, PartialEq)]
enum Item {
    Ok(String),
    Err(SyncError),
}

fn summarize(d: &[u8]) -> Result<Vec<Item>, SyncError> {
    let msg = Message::parse(d)?;
    let range = d.as_ptr_range();
    let mut items = Vec::new();
    let mut stopped = false;
    for r in msg.conns() {
        assert!(!stopped, "an item after a rest-dropping error");
        match r {
            Ok(c) => {
                for s in [c.pe_data, c.pe_name].into_iter().flatten() {
                    let r2 = s.as_ptr_range();
                    assert!(range.start <= r2.start && r2.end <= range.end);
                }
                items.push(Item::Ok(format!("{c:?}")));
            }
            Err(e) => {
                stopped = e.drops_rest();
                items.push(Item::Err(e));
            }
        }
    }
    assert!(items.len() <= usize::from(msg.nr_conns()));
    Ok(items)
}

#[test]
fn message_with_255_entries_is_full() {
    let c = Owned {
        protocol: 17,
        flags: 0,
        state: 0,
        ports: [1, 2, 3],
        addrs: SyncAddrs::V4 {
            caddr: Ipv4Addr::new(1, 1, 1, 1),
            vaddr: Ipv4Addr::new(2, 2, 2, 2),
            daddr: Ipv4Addr::new(3, 3, 3, 3),
        },
        fwmark: 0,
        timeout: 300,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    let conns = vec![c; 300];
    let messages = encode(&conns, Version::V1, 1, 65507);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].len(), 8 + 255 * 36);
    check_round_trip(&conns, Version::V1, 1, 65507);
}
