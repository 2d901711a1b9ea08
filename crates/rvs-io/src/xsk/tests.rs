//! Unit tests of the AF_XDP socket module (no socket needed).

use super::*;

#[test]
fn config_validation() {
    assert!(UmemConfig::default().validate().is_ok());
    let bad = |c: UmemConfig| c.validate().is_err();
    let d = UmemConfig::default();
    assert!(bad(UmemConfig {
        frame_size: 3000,
        ..d
    }));
    assert!(bad(UmemConfig { frames: 8, ..d }));
    assert!(bad(UmemConfig { headroom: 64, ..d }));
    assert!(bad(UmemConfig { headroom: 512, ..d }));
    assert!(
        UmemConfig {
            frame_size: 4096,
            headroom: 1024,
            ..d
        }
        .validate()
        .is_ok()
    );
    assert_eq!(d.max_rx_frame_len(), 2048 - 256 - 128);
}

#[test]
fn framebuf_moves_within_its_buffer() {
    let mut mem = [0u8; 64];
    mem[20..24].copy_from_slice(b"abcd");
    let mut f = FrameBuf::new(&mut mem, 20, 4).unwrap();
    assert_eq!(f.data(), b"abcd");
    assert_eq!(f.tailroom(), 40);
    f.push_front(4).unwrap().copy_from_slice(b"HDR:");
    assert_eq!(f.data(), b"HDR:abcd");
    assert_eq!(f.start(), 16);
    assert!(f.push_front(17).is_none());
    assert!(f.pull_front(4));
    assert_eq!(f.data(), b"abcd");
    assert!(!f.pull_front(5));
    assert!(!f.set_range(60, 5));
    assert!(f.set_range(0, 64));
    assert_eq!(f.tx_same(), Verdict::TxSame { start: 0, len: 64 });
    assert!(FrameBuf::new(&mut mem, 60, 5).is_none());
    assert!(FrameBuf::new(&mut mem, usize::MAX, 2).is_none());
}

#[test]
fn bad_interface_names() {
    for name in ["", "a/b", "nul\0x", "0123456789abcdef"] {
        assert!(matches!(
            XskSocket::open(name, 0, &UmemConfig::default()),
            Err(XskError::IfName(_))
        ));
    }
}
