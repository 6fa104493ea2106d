//! Voxel bytes to f32, from a plain file or straight out of gzip.
//!
//! From gzip we never hold the whole inflated file: tagged members (see [`gz`]) inflate
//! and convert in parallel, one member per task; any other gzip inflates sequentially in
//! chunks that are converted as they arrive.

use super::gz::{self, GzError};
use super::header::{DataType, NiftiHeader};
use crate::jobs::JobContext;
use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use std::io::Read;

/// Why voxels could not be read.
#[derive(Debug)]
pub enum VoxelError {
    /// The (inflated) file ends after `have` bytes.
    Short {
        have: u64,
    },
    Gz(GzError),
}

impl From<GzError> for VoxelError {
    fn from(e: GzError) -> Self {
        VoxelError::Gz(e)
    }
}

/// Stored type, byte order and scaling: everything needed to turn bytes into f32.
#[derive(Debug, Clone, Copy)]
pub struct Converter {
    datatype: DataType,
    little_endian: bool,
    scale: Option<(f64, f64)>,
}

/// Voxels per conversion task: big enough to amortise scheduling, small enough for cache.
const CHUNK_VOXELS: usize = 1 << 16;

impl Converter {
    pub fn new(h: &NiftiHeader) -> Self {
        Self {
            datatype: h.datatype,
            little_endian: h.little_endian,
            scale: h.scaling(),
        }
    }

    pub fn bytes_per_voxel(&self) -> usize {
        self.datatype.bytes()
    }

    /// Converts `src` (exactly `dst.len()` voxels) into `dst`; returns the lowest value
    /// (NaN ignored). The byte order is decided outside the loops so they vectorise.
    pub fn convert(&self, src: &[u8], dst: &mut [f32]) -> f32 {
        macro_rules! conv {
            ($t:ty, $n:expr) => {{
                let native = self.little_endian == cfg!(target_endian = "little");
                // Aligned native-order data is a plain slice of $t: this loop vectorises.
                if let (true, Ok(values)) = (native, bytemuck::try_cast_slice::<u8, $t>(src)) {
                    for (d, v) in dst.iter_mut().zip(values) {
                        *d = *v as f32;
                    }
                } else if self.little_endian {
                    for (d, s) in dst.iter_mut().zip(src.chunks_exact($n)) {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(s);
                        *d = <$t>::from_le_bytes(a) as f32;
                    }
                } else {
                    for (d, s) in dst.iter_mut().zip(src.chunks_exact($n)) {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(s);
                        *d = <$t>::from_be_bytes(a) as f32;
                    }
                }
            }};
        }
        match self.datatype {
            DataType::U8 => conv!(u8, 1),
            DataType::I8 => conv!(i8, 1),
            DataType::I16 => conv!(i16, 2),
            DataType::U16 => conv!(u16, 2),
            DataType::I32 => conv!(i32, 4),
            DataType::U32 => conv!(u32, 4),
            DataType::I64 => conv!(i64, 8),
            DataType::U64 => conv!(u64, 8),
            DataType::F32 => conv!(f32, 4),
            DataType::F64 => {
                // Scaled in f64 so large f64 values keep their precision.
                let (m, b) = self.scale.unwrap_or((1.0, 0.0));
                for (d, s) in dst.iter_mut().zip(src.chunks_exact(8)) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(s);
                    let v = if self.little_endian {
                        f64::from_le_bytes(a)
                    } else {
                        f64::from_be_bytes(a)
                    };
                    *d = (v * m + b) as f32;
                }
                return lowest(dst);
            }
        }
        if let Some((m, b)) = self.scale {
            let (m, b) = (m as f32, b as f32);
            for d in dst.iter_mut() {
                *d = *d * m + b;
            }
        }
        lowest(dst)
    }

    /// [`Self::convert`] split over the thread pool.
    pub fn convert_par(&self, src: &[u8], dst: &mut [f32]) -> f32 {
        let bpv = self.bytes_per_voxel();
        dst.par_chunks_mut(CHUNK_VOXELS)
            .zip(src.par_chunks(CHUNK_VOXELS * bpv))
            .map(|(d, s)| self.convert(s, d))
            .reduce(|| f32::INFINITY, f32::min)
    }
}

fn lowest(v: &[f32]) -> f32 {
    // `<` is false for NaN, so NaN is skipped; unlike f32::min this vectorises.
    v.iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a })
}

/// `count` voxels at `offset` of an uncompressed file.
pub fn from_plain(
    bytes: &[u8],
    offset: u64,
    count: usize,
    conv: &Converter,
) -> Result<(Vec<f32>, f32), VoxelError> {
    let len = count as u64 * conv.bytes_per_voxel() as u64;
    if (bytes.len() as u64) < offset + len {
        return Err(VoxelError::Short {
            have: bytes.len() as u64,
        });
    }
    let src = &bytes[offset as usize..(offset + len) as usize];
    let mut out = vec![0f32; count];
    let lo = conv.convert_par(src, &mut out);
    Ok((out, lo))
}

/// `count` voxels at `offset` of the inflated content of a gzip file.
pub fn from_gzip(
    bytes: &[u8],
    offset: u64,
    count: usize,
    conv: &Converter,
    ctx: &JobContext,
) -> Result<(Vec<f32>, f32), VoxelError> {
    if let Some(members) = gz::tagged_members(bytes) {
        if let Some(result) = from_tagged(bytes, &members, offset, count, conv, ctx) {
            return result;
        }
    }
    from_stream(bytes, offset, count, conv, ctx)
}

thread_local! {
    static MEMBER_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Parallel path; `None` when members do not split on voxel boundaries (then stream).
fn from_tagged(
    bytes: &[u8],
    members: &[gz::Member],
    offset: u64,
    count: usize,
    conv: &Converter,
    ctx: &JobContext,
) -> Option<Result<(Vec<f32>, f32), VoxelError>> {
    let bpv = conv.bytes_per_voxel() as u64;
    let data_end = offset + count as u64 * bpv;
    let total: u64 = members.iter().map(|m| m.len as u64).sum();
    if total < data_end {
        return Some(Err(VoxelError::Short { have: total }));
    }
    // (member, byte range within the member's content, voxel range of the output)
    let mut tasks = Vec::new();
    let mut start = 0u64;
    for m in members {
        let end = start + m.len as u64;
        let (a, b) = (start.max(offset), end.min(data_end));
        if a < b {
            if (a - offset) % bpv != 0 || (b - offset) % bpv != 0 {
                return None;
            }
            tasks.push((
                m,
                (a - start) as usize..(b - start) as usize,
                ((b - a) / bpv) as usize,
            ));
        }
        start = end;
    }
    let mut out = vec![0f32; count];
    let mut slots = Vec::with_capacity(tasks.len());
    let mut rest: &mut [f32] = &mut out;
    for (m, range, n) in tasks {
        let (slot, tail) = rest.split_at_mut(n);
        slots.push((m, range, slot));
        rest = tail;
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total_tasks = slots.len();
    let lo = slots
        .into_par_iter()
        .map(|(m, range, slot)| {
            if ctx.is_cancelled() {
                return Err(VoxelError::Gz(GzError::Cancelled));
            }
            // One scratch buffer per pool thread: a fresh multi-MiB Vec per member would
            // be mmapped, zeroed by the kernel and unmapped every time.
            let lo = MEMBER_SCRATCH.with(|cell| {
                let mut buf = cell.borrow_mut();
                gz::inflate_member(bytes, m, &mut buf)?;
                Ok::<_, VoxelError>(conv.convert(&buf[range], slot))
            })?;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            ctx.set_steps(n, total_tasks);
            Ok(lo)
        })
        .try_reduce(|| f32::INFINITY, |a, b| Ok(a.min(b)));
    Some(lo.map(|lo| (out, lo)))
}

/// Sequential inflate, converting each chunk as it arrives.
fn from_stream(
    bytes: &[u8],
    offset: u64,
    count: usize,
    conv: &Converter,
    ctx: &JobContext,
) -> Result<(Vec<f32>, f32), VoxelError> {
    let mut dec = MultiGzDecoder::new(bytes);
    let skipped = std::io::copy(&mut (&mut dec).take(offset), &mut std::io::sink())
        .map_err(|e| GzError::Corrupt(e.to_string()))?;
    if skipped < offset {
        return Err(VoxelError::Short { have: skipped });
    }
    let bpv = conv.bytes_per_voxel();
    let step = CHUNK_VOXELS * 32;
    let mut buf = vec![0u8; step * bpv];
    let mut out = vec![0f32; count];
    let mut lo = f32::INFINITY;
    let mut done = 0usize;
    while done < count {
        if ctx.is_cancelled() {
            return Err(GzError::Cancelled.into());
        }
        let n = step.min(count - done);
        let want = &mut buf[..n * bpv];
        let mut filled = 0;
        while filled < want.len() {
            match dec.read(&mut want[filled..]) {
                Ok(0) => {
                    return Err(VoxelError::Short {
                        have: offset + (done * bpv + filled) as u64,
                    })
                }
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(GzError::Corrupt(e.to_string()).into()),
            }
        }
        lo = lo.min(conv.convert_par(want, &mut out[done..done + n]));
        done += n;
        ctx.set_steps(done, count);
    }
    Ok((out, lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converter(datatype: DataType, little_endian: bool) -> Converter {
        Converter {
            datatype,
            little_endian,
            scale: None,
        }
    }

    /// Tagged (aligned and misaligned) and single-member gzip give the same voxels, and a
    /// file that ends early reports how much it had.
    #[test]
    fn every_gzip_layout_gives_the_same_voxels() {
        let count = 3_000_001; // spans several members
        let expected: Vec<f32> = (0..count)
            .map(|v| ((v * 37) % 65536) as i16 as f32)
            .collect();
        for offset in [352usize, 353] {
            let mut payload = vec![7u8; offset];
            for v in &expected {
                payload.extend_from_slice(&(*v as i16).to_be_bytes());
            }
            let conv = converter(DataType::I16, false);
            let ctx = JobContext::detached();
            for gz_bytes in [gz::compress(&payload, 1), gz::compress_single(&payload, 1)] {
                let (got, lo) =
                    from_gzip(&gz_bytes, offset as u64, count, &conv, &ctx).expect("read");
                assert_eq!(got, expected);
                assert_eq!(lo, -32768.0);
                match from_gzip(&gz_bytes, offset as u64, count + 1, &conv, &ctx) {
                    Err(VoxelError::Short { have }) => assert_eq!(have, payload.len() as u64),
                    other => panic!("expected Short, got {:?}", other.map(|r| r.1)),
                }
            }
        }
    }

    #[test]
    fn native_and_swapped_orders_agree() {
        let values = [1.5f32, -2.0, f32::NAN, 1e6];
        let mut le = Vec::new();
        let mut be = Vec::new();
        for v in values {
            le.extend_from_slice(&v.to_le_bytes());
            be.extend_from_slice(&v.to_be_bytes());
        }
        let mut a = [0f32; 4];
        let mut b = [0f32; 4];
        let lo_a = converter(DataType::F32, true).convert(&le, &mut a);
        let lo_b = converter(DataType::F32, false).convert(&be, &mut b);
        assert_eq!(lo_a, -2.0);
        assert_eq!(lo_b, -2.0);
        assert_eq!(a[..2], b[..2]);
        assert!(a[2].is_nan() && b[2].is_nan());
    }
}
