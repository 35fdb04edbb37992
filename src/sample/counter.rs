//! The IB PortCounters that ibsight understands, with their widths from the IBA spec.
//!
//! Basic PortCounters saturate: they stop at their all-ones value until cleared. The data and
//! wait counters also exist as 64-bit PortCountersExtended; a reading above the basic width
//! tells us the collector reads an extended (64-bit) counter, for any counter.

use serde::{Deserialize, Serialize};

macro_rules! counters {
    ($($c:ident),+ $(,)?) => {
        /// Every counter of PortCounters, PortCountersExtended and the common detail attributes
        /// (PortRcvErrorDetails, PortXmitDiscardDetails), by its IBA name. New counters are only
        /// ever appended: the log stores a counter by its position.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Counter { $($c),+ }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$c),+];

            /// The IBA (and perfquery) name.
            pub fn name(self) -> &'static str {
                match self { $(Counter::$c => stringify!($c)),+ }
            }
        }
    };
}

counters!(
    SymbolErrorCounter,
    LinkErrorRecoveryCounter,
    LinkDownedCounter,
    PortRcvErrors,
    PortRcvRemotePhysicalErrors,
    PortXmitDiscards,
    PortXmitWait,
    ExcessiveBufferOverrunErrors,
    LocalLinkIntegrityErrors,
    VL15Dropped,
    PortXmitData,
    PortRcvData,
    // Appended with the fabric sources.
    PortRcvSwitchRelayErrors,
    PortXmitConstraintErrors,
    PortRcvConstraintErrors,
    QP1Dropped,
    PortXmitPkts,
    PortRcvPkts,
    PortUnicastXmitPkts,
    PortUnicastRcvPkts,
    PortMulticastXmitPkts,
    PortMulticastRcvPkts,
    PortLocalPhysicalErrors,
    PortMalformedPacketErrors,
    PortBufferOverrunErrors,
    PortDLIDMappingErrors,
    PortVLMappingErrors,
    PortLoopingErrors,
    PortInactiveDiscards,
    PortNeighborMTUDiscards,
    PortSwLifetimeLimitDiscards,
    PortSwHOQLifetimeLimitDiscards,
    // Appended with the host agent: the RDMA transport's error counters a host's HCA keeps
    // (sysfs `hw_counters`, by the kernel's names), which carry the QP-error signal.
    OutOfSequence,
    PacketSeqErr,
    DuplicateRequest,
    ImpliedNakSeqErr,
    LocalAckTimeoutErr,
    RnrNakRetryErr,
    ReqCqeError,
    RespCqeError,
    ReqRemoteAccessErrors,
    ReqRemoteInvalidRequest,
    RespLocalLengthError,
    RespRemoteAccessErrors,
);

impl Counter {
    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// Width in bits of the counter's basic field (IBA vol. 1: PortCounters, the detail
    /// attributes; the counters only PortCountersExtended has are 64 bits).
    pub fn basic_width_bits(self) -> u32 {
        use Counter::*;
        match self {
            SymbolErrorCounter
            | PortRcvErrors
            | PortRcvRemotePhysicalErrors
            | PortXmitDiscards
            | VL15Dropped
            | PortRcvSwitchRelayErrors
            | QP1Dropped
            | PortLocalPhysicalErrors
            | PortMalformedPacketErrors
            | PortBufferOverrunErrors
            | PortDLIDMappingErrors
            | PortVLMappingErrors
            | PortLoopingErrors
            | PortInactiveDiscards
            | PortNeighborMTUDiscards
            | PortSwLifetimeLimitDiscards
            | PortSwHOQLifetimeLimitDiscards => 16,
            LinkErrorRecoveryCounter
            | LinkDownedCounter
            | PortXmitConstraintErrors
            | PortRcvConstraintErrors => 8,
            ExcessiveBufferOverrunErrors | LocalLinkIntegrityErrors => 4,
            PortXmitWait | PortXmitData | PortRcvData | PortXmitPkts | PortRcvPkts => 32,
            PortUnicastXmitPkts
            | PortUnicastRcvPkts
            | PortMulticastXmitPkts
            | PortMulticastRcvPkts => 64,
            // The kernel reports them as 64-bit values: a drop is a reset, never a saturation.
            OutOfSequence
            | PacketSeqErr
            | DuplicateRequest
            | ImpliedNakSeqErr
            | LocalAckTimeoutErr
            | RnrNakRetryErr
            | ReqCqeError
            | RespCqeError
            | ReqRemoteAccessErrors
            | ReqRemoteInvalidRequest
            | RespLocalLengthError
            | RespRemoteAccessErrors => 64,
        }
    }

    /// The transport (QP) error counters: their increments since the previous sample are the
    /// sample's `qp_errors` when the client sent none.
    pub const QP_ERRORS: [Counter; 12] = [
        Counter::OutOfSequence,
        Counter::PacketSeqErr,
        Counter::DuplicateRequest,
        Counter::ImpliedNakSeqErr,
        Counter::LocalAckTimeoutErr,
        Counter::RnrNakRetryErr,
        Counter::ReqCqeError,
        Counter::RespCqeError,
        Counter::ReqRemoteAccessErrors,
        Counter::ReqRemoteInvalidRequest,
        Counter::RespLocalLengthError,
        Counter::RespRemoteAccessErrors,
    ];

    /// Whether PortCountersExtended defines a 64-bit form (the data, packet and wait
    /// counters), so a collector reading it sees values far past the basic width.
    pub fn has_extended(self) -> bool {
        use Counter::*;
        matches!(
            self,
            PortXmitWait
                | PortXmitData
                | PortRcvData
                | PortXmitPkts
                | PortRcvPkts
                | PortUnicastXmitPkts
                | PortUnicastRcvPkts
                | PortMulticastXmitPkts
                | PortMulticastRcvPkts
        )
    }

    /// The largest value a reading may take. Any counter may come from a 64-bit source (the
    /// extended counters, and tools such as ibdiagnet that report every counter in 64 bits), so
    /// a value past the basic width is taken as the extended counter, never refused.
    pub fn max_value(self) -> u64 {
        u64::MAX
    }
}

/// The all-ones value of a counter `bits` wide.
pub fn max_for_width(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}
