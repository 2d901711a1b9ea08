//! Firewall-mark rules through the real `rvsd` (`--io none`): the requests,
//! their errors, and `--rules` files holding `rvs fwmark add` lines.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::fwmark::{FwmarkSpec, parse_args};
use rvs_proto::{Reply, Request};

mod common;
use common::*;

/// The daemon, killed when the test ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// rvsd on a private socket, with `rules` as its `--rules` file if given.
fn start(dir: &TempDir, rules: Option<&str>) -> (Daemon, Endpoint) {
    start_with(dir, rules, &[])
}

/// [`start`] with `extra` options.
fn start_with(dir: &TempDir, rules: Option<&str>, extra: &[&str]) -> (Daemon, Endpoint) {
    let sock = dir.path("ctl.sock");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvsd"));
    cmd.args(["--io", "none"])
        .args(extra)
        .arg("--socket")
        .arg(&sock);
    if let Some(text) = rules {
        let file = dir.path("rules");
        std::fs::write(&file, text).unwrap();
        cmd.arg("--rules").arg(&file);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut d = Daemon(child);
    let ep = Endpoint::Path(sock);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ep.connect().is_err() {
        if let Some(st) = d.0.try_wait().unwrap() {
            panic!("rvsd exited early ({st})");
        }
        assert!(Instant::now() < deadline, "rvsd not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    (d, ep)
}

fn spec(args: &str) -> FwmarkSpec {
    parse_args(&args.split_whitespace().collect::<Vec<_>>()).unwrap()
}

fn list(c: &mut Client) -> Vec<String> {
    match c.call(Request::FwmarkList).unwrap() {
        Reply::FwmarkRules(r) => r.iter().map(ToString::to_string).collect(),
        other => panic!("{other:?}"),
    }
}

fn errno(r: Reply) -> (i32, String) {
    match r {
        Reply::Error(e) => (e.errno, e.message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn add_list_delete_flush_and_errors() {
    let dir = TempDir::new("api");
    let (_d, ep) = start(&dir, None);
    let mut c = Client::connect(&ep).unwrap();
    assert!(list(&mut c).is_empty());
    let pfwmc = spec("-d 122.161.1.100 -p tcp --dport 80,443 --set-mark 10");
    assert_eq!(
        c.call(Request::FwmarkAdd(pfwmc.clone())).unwrap(),
        Reply::Ok
    );
    let on_lo = spec("-d 10.1.2.3/24 -i lo --set-mark 11");
    assert_eq!(c.call(Request::FwmarkAdd(on_lo)).unwrap(), Reply::Ok);
    assert_eq!(
        list(&mut c),
        [
            "-d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10",
            "-d 10.1.2.0/24 -i lo --set-mark 11"
        ]
    );
    // Errors change nothing.
    let (e, m) = errno(c.call(Request::FwmarkAdd(pfwmc.clone())).unwrap());
    assert_eq!(e, 17, "{m}");
    let (e, m) = errno(
        c.call(Request::FwmarkAdd(spec(
            "-d 10.0.0.1 -i rvsfwm-none0 --set-mark 1",
        )))
        .unwrap(),
    );
    assert_eq!(e, 19);
    assert!(m.contains("no such interface 'rvsfwm-none0'"), "{m}");
    let mut bad = spec("-d 10.0.0.1 --set-mark 1");
    bad.prefix_len = 40;
    let (e, m) = errno(c.call(Request::FwmarkAdd(bad)).unwrap());
    assert_eq!(e, 22);
    assert!(m.contains("prefix length"), "{m}");
    let (e, _) = errno(
        c.call(Request::FwmarkDel(spec("-d 10.9.9.9 --set-mark 10")))
            .unwrap(),
    );
    assert_eq!(e, 2);
    assert_eq!(list(&mut c).len(), 2);
    // Delete in another spelling of the same rule.
    let same = spec("-p tcp --dports 443,80 -d 122.161.1.100/32 --set-mark 0xa");
    assert_eq!(c.call(Request::FwmarkDel(same)).unwrap(), Reply::Ok);
    assert_eq!(list(&mut c), ["-d 10.1.2.0/24 -i lo --set-mark 11"]);
    assert_eq!(c.call(Request::FwmarkFlush).unwrap(), Reply::Ok);
    assert!(list(&mut c).is_empty());
    // `-C` of the services leaves the rules.
    assert_eq!(c.call(Request::FwmarkAdd(pfwmc)).unwrap(), Reply::Ok);
    assert_eq!(
        c.call(Request::Apply(rvs_proto::Op::Flush)).unwrap(),
        Reply::Ok
    );
    assert_eq!(list(&mut c).len(), 1);
}

#[test]
fn rules_file_with_fwmark_lines() {
    let dir = TempDir::new("rules");
    let text = "\
rvs fwmark add -d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10
-A -f 10 -s rr -p 3600
-a -f 10 -r 192.168.1.11:0 -g -w 1
-a -f 10 -r 192.168.1.12:0 -g -w 1
";
    let (_d, ep) = start(&dir, Some(text));
    let mut c = Client::connect(&ep).unwrap();
    assert_eq!(
        list(&mut c),
        ["-d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10"]
    );
    let Reply::Services(s) = c.call(Request::ListServices).unwrap() else {
        panic!("services");
    };
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].dests.len(), 2);
}

#[test]
fn bad_fwmark_line_refuses_the_whole_file() {
    let dir = TempDir::new("badrules");
    for (text, line) in [
        (
            "-A -f 10 -s rr\nrvs fwmark add -d 10.0.0.1 --set-mark nope\n",
            2,
        ),
        (
            "rvs fwmark add -d 10.0.0.1 -i rvsfwm-none0 --set-mark 10\n-A -f 10 -s rr\n",
            1,
        ),
        (
            "rvs fwmark add -d 10.0.0.1 --set-mark 10\n-A -f 10 -s rr\n-A -f 10 -s rr\n",
            3,
        ),
    ] {
        assert_refused(&dir, text, line);
    }
}

/// `--fwmark-source rvs`: the host's rules are not followed, and the
/// listing says so; by default they are (`host`).
#[test]
fn fwmark_source_switch() {
    for (extra, want) in [(&["--fwmark-source", "rvs"][..], "rvs"), (&[][..], "host")] {
        let dir = TempDir::new("source");
        let (_d, ep) = start_with(&dir, None, extra);
        let mut c = Client::connect(&ep).unwrap();
        match c.call(Request::FwmarkHost).unwrap() {
            Reply::FwmarkHost(h) => {
                assert_eq!(h.source, want, "{extra:?}");
                if want == "rvs" {
                    assert!(h.rules.is_empty() && h.ignored.is_empty());
                }
            }
            other => panic!("{other:?}"),
        }
    }
}
