//! The control socket under attack by a local unprivileged user (`nobody`),
//! each test in its own network namespace so that `@rvsd.ctl` is private:
//!
//! * every request of `nobody` is refused and changes nothing — plain, from
//!   inside `unshare -Ur` (where it holds every capability of its own user
//!   namespace), and when it connects first and enters the user namespace
//!   right after (exec race);
//! * `rvsadm` (run by root) refuses to talk to a socket `nobody` bound, and
//!   rvsd refuses to start on it, naming the holder;
//! * 1024 idle connections of `nobody` do not keep root out;
//! * a 100 000-line restore still goes through.
//!
//! Root is needed (namespaces, `setpriv`); so are `unshare`/`setpriv`
//! (util-linux) and `/usr/bin/python3` (the hand-written clients).
//! `RVS_TEST_BIN_DIR=DIR` runs the tests against the `rvsd` and `rvsadm` in
//! DIR instead of the ones built with them (to show how older ones fail).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rvs_proto::{
    BatchLine, Envelope, Op, PROTOCOL_VERSION, Proto, Reply, Request, ServiceId, ServiceSpec,
};

const PYTHON: &str = "/usr/bin/python3";
const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

fn bin(name: &str) -> PathBuf {
    let p = if let Some(dir) = std::env::var_os("RVS_TEST_BIN_DIR") {
        PathBuf::from(dir).join(name)
    } else {
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        dir.join(name)
    };
    assert!(p.exists(), "{} not built", p.display());
    if runnable_by_others(&p) {
        return p;
    }
    // nobody runs these too: a checkout under a private directory (such as
    // `mktemp -d`'s, mode 0700) is out of its reach, so run copies from a
    // directory anyone can enter (removed when the test's Ns goes).
    let dir = shared_bin_dir();
    std::fs::create_dir_all(&dir).expect("bin dir");
    let q = dir.join(name);
    if !q.exists() {
        std::fs::copy(&p, &q).expect("copy binary");
    }
    for d in [&dir, &q] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    q
}

/// Whether a user other than the owner can run `p`: execute permission for
/// others on it and on every directory above it.
fn runnable_by_others(p: &std::path::Path) -> bool {
    p.ancestors().all(|a| {
        a.as_os_str().is_empty()
            || std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    })
}

/// Where [`bin`] puts copies of the binaries when the build is private.
fn shared_bin_dir() -> PathBuf {
    std::env::temp_dir().join(format!("rvs-sec-bin-{}", std::process::id()))
}

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "network-namespace tests need root (CI runs them as root)"
    );
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} is needed (Debian's python3): nobody cannot run a python under /root"
    );
}

/// A network namespace, perhaps with an rvsd and other processes in it;
/// all killed and the namespace removed on drop, also when a test fails.
struct Ns {
    name: String,
    children: Vec<Child>,
}

impl Ns {
    fn new(tag: &str) -> Ns {
        require_root();
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rvsq-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        Ns {
            name,
            children: Vec::new(),
        }
    }

    /// A command run in the namespace.
    fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c.env_remove("RVS_SOCKET").env_remove("RVS_DAEMON_UID");
        c
    }

    fn with_daemon(tag: &str) -> Ns {
        Ns::with_daemon_args(tag, &[])
    }

    fn with_daemon_args(tag: &str, args: &[&str]) -> Ns {
        let mut ns = Ns::new(tag);
        let rvsd = bin("rvsd");
        let mut argv = vec![rvsd.to_str().unwrap(), "--io", "none"];
        argv.extend_from_slice(args);
        let child = ns
            .command(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rvsd");
        ns.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ns.adm(&["-L", "-n"]).status.success() {
            assert!(Instant::now() < deadline, "rvsd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        ns
    }

    /// Run `argv` in the namespace, `prefix` (e.g. `setpriv ...`) first.
    fn run(&self, prefix: &[&str], argv: &[&str], stdin: &[u8]) -> Output {
        let all: Vec<&str> = prefix.iter().chain(argv).copied().collect();
        let mut child = self
            .command(&all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait");
        let _ = writer.join();
        out
    }

    fn adm(&self, args: &[&str]) -> Output {
        self.adm_as(&[], args, b"")
    }

    fn adm_as(&self, prefix: &[&str], args: &[&str], stdin: &[u8]) -> Output {
        let rvsadm = bin("rvsadm");
        let mut argv = vec![rvsadm.to_str().unwrap()];
        argv.extend_from_slice(args);
        self.run(prefix, &argv, stdin)
    }

    /// `rvsadm -S -n` as root.
    fn save(&self) -> String {
        let o = self.adm(&["-S", "-n"]);
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    }

    /// Spawn a long-running process in the namespace (killed on drop);
    /// its stdout is piped.
    fn spawn(&mut self, prefix: &[&str], argv: &[&str]) -> &mut Child {
        let all: Vec<&str> = prefix.iter().chain(argv).copied().collect();
        let child = self
            .command(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        self.children.push(child);
        self.children.last_mut().unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(shared_bin_dir());
        for c in &mut self.children {
            // `ip netns exec` and setpriv exec: the child is the process.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Addr {
        proto: Proto::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn line(request: Request) -> Vec<u8> {
    rvs_proto::encode(&Envelope {
        version: PROTOCOL_VERSION,
        request,
    })
}

/// Requests that read and that change the table, one per line.
fn attack_lines() -> Vec<u8> {
    let svc = ServiceSpec {
        id: tcp("1.2.3.4", 80),
        scheduler: "rr".into(),
        flags: 0,
        timeout: 0,
        netmask: u32::MAX,
        pe: None,
    };
    let mut v = Vec::new();
    for r in [
        Request::Info,
        Request::ListServices,
        Request::ListConns,
        Request::ListConnsPacked,
        Request::GetTimeouts,
        Request::Apply(Op::AddService(svc)),
        Request::Apply(Op::DeleteService(tcp("10.0.0.1", 80))),
        Request::Apply(Op::Flush),
        Request::Batch(vec![BatchLine {
            line: 1,
            op: Op::Flush,
        }]),
        Request::FwmarkFlush,
        Request::DataPlaneStats,
        Request::GetSysctls,
    ] {
        v.extend(line(r));
    }
    v
}

/// A client written by hand: sends each stdin line on the connection to
/// `@rvsd.ctl` and prints each reply line. With `unshare` as argv[1], it
/// connects first, then execs `unshare -Ur` with the connection, whose
/// child sends the requests from inside the new user namespace. With
/// `setpriv` (run by root), it connects, then execs itself as nobody with
/// the connection.
const RAW_CLIENT: &str = r#"
import os, socket, sys
def talk(s):
    f = s.makefile('rb')
    for l in sys.stdin.buffer:
        s.sendall(l)
        sys.stdout.write(f.readline().decode())
        sys.stdout.flush()
if len(sys.argv) > 1 and sys.argv[1] == 'unshare':
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect('\0rvsd.ctl')
    os.set_inheritable(s.fileno(), True)
    os.execvp('unshare', ['unshare', '-Ur', sys.executable, '-c', sys.argv[2], 'fd', str(s.fileno())])
elif len(sys.argv) > 1 and sys.argv[1] == 'setpriv':
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect('\0rvsd.ctl')
    os.set_inheritable(s.fileno(), True)
    os.execvp('setpriv', ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                          sys.executable, '-c', sys.argv[2], 'fdany', str(s.fileno())])
elif len(sys.argv) > 1 and sys.argv[1] == 'fork':
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect('\0rvsd.ctl')
    pid = os.fork()
    if pid == 0:
        talk(s)
        os._exit(0)
    s.close()
    os.waitpid(pid, 0)
elif len(sys.argv) > 2 and sys.argv[1] == 'fdany':
    talk(socket.socket(fileno=int(sys.argv[2])))
elif len(sys.argv) > 2 and sys.argv[1] == 'fd':
    with open('/proc/self/status') as st:
        cap = [l for l in st if l.startswith('CapEff')][0].split()[1]
    assert int(cap, 16) & (1 << 12), cap
    talk(socket.socket(fileno=int(sys.argv[2])))
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect('\0rvsd.ctl')
    talk(s)
"#;

/// Every reply line is EPERM, one per request.
fn all_refused(o: &Output, requests: usize, what: &str) {
    let text = String::from_utf8_lossy(&o.stdout);
    let replies: Vec<&str> = text.lines().collect();
    assert_eq!(
        replies.len(),
        requests,
        "{what}: {requests} replies expected: {text}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for r in replies {
        match rvs_proto::decode::<Reply>(r.as_bytes()) {
            Ok(Reply::Error(e)) if e.errno == 1 => {}
            other => panic!("{what}: not refused: {other:?}"),
        }
    }
}

#[test]
fn netns_nobody_is_refused_with_and_without_a_user_namespace() {
    let ns = Ns::with_daemon("nobody");
    let setup = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1\n";
    let o = ns.adm_as(&[], &["-R"], setup.as_bytes());
    assert!(o.status.success(), "{o:?}");
    let before = ns.save();
    assert!(before.contains("10.0.0.1:80"), "{before}");

    let plain: Vec<&str> = NOBODY.to_vec();
    // Inside the user namespace root's socket shows as the overflow uid
    // (65534), which rvsadm would refuse to talk to: the attacker tells it
    // to trust that uid, so that it is rvsd that must refuse.
    let userns: Vec<&str> = NOBODY
        .iter()
        .copied()
        .chain(["unshare", "-Ur", "env", "RVS_DAEMON_UID=65534"])
        .collect();
    // The unshared process really holds CAP_NET_ADMIN in its namespace.
    let o = ns.run(&userns, &["grep", "CapEff", "/proc/self/status"], b"");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("000001ffffffffff"),
        "{o:?}"
    );
    let big = "-A -t 10.9.9.9:80 -s rr\n".repeat(10_000);
    for (name, prefix) in [("nobody in unshare -Ur", &userns), ("nobody", &plain)] {
        for (args, stdin) in [
            (&["-A", "-t", "1.2.3.4:80"][..], ""),
            (&["-C"][..], ""),
            (&["-D", "-t", "10.0.0.1:80"][..], ""),
            (&["-Z"][..], ""),
            (&["-R"][..], "-A -t 1.2.3.4:80 -s rr\n"),
            // A request beyond the unprivileged bound is refused too.
            (&["-R"][..], big.as_str()),
            (&["-L", "-n"][..], ""),
            (&["-S", "-n"][..], ""),
        ] {
            let o = ns.adm_as(prefix, args, stdin.as_bytes());
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success() && err.contains("Permission denied (you must be root)"),
                "{name}: rvsadm {args:?}: {:?} stdout {} stderr {err}",
                o.status,
                String::from_utf8_lossy(&o.stdout)
            );
            assert_eq!(
                ns.save(),
                before,
                "{name}: rvsadm {args:?} changed the table"
            );
        }
        // Raw requests, the data-plane and fwmark ones included.
        let reqs = attack_lines();
        let n = reqs.iter().filter(|&&b| b == b'\n').count();
        let o = ns.run(prefix, &[PYTHON, "-c", RAW_CLIENT], &reqs);
        all_refused(&o, n, name);
        assert_eq!(ns.save(), before, "{name}: raw requests changed the table");
    }
    // Connected as nobody, then into a user namespace with every capability
    // before sending anything: a race with rvsd's check of the peer, which
    // rvsd before SO_PEERCRED-and-namespace checks lost about once in 20.
    let reqs = attack_lines();
    let n = reqs.iter().filter(|&&b| b == b'\n').count();
    for _ in 0..40 {
        let o = ns.run(
            &plain,
            &[PYTHON, "-c", RAW_CLIENT, "unshare", RAW_CLIENT],
            &reqs,
        );
        all_refused(&o, n, "connect, then unshare -Ur");
    }
    assert_eq!(ns.save(), before, "the exec race changed the table");
    // Connected as root, then exec'd as nobody with the connection.
    let o = ns.run(
        &[],
        &[PYTHON, "-c", RAW_CLIENT, "setpriv", RAW_CLIENT],
        &reqs,
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        matches!(rvs_proto::decode::<Reply>(first.as_bytes()), Ok(Reply::Error(e)) if e.errno == 1),
        "root, then exec'd as nobody: not refused: {text}"
    );
    assert_eq!(ns.save(), before, "root-then-nobody changed the table");
}

/// A privileged process that connects and then forks a child that talks
/// (a daemon's worker, say) is served while the process that connected is
/// alive and privileged; see `Pin::still_privileged` for why a connection
/// whose connecting process has exited is refused.
#[test]
fn netns_a_forked_child_of_a_privileged_peer_is_served() {
    let ns = Ns::with_daemon("fork");
    let mut reqs = line(Request::Info);
    reqs.extend(line(Request::ListServices));
    let o = ns.run(&[], &[PYTHON, "-c", RAW_CLIENT, "fork"], &reqs);
    let text = String::from_utf8_lossy(&o.stdout);
    let replies: Vec<Reply> = text
        .lines()
        .map(|l| rvs_proto::decode::<Reply>(l.as_bytes()).expect("a reply"))
        .collect();
    assert!(
        matches!(replies.as_slice(), [Reply::Info { .. }, Reply::Services(_)]),
        "{text}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn netns_cap_net_admin_and_group_members_are_served() {
    let ns = Ns::with_daemon_args("allowed", &["--group", "4242"]);
    // nobody with CAP_NET_ADMIN in rvsd's user namespace.
    let cap = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+net_admin",
        "--ambient-caps=+net_admin",
    ];
    let o = ns.adm_as(&cap, &["-A", "-t", "5.5.5.5:80"], b"");
    assert!(o.status.success(), "CAP_NET_ADMIN: {o:?}");
    // A member of --group (supplementary), and one by its primary group.
    let member = ["setpriv", "--reuid=65534", "--regid=65534", "--groups=4242"];
    let o = ns.adm_as(&member, &["-A", "-t", "6.6.6.6:80"], b"");
    assert!(o.status.success(), "--group member: {o:?}");
    let primary = ["setpriv", "--reuid=65534", "--regid=4242", "--clear-groups"];
    let o = ns.adm_as(&primary, &["-A", "-t", "7.7.7.7:80"], b"");
    assert!(o.status.success(), "--group primary: {o:?}");
    let saved = ns.save();
    for vip in ["5.5.5.5:80", "6.6.6.6:80", "7.7.7.7:80"] {
        assert!(saved.contains(vip), "{vip} missing: {saved}");
    }
    // Another group is not enough.
    let other = ["setpriv", "--reuid=65534", "--regid=65534", "--groups=4243"];
    let o = ns.adm_as(&other, &["-C"], b"");
    assert_eq!(o.status.code(), Some(255), "{o:?}");
    assert_eq!(ns.save(), saved);
}

/// A squatter of `@rvsd.ctl`: answers every line with an empty service
/// list, and reports how many bytes it received on stdout when it is
/// stopped (SIGTERM).
const SQUATTER: &str = r#"
import signal, socket, sys, threading
got = [0]
def bye(*a):
    print(got[0], flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind('\0rvsd.ctl')
l.listen(16)
print('ready', flush=True)
def serve(c):
    f = c.makefile('rb')
    for line in f:
        got[0] += len(line)
        c.sendall(b'{"Services":[]}\n')
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

#[test]
fn netns_rvsadm_and_rvsd_refuse_a_socket_bound_by_another_user() {
    let mut ns = Ns::new("squat");
    let squatter = ns.spawn(&NOBODY, &[PYTHON, "-c", SQUATTER]);
    let squatter_pid = squatter.id();
    let mut out = BufReader::new(squatter.stdout.take().unwrap());
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    assert_eq!(l, "ready\n");

    // Root's rvsadm sends nothing and says why.
    for args in [
        &["-S", "-n"][..],
        &["-L", "-n"][..],
        &["-A", "-t", "1.2.3.4:80"][..],
    ] {
        let o = ns.adm(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "rvsadm {args:?}: {o:?}");
        assert!(o.stdout.is_empty(), "rvsadm {args:?}: {o:?}");
        assert!(
            err.starts_with(
                "Can't initialize ipvs: the socket @rvsd.ctl is held by uid 65534 (pid "
            ) && err.contains("not a trusted rvsd")
                && err.contains("RVS_DAEMON_UID=65534"),
            "rvsadm {args:?}: {err}"
        );
    }
    // Trusted once named.
    let rvsadm = bin("rvsadm");
    let o = ns.run(
        &["env", "RVS_DAEMON_UID=65534"],
        &[rvsadm.to_str().unwrap(), "-S", "-n"],
        b"",
    );
    assert!(o.status.success(), "{o:?}");

    // rvsd does not start, and names the holder.
    let rvsd = bin("rvsd");
    let o = ns.run(&[], &[rvsd.to_str().unwrap(), "--io", "none"], b"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot listen on @rvsd.ctl: the name is taken by a process of uid 65534")
            && err.contains(&format!("(pid {squatter_pid})")),
        "{err}"
    );

    // Only the request of the RVS_DAEMON_UID run reached the squatter: the
    // refused runs sent nothing.
    let _ = Command::new("kill")
        .args(["-TERM", &squatter_pid.to_string()])
        .status();
    let mut got = String::new();
    out.read_line(&mut got).unwrap();
    let sent = line(Request::ListServices).len();
    assert_eq!(got.trim(), sent.to_string(), "bytes the squatter received");
}

/// Holds N connections to `@rvsd.ctl` open and idle; says `ready` when
/// they are all connected, then waits.
const HOLDER: &str = r#"
import resource, socket, sys, time
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
held = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect('\0rvsd.ctl')
    held.append(s)
print('ready', flush=True)
# rvsd closes each one: at once beyond the user's share, after its
# lifetime for the others.
t0 = time.monotonic()
eof = 0
for s in held:
    s.settimeout(max(0.1, 20 - (time.monotonic() - t0)))
    try:
        while s.recv(4096):
            pass
        eof += 1
    except OSError:
        pass
print('closed', eof, round(time.monotonic() - t0, 1), flush=True)
time.sleep(600)
"#;

#[test]
fn netns_idle_connections_of_a_user_do_not_lock_out_root() {
    let mut ns = Ns::with_daemon("idle");
    ns.adm(&["-A", "-t", "10.0.0.1:80"]);
    let holder = ns.spawn(&NOBODY, &[PYTHON, "-c", HOLDER, "1024"]);
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    assert_eq!(l, "ready\n", "the holder could not connect 1024 times");
    // Let rvsd accept them all.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let t = Instant::now();
        let o = ns.adm(&["-L", "-n"]);
        let took = t.elapsed();
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("10.0.0.1:80"),
            "{o:?}"
        );
        assert!(took < Duration::from_secs(1), "rvsadm -L -n took {took:?}");
        eprintln!("rvsadm -L -n with 1024 idle connections held: {took:?}");
    }
    // The connections rvsd kept are closed after their lifetime (5 s),
    // although they never send anything.
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    let words: Vec<&str> = l.split_whitespace().collect();
    assert_eq!(words.get(..2), Some(&["closed", "1024"][..]), "{l}");
    let secs: f64 = words[2].parse().unwrap();
    assert!(
        secs < 8.0,
        "idle unprivileged connections closed after {secs} s"
    );
    eprintln!("1024 idle connections of nobody all closed by rvsd within {secs} s");
}

#[test]
fn netns_restore_of_100k_lines() {
    let ns = Ns::with_daemon("restore");
    let mut text = String::new();
    for s in 0..1000u32 {
        let vip = format!("10.{}.{}.1:80", s / 250, s % 250);
        text += &format!("-A -t {vip} -s wlc\n");
        for d in 0..99u32 {
            text += &format!(
                "-a -t {vip} -r 192.168.{}.{}:8080 -m -w 1\n",
                d / 250,
                d % 250 + 1
            );
        }
    }
    let t = Instant::now();
    let o = ns.adm_as(&[], &["-R"], text.as_bytes());
    eprintln!("rvsadm -R of 100 000 lines: {:?}", t.elapsed());
    assert!(o.status.success(), "{o:?}");
    assert_eq!(ns.save().lines().count(), 100_000);
}
