//! Restarts that keep connections (`rvsd --conn-state FILE`).
//!
//! Kernel IPVS never restarts; rvsd does (an upgrade, `systemctl restart`),
//! and its connection table lives in its memory. So a clean stop (SIGTERM,
//! SIGINT) hands the table to the next rvsd:
//!
//! 1. while the data plane still forwards, rvsd installs the nftables table
//!    `netdev rvs_handover` ([`rvs_io::nft::HANDOVER_TABLE`]) dropping what
//!    it claims at the served interfaces' ingress (the XDP classifier runs
//!    before that hook, so nothing changes while rvsd runs). Once the data
//!    plane stops, the kernel would otherwise answer an established
//!    connection's next packet with a reset (a DR director has the VIP on
//!    `lo`); dropped, the packet is retransmitted by the client's TCP and
//!    reaches the next rvsd;
//! 2. it writes every connection and persistence template to FILE as IPVS
//!    sync messages (version 1, the format of [`rvs_wire::ipvs_sync`])
//!    after a header (magic, the time written), then stops the data plane;
//! 3. the next rvsd, after loading its rules, applies the saved entries as
//!    a sync backup applies them (bound to its real servers, state and the
//!    state's timeout from the entry), removes FILE, starts its data plane
//!    and then deletes the hand-over table.
//!
//! The drop rules stop dropping [`HANDOVER_WINDOW`] after they were
//! installed (an `nft` time match), because a SIGTERM may be a stop, not a
//! restart: a stopped rvsd's services are then answered by the kernel
//! again, as without rvs.
//!
//! What is lost: packets in the gap are dropped, not forwarded (TCP
//! retransmits them; UDP datagrams in it are lost); the statistics start
//! from zero; a FILE older than [`MAX_AGE`] is ignored. After SIGKILL
//! nothing is handed over: the classifier is detached by the kernel with
//! the process, and connections whose packets arrive before the next rvsd
//! runs are reset by the kernel (see the README).

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rvs_core::engine::Engine;
use rvs_io::nft::{self, HANDOVER_TABLE, NftError, NftInterface};
use rvs_wire::ipvs_sync::{Message, SyncBuffer, SyncConn, Version};

use crate::classes::{ClassSet, class_set};

/// The file's first bytes.
const MAGIC: &[u8; 8] = b"RVSCONN1";

/// Saved connections older than this are not taken back.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// Largest message in the file.
const MESSAGE_MAX: usize = 65000;

/// Encode `entries` as the file's bytes, written at `unix_secs`.
pub fn encode(entries: &[SyncConn<'_>], unix_secs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 40);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&unix_secs.to_be_bytes());
    let mut sb = SyncBuffer::new(vec![0u8; MESSAGE_MAX], Version::V1, 0, MESSAGE_MAX)
        .expect("a buffer of MESSAGE_MAX bytes");
    let flush = |sb: &mut SyncBuffer<Vec<u8>>, out: &mut Vec<u8>| {
        if !sb.is_empty() {
            let b = sb.as_bytes();
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
            sb.reset();
        }
    };
    for e in entries {
        match sb.try_push(e) {
            Ok(true) => {}
            Ok(false) => {
                flush(&mut sb, &mut out);
                let _ = sb.try_push(e);
            }
            Err(_) => {}
        }
    }
    flush(&mut sb, &mut out);
    out
}

/// Why a saved table was not taken back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Not a file this code wrote.
    #[error("not a connection-state file ({0})")]
    Format(&'static str),
    /// Written longer ago than [`MAX_AGE`] (its age in seconds).
    #[error("written {0} s ago, more than {max} s: not taken back", max = MAX_AGE.as_secs())]
    TooOld(u64),
}

/// Why [`save`] could not write the table of connections.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub struct SaveError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// Apply the saved table `bytes` to `engine` (`now_unix`: the wall clock,
/// for the age check; `now`: the engine's clock). Returns (connections
/// restored, entries refused).
pub fn restore(
    engine: &mut Engine,
    bytes: &[u8],
    now_unix: u64,
    now: rvs_core::Instant,
) -> Result<(usize, usize), RestoreError> {
    restore_with(bytes, now_unix, |c| engine.restore_conn(c, now))
}

/// [`restore`] through `apply` (each entry to its engine replica).
pub fn restore_with(
    bytes: &[u8],
    now_unix: u64,
    mut apply: impl FnMut(&rvs_wire::ipvs_sync::SyncConn<'_>) -> rvs_core::engine::SyncApplied,
) -> Result<(usize, usize), RestoreError> {
    restore_inner(bytes, now_unix, &mut apply)
}

fn restore_inner(
    bytes: &[u8],
    now_unix: u64,
    apply: &mut dyn FnMut(&rvs_wire::ipvs_sync::SyncConn<'_>) -> rvs_core::engine::SyncApplied,
) -> Result<(usize, usize), RestoreError> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(RestoreError::Format("no magic"))?;
    let (when, mut rest) = rest
        .split_first_chunk::<8>()
        .ok_or(RestoreError::Format("truncated header"))?;
    let age = now_unix.saturating_sub(u64::from_be_bytes(*when));
    if age > MAX_AGE.as_secs() {
        return Err(RestoreError::TooOld(age));
    }
    let (mut ok, mut refused) = (0, 0);
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(RestoreError::Format("truncated length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(RestoreError::Format("truncated message"));
        }
        let (msg, tail) = tail.split_at(len);
        rest = tail;
        let m = Message::parse(msg).map_err(|_| RestoreError::Format("bad message"))?;
        for c in m.conns() {
            match c {
                Ok(c) => match apply(&c) {
                    rvs_core::engine::SyncApplied::Refused(_) => refused += 1,
                    _ => ok += 1,
                },
                Err(_) => refused += 1,
            }
        }
    }
    Ok((ok, refused))
}

/// The served interfaces as the nftables rules name them.
fn nft_interfaces(names: &[String]) -> Vec<NftInterface> {
    names
        .iter()
        .filter_map(|n| {
            Some(NftInterface {
                name: n.clone(),
                ifindex: rvs_io::xdp::ifindex(n).ok()?,
            })
        })
        .collect()
}

/// How long the hand-over table drops: a restart takes about a second; a
/// stop (systemd cannot tell rvsd which it is) leaves the table inert
/// after this, so a stopped rvsd does not blackhole its services for long.
pub const HANDOVER_WINDOW: Duration = Duration::from_secs(60);

/// The hand-over table's text: [`nft::ruleset_in`] with, first in each
/// chain, a rule that accepts everything from `until_unix` (seconds) on.
pub fn drop_table_text(
    ifaces: &[NftInterface],
    claims: &nft::Claims<'_>,
    until_unix: u64,
) -> Result<String, NftError> {
    let text = nft::ruleset_in(HANDOVER_TABLE, ifaces, claims)?;
    Ok(text.replace(
        "policy accept;\n",
        &format!("policy accept;\n\t\tmeta time >= {until_unix} accept\n"),
    ))
}

/// Step 1: the hand-over table dropping what `set` claims on `ifaces`
/// for [`HANDOVER_WINDOW`].
pub fn install_drop_table(ifaces: &[String], set: &ClassSet) -> Result<(), NftError> {
    let fwmark = crate::classes::fwmark_matches(&set.fwmark);
    let claims = nft::Claims {
        services: &set.services,
        nat: &set.nat,
        fwmark: &fwmark,
        // The drop table of the restart's gap drops them all.
        local: &[],
    };
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + HANDOVER_WINDOW.as_secs();
    let text = drop_table_text(&nft_interfaces(ifaces), &claims, until)?;
    nft::apply(&text)
}

/// Delete the hand-over table (nothing if there is none).
pub fn remove_drop_table() -> Result<(), NftError> {
    nft::apply(&nft::delete_ruleset_in(HANDOVER_TABLE))
}

/// Whether the hand-over table exists.
pub fn drop_table_present() -> bool {
    std::process::Command::new("nft")
        .args(["list", "table", "netdev", HANDOVER_TABLE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Steps 1 and 2 under the state lock's snapshot: the drop table, then
/// the file (a temporary file, fsync, rename). Returns the entries saved.
pub fn save(
    engines: &crate::engines::Engines,
    ifaces: &[String],
    path: &Path,
) -> Result<usize, SaveError> {
    if let Err(e) = install_drop_table(ifaces, &class_set(&engines.first())) {
        // Without it the gap may reset connections; the table is still
        // worth saving (a quick restart loses few packets).
        tracing::warn!(
            "restart hand-over: cannot install the drop table ({e}); connections \
             that send while no rvsd runs may be reset"
        );
    }
    let mut entries = Vec::new();
    engines.each_unchanged(|e| e.sync_snapshot(&mut entries));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let conns: Vec<_> = entries
        .iter()
        .map(rvs_core::engine::SyncEntry::entry)
        .collect();
    let bytes = encode(&conns, now);
    write_atomically(path, &bytes).map_err(|source| SaveError {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(entries.len())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Step 3's first half: take the connections back from `path` if it is
/// there; the file is removed whatever it held.
pub fn load(engines: &crate::engines::Engines, path: &Path, now: rvs_core::Instant) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!("restart hand-over: cannot read {}: {e}", path.display());
            return;
        }
    };
    let _ = std::fs::remove_file(path);
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let apply = |c: &rvs_wire::ipvs_sync::SyncConn<'_>| {
        engines
            .lock(engines.owner_of(c.caddr()))
            .restore_conn(c, now)
    };
    match restore_with(&bytes, now_unix, apply) {
        Ok((n, 0)) => tracing::info!(
            "restart hand-over: {n} connection(s) taken back from {}",
            path.display()
        ),
        Ok((n, refused)) => tracing::warn!(
            "restart hand-over: {n} connection(s) taken back from {}, {refused} refused \
             (protocol or state out of range, or the table full)",
            path.display()
        ),
        Err(e) => tracing::warn!("restart hand-over: {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_wire::ipvs_sync::SyncAddrs;

    fn entry(cport: u16) -> SyncConn<'static> {
        SyncConn {
            protocol: 6,
            flags: 3,
            state: 1,
            cport,
            vport: 80,
            dport: 80,
            addrs: SyncAddrs::V4 {
                caddr: [10, 0, 0, 1].into(),
                vaddr: [10, 0, 0, 100].into(),
                daddr: [10, 0, 0, 11].into(),
            },
            fwmark: 0,
            timeout: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        }
    }

    #[test]
    fn round_trip_age_and_garbage() {
        let entries: Vec<_> = (0..5000).map(|i| entry(10000 + i)).collect();
        let bytes = encode(&entries, 1000);
        let mut e = Engine::new(Default::default());
        let now = rvs_core::Instant::from_secs(5);
        // No service here: unbound, but kept.
        assert_eq!(restore(&mut e, &bytes, 1010, now), Ok((5000, 0)));
        assert_eq!(e.conns().len(), 5000);
        assert!(
            e.conns().iter().all(|(_, c)| c.flags & 0x20 == 0),
            "not SYNC"
        );
        let mut e = Engine::new(Default::default());
        assert_eq!(
            restore(&mut e, &bytes, 1000 + 601, now),
            Err(RestoreError::TooOld(601))
        );
        assert_eq!(
            RestoreError::TooOld(601).to_string(),
            "written 601 s ago, more than 600 s: not taken back"
        );
        assert_eq!(
            RestoreError::Format("no magic").to_string(),
            "not a connection-state file (no magic)"
        );
        assert!(restore(&mut e, b"junk", 0, now).is_err());
        assert!(restore(&mut e, &bytes[..bytes.len() - 3], 1000, now).is_err());
    }

    /// A SIP template (`--pe sip`) is handed over with its Call-ID.
    #[test]
    fn sip_templates_keep_their_call_id() {
        let mut tpl = entry(0);
        tpl.protocol = 17;
        tpl.flags = 0x1000 | 3;
        tpl.pe_data = Some(b"a84b4c76e66710@pc33.example.com");
        tpl.pe_name = Some(b"sip");
        let bytes = encode(&[tpl, entry(10000)], 1000);
        let mut e = Engine::new(Default::default());
        let now = rvs_core::Instant::from_secs(5);
        assert_eq!(restore(&mut e, &bytes, 1010, now), Ok((2, 0)));
        let (id, c) = e
            .conns()
            .iter()
            .find(|(_, c)| c.is_template())
            .expect("the template");
        assert_eq!(
            e.conns().pe_data(id),
            Some(&b"a84b4c76e66710@pc33.example.com"[..])
        );
        assert_eq!(e.conns().shown_cport(id, c), 0);
    }

    #[test]
    fn drop_table_expires() {
        let svc = [rvs_io::xdp::ClassKey {
            proto: 6,
            addr: "10.0.0.100".parse().unwrap(),
            port: 80,
        }];
        let claims = nft::Claims {
            services: &svc,
            nat: &[],
            fwmark: &[],
            local: &[],
        };
        let ifs = [NftInterface {
            name: "eth0".into(),
            ifindex: 2,
        }];
        let t = drop_table_text(&ifs, &claims, 1_800_000_000).unwrap();
        assert!(t.contains("table netdev rvs_handover {"), "{t}");
        let accept = t
            .find("meta time >= 1800000000 accept")
            .expect("deadline rule");
        let drop = t.find("drop").expect("a drop rule");
        assert!(accept < drop, "{t}");
    }
}
