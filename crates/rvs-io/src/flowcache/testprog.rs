//! `bpf/fastpath_test.c` run with `BPF_PROG_TEST_RUN`: the fast path alone,
//! attached nowhere, for rvs-io's tests (tests/netns_fastpath.rs). Compiled
//! only with the `test-programs` feature, which rvs-io's own dev-dependency
//! on itself turns on: no production binary carries it.

use std::time::Duration;

use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp};

use super::*;
use crate::xdp::{error_chain, verifier_msg};

/// The object of `bpf/fastpath_test.c`, built by build.rs.
static FASTPATH_TEST_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fastpath_test.o"));

/// The fast path alone, then `XDP_PASS` (fastpath_test.c).
const TEST_PROGRAM: &str = "rvs_fp_test";
/// `XDP_TX` and nothing else.
const BASELINE_PROGRAM: &str = "rvs_fp_baseline";
/// The fast path between a save and a restore of the frame's head.
const BENCH_PROGRAM: &str = "rvs_fp_bench";
/// The save and restore of [`BENCH_PROGRAM`] around a bare `XDP_TX`.
const BENCH_BASE_PROGRAM: &str = "rvs_fp_bench_base";
const PROGRAMS: [&str; 4] = [
    TEST_PROGRAM,
    BASELINE_PROGRAM,
    BENCH_PROGRAM,
    BENCH_BASE_PROGRAM,
];

/// Which program of fastpath_test.c to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestProgram {
    /// The fast path, then `XDP_PASS` for what it does not handle.
    FastPath,
    /// `return XDP_TX;`: the cost floor of an XDP program.
    Baseline,
    /// For `repeat` > 1: the fast path with the frame's first 64 bytes (and
    /// its start) put back after every run, so that each run sees the
    /// original packet (`BPF_PROG_TEST_RUN` does not reset the buffer
    /// between runs: NAT-out would run out of TTL, TUN tunnel again). The
    /// frame must be at least 64 bytes without Ethernet padding.
    Bench,
    /// [`TestProgram::Bench`]'s save and restore around a bare `XDP_TX`:
    /// its cost floor.
    BenchBaseline,
}

impl TestProgram {
    fn name(self) -> &'static str {
        match self {
            TestProgram::FastPath => TEST_PROGRAM,
            TestProgram::Baseline => BASELINE_PROGRAM,
            TestProgram::Bench => BENCH_PROGRAM,
            TestProgram::BenchBaseline => BENCH_BASE_PROGRAM,
        }
    }
}

/// What one `BPF_PROG_TEST_RUN` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The XDP action (`XDP_PASS` 2, `XDP_TX` 3, `XDP_REDIRECT` 4...).
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Mean duration of one run, as the kernel measured it.
    pub per_run: Duration,
}

/// fastpath_test.c loaded (attached nowhere), with its flow cache: runs the
/// fast path on frames through `BPF_PROG_TEST_RUN` (root).
pub struct FastPathTestProgram {
    ebpf: Ebpf,
    cache: FlowCache,
}

impl fmt::Debug for FastPathTestProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastPathTestProgram")
            .finish_non_exhaustive()
    }
}

impl FastPathTestProgram {
    /// Loads the programs of fastpath_test.c.
    ///
    /// # Errors
    ///
    /// The object not loading or the verifier rejecting a program (its log
    /// is in the message).
    pub fn load() -> Result<Self, FlowCacheError> {
        let mut ebpf =
            Ebpf::load(FASTPATH_TEST_OBJ).map_err(|e| FlowCacheError::Load(error_chain(&e)))?;
        for name in PROGRAMS {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| FlowCacheError::Load(format!("no program {name}")))?
                .try_into()
                .map_err(|e: ProgramError| FlowCacheError::Load(e.to_string()))?;
            prog.load()
                .map_err(|e| FlowCacheError::Load(format!("{name}: {}", verifier_msg(&e))))?;
        }
        let cache = FlowCache::from_ebpf(&mut ebpf)?;
        Ok(Self { ebpf, cache })
    }

    /// The flow cache of the test program.
    pub fn cache(&self) -> &FlowCache {
        &self.cache
    }

    /// The flow cache of the test program, to fill.
    pub fn cache_mut(&mut self) -> &mut FlowCache {
        &mut self.cache
    }

    /// Runs `program` on `frame` `repeat` times (at least once); the kernel
    /// runs it as if the frame came in on `lo` (ifindex 1), queue 0.
    ///
    /// # Errors
    ///
    /// The test run failing.
    pub fn run(
        &self,
        program: TestProgram,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestRunOutput, FlowCacheError> {
        let name = program.name();
        let prog: &Xdp = self
            .ebpf
            .program(name)
            .ok_or_else(|| FlowCacheError::Load(format!("no program {name}")))?
            .try_into()
            .map_err(|e: ProgramError| FlowCacheError::Load(e.to_string()))?;
        // Room for an outer IPv6 header.
        let mut out = vec![0u8; frame.len() + 64];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: repeat.max(1),
            ..TestRunOptions::default()
        };
        let r = prog
            .test_run(opts)
            .map_err(|e| FlowCacheError::TestRun(error_chain(&e)))?;
        out.truncate(r.data_size_out as usize);
        Ok(TestRunOutput {
            action: r.return_value,
            frame: out,
            per_run: r.duration,
        })
    }
}
