//! Tests of the connection table and the state machines: the fixtures here,
//! the tests by topic in the submodules.

use core::net::IpAddr;
use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::state::{
    self, PROTO_SCTP, PROTO_TCP, PROTO_UDP, SctpState, TPL_ASSURED, TcpState, sctp_chunk, tcp_flags,
};
use super::*;
use crate::dest::DestId;
use crate::time::Instant;

const KEY: [u64; 4] = [
    0x0123_4567_89ab_cdef,
    0xfedc_ba98_7654_3210,
    0x0f1e_2d3c_4b5a_6978,
    0x8796_a5b4_c3d2_e1f0,
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn secs(n: u64) -> Instant {
    Instant::from_secs(n)
}

/// A conn `c → v` scheduled to `d`, expiring `timeout_ms` after `now`.
fn mk(
    proto: u8,
    c: (&str, u16),
    v: (&str, u16),
    d: (&str, u16),
    conn_flags: u32,
    timeout_ms: u32,
    now: Instant,
) -> Conn {
    Conn {
        proto,
        caddr: ip(c.0),
        cport: c.1,
        vaddr: ip(v.0),
        vport: v.1,
        daddr: ip(d.0),
        dport: d.1,
        fwmark: 0,
        flags: conn_flags,
        state: 0,
        timeout_ms,
        expires: Instant::from_millis(now.as_millis() + u64::from(timeout_ms)),
        owner: 7,
        dest: DestId(1),
        control: None,
        n_control: 0,
        in_pkts: 0,
        old_state: 0,
    }
}

/// TCP conn 1.1.1.1:`cport` → 10.0.0.1:80 → 192.168.1.10:80.
fn tcp(cport: u16, conn_flags: u32, timeout_ms: u32, now: Instant) -> Conn {
    mk(
        PROTO_TCP,
        ("1.1.1.1", cport),
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        conn_flags,
        timeout_ms,
        now,
    )
}

/// UDP conn 1.1.1.1:`cport` → 10.0.0.1:53 → 192.168.1.10:53.
fn udp(cport: u16, conn_flags: u32, timeout_ms: u32, now: Instant) -> Conn {
    mk(
        PROTO_UDP,
        ("1.1.1.1", cport),
        ("10.0.0.1", 53),
        ("192.168.1.10", 53),
        conn_flags,
        timeout_ms,
        now,
    )
}

fn dr_flags() -> u32 {
    flags::DROUTE | flags::NOOUTPUT | flags::INACTIVE
}

fn nat_flags() -> u32 {
    flags::MASQ | flags::INACTIVE
}

/// A template `<proto, snet, 0, vaddr, vport>` → `d`.
fn tpl(
    proto: u8,
    snet: &str,
    v: (&str, u16),
    d: (&str, u16),
    timeout_ms: u32,
    now: Instant,
) -> Conn {
    mk(
        proto,
        (snet, 0),
        v,
        d,
        flags::TEMPLATE | flags::DROUTE | flags::NOOUTPUT | flags::INACTIVE,
        timeout_ms,
        now,
    )
}

fn table(tick_ms: u64, slots: usize, max: usize) -> ConnTable {
    ConnTable::new(
        ConnTableConfig {
            max_entries: max,
            wheel_tick_ms: tick_ms,
            wheel_slots: slots,
            ..ConnTableConfig::default()
        },
        KEY,
    )
}

mod model;
mod states;
mod table;
mod templates;
