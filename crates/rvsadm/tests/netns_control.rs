//! End-to-end: the seed's ipvsadm command sequences against a real rvsd in
//! its own network namespace, compared as whole outputs.
//!
//! These tests need root (network namespaces); CI runs as root. Every
//! namespace and daemon is removed by a guard, also when a test fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rvs_testsupport::{bin, require_root};

/// A network namespace with an rvsd in it; removed on drop.
struct Ns {
    name: String,
    daemon: Option<Child>,
}

impl Ns {
    fn new(tag: &str) -> Ns {
        require_root();
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rvst-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        Ns { name, daemon: None }
    }

    fn with_daemon(tag: &str) -> Ns {
        let mut ns = Ns::new(tag);
        ns.start_daemon();
        ns
    }

    fn start_daemon(&mut self) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin("rvsd"))
            .args(["--io", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rvsd");
        self.daemon = Some(child);
        // Wait until it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.adm(&["-L", "-n"]).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "rvsd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn cmd(&self, program: &PathBuf, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .arg(program)
            .args(args);
        c.env_remove("RVS_SOCKET");
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait")
    }

    fn adm(&self, args: &[&str]) -> Output {
        self.cmd(&bin("rvsadm"), args, None)
    }

    /// Run and expect success with empty stderr; return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.adm(args);
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "rvsadm {args:?}: status {:?}, stderr {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf8")
    }

    /// Run and expect failure with `code` and exactly `stderr`.
    fn fails(&self, args: &[&str], code: i32, stderr: &str) {
        let o = self.adm(args);
        assert_eq!(
            (o.status.code(), String::from_utf8_lossy(&o.stderr).as_ref()),
            (Some(code), stderr),
            "rvsadm {args:?}"
        );
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // `ip netns exec` execs rvsd: the child is the daemon itself.
            let _ = Command::new("kill")
                .args(["-TERM", &d.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

const HEADER: &str = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

#[test]
fn netns_seed_cluster_and_real_server_commands() {
    let ns = Ns::with_daemon("seed");
    assert_eq!(ns.ok(&["-L", "-n"]), HEADER);
    // §1.2 – §1.7 of the seed.
    ns.ok(&["-A", "-t", "172.16.1.253:10", "-s", "wlc"]);
    ns.ok(&["-E", "-t", "172.16.1.253:10", "-s", "wrr"]);
    ns.ok(&[
        "-a",
        "-t",
        "172.16.1.253:10",
        "-r",
        "172.16.1.101",
        "-g",
        "-w",
        "5",
    ]);
    ns.ok(&[
        "-a",
        "-t",
        "172.16.1.253:10",
        "-r",
        "172.16.1.102",
        "-g",
        "-w",
        "10",
    ]);
    ns.ok(&[
        "-e",
        "-t",
        "172.16.1.253:10",
        "-r",
        "172.16.1.101",
        "-g",
        "-w",
        "3",
    ]);
    assert_eq!(
        ns.ok(&["-L", "-n"]),
        format!(
            "{HEADER}TCP  172.16.1.253:10 wrr\n  \
             -> 172.16.1.101:10              Route   3      0          0         \n  \
             -> 172.16.1.102:10              Route   10     0          0         \n"
        )
    );
    // Bundled options and the single-service listing.
    assert_eq!(
        ns.ok(&["-Ln", "-t", "172.16.1.253:10"]),
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  172.16.1.253:10 wrr\n  \
         -> 172.16.1.101:10              Route   3      0          0         \n  \
         -> 172.16.1.102:10              Route   10     0          0         \n"
    );
    ns.ok(&["-d", "-t", "172.16.1.253:10", "-r", "172.16.1.101"]);
    assert_eq!(
        ns.ok(&["-S", "-n"]),
        "-A -t 172.16.1.253:10 -s wrr\n-a -t 172.16.1.253:10 -r 172.16.1.102:10 -g -w 10\n"
    );
    ns.ok(&["-D", "-t", "172.16.1.253:10"]);
    assert_eq!(ns.ok(&["-L", "-n"]), HEADER);
}

#[test]
fn netns_persistence_fwmark_save_restore() {
    let ns = Ns::with_daemon("persist");
    ns.ok(&["-A", "-t", "10.0.0.1:80", "-s", "rr", "-p"]);
    ns.ok(&["-A", "-t", "10.0.0.1:443", "-s", "rr", "-p", "3600"]);
    ns.ok(&[
        "-A",
        "-t",
        "10.0.0.1:0",
        "-s",
        "wlc",
        "-p",
        "-M",
        "255.255.255.0",
    ]);
    ns.ok(&["-A", "-f", "1", "-s", "rr", "-p"]);
    ns.ok(&["-a", "-f", "1", "-r", "192.168.1.11", "-g"]);
    ns.ok(&[
        "-a",
        "-t",
        "10.0.0.1:80",
        "-r",
        "192.168.1.11:8080",
        "-m",
        "-w",
        "2",
    ]);
    ns.ok(&["-a", "-t", "10.0.0.1:443", "-r", "192.168.1.12", "-i"]);
    let saved = ns.ok(&["-S", "-n"]);
    assert_eq!(
        saved,
        "-A -t 10.0.0.1:0 -s wlc -p 360 -M 255.255.255.0\n\
         -A -t 10.0.0.1:80 -s rr -p 360\n\
         -a -t 10.0.0.1:80 -r 192.168.1.11:8080 -m -w 2\n\
         -A -t 10.0.0.1:443 -s rr -p 3600\n\
         -a -t 10.0.0.1:443 -r 192.168.1.12:443 -i -w 1 --tun-type ipip\n\
         -A -f 1 -s rr -p 360\n\
         -a -f 1 -r 192.168.1.11:0 -g -w 1\n"
    );
    assert_eq!(
        ns.ok(&["-L", "-n"]),
        format!(
            "{HEADER}TCP  10.0.0.1:0 wlc persistent 360 mask 255.255.255.0\n\
             TCP  10.0.0.1:80 rr persistent 360\n  \
             -> 192.168.1.11:8080            Masq    2      0          0         \n\
             TCP  10.0.0.1:443 rr persistent 3600\n  \
             -> 192.168.1.12:443             Tunnel  1      0          0         \n\
             FWM  1 rr persistent 360\n  \
             -> 192.168.1.11:0               Route   1      0          0         \n"
        )
    );
    // Save, flush, restore through a file: the same table.
    ns.ok(&["-C"]);
    assert_eq!(ns.ok(&["-S", "-n"]), "");
    let o = ns.cmd(&bin("rvsadm"), &["-R"], Some(&saved));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ns.ok(&["-S", "-n"]), saved);
    // Invoked as `ipvsadm`, with `ipvsadm` tokens in the input, as
    // ipvsadm-save files written by scripts have.
    let link = std::env::temp_dir().join(format!("rvst-{}/ipvsadm", std::process::id()));
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(bin("rvsadm"), &link).unwrap();
    ns.ok(&["-C"]);
    let with_names: String = saved.lines().map(|l| format!("ipvsadm {l}\n")).collect();
    let o = ns.cmd(&link, &["-R"], Some(&with_names));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ns.ok(&["-S", "-n"]), saved);
    let o = ns.cmd(&link, &["-v"], None);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
    let _ = std::fs::remove_dir_all(link.parent().unwrap());
}

/// `ipvsadm-save` and `ipvsadm-restore` (rvsadm under those names): the
/// scripts' behaviour — `-S [-n]`, help for other options; restore drops
/// comments, clears the table and loads — restore in one atomic step.
#[test]
fn netns_ipvsadm_save_and_restore_names() {
    let ns = Ns::with_daemon("saverestore");
    let dir = std::env::temp_dir().join(format!("rvst-sr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let save = dir.join("ipvsadm-save");
    let restore = dir.join("ipvsadm-restore");
    for l in [&save, &restore] {
        let _ = std::fs::remove_file(l);
        std::os::unix::fs::symlink(bin("rvsadm"), l).unwrap();
    }
    ns.ok(&["-A", "-t", "122.161.1.101:10", "-s", "wrr"]);
    ns.ok(&[
        "-a",
        "-t",
        "122.161.1.101:10",
        "-r",
        "122.161.10.102:10",
        "-m",
    ]);
    ns.ok(&["-A", "-f", "10", "-s", "rr", "-p", "600"]);
    ns.ok(&["-a", "-f", "10", "-r", "122.161.10.103", "-g", "-w", "3"]);
    let numeric = ns.ok(&["-S", "-n"]);

    // ipvsadm-save: -S, or -S -n with -n; other words are ignored.
    let o = ns.cmd(&save, &[], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout), ns.ok(&["-S"]));
    let o = ns.cmd(&save, &["-n"], None);
    assert!(o.status.success() && o.stderr.is_empty());
    assert_eq!(String::from_utf8_lossy(&o.stdout), numeric);
    let o = ns.cmd(&save, &["word", "-n"], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout), numeric);
    // Any other option: the script's help on stderr, status 1.
    let o = ns.cmd(&save, &["-n", "-x"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "ipvsadm-save: Script to save the IPVS table to stdout.\n   \
         With the -n option, prints out the table in numeric format.\n"
    );

    // ipvsadm-restore onto a different table: the table becomes the input.
    ns.ok(&["-C"]);
    ns.ok(&["-A", "-u", "10.9.9.9:53", "-s", "sh"]);
    let input = format!("# saved by ipvsadm-save\n{numeric}");
    let o = ns.cmd(&restore, &["ignored"], Some(&input));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ns.ok(&["-S", "-n"]), numeric);
    // A bad line: nothing changes (ipvsadm-restore would have cleared the
    // table and loaded the lines before it).
    let o = ns.cmd(
        &restore,
        &[],
        Some("-A -t 10.1.1.1:80 -s rr\n-A -t 10.1.1.2:80 -s nosuch\n"),
    );
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "line 2: Scheduler or persistence engine not found (nothing was applied)\n"
    );
    assert_eq!(ns.ok(&["-S", "-n"]), numeric);
    // An empty input empties the table.
    let o = ns.cmd(&restore, &[], Some("# nothing\n"));
    assert!(o.status.success());
    assert_eq!(ns.ok(&["-S", "-n"]), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn netns_timeouts_zero_stats_rate_conns() {
    let ns = Ns::with_daemon("misc");
    assert_eq!(
        ns.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    ns.ok(&["--set", "100", "20", "30"]);
    assert_eq!(
        ns.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 100 20 30\n"
    );
    ns.ok(&["--set", "0", "0", "45"]);
    assert_eq!(
        ns.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 100 20 45\n"
    );
    ns.ok(&["-A", "-u", "10.0.0.2:53", "-s", "rr"]);
    ns.ok(&["-a", "-u", "10.0.0.2:53", "-r", "192.168.1.20", "-m"]);
    ns.ok(&["-Z"]);
    ns.ok(&["-Z", "-u", "10.0.0.2:53"]);
    assert_eq!(
        ns.ok(&["-L", "-n", "--stats"]),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  \
         -> RemoteAddress:Port\n\
         UDP  10.0.0.2:53                         0        0        0        0        0\n  \
         -> 192.168.1.20:53                     0        0        0        0        0\n"
    );
    assert_eq!(
        ns.ok(&["-L", "-n", "--rate"]),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  \
         -> RemoteAddress:Port\n\
         UDP  10.0.0.2:53                         0        0        0        0        0\n  \
         -> 192.168.1.20:53                     0        0        0        0        0\n"
    );
    assert_eq!(
        ns.ok(&["-L", "-n", "-c"]),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
}

#[test]
fn netns_errors_leave_the_table_unchanged() {
    let ns = Ns::with_daemon("errors");
    ns.ok(&["-A", "-t", "172.16.1.253:10"]);
    ns.ok(&["-a", "-t", "172.16.1.253:10", "-r", "172.16.1.101"]);
    let before = ns.ok(&["-S", "-n"]);
    ns.fails(
        &["-A", "-t", "172.16.1.253:10"],
        255,
        "Service already exists\n",
    );
    ns.fails(&["-D", "-t", "1.2.3.4:80"], 255, "No such service\n");
    ns.fails(&["-E", "-t", "1.2.3.4:80"], 255, "No such service\n");
    ns.fails(
        &["-a", "-t", "9.9.9.9:80", "-r", "1.1.1.1"],
        255,
        "Service not defined\n",
    );
    ns.fails(
        &["-a", "-t", "172.16.1.253:10", "-r", "172.16.1.101"],
        255,
        "Destination already exists\n",
    );
    ns.fails(
        &["-d", "-t", "172.16.1.253:10", "-r", "172.16.1.199"],
        255,
        "No such destination\n",
    );
    ns.fails(
        &["-e", "-t", "172.16.1.253:10", "-r", "172.16.1.199"],
        255,
        "No such destination\n",
    );
    ns.fails(
        &["-A", "-t", "1.1.1.1:80", "-s", "nope"],
        255,
        "Scheduler or persistence engine not found\n",
    );
    ns.fails(&["-L", "-n", "-t", "1.2.3.4:80"], 1, "No such service\n");
    // Validation errors never reach the daemon.
    ns.fails(
        &["-A", "-t", "80"],
        2,
        "illegal virtual server address[:port] specified\n",
    );
    ns.fails(
        &[
            "-a",
            "-t",
            "172.16.1.253:10",
            "-r",
            "172.16.1.101",
            "-w",
            "70000",
        ],
        2,
        "illegal weight specified\n",
    );
    // A restore with a bad line applies nothing.
    let bad = "-A -t 10.9.9.9:80 -s rr\n-a -t 10.9.9.9:80 -r 10.1.1.1 -w 5\n-A -t 10.9.9.10:80 -s rr -x 3\n";
    let o = ns.cmd(&bin("rvsadm"), &["-R"], Some(bad));
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("line 3: "),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A restore whose error only the daemon sees (duplicate) applies nothing either.
    let dup = "-A -t 10.9.9.9:80 -s rr\n-A -t 172.16.1.253:10 -s rr\n";
    let o = ns.cmd(&bin("rvsadm"), &["-R"], Some(dup));
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "line 2: Service already exists (nothing was applied)\n"
    );
    assert_eq!(ns.ok(&["-S", "-n"]), before);

    // An unprivileged caller is refused and changes nothing.
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(bin("rvsadm"))
        .args(["-C"])
        .output()
        .expect("setpriv");
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Permission denied (you must be root)\n"
    );
    assert_eq!(ns.ok(&["-S", "-n"]), before);
}

#[test]
fn netns_no_daemon_is_a_clear_error() {
    let ns = Ns::new("nodaemon");
    let o = ns.adm(&["-L", "-n"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no rvsd answers"), "{err}");
    assert!(err.contains("rvsd"), "{err}");
    // Help and version need no daemon.
    assert!(ns.adm(&["-h"]).status.success());
    assert!(ns.adm(&["-v"]).status.success());
}
