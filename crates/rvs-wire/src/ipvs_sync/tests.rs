//! Unit tests of the sync message codec (decode and encode).

use super::*;

fn conn4() -> SyncConn<'static> {
    SyncConn {
        protocol: 6,
        flags: conn_flags::DROUTE,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 8080,
        addrs: SyncAddrs::V4 {
            caddr: Ipv4Addr::new(203, 0, 113, 7),
            vaddr: Ipv4Addr::new(192, 0, 2, 10),
            daddr: Ipv4Addr::new(10, 0, 0, 5),
        },
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

#[test]
fn header_checks() {
    assert_eq!(Message::parse(&[0, 0, 0]), Err(SyncError::TooShort));
    assert_eq!(
        Message::parse(&[0, 0, 0, 5]),
        Err(SyncError::SizeMismatch {
            declared: 5,
            actual: 4
        })
    );
    let m = Message::parse(&[0, 9, 0, 4]).unwrap();
    assert_eq!((m.version(), m.syncid(), m.nr_conns()), (Version::V0, 9, 0));
    let m = Message::parse(&[0, 9, 0, 8, 3, 1, 0, 0]).unwrap();
    assert_eq!((m.version(), m.nr_conns()), (Version::V1, 3));
    // A nonzero spare: read as v0 with reserved (0) entries.
    let m = Message::parse(&[0, 9, 0, 8, 3, 1, 0, 1]).unwrap();
    assert_eq!((m.version(), m.conns().count()), (Version::V0, 0));
    assert!(m.accepted_by(0) && m.accepted_by(9) && !m.accepted_by(8));
}

#[test]
fn v1_padding_and_capacity() {
    let mut sb = SyncBuffer::new([0u8; 200], Version::V1, 1, 8 + 40 + 36).unwrap();
    let with_name = SyncConn {
        pe_data: Some(b"x"),
        pe_name: Some(b"sip"),
        ..conn4()
    };
    // 36 + 3 + 5 = 44 bytes: over max_len alone, so it gets a message
    // of its own sized to it.
    assert_eq!(with_name.wire_len(Version::V1), Ok(44));
    assert!(sb.try_push(&with_name).unwrap());
    assert_eq!(sb.len(), 52);
    assert!(!sb.try_push(&conn4()).unwrap());
    sb.reset();
    assert!(sb.try_push(&conn4()).unwrap());
    let odd = SyncConn {
        pe_data: Some(b"ab"),
        pe_name: Some(b"sip"),
        ..conn4()
    };
    sb = SyncBuffer::new([0u8; 200], Version::V1, 1, 200).unwrap();
    assert!(sb.try_push(&odd).unwrap()); // 8 + 45
    assert!(sb.try_push(&conn4()).unwrap()); // 3 bytes of padding
    assert_eq!(sb.len(), 8 + 45 + 3 + 36);
    assert_eq!(&sb.as_bytes()[53..56], &[0, 0, 0]);
    let m = Message::parse(sb.as_bytes()).unwrap();
    let got: Vec<_> = m.conns().collect();
    assert_eq!(got, vec![Ok(odd), Ok(conn4())]);
}

#[test]
fn v0_refuses_ipv6_and_cuts_flags() {
    let mut sb = SyncBuffer::new([0u8; 100], Version::V0, 0, 100).unwrap();
    let v6 = SyncConn {
        addrs: SyncAddrs::V6 {
            caddr: Ipv6Addr::LOCALHOST,
            vaddr: Ipv6Addr::LOCALHOST,
            daddr: Ipv6Addr::LOCALHOST,
        },
        ..conn4()
    };
    assert_eq!(sb.try_push(&v6), Err(Error::Unsupported));
    let c = SyncConn {
        flags: conn_flags::NFCT | conn_flags::HASHED | conn_flags::INACTIVE,
        ..conn4()
    };
    assert!(sb.try_push(&c).unwrap());
    let m = Message::parse(sb.as_bytes()).unwrap();
    let got = m.conns().next().unwrap().unwrap();
    assert_eq!(got.flags, conn_flags::INACTIVE);
    assert_eq!((got.fwmark, got.timeout), (0, 0));
    assert_eq!(got.backup_flags(Version::V0), 0x120);
}

#[test]
fn unknown_options() {
    let mut sb = SyncBuffer::new([0u8; 100], Version::V1, 0, 100).unwrap();
    assert!(sb.try_push(&conn4()).unwrap());
    assert!(sb.try_push(&conn4()).unwrap());
    let b = sb.as_bytes().to_vec();
    // Grow the first entry by a 4-byte option of type 9.
    let mut msg = b[..8].to_vec();
    let mut e1 = b[8..44].to_vec();
    e1.extend_from_slice(&[9, 2, 0xaa, 0xbb]);
    e1[3] = 40;
    msg.extend_from_slice(&e1);
    msg.extend_from_slice(&b[44..]);
    let n = msg.len() as u16;
    msg[2..4].copy_from_slice(&n.to_be_bytes());
    let m = Message::parse(&msg).unwrap();
    let got: Vec<_> = m.conns().collect();
    assert_eq!(got, vec![Err(SyncError::UnknownOption(9)), Ok(conn4())]);
    // Optional (0x49): skipped, the entry is accepted.
    msg[8 + 36] = 0x49;
    let m = Message::parse(&msg).unwrap();
    assert_eq!(m.conns().filter(|r| r.is_ok()).count(), 2);
    // A zero-length option drops the rest.
    msg[8 + 37] = 0;
    let m = Message::parse(&msg).unwrap();
    let got: Vec<_> = m.conns().collect();
    assert_eq!(got, vec![Err(SyncError::OptionLength)]);
}

#[test]
fn maxlen_as_the_kernel() {
    assert_eq!(sync_maxlen(Role::Master, 0, 9000, false), 1472);
    assert_eq!(sync_maxlen(Role::Master, 0, 1400, true), 1452);
    assert_eq!(sync_maxlen(Role::Backup, 0, 9000, false), 8972);
    assert_eq!(sync_maxlen(Role::Backup, 0, 576, false), 1472);
    assert_eq!(sync_maxlen(Role::Backup, 100, 1500, false), 1024);
    assert_eq!(sync_maxlen(Role::Master, 100, 1500, false), 100);
    assert_eq!(sync_maxlen(Role::Master, 65535, 1500, false), 65507);
}
