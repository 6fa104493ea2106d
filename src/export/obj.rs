//! Wavefront OBJ with an MTL beside it: one group and one material (diffuse colour) per part.

use super::{file_safe, write_atomic, ExportError, ExportOptions, ExportPart};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn write_obj(
    parts: &[&ExportPart],
    path: &Path,
    options: &ExportOptions,
) -> Result<Vec<PathBuf>, ExportError> {
    let mtl = path.with_extension("mtl");
    if !options.overwrite {
        for p in [path, mtl.as_path()] {
            if p.exists() {
                return Err(ExportError::Exists {
                    path: p.to_path_buf(),
                });
            }
        }
    }
    let mtl_name = mtl
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("model.mtl")
        .to_string();
    write_atomic(&mtl, options.overwrite, |w| {
        writeln!(w, "# fuseprint materials")?;
        for p in parts {
            let [r, g, b, a] = p.color().0.map(|c| c as f32 / 255.0);
            writeln!(w, "newmtl {}", file_safe(&p.name))?;
            writeln!(w, "Kd {r:.4} {g:.4} {b:.4}")?;
            writeln!(w, "Ka 0 0 0\nKs 0.1 0.1 0.1\nNs 10\nd {a:.4}\nillum 2\n")?;
        }
        Ok(())
    })?;
    write_atomic(path, options.overwrite, |w| {
        writeln!(
            w,
            "# fuseprint model; units: millimetres; frame: LPS (x left, y posterior, z superior)"
        )?;
        if !options.source.is_empty() {
            writeln!(w, "# source: {}", options.source.replace('\n', " "))?;
        }
        writeln!(w, "mtllib {mtl_name}")?;
        let mut base = 1usize;
        for p in parts {
            let name = file_safe(&p.name);
            writeln!(w, "o {name}")?;
            writeln!(w, "usemtl {name}")?;
            for q in &p.mesh.positions_world_mm {
                writeln!(w, "v {} {} {}", q[0], q[1], q[2])?;
            }
            for t in &p.mesh.indices {
                writeln!(
                    w,
                    "f {} {} {}",
                    t[0] as usize + base,
                    t[1] as usize + base,
                    t[2] as usize + base
                )?;
            }
            base += p.mesh.vertex_count();
        }
        Ok(())
    })?;
    Ok(vec![path.to_path_buf(), mtl])
}
