//! 3MF as slicers print it: the whole model is one object whose parts (one per tissue) are
//! PrusaSlicer volumes / Bambu-Orca parts with their own name, extruder, infill and walls
//! (`Metadata/Slic3r_PE_model.config`, `Metadata/model_settings.config`), and, for any 3MF
//! reader, a `basematerials` entry and a `colorgroup` colour per tissue on its triangles.
//!
//! One object, not one per tissue: PrusaSlicer turns every object (and every component of an
//! assembly) into its own print object and drops each onto the bed, which breaks the anatomy
//! apart and refuses parts that float ("object with no extrusions in the first layer").
//! Vertices stay in LPS millimetres; the build item carries one shared translation that puts
//! the model's lowest point at z = 0 and the centre of its footprint at the bed centre; the
//! model metadata records that LPS → print transform.

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

/// Materials take ids 1 and 2; the model object is 3.
const OBJECT_ID: usize = 3;

const MODEL_NAME: &str = "fuseprint model";

/// Where the middle of the model's footprint goes on the bed (mm): the centre of a 200 mm bed,
/// inside every common printer's build plate.
pub const BED_CENTRE_MM: [f64; 2] = [100.0, 100.0];

/// The translation (mm) from LPS to print coordinates: lowest point at z = 0, footprint
/// centred on [`BED_CENTRE_MM`]. `None` when no part has vertices.
pub fn print_from_lps_translation(parts: &[&ExportPart]) -> Option<[f64; 3]> {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in parts {
        if let Some((a, b)) = p.mesh.bounds_mm() {
            for d in 0..3 {
                lo[d] = lo[d].min(f64::from(a[d]));
                hi[d] = hi[d].max(f64::from(b[d]));
            }
        }
    }
    if !lo[0].is_finite() {
        return None;
    }
    Some([
        BED_CENTRE_MM[0] - 0.5 * (lo[0] + hi[0]),
        BED_CENTRE_MM[1] - 0.5 * (lo[1] + hi[1]),
        -lo[2],
    ])
}

fn model_xml(
    parts: &[&ExportPart],
    options: &ExportOptions,
    w: &mut impl Write,
) -> std::io::Result<()> {
    let shift = print_from_lps_translation(parts).unwrap_or([0.0; 3]);
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:m="http://schemas.microsoft.com/3dmanufacturing/material/2015/02" xmlns:slic3rpe="http://schemas.slic3r.org/3mf/2017/06">"#
    )?;
    // Tells PrusaSlicer the volume settings in Slic3r_PE_model.config follow its format 1.
    writeln!(w, r#" <metadata name="slic3rpe:Version3mf">1</metadata>"#)?;
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
    let matrix = format!(
        "1 0 0 {:.4} 0 1 0 {:.4} 0 0 1 {:.4} 0 0 0 1",
        shift[0], shift[1], shift[2]
    );
    let desc = format!(
        "Coordinate frame: vertices in LPS (DICOM patient: x left, y posterior, z superior), millimetres; print = LPS + ({:.4}, {:.4}, {:.4}) mm (build item transform: lowest point on the bed, footprint centred at ({}, {}) mm). Parts: {}. Source: {}",
        shift[0], shift[1], shift[2], BED_CENTRE_MM[0], BED_CENTRE_MM[1], names.join(", "), options.source
    );
    writeln!(
        w,
        r#" <metadata name="Description">{}</metadata>"#,
        escape(desc.as_str())
    )?;
    writeln!(
        w,
        r#" <metadata name="fuseprint:print_from_lps">{matrix}</metadata>"#
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
    writeln!(
        w,
        r#"  <object id="{OBJECT_ID}" type="model" name="{}" pid="1" pindex="0">"#,
        escape(MODEL_NAME)
    )?;
    writeln!(w, "   <mesh>\n    <vertices>")?;
    let mut line = String::with_capacity(128);
    for p in parts {
        for q in &p.mesh.positions_world_mm {
            line.clear();
            let _ = writeln!(
                line,
                r#"     <vertex x="{}" y="{}" z="{}"/>"#,
                q[0], q[1], q[2]
            );
            w.write_all(line.as_bytes())?;
        }
    }
    writeln!(w, "    </vertices>\n    <triangles>")?;
    let mut base = 0usize;
    for (i, p) in parts.iter().enumerate() {
        for t in &p.mesh.indices {
            line.clear();
            let _ = writeln!(
                line,
                r#"     <triangle v1="{}" v2="{}" v3="{}" pid="1" p1="{i}"/>"#,
                t[0] as usize + base,
                t[1] as usize + base,
                t[2] as usize + base
            );
            w.write_all(line.as_bytes())?;
        }
        base += p.mesh.vertex_count();
    }
    writeln!(w, "    </triangles>\n   </mesh>\n  </object>")?;
    writeln!(w, " </resources>\n <build>")?;
    writeln!(
        w,
        r#"  <item objectid="{OBJECT_ID}" transform="1 0 0 0 1 0 0 0 1 {} {} {}" printable="1"/>"#,
        shift[0], shift[1], shift[2]
    )?;
    writeln!(w, " </build>\n</model>")
}

/// Inclusive triangle range of each part in the model object.
fn triangle_ranges(parts: &[&ExportPart]) -> Vec<(usize, usize)> {
    let mut first = 0usize;
    parts
        .iter()
        .map(|p| {
            let last = first + p.mesh.face_count().saturating_sub(1);
            let r = (first, last);
            first = last + 1;
            r
        })
        .collect()
}

/// PrusaSlicer's settings (`Format/3mf.cpp`: `config/object/volume` by triangle range of the
/// object's mesh; volume metadata other than name/type are per-volume config overrides).
fn prusa_config(parts: &[&ExportPart]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config>\n");
    let _ = writeln!(s, r#" <object id="{OBJECT_ID}" instances_count="1">"#);
    let _ = writeln!(
        s,
        r#"  <metadata type="object" key="name" value="{MODEL_NAME}"/>"#
    );
    for (p, (first, last)) in parts.iter().zip(triangle_ranges(parts)) {
        let name = escape(p.name.as_str());
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
    }
    s.push_str(" </object>\n</config>\n");
    s
}

/// Bambu Studio / OrcaSlicer settings (`bbs_3mf.cpp`: `config/object` with one `part` per
/// volume, by the same triangle ranges, each with its own extruder and infill).
fn bambu_config(parts: &[&ExportPart]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config>\n");
    let _ = writeln!(s, r#"  <object id="{OBJECT_ID}">"#);
    let _ = writeln!(s, r#"    <metadata key="name" value="{MODEL_NAME}"/>"#);
    for (i, (p, (first, last))) in parts.iter().zip(triangle_ranges(parts)).enumerate() {
        let name = escape(p.name.as_str());
        let _ = writeln!(
            s,
            r#"    <part id="{}" subtype="normal_part" firstid="{first}" lastid="{last}">"#,
            i + 1
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
