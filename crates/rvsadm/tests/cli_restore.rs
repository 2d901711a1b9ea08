//! `-R` input: tokenising, `ipvsadm` token dropping, comments, line numbers
//! and all-or-nothing errors.

use std::net::{IpAddr, Ipv4Addr};

use rvs_proto::{BatchLine, Op, Proto, ServiceId};
use rvsadm::cli::{CliError, parse_restore};

fn tcp(a: [u8; 4], port: u16) -> ServiceId {
    ServiceId::Addr {
        proto: Proto::Tcp,
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    }
}

fn ops(input: &str) -> Vec<(usize, Op)> {
    parse_restore("ipvsadm", input)
        .unwrap_or_else(|(n, e)| panic!("line {n}: {e:?}"))
        .into_iter()
        .map(|BatchLine { line, op }| (line, op))
        .collect()
}

#[test]
fn cli_restore_save_output() {
    let input = "\
-A -t 1.2.3.4:80 -s wrr -p 360
-a -t 1.2.3.4:80 -r 10.0.0.2:80 -g -w 5
-a -t 1.2.3.4:80 -r 10.0.0.3:80 -m -w 1
-A -f 7 -6 -s rr
-a -f 7 -6 -r [2001:db8::2]:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
";
    let got = ops(input);
    assert_eq!(got.len(), 5);
    assert_eq!(
        got.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(matches!(&got[0].1, Op::AddService(s) if s.scheduler == "wrr" && s.timeout == 360));
    assert!(matches!(&got[4].1, Op::AddDest { dest, .. } if dest.tunnel.port == 6080));
}

#[test]
fn cli_restore_tokens_and_blank_lines() {
    let input = "ipvsadm -A -t 1.2.3.4:80 ipvsadm -s rr\r\n\
                 \n\
                 \t  \r\n\
                 ipvsadm\n\
                 \t-a\t-t 1.2.3.4:80   -r 10.0.0.2 -m\r\n\
                 # a comment -A -t junk\n\
                 \t# an indented comment\n\
                 -C";
    let got = ops(input);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, 1);
    assert!(
        matches!(&got[0].1, Op::AddService(s) if s.scheduler == "rr" && s.id == tcp([1, 2, 3, 4], 80))
    );
    assert_eq!(got[1].0, 5);
    assert!(matches!(&got[1].1, Op::AddDest { dest, .. } if dest.port == 80));
    assert_eq!(got[2], (8, Op::Flush));
    assert_eq!(ops(""), []);
    assert_eq!(ops("\n\n"), []);
}

#[test]
fn cli_restore_errors_name_the_first_bad_line() {
    let r = parse_restore(
        "ipvsadm",
        "-A -t 1.2.3.4:80\n\n-a -t 1.2.3.4:80 -r 10.0.0.2 -w 70000\n-A -t bad\n",
    );
    assert_eq!(
        r,
        Err((3, CliError::Fail("illegal weight specified".into())))
    );
    // A line without a command, -R again, popt errors.
    assert_eq!(
        parse_restore("ipvsadm", "-C\nfoo bar\n"),
        Err((2, CliError::TryHelp))
    );
    assert_eq!(
        parse_restore("ipvsadm", "-C\n-R\n"),
        Err((2, CliError::TryHelp))
    );
    // The recursion guard comes after the legality check, as in ipvsadm.
    assert_eq!(
        parse_restore("ipvsadm", "-R -n\n"),
        Err((
            1,
            CliError::Fail("Illegal 'numeric' option with the 'restore' command".into())
        ))
    );
    assert_eq!(
        parse_restore("ipvsadm", "-C --bogus\n"),
        Err((1, CliError::Popt("--bogus: unknown option".into())))
    );
    // Lines that do not change state.
    for line in ["-L -n", "-S", "-h", "-v", "-l"] {
        assert_eq!(
            parse_restore("ipvsadm", &format!("-C\n{line}\n")),
            Err((
                2,
                CliError::Fail("unexpected command in restore input".into())
            )),
            "{line}"
        );
    }
}
