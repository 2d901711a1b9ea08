//! Unit tests of the output formatting and the small parsers.

use super::generator::Flows;
use super::packet::{note, saturated, search};
use super::topo::{parse_mac, parse_proc_stat};
use super::*;
use crate::trafficgen::{FRAME_LEN, frame};
use rvs_wire::checksum;

fn rows() -> Vec<Row> {
    vec![
        Row::new("packet", "kernel-forward")
            .with("mpps", Some(0.5))
            .with("ns_per_pkt", Some(1700.0)),
        Row::new("packet", "rvs-xdp dr")
            .with("mpps", Some(0.75))
            .with("ns_per_pkt", None)
            .note("DUT CPU saturated"),
        Row::new("conntable", "rvs dr 1M").with("bytes_per_entry", Some(122.7)),
    ]
}

#[test]
fn family_names_round_trip() {
    for f in Family::ALL {
        assert_eq!(Family::parse(f.name()), Ok(f));
    }
    let e = Family::parse("udp").unwrap_err();
    assert!(e.contains("unknown bench 'udp'"), "{e}");
}

#[test]
fn fmt_value_significant_digits() {
    assert_eq!(fmt_value(None), "-");
    assert_eq!(fmt_value(Some(f64::NAN)), "-");
    assert_eq!(fmt_value(Some(0.0)), "0");
    assert_eq!(fmt_value(Some(0.5234)), "0.523");
    assert_eq!(fmt_value(Some(12.345)), "12.35");
    assert_eq!(fmt_value(Some(123.45)), "123.5");
    assert_eq!(fmt_value(Some(12345.6)), "12346");
}

#[test]
fn table_has_header_every_row_and_notes() {
    let t = table("packet", &rows());
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(lines[0].starts_with("packet"));
    assert!(lines[0].contains("mpps") && lines[0].contains("ns_per_pkt"));
    assert!(lines[1].starts_with("kernel-forward") && lines[1].contains("1700"));
    assert!(lines[2].contains("0.750") && lines[2].contains(" - "));
    assert!(lines[2].ends_with("DUT CPU saturated"));
    // Other families' rows stay out.
    assert!(!t.contains("rvs dr 1M"));
}

#[test]
fn tags_go_to_the_header_when_shared_and_to_the_notes_when_not() {
    let shared: Vec<Row> = rows()
        .into_iter()
        .map(|r| r.tag("generator", "af-packet"))
        .collect();
    let t = table("packet", &shared);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].ends_with("generator: af-packet"), "{t}");
    assert!(!lines[1].contains("af-packet"), "{t}");
    let mut mixed = rows();
    mixed[0] = mixed[0].clone().tag("generator", "xdp-live-frames");
    mixed[1] = mixed[1].clone().tag("generator", "af-packet");
    let t = table("packet", &mixed);
    let lines: Vec<&str> = t.lines().collect();
    assert!(!lines[0].contains("generator"), "{t}");
    assert!(lines[1].ends_with("generator: xdp-live-frames"), "{t}");
    assert!(
        lines[2].ends_with("generator: af-packet; DUT CPU saturated"),
        "{t}"
    );
    let j = json_line(true, &shared, &[]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["rows"][0]["generator"], "af-packet");
}

#[test]
fn partial_checksum_rows_get_ratios_to_full_ones() {
    let mut r = vec![
        Row::new("packet", "rvs-xdp-fast dr")
            .with("mpps", Some(2.0))
            .with("ns_per_pkt", Some(200.0)),
        Row::new("packet", "rvs-xdp-fast dr partial-csum")
            .with("mpps", Some(1.5))
            .with("ns_per_pkt", Some(250.0)),
    ];
    add_ratios(&mut r);
    assert_eq!(r[1].get("x_full_csum"), Some(0.75));
    assert_eq!(r[1].get("cost_x_full_csum"), Some(1.25));
    assert_eq!(r[0].get("x_full_csum"), None);
}

#[test]
fn table_of_nothing_is_a_header() {
    assert_eq!(table("http", &[]), "http\n");
}

#[test]
fn goals_ratios_and_states() {
    let g = goals(&rows());
    let pkt = &g[0];
    assert!(pkt.name.contains("rvs-xdp dr / kernel"), "{}", pkt.name);
    assert_eq!(pkt.value, Some(1.5));
    assert_eq!(pkt.met(), Some(true));
    assert_eq!(g[1].met(), Some(true)); // 1.5x stretch, exactly
    let mem = g.iter().find(|g| g.name.contains("bytes")).unwrap();
    assert_eq!(mem.met(), Some(true));
    // No http rows: no http goals.
    assert!(!g.iter().any(|g| g.name.starts_with("http")));
    let text = goals_text(&g);
    assert!(text.contains("met"));
}

#[test]
fn slow_path_goals_and_a_kernel_row_the_generator_limited() {
    let mut r = rows();
    r[0] = r[0].clone().with("mpps_per_cpu", Some(0.6));
    r[1] = r[1].clone().with("mpps_per_cpu", Some(0.3));
    let g = goals(&r);
    let slow = g
        .iter()
        .find(|g| g.name.starts_with("slow path: rvs-xdp dr"))
        .unwrap();
    assert_eq!(slow.value, Some(1.5));
    let per_cpu = g
        .iter()
        .find(|g| g.name.starts_with("slow path: same, per CPU"))
        .unwrap();
    assert_eq!(per_cpu.value, Some(0.5));
    assert_eq!(per_cpu.met(), Some(false));
    // The kernel forwarded all it was offered: its rate is the
    // generator's, so no rate goal is measured against it; per CPU is.
    r[0] = r[0].clone().note("generator-limited: the DUT kept up");
    let g = goals(&r);
    for name in ["packet: rvs-xdp dr / kernel", "slow path: rvs-xdp dr"] {
        let goal = g.iter().find(|g| g.name.starts_with(name)).unwrap();
        assert_eq!(goal.met(), None, "{name}");
    }
    let per_cpu = g
        .iter()
        .find(|g| g.name.starts_with("slow path: same, per CPU"))
        .unwrap();
    assert_eq!(per_cpu.value, Some(0.5));
}

#[test]
fn goal_not_measured_and_not_met() {
    let g = Goal {
        name: "x".into(),
        value: None,
        target: 1.0,
        at_most: false,
    };
    assert_eq!(g.met(), None);
    assert!(goals_text(&[g]).contains("not measured"));
    let g = Goal {
        name: "y".into(),
        value: Some(130.0),
        target: 128.0,
        at_most: true,
    };
    assert_eq!(g.met(), Some(false));
    assert!(goals_text(&[g]).contains("NOT met"));
    assert_eq!(goals_text(&[]), "  (none for these families)\n");
    assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    assert_eq!(ratio(None, Some(2.0)), None);
}

#[test]
fn json_line_is_one_line_with_every_row() {
    let r = rows();
    let j = json_line(true, &r, &goals(&r));
    assert!(!j.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["quick"], true);
    assert_eq!(v["rows"].as_array().unwrap().len(), 3);
    assert_eq!(v["rows"][1]["ns_per_pkt"], serde_json::Value::Null);
    assert_eq!(v["rows"][0]["mpps"], 0.5);
    assert_eq!(v["goals"][0]["met"], true);
}

#[test]
fn proc_stat_busy_excludes_idle_and_iowait() {
    let a = parse_proc_stat(
        "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 10 0 5 100 3 1 2 0 0 0\ncpu1 1 0 1 50 0 0 0 0 0 0\nintr 1\n",
    );
    assert_eq!(a.cpus, vec![(18, 121), (2, 52)]);
    assert_eq!(a.softirq, vec![2, 0]);
    let b = parse_proc_stat("cpu0 20 0 5 200 3 1 2 0 0 0\n");
    assert_eq!(b.busy_since(&a, 0), Some(0.1));
    assert_eq!(b.busy_since(&a, 1), None);
    let c = parse_proc_stat("cpu0 20 0 5 200 3 1 7 0 0 0\n");
    assert_eq!(c.softirq_since(&a, 0), Some(0.05));
    assert_eq!(parse_proc_stat("garbage\ncpuX 1 2\n").cpus, vec![]);
}

#[test]
fn cpu_time_of_threads_that_come_and_go_is_never_negative() {
    use std::collections::HashMap;
    let before = HashMap::from([(1, 100), (2, 500)]);
    // Thread 2 exited, thread 3 started.
    let after = HashMap::from([(1, 150), (3, 20)]);
    assert_eq!(super::topo::cpu_seconds_between(&before, &after), 0.7);
    assert!(!super::topo::cpu_ticks(&[std::process::id()]).is_empty());
}

#[test]
fn mac_parsing() {
    assert_eq!(parse_mac("02:00:0a:ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
    assert_eq!(parse_mac("02:00:0a:ff:00"), None);
    assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
    assert_eq!(parse_mac("zz:00:0a:ff:00:01"), None);
}

#[test]
fn generated_frames_are_valid_udp() {
    let f = Flows {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: [10, 9, 1, 1],
        dst_ip: [10, 9, 1, 100],
        dst_port: 9,
        sport_base: 10000,
        flows: 4,
        csum: crate::trafficgen::UdpCsum::Full,
    };
    let b = frame(&f, 3);
    assert_eq!(b.len(), FRAME_LEN);
    let p = etherparse::SlicedPacket::from_ethernet(&b).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().destination(), [10, 9, 1, 100]);
    assert_eq!(!checksum::data(&b[14..34]), 0, "header checksum verifies");
    let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
        panic!("not UDP")
    };
    assert_eq!(u.source_port(), 10003);
    assert_eq!(u.destination_port(), 9);
    assert_ne!(frame(&f, 0), frame(&f, 1));
}

#[test]
fn drop_rate_search_halves_towards_the_knee() {
    // A DUT that loses frames above 1.3 Mpps; the generator achieves what
    // it is asked.
    let mut asked = Vec::new();
    let r = search(2.0e6, 5, |rate| {
        asked.push(rate);
        Ok((rate, rate <= 1.3e6))
    })
    .unwrap();
    assert_eq!(asked[0], 2.0e6, "the flat-out rate first");
    assert_eq!(asked.len(), 6);
    assert!(r <= 1.3e6 && r > 1.3e6 - 2.0e6 / 32.0, "{r}");
    // Passing at the flat-out rate: no search.
    let mut n = 0;
    assert_eq!(
        search(1.0e6, 5, |rate| {
            n += 1;
            Ok((rate * 0.99, true))
        })
        .unwrap(),
        0.99e6
    );
    assert_eq!(n, 1);
    // Never passing, or nothing delivered: zero.
    assert_eq!(search(1.0e6, 3, |r| Ok((r, false))).unwrap(), 0.0);
    assert_eq!(search(0.0, 3, |_| panic!("no trial")).unwrap(), 0.0);
    // A failing trial stops the search.
    assert!(search(1.0e6, 3, |_| Err("gone".into())).is_err());
}

#[test]
fn dut_cpu_is_capped_by_the_cpu() {
    use super::packet::dut_cpu;
    assert_eq!(dut_cpu(0.5, 0.1, 0.9), 0.6);
    assert_eq!(dut_cpu(0.8, 0.5, 0.9), 0.9);
    // Never below the threads' own time.
    assert_eq!(dut_cpu(0.8, 0.5, 0.7), 0.8);
}

#[test]
fn saturation_verdicts() {
    assert_eq!(saturated(0.99, 0.99, 0.3), "DUT CPU saturated");
    assert_eq!(saturated(0.5, 0.5, 0.3), "DUT drops below CPU saturation");
    assert_eq!(saturated(0.88, 0.95, 0.3), "DUT CPU saturated");
    assert_eq!(saturated(0.82, 0.95, 0.3), "DUT drops below CPU saturation");
    assert_eq!(
        saturated(0.5, 0.95, 0.3),
        "rig-limited: CPU 1 (generator + sink) saturated, the DUT's is not"
    );
    assert_eq!(
        saturated(0.99, 0.5, 0.0),
        "generator-limited: the DUT kept up"
    );
    assert_eq!(note(0.99, 0.95, 0.5, 0.3), "DUT CPU saturated");
    assert_eq!(
        note(0.99, 0.4, 0.5, 0.3),
        "DUT CPU saturated; CPU 0 shared: DUT threads 40% of it"
    );
}

#[test]
fn conntable_names() {
    assert_eq!(conntable::count_name(1_000_000), "1M");
    assert_eq!(conntable::count_name(10_000_000), "10M");
    assert_eq!(conntable::count_name(200_000), "200k");
    assert_eq!(conntable::count_name(1234), "1234");
}

#[test]
fn control_rules_text() {
    let r = control::rules(2, 2);
    assert_eq!(r.lines().count(), 6);
    assert!(r.starts_with("-A -t 10.0.0.0:80 -s wrr\n"));
}

#[test]
fn stat_ticks_parsing() {
    use super::topo::parse_stat_ticks;
    let line = "123 (napi/dut in-1) S 2 0 0 0 -1 2129984 0 0 0 0 17 42 0 0 20 0 1 0 5 0 0";
    assert_eq!(parse_stat_ticks(line), Some(59));
    assert_eq!(parse_stat_ticks("123 (x) S 1"), None);
    assert_eq!(parse_stat_ticks("no parens"), None);
}

#[test]
fn http_output_parsing() {
    use super::http::{parse_ab, parse_duration_ms, parse_wrk, why_line};
    assert_eq!(parse_duration_ms("850.00us"), Some(0.85));
    assert_eq!(parse_duration_ms("1.50ms"), Some(1.5));
    assert_eq!(parse_duration_ms("1.01s"), Some(1010.0));
    assert_eq!(parse_duration_ms("fast"), None);
    let wrk = "Running 2s test @ http://10.8.1.100/\n  Latency Distribution\n     50%  850.00us\n     75%    1.00ms\n     90%    3.46ms\n     99%   11.52ms\n  70000 requests in 2.00s, 16.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:  35019.42\nTransfer/sec:      8.00MB\n";
    let l = parse_wrk(wrk);
    assert_eq!(l.rps, Some(35019.42));
    assert_eq!(l.p50_ms, Some(0.85));
    assert_eq!(l.p90_ms, Some(3.46));
    assert_eq!(l.p99_ms, Some(11.52));
    assert_eq!(l.errors, Some(3.0));
    let ab = "Complete requests:      11458\nFailed requests:        4\nRequests per second:    5729.00 [#/sec] (mean)\n  50%      9\n  66%     10\n  90%     12\n  99%     16\n 100%     40 (longest request)\n";
    let l = parse_ab(ab);
    assert_eq!(l.rps, Some(5729.0));
    assert_eq!(
        (l.p50_ms, l.p90_ms, l.p99_ms),
        (Some(9.0), Some(12.0), Some(16.0))
    );
    assert_eq!(l.errors, Some(4.0));
    assert_eq!(parse_ab("garbage"), Default::default());
    assert_eq!(
        why_line("[NOTICE] v\n[ALERT] (1) : Cannot raise FD limit\n[NOTICE] x\n"),
        "[ALERT] (1) : Cannot raise FD limit"
    );
    assert_eq!(why_line("a\nlast\n\n"), "last");
    assert_eq!(why_line(""), "no log");
}

#[test]
fn proxy_configs_name_listen_and_upstream() {
    use super::http::{haproxy_conf, nginx_server_conf, nginx_stream_conf};
    let h = haproxy_conf("10.0.0.1:81", "10.0.0.2:80");
    assert!(
        h.contains("mode tcp")
            && h.contains("bind 10.0.0.1:81")
            && h.contains("server s1 10.0.0.2:80")
    );
    let s = nginx_stream_conf("/d", "/m.so", "10.0.0.1:82", "10.0.0.2:80");
    assert!(
        s.starts_with("load_module /m.so;")
            && s.contains("listen 10.0.0.1:82")
            && s.contains("server 10.0.0.2:80;")
    );
    let n = nginx_server_conf("/d", 2);
    assert!(n.contains("worker_processes 2;") && n.contains("root /d/www;"));
}

#[test]
fn ratios_against_the_reference_rows() {
    let mut r = vec![
        Row::new("packet", "kernel-forward").with("mpps", Some(0.5)),
        Row::new("packet", "rvs-xdp dr").with("mpps", Some(0.75)),
        Row::new("packet", "rvs-packet dr").with("mpps", None),
        Row::new("http", "wrk direct").with("rps", Some(100.0)),
        Row::new("http", "ab direct").with("rps", Some(10.0)),
        Row::new("http", "wrk rvs-dr").with("rps", Some(90.0)),
        Row::new("http", "ab rvs-dr").with("rps", Some(20.0)),
        Row::new("conntable", "rvs dr 1M").with("ns_per_pkt", Some(1.0)),
    ];
    add_ratios(&mut r);
    assert_eq!(r[0].get("x_kernel"), Some(1.0));
    assert_eq!(r[1].get("x_kernel"), Some(1.5));
    assert_eq!(r[2].get("x_kernel"), None);
    assert_eq!(r[5].get("x_direct"), Some(0.9));
    assert_eq!(r[6].get("x_direct"), Some(2.0));
    assert_eq!(r[7].metrics.len(), 1);
}

#[test]
fn packet_goal_prefers_the_fast_path_row() {
    let mut r = rows();
    r.push(Row::new("packet", "rvs-xdp-fast dr").with("mpps", Some(1.0)));
    let g = goals(&r);
    assert!(g[0].name.contains("rvs-xdp-fast dr"), "{}", g[0].name);
    assert_eq!(g[0].value, Some(2.0));
    // An unavailable fast-path row: back to the slow path's.
    let mut r = rows();
    r.push(Row::new("packet", "rvs-xdp-fast dr").with("mpps", None));
    assert_eq!(goals(&r)[0].value, Some(1.5));
}
