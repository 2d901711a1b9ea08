//! `-h` and `-v`. The usage synopsis and the version line are interface
//! text (scripts parse the version line); the descriptions are rvs's own,
//! laid out as ipvsadm lays out its help.

/// The `-v` line, exactly as ipvsadm 1.31 prints it (without the newline).
pub fn version_line() -> &'static str {
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)"
}

/// The `-h` text (ends with a newline): the version line, the synopsis of
/// every command with `argv0` as the program name, then the commands,
/// service forms, options and daemon options.
pub fn help_text(argv0: &str) -> String {
    let p = argv0;
    let mut s = String::new();
    s.push_str(version_line());
    s.push('\n');
    s.push_str("Usage:\n");
    for synopsis in [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--start-daemon {master|backup} [daemon-options]",
        "--stop-daemon {master|backup}",
        "-h",
    ] {
        s.push_str(&format!("  {p} {synopsis}\n"));
    }
    s.push('\n');
    s.push_str(COMMANDS);
    s.push_str(SERVICES);
    s.push_str(OPTIONS);
    s.push_str(DAEMON_OPTIONS);
    s
}

const COMMANDS: &str = "\
Commands:
Every command has a long and a short form (except where none is shown).
  --add-service     -A        create a virtual service
  --edit-service    -E        replace the settings of a virtual service
  --delete-service  -D        remove a virtual service and its real servers
  --clear           -C        remove every virtual service
  --restore         -R        read rules, as --save writes them, from stdin
  --save            -S        write the rules to stdout in --restore form
  --add-server      -a        add a real server to a virtual service
  --edit-server     -e        replace the settings of a real server
  --delete-server   -d        remove a real server from a virtual service
  --list            -L|-l     show the virtual server table
  --zero            -Z        reset the counters of one service, or of all
  --set tcp tcpfin udp        change the three timeouts (seconds, 0 = keep)
  --start-daemon              start the connection synchronisation daemon
  --stop-daemon               stop the connection synchronisation daemon
  --help            -h        print this help
  --version         -v        print the version line

";

const SERVICES: &str = "\
virtual-service:
  --tcp-service|-t  service-address   TCP service at host[:port]
  --udp-service|-u  service-address   UDP service at host[:port]
  --sctp-service    service-address   SCTP service at host[:port]
  --fwmark-service|-f fwmark          service of packets with this mark (> 0)

";

const OPTIONS: &str = "\
Options:
  --ipv6         -6                   the fwmark service is an IPv6 one
  --scheduler    -s scheduler         rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      wlc when none is given.
  --pe            engine              persistence engine (sip),
                                      none when not given.
  --persistent   -p [timeout]         keep a client on one real server (360 s by default)
  --netmask      -M netmask           client mask (IPv6: prefix length) for persistence
  --real-server  -r server-address    real server at host[:port]
  --gatewaying   -g                   direct routing (the default)
  --ipip         -i                   IP-in-IP tunnelling
  --masquerading -m                   NAT
  --tun-type      type                ipip|gue|gre,
                                      ipip when none is given.
  --tun-port      port                destination port of the tunnel
  --tun-nocsum                        tunnel without checksums
  --tun-csum                          tunnel with checksums
  --tun-remcsum                       tunnel with remote checksum offload
  --weight       -w weight            relative capacity of the real server (0-65535)
  --u-threshold  -x uthreshold        no new connections above this many
  --l-threshold  -y lthreshold        new connections again below this many
  --connection   -c                   list the connection entries
  --timeout                           list the timeouts (tcp tcpfin udp)
  --daemon                            list the sync daemons
  --stats                             list with counters
  --rate                              list with rates
  --exact        -X                   print numbers in full
  --thresholds                        list with the thresholds
  --persistent-conn                   list with persistent connection counts
  --tun-info                          list with the tunnel settings
  --nosort                            list unsorted
  --sort                              no effect (kept for old scripts)
  --ops          -o                   one-packet scheduling
  --numeric      -n                   print addresses and ports as numbers
  --sched-flags  -b flags             scheduler flags, comma separated
";

const DAEMON_OPTIONS: &str = "\
Daemon Options:
  --syncid sid                        sync id of the daemon (default=0)
  --sync-maxlen length                largest sync message (default=1472)
  --mcast-interface interface         interface for sync traffic (default=eth0)
  --mcast-group address               IPv4/IPv6 multicast group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     multicast TTL (default=1)
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_layout() {
        let h = help_text("rvsadm");
        assert!(h.starts_with(
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  rvsadm -A|E "
        ));
        assert!(h.contains("\n  rvsadm -h\n\nCommands:\n"));
        assert!(h.contains("\n\nvirtual-service:\n"));
        assert!(h.contains("\n\nOptions:\n"));
        assert!(h.contains("\nDaemon Options:\n"));
        assert!(h.ends_with('\n'));
        // Every long option of the option table is documented.
        for o in super::super::popt::OPTIONS {
            assert!(h.contains(&format!("--{}", o.long)), "--{} missing", o.long);
        }
    }
}
