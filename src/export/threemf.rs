//! 3MF: one object per part with its name, a `basematerials` entry and a `colorgroup` colour,
//! millimetre units, LPS frame and source in the metadata, and the sidecars PrusaSlicer
//! (`Metadata/Slic3r_PE_model.config`) and Bambu Studio / OrcaSlicer
//! (`Metadata/model_settings.config`) read for per-object extruder and infill.
//!
//! Vertices stay in LPS millimetres; one shared build transform lifts the whole assembly
//! onto the bed (min corner at the origin), so parts stay registered to each other.

use super::{write_atomic, ExportError, ExportOptions, ExportPart};
use quick_xml::escape::escape;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/><Default Extension="config" ContentType="application/xml"/></Types>
"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>
"#;

fn hex(c: crate::volume::Rgba) -> String {
    let [r, g, b, a] = c.0;
    format!("#{r:02X}{g:02X}{b:02X}{a:02X}")
}

/// Object ids: materials take 1 and 2, parts start at 3, the assembly comes last.
fn object_id(index: usize) -> usize {
    index + 3
}

fn assembly_id(part_count: usize) -> usize {
    object_id(part_count)
}

const ASSEMBLY_NAME: &str = "fuseprint model";

fn model_xml(
    parts: &[&ExportPart],
    options: &ExportOptions,
    w: &mut impl Write,
) -> std::io::Result<()> {
    let mut lo = [f32::INFINITY; 3];
    for p in parts {
        if let Some((a, _)) = p.mesh.bounds_mm() {
            for d in 0..3 {
                lo[d] = lo[d].min(a[d]);
            }
        }
    }
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:m="http://schemas.microsoft.com/3dmanufacturing/material/2015/02">"#
    )?;
    writeln!(
        w,
        r#" <metadata name="Title">{}</metadata>"#,
        escape(names.join(", ").as_str())
    )?;
    writeln!(
        w,
        r#" <metadata name="Designer">fuseprint {}</metadata>"#,
        env!("CARGO_PKG_VERSION")
    )?;
    let desc = format!(
        "Coordinate frame: LPS (DICOM patient: x left, y posterior, z superior), millimetres; build item translated by ({:.3}, {:.3}, {:.3}) mm onto the bed. Source: {}",
        -lo[0], -lo[1], -lo[2], options.source
    );
    writeln!(
        w,
        r#" <metadata name="Description">{}</metadata>"#,
        escape(desc.as_str())
    )?;
    writeln!(w, " <resources>")?;
    writeln!(w, r#"  <basematerials id="1">"#)?;
    for p in parts {
        let name = format!("{} ({})", p.profile.material, p.name);
        writeln!(
            w,
            r#"   <base name="{}" displaycolor="{}"/>"#,
            escape(name.as_str()),
            hex(p.color())
        )?;
    }
    writeln!(w, "  </basematerials>")?;
    writeln!(w, r#"  <m:colorgroup id="2">"#)?;
    for p in parts {
        writeln!(w, r#"   <m:color color="{}"/>"#, hex(p.color()))?;
    }
    writeln!(w, "  </m:colorgroup>")?;
    let mut line = String::with_capacity(128);
    for (i, p) in parts.iter().enumerate() {
        writeln!(
            w,
            r#"  <object id="{}" type="model" name="{}" pid="1" pindex="{i}">"#,
            object_id(i),
            escape(p.name.as_str())
        )?;
        writeln!(w, "   <mesh>\n    <vertices>")?;
        for q in &p.mesh.positions_world_mm {
            line.clear();
            let _ = writeln!(
                line,
                r#"     <vertex x="{}" y="{}" z="{}"/>"#,
                q[0], q[1], q[2]
            );
            w.write_all(line.as_bytes())?;
        }
        writeln!(w, "    </vertices>\n    <triangles>")?;
        for t in &p.mesh.indices {
            line.clear();
            let _ = writeln!(
                line,
                r#"     <triangle v1="{}" v2="{}" v3="{}"/>"#,
                t[0], t[1], t[2]
            );
            w.write_all(line.as_bytes())?;
        }
        writeln!(w, "    </triangles>\n   </mesh>\n  </object>")?;
    }
    // The tissues are components of one assembly object: slicers load it as one object with
    // one part (volume) per tissue, registered to each other and printed together.
    writeln!(
        w,
        r#"  <object id="{}" type="model" name="{}">"#,
        assembly_id(parts.len()),
        escape(ASSEMBLY_NAME)
    )?;
    writeln!(w, "   <components>")?;
    for i in 0..parts.len() {
        writeln!(w, r#"    <component objectid="{}"/>"#, object_id(i))?;
    }
    writeln!(w, "   </components>\n  </object>")?;
    writeln!(w, " </resources>\n <build>")?;
    writeln!(
        w,
        r#"  <item objectid="{}" transform="1 0 0 0 1 0 0 0 1 {} {} {}" printable="1"/>"#,
        assembly_id(parts.len()),
        -lo[0],
        -lo[1],
        -lo[2]
    )?;
    writeln!(w, " </build>\n</model>")
}

/// PrusaSlicer's settings (`Format/3mf.cpp`: `config/object/volume` by triangle range over
/// the object's concatenated components; volume metadata other than name/type are per-part
/// config overrides).
fn prusa_config(parts: &[&ExportPart]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config>\n");
    let _ = writeln!(
        s,
        r#" <object id="{}" instances_count="1">"#,
        assembly_id(parts.len())
    );
    let _ = writeln!(
        s,
        r#"  <metadata type="object" key="name" value="{ASSEMBLY_NAME}"/>"#
    );
    let mut first = 0usize;
    for p in parts {
        let name = escape(p.name.as_str());
        let last = first + p.mesh.face_count().saturating_sub(1);
        let _ = writeln!(s, r#"  <volume firstid="{first}" lastid="{last}">"#);
        let meta = [
            ("name", name.to_string()),
            ("volume_type", "ModelPart".to_string()),
            ("extruder", p.profile.extruder.to_string()),
            ("fill_density", p.profile.infill_text()),
            ("perimeters", p.profile.wall_count.to_string()),
        ];
        for (k, v) in meta {
            let _ = writeln!(s, r#"   <metadata type="volume" key="{k}" value="{v}"/>"#);
        }
        s.push_str("  </volume>\n");
        first = last + 1;
    }
    s.push_str(" </object>\n</config>\n");
    s
}

/// Bambu Studio / OrcaSlicer settings (`bbs_3mf.cpp`: `config/object` with one `part` per
/// component, each with its own extruder and infill).
fn bambu_config(parts: &[&ExportPart]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config>\n");
    let _ = writeln!(s, r#"  <object id="{}">"#, assembly_id(parts.len()));
    let _ = writeln!(s, r#"    <metadata key="name" value="{ASSEMBLY_NAME}"/>"#);
    for (i, p) in parts.iter().enumerate() {
        let name = escape(p.name.as_str());
        let _ = writeln!(
            s,
            r#"    <part id="{}" subtype="normal_part">"#,
            object_id(i)
        );
        let meta = [
            ("name", name.to_string()),
            ("extruder", p.profile.extruder.to_string()),
            ("sparse_infill_density", p.profile.infill_text()),
            ("wall_loops", p.profile.wall_count.to_string()),
        ];
        for (k, v) in meta {
            let _ = writeln!(s, r#"      <metadata key="{k}" value="{v}"/>"#);
        }
        s.push_str("    </part>\n");
    }
    s.push_str("  </object>\n</config>\n");
    s
}

pub fn write_3mf(
    parts: &[&ExportPart],
    path: &Path,
    options: &ExportOptions,
) -> Result<(), ExportError> {
    let zip_err = |e: zip::result::ZipError| std::io::Error::other(e.to_string());
    // Zip64 only when needed: some readers still trip over it.
    let estimate: usize = parts
        .iter()
        .map(|p| p.mesh.vertex_count() * 64 + p.mesh.face_count() * 56)
        .sum();
    let large = estimate > 3 << 30;
    write_atomic(path, options.overwrite, |w| {
        let mut z = zip::ZipWriter::new(w);
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1));
        z.start_file("[Content_Types].xml", opts).map_err(zip_err)?;
        z.write_all(CONTENT_TYPES.as_bytes())?;
        z.start_file("_rels/.rels", opts).map_err(zip_err)?;
        z.write_all(RELS.as_bytes())?;
        z.start_file("3D/3dmodel.model", opts.large_file(large))
            .map_err(zip_err)?;
        {
            let mut bw = std::io::BufWriter::with_capacity(1 << 20, &mut z);
            model_xml(parts, options, &mut bw)?;
            bw.flush()?;
        }
        z.start_file("Metadata/Slic3r_PE_model.config", opts)
            .map_err(zip_err)?;
        z.write_all(prusa_config(parts).as_bytes())?;
        z.start_file("Metadata/model_settings.config", opts)
            .map_err(zip_err)?;
        z.write_all(bambu_config(parts).as_bytes())?;
        z.finish().map_err(zip_err)?;
        Ok(())
    })
}
