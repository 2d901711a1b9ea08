//! A fuzz harness on stable Rust for the IPVS sync decoder
//! (`rvs_wire::ipvs_sync::Message`), the parser that faces the sync
//! multicast group: mutated and random datagrams must never panic, the
//! entry walk must stay within `nr_conns` items, and every outcome must
//! equal that of a model written here as a step-by-step transcription of the
//! control flow of the kernel's `ip_vs_process_message`,
//! `ip_vs_proc_sync_conn` and `ip_vs_process_message_v0` (offsets and the
//! kernel's return codes instead of pointers): a differential check of the
//! iterator's bookkeeping.
//!
//! Deterministic (a seeded xorshift, as `crates/rvs-core/tests/fuzz.rs`): a
//! failure reproduces from `RVS_FUZZ_SEED` and its iteration. The corpus:
//! messages built by `SyncBuffer` (v0 and v1, IPv4 and IPv6, sequence data,
//! PE data and names, several entries with padding), then byte flips,
//! truncations, extensions, splices, option-type and length pokes, with the
//! header's size fixed up most of the time so that the entries are reached,
//! and wholly random bytes.
//!
//! `cargo test -p rvs-wire --test fuzz_sync` runs `RVS_FUZZ_ITERS` datagrams
//! (default 2 000 000: about 6 s in a debug build on this 2-core machine; the
//! README gives the figures of a 10^8 release run).

use core::net::{Ipv4Addr, Ipv6Addr};

use rvs_wire::ipvs_sync::{
    Message, SeqInfo, SeqOptions, SyncAddrs, SyncBuffer, SyncConn, SyncError, Version, conn_flags,
};

use rvs_testsupport::FuzzRng as Rng;

fn corpus() -> Vec<Vec<u8>> {
    let v4 = SyncAddrs::V4 {
        caddr: Ipv4Addr::new(203, 0, 113, 7),
        vaddr: Ipv4Addr::new(192, 0, 2, 10),
        daddr: Ipv4Addr::new(10, 0, 0, 5),
    };
    let v6 = SyncAddrs::V6 {
        caddr: "2001:db8:2::5".parse::<Ipv6Addr>().unwrap(),
        vaddr: "2001:db8::64".parse().unwrap(),
        daddr: "2001:db8:1::11".parse().unwrap(),
    };
    let seq = SeqOptions {
        in_seq: SeqInfo {
            init_seq: 0x0102_0304,
            delta: 7,
            previous_delta: 3,
        },
        out_seq: SeqInfo {
            init_seq: 0xa0b0_c0d0,
            delta: 0xffff_fff9,
            previous_delta: 0,
        },
    };
    let base = SyncConn {
        protocol: 6,
        flags: conn_flags::DROUTE,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 8080,
        addrs: v4,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    let conns = [
        base,
        SyncConn {
            flags: conn_flags::MASQ | conn_flags::SEQ_MASK,
            seq: Some(seq),
            ..base
        },
        SyncConn { addrs: v6, ..base },
        SyncConn {
            protocol: 17,
            state: 0,
            addrs: v6,
            pe_data: Some(b"a8b3c1@example.org"),
            pe_name: Some(b"sip"),
            ..base
        },
        SyncConn {
            protocol: 0,
            flags: conn_flags::TEMPLATE | conn_flags::TUNNEL,
            fwmark: 7,
            cport: 0,
            ..base
        },
        SyncConn {
            protocol: 132,
            state: 8,
            flags: conn_flags::INACTIVE,
            addrs: v6,
            seq: Some(seq),
            pe_data: Some(b"x"),
            pe_name: Some(b"sip"),
            ..base
        },
    ];
    let mut out = Vec::new();
    for version in [Version::V1, Version::V0] {
        for c in &conns {
            let mut sb = SyncBuffer::new(vec![0u8; 2048], version, 5, 1472).unwrap();
            if sb.try_push(c).is_ok_and(|added| added) {
                out.push(sb.as_bytes().to_vec());
            }
        }
        let mut sb = SyncBuffer::new(vec![0u8; 2048], version, 0, 1472).unwrap();
        for c in conns.iter().cycle().take(12) {
            let _ = sb.try_push(c);
        }
        out.push(sb.as_bytes().to_vec());
    }
    out
}

fn fix_size(d: &mut [u8]) {
    if d.len() >= 4 && d.len() <= 65535 {
        let n = d.len() as u16;
        d[2..4].copy_from_slice(&n.to_be_bytes());
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(16) == 0 {
        let n = rng.below(600);
        let mut d: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 {
            fix_size(&mut d);
        }
        return d;
    }
    let mut d = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 | 1 => {
                // Flip bits of one byte (entry bytes more often than not).
                if !d.is_empty() {
                    let i = rng.below(d.len());
                    d[i] ^= 1 << rng.below(8);
                }
            }
            2 => {
                // A byte set to a boundary value.
                if !d.is_empty() {
                    let i = rng.below(d.len());
                    d[i] =
                        [0, 1, 2, 3, 0x40, 0x41, 0x43, 0x7f, 0x80, 0xff, 24, 16, 17][rng.below(13)];
                }
            }
            3 => {
                let n = rng.below(d.len() + 1);
                d.truncate(n);
            }
            4 => {
                for _ in 0..rng.below(40) {
                    d.push(rng.next() as u8);
                }
            }
            5 => {
                // Splice a piece of another corpus message in.
                let o = &corpus[rng.below(corpus.len())];
                if !o.is_empty() && !d.is_empty() {
                    let (a, n) = (rng.below(o.len()), 1 + rng.below(48));
                    let piece = &o[a..(a + n).min(o.len())];
                    let at = rng.below(d.len());
                    d.splice(at..at, piece.iter().copied());
                }
            }
            6 => {
                // The count or an entry's ver_size.
                if d.len() > 4 {
                    let i = if rng.below(2) == 0 { 4 } else { 0 };
                    d[i] = rng.next() as u8;
                }
                if d.len() > 12 {
                    let v = (rng.next() as u16) & if rng.below(2) == 0 { 0x0fff } else { 0xffff };
                    d[10..12].copy_from_slice(&v.to_be_bytes());
                }
            }
            _ => {
                if d.len() > 8 {
                    let i = 8 + rng.below(d.len() - 8);
                    d.remove(i);
                }
            }
        }
    }
    if rng.below(8) != 0 {
        fix_size(&mut d);
    }
    d
}

/// The kernel's return code for each outcome (0: entry accepted); the codes
/// the kernel does not number are given negative ones of our own.
fn code(r: &Result<SyncConn<'_>, SyncError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(SyncError::EntryTruncated) => -1,
        Err(SyncError::EntryOverrun) => -2,
        Err(SyncError::EntryVersion(_)) => -3,
        Err(SyncError::SeqTruncated) => -4,
        Err(SyncError::BadType(_)) => -10,
        Err(SyncError::EntryTooShort) => -20,
        Err(SyncError::OptionTruncated) => -30,
        Err(SyncError::OptionLength) => -40,
        Err(SyncError::SeqOptionLength(_)) | Err(SyncError::DuplicateOption(1)) => -50,
        Err(SyncError::DuplicateOption(2)) => -60,
        Err(SyncError::DuplicateOption(_)) | Err(SyncError::PeNameTooLong(_)) => -70,
        Err(SyncError::UnknownOption(_)) => 20,
        Err(SyncError::PeDataWithoutName) => 50,
        Err(e) => panic!("unexpected entry error {e:?}"),
    }
}

fn be16(d: &[u8], i: usize) -> usize {
    usize::from(u16::from_be_bytes([d[i], d[i + 1]]))
}

/// `ip_vs_proc_sync_conn` up to the checks that need no configuration:
/// entry at `p`, ending at `end`.
fn model_entry(d: &[u8], p: usize, end: usize) -> i32 {
    let mut q = p;
    if d[q] & 1 != 0 {
        q += 72;
    } else if d[q] == 0 {
        q += 36;
    } else {
        return -10;
    }
    if q > end {
        return -20;
    }
    let (mut seen, mut pe_data, mut pe_name) = (0u32, false, false);
    while q < end {
        if q + 2 > end {
            return -30;
        }
        let (ptype, plen) = (d[q], usize::from(d[q + 1]));
        q += 2;
        if plen == 0 || q + plen > end {
            return -40;
        }
        match ptype & !0x40 {
            1 => {
                if plen != 24 || seen & 1 != 0 {
                    return -50;
                }
                seen |= 1;
            }
            2 => {
                if plen > 255 || seen & 2 != 0 {
                    return -60;
                }
                seen |= 2;
                pe_data = true;
            }
            3 => {
                if plen > 16 || seen & 4 != 0 {
                    return -70;
                }
                seen |= 4;
                pe_name = true;
            }
            _ => {
                if ptype & 0x40 == 0 {
                    return 20;
                }
            }
        }
        q += plen;
    }
    if pe_data && !pe_name {
        return 50;
    }
    0
}

/// `ip_vs_process_message`: `None` if the header is refused, else the
/// outcome of each entry visited.
fn model(d: &[u8]) -> Option<Vec<i32>> {
    let len = d.len();
    if len < 4 || be16(d, 2) != len {
        return None;
    }
    let mut out = Vec::new();
    if len >= 8 && d[5] == 1 && d[0] == 0 && d[6] == 0 && d[7] == 0 {
        let mut msg_end = 8;
        for _ in 0..d[4] {
            let p = msg_end;
            if p + 36 > len {
                out.push(-1);
                break;
            }
            let vs = be16(d, p + 2);
            let size = vs & 0x0fff;
            msg_end = p + size;
            if msg_end > len {
                out.push(-2);
                break;
            }
            if vs >> 12 != 0 {
                out.push(-3);
                break;
            }
            let r = model_entry(d, p, msg_end);
            out.push(r);
            if r < 0 {
                break;
            }
            msg_end = p + ((size + 3) & !3);
        }
    } else {
        let mut p = 4;
        for _ in 0..d[0] {
            if p + 24 > len {
                out.push(-1);
                break;
            }
            let flags = be16(d, p + 20);
            if flags & 0x0600 != 0 {
                p += 48;
                if p > len {
                    out.push(-4);
                    break;
                }
            } else {
                p += 24;
            }
            out.push(0);
        }
    }
    Some(out)
}

#[test]
fn sync_decoder_never_panics_and_walks_as_the_kernel() {
    let (iters, seed) = rvs_testsupport::fuzz_env(2_000_000, 0x5eed_5a1c_0000_0001);
    let corpus = corpus();
    let mut rng = Rng(seed);
    let started = std::time::Instant::now();
    let (mut parsed, mut accepted, mut skipped, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..iters {
        let d = mutate(&mut rng, &corpus);
        let expected = model(&d);
        let got = Message::parse(&d).ok().map(|m| {
            let items: Vec<_> = m.conns().collect();
            assert!(
                items.len() <= usize::from(m.nr_conns()),
                "seed {seed} iteration {i}"
            );
            for c in items.iter().flatten() {
                // The v1 timeout/fwmark and the addresses' family come from
                // the entry's own bytes; v0 has neither.
                if m.version() == Version::V0 {
                    assert_eq!((c.fwmark, c.timeout), (0, 0));
                    assert!(!c.is_ipv6());
                }
            }
            items.iter().map(code).collect::<Vec<_>>()
        });
        assert_eq!(got, expected, "seed {seed} iteration {i}: {d:02x?}");
        if let Some(codes) = got {
            parsed += 1;
            for c in codes {
                match c {
                    0 => accepted += 1,
                    c if c > 0 => skipped += 1,
                    _ => dropped += 1,
                }
            }
        }
    }
    println!(
        "{iters} datagrams in {:.1} s: {parsed} headers accepted, {accepted} entries accepted, \
         {skipped} skipped, {dropped} rest-of-message drops, 0 panics",
        started.elapsed().as_secs_f64()
    );
    assert!(accepted > iters / 4 && skipped > 0 && dropped > 0);
}
