//! Write every format, read it back with independent parsing, and check what a slicer needs.

use fuseprint::export::profile::{assign_extruders, PrintProfile};
use fuseprint::export::threemf::BED_CENTRE_MM;
use fuseprint::export::{export, ExportError, ExportFormat, ExportOptions, ExportPart};
use fuseprint::jobs::JobContext;
use fuseprint::meshing::{self, DecimateTarget, MeshingParams};
use fuseprint::volume::{LabelInfo, LabelMap, LabelTable, Rgba, TriMesh, Volume, VolumeGeometry};
use std::io::Read;
use std::path::Path;

/// Two touching labelled boxes plus a separate sphere, meshed and decimated.
fn parts() -> Vec<ExportPart> {
    let g = VolumeGeometry::axis_aligned([30, 24, 20], [0.8, 0.8, 1.0], [-100.0, 50.0, -300.0])
        .expect("grid");
    let data = Volume::from_fn(g, |[i, j, k]| {
        let in_box = (4..20).contains(&j) && (4..16).contains(&k);
        let d2 = (i as f64 - 24.0).powi(2) + (j as f64 - 12.0).powi(2) + (k as f64 - 10.0).powi(2);
        match i {
            3..=9 if in_box => 1,
            10..=15 if in_box => 2,
            _ if d2 < 16.0 => 3,
            _ => 0,
        }
    });
    let mut table = LabelTable::new();
    table.insert(LabelInfo::new(1, "vertebra L1", Rgba::rgb(1, 2, 3)));
    table.insert(LabelInfo::new(2, "aorta", Rgba::rgb(1, 2, 3)));
    table.insert(LabelInfo::new(3, "tumour <core> & rim", Rgba::rgb(1, 2, 3)));
    let map = LabelMap::new(data, table);
    let params = MeshingParams {
        decimate: Some(DecimateTarget::Faces(3000)),
        ..MeshingParams::default()
    };
    let surfaces =
        meshing::label_surfaces(&map, None, &params, &JobContext::detached()).expect("mesh");
    let mut profiles: Vec<PrintProfile> = surfaces
        .iter()
        .map(|s| PrintProfile::clinical_default(&s.name, s.color))
        .collect();
    assign_extruders(&mut profiles);
    surfaces
        .into_iter()
        .zip(profiles)
        .map(|(s, profile)| ExportPart {
            name: s.name,
            label: Some(s.label),
            mesh: s.mesh,
            profile,
        })
        .collect()
}

fn opts() -> ExportOptions {
    ExportOptions {
        overwrite: false,
        source: "synthetic phantom".into(),
        per_part: false,
    }
}

fn closed(m: &TriMesh) -> bool {
    meshing::check(m).watertight
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        assert!(!n.ends_with(".part"), "temporary file left behind: {n}");
    }
}

#[test]
fn binary_and_ascii_stl_read_back_watertight() {
    let dir = tempfile::tempdir().expect("tmp");
    let parts = parts();
    let total_faces: usize = parts.iter().map(|p| p.mesh.face_count()).sum();
    let total_volume: f64 = parts.iter().map(|p| p.mesh.signed_volume_mm3()).sum();
    for (format, name) in [
        (ExportFormat::StlBinary, "m.stl"),
        (ExportFormat::StlAscii, "a.stl"),
    ] {
        let path = dir.path().join(name);
        export(&parts, &path, format, &opts()).expect("export");
        let mut f = std::fs::File::open(&path).expect("open");
        let read = stl_io::read_stl(&mut f).expect("parse STL");
        assert_eq!(read.faces.len(), total_faces);
        let mesh = TriMesh::new(
            read.vertices.iter().map(|v| [v[0], v[1], v[2]]).collect(),
            read.faces
                .iter()
                .map(|t| t.vertices.map(|x| x as u32))
                .collect(),
        );
        let rel = mesh.signed_volume_mm3() / total_volume - 1.0;
        assert!(rel.abs() < 1e-4, "{format:?} volume off by {rel}");
        // Each part on its own must be closed; merged, the shared wall is welded and still closed
        // with every edge in exactly two faces only per part, so check parts through per-part files.
        assert_eq!(meshing::check(&mesh).boundary_edges, 0, "{format:?}");
    }
    // Per-part files, each watertight for stl_io's own validator.
    let per = ExportOptions {
        per_part: true,
        ..opts()
    };
    let written = export(
        &parts,
        &dir.path().join("p.stl"),
        ExportFormat::StlBinary,
        &per,
    )
    .expect("export");
    assert_eq!(written.len(), parts.len());
    for path in &written {
        let mut f = std::fs::File::open(path).expect("open");
        let read = stl_io::read_stl(&mut f).expect("parse");
        read.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    no_temp_files(dir.path());
}

#[test]
fn existing_files_are_never_overwritten_silently() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("keep.stl");
    std::fs::write(&path, b"precious").expect("write");
    let parts = parts();
    for format in [
        ExportFormat::StlBinary,
        ExportFormat::ThreeMf,
        ExportFormat::Ply,
        ExportFormat::Obj,
    ] {
        let err = export(&parts, &path, format, &opts()).expect_err("must refuse");
        assert!(matches!(err, ExportError::Exists { .. }), "{err}");
        assert!(err.to_string().ends_with("keep.stl"), "path last: {err}");
    }
    assert_eq!(std::fs::read(&path).expect("read"), b"precious");
    let ow = ExportOptions {
        overwrite: true,
        ..opts()
    };
    export(&parts, &path, ExportFormat::StlBinary, &ow).expect("overwrite allowed");
    assert_ne!(std::fs::read(&path).expect("read"), b"precious");
    no_temp_files(dir.path());
}

fn zip_text(path: &Path, name: &str) -> String {
    let f = std::fs::File::open(path).expect("open");
    let mut z = zip::ZipArchive::new(f).expect("zip");
    let mut s = String::new();
    z.by_name(name)
        .unwrap_or_else(|_| panic!("{name} missing"))
        .read_to_string(&mut s)
        .expect("utf8");
    s
}

fn attr(e: &quick_xml::events::BytesStart, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key)
        .map(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .expect("unescape")
                .to_string()
        })
}

#[test]
fn threemf_is_one_multi_part_object_on_the_bed_with_colours_and_slicer_settings() {
    use quick_xml::events::Event;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("model.3mf");
    let parts = parts();
    export(&parts, &path, ExportFormat::ThreeMf, &opts()).expect("export");
    assert!(zip_text(&path, "[Content_Types].xml").contains("3dmanufacturing-3dmodel"));
    assert!(zip_text(&path, "_rels/.rels").contains("/3D/3dmodel.model"));
    let model = zip_text(&path, "3D/3dmodel.model");
    let mut reader = quick_xml::Reader::from_str(&model);
    let mut unit = None;
    let mut objects = 0;
    let mut vertices: Vec<[f32; 3]> = Vec::new();
    // (triangle, basematerial index)
    let mut triangles: Vec<([u32; 3], usize)> = Vec::new();
    let mut bases = Vec::new();
    let mut colours = Vec::new();
    let mut item_transform = None;
    let mut items = 0;
    let mut metadata = std::collections::BTreeMap::new();
    let mut current_meta: Option<String> = None;
    loop {
        match reader.read_event().expect("xml") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                "model" => unit = attr(&e, "unit"),
                "object" => {
                    objects += 1;
                    assert_eq!(attr(&e, "name").as_deref(), Some("fuseprint model"));
                }
                "vertex" => vertices.push(
                    ["x", "y", "z"]
                        .map(|k| attr(&e, k).expect("coord").parse::<f32>().expect("float")),
                ),
                "triangle" => {
                    let t = ["v1", "v2", "v3"]
                        .map(|k| attr(&e, k).expect("index").parse::<u32>().expect("int"));
                    assert_eq!(attr(&e, "pid").as_deref(), Some("1"));
                    let p1 = attr(&e, "p1").expect("p1").parse().expect("int");
                    triangles.push((t, p1));
                }
                "base" => bases.push((
                    attr(&e, "name").expect("n"),
                    attr(&e, "displaycolor").expect("c"),
                )),
                "m:color" => colours.push(attr(&e, "color").expect("c")),
                "item" => {
                    items += 1;
                    item_transform = attr(&e, "transform");
                }
                "metadata" => current_meta = attr(&e, "name"),
                _ => {}
            },
            // quick-xml reports `&amp;` and friends as separate GeneralRef events, so one
            // metadata value arrives in pieces: gather them until the closing tag.
            Event::Text(t) => {
                if let Some(name) = &current_meta {
                    let value: &mut String = metadata.entry(name.clone()).or_default();
                    value.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(name) = &current_meta {
                    let value: &mut String = metadata.entry(name.clone()).or_default();
                    let entity = r.xml10_content();
                    let resolved = quick_xml::escape::resolve_predefined_entity(&entity)
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            let code = r.resolve_char_ref().expect("char ref").expect("known ref");
                            code.to_string()
                        });
                    value.push_str(&resolved);
                }
            }
            Event::End(_) => current_meta = None,
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(unit.as_deref(), Some("millimeter"));
    let description = &metadata["Description"];
    assert!(
        description.contains("LPS") && description.contains("synthetic phantom"),
        "{description}"
    );
    assert_eq!(metadata["slic3rpe:Version3mf"], "1");
    // One object, one build item; its translation is the recorded LPS → print transform.
    assert_eq!((objects, items), (1, 1));
    let t: Vec<f64> = item_transform
        .expect("transform")
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    assert_eq!(&t[..9], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let m: Vec<f64> = metadata["fuseprint:print_from_lps"]
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    for d in 0..3 {
        assert!((m[4 * d + 3] - t[9 + d]).abs() < 1e-3, "{m:?} vs {t:?}");
    }
    // Placed: lowest point on the bed, footprint centred on the bed centre.
    let placed: Vec<[f64; 3]> = vertices
        .iter()
        .map(|v| [0, 1, 2].map(|d| f64::from(v[d]) + t[9 + d]))
        .collect();
    let lo = [0, 1, 2].map(|d| placed.iter().map(|p| p[d]).fold(f64::INFINITY, f64::min));
    let hi = [0, 1, 2].map(|d| {
        placed
            .iter()
            .map(|p| p[d])
            .fold(f64::NEG_INFINITY, f64::max)
    });
    assert!(lo[2].abs() < 1e-3, "lowest point at z = {}", lo[2]);
    for d in 0..2 {
        let centre = 0.5 * (lo[d] + hi[d]);
        assert!((centre - BED_CENTRE_MM[d]).abs() < 1e-3, "{centre}");
    }
    // Each tissue is the triangle range of its volume, closed, with its own colour.
    assert_eq!(bases.len(), parts.len());
    assert_eq!(colours.len(), parts.len());
    let mut first = 0;
    let mut vertex_base = 0u32;
    for (i, p) in parts.iter().enumerate() {
        let range = &triangles[first..first + p.mesh.face_count()];
        assert!(range.iter().all(|(_, m)| *m == i), "{}: material", p.name);
        let tris: Vec<[u32; 3]> = range
            .iter()
            .map(|(t, _)| t.map(|v| v - vertex_base))
            .collect();
        let verts =
            vertices[vertex_base as usize..vertex_base as usize + p.mesh.vertex_count()].to_vec();
        let m = TriMesh::new(verts, tris);
        assert!(closed(&m), "{} not watertight after read-back", p.name);
        let rel = m.signed_volume_mm3() / p.mesh.signed_volume_mm3() - 1.0;
        assert!(rel.abs() < 1e-4, "{}: {rel}", p.name);
        let [r, g, b, a] = p.profile.color.0;
        assert_eq!(colours[i], format!("#{r:02X}{g:02X}{b:02X}{a:02X}"));
        assert_eq!(bases[i].1, colours[i]);
        assert!(bases[i].0.contains(&p.name), "names survive escaping");
        first += p.mesh.face_count();
        vertex_base += p.mesh.vertex_count() as u32;
    }
    assert_eq!(first, triangles.len());
    // Clinical colours: vertebra white, aorta blue, tumour pink.
    assert_eq!(colours[0], "#FFFFFFFF");
    assert_eq!(colours[1], "#1E5AFFFF");
    assert_eq!(colours[2], "#FF69B4FF");
    let prusa = zip_text(&path, "Metadata/Slic3r_PE_model.config");
    let bambu = zip_text(&path, "Metadata/model_settings.config");
    let mut first = 0;
    for (i, p) in parts.iter().enumerate() {
        let fill = format!(r#"key="fill_density" value="{}""#, p.profile.infill_text());
        assert_eq!(prusa.matches(&fill).count(), parts.len(), "{prusa}");
        // Volumes cover consecutive triangle ranges of the one object, in part order.
        let last = first + p.mesh.face_count() - 1;
        let range = format!(r#"firstid="{first}" lastid="{last}""#);
        assert!(prusa.contains(&range), "{prusa}");
        assert!(bambu.contains(&range), "{bambu}");
        first = last + 1;
        assert!(bambu.contains(&format!(
            r#"key="sparse_infill_density" value="{}""#,
            p.profile.infill_text()
        )));
        assert!(
            bambu.contains(&format!(r#"key="extruder" value="{}""#, p.profile.extruder)),
            "part {i}"
        );
        let name = format!(
            r#"key="name" value="{}""#,
            quick_xml::escape::escape(&p.name)
        );
        assert!(prusa.contains(&name) && bambu.contains(&name), "{name}");
    }
    assert_eq!(
        parts.iter().map(|p| p.profile.extruder).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    no_temp_files(dir.path());
}

#[test]
fn obj_mtl_and_ply_carry_colours() {
    let dir = tempfile::tempdir().expect("tmp");
    let parts = parts();
    let obj = dir.path().join("m.obj");
    let written = export(&parts, &obj, ExportFormat::Obj, &opts()).expect("obj");
    assert_eq!(written.len(), 2);
    let text = std::fs::read_to_string(&obj).expect("read");
    assert!(text.contains("mtllib m.mtl"));
    let v = text.lines().filter(|l| l.starts_with("v ")).count();
    let f: Vec<[usize; 3]> = text
        .lines()
        .filter_map(|l| l.strip_prefix("f "))
        .map(|l| {
            let n: Vec<usize> = l
                .split_whitespace()
                .map(|x| x.parse().expect("int"))
                .collect();
            [n[0], n[1], n[2]]
        })
        .collect();
    assert_eq!(
        v,
        parts.iter().map(|p| p.mesh.vertex_count()).sum::<usize>()
    );
    assert!(f.iter().flatten().all(|&i| i >= 1 && i <= v));
    let mtl = std::fs::read_to_string(dir.path().join("m.mtl")).expect("mtl");
    assert!(
        mtl.contains("newmtl aorta") && mtl.contains("Kd 0.1176 0.3529 1.0000"),
        "{mtl}"
    );

    let ply = dir.path().join("m.ply");
    export(&parts, &ply, ExportFormat::Ply, &opts()).expect("ply");
    let bytes = std::fs::read(&ply).expect("read");
    let end = bytes
        .windows(11)
        .position(|w| w == b"end_header\n")
        .expect("header")
        + 11;
    let header = std::str::from_utf8(&bytes[..end]).expect("ascii header");
    let nv: usize = header
        .lines()
        .find_map(|l| l.strip_prefix("element vertex "))
        .expect("nv")
        .parse()
        .expect("int");
    let nf: usize = header
        .lines()
        .find_map(|l| l.strip_prefix("element face "))
        .expect("nf")
        .parse()
        .expect("int");
    assert!(header.contains("frame LPS"));
    assert_eq!(bytes.len(), end + nv * 15 + nf * 13);
    // First vertex belongs to part 0 (white), last to part 2 (pink).
    assert_eq!(&bytes[end + 12..end + 15], &[255, 255, 255]);
    let last = end + (nv - 1) * 15;
    assert_eq!(&bytes[last + 12..last + 15], &[255, 105, 180]);
    no_temp_files(dir.path());
}

#[test]
fn unknown_extension_and_empty_parts_are_refused() {
    assert_eq!(
        ExportFormat::from_path(Path::new("x.STL")),
        Some(ExportFormat::StlBinary)
    );
    assert_eq!(
        ExportFormat::from_path(Path::new("x.3mf")),
        Some(ExportFormat::ThreeMf)
    );
    assert_eq!(ExportFormat::from_path(Path::new("x.vtk")), None);
    let dir = tempfile::tempdir().expect("tmp");
    let empty = ExportPart {
        name: "nothing".into(),
        label: None,
        mesh: TriMesh::default(),
        profile: PrintProfile::clinical_default("x", Rgba::rgb(0, 0, 0)),
    };
    let err = export(
        &[empty],
        &dir.path().join("e.stl"),
        ExportFormat::StlBinary,
        &opts(),
    )
    .expect_err("empty");
    assert!(matches!(err, ExportError::Empty { .. }));
}
