//! `--fwmark-source host`: follow the host's MARK rules (the I/O around
//! the pure [`crate::hostmarks`]).
//!
//! Every [`POLL`] (1 s) a thread reads the host's firewall with its own
//! commands, in rvsd's network namespace:
//!
//! * `nft -j list ruleset` (native nftables chains on the prerouting hook);
//! * `iptables-nft-save -t mangle` and `ip6tables-nft-save -t mangle` when
//!   nftables holds a `mangle` table (or `nft` is not installed);
//! * `iptables-legacy-save -t mangle` / `ip6tables-legacy-save -t mangle`
//!   when `/proc/net/ip_tables_names` / `ip6_tables_names` lists `mangle`
//!   (so that the legacy modules are never loaded just by looking).
//!
//! A missing command counts as an empty firewall. When the translation
//! differs from the last one, the rules replace the mirrored ones in the
//! engine (a change is in the data plane's filters a moment later), and
//! every rule left to the kernel is logged once with its text and reason.
//! So a change to the host's rules takes effect within about 1 s (the poll)
//! plus the data plane's resync.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rvs_proto::Reply;
use rvs_proto::fwmark::{HostMarks, IgnoredRule};

use crate::hostmarks::{self, Chain, Family, Translation};
use crate::server::Shared;

/// How often the host's firewall is read.
pub const POLL: Duration = Duration::from_secs(1);

/// What `rvs fwmark list` shows of the host's rules (`None`: not followed).
static LISTING: Mutex<Option<HostMarks>> = Mutex::new(None);

/// The reply to `Request::FwmarkHost`.
pub fn listing() -> Reply {
    let l = LISTING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Reply::FwmarkHost(l.unwrap_or_else(|| HostMarks {
        source: "rvs".into(),
        ..HostMarks::default()
    }))
}

/// Standard output of a command that ran and succeeded; `Err(true)` when
/// it ran and failed (no permission, …), `Err(false)` when it is missing.
fn run_cmd(cmd: &str, args: &[&str]) -> Result<String, bool> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|_| false)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(true)
    }
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    run_cmd(cmd, args).ok()
}

/// Whether the legacy tables of this family hold a mangle table.
fn legacy_mangle(v6: bool) -> bool {
    let path = if v6 {
        "/proc/net/ip6_tables_names"
    } else {
        "/proc/net/ip_tables_names"
    };
    std::fs::read_to_string(path).is_ok_and(|s| s.lines().any(|l| l.trim() == "mangle"))
}

/// The host's PREROUTING chains, and the problems reading them.
fn read_host() -> (Vec<Chain>, Vec<String>) {
    let mut chains = Vec::new();
    let mut errors = Vec::new();
    let nft = run_cmd("nft", &["-j", "list", "ruleset"]);
    // iptables-nft's tables are nft tables: read them when nft lists a
    // mangle table, or when nft is missing (not when it failed: without
    // the privilege iptables-nft-save fails too).
    let ipt_nft = match &nft {
        Ok(j) => j.contains("\"mangle\""),
        Err(ran) => !ran,
    };
    let nft = nft.ok();
    if ipt_nft {
        for (cmd, fam) in [
            ("iptables-nft-save", Family::V4),
            ("ip6tables-nft-save", Family::V6),
        ] {
            if let Some(c) =
                run(cmd, &["-t", "mangle"]).and_then(|t| hostmarks::parse_iptables_save(&t, fam))
            {
                chains.push(c);
            }
        }
    }
    for (cmd, fam, v6) in [
        ("iptables-legacy-save", Family::V4, false),
        ("ip6tables-legacy-save", Family::V6, true),
    ] {
        if legacy_mangle(v6)
            && let Some(c) =
                run(cmd, &["-t", "mangle"]).and_then(|t| hostmarks::parse_iptables_save(&t, fam))
        {
            chains.push(c);
        }
    }
    if let Some(j) = nft {
        match hostmarks::parse_nft_json(&j) {
            Ok(c) => chains.extend(c),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (chains, errors)
}

/// Start following the host's rules.
///
/// # Errors
///
/// The thread cannot be started.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    *LISTING.lock().unwrap_or_else(PoisonError::into_inner) = Some(HostMarks {
        source: "host".into(),
        ..HostMarks::default()
    });
    std::thread::Builder::new()
        .name("hostmarks".into())
        .spawn(move || {
            let mut last: Option<HostMarks> = None;
            let mut reported: HashSet<(String, String)> = HashSet::new();
            let mut read_errors: HashSet<String> = HashSet::new();
            while !shared.stopping() {
                let (chains, errors) = read_host();
                for e in errors {
                    if read_errors.insert(e.clone()) {
                        tracing::warn!("fwmark: cannot read the host's rules: {e}");
                    }
                }
                let t = hostmarks::translate(&chains);
                let listing = apply(&shared, t);
                if last.as_ref() != Some(&listing) {
                    for i in &listing.ignored {
                        if reported.insert((i.text.clone(), i.reason.clone())) {
                            tracing::warn!(
                                "fwmark: {} rule left to the kernel ({}): {}",
                                i.origin, i.reason, i.text
                            );
                        }
                    }
                    tracing::info!(
                        "fwmark: following {} MARK rule(s) of the host's firewall, {} left to the kernel",
                        listing.rules.len(),
                        listing.ignored.len()
                    );
                    *LISTING.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(listing.clone());
                    last = Some(listing);
                }
                std::thread::sleep(POLL);
            }
        })
}

/// Resolve and install `t`'s rules: what `rvs fwmark list` shows.
fn apply(shared: &Shared, t: Translation) -> HostMarks {
    let mut rules = Vec::new();
    let mut engine_rules = Vec::new();
    let mut ignored = t.ignored;
    for r in t.rules {
        if engine_rules.len() >= rvs_core::fwmark::MAX_RULES {
            ignored.push(IgnoredRule {
                origin: r.origin,
                text: r.text,
                reason: format!(
                    "more than {} MARK rules: rvs follows the first ones",
                    rvs_core::fwmark::MAX_RULES
                ),
            });
            continue;
        }
        match crate::convert::fwmark_rule(&r.spec, crate::handler::system_ifindex) {
            Ok(e) => {
                engine_rules.push(e);
                rules.push(r);
            }
            Err(f) => ignored.push(IgnoredRule {
                origin: r.origin,
                text: r.text,
                reason: f.message.to_string(),
            }),
        }
    }
    let res = shared.lock().set_host_fwmark_rules(&engine_rules);
    if let Err(why) = res {
        // Nothing of the host's then: the rules it had stay the kernel's.
        let _ = shared.lock().set_host_fwmark_rules(&[]);
        for r in rules.drain(..) {
            ignored.push(IgnoredRule {
                origin: r.origin,
                text: r.text,
                reason: why.clone(),
            });
        }
    }
    HostMarks {
        source: "host".into(),
        rules,
        ignored,
    }
}
