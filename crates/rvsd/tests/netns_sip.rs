//! `--pe sip` end to end: one SIP proxy (one UDP socket) sends the
//! messages of several calls through the VIP to a persistent UDP service
//! with the SIP persistence engine and one-packet scheduling (the
//! reference's `-A -u VIP:5060 -s rr -p 360 --pe sip -o`), direct routing
//! to two real servers (with `-o` nothing is kept for NAT replies to meet,
//! in the kernel as in rvs: one-packet scheduling is for services whose
//! replies go straight back). Each call's messages all reach one real server, the calls are
//! spread over both, a datagram without a Call-ID sticks to the proxy's
//! own template, and `ipvsadm -L -c --persistent-conn` shows the templates
//! with their Call-IDs, `-S` the engine. Over XDP and AF_PACKET.
//!
//! Needs root and python3 (CI has them); with `RVS_SKIP_PRIVILEGED_TESTS=1`
//! and no root the test says so and passes. Namespaces (prefix `rvssip-`)
//! and processes are removed by guards, also when the test fails.

use std::process::Stdio;

mod common;
use common::*;

const PREFIX: &str = "rvssip";

/// A real server's UDP server on VIP:5060, answering each datagram with
/// its name (argv[1]) from the VIP.
const SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.0.100", 5060))
while True:
    data, peer = s.recvfrom(4096)
    s.sendto(sys.argv[1].encode() + b" " + data.split(b"\r\n")[0], peer)
"#;

/// The proxy: from one socket, the messages named in argv (a Call-ID, or
/// `-` for a datagram without one), in order; prints `<call> <server>`
/// for each answer (`<call> none` after 0.5 s without one).
const PROXY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.0.1", 5062))
s.settimeout(0.5)
for call in sys.argv[1:]:
    if call == "-":
        msg = b"\r\n\r\n"
    else:
        msg = ("OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-" + call + "\r\n"
               "Call-ID: " + call + "\r\n"
               "CSeq: 1 OPTIONS\r\n\r\n").encode()
    s.sendto(msg, ("10.0.0.100", 5060))
    try:
        answer = s.recv(4096).split(b" ")[0].decode()
    except socket.timeout:
        answer = "none"
    print(call, answer, flush=True)
"#;

#[test]
fn sip_calls_stick_per_call_id() {
    if !privileged() {
        return;
    }
    for io in ["xdp", "packet"] {
        let mut lab = Lab::new(PREFIX, io);
        let (sw, client, director, rs1) = one_segment_base(&mut lab, 1);
        let rs2 = lab.ns("r2");
        veth_queues(&sw, "pr2", &rs2, "eth0", 1);
        ipn(&sw, "link set pr2 master br0");
        ipn(&rs2, "addr add 10.0.0.12/24 dev eth0");
        for (ns, name) in [(&rs1, "rs1"), (&rs2, "rs2")] {
            lab.vip_on_lo(ns, "10.0.0.100/32");
            lab.spawn(ns, "python3", &["-c", SERVER, name], Stdio::null());
        }
        let rvsd = lab.start_rvsd(&director, Some(io), &["eth0"], &[]);
        let vs = "10.0.0.100:5060";
        lab.adm_ok(
            &director,
            &["-A", "-u", vs, "-s", "rr", "-p", "360", "--pe", "sip", "-o"],
        );
        for rs in ["10.0.0.11", "10.0.0.12"] {
            lab.adm_ok(&director, &["-a", "-u", vs, "-r", rs, "-g"]);
        }
        // The servers need a moment to bind; the first call is retried.
        let calls = [
            "call-a", "call-b", "call-a", "call-c", "call-b", "call-a", "-", "-",
        ];
        let mut answers = Vec::new();
        for attempt in 0..10 {
            let mut args = vec!["python3", "-c", PROXY];
            args.extend(calls);
            let o = lab.exec(&client, &args);
            answers = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| {
                    let (c, a) = l.split_once(' ').unwrap_or((l, ""));
                    (c.to_string(), a.to_string())
                })
                .collect();
            if answers.len() == calls.len() && answers.iter().all(|(_, a)| a != "none") {
                break;
            }
            eprintln!(
                "{io}: attempt {attempt}: {answers:?} {}\n{}",
                String::from_utf8_lossy(&o.stderr),
                lab.adm_ok(&director, &["-L", "-n", "--stats"])
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let log = || lab.rvsd_log();
        assert_eq!(answers.len(), calls.len(), "{io}: {answers:?}\n{}", log());
        let server_of = |call: &str| -> Vec<&str> {
            answers
                .iter()
                .filter(|(c, _)| c == call)
                .map(|(_, a)| a.as_str())
                .collect()
        };
        for call in ["call-a", "call-b", "call-c", "-"] {
            let s = server_of(call);
            assert!(
                s.iter().all(|a| *a == s[0] && (*a == "rs1" || *a == "rs2")),
                "{io}: {call} went to {s:?}\n{answers:?}\n{}",
                log()
            );
        }
        assert_ne!(
            server_of("call-a")[0],
            server_of("call-b")[0],
            "{io}: two calls of one proxy, rr: two servers\n{answers:?}"
        );
        // The templates, with their Call-IDs (cport 0, as the kernel's).
        let list = lab.adm_ok(&director, &["-L", "-c", "-n", "--persistent-conn"]);
        for call in ["call-a", "call-b", "call-c"] {
            assert!(
                list.lines()
                    .any(|l| l.contains("10.0.0.1:0") && l.contains("sip") && l.contains(call)),
                "{io}: no template of {call}:\n{list}"
            );
        }
        assert!(
            list.lines()
                .any(|l| l.contains("10.0.0.1:0") && !l.contains("sip") && l.contains("NONE")),
            "{io}: no template of the proxy itself:\n{list}"
        );
        eprintln!("{io}:\n{list}");
        let saved = lab.adm_ok(&director, &["-S", "-n"]);
        assert!(
            saved.contains("-A -u 10.0.0.100:5060 -s rr -p 360 --pe sip -o"),
            "{io}: {saved}"
        );
        lab.stop_rvsd(rvsd);
    }
}
