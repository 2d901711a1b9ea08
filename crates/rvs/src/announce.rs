//! `rvs announce` and `rvs drain`: announce a VIP to the routers (through a
//! BGP speaker such as BIRD or FRR) only while this director can serve it.
//!
//! `rvs announce` polls rvsd every `--interval` and runs `--announce-cmd`
//! when the VIP should be announced, `--withdraw-cmd` when it should not
//! (each only when the wanted state changes, retried while the command
//! fails). The VIP is announced while all of these hold:
//!
//! * rvsd answers on its control socket (`RVS_SOCKET` or the default);
//! * its data plane forwards: a packet I/O other than `none`, at least one
//!   worker, and its filter holds rvsd's table;
//! * the service (`-t`/`-u`/`--sctp-service ADDR:PORT` or `-f MARK`) exists
//!   and has at least one real server with weight > 0 (a health checker
//!   quiesces or removes the failed ones, so this follows health);
//! * no drain is requested (the `--drain-file` exists: `rvs drain`).
//!
//! On SIGTERM or SIGINT it withdraws first, then exits. The decision is the
//! pure [`decide`]; [`run`] is the I/O around it.
//!
//! `rvs drain` creates the drain file and waits until `rvs announce` has
//! withdrawn the route (its `--state-file` says `withdrawn drain`). rvsd is
//! not touched: it keeps forwarding the flows that still reach it while the
//! routers converge (BFD: detect time, about 0.3 s with 100 ms x 3; without
//! BFD: the BGP withdrawal is sent at once, the router reacts within a
//! second) and while established connections finish. `rvs drain --undo`
//! removes the file, and the VIP is announced again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Proto, Reply, Request, ServiceId, ServiceInfo};

/// Default drain file.
pub const DEFAULT_DRAIN_FILE: &str = "/run/rvs/drain";
/// Default state file.
pub const DEFAULT_STATE_FILE: &str = "/run/rvs/announce.state";

/// What rvsd said, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// rvsd did not answer (or answered with an error).
    NoRvsd(String),
    /// rvsd answered.
    Rvsd {
        /// Why its data plane does not forward (`None`: it does).
        not_forwarding: Option<String>,
        /// The service's real servers with weight > 0 (`None`: no such
        /// service).
        live_dests: Option<usize>,
    },
}

/// The announcement wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Announce the VIP.
    Announce,
    /// Withdraw it, for this reason (one word first: `drain`, `stopping`,
    /// `rvsd`, `forwarding`, `service`, `servers`).
    Withdraw(String),
}

/// The pure decision: announce only when able to serve and not draining
/// or stopping.
pub fn decide(seen: &Seen, draining: bool, stopping: bool) -> Want {
    if stopping {
        return Want::Withdraw("stopping".into());
    }
    if draining {
        return Want::Withdraw("drain".into());
    }
    match seen {
        Seen::NoRvsd(e) => Want::Withdraw(format!("rvsd: {e}")),
        Seen::Rvsd {
            not_forwarding: Some(why),
            ..
        } => Want::Withdraw(format!("forwarding: {why}")),
        Seen::Rvsd {
            live_dests: None, ..
        } => Want::Withdraw("service: not configured".into()),
        Seen::Rvsd {
            live_dests: Some(0),
            ..
        } => Want::Withdraw("servers: no real server with weight > 0".into()),
        Seen::Rvsd { .. } => Want::Announce,
    }
}

/// `rvs announce` options.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The service.
    pub service: ServiceId,
    /// Shell command that announces the VIP.
    pub announce_cmd: String,
    /// Shell command that withdraws it.
    pub withdraw_cmd: String,
    /// Poll interval.
    pub interval: Duration,
    /// `rvs drain` creates this file.
    pub drain_file: PathBuf,
    /// The current state, one line (`announced` or `withdrawn REASON`).
    pub state_file: PathBuf,
}

/// Parse `tcp|udp|sctp` + `ADDR:PORT` (IPv6 as `[ADDR]:PORT`), or a mark.
pub fn parse_service(flag: &str, v: &str) -> Result<ServiceId, String> {
    let proto = match flag {
        "-t" | "--tcp-service" => Proto::Tcp,
        "-u" | "--udp-service" => Proto::Udp,
        "--sctp-service" => Proto::Sctp,
        "-f" | "--fwmark-service" => {
            let mark = v
                .parse()
                .map_err(|_| format!("invalid firewall mark '{v}'"))?;
            return Ok(ServiceId::Fwmark { v6: false, mark });
        }
        _ => return Err(format!("unknown service flag {flag}")),
    };
    let sa: std::net::SocketAddr = v
        .parse()
        .map_err(|_| format!("invalid service '{v}': expected ADDR:PORT or [ADDR6]:PORT"))?;
    Ok(ServiceId::Addr {
        proto,
        addr: sa.ip(),
        port: sa.port(),
    })
}

/// Ask rvsd.
fn observe(svc: &ServiceId) -> Seen {
    let ep = Endpoint::from_env();
    let mut c = match Client::connect(&ep) {
        Ok(c) => c,
        Err(e) => return Seen::NoRvsd(format!("{ep}: {e}")),
    };
    let not_forwarding = match c.call(Request::DataPlaneStats) {
        Ok(Reply::DataPlaneStats {
            mode,
            workers,
            filter_out_of_step,
            ..
        }) => {
            if mode == "none" || workers.is_empty() {
                Some(format!("packet I/O {mode}, {} worker(s)", workers.len()))
            } else {
                filter_out_of_step.map(|w| format!("filter out of step: {w}"))
            }
        }
        Ok(Reply::Error(e)) => return Seen::NoRvsd(e.message),
        Ok(_) => return Seen::NoRvsd("unexpected reply".into()),
        Err(e) => return Seen::NoRvsd(e),
    };
    let live_dests = match c.call(Request::GetService(*svc)) {
        Ok(Reply::Service(s)) => Some(live(&s)),
        Ok(Reply::Error(_)) => None,
        Ok(_) => return Seen::NoRvsd("unexpected reply".into()),
        Err(e) => return Seen::NoRvsd(e),
    };
    Seen::Rvsd {
        not_forwarding,
        live_dests,
    }
}

/// Real servers with weight > 0.
pub fn live(s: &ServiceInfo) -> usize {
    s.dests.iter().filter(|d| d.spec.weight > 0).count()
}

fn sh(cmd: &str, reason: &str) -> Result<(), String> {
    let st = Command::new("sh")
        .args(["-c", cmd])
        .env("RVS_ANNOUNCE_REASON", reason)
        .status()
        .map_err(|e| format!("sh: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("'{cmd}' exited with {st}"))
    }
}

fn stamp() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", t.as_secs(), t.subsec_millis())
}

fn write_state(path: &Path, line: &str) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, format!("{line}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// `rvs announce`: the loop. Returns after a withdrawal on SIGTERM/SIGINT.
pub fn run(o: &Opts) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    // What the speaker was last told successfully (None: unknown, so the
    // first decision is always applied).
    let mut told: Option<Want> = None;
    // The state file's line, rewritten only when it changes.
    let mut written = String::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let draining = o.drain_file.exists();
        let seen = if stopping || draining {
            Seen::NoRvsd("not asked".into())
        } else {
            observe(&o.service)
        };
        let want = decide(&seen, draining, stopping);
        let changed = !matches!(
            (&told, &want),
            (Some(Want::Announce), Want::Announce) | (Some(Want::Withdraw(_)), Want::Withdraw(_))
        );
        if changed {
            let (cmd, line) = match &want {
                Want::Announce => (&o.announce_cmd, "announced".to_string()),
                Want::Withdraw(r) => (&o.withdraw_cmd, format!("withdrawn {r}")),
            };
            match sh(cmd, &line) {
                Ok(()) => {
                    eprintln!("rvs announce: {} {line}", stamp());
                    write_state(&o.state_file, &line);
                    written = line;
                    told = Some(want.clone());
                }
                Err(e) => eprintln!("rvs announce: {} {line} failed: {e}", stamp()),
            }
        } else if let Want::Withdraw(r) = &want {
            // Keep the reason current (drain waits for "withdrawn drain").
            let line = format!("withdrawn {r}");
            if line != written {
                write_state(&o.state_file, &line);
                written = line;
            }
        }
        if stopping {
            return match told {
                Some(Want::Withdraw(_)) => Ok(()),
                _ => Err("stopping: the withdrawal failed".into()),
            };
        }
        // Sleep in small steps so that a signal or a drain acts at once.
        let until = Instant::now() + o.interval;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            if !draining && o.drain_file.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `rvs drain` options.
#[derive(Debug, Clone)]
pub struct DrainOpts {
    /// The drain file `rvs announce` watches.
    pub drain_file: PathBuf,
    /// `rvs announce`'s state file.
    pub state_file: PathBuf,
    /// Remove the drain file instead.
    pub undo: bool,
    /// How long to wait for the withdrawal.
    pub timeout: Duration,
}

/// `rvs drain`: request the withdrawal and wait until it is done.
pub fn drain(o: &DrainOpts) -> Result<String, String> {
    if o.undo {
        match std::fs::remove_file(&o.drain_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", o.drain_file.display())),
        }
        return Ok("drain ended: rvs announce announces the VIP again once it can serve\n".into());
    }
    if let Some(dir) = o.drain_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&o.drain_file, format!("{}\n", stamp()))
        .map_err(|e| format!("{}: {e}", o.drain_file.display()))?;
    let deadline = Instant::now() + o.timeout;
    loop {
        let state = std::fs::read_to_string(&o.state_file).unwrap_or_default();
        if state.trim() == "withdrawn drain" {
            return Ok(format!(
                "route withdrawn at {}; rvsd keeps forwarding.\n\
                 Wait for the routers (BFD detect time, or about 1 s) and for the \
                 established connections to end (rvsadm -L -n: ActiveConn), then stop rvsd.\n\
                 rvs drain --undo announces it again.\n",
                stamp()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no withdrawal within {:?}: is rvs announce running with --state-file {} \
                 (it says: {:?})?",
                o.timeout,
                o.state_file.display(),
                state.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const ANNOUNCE_USAGE: &str = "\
Usage: rvs announce (-t|-u|--sctp-service ADDR:PORT | -f MARK)
                    --announce-cmd CMD --withdraw-cmd CMD
                    [--interval MS] [--drain-file F] [--state-file F]
  Announces the service's VIP (runs CMD with sh -c) while rvsd forwards and
  the service has a real server with weight > 0; withdraws otherwise, on
  rvs drain, and on SIGTERM/SIGINT (then exits). --interval: poll period
  (default 200 ms). Examples for BIRD and FRR: dist/bgp/.
";

const DRAIN_USAGE: &str = "\
Usage: rvs drain [--undo] [--drain-file F] [--state-file F] [--timeout S]
  Makes rvs announce withdraw the VIP and waits (default 10 s) until it has;
  rvsd keeps forwarding. --undo: end the drain.
";

fn value(args: &[String], i: &mut usize) -> Result<String, String> {
    *i += 1;
    args.get(*i)
        .cloned()
        .ok_or_else(|| format!("{} needs a value", args[*i - 1]))
}

/// `rvs announce ARGS`.
pub fn main_announce(args: &[String]) -> Result<(), String> {
    let (mut service, mut ann, mut wd) = (None, None, None);
    let mut o = Opts {
        service: ServiceId::Fwmark { v6: false, mark: 0 },
        announce_cmd: String::new(),
        withdraw_cmd: String::new(),
        interval: Duration::from_millis(200),
        drain_file: DEFAULT_DRAIN_FILE.into(),
        state_file: DEFAULT_STATE_FILE.into(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-h" | "--help" => {
                print!("{ANNOUNCE_USAGE}");
                return Ok(());
            }
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" | "-f"
            | "--fwmark-service" => service = Some(parse_service(a, &value(args, &mut i)?)?),
            "--announce-cmd" => ann = Some(value(args, &mut i)?),
            "--withdraw-cmd" => wd = Some(value(args, &mut i)?),
            "--interval" => {
                let v = value(args, &mut i)?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|&n| (10..=60_000).contains(&n))
                    .ok_or_else(|| format!("invalid --interval '{v}': 10..=60000 ms"))?;
                o.interval = Duration::from_millis(ms);
            }
            "--drain-file" => o.drain_file = value(args, &mut i)?.into(),
            "--state-file" => o.state_file = value(args, &mut i)?.into(),
            _ => return Err(format!("announce: unexpected '{a}'\n{ANNOUNCE_USAGE}")),
        }
        i += 1;
    }
    o.service = service.ok_or(format!("announce: a service is needed\n{ANNOUNCE_USAGE}"))?;
    o.announce_cmd = ann.ok_or("announce: --announce-cmd is needed")?;
    o.withdraw_cmd = wd.ok_or("announce: --withdraw-cmd is needed")?;
    run(&o)
}

/// `rvs drain ARGS`.
pub fn main_drain(args: &[String]) -> Result<String, String> {
    let mut o = DrainOpts {
        drain_file: DEFAULT_DRAIN_FILE.into(),
        state_file: DEFAULT_STATE_FILE.into(),
        undo: false,
        timeout: Duration::from_secs(10),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-h" | "--help" => return Ok(DRAIN_USAGE.into()),
            "--undo" => o.undo = true,
            "--drain-file" => o.drain_file = value(args, &mut i)?.into(),
            "--state-file" => o.state_file = value(args, &mut i)?.into(),
            "--timeout" => {
                let v = value(args, &mut i)?;
                let s: u64 = v
                    .parse()
                    .ok()
                    .filter(|&n| (1..=3600).contains(&n))
                    .ok_or_else(|| format!("invalid --timeout '{v}': 1..=3600 s"))?;
                o.timeout = Duration::from_secs(s);
            }
            _ => return Err(format!("drain: unexpected '{a}'\n{DRAIN_USAGE}")),
        }
        i += 1;
    }
    drain(&o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(live: usize) -> Seen {
        Seen::Rvsd {
            not_forwarding: None,
            live_dests: Some(live),
        }
    }

    #[test]
    fn announces_only_when_forwarding_with_a_live_server() {
        assert_eq!(decide(&up(1), false, false), Want::Announce);
        assert_eq!(decide(&up(3), false, false), Want::Announce);
        let w = |s: &Seen| match decide(s, false, false) {
            Want::Withdraw(r) => r.split(':').next().unwrap().to_string(),
            Want::Announce => "announce".into(),
        };
        assert_eq!(w(&up(0)), "servers");
        assert_eq!(
            w(&Seen::Rvsd {
                not_forwarding: None,
                live_dests: None
            }),
            "service"
        );
        assert_eq!(
            w(&Seen::Rvsd {
                not_forwarding: Some("packet I/O none".into()),
                live_dests: Some(2)
            }),
            "forwarding"
        );
        assert_eq!(w(&Seen::NoRvsd("refused".into())), "rvsd");
    }

    #[test]
    fn drain_and_stop_withdraw_whatever_rvsd_says() {
        assert_eq!(decide(&up(2), true, false), Want::Withdraw("drain".into()));
        assert_eq!(
            decide(&up(2), false, true),
            Want::Withdraw("stopping".into())
        );
        assert_eq!(
            decide(&up(2), true, true),
            Want::Withdraw("stopping".into())
        );
    }

    #[test]
    fn service_flags_parse() {
        assert_eq!(
            parse_service("-t", "10.0.0.1:80").unwrap(),
            ServiceId::Addr {
                proto: Proto::Tcp,
                addr: "10.0.0.1".parse().unwrap(),
                port: 80
            }
        );
        assert!(matches!(
            parse_service("-u", "[2001:db8::1]:53").unwrap(),
            ServiceId::Addr {
                proto: Proto::Udp,
                port: 53,
                ..
            }
        ));
        assert!(matches!(
            parse_service("-f", "7").unwrap(),
            ServiceId::Fwmark { mark: 7, .. }
        ));
        assert!(parse_service("-t", "10.0.0.1").is_err());
    }

    /// The loop against a missing rvsd: it withdraws, `rvs drain` sees the
    /// drain reason, and SIGTERM ends it after a last withdrawal.
    #[test]
    fn drain_waits_for_the_withdrawal() {
        let dir = std::env::temp_dir().join(format!("rvs-announce-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = DrainOpts {
            drain_file: dir.join("drain"),
            state_file: dir.join("state"),
            undo: false,
            timeout: Duration::from_millis(200),
        };
        // Nobody withdraws: drain times out.
        assert!(drain(&o).is_err());
        std::fs::write(&o.state_file, "withdrawn drain\n").unwrap();
        assert!(drain(&o).unwrap().starts_with("route withdrawn"));
        assert!(o.drain_file.exists());
        drain(&DrainOpts {
            undo: true,
            ..o.clone()
        })
        .unwrap();
        assert!(!o.drain_file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
