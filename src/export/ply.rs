//! Binary little-endian PLY with per-vertex colours (each part's colour on its vertices).

use super::{write_atomic, ExportError, ExportOptions, ExportPart};
use std::io::Write;
use std::path::Path;

pub fn write_ply(
    parts: &[&ExportPart],
    path: &Path,
    options: &ExportOptions,
) -> Result<(), ExportError> {
    let vertices: usize = parts.iter().map(|p| p.mesh.vertex_count()).sum();
    let faces: usize = parts.iter().map(|p| p.mesh.face_count()).sum();
    if vertices > i32::MAX as usize {
        return Err(ExportError::TooLarge {
            what: "PLY".into(),
            count: vertices,
            path: path.to_path_buf(),
        });
    }
    write_atomic(path, options.overwrite, |w| {
        writeln!(w, "ply\nformat binary_little_endian 1.0")?;
        writeln!(w, "comment fuseprint model, units mm, frame LPS")?;
        if !options.source.is_empty() {
            writeln!(
                w,
                "comment source {}",
                options.source.replace(['\n', '\r'], " ")
            )?;
        }
        for p in parts {
            writeln!(w, "comment part {}", p.name.replace(['\n', '\r'], " "))?;
        }
        writeln!(w, "element vertex {vertices}")?;
        writeln!(w, "property float x\nproperty float y\nproperty float z")?;
        writeln!(
            w,
            "property uchar red\nproperty uchar green\nproperty uchar blue"
        )?;
        writeln!(w, "element face {faces}")?;
        writeln!(w, "property list uchar int vertex_indices\nend_header")?;
        for p in parts {
            let [r, g, b, _] = p.color().0;
            for q in &p.mesh.positions_world_mm {
                for c in q {
                    w.write_all(&c.to_le_bytes())?;
                }
                w.write_all(&[r, g, b])?;
            }
        }
        let mut base = 0i32;
        for p in parts {
            for t in &p.mesh.indices {
                w.write_all(&[3u8])?;
                for &v in t {
                    w.write_all(&(v as i32 + base).to_le_bytes())?;
                }
            }
            base += p.mesh.vertex_count() as i32;
        }
        Ok(())
    })
}
