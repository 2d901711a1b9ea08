// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs health check FILE`: what the start would send, warnings and errors
//! with file:line, on keepalived's own samples and on broken files. No
//! privileges needed.

use std::process::Command;

const RVS: &str = env!("CARGO_BIN_EXE_rvs");

fn check(file: &std::path::Path) -> (bool, String, String) {
    let o = Command::new(RVS)
        .args(["health", "check"])
        .arg(file)
        .output()
        .expect("rvs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn samples_give_ipvsadm_commands() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived");
    let (ok, out, err) = check(&dir.join("keepalived.conf.sample"));
    assert!(ok, "{err}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        [
            "ipvsadm -A -t 10.10.10.2:1358 -s rr -p 50",
            "ipvsadm -a -t 10.10.10.2:1358 -r 192.168.200.2:1358 -m -w 1",
        ]
    );
    let (ok, out, _) = check(&dir.join("keepalived.conf.virtual_server_group"));
    assert!(ok);
    // 3 addresses, a range of 8, 2 marks: 13 services, 2 real servers each.
    assert_eq!(
        out.lines().filter(|l| l.contains(" -A ")).count(),
        13,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains(" -a ")).count(),
        26,
        "{out}"
    );
    assert!(out.contains("ipvsadm -A -f 2 -s rr -p 50\n"), "{out}");
}

#[test]
fn errors_and_warnings_name_file_and_line() {
    let dir = std::env::temp_dir().join(format!("rvs-health-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("keepalived.conf"),
        "global_defs {\n  router_id X\n}\ninclude conf.d/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/web.conf"),
        "virtual_server 10.0.0.1 80 {\n  lb_algo wrr\n  fancy_option 1\n  real_server 10.0.0.2 80 {\n    weight 2\n  }\n}\n",
    )
    .unwrap();
    let (ok, out, err) = check(&dir.join("keepalived.conf"));
    assert!(ok, "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "{}: Unknown keyword 'fancy_option'",
            dir.join("conf.d/web.conf:3").display()
        )
    );
    assert!(
        out.contains("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2"),
        "{out}"
    );
    std::fs::write(
        dir.join("conf.d/web.conf"),
        "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 {\n    weight two\n  }\n}\n",
    )
    .unwrap();
    let (ok, out, err) = check(&dir.join("keepalived.conf"));
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err.trim(),
        format!(
            "rvs: {}: 'weight': invalid number 'two' (expected 0..=65535)",
            dir.join("conf.d/web.conf:3").display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The worked example under dist/keepalived/ parses with no warning but
/// the one for its MISC_CHECK's site script (`/usr/local/bin/check-app`,
/// not on a test host: disabled at load, as keepalived does) and uses
/// every checker rvs runs.
#[test]
fn dist_example_parses_cleanly() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist/keepalived/keepalived.conf");
    let (ok, out, err) = check(&file);
    assert!(ok, "{err}");
    let others: Vec<&str> = err
        .lines()
        .filter(|l| {
            !(l.contains(": Script /usr/local/bin/check-app cannot be accessed")
                && l.ends_with("since not found/accessible"))
        })
        .collect();
    assert!(others.is_empty(), "{err}");
    assert!(out.contains("ipvsadm -A -u 10.2.0.100:53 -s rr"), "{out}");
    assert!(out.contains("ipvsadm -A -f 1 -s wlc -p 300"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    for ck in [
        "TCP_CHECK",
        "HTTP_GET",
        "SSL_GET",
        "DNS_CHECK",
        "UDP_CHECK",
        "SMTP_CHECK",
        "PING_CHECK",
        "MISC_CHECK",
        "FILE_CHECK",
    ] {
        assert!(text.contains(&format!("{ck} {{")), "{ck}");
    }
}

/// A script whose user has supplementary groups (`user NAME :GROUP`)
/// runs through `rvs __exec-as`: groups, gid, uid set, then the script
/// exec'd; a failure is exit status 1 (a failed check). Root needed to
/// switch.
#[test]
fn exec_as_sets_groups_gid_and_uid() {
    let bad = Command::new(RVS).args(["__exec-as", "1"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage"));
    let missing = Command::new(RVS)
        .args(["__exec-as", "0", "0", "0", "--", "/nonexistent/x"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let o = Command::new(RVS)
        .args([
            "__exec-as",
            "65534",
            "65534",
            "65534,0",
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg("id -u; id -g; id -G")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "65534\n65534\n65534 0\n"
    );
}

/// `checker_rt_priority`: the thread that runs the checks (the main one)
/// is SCHED_RR at that priority, reset on fork (a thread it starts, the
/// metrics server's, is not), with RLIMIT_RTTIME; where the kernel refuses
/// SCHED_RR the checker runs on at its nice value and says why. No rvsd
/// is needed: the checker runs without one and keeps trying.
#[test]
fn checker_rt_priority_on_the_checking_thread() {
    let dir = std::env::temp_dir().join(format!("rvs-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        "global_defs {\n checker_rt_priority 7\n checker_rlimit_rttime 500000\n \
         checker_priority 5\n}\nvirtual_server 127.0.0.1 9 {\n delay_loop 1\n \
         real_server 127.0.0.1 9 {\n  TCP_CHECK { connect_timeout 1 }\n }\n}\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut child = Command::new(RVS)
        .args(["health", "run"])
        .arg(&conf)
        .arg("--state")
        .arg(dir.join("state.json"))
        .args([
            "--socket",
            "@rvs-rt-test-nowhere",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let t0 = std::time::Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        if text.contains("metrics at") || t0.elapsed() > std::time::Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // /proc/PID/task/TID/stat: policy is field 41, rt_priority 40, nice 19.
    let fields = |tid: &str| -> Vec<String> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
        let after = &s[s.rfind(')').unwrap() + 2..];
        std::iter::once(String::new())
            .chain(std::iter::once(String::new()))
            .chain(after.split(' ').map(str::to_string))
            .collect()
    };
    let main = fields(&pid.to_string());
    let others: Vec<Vec<String>> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|t| *t != pid.to_string())
        .map(|t| fields(&t))
        .collect();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    // Field numbers from 1: index = number - 1 (two placeholders for pid
    // and comm).
    let (policy, rt, nice) = (&main[40], &main[39], &main[18]);
    if text.contains("cannot raise priority") {
        eprintln!("skipped: SCHED_RR refused here; the fallback is checked");
        assert_eq!((policy.as_str(), nice.as_str()), ("0", "5"), "{text}");
        return;
    }
    assert!(
        text.contains("checker_rt_priority 7 (SCHED_RR, reset on fork)"),
        "{text}"
    );
    assert_eq!(
        (policy.as_str(), rt.as_str()),
        ("2", "7"),
        "SCHED_RR 7: {text}"
    );
    assert_eq!(
        nice, "0",
        "checker_priority is not applied with a real-time one"
    );
    assert!(!others.is_empty(), "the metrics thread");
    for t in &others {
        assert_eq!(t[40], "0", "a thread it started runs at SCHED_OTHER");
    }
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max realtime timeout"))
        .unwrap();
    assert!(
        line.split_whitespace().collect::<Vec<_>>()[3..5] == ["250000", "500000"],
        "{line}"
    );
}
