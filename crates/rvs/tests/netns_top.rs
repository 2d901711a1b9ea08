//! `rvs top` in a real terminal (tmux), against a real rvsd in a network
//! namespace: the screen shows the services and the selected one's real
//! servers, `↓` selects the next service, `q` quits; `--once` prints the
//! same view as text. Needs root and tmux (scripts/test.sh installs it).

mod common;
use common::*;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace with an rvsd (control plane only); removed on drop.
struct Setup {
    ns: String,
    tmux: String,
    rvsd: Child,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.tmux, "kill-server"])
            .stderr(Stdio::null())
            .status();
        let _ = self.rvsd.kill();
        let _ = self.rvsd.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn sibling(name: &str) -> PathBuf {
    PathBuf::from(RVS).with_file_name(name)
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .env_remove("RVS_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("ip netns exec")
}

fn capture(s: &Setup) -> String {
    let o = Command::new("tmux")
        .args(["-L", &s.tmux, "capture-pane", "-p", "-t", "top"])
        .output()
        .expect("tmux capture-pane");
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn wait_for(s: &Setup, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let screen = capture(s);
        if screen.contains(what) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "no {what:?} on the screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn netns_top_in_tmux() {
    if !can_run_with(&["tmux"]) {
        return;
    }
    let ns = format!("rvstop-{}", std::process::id());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .expect("ip")
            .success()
    );
    let rvsd = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(sibling("rvsd"))
        .args(["--io", "none"])
        .env_remove("RVS_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rvsd");
    let s = Setup {
        tmux: ns.clone(),
        ns: ns.clone(),
        rvsd,
    };
    let adm = sibling("rvsadm");
    let adm = adm.to_str().expect("path");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !in_ns(&ns, adm, &["-L", "-n"]).status.success() {
        assert!(Instant::now() < deadline, "rvsd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    for line in [
        "-A -t 10.0.0.100:80 -s wlc",
        "-a -t 10.0.0.100:80 -r 10.0.0.11 -g -w 2",
        "-a -t 10.0.0.100:80 -r 10.0.0.12 -g",
        "-A -u 10.0.0.100:53 -s rr",
        "-a -u 10.0.0.100:53 -r 10.0.0.21 -m",
    ] {
        let args: Vec<&str> = line.split_whitespace().collect();
        assert!(in_ns(&ns, adm, &args).status.success(), "{line}");
    }

    // --once: one frame as text.
    let once = in_ns(&ns, RVS, &["top", "--once"]);
    let text = String::from_utf8_lossy(&once.stdout);
    assert!(once.status.success(), "{text}");
    assert!(text.contains("2 service(s)"), "{text}");
    assert!(text.contains("TCP  10.0.0.100:80") && text.contains("UDP  10.0.0.100:53"));

    // In a terminal.
    let cmd = format!("ip netns exec {ns} {RVS} top");
    assert!(
        Command::new("tmux")
            .args([
                "-L",
                &s.tmux,
                "new-session",
                "-d",
                "-s",
                "top",
                "-x",
                "120",
                "-y",
                "40",
                &cmd,
            ])
            .env_remove("RVS_SOCKET")
            .status()
            .expect("tmux")
            .success()
    );
    let screen = wait_for(&s, "real servers of");
    assert!(screen.contains("rvs top — packet I/O: none"), "{screen}");
    assert!(screen.contains("no data-plane worker"), "{screen}");
    // Sorted by name with `s` three times (in pkt/s → conn/s → active → name).
    for _ in 0..3 {
        Command::new("tmux")
            .args(["-L", &s.tmux, "send-keys", "-t", "top", "s"])
            .status()
            .expect("send-keys");
    }
    let screen = wait_for(&s, "sort: name");
    assert!(
        screen.contains("real servers of TCP  10.0.0.100:80"),
        "{screen}"
    );
    assert!(
        screen.contains("10.0.0.11:80") && screen.contains("10.0.0.12:80"),
        "{screen}"
    );
    Command::new("tmux")
        .args(["-L", &s.tmux, "send-keys", "-t", "top", "Down"])
        .status()
        .expect("send-keys");
    let screen = wait_for(&s, "real servers of UDP  10.0.0.100:53");
    assert!(screen.contains("10.0.0.21:53"), "{screen}");
    Command::new("tmux")
        .args(["-L", &s.tmux, "send-keys", "-t", "top", "q"])
        .status()
        .expect("send-keys");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Command::new("tmux")
        .args(["-L", &s.tmux, "has-session", "-t", "top"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success())
    {
        assert!(Instant::now() < deadline, "q did not quit rvs top");
        std::thread::sleep(Duration::from_millis(100));
    }
}
