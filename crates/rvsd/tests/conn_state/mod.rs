// SPDX-License-Identifier: GPL-2.0-or-later
//! A `--conn-state` file of many connections, for the tests that start
//! rvsd with a large table (not in `common`, which rvs-bench's tests share
//! and which cannot name rvsd).
/// Write a `--conn-state` file of `n` established TCP connections (DR,
/// 900 s) from clients 100.64.x.y to VIP 10.0.0.100:`port`, real server
/// 10.0.0.11:`port`: a table of any size for rvsd to start with.
pub fn conn_state_file(path: &std::path::Path, n: u32, port: u16) {
    use rvs_wire::ipvs_sync::{SyncAddrs, SyncConn};
    let entries: Vec<SyncConn<'static>> = (0..n)
        .map(|i| SyncConn {
            protocol: 6,
            flags: 3,
            state: 1,
            cport: 1024 + (i % 60000) as u16,
            vport: port,
            dport: port,
            addrs: SyncAddrs::V4 {
                caddr: (0x6440_0000 + i / 60000).into(),
                vaddr: [10, 0, 0, 100].into(),
                daddr: [10, 0, 0, 11].into(),
            },
            fwmark: 0,
            timeout: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    std::fs::write(path, rvsd::handover::encode(&entries, now)).expect("state file");
}
