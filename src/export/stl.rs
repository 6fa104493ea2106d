//! STL, binary (80-byte header naming frame and source) and ASCII. STL has no units: the
//! numbers are millimetres, which is what every slicer assumes.

use super::{write_atomic, ExportError, ExportOptions, ExportPart};
use crate::volume::mesh::{cross, norm, sub};
use std::io::Write;
use std::path::Path;

fn facet_normal(m: &crate::volume::TriMesh, f: usize) -> [f32; 3] {
    let [a, b, c] = m.face_corners(f);
    let n = cross(sub(b, a), sub(c, a));
    let l = norm(n);
    if l > 0.0 {
        n.map(|x| (x / l) as f32)
    } else {
        [0.0; 3]
    }
}

pub fn write_binary(
    parts: &[&ExportPart],
    path: &Path,
    options: &ExportOptions,
) -> Result<(), ExportError> {
    let count: usize = parts.iter().map(|p| p.mesh.face_count()).sum();
    if count > u32::MAX as usize {
        return Err(ExportError::TooLarge {
            what: "STL".into(),
            count,
            path: path.to_path_buf(),
        });
    }
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    // "solid" at the start of a binary header confuses readers that sniff for ASCII.
    let text = format!(
        "fuseprint binary STL, LPS mm; parts: {}; source: {}",
        names.join(", "),
        options.source
    );
    let mut header = [b' '; 80];
    for (h, b) in header.iter_mut().zip(text.bytes()) {
        *h = if b.is_ascii() { b } else { b'?' };
    }
    write_atomic(path, options.overwrite, |w| {
        w.write_all(&header)?;
        w.write_all(&(count as u32).to_le_bytes())?;
        let mut rec = [0u8; 50];
        for p in parts {
            let m = &p.mesh;
            for (f, t) in m.indices.iter().enumerate() {
                let n = facet_normal(m, f);
                let mut vals = [0f32; 12];
                vals[..3].copy_from_slice(&n);
                for (k, &v) in t.iter().enumerate() {
                    vals[3 + 3 * k..6 + 3 * k].copy_from_slice(&m.positions_world_mm[v as usize]);
                }
                for (i, v) in vals.iter().enumerate() {
                    rec[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
                }
                w.write_all(&rec)?;
            }
        }
        Ok(())
    })
}

/// One `solid` for all parts: several solids in one file are a convention many readers
/// (stl_io, admesh) stop reading after the first of.
pub fn write_ascii(
    parts: &[&ExportPart],
    path: &Path,
    options: &ExportOptions,
) -> Result<(), ExportError> {
    let name = if parts.len() == 1 {
        super::file_safe(&parts[0].name)
    } else {
        "fuseprint_model".to_string()
    };
    write_atomic(path, options.overwrite, |w| {
        writeln!(w, "solid {name}")?;
        for p in parts {
            let m = &p.mesh;
            for (f, t) in m.indices.iter().enumerate() {
                let n = facet_normal(m, f);
                writeln!(w, "  facet normal {:e} {:e} {:e}", n[0], n[1], n[2])?;
                writeln!(w, "    outer loop")?;
                for &v in t {
                    let q = m.positions_world_mm[v as usize];
                    writeln!(w, "      vertex {:e} {:e} {:e}", q[0], q[1], q[2])?;
                }
                writeln!(w, "    endloop")?;
                writeln!(w, "  endfacet")?;
            }
        }
        writeln!(w, "endsolid {name}")?;
        Ok(())
    })
}
