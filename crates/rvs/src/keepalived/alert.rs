// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's e-mail alerts (`smtp_alert`), sent to `smtp_server` as
//! keepalived's smtp.c sends them: `HELO`, `MAIL FROM`, one `RCPT TO` per
//! address, `DATA` with `Date`, `From`, `Subject`, `X-Mailer: Keepalived`
//! and `To`, the body, `QUIT`; each reply checked (2xx, 354 for `DATA`),
//! the whole exchange bounded by `smtp_connect_timeout`. Each alert is
//! sent on a thread of its own, so a slow or absent mail server delays no
//! check; the outcome is logged. The subjects and bodies are keepalived's
//! ([`rs_subject`], [`vs_subject`], [`checker_body`]) and the message is a
//! pure function ([`message`]).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::conf::{CheckKind, Smtp};

/// `[router_id] Realserver RS of virtual server VS - UP|DOWN`.
pub fn rs_subject(smtp: &Smtp, rs: &str, vs: &str, up: bool) -> String {
    format!(
        "[{}] Realserver {rs} of virtual server {vs} - {}",
        smtp.router_id,
        if up { "UP" } else { "DOWN" }
    )
}

/// `[router_id] Virtualserver VS - UP|DOWN`.
pub fn vs_subject(smtp: &Smtp, vs: &str, up: bool) -> String {
    format!(
        "[{}] Virtualserver {vs} - {}",
        smtp.router_id,
        if up { "UP" } else { "DOWN" }
    )
}

/// The body of a checker's alert, as each of keepalived's checkers words
/// it; `failure`: the failed attempt's line (SMTP_CHECK sends it).
pub fn checker_body(kind: &CheckKind, up: bool, failure: &str) -> String {
    if let CheckKind::Bfd { name } = kind {
        let what = if up { "succeeded" } else { "failed" };
        return format!("=> BFD CHECK {name} {what} on service <=");
    }
    let (ok, fail) = match kind {
        CheckKind::Tcp => (
            "=> TCP CHECK succeed on service <=",
            "=> TCP CHECK failed on service <=",
        ),
        CheckKind::Http { .. } => (
            "=> CHECK succeed on service <=",
            "=> CHECK failed on service : HTTP/SSL request failed <=",
        ),
        CheckKind::Dns { .. } => (
            "=> DNS_CHECK: succeed on service <=",
            "=> DNS_CHECK: failed on service <=",
        ),
        CheckKind::Ping => (
            "=> ICMP CHECK succeed on service <=",
            "=> ICMP CHECK failed on service <=",
        ),
        CheckKind::Udp { .. } => (
            "=> UDP CHECK succeed on service <=",
            "=> UDP CHECK failed on service <=",
        ),
        CheckKind::Misc { .. } => (
            "=> MISC CHECK succeeded on service <=",
            "=> MISC CHECK failed on service <=",
        ),
        CheckKind::Smtp { .. } => ("=> CHECK succeed on service <=", failure),
        CheckKind::File(_) => ("=> FILE CHECK succeed <=", "=> FILE CHECK failed <="),
        CheckKind::Bfd { .. } => unreachable!("answered above"),
    };
    (if up { ok } else { fail }).to_string()
}

/// RFC 5322's date of `unix` seconds, in UTC (keepalived writes local
/// time with its offset; UTC is the same instant).
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // The civil date of a day count (Howard Hinnant's days_from_civil,
    // inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The `DATA` of an alert: the headers, the body, the end (`.`); lines
/// of the body that start with a dot are doubled (RFC 5321's
/// transparency).
pub fn message(smtp: &Smtp, unix: u64, subject: &str, body: &str) -> String {
    let mut m = format!(
        "Date: {}\r\nFrom: {}\r\nSubject: {subject}\r\nX-Mailer: Keepalived\r\nTo: {}\r\n\r\n",
        rfc5322_date(unix),
        smtp.from,
        smtp.to.join(",\r\n ")
    );
    for line in body.lines() {
        if line.starts_with('.') {
            m.push('.');
        }
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str("\r\n.\r\n");
    m
}

/// Send an alert in the background (nothing without `smtp_server` and an
/// address); the outcome goes to `log`.
pub fn send(
    smtp: &Smtp,
    subject: String,
    body: String,
    log: fn(&str),
) -> Option<std::thread::JoinHandle<()>> {
    if !smtp.enabled() {
        return None;
    }
    let smtp = smtp.clone();
    Some(std::thread::spawn(move || {
        match exchange(&smtp, &subject, &body) {
            Ok(()) => log(&format!("SMTP alert successfully sent: {subject}")),
            Err(e) => log(&format!("SMTP alert not sent ({subject}): {e}")),
        }
    }))
}

/// The SMTP exchange of one alert.
fn exchange(smtp: &Smtp, subject: &str, body: &str) -> Result<(), String> {
    let (host, port) = smtp.server.as_ref().expect("a server");
    let deadline = Instant::now() + smtp.timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "timeout".to_string())
    };
    let addr = (host.as_str(), *port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let s = TcpStream::connect_timeout(&addr, left()?)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    // A reply: its lines until one without `-` after the code, whose
    // first digit must be one of `want`.
    let reply = |r: &mut BufReader<TcpStream>, want: &[u8]| -> Result<(), String> {
        loop {
            r.get_ref()
                .set_read_timeout(Some(left()?))
                .map_err(|e| e.to_string())?;
            let mut line = String::new();
            if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the server closed the connection".into());
            }
            let b = line.as_bytes();
            if b.len() >= 4 && b[3] == b'-' {
                continue;
            }
            return if b.len() >= 3 && want.contains(&b[0]) {
                Ok(())
            } else {
                Err(format!("the server answered {}", line.trim_end()))
            };
        }
    };
    let say = |w: &mut TcpStream, text: &str| -> Result<(), String> {
        w.set_write_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        w.write_all(text.as_bytes()).map_err(|e| e.to_string())
    };
    reply(&mut r, b"2")?;
    say(&mut w, &format!("HELO {}\r\n", smtp.helo))?;
    reply(&mut r, b"2")?;
    say(&mut w, &format!("MAIL FROM:<{}>\r\n", smtp.from))?;
    reply(&mut r, b"2")?;
    for to in &smtp.to {
        say(&mut w, &format!("RCPT TO:<{to}>\r\n"))?;
        reply(&mut r, b"2")?;
    }
    say(&mut w, "DATA\r\n")?;
    reply(&mut r, b"3")?;
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    say(&mut w, &message(smtp, unix, subject, body))?;
    reply(&mut r, b"2")?;
    say(&mut w, "QUIT\r\n")?;
    let _ = reply(&mut r, b"2");
    Ok(())
}

/// How long the tests wait for a mail.
#[cfg(test)]
pub const TEST_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    fn smtp(port: u16) -> Smtp {
        Smtp {
            server: Some(("127.0.0.1".into(), port)),
            helo: "director.example".into(),
            from: "lvs@director.example".into(),
            to: vec!["ops@example.com".into(), "noc@example.com".into()],
            timeout: Duration::from_secs(2),
            router_id: "LVS_1".into(),
            no_checker_emails: false,
        }
    }

    #[test]
    fn dates_as_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_796_644_790),
            "Mon, 07 Dec 2026 11:59:50 +0000"
        );
    }

    #[test]
    fn subjects_bodies_and_the_message() {
        let s = smtp(25);
        assert_eq!(
            rs_subject(&s, "[10.0.0.2]:tcp:80", "[10.0.0.1]:tcp:80", false),
            "[LVS_1] Realserver [10.0.0.2]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN"
        );
        assert_eq!(
            vs_subject(&s, "[10.0.0.1]:tcp:80", true),
            "[LVS_1] Virtualserver [10.0.0.1]:tcp:80 - UP"
        );
        assert_eq!(
            checker_body(&CheckKind::Tcp, false, "x"),
            "=> TCP CHECK failed on service <="
        );
        let smtp_kind = CheckKind::Smtp { helo: "h".into() };
        assert_eq!(
            checker_body(&smtp_kind, false, "SMTP says no"),
            "SMTP says no"
        );
        assert_eq!(
            message(&s, 0, "subj", "line\n.dot"),
            "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\nFrom: lvs@director.example\r\n\
             Subject: subj\r\nX-Mailer: Keepalived\r\nTo: ops@example.com,\r\n noc@example.com\r\n\
             \r\nline\r\n..dot\r\n\r\n.\r\n"
        );
    }

    /// A one-shot SMTP server on loopback that accepts everything; what
    /// it was told.
    pub(crate) fn mail_server() -> (u16, std::sync::mpsc::Receiver<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut seen = String::new();
                let _ = w.write_all(b"220 test ESMTP\r\n");
                let mut data = false;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    seen.push_str(&line);
                    if data {
                        if line == ".\r\n" {
                            data = false;
                            let _ = w.write_all(b"250 queued\r\n");
                        }
                        continue;
                    }
                    let reply: &[u8] = match line.get(..4).unwrap_or("") {
                        "DATA" => {
                            data = true;
                            b"354 go on\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250-fine\r\n250 ok\r\n",
                    };
                    let _ = w.write_all(reply);
                }
                let _ = tx.send(seen);
            }
        });
        (port, rx)
    }

    #[test]
    fn an_alert_reaches_a_mail_server() {
        let (port, rx) = mail_server();
        let s = smtp(port);
        exchange(&s, "[LVS_1] subject", "=> body <=").unwrap();
        let seen = rx.recv_timeout(TEST_WAIT).unwrap();
        for want in [
            "HELO director.example\r\n",
            "MAIL FROM:<lvs@director.example>\r\n",
            "RCPT TO:<ops@example.com>\r\nRCPT TO:<noc@example.com>\r\nDATA\r\n",
            "Subject: [LVS_1] subject\r\n",
            "\r\n=> body <=\r\n\r\n.\r\nQUIT\r\n",
        ] {
            assert!(seen.contains(want), "{want:?} not in {seen:?}");
        }
        // Nobody there: an error, within the timeout.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = smtp(dead.local_addr().unwrap().port());
        drop(dead);
        assert!(exchange(&s, "s", "b").unwrap_err().contains("connecting"));
    }
}
