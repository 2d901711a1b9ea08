//! rvsd follows the host's MARK rules (`rvsd --fwmark-source host`, the
//! default): the seed's PFWMC commands, verbatim, on a kept `rvs lab nat`
//! with two real servers: `iptables -t mangle -A PREROUTING -d VIP -i eth0
//! -p tcp --dport 80|443 -j MARK --set-mark 10` and `ipvsadm -A -f 10 -s rr
//! -p 3600` (rvsadm). One client's HTTP (:80) and :443 connections reach
//! one real server; deleting the rules stops the claim within the
//! documented delay (1 s poll); an unsupported match is reported with its
//! text. The same with iptables-legacy (skipped, saying why, where the
//! kernel refuses its tables) and with a native nft rule.
//!
//! Each test runs its own lab (`rvslab-<pid>-*` namespaces, removed by the
//! lab's guard, pass or fail).

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the marks are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// `iptables` (Debian's: the nf_tables backend).
    Iptables,
    /// `iptables-legacy`.
    Legacy,
    /// A native nft chain on the prerouting hook.
    Nft,
}

/// The documented delay (1 s poll) plus the data plane's resync and
/// scheduling slack on a shared machine.
const FOLLOW_LIMIT: Duration = Duration::from_secs(4);

/// `cmd args…` in the director; (success, stdout + stderr).
fn in_director(lab: &Lab, args: &[&str]) -> (bool, String) {
    let o = Command::new("ip")
        .args(["netns", "exec", &lab.ns("director")])
        .args(args)
        .env_remove("RVS_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn director_ok(lab: &Lab, cmd: &str) -> String {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    let (ok, text) = in_director(lab, &args);
    assert!(ok, "{cmd}: {text}");
    text
}

fn fwmark_list(lab: &Lab) -> String {
    director_ok(lab, &format!("{RVS} fwmark list"))
}

fn has_tool(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The first word of what the real server said (`rsN`).
fn server(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_string()
}

fn pfwmc(tag: &str, backend: Backend) {
    if !can_run() {
        return;
    }
    let tool = match backend {
        Backend::Iptables => "iptables",
        Backend::Legacy => "iptables-legacy",
        Backend::Nft => "nft",
    };
    if !has_tool(tool, "--version") {
        if std::env::var_os("RVS_SKIP_PRIVILEGED_TESTS").is_some() {
            eprintln!("skipped: needs {tool}");
            return;
        }
        panic!(
            "needs {tool} (scripts/test.sh installs it; set RVS_SKIP_PRIVILEGED_TESTS=1 to skip)"
        );
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&[443], &[]);
    lab.adm(&["-C"]);
    let vip = lab.vip.to_string();
    let seed: Vec<String> = [80, 443]
        .iter()
        .map(|p| {
            format!(
                "-t mangle -A PREROUTING -d {vip} -i eth0 -p tcp --dport {p} -j MARK --set-mark 10"
            )
        })
        .collect();
    match backend {
        Backend::Iptables | Backend::Legacy => {
            for rule in &seed {
                let cmd = format!("{tool} {rule}");
                let args: Vec<&str> = cmd.split_whitespace().collect();
                let (ok, text) = in_director(&lab, &args);
                if !ok && backend == Backend::Legacy {
                    eprintln!(
                        "skipped ({tag}): the kernel refuses iptables-legacy's tables \
                         (ip_tables modules): {text}; the nf_tables cases cover the rest"
                    );
                    return;
                }
                assert!(ok, "{cmd}: {text}");
            }
            if backend == Backend::Iptables {
                let (_, v) = in_director(&lab, &["iptables", "-V"]);
                eprintln!("{tag}: {}", v.trim());
            }
        }
        Backend::Nft => {
            director_ok(&lab, "nft add table inet lb");
            director_ok(
                &lab,
                "nft add chain inet lb pre { type filter hook prerouting priority mangle ; }",
            );
            director_ok(
                &lab,
                &format!(
                    "nft add rule inet lb pre iifname eth0 ip daddr {vip} tcp dport {{ 80, 443 }} meta mark set 10"
                ),
            );
        }
    }
    // The seed's ipvsadm lines.
    lab.adm(&["-A", "-f", "10", "-s", "rr", "-p", "3600"]);
    for rip in &lab.rips {
        lab.adm(&["-a", "-f", "10", "-r", &rip.to_string(), "-m", "-w", "1"]);
    }
    let origin = if backend == Backend::Nft {
        "nft"
    } else {
        "iptables"
    };
    let listed = poll(FOLLOW_LIMIT, || {
        let l = fwmark_list(&lab);
        l.lines()
            .any(|x| x.contains(origin) && x.contains(&vip) && x.contains("--set-mark 10"))
            .then_some(l)
    });
    assert!(
        listed.is_some(),
        "{tag}: rvs fwmark list never showed the host's rule:\n{}\n{}",
        fwmark_list(&lab),
        lab.rvsd_log()
    );
    let http = SocketAddr::from((lab.vip, 80));
    let tls = SocketAddr::from((lab.vip, 443));
    let first = poll(Duration::from_secs(10), || {
        lab.client(move || http_get(None, http)).ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "{tag}: no HTTP answer through the fwmark service:\n{}\n{}\n{}",
            lab.adm(&["-L", "-n", "--stats"]),
            fwmark_list(&lab),
            lab.rvsd_log()
        )
    });
    let mut seen = vec![server(&first)];
    for _ in 0..3 {
        let h = lab
            .client(move || http_get(None, http))
            .unwrap_or_else(|e| panic!("{tag}: HTTP: {e}"));
        let t = lab
            .client(move || who(None, tls))
            .unwrap_or_else(|e| panic!("{tag}: :443: {e}"));
        seen.push(server(&h));
        seen.push(server(&t));
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]) && seen[0].starts_with("rs"),
        "{tag}: HTTP and :443 of one client must reach one real server: {seen:?}"
    );
    let list = lab.adm(&["-L", "-n"]);
    assert!(list.contains("FWM  10 rr persistent 3600"), "{list}");

    if backend == Backend::Iptables {
        // An unsupported match: reported with its text, by the command and
        // in the log; the flows it marks stay the kernel's.
        director_ok(
            &lab,
            &format!(
                "iptables -t mangle -A PREROUTING -d {vip} -p tcp --dport 8443 -m conntrack --ctstate NEW -j MARK --set-mark 10"
            ),
        );
        let reported = poll(FOLLOW_LIMIT, || {
            let l = fwmark_list(&lab);
            (l.contains("left to the kernel") && l.contains("--ctstate NEW")).then_some(l)
        })
        .unwrap_or_else(|| panic!("not reported:\n{}", fwmark_list(&lab)));
        assert!(reported.contains("-m conntrack"), "{reported}");
        let log = lab.rvsd_log();
        assert!(
            log.contains("left to the kernel") && log.contains("--ctstate NEW"),
            "{log}"
        );
        // The seed's rules are still applied (the conntrack rule is on
        // another port).
        let h = lab
            .client(move || http_get(None, http))
            .unwrap_or_else(|e| panic!("{tag}: HTTP: {e}"));
        assert_eq!(server(&h), seen[0]);
    }

    // Deleting the rules stops the claim within the documented delay.
    match backend {
        Backend::Iptables | Backend::Legacy => {
            for rule in &seed {
                let cmd = format!("{tool} {}", rule.replace("-A PREROUTING", "-D PREROUTING"));
                director_ok(&lab, &cmd);
            }
        }
        Backend::Nft => {
            director_ok(&lab, "nft delete table inet lb");
        }
    }
    let deleted = Instant::now();
    let stopped = poll(FOLLOW_LIMIT, || lab.client(move || who(None, tls)).err());
    assert!(
        stopped.is_some(),
        "{tag}: still claimed {FOLLOW_LIMIT:?} after the rules were deleted:\n{}",
        fwmark_list(&lab)
    );
    eprintln!(
        "{tag}: claim stopped {:?} after the rules were deleted",
        deleted.elapsed()
    );
    let l = fwmark_list(&lab);
    assert!(
        !l.lines()
            .any(|x| x.contains(origin) && x.contains(&vip) && x.contains("--set-mark 10")),
        "{tag}: {l}"
    );
}

#[test]
fn netns_hostmarks_iptables_nft_pfwmc() {
    pfwmc("iptables (nf_tables)", Backend::Iptables);
}

#[test]
fn netns_hostmarks_iptables_legacy_pfwmc() {
    pfwmc("iptables-legacy", Backend::Legacy);
}

#[test]
fn netns_hostmarks_nft_pfwmc() {
    pfwmc("nft", Backend::Nft);
}
