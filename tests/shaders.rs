//! Every WGSL file under `shaders/` parses and validates with naga, so a shader error fails
//! `cargo test` on any machine (no GPU needed) instead of at pipeline creation.

use std::path::{Path, PathBuf};

fn wgsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            wgsl_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            out.push(path);
        }
    }
}

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    wgsl_files(&dir, &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("raycast.wgsl")),
        "shaders/raycast.wgsl not found in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("shader is UTF-8");
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(e.emit_to_string_with_path(&source, &file.display().to_string()));
                continue;
            }
        };
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        if let Err(e) = validator.validate(&module) {
            failures.push(e.emit_to_string_with_path(&source, &file.display().to_string()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} shaders failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The raycaster's uniform structs keep the sizes the Rust side writes (`RaycastUniforms`,
/// `BrickUniforms` in src/render/raycast.rs assert the same numbers), and the bricked MIP/MinIP
/// footprint entry point is there beside the main one.
#[test]
fn raycast_uniforms_match_the_rust_layout_and_both_fragment_entry_points_exist() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/raycast.wgsl");
    let source = std::fs::read_to_string(&path).expect("raycast.wgsl is UTF-8");
    let module = naga::front::wgsl::parse_str(&source).expect("raycast.wgsl parses");
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).expect("layout");
    let size_of = |name: &str| {
        module
            .types
            .iter()
            .find(|(_, ty)| ty.name.as_deref() == Some(name))
            .map(|(handle, _)| layouter[handle].size)
            .unwrap_or_else(|| panic!("struct {name} not in raycast.wgsl"))
    };
    assert_eq!(size_of("Uniforms"), 5 * 64 + 11 * 16);
    assert_eq!(size_of("Brick"), 5 * 16);
    let entry_points: Vec<&str> = module
        .entry_points
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    for wanted in ["vs_main", "fs_main", "fs_footprint"] {
        assert!(
            entry_points.contains(&wanted),
            "{wanted} missing: {entry_points:?}"
        );
    }
}
