// SPDX-License-Identifier: GPL-2.0-or-later
//! The state machine and the scheduler's helpers, without rvsd.

use super::*;
use crate::keepalived::apply::{self, Want};
use crate::keepalived::check::Outcome;
use crate::keepalived::{conf, lex};

fn world(text: &str) -> World {
    let mut w = Vec::new();
    let t = lex::parse_text(text, "k.conf", std::path::Path::new("/x"), &mut w).unwrap();
    let c = conf::build(&t, &mut w).unwrap();
    // Never reconciled (dirty): changes are only recorded, not sent.
    World::new(c, Endpoint::Abstract("rvs-health-test-nowhere".into()))
}

const CONF: &str = "virtual_server 10.0.0.100 80 {\n delay_loop 10\n retry 2\n \
    delay_before_retry 3\n real_server 10.0.0.11 80 {\n TCP_CHECK { }\n }\n}\n";

fn down() -> Outcome {
    Outcome::Down("TCP connection to [10.0.0.11]:tcp:80 failed.".into())
}

#[test]
fn retry_plus_one_failures_then_down_one_success_up() {
    let mut w = world(CONF);
    let s = Duration::from_secs;
    assert!(w.reals[0][0].alive, "without alpha a real server starts up");
    assert_eq!(w.want(0, 0), Want::In(1));
    // retry 2: two retries after delay_before_retry, the third failure
    // in a row is down; then delay_loop.
    assert_eq!(w.result(0, down()), s(3));
    assert_eq!(w.result(0, down()), s(3));
    assert!(w.reals[0][0].alive);
    assert_eq!(w.reals[0][0].checkers[0].retry_it, 2);
    assert_eq!(w.result(0, down()), s(10));
    assert!(!w.reals[0][0].alive);
    assert_eq!(w.want(0, 0), Want::Out);
    assert_eq!(w.reals[0][0].checkers[0].last_result, "fail");
    // While down, failures are retried the same way.
    assert_eq!(w.result(0, down()), s(3));
    // One success: up, counters reset, next in delay_loop.
    assert_eq!(w.result(0, Outcome::Up(None)), s(10));
    assert!(w.reals[0][0].alive);
    assert_eq!(w.reals[0][0].checkers[0].retry_it, 0);
    assert_eq!(w.want(0, 0), Want::In(1));
    // A success between failures resets the count.
    w.result(0, down());
    w.result(0, Outcome::Up(None));
    w.result(0, down());
    w.result(0, down());
    assert!(w.reals[0][0].alive);
}

#[test]
fn alpha_inhibit_and_dynamic_weight() {
    let mut w = world(
        "virtual_server 10.0.0.100 80 {\n alpha\n inhibit_on_failure\n \
         real_server 10.0.0.11 80 {\n weight 4\n TCP_CHECK { }\n \
         MISC_CHECK { misc_path /bin/true\n misc_dynamic }\n }\n}\n",
    );
    assert!(!w.reals[0][0].alive, "alpha: down until the first success");
    assert_eq!(w.want(0, 0), Want::In(0), "inhibited: weight 0");
    w.result(0, Outcome::Up(None));
    assert!(!w.reals[0][0].alive, "alive only when all checkers are up");
    w.result(1, Outcome::Up(Some(7)));
    assert_eq!(w.want(0, 0), Want::In(7));
    w.result(1, Outcome::Up(None));
    assert_eq!(w.want(0, 0), Want::In(7), "exit 0 keeps the weight");
    // MISC_CHECK's retry defaults to 0: one failure is down.
    w.result(1, Outcome::Down("x".into()));
    assert_eq!(w.want(0, 0), Want::In(0));
}

#[test]
fn file_check_removes_adds_and_reweights() {
    let dir = std::env::temp_dir().join(format!("rvs-file-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gate, wf) = (dir.join("gate"), dir.join("weight"));
    std::fs::write(&gate, "1\n").unwrap();
    let _ = std::fs::remove_file(&wf);
    let mut w = world(&format!(
        "track_file gate {{\n file {}\n weight 0\n}}\n\
         track_file wf {{\n file {}\n init_file 2\n}}\n\
         virtual_server 10.0.0.100 80 {{\n real_server 10.0.0.11 80 {{\n weight 10\n \
         FILE_CHECK {{ track_file gate }}\n FILE_CHECK {{ track_file wf\n weight 3 }}\n }}\n}}\n",
        gate.display(),
        wf.display()
    ));
    // Read at the start: the gate's 1 keeps it out from the first batch.
    assert!(!w.reals[0][0].alive);
    assert_eq!(w.want(0, 0), Want::Out);
    assert_eq!(w.reals[0][0].checkers[0].last_result, "value 1");
    // init_file writes a missing file (the value 2), then 2 * 3 is added.
    init_track_files(&w.conf, false);
    assert_eq!(std::fs::read_to_string(&wf).unwrap(), "2\n");
    let read = |w: &mut World, k: usize| {
        let ck = w.conf.services[0].reals[0].checkers[k].clone();
        w.result(k, check::run(&ck))
    };
    assert_eq!(read(&mut w, 1), conf::FILE_POLL);
    std::fs::write(&gate, "0").unwrap();
    read(&mut w, 0);
    assert!(w.reals[0][0].alive);
    assert_eq!(w.want(0, 0), Want::In(16));
    // A negative value lowers it, never below 0.
    std::fs::write(&wf, "-5").unwrap();
    read(&mut w, 1);
    assert_eq!(w.want(0, 0), Want::In(0));
    // Text that is not a number is ignored: the last value stays.
    std::fs::write(&wf, "99999999999").unwrap();
    read(&mut w, 1);
    assert_eq!(w.want(0, 0), Want::In(0));
    assert!(w.reals[0][0].checkers[1].error.contains("Invalid number"));
    // A removed file is 0; the gate back at non-zero removes it.
    std::fs::remove_file(&wf).unwrap();
    read(&mut w, 1);
    assert_eq!(w.want(0, 0), Want::In(10));
    std::fs::write(&gate, "7").unwrap();
    read(&mut w, 0);
    assert_eq!(w.want(0, 0), Want::Out);
    // init_file without overwrite leaves an existing file alone.
    std::fs::write(&wf, "9").unwrap();
    init_track_files(&w.conf, false);
    assert_eq!(std::fs::read_to_string(&wf).unwrap(), "9");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scheduler's path for a FILE_CHECK, without rvsd: its file's
/// inotify event wakes the epoll set, the pool reads it, the state
/// machine applies the value. A write, an atomic rename over it, a
/// removal and a re-creation each reach the real server's weight well
/// within the second the poll took.
#[test]
fn file_check_follows_its_file_at_once() {
    let dir = std::env::temp_dir().join(format!("rvs-file-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("w");
    std::fs::write(&f, "0\n").unwrap();
    let mut w = world(&format!(
        "track_file wf {{\n file {}\n}}\n\
         virtual_server 10.0.0.100 80 {{\n real_server 10.0.0.11 80 {{\n weight 10\n \
         FILE_CHECK {{ track_file wf\n weight 2 }}\n }}\n}}\n",
        f.display()
    ));
    assert_eq!(w.want(0, 0), Want::In(10));
    let checkers: Vec<Checker> = w.conf.services[0].reals[0].checkers.clone();
    let mut files = file_watch::FileWatch::new();
    files.arm(&checkers, |l| panic!("{l}"));
    assert!(!files.polled(0));
    let mut epoll = check::Checks::<()>::new().unwrap();
    epoll.add_source(files.fd().unwrap(), FILES).unwrap();
    let waker = epoll.waker();
    let mut pool = Pool::with_notify(
        4,
        |(k, ck): (usize, Checker)| (k, check::run(&ck)),
        move || waker.wake(),
        |_| {},
    )
    .unwrap();
    let tmp = dir.join("w.tmp");
    let steps: [(&str, &dyn Fn(), u32); 4] = [
        ("write", &|| std::fs::write(&f, "3\n").unwrap(), 16),
        (
            "rename",
            &|| {
                std::fs::write(&tmp, "1\n").unwrap();
                std::fs::rename(&tmp, &f).unwrap();
            },
            12,
        ),
        ("delete", &|| std::fs::remove_file(&f).unwrap(), 10),
        ("create", &|| std::fs::write(&f, "2\n").unwrap(), 14),
    ];
    let bound = Duration::from_millis(200);
    let mut done = Vec::new();
    for (what, op, weight) in steps {
        let t0 = Instant::now();
        op();
        while w.want(0, 0) != Want::In(weight) {
            assert!(t0.elapsed() < bound, "{what}: {:?}", w.want(0, 0));
            epoll.wait(Duration::from_millis(20), &mut done).unwrap();
            if epoll.ready(FILES) {
                for k in files.events(&checkers, log) {
                    if files.start_read(k) {
                        pool.submit((k, checkers[k].clone())).unwrap();
                    }
                }
            }
            while let Some((k, out)) = pool.try_recv().unwrap() {
                w.result(k, out);
                if files.read_done(k) {
                    pool.submit((k, checkers[k].clone())).unwrap();
                }
            }
        }
        eprintln!("{what}: weight {weight} after {:?}", t0.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quorum_loss_puts_the_sorry_server_in() {
    let mut w = world(
        "virtual_server 10.0.0.100 80 {\n quorum 3\n hysteresis 1\n \
         sorry_server 10.0.0.99\n retry 0\n \
         real_server 10.0.0.11 80 { weight 2\n TCP_CHECK { } }\n \
         real_server 10.0.0.12 80 { weight 2\n TCP_CHECK { } }\n}\n",
    );
    // 4 >= 3+1: quorum; the sorry server (port: the service's) is out.
    assert!(w.quorum_up[0]);
    assert_eq!(w.desired(0), [Want::In(2), Want::In(2), Want::Out]);
    assert_eq!(w.conf.services[0].sorry().unwrap().port, 80);
    // 2 >= 3-1: kept (hysteresis).
    w.result(0, down());
    assert!(w.quorum_up[0]);
    assert_eq!(w.desired(0), [Want::Out, Want::In(2), Want::Out]);
    // 0 < 2: lost; the sorry server in, the alive ones out.
    w.result(1, down());
    assert!(!w.quorum_up[0]);
    assert_eq!(w.desired(0), [Want::Out, Want::Out, Want::In(1)]);
    // 2 < 3+1: still lost, the alive one stays out of the pool.
    w.result(0, Outcome::Up(None));
    assert_eq!(w.desired(0), [Want::Out, Want::Out, Want::In(1)]);
    // 4 >= 4: gained; the sorry server out, both in.
    w.result(1, Outcome::Up(None));
    assert!(w.quorum_up[0]);
    assert_eq!(w.desired(0), [Want::In(2), Want::In(2), Want::Out]);
    let ops: Vec<String> = w.plan(&[]).iter().map(apply::ipvsadm_line).collect();
    assert_eq!(ops.len(), 3, "{ops:?}");
}

#[test]
fn reload_keeps_the_state_of_unchanged_real_servers() {
    let mut w = world(CONF);
    w.result(0, down());
    w.result(0, down());
    w.result(0, down());
    assert!(!w.reals[0][0].alive);
    let mut t = Vec::new();
    let text = CONF.replace(
        "real_server 10.0.0.11 80 {",
        "real_server 10.0.0.11 80 {\n weight 5\n",
    ) + "virtual_server 10.0.0.101 80 {\n real_server 10.0.0.12 80 { }\n}\n";
    let tree = lex::parse_text(&text, "k.conf", std::path::Path::new("/x"), &mut t).unwrap();
    let c = conf::build(&tree, &mut t).unwrap();
    w.reload(c);
    assert!(!w.reals[0][0].alive, "kept its down state");
    assert_eq!(w.reals[0][0].weight, 5);
    assert!(w.reals[1][0].alive);
    // Dropping the first service deletes it at the next reconcile.
    let tree = lex::parse_text(
        "virtual_server 10.0.0.101 80 {\n real_server 10.0.0.12 80 { }\n}\n",
        "k.conf",
        std::path::Path::new("/x"),
        &mut t,
    )
    .unwrap();
    w.reload(conf::build(&tree, &mut t).unwrap());
    assert_eq!(w.gone.len(), 1);
    assert!(w.dirty);
}

/// An attempt that could not run (its socket not bound: keepalived's
/// connect_error) neither succeeds nor counts as a failure: the state and
/// the retry count stay, and the next attempt is due after delay_loop.
#[test]
fn reschedule_neither_succeeds_nor_counts() {
    let mut w = world(CONF);
    let s = Duration::from_secs;
    let not_run = || Outcome::Reschedule("TCP socket bind failed (x). Rescheduling.".into());
    assert_eq!(w.result(0, down()), s(3));
    assert_eq!(w.reals[0][0].checkers[0].retry_it, 1);
    for _ in 0..5 {
        assert_eq!(w.result(0, not_run()), s(10));
    }
    let st = &w.reals[0][0].checkers[0];
    assert_eq!((st.retry_it, st.up), (1, true));
    assert_eq!(st.last_result, "fail");
    assert!(st.error.contains("bind failed"), "{}", st.error);
    assert_eq!(w.result(0, down()), s(3));
    assert_eq!(w.result(0, down()), s(10));
    assert!(!w.reals[0][0].alive);
    // While down, the same: it stays down.
    assert_eq!(w.result(0, not_run()), s(10));
    assert!(!w.reals[0][0].alive);
    assert_eq!(w.reals[0][0].checkers[0].retry_it, 0);
    assert_eq!(w.result(0, Outcome::Up(None)), s(10));
    assert!(w.reals[0][0].alive);
}

/// A notify script runs as global_defs' script_user (root needed to
/// switch; skipped otherwise).
#[test]
fn notify_script_runs_as_script_user() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching a script's user needs root");
        return;
    }
    let nobody = crate::keepalived::runas::RunAs::resolve("nobody", None, false).unwrap();
    let dir = std::env::temp_dir().join(format!("rvs-ka-notify-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    // nobody writes its answer here.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = dir.join("id");
    let mut w = world(&format!(
        "global_defs {{\n script_user nobody\n}}\nvirtual_server 10.0.0.100 80 {{\n \
         real_server 10.0.0.11 80 {{\n  notify_down \"/bin/sh -c 'id -u; id -g' > {}\"\n  \
         TCP_CHECK {{ retry 0 }}\n }}\n}}\n",
        out.display()
    ));
    w.result(0, down());
    assert!(!w.reals[0][0].alive);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        match std::fs::read_to_string(&out) {
            Ok(t) if t.lines().count() == 2 => break t,
            _ if std::time::Instant::now() > deadline => panic!("the notify script did not run"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert_eq!(text, format!("{}\n{}\n", nobody.uid, nobody.gid));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `omega`: at shutdown the notify_down of each real server alive, then
/// the quorum_down, of the virtual servers with omega only; run together,
/// a hung one killed after a second.
#[test]
fn omega_runs_the_down_notifiers_at_shutdown() {
    let dir = std::env::temp_dir().join(format!("rvs-omega-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let mut w = world(&format!(
        "virtual_server 10.0.0.100 80 {{\n omega\n quorum_down \"/bin/touch {d}/quorum\"\n \
         real_server 10.0.0.11 80 {{\n  notify_down \"/bin/touch {d}/rs11\"\n  TCP_CHECK {{ retry 0 }}\n }}\n \
         real_server 10.0.0.12 80 {{\n  notify_down \"/bin/touch {d}/rs12\"\n  TCP_CHECK {{ retry 0 }}\n }}\n \
         real_server 10.0.0.13 80 {{\n  notify_down \"/bin/sleep 30\"\n }}\n}}\n\
         virtual_server 10.0.0.101 80 {{\n quorum_down \"/bin/touch {d}/other\"\n \
         real_server 10.0.0.14 80 {{\n  notify_down \"/bin/touch {d}/rs14\"\n }}\n}}\n"
    ));
    // 10.0.0.12 is down: its notify_down ran then, not at shutdown.
    w.result(1, Outcome::Down("x".into()));
    assert!(!w.reals[0][1].alive);
    let lines: Vec<String> = w.omega_scripts().into_iter().map(|(l, _)| l).collect();
    assert_eq!(
        lines,
        [
            "Shutting down service [10.0.0.11]:tcp:80 from VS [10.0.0.100]:tcp:80: notify_down",
            "Shutting down service [10.0.0.13]:tcp:80 from VS [10.0.0.100]:tcp:80: notify_down",
            "Shutting down VS [10.0.0.100]:tcp:80: quorum_down",
        ]
    );
    // Its notify_down at the change runs on a thread of its own: gone
    // before the shutdown's.
    let t0 = Instant::now();
    while !dir.join("rs12").exists() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_file(dir.join("rs12")).unwrap();
    let t0 = Instant::now();
    omega(&mut w);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "the hung one is killed after a second: {took:?}"
    );
    for (f, want) in [
        ("rs11", true),
        ("quorum", true),
        ("rs12", false),
        ("rs14", false),
        ("other", false),
    ] {
        assert_eq!(dir.join(f).exists(), want, "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// smtp_alert: a checker that goes down (and its real server) mails
/// keepalived's subject and body; a virtual server with smtp_alert that
/// loses its quorum mails too; `smtp_alert false` on a real server
/// mails nothing for it.
#[test]
fn smtp_alerts_for_real_servers_and_quorum() {
    use crate::keepalived::alert::{TEST_WAIT, tests::mail_server};
    let (port, mails) = mail_server();
    let mut w = world(&format!(
        "global_defs {{\n router_id LVS_T\n notification_email {{\n  ops@example.com\n }}\n \
         notification_email_from lvs@example.com\n smtp_server 127.0.0.1 {port}\n}}\n\
         virtual_server 10.0.0.100 80 {{\n smtp_alert\n quorum 2\n \
         real_server 10.0.0.11 80 {{\n  TCP_CHECK {{ retry 0 }}\n }}\n \
         real_server 10.0.0.12 80 {{\n  smtp_alert false\n  TCP_CHECK {{ retry 0 }}\n }}\n}}\n"
    ));
    assert_eq!(w.conf.services[0].reals[0].smtp_alert, Some(true));
    w.result(1, Outcome::Down("x".into()));
    // The quorum (2 of 2) is lost: the virtual server's mail; rs2 itself
    // sends none.
    let m = mails.recv_timeout(TEST_WAIT).expect("a mail");
    assert!(
        m.contains("Subject: [LVS_T] Virtualserver [10.0.0.100]:tcp:80 - DOWN\r\n"),
        "{m}"
    );
    assert!(m.contains("\r\n=> Lost quorum 2+0=2 <= 1 <=\r\n"), "{m}");
    w.result(0, Outcome::Down("x".into()));
    let m = mails.recv_timeout(TEST_WAIT).expect("a mail");
    assert!(
        m.contains(
            "Subject: [LVS_T] Realserver [10.0.0.11]:tcp:80 of virtual server \
             [10.0.0.100]:tcp:80 - DOWN\r\n"
        ),
        "{m}"
    );
    assert!(
        m.contains("\r\n=> TCP CHECK failed on service <=\r\n"),
        "{m}"
    );
    assert!(m.contains("RCPT TO:<ops@example.com>"), "{m}");
    assert!(
        mails.recv_timeout(Duration::from_millis(300)).is_err(),
        "one mail each"
    );
}

/// Where the netlink socket of address events is refused (a sandbox),
/// ha_suspend reads the addresses once a second instead, and says why;
/// where it opens, on its events only. Without ha_suspend, no socket.
#[test]
fn ha_suspend_without_netlink_reads_addresses_every_second() {
    static LOG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    fn keep(l: &str) {
        LOG.lock().unwrap().push(l.to_string());
    }
    let w = world(
        "virtual_server 10.0.0.100 80 {\n ha_suspend\n real_server 10.0.0.11 80 {\n \
         TCP_CHECK { }\n }\n}\n",
    );
    let mut tcp = check::Checks::new().unwrap();
    let mut addrs = None;
    let refused = || Err(std::io::Error::from_raw_os_error(1));
    follow_addresses_with(&w, &mut addrs, &mut tcp, refused, keep);
    assert!(addrs.is_none());
    let log = LOG.lock().unwrap().clone();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with("ha_suspend: cannot follow netlink address events (")
            && log[0].ends_with("this host's addresses are read once a second"),
        "{log:?}"
    );
    let now = Instant::now();
    assert_eq!(
        next_address_look(addrs.is_some(), now),
        Some(now + Duration::from_secs(1))
    );
    // Opened: no polling.
    follow_addresses_with(&w, &mut addrs, &mut tcp, addr_watch::AddrWatch::open, keep);
    assert!(addrs.is_some(), "{:?}", LOG.lock().unwrap());
    assert_eq!(next_address_look(addrs.is_some(), now), None);
    // Without ha_suspend nothing is opened (nor said).
    let plain = world(CONF);
    let mut none = None;
    follow_addresses_with(&plain, &mut none, &mut tcp, refused, keep);
    assert!(none.is_none());
    assert_eq!(LOG.lock().unwrap().len(), 1);
}
