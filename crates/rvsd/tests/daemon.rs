//! The real `rvsd` binary: serve on a private socket, answer a client, apply
//! batches atomically, stop cleanly on SIGTERM; refuse a bad rules file.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{
    BatchLine, DestSpec, Fwd, Op, Proto, Reply, Request, SVC_F_HASHED, ServiceId, ServiceSpec,
    TunnelSpec,
};

mod common;
mod conn_state;
use common::*;
use conn_state::conn_state_file;

/// The daemon, killed if the test ends without stopping it.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &TempDir, env_socket: &str, args: &[&str]) -> Daemon {
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = dir.path(&format!("rvsd-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        // Control plane only: no packet I/O on the host's interfaces.
        let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .args(["--io", "none"])
            .args(args)
            .env("RVS_SOCKET", env_socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until `ep` answers.
    fn wait_ready(&mut self, ep: &Endpoint) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while ep.connect().is_err() {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("rvsd exited early ({st}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "rvsd not ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the exit, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "rvsd did not exit in {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Addr {
        proto: Proto::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn spec(id: ServiceId, sched: &str) -> ServiceSpec {
    ServiceSpec {
        id,
        scheduler: sched.into(),
        flags: 0,
        timeout: 0,
        netmask: u32::MAX,
        pe: None,
    }
}

fn dest(addr: &str, port: u16) -> DestSpec {
    DestSpec {
        addr: addr.parse().unwrap(),
        port,
        fwd: Fwd::Masq,
        weight: 2,
        u_threshold: 0,
        l_threshold: 0,
        tunnel: TunnelSpec::default(),
    }
}

fn errno(r: &Reply) -> i32 {
    match r {
        Reply::Error(e) => e.errno,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn services(c: &mut Client) -> Vec<rvs_proto::ServiceInfo> {
    match c.call(Request::ListServices).unwrap() {
        Reply::Services(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn serves_then_stops_on_sigterm() {
    let dir = TempDir::new("serve");
    let sock = dir.path("ctl.sock");
    let ep = Endpoint::Path(sock.clone());
    // The endpoint comes from RVS_SOCKET.
    let mut d = Daemon::start(&dir, sock.to_str().unwrap(), &["--interface", "lo"]);
    d.wait_ready(&ep);

    let mut c = Client::connect(&ep).unwrap();
    assert_eq!(
        c.call(Request::Info).unwrap(),
        Reply::Info {
            version: 0x010201,
            conn_tab_size: 4096
        }
    );
    let web = tcp("10.0.0.1", 80);
    assert_eq!(
        c.call(Request::Apply(Op::AddService(spec(web, "rr"))))
            .unwrap(),
        Reply::Ok
    );
    assert_eq!(
        c.call(Request::Apply(Op::AddDest {
            service: web,
            dest: dest("192.168.1.10", 8080),
        }))
        .unwrap(),
        Reply::Ok
    );
    // Errors with the kernel's errnos.
    let r = c
        .call(Request::Apply(Op::AddService(spec(web, "rr"))))
        .unwrap();
    assert_eq!(errno(&r), 17);
    let r = c
        .call(Request::Apply(Op::DeleteService(tcp("10.0.0.2", 80))))
        .unwrap();
    assert_eq!(errno(&r), 3);
    let r = c
        .call(Request::Apply(Op::DeleteDest {
            service: web,
            addr: "192.168.1.99".parse().unwrap(),
            port: 80,
        }))
        .unwrap();
    assert_eq!(errno(&r), 2);

    let before = services(&mut c);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].spec.flags, SVC_F_HASHED);
    assert_eq!(before[0].dests[0].spec, dest("192.168.1.10", 8080));

    // A batch with a bad line changes nothing and names the line.
    let bad_batch = vec![
        BatchLine {
            line: 1,
            op: Op::AddService(spec(tcp("10.0.0.3", 80), "wlc")),
        },
        BatchLine {
            line: 2,
            op: Op::Flush,
        },
        BatchLine {
            line: 3,
            op: Op::AddDest {
                service: web,
                dest: dest("192.168.1.11", 80),
            },
        },
    ];
    match c.call(Request::Batch(bad_batch)).unwrap() {
        Reply::Error(e) => {
            assert_eq!((e.errno, e.line), (3, Some(3)));
            assert!(matches!(e.op, Some(Op::AddDest { .. })));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(services(&mut c), before);

    // A good batch applies whole.
    let good = vec![
        BatchLine {
            line: 1,
            op: Op::AddService(spec(tcp("10.0.0.3", 80), "wlc")),
        },
        BatchLine {
            line: 2,
            op: Op::AddDest {
                service: tcp("10.0.0.3", 80),
                dest: dest("192.168.1.12", 80),
            },
        },
    ];
    assert_eq!(c.call(Request::Batch(good)).unwrap(), Reply::Ok);
    let after = services(&mut c);
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].spec.id, tcp("10.0.0.3", 80), "newest first");

    // Garbage on a raw connection gets an error; the connection stays usable.
    let mut raw = UnixStream::connect(&sock).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"{not json\n{\"version\":99,\"request\":\"Info\"}\n")
        .unwrap();
    raw.write_all(&rvs_proto::encode(&rvs_proto::Envelope {
        version: rvs_proto::PROTOCOL_VERSION,
        request: Request::GetTimeouts,
    }))
    .unwrap();
    let mut r = BufReader::new(raw.try_clone().unwrap());
    let mut next = || {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        rvs_proto::decode::<Reply>(l.trim_end().as_bytes()).unwrap()
    };
    assert_eq!(errno(&next()), 22);
    match next() {
        Reply::Error(e) => assert!(e.message.contains("version 99"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next(),
        Reply::Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }
    );

    // SIGTERM with clients still connected: prompt, clean exit, socket gone.
    d.signal("TERM");
    let st = d.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0), "{}", d.log());
    assert!(!sock.exists(), "socket file left behind");
    assert!(d.log().contains("shutting down"), "{}", d.log());
}

#[test]
fn abstract_socket_and_sigint() {
    let dir = TempDir::new("abstract");
    let name = dir.0.file_name().unwrap().to_str().unwrap().to_string();
    let ep = Endpoint::Abstract(name.clone());
    // --socket wins over RVS_SOCKET.
    let mut d = Daemon::start(
        &dir,
        dir.path("unused.sock").to_str().unwrap(),
        &["--socket", &format!("@{name}")],
    );
    d.wait_ready(&ep);
    let mut c = Client::connect(&ep).unwrap();
    assert_eq!(
        c.call(Request::ListDaemons).unwrap(),
        Reply::Daemons(vec![])
    );
    assert!(!dir.path("unused.sock").exists());
    // A second daemon on the same endpoint refuses to start.
    let mut d2 = Daemon::start(&dir, "", &["--socket", &format!("@{name}")]);
    let st = d2.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(1));
    d.signal("INT");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn bad_rules_file_exits_2_with_the_line() {
    let dir = TempDir::new("rules");
    // A line rvsadm's grammar rejects.
    assert_refused(
        &dir,
        "# saved by rvsadm -S\n-A -t 10.0.0.1:80 -s rr\n-A --bogus-option\n",
        3,
    );
    // A line the table rejects (the service is not defined).
    assert_refused(
        &dir,
        "-A -t 10.0.0.1:80 -s rr\n\n-a -t 10.0.0.1:80 -r 192.168.1.10:80 -g -w 1\n\
         -a -t 10.0.0.2:80 -r 192.168.1.10:80 -g -w 1\n",
        4,
    );
    // Unreadable file.
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args([
            "--io",
            "none",
            "--rules",
            dir.path("missing").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn good_rules_file_is_loaded() {
    let dir = TempDir::new("goodrules");
    let file = dir.path("rules");
    std::fs::write(
        &file,
        "# comment\n-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.1.10:80 -g -w 3\n\
         -a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 1\n",
    )
    .unwrap();
    let sock = dir.path("ctl.sock");
    let ep = Endpoint::Path(sock.clone());
    let mut d = Daemon::start(
        &dir,
        "",
        &[
            "--rules",
            file.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ],
    );
    d.wait_ready(&ep);
    let mut c = Client::connect(&ep).unwrap();
    let s = services(&mut c);
    assert_eq!(s.len(), 1, "{}", d.log());
    assert_eq!(s[0].spec.scheduler, "rr");
    let addrs: Vec<String> = s[0].dests.iter().map(|d| d.spec.addr.to_string()).collect();
    assert_eq!(addrs, ["192.168.1.11", "192.168.1.10"]);
    assert_eq!(s[0].dests[1].spec.weight, 3);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(!Path::new(&sock).exists());
}

#[test]
fn options_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--io", "none", "--interface", "no-such-if9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-if9"));
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--io", "dpdk"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected `auto`, `xdp`, `packet` or `none`")
    );
    // A bad --engines or RVSD_ENGINES: refused before anything is served.
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--engines", "per-cpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--engines per-cpu: expected `shared` or `per-worker`")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--io", "none", "--socket", "/nonexistent-dir/rvsd.sock"])
        .env("RVSD_ENGINES", "bar")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("RVSD_ENGINES=bar: expected `shared` or `per-worker`")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rvsd "));
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--rules"));
}

/// `--save`: every acknowledged change is on disk, so a `kill -9` right
/// after it loses nothing: restarted with `--rules` on the same file, rvsd
/// has the same table (fwmark rules included). SIGHUP neither stops rvsd
/// nor changes the file.
#[test]
fn save_survives_kill_9_and_sighup() {
    let dir = TempDir::new("save");
    let file = dir.path("rules");
    std::fs::write(&file, "-A -t 10.0.0.1:80 -s rr\n").unwrap();
    let sock = dir.path("ctl.sock");
    let ep = Endpoint::Path(sock.clone());
    let f = file.to_str().unwrap();
    let args = [
        "--rules",
        f,
        "--save",
        f,
        "--socket",
        sock.to_str().unwrap(),
    ];
    let mut d = Daemon::start(&dir, "", &args);
    d.wait_ready(&ep);
    let mut c = Client::connect(&ep).unwrap();
    let svc = tcp("10.0.0.2", 443);
    for op in [
        Op::AddService(spec(svc, "wlc")),
        Op::AddDest {
            service: svc,
            dest: dest("192.168.1.20", 443),
        },
        Op::AddDest {
            service: tcp("10.0.0.1", 80),
            dest: dest("192.168.1.10", 8080),
        },
    ] {
        assert_eq!(c.call(Request::Apply(op)).unwrap(), Reply::Ok);
    }
    let spec_fw = rvs_proto::fwmark::parse_args(
        &[
            "-d",
            "10.0.0.9",
            "-p",
            "tcp",
            "--dport",
            "80",
            "--set-mark",
            "7",
        ]
        .map(String::from),
    )
    .unwrap();
    assert_eq!(c.call(Request::FwmarkAdd(spec_fw)).unwrap(), Reply::Ok);
    let before = services(&mut c);
    // Acknowledged means saved: kill -9 at once.
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(5));
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.starts_with("rvs fwmark add -d 10.0.0.9/32 -p tcp --dport 80 --set-mark 7\n"),
        "{saved}"
    );
    assert!(
        saved.contains("-a -t 10.0.0.2:443 -r 192.168.1.20:443 -m -w 2"),
        "{saved}"
    );
    let _ = std::fs::remove_file(&sock);
    let mut d = Daemon::start(&dir, "", &args);
    d.wait_ready(&ep);
    let mut c = Client::connect(&ep).unwrap();
    let after = services(&mut c);
    let key = |s: &[rvs_proto::ServiceInfo]| {
        let mut v: Vec<String> = s
            .iter()
            .map(|s| {
                format!(
                    "{:?} {:?}",
                    s.spec,
                    s.dests.iter().map(|d| &d.spec).collect::<Vec<_>>()
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&after), key(&before), "{}", d.log());
    match c.call(Request::FwmarkList).unwrap() {
        Reply::FwmarkRules(r) => assert_eq!(r.len(), 1),
        other => panic!("{other:?}"),
    }
    // SIGHUP: still serving, the file rewritten the same.
    d.signal("HUP");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "SIGHUP stopped rvsd:\n{}",
        d.log()
    );
    assert_eq!(services(&mut Client::connect(&ep).unwrap()).len(), 2);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), saved);
    assert!(d.log().contains("SIGHUP: rules saved"), "{}", d.log());
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

/// Without `--save`, SIGHUP is logged and ignored (it used to kill rvsd
/// without cleanup).
#[test]
fn sighup_without_save_is_ignored() {
    let dir = TempDir::new("hup");
    let sock = dir.path("ctl.sock");
    let ep = Endpoint::Path(sock.clone());
    let mut d = Daemon::start(&dir, "", &["--socket", sock.to_str().unwrap()]);
    d.wait_ready(&ep);
    d.signal("HUP");
    std::thread::sleep(Duration::from_millis(200));
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log());
    assert!(d.log().contains("SIGHUP: ignored"), "{}", d.log());
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

/// `-L -c` in parts: a table of 40 000 connections (from `--conn-state`)
/// comes as several parts of at most 16384 that together are the whole
/// table, and `rvsadm -L -c -n`, which prints them part by part, prints
/// exactly what the whole table in one reply gives (the debug build's
/// RVSADM_LIST_WHOLE).
#[test]
fn connection_listing_comes_in_parts() {
    const N: u32 = 40_000;
    let dir = TempDir::new("listparts");
    let rules = dir.path("rules");
    std::fs::write(
        &rules,
        "-A -t 10.0.0.100:8080 -s rr\n-a -t 10.0.0.100:8080 -r 10.0.0.11:8080 -g\n",
    )
    .unwrap();
    let state = dir.path("conns");
    conn_state_file(&state, N, 8080);
    let sock = dir.path("ctl.sock");
    let ep = Endpoint::Path(sock.clone());
    let mut d = Daemon::start(
        &dir,
        "",
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--conn-state",
            state.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ],
    );
    d.wait_ready(&ep);
    let mut c = Client::connect(&ep).unwrap();
    let mut parts = Vec::new();
    let mut listed = Vec::new();
    let err = c
        .list_conns(|p| {
            parts.push(p.len());
            listed.extend(p.into_iter().map(|e| (e.caddr, e.cport)));
            Ok(())
        })
        .unwrap();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(listed.len(), N as usize, "parts {parts:?}\n{}", d.log());
    assert!(parts.len() >= 3, "parts {parts:?}");
    assert!(parts.iter().all(|&n| n <= 16384), "parts {parts:?}");
    let Reply::Conns(whole) = c.call(Request::ListConns).unwrap() else {
        panic!("no connections reply");
    };
    let mut whole: Vec<_> = whole.into_iter().map(|e| (e.caddr, e.cport)).collect();
    listed.sort();
    whole.sort();
    assert_eq!(listed, whole);
    // The same connection still answers other requests after a listing.
    assert_eq!(services(&mut c).len(), 1);
    // The compact records (rvsadm's way): the same entries, field for
    // field but the expiry, which may tick between the listings.
    let by_client = |v: &mut Vec<rvs_proto::ConnInfo>| {
        v.iter_mut().for_each(|e| e.expire_secs = 0);
        v.sort_by_key(|e| (e.caddr, e.cport));
    };
    let mut records = Vec::new();
    let err = c
        .list_conn_records(|r| {
            records.push(r.to_info());
            Ok(())
        })
        .unwrap();
    assert!(err.is_none(), "{err:?}");
    let Reply::Conns(mut whole) = c.call(Request::ListConns).unwrap() else {
        panic!("no connections reply");
    };
    by_client(&mut records);
    by_client(&mut whole);
    assert_eq!(records.len(), N as usize);
    assert!(
        records == whole,
        "the compact listing differs from the whole one"
    );
    assert_eq!(services(&mut c).len(), 1);
    // rvsadm prints it part by part, the same text as in one reply.
    let adm = |whole: bool| {
        let mut cmd = Command::new(bin("rvsadm"));
        cmd.args(["-L", "-c", "-n"]).env("RVS_SOCKET", &sock);
        if whole {
            cmd.env("RVSADM_LIST_WHOLE", "1");
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let streamed = adm(false);
    assert_eq!(streamed.lines().count(), N as usize + 2);
    assert!(streamed.starts_with("IPVS connection entries\npro expire state"));
    if cfg!(debug_assertions) {
        // Expiry seconds may tick between the two listings.
        let norm = |s: &str| -> Vec<String> {
            let mut v: Vec<String> = s
                .lines()
                .map(|l| {
                    let mut w: Vec<&str> = l.split_whitespace().collect();
                    if w.len() > 1 && w[0] == "TCP" {
                        w[1] = "";
                    }
                    w.join(" ")
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(norm(&streamed), norm(&adm(true)));
    }
    // A reader that goes away early ends rvsadm quietly.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' -L -c -n | head -n 3 >/dev/null",
            bin("rvsadm").display()
        ))
        .env("RVS_SOCKET", &sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "rvsadm | head hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
}
