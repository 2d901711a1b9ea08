//! ipvsadm's command-line grammar: messages, exit codes, the legality
//! matrix, popt behaviours, address forms and semantic defaults.
//! (Test names start with `cli_` so `cargo test -p rvsadm cli` runs them.)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_proto::{
    DaemonRole, DaemonSpec, DestSpec, Fwd, Op, Proto, SVC_F_ONEPACKET, SVC_F_PERSISTENT,
    SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3, ServiceId, ServiceSpec, TUN_F_CSUM, TUN_F_REMCSUM,
    TunKind, TunnelSpec,
};
use rvsadm::cli::{CliError, Command, ListOpts, help_text, parse_args, version_line};

fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn parse(line: &str) -> Result<Command, CliError> {
    parse_args("ipvsadm", &argv(line))
}

fn parse_v(args: &[&str]) -> Result<Command, CliError> {
    let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    parse_args("ipvsadm", &v)
}

#[track_caller]
fn op(line: &str) -> Op {
    match parse(line) {
        Ok(Command::Apply(op)) => op,
        other => panic!("{line}: expected an operation, got {other:?}"),
    }
}

#[track_caller]
fn list(line: &str) -> ListOpts {
    match parse(line) {
        Ok(Command::List(l)) => l,
        other => panic!("{line}: expected a listing, got {other:?}"),
    }
}

/// `(stderr, exit status)` of a refused command line.
#[track_caller]
fn refused(line: &str) -> (String, u8) {
    match parse(line) {
        Err(e) => (e.render("ipvsadm"), e.exit_code()),
        Ok(c) => panic!("{line}: accepted as {c:?}"),
    }
}

/// The `fail()` message (exit 2) of a command line.
#[track_caller]
fn failure(line: &str) -> String {
    let (text, code) = refused(line);
    assert_eq!(code, 2, "{line}: {text}");
    text.strip_suffix('\n').unwrap().to_string()
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Addr {
        proto: Proto::Tcp,
        addr: v4(addr),
        port,
    }
}

fn service(op: Op) -> ServiceSpec {
    match op {
        Op::AddService(s) | Op::EditService(s) => s,
        other => panic!("not a service: {other:?}"),
    }
}

fn dest(op: Op) -> DestSpec {
    match op {
        Op::AddDest { dest, .. } | Op::EditDest { dest, .. } => dest,
        other => panic!("not a destination: {other:?}"),
    }
}

/// Every message of §3.2 that the command line can produce, with its exit
/// status (2 for all of them).
#[test]
fn cli_every_validation_message() {
    let cases: &[(&str, &str)] = &[
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -w 1 -w 2",
            "multiple 'weight' options specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -g -m",
            "multiple 'forwarding-method' options specified",
        ),
        (
            "-A -t 1.2.3.4:80 -f 1",
            "multiple 'service-address' options specified",
        ),
        (
            "-A -s rr",
            "You need to supply the 'service-address' option for the 'add-service' command",
        ),
        (
            "-A -t 1.2.3.4:80 -w 1",
            "Illegal 'weight' option with the 'add-service' command",
        ),
        (
            "-L -c --timeout",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -i --tun-type gue",
            "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -i --tun-port 6080",
            "Illegal 'tun-port' option with the 'ipip' tunnel type",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-csum --tun-remcsum",
            "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type",
        ),
        (
            "-A -t 80",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2:65536",
            "illegal real server address[:port] specified",
        ),
        ("-A -f 0", "invalid fwmark value `0' specified"),
        (
            "-A -f 4294967296",
            "invalid fwmark value `4294967296' specified",
        ),
        ("-A -f 1x", "invalid fwmark value `1x' specified"),
        (
            "-A -t 1.2.3.4:80 -p 0",
            "invalid timeout value `0' specified",
        ),
        (
            "-A -t 1.2.3.4:80 -p 2678401",
            "invalid timeout value `2678401' specified",
        ),
        (
            "-A -t 1.2.3.4:80 -p -M 1.2.3.4.5",
            "illegal virtual server persistent mask specified",
        ),
        (
            "-A -t [2001:db8::1]:80 -p -M 129",
            "illegal ipv6 netmask specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -w 65536",
            "illegal weight specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -x -1",
            "illegal u_threshold specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -y 2147483648",
            "illegal l_threshold specified",
        ),
        (
            "--start-daemon master --syncid 256",
            "illegal syncid specified",
        ),
        (
            "--start-daemon master --mcast-port 0",
            "illegal mcast-port specified",
        ),
        (
            "--start-daemon master --mcast-ttl 256",
            "illegal mcast-ttl specified",
        ),
        (
            "--start-daemon master --sync-maxlen 65508",
            "illegal sync-maxlen specified",
        ),
        (
            "--start-daemon master --mcast-group 10.0.0.1",
            "invalid IPv4 mcast-group `10.0.0.1'",
        ),
        (
            "--start-daemon master --mcast-group 2001:db8::1",
            "invalid IPv6 mcast-group `2001:db8::1'",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -i --tun-type vxlan",
            "illegal tunnel type specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -i --tun-type gue --tun-port 0",
            "illegal tunnel port specified",
        ),
        ("-A -t 1.2.3.4:80 -b fast", "invalid scheduler flag `fast'"),
        (
            "-A -t 1.2.3.4:80 -b sh-port",
            "incompatible scheduler flag `sh-port'",
        ),
        (
            "--start-daemon primary",
            "illegal start-daemon parameter specified",
        ),
        ("--stop-daemon primary", "illegal start_daemon specified"),
        ("-A -t 1.2.3.4:80 -6", "-6 used before -f\n"),
        ("--set 900 120", "--set option requires 3 timeout values"),
        ("-C now", "unexpected argument now"),
        (
            "-A -t 1.2.3.4:0",
            "Zero port specified for non-persistent service",
        ),
        (
            "-A -t 1.2.3.4:53 -o",
            "One-Packet Scheduling is only for UDP virtual services",
        ),
        (
            "-a -t 1.2.3.4:80 -r 2001:db8::2 -g",
            "Different address family is allowed only for tunneling servers",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -m --tun-type gue",
            "Tunnel options conflict with forward method",
        ),
        ("-L -c --stats", "options conflicts in the list command"),
        // Not in §3.2 but what ipvsadm's option loop does with a second
        // command (it has no case for it): see the module docs.
        ("-L -A", "invalid option `-A'"),
    ];
    for &(line, want) in cases {
        assert_eq!(failure(line), want, "{line}");
    }
    // `-6 used before -f` keeps its embedded newline, then fail() adds one.
    assert_eq!(refused("-A -6 -f 1").0, "-6 used before -f\n\n");
}

#[test]
fn cli_exit_codes_and_rendering() {
    assert_eq!(
        refused("-n -L"),
        (
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n".into(),
            255
        )
    );
    assert_eq!(refused("-L --foo"), ("--foo: unknown option\n".into(), 255));
    assert_eq!(
        refused("-a -t 1.2.3.4:80 -r 10.0.0.2 -w"),
        ("-w: missing argument\n".into(), 255)
    );
    assert_eq!(
        refused("-L --numeric=yes"),
        (
            "--numeric=yes: option does not take an argument\n".into(),
            255
        )
    );
    assert_eq!(refused("-A -t 1.2.3.4:80 -p 0").1, 2, "fail() exits with 2");
    let e = parse("-n").unwrap_err();
    assert_eq!(
        e.render("/usr/sbin/rvsadm"),
        "Try `/usr/sbin/rvsadm -h' or '/usr/sbin/rvsadm --help' for more information.\n"
    );
}

#[test]
fn cli_first_option_must_be_a_command() {
    for line in [
        "-n -L",
        "-t 1.2.3.4:80 -A",
        "foo",
        "foo bar",
        "--foo -L",
        "-q",
        "--",
        "-- -L",
        "--list=1",
        "--start-daemon",
        "-",
    ] {
        assert_eq!(parse(line), Err(CliError::TryHelp), "{line}");
    }
    assert_eq!(parse_v(&[""]), Err(CliError::TryHelp));
    // Words before the command are leftovers, reported after option parsing.
    assert_eq!(failure("foo -L"), "unexpected argument foo");
}

#[test]
fn cli_no_arguments_lists() {
    assert_eq!(
        parse_args("ipvsadm", &[]),
        Ok(Command::List(ListOpts::default()))
    );
}

#[test]
fn cli_help_and_version() {
    for line in ["-h", "--help", "-h --foo", "-h -L", "-hL"] {
        assert_eq!(parse(line), Ok(Command::Help), "{line}");
    }
    for line in ["-v", "--version", "-v junk"] {
        assert_eq!(parse(line), Ok(Command::Version), "{line}");
    }
    // Not first: a second command.
    assert_eq!(failure("-L -h"), "invalid option `-h'");
    assert_eq!(failure("-Lv"), "invalid option `-Lv'");
    assert_eq!(
        version_line(),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)"
    );
    let h = help_text("ipvsadm");
    assert!(h.starts_with(&format!("{}\nUsage:\n", version_line())));
    assert!(h.contains("  ipvsadm --start-daemon {master|backup} [daemon-options]\n"));
}

#[test]
fn cli_second_command_is_an_invalid_option() {
    assert_eq!(failure("-A -t 1.2.3.4:80 -E"), "invalid option `-E'");
    assert_eq!(failure("-LA"), "invalid option `-LA'");
    assert_eq!(failure("-L -l"), "invalid option `-l'");
    assert_eq!(failure("-C --set"), "invalid option `--set'");
    // popt's "bad option" is the last word consumed: the daemon's argument.
    assert_eq!(
        failure("-L --start-daemon master"),
        "invalid option `master'"
    );
}

/// Each command with an option it forbids and without an option it needs.
#[test]
fn cli_legality_matrix() {
    let cases: &[(&str, &str)] = &[
        (
            "-A -t 1.2.3.4:80 -r 10.0.0.2",
            "Illegal 'real-server' option with the 'add-service' command",
        ),
        (
            "-A -n",
            "Illegal 'numeric' option with the 'add-service' command",
        ),
        (
            "-A",
            "You need to supply the 'service-address' option for the 'add-service' command",
        ),
        (
            "-E -t 1.2.3.4:80 -m",
            "Illegal 'forwarding-method' option with the 'edit-service' command",
        ),
        (
            "-E -s rr",
            "You need to supply the 'service-address' option for the 'edit-service' command",
        ),
        (
            "-D -t 1.2.3.4:80 -s rr",
            "Illegal 'scheduler' option with the 'delete-service' command",
        ),
        (
            "-D -p",
            "You need to supply the 'service-address' option for the 'delete-service' command",
        ),
        (
            "-D",
            "You need to supply the 'service-address' option for the 'delete-service' command",
        ),
        (
            "-C -t 1.2.3.4:80",
            "Illegal 'service-address' option with the 'flush' command",
        ),
        ("-C -n", "Illegal 'numeric' option with the 'flush' command"),
        (
            "-L -s rr",
            "Illegal 'scheduler' option with the 'list' command",
        ),
        ("-L -o", "Illegal 'ops' option with the 'list' command"),
        (
            "-L --mcast-interface eth0",
            "Illegal 'mcast-interface' option with the 'list' command",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -p",
            "Illegal 'persistent' option with the 'add-server' command",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 --tun-info",
            "Illegal 'tun-info' option with the 'add-server' command",
        ),
        (
            "-a -t 1.2.3.4:80",
            "You need to supply the 'real-server' option for the 'add-server' command",
        ),
        (
            "-a -r 10.0.0.2",
            "You need to supply the 'service-address' option for the 'add-server' command",
        ),
        (
            "-d -t 1.2.3.4:80 -r 10.0.0.2 -w 1",
            "Illegal 'weight' option with the 'delete-server' command",
        ),
        (
            "-d -t 1.2.3.4:80 -r 10.0.0.2 -g",
            "Illegal 'forwarding-method' option with the 'delete-server' command",
        ),
        (
            "-d -t 1.2.3.4:80 -r 10.0.0.2 --tun-type gue",
            "Illegal 'tun-type' option with the 'delete-server' command",
        ),
        (
            "-d -t 1.2.3.4:80",
            "You need to supply the 'real-server' option for the 'delete-server' command",
        ),
        (
            "-e -t 1.2.3.4:80 -r 10.0.0.2 -s rr",
            "Illegal 'scheduler' option with the 'edit-server' command",
        ),
        (
            "-e -r 10.0.0.2",
            "You need to supply the 'service-address' option for the 'edit-server' command",
        ),
        (
            "-e -t 1.2.3.4:80",
            "You need to supply the 'real-server' option for the 'edit-server' command",
        ),
        (
            "--set 1 2 3 -n",
            "Illegal 'numeric' option with the 'set' command",
        ),
        (
            "--set 1 2 3 -t 1.2.3.4:80",
            "Illegal 'service-address' option with the 'set' command",
        ),
        (
            "--start-daemon master -n",
            "Illegal 'numeric' option with the 'start-daemon' command",
        ),
        (
            "--start-daemon master --stats",
            "Illegal 'stats' option with the 'start-daemon' command",
        ),
        (
            "--stop-daemon master --mcast-interface eth1",
            "Illegal 'mcast-interface' option with the 'stop-daemon' command",
        ),
        (
            "--stop-daemon master --mcast-group 224.0.0.81",
            "Illegal 'mcast-group' option with the 'stop-daemon' command",
        ),
        (
            "-R -n",
            "Illegal 'numeric' option with the 'restore' command",
        ),
        (
            "-S -c",
            "Illegal 'connection' option with the 'save' command",
        ),
        (
            "-S -t 1.2.3.4:80",
            "Illegal 'service-address' option with the 'save' command",
        ),
        ("-Z -n", "Illegal 'numeric' option with the 'zero' command"),
        (
            "-Z -t 1.2.3.4:80 -s rr",
            "Illegal 'scheduler' option with the 'zero' command",
        ),
        // Walk in table order: numeric comes before service-address.
        (
            "-a -w 1 -n",
            "Illegal 'numeric' option with the 'add-server' command",
        ),
        (
            "-A -s rr -w 1",
            "You need to supply the 'service-address' option for the 'add-service' command",
        ),
    ];
    for &(line, want) in cases {
        assert_eq!(failure(line), want, "{line}");
    }
}

#[test]
fn cli_list_exclusive_group_and_conflicts() {
    let conflicts: &[(&str, &str)] = &[
        (
            "-L -c --timeout",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
        ),
        (
            "-L --timeout -c",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
        ),
        (
            "-L -t 1.2.3.4:80 -c",
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
        ),
        (
            "-L --daemon --timeout",
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command",
        ),
        (
            "-L -f 1 --daemon",
            "The option 'daemon' conflicts with the 'service-address' option in the 'list' command",
        ),
        (
            "-L -c --timeout --daemon",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
        ),
        ("-L -c --stats", "options conflicts in the list command"),
        ("-L -c --rate", "options conflicts in the list command"),
        (
            "-L --timeout --thresholds",
            "options conflicts in the list command",
        ),
        (
            "-L --daemon --stats",
            "options conflicts in the list command",
        ),
        (
            "-L --timeout --persistent-conn",
            "options conflicts in the list command",
        ),
        (
            "-L --daemon --persistent-conn",
            "options conflicts in the list command",
        ),
        ("-L -n -n", "multiple 'numeric' options specified"),
    ];
    for &(line, want) in conflicts {
        assert_eq!(failure(line), want, "{line}");
    }
    // Allowed combinations.
    let l = list("-L -c --persistent-conn -n");
    assert!(l.connection && l.persistent_conn && l.numeric);
    let l = list("-L --stats --rate --thresholds --exact --nosort --tun-info --sort --syncid 3");
    assert!(l.stats && l.rate && l.thresholds && l.exact && l.nosort && l.tun_info);
    let l = list("-l -t 1.2.3.4:80 --stats");
    assert_eq!(l.service, Some(tcp("1.2.3.4", 80)));
    assert!(list("-L --timeout").timeout);
    assert!(list("-L --daemon").daemon);
    assert_eq!(
        list("-L -f 7 -6").service,
        Some(ServiceId::Fwmark { v6: true, mark: 7 })
    );
}

#[test]
fn cli_popt_behaviours() {
    // Bundling.
    let l = list("-Ln");
    assert!(l.numeric);
    let l = list("-lnc");
    assert!(l.numeric && l.connection);
    assert_eq!(
        list("-LnX --stats"),
        ListOpts {
            numeric: true,
            exact: true,
            stats: true,
            ..ListOpts::default()
        }
    );
    // Attached, separate, long and long= forms of an argument.
    let want = tcp("10.0.0.1", 80);
    for line in [
        "-D -t10.0.0.1:80",
        "-D -t 10.0.0.1:80",
        "-Dt10.0.0.1:80",
        "-D -t=10.0.0.1:80",
        "-D --tcp-service=10.0.0.1:80",
        "-D --tcp-service 10.0.0.1:80",
        "--delete-service --tcp-service 10.0.0.1:80",
    ] {
        assert_eq!(op(line), Op::DeleteService(want), "{line}");
    }
    // A required argument takes the next word whatever it is.
    assert_eq!(service(op("-A -t 1.2.3.4:80 -s -p")).scheduler, "-p");
    // `--` ends the options.
    assert_eq!(failure("-C -- -n"), "unexpected argument -n");
    // `-` alone is a word.
    assert_eq!(failure("-C -"), "unexpected argument -");
    // Unknown options after the command.
    assert_eq!(refused("-Lq").0, "-Lq: unknown option\n");
    assert_eq!(refused("-L --stat").0, "--stat: unknown option\n");
    assert_eq!(refused("-L -I 3").0, "-I: unknown option\n");
    assert_eq!(
        refused("-L -n=1").0,
        "-n=1: option does not take an argument\n"
    );
    assert_eq!(refused("-A -t").0, "-t: missing argument\n");
    assert_eq!(
        refused("-A --scheduler").0,
        "--scheduler: missing argument\n"
    );
    // Errors stop at the first problem, in command-line order.
    assert_eq!(
        refused("-a -t 1.2.3.4:80 -r 10.0.0.2 -w x --foo").0,
        "illegal weight specified\n"
    );
    assert_eq!(
        refused("-a -t 1.2.3.4:80 -r 10.0.0.2 --foo -w x").0,
        "--foo: unknown option\n"
    );
}

#[test]
fn cli_persistent_optional_argument() {
    let t = |line: &str| {
        let s = service(op(line));
        assert_ne!(s.flags & SVC_F_PERSISTENT, 0, "{line}");
        s.timeout
    };
    assert_eq!(t("-A -t 1.2.3.4:80 -p 600"), 600);
    assert_eq!(t("-A -t 1.2.3.4:80 -p -s rr"), 360);
    assert_eq!(t("-A -t 1.2.3.4:80 -p"), 360);
    assert_eq!(t("-A -t 1.2.3.4:80 -p600"), 600);
    assert_eq!(t("-A -t 1.2.3.4:80 -p=600"), 600);
    assert_eq!(t("-A -t 1.2.3.4:80 --persistent=600"), 600);
    assert_eq!(t("-A -t 1.2.3.4:80 --persistent 600"), 600);
    assert_eq!(t("-A -t 1.2.3.4:80 --persistent"), 360);
    assert_eq!(t("-A -t 1.2.3.4:80 -p +600"), 600);
    assert_eq!(t("-A -t 1.2.3.4:80 -p 2678400"), 2678400);
    assert_eq!(t("-A -p 10 -t 1.2.3.4:80"), 10);
    assert_eq!(
        failure("-A -t 1.2.3.4:80 -p soon"),
        "invalid timeout value `soon' specified"
    );
    assert_eq!(
        failure("-A -t 1.2.3.4:80 -ps"),
        "invalid timeout value `s' specified"
    );
    assert_eq!(
        failure("-A -t 1.2.3.4:80 -p -p"),
        "multiple 'persistent' options specified"
    );
    // Without -p: no persistence, timeout 0.
    let s = service(op("-A -t 1.2.3.4:80"));
    assert_eq!((s.flags, s.timeout), (0, 0));
}

#[test]
fn cli_integer_rules() {
    let w = |text: &str| parse_v(&["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-w", text]);
    let weight = |text: &str| match w(text) {
        Ok(Command::Apply(o)) => Some(dest(o).weight),
        _ => None,
    };
    assert_eq!(weight("+5"), Some(5));
    assert_eq!(weight(" 5"), Some(5));
    assert_eq!(weight("0"), Some(0));
    assert_eq!(weight("65535"), Some(65535));
    assert_eq!(weight("5 "), None);
    assert_eq!(weight("5x"), None);
    assert_eq!(weight(""), None);
    assert_eq!(weight("0x10"), None);
    assert_eq!(weight("-1"), None);
}

#[test]
fn cli_address_forms() {
    let svc = |text: &str| match parse_v(&["-D", "-t", text]) {
        Ok(Command::Apply(Op::DeleteService(id))) => Ok(id),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.render("ipvsadm")),
    };
    let addr = |proto, addr, port| Ok(ServiceId::Addr { proto, addr, port });
    assert_eq!(svc("10.0.0.1:80"), addr(Proto::Tcp, v4("10.0.0.1"), 80));
    assert_eq!(svc("10.1:80"), addr(Proto::Tcp, v4("10.0.0.1"), 80));
    assert_eq!(svc("10.0.0.1"), addr(Proto::Tcp, v4("10.0.0.1"), 0));
    assert_eq!(
        svc("[2001:db8::1]:80"),
        addr(Proto::Tcp, v6("2001:db8::1"), 80)
    );
    assert_eq!(svc("2001:db8::1"), addr(Proto::Tcp, v6("2001:db8::1"), 0));
    assert_eq!(svc("localhost:http"), addr(Proto::Tcp, v4("127.0.0.1"), 80));
    assert_eq!(svc("1.2.3.4:www"), addr(Proto::Tcp, v4("1.2.3.4"), 80));
    assert_eq!(svc("[::1]:https"), addr(Proto::Tcp, v6("::1"), 443));
    let bad = Err("illegal virtual server address[:port] specified\n".to_string());
    for text in [
        "80",
        "",
        "[::1]",
        "[::1]:",
        "[::1]80",
        "1.2.3.4:",
        "1.2.3.4:65536",
        "1.2.3.4:no-such-service-name",
    ] {
        assert_eq!(svc(text), bad, "{text:?}");
    }
    // Service names are looked up for the service's protocol.
    assert_eq!(
        op("-D -u 1.2.3.4:https"),
        Op::DeleteService(ServiceId::Addr {
            proto: Proto::Udp,
            addr: v4("1.2.3.4"),
            port: 443
        })
    );
    assert_eq!(
        op("-D --sctp-service 1.2.3.4:9"),
        Op::DeleteService(ServiceId::Addr {
            proto: Proto::Sctp,
            addr: v4("1.2.3.4"),
            port: 9
        })
    );
    // Real servers use the same syntax.
    let d = dest(op("-a -t 1.2.3.4:80 -r localhost:8080 -m"));
    assert_eq!((d.addr, d.port), (v4("127.0.0.1"), 8080));
    let d = dest(op("-a -t [2001:db8::1]:80 -r [2001:db8::2]:8080 -m"));
    assert_eq!((d.addr, d.port), (v6("2001:db8::2"), 8080));
    assert_eq!(
        failure("-a -t 1.2.3.4:80 -r 80"),
        "illegal real server address[:port] specified"
    );
    // Fwmark services look names up as TCP.
    assert_eq!(dest(op("-a -f 1 -r 10.0.0.2:http -m")).port, 80);
    // A port name for -r placed before the service has no protocol to use.
    assert_eq!(
        failure("-a -r 10.0.0.2:http -t 1.2.3.4:80 -m"),
        "illegal real server address[:port] specified"
    );
}

#[test]
fn cli_destination_ports() {
    let d = |line: &str| dest(op(line));
    // Missing port: copy of the service port.
    assert_eq!(d("-a -t 1.2.3.4:80 -r 10.0.0.2 -m").port, 80);
    // NAT keeps a given port.
    assert_eq!(d("-a -t 1.2.3.4:80 -r 10.0.0.2:8080 -m").port, 8080);
    // DR (explicit or default) and TUN force the service port.
    assert_eq!(d("-a -t 1.2.3.4:80 -r 10.0.0.2:8080 -g").port, 80);
    assert_eq!(d("-a -t 1.2.3.4:80 -r 10.0.0.2:8080").port, 80);
    assert_eq!(d("-a -t 1.2.3.4:80 -r 10.0.0.2:8080 -i").port, 80);
    assert_eq!(d("-e -t 1.2.3.4:80 -r 10.0.0.2:8080").port, 80);
    // Not for fwmark services.
    assert_eq!(d("-a -f 1 -r 10.0.0.2:8080 -g").port, 8080);
    assert_eq!(d("-a -f 1 -r 10.0.0.2").port, 0);
    // -r before the service copies the port known so far (none).
    assert_eq!(d("-a -r 10.0.0.2 -m -t 1.2.3.4:80").port, 0);
    // -d: no forcing.
    assert_eq!(
        op("-d -t 1.2.3.4:80 -r 10.0.0.2:8080"),
        Op::DeleteDest {
            service: tcp("1.2.3.4", 80),
            addr: v4("10.0.0.2"),
            port: 8080
        }
    );
    assert_eq!(
        op("-d -t 1.2.3.4:80 -r 10.0.0.2"),
        Op::DeleteDest {
            service: tcp("1.2.3.4", 80),
            addr: v4("10.0.0.2"),
            port: 80
        }
    );
    // Mixed families only for tunnelling.
    let t = d("-a -t 1.2.3.4:80 -r 2001:db8::2 -i");
    assert_eq!(
        (t.addr, t.port, t.fwd),
        (v6("2001:db8::2"), 80, Fwd::Tunnel)
    );
    assert_eq!(
        failure("-a -t [2001:db8::1]:80 -r 10.0.0.2 -m"),
        "Different address family is allowed only for tunneling servers"
    );
    assert_eq!(
        failure("-a -f 1 -6 -r 10.0.0.2"),
        "Different address family is allowed only for tunneling servers"
    );
}

#[test]
fn cli_edit_defaults_replace_everything() {
    assert_eq!(
        op("-e -t 1.2.3.4:80 -r 10.0.0.2"),
        Op::EditDest {
            service: tcp("1.2.3.4", 80),
            dest: DestSpec {
                addr: v4("10.0.0.2"),
                port: 80,
                fwd: Fwd::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                tunnel: TunnelSpec::default(),
            }
        }
    );
    assert_eq!(
        op("-E -t 1.2.3.4:80"),
        Op::EditService(ServiceSpec {
            id: tcp("1.2.3.4", 80),
            scheduler: "wlc".into(),
            flags: 0,
            timeout: 0,
            netmask: 0xffff_ffff,
            pe: None,
        })
    );
    let d = dest(op("-a -t 1.2.3.4:80 -r 10.0.0.2 -m -w 0 -x 100 -y 10"));
    assert_eq!(
        (d.fwd, d.weight, d.u_threshold, d.l_threshold),
        (Fwd::Masq, 0, 100, 10)
    );
}

#[test]
fn cli_service_options() {
    let s = service(op("-A -t 1.2.3.4:80 -s rr -p 60 -M 255.255.255.0 --pe sip"));
    assert_eq!(
        s,
        ServiceSpec {
            id: tcp("1.2.3.4", 80),
            scheduler: "rr".into(),
            flags: SVC_F_PERSISTENT,
            timeout: 60,
            netmask: 0xffff_ff00,
            pe: Some("sip".into()),
        }
    );
    // Scheduler names are copied into a 16-byte buffer.
    assert_eq!(
        service(op("-A -t 1.2.3.4:80 -s 0123456789abcdefgh")).scheduler,
        "0123456789abcde"
    );
    // An empty scheduler is the default one.
    match parse_v(&["-A", "-t", "1.2.3.4:80", "-s", ""]) {
        Ok(Command::Apply(o)) => assert_eq!(service(o).scheduler, "wlc"),
        other => panic!("{other:?}"),
    }
    // Zero port is fine when persistent, and for fwmark services.
    assert_eq!(service(op("-A -t 10.0.0.1:0 -p 3600")).timeout, 3600);
    assert_eq!(
        failure("-A -t 10.0.0.1"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        service(op("-A -f 1")).id,
        ServiceId::Fwmark { v6: false, mark: 1 }
    );
    // One-packet scheduling: UDP and fwmark services.
    assert_eq!(service(op("-A -u 1.2.3.4:53 -o")).flags, SVC_F_ONEPACKET);
    assert_eq!(service(op("-A -f 9 -o")).flags, SVC_F_ONEPACKET);
    assert_eq!(
        failure("-E --sctp-service 1.2.3.4:53 -o"),
        "One-Packet Scheduling is only for UDP virtual services"
    );
    assert_eq!(
        service(op("-A -f 4294967295")).id,
        ServiceId::Fwmark {
            v6: false,
            mark: u32::MAX
        }
    );
    // `--sort` takes no slot and is accepted anywhere.
    assert_eq!(
        service(op("-A -t 1.2.3.4:80 --sort --sort")).scheduler,
        "wlc"
    );
}

#[test]
fn cli_ipv6_flag_only_after_fwmark() {
    let s = service(op("-A -f 1 -6 -s rr"));
    assert_eq!(s.id, ServiceId::Fwmark { v6: true, mark: 1 });
    assert_eq!(s.netmask, 128);
    assert_eq!(failure("-A -6 -f 1"), "-6 used before -f\n");
    assert_eq!(failure("-A -t 1.2.3.4:80 -6"), "-6 used before -f\n");
    assert_eq!(failure("-L -6"), "-6 used before -f\n");
    // No option slot: repeating it is fine.
    assert_eq!(service(op("-A -f 1 -6 -6")).netmask, 128);
    assert_eq!(
        op("-D -f 1 --ipv6"),
        Op::DeleteService(ServiceId::Fwmark { v6: true, mark: 1 })
    );
}

#[test]
fn cli_netmask_by_family_known_so_far() {
    let m = |line: &str| service(op(line)).netmask;
    assert_eq!(m("-A -t 1.2.3.4:80 -p -M 255.255.255.0"), 0xffff_ff00);
    assert_eq!(m("-A -M 255.255.0.0 -t 1.2.3.4:80 -p"), 0xffff_0000);
    assert_eq!(m("-A -t 1.2.3.4:80"), 0xffff_ffff);
    assert_eq!(m("-A -t [2001:db8::1]:80 -p -M 64"), 64);
    assert_eq!(m("-A -t [2001:db8::1]:80"), 128);
    // Before the IPv6 address, -M is read as IPv4 and then overridden.
    assert_eq!(m("-A -M 64 -t [2001:db8::1]:80 -p"), 128);
    assert_eq!(m("-A -f 1 -6 -M 48 -p"), 48);
    assert_eq!(m("-A -f 1 -M 255.255.255.0 -6 -p"), 128);
    assert_eq!(m("-A -f 1 -M 255.255.255.0 -p"), 0xffff_ff00);
    // IPv6 masks go through atoi.
    assert_eq!(m("-A -t [2001:db8::1]:80 -p -M 64bits"), 64);
    assert_eq!(
        failure("-A -t [2001:db8::1]:80 -M 255.255.255.0"),
        "illegal ipv6 netmask specified"
    );
    assert_eq!(
        failure("-A -t [2001:db8::1]:80 -M 0"),
        "illegal ipv6 netmask specified"
    );
    assert_eq!(
        failure("-A -t [2001:db8::1]:80 -M -1"),
        "illegal ipv6 netmask specified"
    );
}

#[test]
fn cli_sched_flags() {
    let f = |line: &str| service(op(line)).flags;
    assert_eq!(
        f("-A -t 1.2.3.4:80 -s sh -b sh-fallback,sh-port"),
        SVC_F_SCHED1 | SVC_F_SCHED2
    );
    // -b is checked against the final -s, wherever it is.
    assert_eq!(f("-A -t 1.2.3.4:80 -b sh-port -s sh"), SVC_F_SCHED2);
    assert_eq!(
        f("-A -t 1.2.3.4:80 -s mh -b mh-fallback,mh-port"),
        SVC_F_SCHED1 | SVC_F_SCHED2
    );
    assert_eq!(
        f("-A -t 1.2.3.4:80 -b flag-1,,flag-3"),
        SVC_F_SCHED1 | SVC_F_SCHED3
    );
    assert_eq!(
        f("-A -t 1.2.3.4:80 -p -b flag-2"),
        SVC_F_PERSISTENT | SVC_F_SCHED2
    );
    assert_eq!(
        failure("-A -t 1.2.3.4:80 -b sh-fallback"),
        "incompatible scheduler flag `sh-fallback'"
    );
    assert_eq!(
        failure("-A -t 1.2.3.4:80 -s sh -b sh-port,mh-port"),
        "incompatible scheduler flag `mh-port'"
    );
    assert_eq!(
        failure("-A -t 1.2.3.4:80 -s sh -b sh-port,bogus"),
        "invalid scheduler flag `bogus'"
    );
    assert_eq!(
        failure("-A -t 1.2.3.4:80 -b ,,"),
        "invalid scheduler flag `,,'"
    );
    // Flags are parsed before the legality check.
    assert_eq!(failure("-L -b bogus"), "invalid scheduler flag `bogus'");
    assert_eq!(
        failure("-L -b flag-1"),
        "Illegal 'sched-flags' option with the 'list' command"
    );
}

#[test]
fn cli_tunnel_options() {
    let tun = |line: &str| dest(op(line)).tunnel;
    let base = "-a -t 1.2.3.4:80 -r 10.0.0.2 -i";
    assert_eq!(tun(base), TunnelSpec::default());
    assert_eq!(
        tun(&format!("{base} --tun-type ipip")),
        TunnelSpec::default()
    );
    let gue = |port, flags| TunnelSpec {
        kind: TunKind::Gue,
        port,
        flags,
    };
    assert_eq!(
        tun(&format!("{base} --tun-type gue --tun-port 6080")),
        gue(6080, 0)
    );
    assert_eq!(
        tun(&format!(
            "{base} --tun-type gue --tun-port 6080 --tun-nocsum"
        )),
        gue(6080, 0)
    );
    assert_eq!(
        tun(&format!("{base} --tun-type gue --tun-port 6080 --tun-csum")),
        gue(6080, TUN_F_CSUM)
    );
    assert_eq!(
        tun(&format!(
            "{base} --tun-port=6080 --tun-remcsum --tun-type=gue"
        )),
        gue(6080, TUN_F_REMCSUM)
    );
    assert_eq!(
        tun(&format!("{base} --tun-type gre --tun-csum")),
        TunnelSpec {
            kind: TunKind::Gre,
            port: 0,
            flags: TUN_F_CSUM
        }
    );
    let cases: &[(&str, &str)] = &[
        (
            "--tun-type gre --tun-remcsum",
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        ),
        (
            "--tun-type gre --tun-port 1",
            "Illegal 'tun-port' option with the 'gre' tunnel type",
        ),
        (
            "--tun-type gre --tun-nocsum --tun-csum",
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type",
        ),
        (
            "--tun-type gue --tun-port 1 --tun-nocsum --tun-remcsum",
            "The option 'tun-remcsum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
        ),
        (
            "--tun-type gue --tun-csum",
            "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        ),
        (
            "--tun-csum",
            "Illegal 'tun-csum' option with the 'ipip' tunnel type",
        ),
        (
            "--tun-nocsum",
            "Illegal 'tun-nocsum' option with the 'ipip' tunnel type",
        ),
        (
            "--tun-type gue --tun-type gre",
            "multiple 'tun-type' options specified",
        ),
    ];
    for &(opts, want) in cases {
        assert_eq!(failure(&format!("{base} {opts}")), want, "{opts}");
    }
    assert_eq!(
        failure("-a -t 1.2.3.4:80 -r 10.0.0.2 --tun-type gue --tun-port 1"),
        "Tunnel options conflict with forward method"
    );
    assert_eq!(
        failure("-e -t 1.2.3.4:80 -r 10.0.0.2 -m --tun-csum"),
        "Tunnel options conflict with forward method"
    );
}

#[test]
fn cli_set_timeouts() {
    assert_eq!(
        op("--set 900 120 300"),
        Op::SetTimeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }
    );
    assert_eq!(
        op("--set 0 0 2678400"),
        Op::SetTimeouts {
            tcp: 0,
            tcpfin: 0,
            udp: 2678400
        }
    );
    // The values may sit anywhere among the options (popt leftovers).
    assert_eq!(
        op("1 --set 2 3"),
        Op::SetTimeouts {
            tcp: 1,
            tcpfin: 2,
            udp: 3
        }
    );
    assert_eq!(
        failure("--set 900 120"),
        "--set option requires 3 timeout values"
    );
    assert_eq!(failure("--set"), "--set option requires 3 timeout values");
    assert_eq!(failure("--set 1 2 3 4"), "unexpected argument 4");
    assert_eq!(
        failure("--set 1 x 3"),
        "invalid timeout value `x' specified"
    );
    assert_eq!(
        failure("--set 1 2 2678401"),
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(
        failure("--set 1 2 +x"),
        "invalid timeout value `+x' specified"
    );
    // A negative value looks like an option to popt.
    assert_eq!(
        refused("--set 1 2 -3"),
        ("-3: unknown option\n".into(), 255)
    );
}

#[test]
fn cli_daemons() {
    assert_eq!(
        op("--start-daemon master"),
        Op::StartDaemon(DaemonSpec {
            role: DaemonRole::Master,
            mcast_ifn: "eth0".into(),
            syncid: 0,
            maxlen: 0,
            group: None,
            port: 0,
            ttl: 0,
        })
    );
    assert_eq!(
        op(
            "--start-daemon=backup --mcast-interface eth1 --syncid 5 --mcast-group 239.1.1.1 \
            --mcast-port 9000 --mcast-ttl 2 --sync-maxlen 1400"
        ),
        Op::StartDaemon(DaemonSpec {
            role: DaemonRole::Backup,
            mcast_ifn: "eth1".into(),
            syncid: 5,
            maxlen: 1400,
            group: Some(v4("239.1.1.1")),
            port: 9000,
            ttl: 2,
        })
    );
    match op(
        "--start-daemon master --mcast-group ff02::1:2 --mcast-interface averyveryverylongname",
    ) {
        Op::StartDaemon(d) => {
            assert_eq!(d.group, Some(v6("ff02::1:2")));
            assert_eq!(d.mcast_ifn, "averyveryverylo");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        op("--stop-daemon backup"),
        Op::StopDaemon(DaemonRole::Backup)
    );
    assert_eq!(
        op("--stop-daemon master --syncid 3"),
        Op::StopDaemon(DaemonRole::Master)
    );
    assert_eq!(
        failure("--start-daemon master --syncid 1 --syncid 2"),
        "multiple 'syncid' options specified"
    );
}

#[test]
fn cli_zero_flush_save_restore() {
    assert_eq!(op("-Z"), Op::Zero(None));
    assert_eq!(op("-Z -t 1.2.3.4:80"), Op::Zero(Some(tcp("1.2.3.4", 80))));
    assert_eq!(
        op("-Z -f 3"),
        Op::Zero(Some(ServiceId::Fwmark { v6: false, mark: 3 }))
    );
    // libipvs leaves out an all-zero service: everything is zeroed.
    assert_eq!(op("-Z -t 0.0.0.0:0"), Op::Zero(None));
    assert_eq!(op("-C"), Op::Flush);
    assert_eq!(op("--clear"), Op::Flush);
    assert_eq!(parse("-S"), Ok(Command::Save { numeric: false }));
    assert_eq!(parse("-S -n"), Ok(Command::Save { numeric: true }));
    assert_eq!(parse("-Sn"), Ok(Command::Save { numeric: true }));
    assert_eq!(parse("-R"), Ok(Command::Restore));
    assert_eq!(failure("-R now"), "unexpected argument now");
}

/// The seed's commands (with its en dashes fixed).
#[test]
fn cli_seed_commands() {
    assert_eq!(
        op("-A -t 172.16.1.253:10 -s wlc"),
        Op::AddService(ServiceSpec {
            id: tcp("172.16.1.253", 10),
            scheduler: "wlc".into(),
            flags: 0,
            timeout: 0,
            netmask: 0xffff_ffff,
            pe: None,
        })
    );
    assert_eq!(service(op("-E -t 172.16.1.253:10 -s wrr")).scheduler, "wrr");
    assert_eq!(
        op("-a -t 172.16.1.253:10 -r 172.16.1.101 -g -w 5"),
        Op::AddDest {
            service: tcp("172.16.1.253", 10),
            dest: DestSpec {
                addr: v4("172.16.1.101"),
                port: 10,
                fwd: Fwd::Route,
                weight: 5,
                u_threshold: 0,
                l_threshold: 0,
                tunnel: TunnelSpec::default(),
            }
        }
    );
    let s = service(op("-A -t 10.0.0.1:0 -p 3600"));
    assert_eq!(
        (s.flags, s.timeout, s.scheduler.as_str()),
        (SVC_F_PERSISTENT, 3600, "wlc")
    );
    let s = service(op("-A -f 1 -s rr -p"));
    assert_eq!(
        s,
        ServiceSpec {
            id: ServiceId::Fwmark { v6: false, mark: 1 },
            scheduler: "rr".into(),
            flags: SVC_F_PERSISTENT,
            timeout: 360,
            netmask: 0xffff_ffff,
            pe: None,
        }
    );
    assert_eq!(
        op("-a -f 1 -r 192.168.1.11 -g"),
        Op::AddDest {
            service: ServiceId::Fwmark { v6: false, mark: 1 },
            dest: DestSpec {
                addr: v4("192.168.1.11"),
                port: 0,
                fwd: Fwd::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                tunnel: TunnelSpec::default(),
            }
        }
    );
    assert_eq!(
        list("-L -n --stats"),
        ListOpts {
            numeric: true,
            stats: true,
            ..ListOpts::default()
        }
    );
    assert_eq!(
        op("--set 900 120 300"),
        Op::SetTimeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }
    );
    assert_eq!(parse("-S -n"), Ok(Command::Save { numeric: true }));
    assert_eq!(op("-Z"), Op::Zero(None));
    assert_eq!(op("-C"), Op::Flush);
    // The seed's `-r 122.161.23` is inet_aton shorthand.
    assert_eq!(
        dest(op("-a -t 122.161.1.100:10 -r 122.161.23 -g -w 1")).addr,
        v4("122.161.0.23")
    );
    // The seed's en dash is a stray word.
    assert_eq!(
        failure("-a -t 172.16.1.253:10 -r 172.16.1.101 \u{2013}g -w 5"),
        "unexpected argument \u{2013}g"
    );
}
