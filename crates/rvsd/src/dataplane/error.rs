//! The errors of opening and starting the data plane. Their texts are
//! what rvsd logs (after `--io MODE: `) when it cannot start.

use rvs_io::neigh::NeighError;
use rvs_io::nft::NftError;
use rvs_io::packet::PacketError;
use rvs_io::xdp::XdpError;
use rvs_io::xsk::XskError;

/// Why [`DataPlane::open`](super::DataPlane::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The neighbour resolver (netlink) did not start.
    #[error("cannot start the neighbour resolver: {0}")]
    Resolver(#[source] NeighError),
    /// A served interface the resolver does not know.
    #[error("{0}: interface not found by the resolver")]
    UnknownInterface(String),
    /// The RX queues of an interface could not be counted.
    #[error("{name}: cannot count RX queues: {source}")]
    Queues {
        /// Interface name.
        name: String,
        /// Why.
        #[source]
        source: XskError,
    },
    /// The XDP classifier could not be attached.
    #[error("cannot attach the XDP classifier: {0}")]
    Attach(#[source] XdpError),
    /// A setting of the classifier for one interface failed.
    #[error("{name}: {source}")]
    Classifier {
        /// Interface name.
        name: String,
        /// Why.
        #[source]
        source: XdpError,
    },
    /// An AF_XDP socket could not be opened.
    #[error("{name}: cannot open an AF_XDP socket on queue {queue}: {source}")]
    Xsk {
        /// Interface name.
        name: String,
        /// RX queue.
        queue: u32,
        /// Why.
        #[source]
        source: XskError,
    },
    /// An AF_XDP socket could not be entered in the classifier's map.
    #[error("{name} queue {queue}: {source}")]
    XskMap {
        /// Interface name.
        name: String,
        /// RX queue.
        queue: u32,
        /// Why.
        #[source]
        source: XdpError,
    },
    /// An AF_PACKET socket could not be opened or joined to its fanout group.
    #[error("{name}: {source}")]
    Packet {
        /// Interface name.
        name: String,
        /// Why.
        #[source]
        source: PacketError,
    },
    /// The nftables table could not be installed.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// `--io auto`: neither backend opened.
    #[error(
        "no packet I/O works: xdp: {xdp}; packet: {packet} \
         (use --io none for the control plane only)"
    )]
    NoBackend {
        /// Why XDP did not open.
        xdp: Box<OpenError>,
        /// Why AF_PACKET did not open.
        packet: Box<OpenError>,
    },
    /// `--io none` was asked to open.
    #[error("--io none has no data plane")]
    NoDataPlane,
    /// The rules loaded so far do not fit the classifier's maps.
    #[error("the rules loaded do not fit: {0}")]
    ClaimCheck(String),
}

/// Why [`DataPlane::spawn`](super::DataPlane::spawn) failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A worker's wake-up eventfd could not be created.
    #[error("cannot create an eventfd: {0}")]
    Eventfd(#[source] std::io::Error),
}
