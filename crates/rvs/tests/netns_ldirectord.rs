//! ldirectord (Debian's, unchanged) drives rvsd through rvsadm under the
//! name `ipvsadm`: it adds the virtual service and its real servers, parses
//! `ipvsadm -L -n` to see what is there (NAT real servers on another
//! port than the service's: DR and TUN real servers take the service's port,
//! as ipvsadm maps them), removes a real server whose port
//! stops answering and puts it back when it answers again; with
//! `quiescent = yes` it sets the weight to 0 instead; with every real server
//! down its `fallback` server comes in.
//!
//! ldirectord finds ipvsadm at `/sbin/ipvsadm` or `/usr/sbin/ipvsadm`
//! (where the rvs package puts the name through update-alternatives, checked
//! by scripts/test-package.sh) or, in its debug mode (`-d`), at
//! `./ipvsadm`: this test runs it in debug mode from a directory holding an
//! `ipvsadm` symlink to rvsadm, so that the host's /usr/sbin stays as it
//! is. `RVS_LDIRECTORD` names the script (scripts/test.sh extracts it from
//! Debian's package without installing it: the package depends on the
//! kernel's ipvsadm); skipped with a message without it.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sibling(name: &str) -> PathBuf {
    PathBuf::from(RVS).with_file_name(name)
}

fn ldirectord() -> Option<PathBuf> {
    let p = std::env::var_os("RVS_LDIRECTORD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/ldirectord"));
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var_os("RVS_REQUIRE_LDIRECTORD").is_none(),
        "RVS_REQUIRE_LDIRECTORD is set but {} is missing",
        p.display()
    );
    eprintln!(
        "SKIPPED: no ldirectord ({}; scripts/test.sh provides it)",
        p.display()
    );
    None
}

/// A namespace with rvsd (control plane only), servers and ldirectord;
/// everything removed on drop.
struct World {
    ns: String,
    dir: PathBuf,
    children: Vec<Child>,
    pidfile: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

impl World {
    fn spawn(&mut self, args: &[&str]) -> usize {
        let c = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .current_dir(&self.dir)
            .env_remove("RVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        self.children.push(c);
        self.children.len() - 1
    }

    fn server(&mut self, addr: &str) -> usize {
        let listen = format!("TCP-LISTEN:8080,bind={addr},fork,reuseaddr");
        self.spawn(&["socat", &listen, "SYSTEM:echo ok"])
    }

    fn stop(&mut self, idx: usize) {
        let _ = self.children[idx].kill();
        let _ = self.children[idx].wait();
    }

    fn list(&self) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(sibling("rvsadm"))
            .args(["-L", "-n"])
            .env_remove("RVS_SOCKET")
            .output()
            .expect("rvsadm");
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Wait until `pred` holds for `rvsadm -L -n`.
    fn until(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let l = self.list();
            if pred(&l) {
                return l;
            }
            let log = std::fs::read_to_string(self.dir.join("ldirectord.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "{what}: never; table:\n{l}\nldirectord log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The weight of real server `rs` in the listing (`None`: absent).
fn weight(list: &str, rs: &str) -> Option<u32> {
    list.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == "->" && f[1] == rs)
        .and_then(|f| f[3].parse().ok())
}

fn run(tag: &str, quiescent: bool) {
    if !can_run_with(&["socat", "perl"]) {
        return;
    }
    let Some(ld) = ldirectord() else {
        return;
    };
    let ns = format!("rvsld-{tag}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&ns);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let cf = format!("{ns}.cf");
    let mut w = World {
        ns: ns.clone(),
        dir: dir.clone(),
        children: Vec::new(),
        pidfile: PathBuf::from(format!("/var/run/ldirectord.{cf}.pid")),
    };
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .expect("ip")
            .success()
    );
    let _ = Command::new("ip")
        .args(["-n", &ns, "link", "set", "lo", "up"])
        .status();
    std::os::unix::fs::symlink(sibling("rvsadm"), dir.join("ipvsadm")).expect("symlink");
    let rvsd = sibling("rvsd");
    w.spawn(&[rvsd.to_str().expect("path"), "--io", "none"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.list().starts_with("IP Virtual Server") {
        assert!(Instant::now() < deadline, "rvsd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s2 = w.server("127.0.0.2");
    let s3 = w.server("127.0.0.3");
    w.server("127.0.0.9");
    std::fs::write(
        dir.join(&cf),
        format!(
            "checktimeout=1\ncheckinterval=1\nautoreload=no\nquiescent={q}\n\
             logfile=\"{log}\"\n\
             virtual=10.0.0.100:80\n\
             \treal=127.0.0.2:8080 masq 2\n\
             \treal=127.0.0.3:8080 masq 1\n\
             \tfallback=127.0.0.9:8080 masq\n\
             \tchecktype=connect\n\tscheduler=wlc\n\tprotocol=tcp\n",
            q = if quiescent { "yes" } else { "no" },
            log = dir.join("ldirectord.log").display()
        ),
    )
    .expect("config");
    let ld = ld.to_str().expect("path").to_string();
    w.spawn(&["perl", &ld, "-d", &cf, "start"]);

    // Both real servers in, with their weights, from ldirectord's own -A/-a.
    let l = w.until("both real servers in", |l| {
        weight(l, "127.0.0.2:8080") == Some(2) && weight(l, "127.0.0.3:8080") == Some(1)
    });
    assert!(l.contains("TCP  10.0.0.100:80 wlc"), "{l}");
    // One stops answering: out (or weight 0 with quiescent), the other stays.
    w.stop(s2);
    if quiescent {
        w.until("quiesced", |l| weight(l, "127.0.0.2:8080") == Some(0));
    } else {
        w.until("removed", |l| weight(l, "127.0.0.2:8080").is_none());
    }
    assert_eq!(weight(&w.list(), "127.0.0.3:8080"), Some(1));
    // Back: in again with its weight.
    let s2 = w.server("127.0.0.2");
    w.until("back", |l| weight(l, "127.0.0.2:8080") == Some(2));
    // Every real server down: the fallback server comes in.
    w.stop(s2);
    w.stop(s3);
    w.until("fallback in", |l| weight(l, "127.0.0.9:8080") == Some(1));
}

#[test]
fn netns_ldirectord_removes_and_restores_a_real_server() {
    run("rm", false);
}

#[test]
fn netns_ldirectord_quiescent_sets_weight_zero() {
    run("q", true);
}
