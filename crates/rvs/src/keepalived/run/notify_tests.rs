// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's notifications: the FIFOs' lines at each change, at the
//! start (`rs_init_notifies`, a quorum down from the start), at a reload
//! and at shutdown (`omega`, with its e-mails); the FIFO's reading script.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::keepalived::check::Outcome;
use crate::keepalived::{conf, lex};

/// A directory of its own for one test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rvs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse(text: &str) -> (Config, Vec<String>) {
    let mut w = Vec::new();
    let t = lex::parse_text(text, "k.conf", Path::new("/x"), &mut w).unwrap();
    let c = conf::build(&t, &mut w).unwrap();
    (c, w)
}

/// A world with its FIFOs open, and a reader of the first (opened before
/// the world writes, nonblocking).
fn world(text: &str, fifo: &Path) -> (World, std::fs::File) {
    let (c, _) = parse(text);
    let mut w = World::new(c, Endpoint::Abstract("rvs-health-test-nowhere".into()));
    w.fifos = fifo::Fifos::open(&w.conf.notify);
    assert!(w.fifos.any(), "the FIFO is open");
    let r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(fifo)
        .unwrap();
    (w, r)
}

use std::os::unix::fs::OpenOptionsExt;

/// What the FIFO holds now, line by line.
fn lines(r: &mut std::fs::File) -> Vec<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(!buf.contains(&0), "no NUL byte: {buf:?}");
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn conf_with(global: &str, body: &str) -> String {
    format!("global_defs {{\n{global}}}\n{body}")
}

const TWO: &str = "virtual_server 10.0.0.100 80 {\n quorum 2\n \
    real_server 10.0.0.11 80 {\n  TCP_CHECK { retry 0 }\n }\n \
    real_server 10.0.0.12 80 {\n  TCP_CHECK { retry 0 }\n }\n}\n\
    virtual_server fwmark 7 {\n real_server 10.0.0.13 0 {\n  TCP_CHECK { retry 0 }\n }\n}\n";

/// Each real server's change is an `RS` line, each quorum change a `VS`
/// line, to notify_fifo and lvs_notify_fifo alike, as keepalived words
/// them (without the C string's NUL).
#[test]
fn fifo_lines_at_each_change() {
    let d = Dir::new("fifo-lines");
    let (p, q) = (d.0.join("n.fifo"), d.0.join("lvs.fifo"));
    let (mut w, mut r) = world(
        &conf_with(
            &format!(
                " notify_fifo {}\n lvs_notify_fifo {}\n",
                p.display(),
                q.display()
            ),
            TWO,
        ),
        &p,
    );
    let mut r2 = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&q)
        .unwrap();
    assert!(
        std::fs::metadata(&p).unwrap().file_type().is_fifo(),
        "made as a FIFO"
    );
    w.start_notifies();
    assert_eq!(lines(&mut r), Vec::<String>::new(), "nothing at the start");
    w.result(1, Outcome::Down("x".into()));
    let want = [
        "RS [10.0.0.12]:tcp:80 [10.0.0.100]:tcp:80 DOWN",
        "VS [10.0.0.100]:tcp:80 DOWN",
    ];
    assert_eq!(lines(&mut r), want);
    assert_eq!(lines(&mut r2), want);
    w.result(1, Outcome::Up(None));
    assert_eq!(
        lines(&mut r),
        [
            "RS [10.0.0.12]:tcp:80 [10.0.0.100]:tcp:80 UP",
            "VS [10.0.0.100]:tcp:80 UP"
        ]
    );
    w.result(2, Outcome::Down("x".into()));
    assert_eq!(
        lines(&mut r),
        ["RS [10.0.0.13]:tcp:0 FWM 7 DOWN", "VS FWM 7 DOWN"],
        "its quorum (1) lost too"
    );
    // A failure that changes nothing writes nothing.
    w.result(2, Outcome::Down("x".into()));
    assert!(lines(&mut r).is_empty());
    // Closed: the FIFOs rvs made are removed.
    drop(w);
    assert!(!p.exists() && !q.exists());
}

/// rs_init_notifies: the real servers alive at the start, as if they had
/// come up; a virtual server with a sorry server that starts without its
/// quorum (alpha) says so; an alpha checker's first failure notifies its
/// real server down (keepalived's has_run).
#[test]
fn fifo_lines_at_the_start() {
    let d = Dir::new("fifo-start");
    let p = d.0.join("n.fifo");
    let body = "virtual_server 10.0.0.100 80 {\n quorum 1\n \
        real_server 10.0.0.11 80 {\n  TCP_CHECK { retry 0 }\n }\n}\n\
        virtual_server 10.0.0.101 80 {\n alpha\n sorry_server 10.0.0.99 80\n \
        real_server 10.0.0.12 80 {\n  TCP_CHECK { retry 0 }\n }\n}\n";
    let (mut w, mut r) = world(
        &conf_with(
            &format!(" lvs_notify_fifo {}\n rs_init_notifies\n", p.display()),
            body,
        ),
        &p,
    );
    w.start_notifies();
    assert_eq!(
        lines(&mut r),
        [
            "RS [10.0.0.11]:tcp:80 [10.0.0.100]:tcp:80 UP",
            "VS [10.0.0.101]:tcp:80 DOWN"
        ]
    );
    // The alpha checker's first verdict, down: its real server is down
    // (it already was); once only.
    w.result(1, Outcome::Down("x".into()));
    assert_eq!(
        lines(&mut r),
        ["RS [10.0.0.12]:tcp:80 [10.0.0.101]:tcp:80 DOWN"]
    );
    w.result(1, Outcome::Down("x".into()));
    assert!(lines(&mut r).is_empty());
    w.result(1, Outcome::Up(None));
    assert_eq!(
        lines(&mut r),
        [
            "RS [10.0.0.12]:tcp:80 [10.0.0.101]:tcp:80 UP",
            "VS [10.0.0.101]:tcp:80 UP"
        ]
    );
}

/// A reload keeps a FIFO whose settings did not change (its reader keeps
/// reading), notifies the real servers it adds (rs_init_notifies) and
/// not the ones it keeps; a FIFO the new file drops is closed.
#[test]
fn fifo_kept_across_a_reload() {
    let d = Dir::new("fifo-reload");
    let p = d.0.join("n.fifo");
    let global = format!(" notify_fifo {}\n rs_init_notifies\n", p.display());
    let one =
        "virtual_server 10.0.0.100 80 {\n real_server 10.0.0.11 80 {\n  TCP_CHECK { }\n }\n}\n";
    let (mut w, mut r) = world(&conf_with(&global, one), &p);
    w.start_notifies();
    assert_eq!(
        lines(&mut r),
        ["RS [10.0.0.11]:tcp:80 [10.0.0.100]:tcp:80 UP"]
    );
    let two = one.replace(
        "}\n}\n",
        "}\n real_server 10.0.0.12 80 {\n  TCP_CHECK { }\n }\n}\n",
    );
    w.reload(parse(&conf_with(&global, &two)).0);
    assert_eq!(
        lines(&mut r),
        ["RS [10.0.0.12]:tcp:80 [10.0.0.100]:tcp:80 UP"],
        "the same FIFO, only the new real server"
    );
    w.reload(parse(&two).0);
    assert!(!p.exists(), "no notify_fifo any more: closed and removed");
    assert!(!w.fifos.any());
}

/// A file that is there and is not a FIFO is not used (nor removed); a
/// FIFO in a directory that does not exist is not made; both logged.
#[test]
fn fifo_that_is_not_a_fifo_is_not_used() {
    let d = Dir::new("fifo-planted");
    let p = d.0.join("planted");
    std::fs::write(&p, "x").unwrap();
    let (c, _) = parse(&conf_with(
        &format!(
            " notify_fifo {}\n lvs_notify_fifo {}/none/f\n",
            p.display(),
            d.0.display()
        ),
        TWO,
    ));
    let f = fifo::Fifos::open(&c.notify);
    assert!(!f.any());
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "x");
}

/// notify_fifo_script: started with the FIFO's path as its last
/// argument, before the first line; it reads every line.
#[test]
fn fifo_script_reads_the_lines() {
    let d = Dir::new("fifo-script");
    let (p, out) = (d.0.join("n.fifo"), d.0.join("out"));
    let script = d.0.join("reader");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec cat \"$1\" > {}\n", out.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (c, warnings) = parse(&conf_with(
        &format!(
            " script_user root\n lvs_notify_fifo {}\n lvs_notify_fifo_script {}\n",
            p.display(),
            script.display()
        ),
        TWO,
    ));
    assert!(c.notify.fifos[0].script.is_some(), "{warnings:?}");
    let mut w = World::new(c, Endpoint::Abstract("rvs-health-test-nowhere".into()));
    w.fifos = fifo::Fifos::open(&w.conf.notify);
    w.result(0, Outcome::Down("x".into()));
    // Closing the FIFO ends the reader (its end of file).
    let t0 = Instant::now();
    let want = "RS [10.0.0.11]:tcp:80 [10.0.0.100]:tcp:80 DOWN\n";
    while !std::fs::read_to_string(&out).is_ok_and(|s| s.starts_with(want))
        && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(w);
    let s = std::fs::read_to_string(&out).unwrap();
    assert!(s.starts_with(want), "{s:?}");
}

/// omega at shutdown: each real server alive `RS … DOWN` and the virtual
/// server's `VS … DOWN` to the FIFO, and keepalived's "Shutting down"
/// e-mails; a virtual server without omega sends nothing.
#[test]
fn omega_writes_the_fifo_and_mails_at_shutdown() {
    use crate::keepalived::alert::{TEST_WAIT, tests::mail_server};
    let (port, mails) = mail_server();
    let d = Dir::new("fifo-omega");
    let p = d.0.join("n.fifo");
    let (mut w, mut r) = world(
        &conf_with(
            &format!(
                " router_id LVS_T\n notification_email {{\n  ops@example.com\n }}\n \
                 smtp_server 127.0.0.1 {port}\n lvs_notify_fifo {}\n",
                p.display()
            ),
            "virtual_server 10.0.0.100 80 {\n omega\n smtp_alert\n \
             real_server 10.0.0.11 80 {\n  TCP_CHECK { }\n }\n \
             real_server 10.0.0.12 80 {\n  smtp_alert false\n  TCP_CHECK { }\n }\n}\n\
             virtual_server 10.0.0.101 80 {\n smtp_alert\n \
             real_server 10.0.0.13 80 {\n  TCP_CHECK { }\n }\n}\n",
        ),
        &p,
    );
    let t0 = Instant::now();
    omega(&mut w);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(
        lines(&mut r),
        [
            "RS [10.0.0.11]:tcp:80 [10.0.0.100]:tcp:80 DOWN",
            "RS [10.0.0.12]:tcp:80 [10.0.0.100]:tcp:80 DOWN",
            "VS [10.0.0.100]:tcp:80 DOWN"
        ]
    );
    let mut got: Vec<String> = (0..2)
        .map(|_| mails.recv_timeout(TEST_WAIT).expect("a mail"))
        .collect();
    got.sort();
    assert!(
        got[0].contains(
            "Subject: [LVS_T] Realserver [10.0.0.11]:tcp:80 of virtual server \
             [10.0.0.100]:tcp:80 - DOWN\r\n"
        ) && got[0].contains("\r\n=> Shutting down <=\r\n"),
        "{got:?}"
    );
    assert!(
        got[1].contains("Subject: [LVS_T] Virtualserver [10.0.0.100]:tcp:80 - DOWN\r\n")
            && got[1].contains("\r\n=> Shutting down <=\r\n"),
        "{got:?}"
    );
    assert!(
        mails.recv_timeout(Duration::from_millis(300)).is_err(),
        "two mails"
    );
}
