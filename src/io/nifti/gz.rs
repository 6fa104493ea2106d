//! gzip for .nii.gz: multi-member writing and reading, in parallel where the file allows.
//!
//! A gzip file may be several concatenated members (RFC 1952); every gzip reader (zlib,
//! Python's gzip, nibabel, ITK) accepts that. We write members of a few MiB, each
//! compressed on its own core, and tag each member's header with an extra subfield
//! `FP` holding the member's total length. When reading a file tagged that way the member
//! boundaries are known without inflating, so members inflate in parallel; any other gzip
//! file (a single member from another tool) inflates sequentially.

use crate::jobs::JobContext;
use flate2::read::{DeflateDecoder, MultiGzDecoder};
use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use rayon::prelude::*;
use std::io::{Read, Write};

/// Uncompressed bytes per member: large enough that the 28 bytes of framing and the
/// restarted dictionary cost nothing, small enough that two cores stay busy.
const MEMBER_BYTES: usize = 4 << 20;
/// Header of a tagged member: 10 fixed bytes, XLEN, then one 8-byte subfield.
const TAGGED_HEADER_LEN: usize = 20;
/// DEFLATE cannot expand data more than ~1032:1, so a header claiming more than this is a lie.
pub const MAX_INFLATE_RATIO: u64 = 1032;

/// Why inflating failed (the caller names the file).
#[derive(Debug, thiserror::Error)]
pub enum GzError {
    #[error("gzip stream is truncated or corrupt ({0})")]
    Corrupt(String),
    #[error("cancelled")]
    Cancelled,
}

/// gzip members holding `payload`, compressed in parallel at `level` (0–9).
pub fn compress(payload: &[u8], level: u32) -> Vec<u8> {
    let members: Vec<Vec<u8>> = payload
        .par_chunks(MEMBER_BYTES)
        .map(|chunk| tagged_member(chunk, level))
        .collect();
    let mut out = Vec::with_capacity(members.iter().map(Vec::len).sum());
    for m in members {
        out.extend_from_slice(&m);
    }
    out
}

/// One ordinary gzip member, as zlib/nibabel/ITK write it (sequential only).
pub fn compress_single(payload: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(payload.len() / 3 + 64),
        Compression::new(level),
    );
    // Writing into a Vec cannot fail.
    match enc.write_all(payload).and_then(|_| enc.finish()) {
        Ok(v) => v,
        Err(_) => Vec::new(),
    }
}

fn tagged_member(chunk: &[u8], level: u32) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(
        Vec::with_capacity(chunk.len() / 3 + 64),
        Compression::new(level),
    );
    // Writing into a Vec cannot fail.
    let deflated = match enc.write_all(chunk).and_then(|_| enc.finish()) {
        Ok(d) => d,
        Err(_) => Vec::new(),
    };
    let mut crc = Crc::new();
    crc.update(chunk);
    let total = (TAGGED_HEADER_LEN + deflated.len() + 8) as u32;
    let mut m = Vec::with_capacity(total as usize);
    // ID1 ID2 CM=deflate FLG=FEXTRA MTIME=0 XFL=0 OS=unknown
    m.extend_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255]);
    m.extend_from_slice(&8u16.to_le_bytes());
    m.extend_from_slice(b"FP");
    m.extend_from_slice(&4u16.to_le_bytes());
    m.extend_from_slice(&total.to_le_bytes());
    m.extend_from_slice(&deflated);
    m.extend_from_slice(&crc.sum().to_le_bytes());
    m.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    m
}

/// One tagged member located in the file.
pub struct Member {
    deflate: std::ops::Range<usize>,
    crc: u32,
    /// Inflated length (the gzip ISIZE field).
    pub len: usize,
}

/// Inflates one whole member into `buf` and checks its CRC.
pub fn inflate_member(bytes: &[u8], m: &Member, buf: &mut Vec<u8>) -> Result<(), GzError> {
    buf.resize(m.len, 0);
    let mut dec = DeflateDecoder::new(&bytes[m.deflate.clone()]);
    dec.read_exact(buf)
        .map_err(|e| GzError::Corrupt(e.to_string()))?;
    let mut crc = Crc::new();
    crc.update(buf);
    if crc.sum() != m.crc {
        return Err(GzError::Corrupt("CRC mismatch".into()));
    }
    Ok(())
}

/// Member boundaries when every member carries our `FP` tag, else `None`.
pub fn tagged_members(bytes: &[u8]) -> Option<Vec<Member>> {
    let mut members = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let h = bytes.get(at..at + TAGGED_HEADER_LEN)?;
        if h[..4] != [0x1f, 0x8b, 8, 4] || h[10..16] != [8, 0, b'F', b'P', 4, 0] {
            return None;
        }
        let total = u32::from_le_bytes([h[16], h[17], h[18], h[19]]) as usize;
        if total < TAGGED_HEADER_LEN + 8 {
            return None;
        }
        let end = at.checked_add(total)?;
        let trailer = bytes.get(end - 8..end)?;
        let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
        // An ISIZE that the deflate data cannot produce is a lie; let the slow path report it.
        if len as u64 > (total as u64).saturating_mul(MAX_INFLATE_RATIO) {
            return None;
        }
        members.push(Member {
            deflate: at + TAGGED_HEADER_LEN..end - 8,
            crc: u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]),
            len,
        });
        at = end;
    }
    Some(members)
}

/// Inflates the first `want` bytes of a gzip file (fewer if the stream ends first;
/// the caller compares). `want` must already be bounded by the caller.
pub fn decompress(bytes: &[u8], want: usize, ctx: &JobContext) -> Result<Vec<u8>, GzError> {
    if let Some(members) = tagged_members(bytes) {
        let total: usize = members.iter().map(|m| m.len).sum();
        if total >= want {
            return decompress_tagged(bytes, &members, want, ctx);
        }
    }
    decompress_stream(bytes, want, ctx)
}

fn decompress_tagged(
    bytes: &[u8],
    members: &[Member],
    want: usize,
    ctx: &JobContext,
) -> Result<Vec<u8>, GzError> {
    let mut out = vec![0u8; want];
    // Pair each member with its slot of the output; members past `want` are not needed.
    let mut slots: Vec<(&Member, &mut [u8])> = Vec::new();
    let mut rest: &mut [u8] = &mut out;
    for m in members {
        if rest.is_empty() {
            break;
        }
        let take = m.len.min(rest.len());
        let (slot, tail) = rest.split_at_mut(take);
        slots.push((m, slot));
        rest = tail;
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let count = slots.len();
    slots.into_par_iter().try_for_each(|(m, slot)| {
        if ctx.is_cancelled() {
            return Err(GzError::Cancelled);
        }
        let data = &bytes[m.deflate.clone()];
        let mut dec = DeflateDecoder::new(data);
        dec.read_exact(slot)
            .map_err(|e| GzError::Corrupt(e.to_string()))?;
        // Only a fully inflated member can be checked against its CRC.
        if slot.len() == m.len {
            let mut crc = Crc::new();
            crc.update(slot);
            if crc.sum() != m.crc {
                return Err(GzError::Corrupt("CRC mismatch".into()));
            }
        }
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        ctx.set_steps(n, count);
        Ok(())
    })?;
    Ok(out)
}

fn decompress_stream(bytes: &[u8], want: usize, ctx: &JobContext) -> Result<Vec<u8>, GzError> {
    let mut dec = MultiGzDecoder::new(bytes);
    let mut out = vec![0u8; want];
    let mut filled = 0usize;
    const STEP: usize = 8 << 20;
    while filled < want {
        if ctx.is_cancelled() {
            return Err(GzError::Cancelled);
        }
        let end = (filled + STEP).min(want);
        match dec.read(&mut out[filled..end]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(GzError::Corrupt(e.to_string())),
        }
        ctx.set_steps(filled, want);
    }
    out.truncate(filled);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 7919) % 251) as u8).collect()
    }

    #[test]
    fn tagged_members_inflate_in_parallel_and_by_any_gzip_reader() {
        let data = payload(MEMBER_BYTES * 2 + 12345);
        let gz = compress(&data, 1);
        assert_eq!(tagged_members(&gz).map(|m| m.len()), Some(3));
        let ctx = JobContext::detached();
        assert_eq!(decompress(&gz, data.len(), &ctx).expect("inflate"), data);
        // A plain multi-member reader gets the same bytes.
        let mut plain = Vec::new();
        MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .expect("plain");
        assert_eq!(plain, data);
        // A prefix is enough when the caller only wants the header.
        assert_eq!(decompress(&gz, 100, &ctx).expect("prefix"), &data[..100]);
    }

    #[test]
    fn corrupt_members_are_errors_not_panics() {
        let data = payload(50_000);
        let mut gz = compress(&data, 6);
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        let ctx = JobContext::detached();
        assert!(decompress(&gz, data.len(), &ctx).is_err());
        let gz = compress(&data, 6);
        let short = decompress(&gz[..gz.len() / 2], data.len(), &ctx);
        assert!(short.map(|v| v.len() < data.len()).unwrap_or(true));
    }
}
