//! rvs-encoded sync messages decoded by an independent decoder: Wireshark's
//! IPVS dissector (`tshark`, Debian package `tshark`, installed by
//! `scripts/test.sh`). The test writes the datagrams, in Ethernet/IPv4/UDP
//! frames to 224.0.0.81:8848 (the port the dissector is registered on), into
//! a pcap file built here by hand, runs
//! `tshark -r FILE -T fields -E occurrence=a -e ipvs.<field>...` and checks
//! what the dissector read against what was encoded.
//!
//! Without `tshark` on PATH the test says so and passes without checking
//! (`RVS_REQUIRE_TSHARK=1` makes that a failure instead).

use core::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use rvs_wire::ipvs_sync::{
    DEFAULT_GROUP_V4, DEFAULT_PORT, SeqInfo, SeqOptions, SyncAddrs, SyncBuffer, SyncConn, Version,
    conn_flags,
};
use rvs_wire::{EtherType, EthernetAddress, ip_protocol};

/// One pcap file (libpcap format, microsecond timestamps, Ethernet).
fn pcap(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic
    out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, d) in datagrams.iter().enumerate() {
        let frame = frame(d);
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// A master's datagram as it leaves: from 10.0.0.1 (the interface's
/// address), an ephemeral port, to the group, TTL 1, DF clear.
fn frame(payload: &[u8]) -> Vec<u8> {
    let g = DEFAULT_GROUP_V4.octets();
    let dst_mac = EthernetAddress([0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]]);
    let mut f = vec![0u8; 14 + 20 + 8 + payload.len()];
    rvs_wire::ethernet::emit_header(
        &mut f,
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_mac,
        None,
        EtherType::IPV4,
    )
    .unwrap();
    rvs_wire::ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 0, 0, 1),
        dst_addr: DEFAULT_GROUP_V4,
        protocol: ip_protocol::UDP,
        payload_len: 8 + payload.len(),
        ttl: 1,
        tos: 0,
        ident: 1,
        dont_frag: false,
    }
    .emit(&mut f[14..])
    .unwrap();
    let udp = &mut f[34..];
    udp[0..2].copy_from_slice(&40001u16.to_be_bytes());
    udp[2..4].copy_from_slice(&DEFAULT_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp[8..].copy_from_slice(payload); // checksum 0: none (IPv4)
    f
}

fn seq() -> SeqOptions {
    SeqOptions {
        in_seq: SeqInfo {
            init_seq: 0x1122_3344,
            delta: 12,
            previous_delta: 5,
        },
        out_seq: SeqInfo {
            init_seq: 0xdead_beef,
            delta: 0xffff_fff4,
            previous_delta: 0x100,
        },
    }
}

fn v4(c: [u8; 4], v: [u8; 4], d: [u8; 4]) -> SyncAddrs {
    SyncAddrs::V4 {
        caddr: c.into(),
        vaddr: v.into(),
        daddr: d.into(),
    }
}

/// The connections of the test, the one with options of each family last
/// (see `tshark_decodes_rvs_v1_messages`).
fn conns() -> Vec<SyncConn<'static>> {
    let base = SyncConn {
        protocol: 6,
        flags: conn_flags::DROUTE,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 8080,
        addrs: v4([203, 0, 113, 7], [192, 0, 2, 10], [10, 0, 0, 5]),
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    let v6 = SyncAddrs::V6 {
        caddr: "2001:db8:2::5".parse::<Ipv6Addr>().unwrap(),
        vaddr: "2001:db8::64".parse().unwrap(),
        daddr: "2001:db8:1::11".parse().unwrap(),
    };
    vec![
        // 0..4: IPv4, the one with sequence data last.
        base,
        SyncConn {
            protocol: 17,
            flags: conn_flags::MASQ | conn_flags::INACTIVE,
            state: 0,
            cport: 5353,
            vport: 53,
            dport: 5300,
            addrs: v4([198, 51, 100, 9], [192, 0, 2, 11], [10, 0, 0, 6]),
            timeout: 300,
            ..base
        },
        SyncConn {
            protocol: 0,
            flags: conn_flags::TEMPLATE | conn_flags::TUNNEL,
            state: 0,
            cport: 0,
            vport: 0,
            dport: 80,
            addrs: v4([203, 0, 113, 0], [0, 0, 0, 5], [10, 0, 0, 8]),
            fwmark: 5,
            timeout: 360,
            ..base
        },
        SyncConn {
            flags: conn_flags::MASQ | conn_flags::SEQ_MASK,
            state: 5,
            cport: 2121,
            vport: 21,
            dport: 21,
            seq: Some(seq()),
            timeout: 120,
            ..base
        },
        // 4..6: IPv6, the one with PE data and name last.
        SyncConn {
            addrs: v6,
            state: 4,
            timeout: 120,
            ..base
        },
        SyncConn {
            protocol: 132,
            state: 8,
            addrs: v6,
            cport: 36412,
            vport: 36412,
            dport: 36412,
            pe_data: Some(b"abc@example"),
            pe_name: Some(b"sip"),
            ..base
        },
    ]
}

/// Runs tshark on `datagrams`; one line per frame, `fields` separated by
/// tabs, repeated fields by commas.
fn tshark(datagrams: &[Vec<u8>], fields: &[&str]) -> Option<Vec<Vec<String>>> {
    if Command::new("tshark").arg("--version").output().is_err() {
        if std::env::var_os("RVS_REQUIRE_TSHARK").is_some() {
            panic!("tshark is not installed (scripts/test.sh installs it)");
        }
        eprintln!(
            "SKIPPED: tshark is not installed (scripts/test.sh installs it: apt-get install tshark)"
        );
        return None;
    }
    let file = std::env::temp_dir().join(format!(
        "rvs-tshark-sync-{}-{}.pcap",
        std::process::id(),
        fields[0]
    ));
    std::fs::write(&file, pcap(datagrams)).unwrap();
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&file)
        .args(["-o", "gui.column.format:\"No.\",\"%m\""])
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    eprintln!("tshark: {}\n{text}", fields.join(" "));
    Some(
        text.lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect(),
    )
}

fn encode(version: Version, syncid: u8, conns: &[SyncConn<'_>]) -> Vec<u8> {
    let mut sb = SyncBuffer::new(vec![0u8; 1472], version, syncid, 1472).unwrap();
    for c in conns {
        assert!(sb.try_push(c).unwrap());
    }
    sb.as_bytes().to_vec()
}

fn join<T: ToString>(it: impl IntoIterator<Item = T>) -> String {
    it.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tshark_decodes_rvs_v1_messages() {
    // The dissector (Wireshark 4.0 as in Debian 12, and its current
    // source) reads the fixed 36/72 bytes of each v1 entry and goes on to
    // the next right after them: it neither shows nor skips options, so the
    // entries after one with options (and the padding after it) are read
    // out of place. Each message here has its one entry with options last;
    // the third mixes families. Options and padding are checked by the
    // kernel-layout fixtures (tests/sync_kernel_layout.rs) instead.
    let all = conns();
    let mixed = [all[0], all[4], all[2], all[1]];
    let groups: [&[SyncConn<'_>]; 3] = [&all[..4], &all[4..], &mixed];
    let msgs = vec![
        encode(Version::V1, 7, groups[0]),
        encode(Version::V1, 200, groups[1]),
        encode(Version::V1, 1, groups[2]),
    ];
    let fields = [
        "ipvs.syncid",
        "ipvs.size",
        "ipvs.conncount",
        "ipvs.version",
        "ipvs.type",
        "ipvs.proto",
        "ipvs.ver",
        "ipvs.size.v1",
        "ipvs.flags.v1",
        "ipvs.state",
        "ipvs.cport",
        "ipvs.vport",
        "ipvs.dport",
        "ipvs.fwmark",
        "ipvs.timeout",
        "ipvs.caddr",
        "ipvs.vaddr",
        "ipvs.daddr",
        "ipvs.caddr6",
        "ipvs.vaddr6",
        "ipvs.daddr6",
    ];
    let Some(lines) = tshark(&msgs, &fields) else {
        return;
    };
    assert_eq!(lines.len(), msgs.len(), "{lines:?}");
    for ((line, msg), conns) in lines.iter().zip(&msgs).zip(groups) {
        let f = |name: &str| line[fields.iter().position(|x| *x == name).unwrap()].clone();
        let syncid = msg[1];
        assert_eq!(f("ipvs.syncid"), syncid.to_string());
        assert_eq!(f("ipvs.size"), msg.len().to_string());
        assert_eq!(f("ipvs.conncount"), conns.len().to_string());
        assert_eq!(f("ipvs.version"), "1");
        assert_eq!(
            f("ipvs.type"),
            join(conns.iter().map(|c| u8::from(c.is_ipv6())))
        );
        assert_eq!(
            f("ipvs.proto"),
            join(conns.iter().map(|c| format!("0x{:02x}", c.protocol)))
        );
        assert_eq!(f("ipvs.ver"), join(conns.iter().map(|_| 0)));
        assert_eq!(
            f("ipvs.size.v1"),
            join(conns.iter().map(|c| c.wire_len(Version::V1).unwrap()))
        );
        assert_eq!(
            f("ipvs.flags.v1"),
            join(conns.iter().map(|c| format!("0x{:08x}", c.flags)))
        );
        assert_eq!(
            f("ipvs.state"),
            join(conns.iter().map(|c| format!("0x{:04x}", c.state)))
        );
        assert_eq!(f("ipvs.cport"), join(conns.iter().map(|c| c.cport)));
        assert_eq!(f("ipvs.vport"), join(conns.iter().map(|c| c.vport)));
        assert_eq!(f("ipvs.dport"), join(conns.iter().map(|c| c.dport)));
        assert_eq!(
            f("ipvs.fwmark"),
            join(conns.iter().map(|c| format!("0x{:08x}", c.fwmark)))
        );
        assert_eq!(f("ipvs.timeout"), join(conns.iter().map(|c| c.timeout)));
        for (name, get) in [
            ("caddr", (|c: &SyncConn<'static>| c.caddr()) as fn(&_) -> _),
            ("vaddr", |c| c.vaddr()),
            ("daddr", |c| c.daddr()),
        ] {
            let want4 = join(conns.iter().filter(|c| !c.is_ipv6()).map(get));
            let want6 = join(conns.iter().filter(|c| c.is_ipv6()).map(get));
            assert_eq!(f(&format!("ipvs.{name}")), want4, "{name}");
            assert_eq!(f(&format!("ipvs.{name}6")), want6, "{name}6");
        }
    }
}

#[test]
fn tshark_decodes_rvs_v0_messages() {
    let all: Vec<SyncConn<'_>> = conns()
        .into_iter()
        .filter(|c| !c.is_ipv6())
        .map(|c| SyncConn {
            fwmark: 0,
            timeout: 0,
            ..c
        })
        .collect();
    let msgs = vec![
        encode(Version::V0, 3, &all[..1]),
        encode(Version::V0, 4, &all),
    ];
    let groups: [&[SyncConn<'_>]; 2] = [&all[..1], &all];
    let fields = [
        "ipvs.conncount",
        "ipvs.syncid",
        "ipvs.size",
        "ipvs.proto",
        "ipvs.cport",
        "ipvs.vport",
        "ipvs.dport",
        "ipvs.caddr",
        "ipvs.vaddr",
        "ipvs.daddr",
        "ipvs.flags",
        "ipvs.state",
        "ipvs.in_seq.initial",
        "ipvs.in_seq.delta",
        "ipvs.in_seq.pdelta",
        "ipvs.out_seq.initial",
        "ipvs.out_seq.delta",
        "ipvs.out_seq.pdelta",
    ];
    let Some(lines) = tshark(&msgs, &fields) else {
        return;
    };
    assert_eq!(lines.len(), msgs.len(), "{lines:?}");
    for ((line, msg), conns) in lines.iter().zip(&msgs).zip(groups) {
        let f = |name: &str| line[fields.iter().position(|x| *x == name).unwrap()].clone();
        assert_eq!(f("ipvs.conncount"), conns.len().to_string());
        assert_eq!(f("ipvs.syncid"), msg[1].to_string());
        assert_eq!(f("ipvs.size"), msg.len().to_string());
        assert_eq!(
            f("ipvs.proto"),
            join(conns.iter().map(|c| format!("0x{:02x}", c.protocol)))
        );
        assert_eq!(f("ipvs.cport"), join(conns.iter().map(|c| c.cport)));
        assert_eq!(f("ipvs.vport"), join(conns.iter().map(|c| c.vport)));
        assert_eq!(f("ipvs.dport"), join(conns.iter().map(|c| c.dport)));
        assert_eq!(f("ipvs.caddr"), join(conns.iter().map(SyncConn::caddr)));
        assert_eq!(f("ipvs.vaddr"), join(conns.iter().map(SyncConn::vaddr)));
        assert_eq!(f("ipvs.daddr"), join(conns.iter().map(SyncConn::daddr)));
        assert_eq!(
            f("ipvs.flags"),
            join(conns.iter().map(|c| format!("0x{:04x}", c.flags)))
        );
        assert_eq!(
            f("ipvs.state"),
            join(conns.iter().map(|c| format!("0x{:04x}", c.state)))
        );
        // The dissector reads the v0 sequence data big-endian; the kernel
        // (and rvs) write it in host order, little-endian on x86: tshark
        // shows each word byte-swapped.
        let with_seq: Vec<SeqOptions> = conns.iter().filter_map(|c| c.seq).collect();
        for (name, get) in [
            (
                "in_seq.initial",
                (|s: &SeqOptions| s.in_seq.init_seq) as fn(&_) -> u32,
            ),
            ("in_seq.delta", |s| s.in_seq.delta),
            ("in_seq.pdelta", |s| s.in_seq.previous_delta),
            ("out_seq.initial", |s| s.out_seq.init_seq),
            ("out_seq.delta", |s| s.out_seq.delta),
            ("out_seq.pdelta", |s| s.out_seq.previous_delta),
        ] {
            assert_eq!(
                f(&format!("ipvs.{name}")),
                join(
                    with_seq
                        .iter()
                        .map(|s| format!("0x{:08x}", get(s).swap_bytes()))
                ),
                "{name}"
            );
        }
    }
}
