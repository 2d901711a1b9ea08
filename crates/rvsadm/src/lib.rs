//! rvsadm: ipvsadm's command line and output, talking to rvsd.
//!
//! * [`cli`] parses ipvsadm's grammar into commands (pure);
//! * [`format`] renders listings byte for byte as ipvsadm does (pure);
//! * [`names`] does the host and service name look-ups ipvsadm does.

pub mod cli;
pub mod format;
pub mod names;
pub mod strerror;
