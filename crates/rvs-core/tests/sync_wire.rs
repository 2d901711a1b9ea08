//! The engine's connection flags are the ones the sync messages carry
//! (`rvs_wire::ipvs_sync::conn_flags`, both the kernel's `IP_VS_CONN_F_*`):
//! a connection's `flags` can be sent and received as they are. Its state
//! numbers are the kernel's too (checked in `conn::state`), so they go on
//! the wire unchanged.

use rvs_core::conn::flags;
use rvs_wire::ipvs_sync::conn_flags as wire;

#[test]
fn engine_flags_are_the_wire_flags() {
    for (core, wire) in [
        (flags::FWD_MASK, wire::FWD_MASK),
        (flags::MASQ, wire::MASQ),
        (flags::LOCALNODE, wire::LOCALNODE),
        (flags::TUNNEL, wire::TUNNEL),
        (flags::DROUTE, wire::DROUTE),
        (flags::BYPASS, wire::BYPASS),
        (flags::SYNC, wire::SYNC),
        (flags::HASHED, wire::HASHED),
        (flags::NOOUTPUT, wire::NOOUTPUT),
        (flags::INACTIVE, wire::INACTIVE),
        (flags::NO_CPORT, wire::NO_CPORT),
        (flags::TEMPLATE, wire::TEMPLATE),
        (flags::ONE_PACKET, wire::ONE_PACKET),
    ] {
        assert_eq!(core, wire);
    }
}
