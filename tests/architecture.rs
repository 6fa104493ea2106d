//! Enforces the layer rules of README's Architecture section (ARCHITECTURE.md D3):
//! which module may import which crate-internal module and which external crates.
//! Each failure names the file, the line and the rule it breaks.

use std::path::{Path, PathBuf};

/// Layer of each top-level module; a module may use only modules of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("volume", 0),
    ("jobs", 0),
    ("io", 1),
    ("preprocess", 1),
    ("inference", 1),
    ("editing", 1),
    ("meshing", 1),
    ("export", 1),
    ("measure", 1),
    ("segmentation", 2),
    ("registration", 2),
    ("planning", 2),
    ("sample", 2),
    ("document", 3),
    ("render", 4),
    ("ui", 5),
    ("app", 6),
    ("cli", 6),
    ("main", 6),
    ("lib", 6),
];

/// Modules that are stricter than "any lower layer".
const ONLY_MAY_USE: &[(&str, &[&str])] = &[
    ("render", &["volume"]),
    ("ui", &["document", "render", "jobs", "volume"]),
    ("measure", &["volume"]),
];

/// External paths and the modules (or files) allowed to use them.
const EXTERNAL: &[(&str, &[&str])] = &[
    ("egui::", &["ui", "app", "main", "render/egui_bridge.rs"]),
    ("eframe::", &["ui", "app", "main"]),
    ("egui_wgpu::", &["app", "render/egui_bridge.rs"]),
    ("wgpu::", &["render", "app", "main"]),
    ("ort::", &["inference"]),
    ("ort_tract::", &["inference"]),
    ("tract_linalg::", &["inference"]),
    ("std::fs", &["io", "export", "inference", "render", "cli"]),
    ("thread::spawn", &["jobs"]),
    ("thread::Builder", &["jobs"]),
    ("thread::scope", &["jobs"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/io/dicom/scan.rs` → ("io", "io/dicom/scan.rs").
fn module_of(src: &Path, file: &Path) -> (String, String) {
    let rel = file
        .strip_prefix(src)
        .expect("file under src")
        .to_string_lossy()
        .replace('\\', "/");
    let first = rel.split('/').next().unwrap_or_default();
    let module = first.trim_end_matches(".rs").to_string();
    (module, rel)
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn allowed(rule_list: &[&str], module: &str, rel: &str) -> bool {
    rule_list.iter().any(|a| {
        if a.ends_with(".rs") {
            *a == rel
        } else {
            *a == module
        }
    })
}

/// Code only: drops `//` comments (doc comments included) so prose may name other modules.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(n, line)| {
        let code = match line.find("//") {
            Some(pos) => &line[..pos],
            None => line,
        };
        (!code.trim().is_empty()).then_some((n + 1, code))
    })
}

#[test]
fn modules_respect_the_layer_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 5,
        "found only {} source files under {}",
        files.len(),
        src.display()
    );

    let mut violations = Vec::new();
    for file in &files {
        let (module, rel) = module_of(&src, file);
        let Some(my_layer) = layer(&module) else {
            violations.push(format!(
                "{rel}: module `{module}` has no layer; add it to LAYERS and the README"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("source is UTF-8");
        for (line_no, code) in code_lines(&text) {
            for (pattern, allowed_in) in EXTERNAL {
                let hit = code.match_indices(pattern).any(|(pos, _)| {
                    // `egui::` must not match `egui_wgpu::`'s tail or `my_egui::`.
                    pos == 0 || !code[..pos].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if hit && !allowed(allowed_in, &module, &rel) {
                    violations.push(format!(
                        "{rel}:{line_no}: `{pattern}` is only for {allowed_in:?}"
                    ));
                }
            }
            for (pos, _) in code.match_indices("crate::") {
                let rest = &code[pos + "crate::".len()..];
                let target: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if target.is_empty() || target == module {
                    continue;
                }
                let Some(target_layer) = layer(&target) else {
                    continue;
                };
                if target_layer >= my_layer
                    && !matches!(module.as_str(), "app" | "cli" | "main" | "lib")
                {
                    violations.push(format!(
                        "{rel}:{line_no}: `{module}` (layer {my_layer}) may not use `{target}` (layer {target_layer})"
                    ));
                }
                if let Some((_, only)) = ONLY_MAY_USE.iter().find(|(m, _)| *m == module) {
                    if !only.contains(&target.as_str()) {
                        violations.push(format!(
                            "{rel}:{line_no}: `{module}` may use only {only:?}, not `{target}`"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer rule violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_catches_a_violation() {
    // Guard against a checker that silently passes everything.
    let sample =
        "use crate::ui::Panel;\nlet d = std::fs::read(p); // std::fs in a comment is fine\n";
    let lines: Vec<_> = code_lines(sample).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].1.contains("std::fs") && !lines[1].1.contains("comment"));
    assert_eq!(layer("volume"), Some(0));
    assert!(!allowed(&["io", "export"], "volume", "volume/mod.rs"));
    assert!(allowed(
        &["render/egui_bridge.rs"],
        "render",
        "render/egui_bridge.rs"
    ));
}
