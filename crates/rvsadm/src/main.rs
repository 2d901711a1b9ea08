//! rvsadm — ipvsadm's command line for rvsd. Invoked as `ipvsadm` (a
//! symlink) it behaves the same. Invoked under a name ending in `-save`
//! (`rvsadm-save`, `ipvsadm-save`) it is ipvsadm's `ipvsadm-save` script
//! (`ipvsadm -S [-n]`); under a name ending in `-restore`, its
//! `ipvsadm-restore` (clear the table, then `ipvsadm -R` — here as one
//! atomic batch).

use std::io::{Read, Write};
use std::process::ExitCode;

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Reply, Request};
use rvsadm::cli::{self, Command, ListOpts};
use rvsadm::format::{self, ListFlags, Numeric, Resolver, System};
use rvsadm::strerror;

fn main() -> ExitCode {
    // Arguments that are not UTF-8 are taken lossily (they then fail to
    // parse as addresses or numbers, with ipvsadm's message) rather than panic.
    let mut argv = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let argv0 = argv.next().unwrap_or_else(|| "rvsadm".into());
    let args: Vec<String> = argv.collect();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map_or_else(|| argv0.clone(), |n| n.to_string_lossy().into_owned());
    let (out, err, code) = if name.ends_with("-save") {
        save_script(&name, &args)
    } else if name.ends_with("-restore") {
        restore(&argv0, true)
    } else {
        run(&argv0, &args)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stderr().write_all(err.as_bytes());
    ExitCode::from(code)
}

/// Run one invocation: (stdout, stderr, exit code).
fn run(argv0: &str, args: &[String]) -> (String, String, u8) {
    let cmd = match cli::parse_args(argv0, args) {
        Ok(c) => c,
        Err(e) => return (String::new(), e.render(argv0), e.exit_code()),
    };
    match cmd {
        Command::Help => (cli::help_text(argv0), String::new(), 0),
        Command::Version => (format!("{}\n", cli::version_line()), String::new(), 0),
        Command::Restore => restore(argv0, false),
        Command::Apply(op) => with_daemon(|c| match c.call(Request::Apply(op.clone()))? {
            Reply::Ok => Ok((String::new(), String::new(), 0)),
            Reply::Error(e) => Ok((
                String::new(),
                format!("{}{}\n", strerror::for_op(&op, e.errno), explained(&e)),
                255,
            )),
            other => Err(unexpected(&other)),
        }),
        Command::Save { numeric } => with_daemon(|c| {
            let services = match c.call(Request::ListServices)? {
                Reply::Services(s) => s,
                Reply::Error(e) => return Ok(list_error(&e)),
                other => return Err(unexpected(&other)),
            };
            Ok((
                format::save(&services, numeric, resolver(numeric)),
                String::new(),
                0,
            ))
        }),
        Command::List(opts) => with_daemon(|c| list(c, &opts)),
    }
}

/// rvsd's own explanation of a failure ipvsadm's text cannot describe
/// (the data plane's limits, a change the data plane did not take), on a
/// line after ipvsadm's text; empty for every failure the kernel has too,
/// so that those stay byte-exact.
fn explained(e: &rvs_proto::ErrorReply) -> String {
    if e.explain {
        format!("\nrvsd: {}", e.message)
    } else {
        String::new()
    }
}

/// `ipvsadm-save [-n]`: the script's arguments — `-n` numeric, any other
/// option its help (on stderr, exit status 1), other words ignored.
fn save_script(name: &str, args: &[String]) -> (String, String, u8) {
    let mut numeric = false;
    for a in args {
        if a == "-n" {
            numeric = true;
        } else if a.starts_with('-') {
            return (
                String::new(),
                format!(
                    "{name}: Script to save the IPVS table to stdout.\n   \
                     With the -n option, prints out the table in numeric format.\n"
                ),
                1,
            );
        }
    }
    let args: Vec<String> = if numeric {
        vec!["-S".into(), "-n".into()]
    } else {
        vec!["-S".into()]
    };
    run("ipvsadm", &args)
}

/// `-R`: the rules on stdin as one atomic batch. With `flush` (as
/// `ipvsadm-restore`), the batch starts by clearing the table, so the
/// table becomes exactly the input — or, if any line is bad, stays as it
/// was.
fn restore(argv0: &str, flush: bool) -> (String, String, u8) {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return (String::new(), format!("cannot read the rules: {e}\n"), 2);
    }
    let mut lines = match cli::parse_restore(argv0, &input) {
        Ok(l) => l,
        Err((line, e)) => {
            let msg = e.render(argv0);
            return (
                String::new(),
                format!("line {line}: {msg}(nothing was applied)\n"),
                e.exit_code(),
            );
        }
    };
    if flush {
        lines.insert(
            0,
            rvs_proto::BatchLine {
                line: 0,
                op: rvs_proto::Op::Flush,
            },
        );
    }
    with_daemon(|c| match c.call(Request::Batch(lines))? {
        Reply::Ok => Ok((String::new(), String::new(), 0)),
        Reply::Error(e) => {
            let text = strerror::for_reply(&e) + &explained(&e);
            let at = e.line.map(|l| format!("line {l}: ")).unwrap_or_default();
            Ok((
                String::new(),
                format!("{at}{text} (nothing was applied)\n"),
                255,
            ))
        }
        other => Err(unexpected(&other)),
    })
}

fn resolver(numeric: bool) -> &'static dyn Resolver {
    if numeric { &Numeric } else { &System }
}

/// `-L -c`: printed entry by entry as rvsd sends it (blocks of compact
/// records, `Request::ListConnsPacked`), so that a table of a million
/// connections is never held whole (nor its text). The header
/// goes out with the first part; an error before it is reported as
/// before. A reader that goes away (`| head`) ends the listing quietly.
fn list_conns(
    c: &mut Client,
    o: &ListOpts,
    r: &dyn Resolver,
) -> Result<(String, String, u8), String> {
    // Debug builds (the tests'): RVSADM_LIST_WHOLE=1 asks for the whole
    // table in one reply, as before the listing came in parts, to measure
    // what the parts change.
    if cfg!(debug_assertions) && std::env::var_os("RVSADM_LIST_WHOLE").is_some() {
        return match c.call(Request::ListConns)? {
            Reply::Conns(conns) => Ok((
                format::conns(&conns, o.numeric, o.persistent_conn, r),
                String::new(),
                0,
            )),
            Reply::Error(e) => Ok(list_error(&e)),
            other => Err(unexpected(&other)),
        };
    }
    lower_priority();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    // One line's text at a time, its buffer reused: nothing allocated per
    // line for `-n`.
    let mut text = String::with_capacity(256);
    let (mut started, mut closed) = (false, false);
    let res = c.list_conn_records(|e| {
        if closed {
            return Ok(());
        }
        text.clear();
        if !started {
            text = format::conns_header(o.persistent_conn);
            started = true;
        }
        format::conn_line(&mut text, &e, o.numeric, o.persistent_conn, r);
        closed = w.write_all(text.as_bytes()).is_err();
        Ok(())
    })?;
    if let Some(e) = res {
        return Ok(list_error(&e));
    }
    if !started {
        // An empty table: the header alone.
        closed = w
            .write_all(format::conns_header(o.persistent_conn).as_bytes())
            .is_err();
    }
    if !closed {
        let _ = w.flush();
    }
    Ok((String::new(), String::new(), 0))
}

/// The nice value of a connection listing.
const LIST_NICE: i32 = 19;

/// `-L -c` decodes and formats up to millions of lines: bulk work that
/// must not take the CPU from forwarding (rvsd's workers, and whatever
/// else the host serves), as ipvsadm's dump gives way to the kernel's
/// softirq forwarding. So this process lowers itself to nice 19 first (no
/// privilege needed; rvsd's writer of the listing does the same): on an
/// idle host the listing is as fast, on a busy one it takes the CPU left
/// over. A refusal (a seccomp filter) is ignored: the listing runs at the
/// priority it has, and its output stays ipvsadm's. Debug builds (the
/// tests'): `RVSADM_LIST_NICE=N` instead, to measure what it changes.
fn lower_priority() {
    let nice = if cfg!(debug_assertions) {
        std::env::var("RVSADM_LIST_NICE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(LIST_NICE)
    } else {
        LIST_NICE
    };
    if nice > 0 {
        let _ = rustix::process::setpriority_process(None, nice);
    }
}

fn list(c: &mut Client, o: &ListOpts) -> Result<(String, String, u8), String> {
    let r = resolver(o.numeric);
    if o.connection {
        return list_conns(c, o, r);
    }
    if o.timeout {
        return match c.call(Request::GetTimeouts)? {
            Reply::Timeouts { tcp, tcpfin, udp } => {
                Ok((format::timeouts(tcp, tcpfin, udp), String::new(), 0))
            }
            Reply::Error(_) => Ok((String::new(), String::new(), 1)),
            other => Err(unexpected(&other)),
        };
    }
    if o.daemon {
        return match c.call(Request::ListDaemons)? {
            Reply::Daemons(d) => Ok((format::daemons(&d), String::new(), 0)),
            Reply::Error(_) => Ok((String::new(), String::new(), 1)),
            other => Err(unexpected(&other)),
        };
    }
    let flags = ListFlags {
        numeric: o.numeric,
        stats: o.stats,
        rate: o.rate,
        thresholds: o.thresholds,
        persistent_conn: o.persistent_conn,
        tun_info: o.tun_info,
        nosort: o.nosort,
        exact: o.exact,
    };
    if let Some(id) = o.service {
        return match c.call(Request::GetService(id))? {
            Reply::Service(s) => Ok((format::list_one(&s, &flags, r), String::new(), 0)),
            Reply::Error(e) => Ok(list_error(&e)),
            other => Err(unexpected(&other)),
        };
    }
    let (version, size) = match c.call(Request::Info)? {
        Reply::Info {
            version,
            conn_tab_size,
        } => (version, conn_tab_size),
        Reply::Error(e) => return Ok(list_error(&e)),
        other => return Err(unexpected(&other)),
    };
    match c.call(Request::ListServices)? {
        Reply::Services(s) => Ok((
            format::list_all(version, size, &s, &flags, r),
            String::new(),
            0,
        )),
        Reply::Error(e) => Ok(list_error(&e)),
        other => Err(unexpected(&other)),
    }
}

/// A listing failed: ipvsadm prints the error text and exits 1.
fn list_error(e: &rvs_proto::ErrorReply) -> (String, String, u8) {
    (
        String::new(),
        format!("{}\n", strerror::for_listing(e.errno)),
        1,
    )
}

fn unexpected(r: &Reply) -> String {
    format!("unexpected reply from rvsd: {r:?}")
}

/// Connect to rvsd and run `f`; a missing daemon is a clear error, exit 2.
fn with_daemon(
    f: impl FnOnce(&mut Client) -> Result<(String, String, u8), String>,
) -> (String, String, u8) {
    let ep = Endpoint::from_env();
    let mut client = match Client::connect(&ep) {
        Ok(c) => c,
        Err(e) if rvs_proto::client::untrusted_peer(&e).is_some() => {
            return (
                String::new(),
                format!(
                    "Can't initialize ipvs: {e}.\n\
                     If rvsd runs as that user, set {}={} to trust it.\n",
                    rvs_proto::client::DAEMON_UID_ENV,
                    rvs_proto::client::untrusted_peer(&e).map_or(0, |u| u.uid)
                ),
                2,
            );
        }
        Err(e) => {
            return (
                String::new(),
                format!(
                    "Can't initialize ipvs: no rvsd answers on {ep} ({e}).\n\
                     rvs needs its daemon in this network namespace: start it with `rvsd &` \
                     (or set RVS_SOCKET to the socket of a running rvsd).\n"
                ),
                2,
            );
        }
    };
    match f(&mut client) {
        Ok(r) => r,
        Err(msg) => (String::new(), format!("{msg}\n"), 2),
    }
}
