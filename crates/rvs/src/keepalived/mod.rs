// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs health`: keepalived.conf's virtual servers and checkers, run by
//! rvs (issue 16).
//!
//! Where it runs: a separate `rvs health run FILE` process, not a thread of
//! rvsd. A checker runs scripts, parses what remote servers answer and may
//! hang on them; in its own process a crash or a leak there cannot take the
//! data plane down, it can be restarted (or upgraded) on its own, and it
//! needs no privilege beyond rvsd's control socket. It talks to rvsd
//! exactly as rvsadm does: the initial table as one atomic `Request::Batch`
//! (what `rvsadm -R` sends), each later change as one `Request::Apply`.
//!
//! * [`lex`]: words, comments, braces, `include` globs; [`conf`]: the
//!   `virtual_server` world with keepalived's defaults and inheritance
//!   (`conf/server.rs` the virtual and real server blocks,
//!   `conf/checker.rs` the checker and track_file blocks, `conf/bfd.rs`
//!   the bfd_instance and BFD_CHECK blocks,
//!   `conf/scripts.rs` the scripts' users, `conf/alerts.rs` the e-mail
//!   settings); [`runas`]: a script's user, resolved and switched to;
//! * [`apply`]: the configuration as ipvsadm operations;
//! * [`check`]: one bounded attempt of each checker (`check/evented.rs`
//!   the epoll set where TCP_CHECK, `check/tcp.rs`, HTTP_GET and
//!   SSL_GET, `check/http.rs`, with `check/response.rs` judging the
//!   response and `check/pattern.rs` its `regex`, SMTP_CHECK, `check/smtp.rs`, and
//!   DNS_CHECK, UDP_CHECK and PING_CHECK, `check/dgram.rs` and
//!   `check/probes.rs`, and MISC_CHECK's scripts, `check/script.rs`,
//!   run on the scheduler's thread; FILE_CHECK's reads on the pool's
//!   workers, at its file's inotify events, `run/file_watch.rs`);
//! * [`bfd`]: keepalived's BFD process: the packet (`bfd/wire.rs`), a
//!   session's state machine (`bfd/session.rs`), the thread that runs
//!   every session (`bfd/io.rs`) and whose changes drive BFD_CHECK
//!   (`run/bfd.rs`);
//! * [`run`]: the scheduler and the state file (`run/world.rs`:
//!   keepalived's state machine, quorum, the table kept in step;
//!   `run/suspend.rs` ha_suspend, following netlink's address events,
//!   `run/addr_watch.rs`); [`alert`]: the e-mail alerts;

pub mod alert;
pub mod apply;
pub mod bfd;
pub mod check;
pub mod conf;
pub mod lex;
pub mod pool;
pub mod run;
pub mod runas;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use rvs_proto::client::Endpoint;

/// `rvs health -h`.
pub const USAGE: &str = "\
Usage: rvs health run FILE [--state PATH] [--threads N] [--socket S]
                       [--metrics ADDR:PORT]
       rvs health check FILE
       rvs health reload [--state PATH]
       rvs health [show] [--state PATH] [--json]

  run FILE     read keepalived.conf FILE (its virtual_server blocks), put its
               services and real servers into rvsd as one atomic batch, then
               check every real server (TCP_CHECK, HTTP_GET, SSL_GET,
               DNS_CHECK, SMTP_CHECK, UDP_CHECK, PING_CHECK, MISC_CHECK,
               FILE_CHECK: a track_file's number, read again as soon as
               inotify says its file changed;
               BFD_CHECK: a bfd_instance's BFD session, run here) and
               add, remove or re-weight them as keepalived does; runs until
               SIGTERM/SIGINT and leaves the table as it is then; SIGHUP
               reloads FILE: only what differs changes, real servers with
               the same checkers keep their state, a file with an error
               changes nothing
  check FILE   parse FILE: warnings, errors with file:line, and the ipvsadm
               commands the start would send to an empty table
  reload       SIGHUP to the running checker (its pid from the state file)
  show         every real server with its checkers, state, last result, last
               change and error (from the state file of a running checker)
      --state PATH   state file (default /run/rvs/health.json)
      --threads N    most checker worker threads, for FILE_CHECK's
                     reads (4 at the first such check,
                     one more while all have been busy checking for 50 ms
                     with checks waiting; 1..=1024, default 64); the
                     other checkers need none: they run nonblocking on
                     the scheduler's thread
      --socket S     rvsd's control socket (default: RVS_SOCKET or rvsd's)
      --metrics ADDR:PORT
                     serve the checkers' state as Prometheus metrics at
                     http://ADDR:PORT/metrics (rvs_health_*: each real
                     server up, its weight and last change, each checker
                     up, its last check and failed attempts, the table in
                     sync); off unless given; unauthenticated, so bind it
                     to loopback or a management address
      --json         the state file as it is
";

/// Parse `file`, printing its warnings to stderr.
fn load(file: &std::path::Path) -> Result<conf::Config, String> {
    let (c, warnings) = conf::load(file).map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("{w}");
    }
    Ok(c)
}

/// `rvs health ARGS…`.
pub fn main(args: &[String]) -> Result<String, String> {
    let mut state = PathBuf::from(run::DEFAULT_STATE);
    let mut threads = 64usize;
    let mut endpoint = Endpoint::from_env();
    let mut json = false;
    let mut metrics = None;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(USAGE.to_string()),
            "--state" => state = PathBuf::from(val("--state")?),
            "--threads" => {
                let v = val("--threads")?;
                threads = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| format!("invalid --threads '{v}' (1..=1024)"))?;
            }
            "--socket" => endpoint = Endpoint::parse(&val("--socket")?),
            "--metrics" => {
                let v = val("--metrics")?;
                metrics = Some(v.parse::<std::net::SocketAddr>().map_err(|_| {
                    format!("invalid --metrics '{v}' (ADDR:PORT, e.g. 127.0.0.1:9877, [::1]:9877)")
                })?);
            }
            "--json" => json = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s => words.push(s.to_string()),
        }
    }
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["run", file] => {
            let file = PathBuf::from(file);
            let c = load(&file)?;
            let opts = run::Opts {
                file,
                state,
                threads,
                endpoint,
                metrics,
            };
            run::run(&opts, c)?;
            Ok(String::new())
        }
        ["check", file] => {
            let c = load(std::path::Path::new(file))?;
            let _ = endpoint;
            // What the start sends to an empty table (with lvs_flush and
            // lvs_timeouts first, as the first batch has them).
            let mut ops = Vec::new();
            if c.lvs.flush {
                ops.push(rvs_proto::Op::Flush);
            }
            if let Some([tcp, tcpfin, udp]) = c.lvs.timeouts {
                ops.push(rvs_proto::Op::SetTimeouts { tcp, tcpfin, udp });
            }
            ops.extend(run::World::new(c.clone(), endpoint).plan(&[]));
            let mut out = format!(
                "{file}: {} virtual server(s), {} real server(s), {} checker(s)\n",
                c.services.len(),
                c.services.iter().map(|v| v.reals.len()).sum::<usize>(),
                c.services
                    .iter()
                    .flat_map(|v| &v.reals)
                    .map(|r| r.checkers.len())
                    .sum::<usize>()
            );
            for op in &ops {
                out += &format!("ipvsadm {}\n", apply::ipvsadm_line(op));
            }
            Ok(out)
        }
        ["reload"] => {
            let text = std::fs::read_to_string(&state)
                .map_err(|e| format!("{}: {e} (--state)", state.display()))?;
            let st: run::Status =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", state.display()))?;
            // Only a checker: a stale state file must not signal a stranger.
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", st.pid)).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            if !args
                .windows(2)
                .any(|w| w == [b"health".as_slice(), b"run".as_slice()])
            {
                return Err(format!(
                    "pid {} of {} is not a running 'rvs health run'",
                    st.pid,
                    state.display()
                ));
            }
            let pid = rustix::process::Pid::from_raw(st.pid as i32)
                .ok_or_else(|| format!("{}: no pid", state.display()))?;
            rustix::process::kill_process(pid, rustix::process::Signal::HUP)
                .map_err(|e| format!("cannot signal rvs health (pid {}): {e}", st.pid))?;
            Ok(format!("reload requested (pid {})\n", st.pid))
        }
        [] | ["show"] => {
            let text = std::fs::read_to_string(&state).map_err(|e| {
                format!(
                    "{}: {e} (is 'rvs health run' running? --state)",
                    state.display()
                )
            })?;
            if json {
                return Ok(text);
            }
            let st: run::Status =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", state.display()))?;
            Ok(show(&st, now()))
        }
        _ => Err(format!("bad arguments\n{USAGE}")),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `N s ago` of unix time `t`.
fn ago(t: u64, now: u64) -> String {
    if t == 0 {
        return "never".into();
    }
    let d = now.saturating_sub(t);
    match d {
        0..=119 => format!("{d}s ago"),
        120..=7199 => format!("{}m ago", d / 60),
        _ => format!("{}h ago", d / 3600),
    }
}

/// The state as a table.
pub fn show(st: &run::Status, now: u64) -> String {
    let mut out = format!(
        "rvs health: pid {}, {}, started {}, updated {}{}\n",
        st.pid,
        st.config,
        ago(st.started, now),
        ago(st.updated, now),
        if st.in_sync {
            ""
        } else {
            ", table NOT in sync (rvsd unreachable or refusing)"
        }
    );
    for vs in &st.services {
        out += &format!(
            "VS {}{}\n",
            vs.vs,
            if vs.suspended {
                "  checkers suspended (ha_suspend: no address of it on this host)"
            } else {
                ""
            }
        );
        for rs in &vs.reals {
            let state = match (rs.alive, rs.inhibit) {
                (true, _) => format!("UP weight {}", rs.effective_weight()),
                (false, true) => "DOWN weight 0 (inhibited)".into(),
                (false, false) => "DOWN removed".into(),
            };
            out += &format!(
                "  RS {:<28} {:<26} changed {}\n",
                rs.real,
                state,
                ago(rs.last_change, now)
            );
            for c in &rs.checkers {
                out += &format!(
                    "     {:<10} {:<24} {:<4} last {} {}, changed {}{}\n",
                    c.kind,
                    c.target,
                    if c.up { "up" } else { "down" },
                    c.last_result,
                    ago(c.last_check, now),
                    ago(c.last_change, now),
                    if c.error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.error)
                    }
                );
            }
        }
    }
    out
}
