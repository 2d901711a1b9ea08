//! rvsd — the rvs director daemon (control plane).
//!
//! rvsd owns one [`rvs_core::Engine`] for the network namespace it was
//! started in and serves the control API of `rvs-proto` on a Unix socket —
//! by default the abstract socket `@rvsd.ctl`, which belongs to the network
//! namespace, so `ip netns exec X rvsadm …` reaches the rvsd of namespace X.
//!
//! * [`handler`] — one request in, one reply out, no I/O (unit-tested);
//! * [`server`] — the accept loop, a thread per connection, housekeeping
//!   (`Engine::poll` every 100 ms);
//! * [`auth`] — who may use the API (root / CAP_NET_ADMIN in rvsd's user
//!   namespace, as the kernel; `--group`), judged on kernel-vouched credentials;
//! * [`convert`] — `rvs-proto` ⇄ `rvs-core`;
//! * [`sync`] — the sync daemons that run, their settings and sockets;
//! * [`syncd`] — their I/O: the multicast sockets and the thread that sends
//!   a master's queued connections and applies a backup's messages;
//! * [`handover`] — `--conn-state FILE`: restarts that keep connections;
//! * [`rules`] — `--rules FILE` in `ipvsadm -S` format, applied atomically;
//! * [`dataplane`] — the packet path (`--io xdp|packet|auto`): sockets on
//!   the served interfaces (AF_XDP behind the XDP classifier, or AF_PACKET
//!   behind nftables drop rules), one worker thread per RX queue running the
//!   engine, one sync thread keeping the filters and next hops in step;
//! * [`classes`] — what those filters claim, from the table;
//! * [`log`] — the log: `tracing` events at levels, one line each, plain
//!   or with journald's priority prefixes, repeated errors rate-limited;
//! * [`options`], [`system`].
//!
//! By default (`--io auto`) rvsd forwards with AF_XDP where the XDP
//! classifier attaches, else with AF_PACKET, and exits with an error if
//! neither works. `--io none` keeps the control plane only: rvsd records the
//! interfaces it is to serve but forwards nothing.
//!
//! With AF_XDP, established flows are forwarded inside the XDP program
//! (`--fast-path on`, the default; `RVSD_FAST_PATH` sets the default;
//! `off` disables it; with `--io packet` or `none` it is off): the engine
//! decides, the sync thread caches its decisions in the classifier's flow
//! map, and what the fast path forwarded is credited to the statistics and
//! the connections' timers before every request that reads or resets them
//! and before every expiry pass (see [`dataplane`]).

pub mod auth;
pub mod classes;
pub mod convert;
pub mod dataplane;
pub mod engines;
pub mod handler;
pub mod handover;
pub mod held;
pub mod hostmarks;
pub mod hostwatch;
pub mod log;
pub mod metrics;
pub mod options;
pub mod persist;
pub mod rules;
pub mod server;
pub mod sync;
pub mod syncd;
pub mod synguard;
pub mod system;

use std::ffi::OsString;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rvs_core::{Engine, EngineConfig};
use rvs_proto::client::Endpoint;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::handler::State;
use crate::options::{Command, IoMode, Options};
use crate::system::Clock;

/// Exit status: usage error, bad interface, bad rules file.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: cannot start (socket in use, no entropy, …).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: a thread panicked (EX_SOFTWARE); the process ends so that
/// its supervisor restarts it, rather than run on with a queue unserved.
pub const EXIT_PANIC: i32 = 70;

/// A panic of any thread ends the process with [`EXIT_PANIC`], after the
/// default report. A worker or the sync thread that died would otherwise
/// leave rvsd up while its queue's traffic is lost and systemd sees
/// nothing. The kernel objects go with the process: the XDP links and
/// AF_XDP sockets are file descriptors (the classifier detaches, packets
/// go to the kernel again), and the nftables table of `--io packet` is
/// deleted at the next start (see [`dataplane`]).
fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        tracing::error!(
            "a thread panicked; exiting with status {EXIT_PANIC} so that it is restarted"
        );
        std::process::exit(EXIT_PANIC);
    }));
}

/// In debug builds (the tests'), `RVSD_INJECT_PANIC=SITE` makes the thread
/// at `SITE` (`worker`: a data-plane worker, at its first frame) panic, to
/// test [`exit_on_panic`]. Read once.
pub fn inject_panic(site: &str) {
    static SITE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if !cfg!(debug_assertions) {
        return;
    }
    let want = SITE.get_or_init(|| std::env::var("RVSD_INJECT_PANIC").ok());
    if want.as_deref() == Some(site) {
        panic!("injected panic in {site} (RVSD_INJECT_PANIC)");
    }
}

/// In debug builds (the tests'), `RVSD_INJECT_STALL=SITE` makes the thread
/// at `SITE` (`worker`: a data-plane worker's loop) stop for good two
/// seconds after `since`, to test the systemd watchdog. Read once.
pub fn inject_stall(site: &str, since: std::time::Instant) {
    static SITE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if !cfg!(debug_assertions) {
        return;
    }
    let want = SITE.get_or_init(|| std::env::var("RVSD_INJECT_STALL").ok());
    if want.as_deref() == Some(site) && since.elapsed() >= std::time::Duration::from_secs(2) {
        tracing::warn!("injected stall in {site} (RVSD_INJECT_STALL)");
        loop {
            std::thread::park();
        }
    }
}

/// With systemd's watchdog on (`WatchdogSec=` sets `$WATCHDOG_USEC`), say
/// WATCHDOG=1 every half period while every data-plane worker's loop keeps
/// turning; a worker stuck for a whole period stops the pings, so systemd
/// kills rvsd and restarts it (`Restart=on-failure`). Logged once.
fn spawn_watchdog(shared: Arc<server::Shared>) -> std::io::Result<()> {
    // As libsystemd's sd_watchdog_enabled(): $WATCHDOG_USEC, for this
    // process if $WATCHDOG_PID names one (sd-notify's version requires it).
    let usec: u64 = match std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(u) if u > 0 => u,
        _ => return Ok(()),
    };
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return Ok(());
    }
    let period = std::time::Duration::from_micros(usec / 2);
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut last: Vec<u64> = Vec::new();
            let mut stuck_logged = false;
            while !shared.stopping() {
                let now = shared.worker_heartbeats();
                let stuck: Vec<usize> = now
                    .iter()
                    .zip(&last)
                    .enumerate()
                    .filter(|(_, (a, b))| a == b)
                    .map(|(i, _)| i)
                    .collect();
                if stuck.is_empty() || last.len() != now.len() {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    stuck_logged = false;
                } else if !stuck_logged {
                    tracing::error!(
                        "data-plane worker(s) {stuck:?} made no progress for {:.1} s: \
                         no longer telling systemd's watchdog all is well",
                        period.as_secs_f64()
                    );
                    stuck_logged = true;
                }
                last = now;
                std::thread::sleep(period);
            }
        })?;
    tracing::info!(
        "systemd watchdog on: WATCHDOG=1 every {:.1} s while every worker turns",
        period.as_secs_f64()
    );
    Ok(())
}

/// Run rvsd with `args` (without the program name); returns the exit status.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    match options::parse(args) {
        Ok(Command::Help) => {
            print!("{}", options::USAGE);
            0
        }
        Ok(Command::Version) => {
            println!("rvsd {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Command::Run(o)) => {
            log::init(o.log_level.map(log::LogLevel::name));
            match serve(o) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e}");
                    e.exit_code()
                }
            }
        }
        Err(e) => {
            eprintln!("rvsd: {e}\nTry `rvsd --help' for more information.");
            EXIT_USAGE
        }
    }
}

/// Removes a filesystem socket when dropped.
struct SocketFile(Option<std::path::PathBuf>);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0
            && let Err(e) = std::fs::remove_file(p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", p.display());
        }
    }
}

/// Why `endpoint` cannot be bound: who holds it, as far as can be told.
fn holder_of(endpoint: &Endpoint) -> String {
    match endpoint.connect() {
        Ok(s) => match rvs_proto::client::peer_of(&s) {
            Ok((uid, pid)) if pid > 0 => {
                format!("the name is taken by a process of uid {uid} (pid {pid})")
            }
            Ok((uid, _)) => {
                format!("the name is taken by a process of uid {uid} (in another pid namespace)")
            }
            Err(_) => "the name is taken by another process".to_string(),
        },
        Err(_) => "the name is taken by a socket that accepts no connections".to_string(),
    }
}

/// Why rvsd could not start (or go on serving): the message it logs
/// before leaving with [`exit_code`](Self::exit_code).
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("cannot list interfaces: {0}")]
    ListInterfaces(#[source] std::io::Error),
    #[error("--interface {0}: no such interface in this network namespace")]
    NoSuchInterface(String),
    #[error("--group {0}: no such group in /etc/group")]
    NoSuchGroup(String),
    #[error("cannot read /dev/urandom: {0}")]
    Random(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    #[error("RVSD_ENGINES={0}: expected `shared` or `per-worker`")]
    Engines(String),
    #[error("--io {mode}: {source}")]
    Open {
        mode: &'static str,
        #[source]
        source: Box<dataplane::OpenError>,
    },
    #[error("cannot listen on {endpoint}: {why}")]
    Listen { endpoint: Endpoint, why: String },
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] server::MetricsError),
    #[error(transparent)]
    DataPlane(#[from] dataplane::SpawnError),
}

impl ServeError {
    /// [`EXIT_USAGE`] for what the command line (or the rules file) asks
    /// for, [`EXIT_FAILURE`] for what the system refuses.
    fn exit_code(&self) -> u8 {
        match self {
            ServeError::NoSuchInterface(_)
            | ServeError::NoSuchGroup(_)
            | ServeError::Rules(_)
            | ServeError::Engines(_) => EXIT_USAGE,
            ServeError::ListInterfaces(_)
            | ServeError::Random(_)
            | ServeError::Signals(_)
            | ServeError::Open { .. }
            | ServeError::Listen { .. }
            | ServeError::Thread(_)
            | ServeError::Metrics(_)
            | ServeError::DataPlane(_) => EXIT_FAILURE,
        }
    }
}

fn serve(o: Options) -> Result<(), ServeError> {
    let interfaces = if o.interfaces.is_empty() {
        system::default_interfaces().map_err(ServeError::ListInterfaces)?
    } else {
        if let Some(bad) = o.interfaces.iter().find(|i| !system::interface_exists(i)) {
            return Err(ServeError::NoSuchInterface(bad.clone()));
        }
        o.interfaces.clone()
    };
    let group = match &o.group {
        None => None,
        Some(name) => {
            let file = std::fs::read_to_string("/etc/group").unwrap_or_default();
            Some(
                auth::resolve_group(name, &file)
                    .ok_or_else(|| ServeError::NoSuchGroup(name.clone()))?,
            )
        }
    };
    let policy = auth::Policy::current(group);
    let hash_key = system::random_hash_key().map_err(ServeError::Random)?;
    let engine = Engine::new(EngineConfig {
        hash_key,
        max_conns: o.max_conns,
        ..EngineConfig::default()
    });
    let clock = Clock::new();
    let mut state = State::new(engine, system::interface_mtu);
    state.set_open_sync(handler::system_open_sync);

    exit_on_panic();
    // Signals are caught from here on; they take effect once serving starts.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(ServeError::Signals)?;

    if let Some(path) = &o.rules {
        let n = rules::load(&mut state, path, clock.now())?;
        tracing::info!("loaded {n} rules from {}", path.display());
    }
    let engine_mode = match o.engines {
        Some(m) => m,
        None => match std::env::var("RVSD_ENGINES") {
            Ok(v) if !v.is_empty() => {
                engines::EngineMode::parse(&v).ok_or_else(|| ServeError::Engines(v.clone()))?
            }
            _ => engines::EngineMode::PerWorker,
        },
    };
    let dataplane = match o.io {
        IoMode::None => None,
        mode => Some(
            dataplane::DataPlane::open(
                mode,
                &interfaces,
                dataplane::FastPathConfig {
                    mode: o.fast_path,
                    entries: o.fast_path_entries,
                },
                engine_mode,
                &mut state,
            )
            .map_err(|e| ServeError::Open {
                mode: mode.name(),
                source: Box::new(e),
            })?,
        ),
    };
    if let Some(path) = &o.conn_state {
        // The previous rvsd's connections (a restart): before the workers
        // start, so that their first packets find them, and after the
        // engine replicas exist, so that each goes to its own.
        handover::load(state.engines(), path, clock.now());
    }

    let endpoint = o.socket.clone().unwrap_or_else(Endpoint::from_env);
    let listener: UnixListener = endpoint.bind().map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            holder_of(&endpoint)
        } else {
            e.to_string()
        };
        ServeError::Listen {
            endpoint: endpoint.clone(),
            why,
        }
    })?;
    let _socket_file = SocketFile(match &endpoint {
        Endpoint::Path(p) => Some(p.clone()),
        Endpoint::Abstract(_) => None,
    });

    let stop = Arc::new(AtomicBool::new(false));
    let shared = server::Shared::new(state, clock, Arc::clone(&stop), policy);
    if let Some(path) = &o.save {
        shared.set_saver(persist::Saver::new(path.clone()));
        // Whole from the start (the --rules file may have been written
        // by hand).
        shared.save_now();
        tracing::info!("saving the rules to {} after every change", path.display());
    }
    {
        let stop = Arc::clone(&stop);
        let endpoint = endpoint.clone();
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if sig == SIGHUP {
                        // No configuration file to reload (ipvsadm has
                        // none either): write the rules again, if saving.
                        if shared.save_now() {
                            tracing::info!("SIGHUP: rules saved");
                        } else {
                            tracing::warn!("SIGHUP: ignored (no --save file)");
                        }
                        continue;
                    }
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    tracing::info!("{name} received, shutting down");
                    stop.store(true, Ordering::SeqCst);
                    // Wake the accept loop. If that is impossible, leave
                    // from here (nothing in memory needs saving).
                    if endpoint.connect().is_err() {
                        if let Endpoint::Path(p) = &endpoint {
                            let _ = std::fs::remove_file(p);
                        }
                        tracing::info!("stopped");
                        std::process::exit(0);
                    }
                    break;
                }
            })
            .map_err(ServeError::Thread)?;
    }
    server::spawn_housekeeping(Arc::clone(&shared)).map_err(ServeError::Thread)?;
    syncd::spawn(Arc::clone(&shared)).map_err(ServeError::Thread)?;
    if o.fwmark_from_host {
        hostwatch::spawn(Arc::clone(&shared)).map_err(ServeError::Thread)?;
    }
    if let Some(addr) = o.metrics {
        server::spawn_metrics(Arc::clone(&shared), addr, o.metrics_labels.clone())?;
        tracing::info!("metrics at http://{addr}/metrics");
    }

    tracing::info!(
        "version {} serving on {endpoint}",
        env!("CARGO_PKG_VERSION")
    );
    if interfaces.is_empty() {
        tracing::warn!("no interface to serve (none is up)");
    } else {
        tracing::info!("interfaces: {}", interfaces.join(", "));
    }
    let worker = match dataplane {
        None => {
            tracing::info!(
                "--io none: packet forwarding is off (control plane only); \
                 the table is kept and served but no packet is forwarded"
            );
            None
        }
        Some(dp) => {
            tracing::info!(
                io = dp.backend().name(),
                "data plane: --io {}: {}",
                dp.backend().name(),
                dp.describe()
            );
            Some(dp.spawn(Arc::clone(&shared))?)
        }
    };
    // A previous rvsd's restart hand-over table: this data plane claims
    // the traffic now (or none is wanted, with --io none).
    if handover::drop_table_present() {
        match handover::remove_drop_table() {
            Ok(()) => tracing::info!("restart hand-over: drop table removed"),
            Err(e) => tracing::error!(
                "restart hand-over: cannot remove table netdev {}: {e}",
                rvs_io::nft::HANDOVER_TABLE
            ),
        }
    }
    // systemd (Type=notify): ready once the rules are loaded, the data
    // plane is attached and its workers run, and the control socket (bound
    // above) answers. Without $NOTIFY_SOCKET this does nothing.
    let status = {
        let services = shared.lock().services().len();
        format!(
            "serving {services} virtual service(s); packet I/O: {}",
            shared.dataplane_mode()
        )
    };
    if let Err(e) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    ) {
        tracing::warn!("cannot tell systemd it is ready: {e}");
    }
    spawn_watchdog(Arc::clone(&shared)).map_err(ServeError::Thread)?;
    server::accept_loop(&listener, &shared);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // A clean stop with --conn-state hands the connections over to the
    // next rvsd (see `handover`): the drop table while the data plane still
    // claims the traffic, then the table of connections.
    if let (Some(path), Some(_)) = (&o.conn_state, &worker) {
        let st = shared.lock();
        match handover::save(st.engines(), &interfaces, path) {
            Ok(n) => tracing::info!(
                "restart hand-over: {n} connection(s) saved to {}",
                path.display()
            ),
            Err(e) => tracing::error!("restart hand-over: cannot save the connections: {e}"),
        }
    }
    // The workers see the stop flag within their poll interval; stopping
    // joins them (closing the sockets), prints their counters and detaches
    // the classifier or deletes the nftables table.
    if let Some(w) = worker {
        w.stop();
    }
    // Let a request being handled finish.
    drop(shared.lock());
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod serve_error_tests {
    use super::*;

    #[test]
    fn texts_and_exit_codes() {
        let e = ServeError::NoSuchInterface("eth9".into());
        assert_eq!(
            e.to_string(),
            "--interface eth9: no such interface in this network namespace"
        );
        assert_eq!(e.exit_code(), EXIT_USAGE);
        let e = ServeError::Open {
            mode: "auto",
            source: Box::new(dataplane::OpenError::UnknownInterface("eth0".into())),
        };
        assert_eq!(
            e.to_string(),
            "--io auto: eth0: interface not found by the resolver"
        );
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let e = ServeError::Engines("both".into());
        assert_eq!(
            e.to_string(),
            "RVSD_ENGINES=both: expected `shared` or `per-worker`"
        );
        assert_eq!(e.exit_code(), EXIT_USAGE);
        let e = ServeError::Thread(std::io::Error::other("no"));
        assert_eq!(e.to_string(), "cannot start a thread: no");
    }
}
