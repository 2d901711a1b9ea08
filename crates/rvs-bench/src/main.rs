//! rvs-bench: `rvs bench [packet|syn|http|conntable|control]`. `rvs bench …`
//! execs this binary (installed next to `rvs`) with its arguments; it can be
//! run directly too. See [`rvs_bench::bench`].

use std::process::ExitCode;

use rvs_bench::bench;

const USAGE: &str = "\
Usage: rvs bench [packet|syn|http|conntable|control] [options]
       (rvs-bench [packet|syn|http|conntable|control] [options])

rvs against the kernel and the proxies, side by side in private rvsbench-*
namespaces (needs root); no name runs them all. Prints a table per family,
the goals, and one line of JSON with every figure
      --quick             short runs (under 2 minutes in all)
      --seconds N         seconds per measured point (default 2 quick, 5)
      --services N        control: virtual services (default 10000)
      --dests N           control: real servers per service (default 10)
      --repeat N          control: runs per step, the median (default 3)
      --svg FILE          also write the figures as a chart (SVG) to FILE
  -h, --help              this text
";

fn main() -> ExitCode {
    let mut parser = lexopt::Parser::from_env();
    let result = parse_bench(&mut parser).and_then(|o| match o {
        Some(o) => bench::run(&o),
        None => {
            print!("{USAGE}");
            Ok(())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("rvs: {msg}");
            ExitCode::from(2)
        }
    }
}

/// The options of `rvs bench`; `None` for `-h`/`--help`.
fn parse_bench(parser: &mut lexopt::Parser) -> Result<Option<bench::Opts>, String> {
    use lexopt::prelude::*;
    let mut o = bench::Opts {
        families: Vec::new(),
        quick: false,
        control: bench::ControlOpts {
            services: 10_000,
            dests: 10,
            repeat: 3,
        },
        seconds: None,
        svg: None,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Value(v) => {
                let f = bench::Family::parse(&v.string().map_err(|e| e.to_string())?)?;
                if !o.families.contains(&f) {
                    o.families.push(f);
                }
            }
            Short('h') | Long("help") => return Ok(None),
            Long("quick") => o.quick = true,
            Long("seconds") => o.seconds = Some(num_value(parser, "--seconds", 60)?),
            Long("services") => o.control.services = num_value(parser, "--services", 1 << 20)?,
            Long("dests") => o.control.dests = num_value(parser, "--dests", 1000)?,
            Long("repeat") => o.control.repeat = num_value(parser, "--repeat", 100)?,
            Long("svg") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                o.svg = Some(std::path::PathBuf::from(v));
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if o.families.is_empty() {
        o.families = bench::Family::ALL.to_vec();
    }
    Ok(Some(o))
}

/// The value of a numeric option, within 1..=`max`.
fn num_value(parser: &mut lexopt::Parser, what: &str, max: u32) -> Result<u32, String> {
    use lexopt::prelude::*;
    let s = parser
        .value()
        .map_err(|e| e.to_string())?
        .string()
        .map_err(|e| e.to_string())?;
    match s.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("invalid {what} '{s}': expected 1..={max}")),
    }
}
