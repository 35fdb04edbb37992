//! What a port may and can do, read from the fabric cache `ibnetdiscover --cache` writes
//! (libibnetdisc's own format, documented in rdma-core's `ibnetdisc_cache.c`). Discovery
//! already read every port's PortInfo, so its enabled and supported widths and speeds cost no
//! MAD of their own.
//!
//! The cache is little endian: a 28-byte header (magic 0x8FE7832B, version 1, node count, port
//! count, the GUID discovery started from, max hops), the nodes (207 bytes each, then 9 bytes
//! per port key), then the ports (95 bytes each: port GUID, port number, external port number,
//! base LID, LMC, the 64-byte PortInfo as it came off the wire, the owning node's GUID, and the
//! remote port's key). PortInfo is big endian, as the IBA lays it out.

use crate::sample::port::{Speed, Width};
use std::collections::HashMap;

const MAGIC: u32 = 0x8FE7_832B;
const VERSION: u32 = 1;
const HEADER: usize = 28;
const SMP_DATA: usize = 64;
const NODE_HEADER: usize = 15 + 3 * SMP_DATA;
const PORT_KEY: usize = 9;
const PORT: usize = 31 + SMP_DATA;

/// A port's enabled and supported widths and speeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortCaps {
    pub width_enabled: Vec<Width>,
    pub width_supported: Vec<Width>,
    pub speed_enabled: Vec<Speed>,
    pub speed_supported: Vec<Speed>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("fabric cache: {0}")]
    Format(String),
}

fn bad(what: String) -> CacheError {
    CacheError::Format(what)
}

fn take<'a>(bytes: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8], CacheError> {
    bytes.get(at..at + len).ok_or_else(|| {
        bad(format!(
            "{what} at byte {at} runs past the end ({} bytes)",
            bytes.len()
        ))
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// LinkWidthEnabled/Supported bits: 1 = 1X, 2 = 4X, 4 = 8X, 8 = 12X, 16 = 2X.
fn widths(mask: u8) -> Vec<Width> {
    let mut out: Vec<Width> = [
        (1, Width::X1),
        (16, Width::X2),
        (2, Width::X4),
        (4, Width::X8),
        (8, Width::X12),
    ]
    .into_iter()
    .filter(|(bit, _)| mask & bit != 0)
    .map(|(_, w)| w)
    .collect();
    out.sort();
    out
}

/// LinkSpeed bits (1 = SDR, 2 = DDR, 4 = QDR) and, when the port has extended speeds,
/// LinkSpeedExt bits (1 = FDR, 2 = EDR, 4 = HDR, 8 = NDR).
fn speeds(base: u8, ext: u8) -> Vec<Speed> {
    let base = [(1, Speed::Sdr), (2, Speed::Ddr), (4, Speed::Qdr)]
        .into_iter()
        .filter(|(bit, _)| base & bit != 0);
    let ext = [
        (1, Speed::Fdr),
        (2, Speed::Edr),
        (4, Speed::Hdr),
        (8, Speed::Ndr),
    ]
    .into_iter()
    .filter(|(bit, _)| ext & bit != 0);
    base.chain(ext).map(|(_, s)| s).collect()
}

/// PortInfo.CapabilityMask bit 14: IsExtendedSpeedsSupported.
const EXTENDED_SPEEDS: u32 = 1 << 14;

/// The caps in one PortInfo (IBA 14.2.5.6: LinkWidthEnabled at byte 29, Supported at 30;
/// LinkSpeedSupported in the high nibble of byte 32, LinkSpeedEnabled in the low nibble of 35;
/// LinkSpeedExtSupported in the low nibble of 62, LinkSpeedExtEnabled in the low 5 bits of 63).
pub fn caps_of(info: &[u8]) -> PortCaps {
    let cap_mask = u32::from_be_bytes(info[20..24].try_into().expect("4 bytes"));
    let (ext_supported, ext_enabled) = if cap_mask & EXTENDED_SPEEDS != 0 {
        (info[62] & 0x0f, info[63] & 0x1f)
    } else {
        (0, 0)
    };
    PortCaps {
        width_enabled: widths(info[29]),
        width_supported: widths(info[30]),
        speed_enabled: speeds(info[35] & 0x0f, ext_enabled),
        speed_supported: speeds(info[32] >> 4, ext_supported),
    }
}

/// Every cached port's caps, by (node GUID, port number).
pub fn read(bytes: &[u8]) -> Result<HashMap<(u64, u8), PortCaps>, CacheError> {
    let header = take(bytes, 0, HEADER, "the header")?;
    if u32_at(header, 0) != MAGIC {
        return Err(bad(format!(
            "magic 0x{:08x} is not libibnetdisc's 0x{MAGIC:08x}",
            u32_at(header, 0)
        )));
    }
    if u32_at(header, 4) != VERSION {
        return Err(bad(format!(
            "version {} is not {VERSION}",
            u32_at(header, 4)
        )));
    }
    let nodes = u32_at(header, 8) as usize;
    let ports = u32_at(header, 12) as usize;
    let mut at = HEADER;
    for i in 0..nodes {
        let node = take(bytes, at, NODE_HEADER, &format!("node {i}"))?;
        let stored = node[NODE_HEADER - 1] as usize;
        at += NODE_HEADER + stored * PORT_KEY;
    }
    let mut out = HashMap::with_capacity(ports);
    for i in 0..ports {
        let port = take(bytes, at, PORT, &format!("port {i}"))?;
        let port_num = port[8];
        let info = &port[13..13 + SMP_DATA];
        let node_guid = u64_at(port, 13 + SMP_DATA);
        out.insert((node_guid, port_num), caps_of(info));
        at += PORT;
    }
    if at != bytes.len() {
        return Err(bad(format!(
            "{} bytes after the last port",
            bytes.len() - at
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ibnetdiscover --cache` on ibsim: leaf01 (0x200000) with h1 (0x100000) on port 1 at
    /// `w=1`, h2 and h3 at 4X, all SDR.
    const CACHE: &[u8] = include_bytes!("../../tests/fixtures/ibnetdiscover-1x.cache");

    #[test]
    fn given_a_real_cache_then_every_port_has_its_enabled_and_supported_caps() {
        let caps = read(CACHE).expect("reads");
        assert_eq!(caps.len(), 10);
        let all_widths = vec![Width::X1, Width::X2, Width::X4, Width::X8, Width::X12];
        let h1 = &caps[&(0x100000, 1)];
        assert_eq!(h1.width_enabled, vec![Width::X1]);
        assert_eq!(h1.width_supported, all_widths);
        assert_eq!(h1.speed_enabled, vec![Speed::Sdr]);
        assert_eq!(h1.speed_supported, vec![Speed::Sdr, Speed::Ddr, Speed::Qdr]);
        assert_eq!(caps[&(0x200000, 1)].width_enabled, vec![Width::X1]);
        assert_eq!(caps[&(0x200000, 2)].width_enabled, vec![Width::X4]);
        assert_eq!(caps[&(0x100002, 1)].width_enabled, vec![Width::X4]);
    }

    #[test]
    fn given_extended_speeds_then_fdr_to_ndr_are_read_only_when_the_port_has_them() {
        let mut info = [0u8; 64];
        info[29] = 0x03; // 1X, 4X
        info[30] = 0x13; // 1X, 4X, 2X
        info[32] = 0x70; // SDR, DDR, QDR
        info[35] = 0x01; // SDR
        info[62] = 0x0f; // FDR..NDR supported
        info[63] = 0x06; // EDR, HDR enabled
        assert!(caps_of(&info).speed_enabled == vec![Speed::Sdr]);
        info[20..24].copy_from_slice(&EXTENDED_SPEEDS.to_be_bytes());
        let c = caps_of(&info);
        assert_eq!(c.width_enabled, vec![Width::X1, Width::X4]);
        assert_eq!(c.width_supported, vec![Width::X1, Width::X2, Width::X4]);
        assert_eq!(c.speed_enabled, vec![Speed::Sdr, Speed::Edr, Speed::Hdr]);
        assert_eq!(
            c.speed_supported,
            vec![
                Speed::Sdr,
                Speed::Ddr,
                Speed::Qdr,
                Speed::Fdr,
                Speed::Edr,
                Speed::Hdr,
                Speed::Ndr
            ]
        );
    }

    #[test]
    fn given_a_truncated_or_foreign_file_then_the_error_says_where() {
        let e = read(&CACHE[..CACHE.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("port 9"), "{e}");
        let e = read(b"not a cache at all, just some text")
            .unwrap_err()
            .to_string();
        assert!(e.contains("magic"), "{e}");
    }
}
