//! The built `fuseprint` binary on real and bad data: exit codes, tables, one-line errors.

mod common;
use common::shared_data;

use std::path::Path;
use std::process::{Command, Output};

fn fuseprint(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fuseprint"))
        .args(args)
        .output()
        .expect("run fuseprint")
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    fuseprint(&args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Fails with exactly one `error: …` line on stderr that names `file`.
fn assert_one_line_error(out: &Output, file: &str) {
    assert!(!out.status.success(), "should fail: {}", text(&out.stdout));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(file), "{err} should name {file}");
}

#[test]
fn info_lists_series_and_skipped_files() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("dicom/dcm_qa_ct_GE_gantry_tilt_head");
    let out = run(&[Path::new("info"), &dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("512x512x"), "{s}");
    assert!(s.contains("gantry tilt"), "{s}");
    assert!(s.contains("skipped 5 files"), "{s}");
    let out = run(&[Path::new("info"), Path::new("--json"), &dir]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["series"][0]["slice_count"], 28);
    assert!(json["series"][0]["world_from_voxel"][2][3].is_number());

    let nii = data.join("totalsegmentator/example_ct_sm.nii.gz");
    let out = run(&[Path::new("info"), Path::new("--json"), &nii]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["series"][0]["dims"], serde_json::json!([122, 101, 30]));
    assert!(json["world_from_voxel"][0][3].is_number());
}

#[test]
fn convert_dicom_and_nifti_and_refuse_overwrite() {
    let Some(data) = shared_data() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let out_path = tmp.path().join("ct.nii.gz");
    let series = data.join("registration/mri_dir_porcine_phantom/mr_t2_dicom_block20");
    let out = run(&[Path::new("convert"), &series, &out_path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("512x512x20"));

    // Existing output: refused without --force, replaced with it.
    let again = run(&[Path::new("convert"), &series, &out_path]);
    assert_one_line_error(&again, "ct.nii.gz");
    assert!(text(&again.stderr).contains("--force"));
    let forced = run(&[
        Path::new("convert"),
        &series,
        &out_path,
        Path::new("--force"),
    ]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));

    // NIfTI in, NIfTI out; the result has the same table row.
    let copy = tmp.path().join("copy.nii");
    let out = run(&[Path::new("convert"), &out_path, &copy]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let a = run(&[Path::new("info"), Path::new("--json"), &out_path]);
    let b = run(&[Path::new("info"), Path::new("--json"), &copy]);
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&a.stdout).expect("json"),
        serde_json::from_slice(&b.stdout).expect("json"),
    );
    assert_eq!(a["series"][0]["dims"], b["series"][0]["dims"]);
    assert_eq!(a["world_from_voxel"], b["world_from_voxel"]);
}

#[test]
fn several_series_pick_the_primary_with_a_note_or_follow_series() {
    let Some(data) = shared_data() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = data.join("dicom/pydicom-testfiles");
    let out = run(&[Path::new("convert"), &dir, &tmp.path().join("auto.nii.gz")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("note:") && err.contains("--series"), "{err}");

    let out = run(&[
        Path::new("convert"),
        &dir,
        &tmp.path().join("one.nii.gz"),
        Path::new("--series"),
        Path::new("1"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("10x10x15"),
        "{}",
        text(&out.stdout)
    );

    let out = run(&[
        Path::new("convert"),
        &dir,
        &tmp.path().join("none.nii.gz"),
        Path::new("--series"),
        Path::new("1.2.3.nope"),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("1.2.3.nope"));
}

#[test]
fn bad_input_gives_one_line_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("missing.nii.gz");
    assert_one_line_error(&run(&[Path::new("info"), &missing]), "missing.nii.gz");

    let garbage = tmp.path().join("notes.txt");
    std::fs::write(&garbage, "hello, not an image").expect("write");
    assert_one_line_error(&run(&[Path::new("info"), &garbage]), "notes.txt");

    // A NIfTI whose header claims far more voxels than the file holds.
    let mut lie = vec![0u8; 352 + 16];
    lie[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (n, d) in [3i16, 400, 400, 400, 1, 1, 1, 1].iter().enumerate() {
        lie[40 + 2 * n..42 + 2 * n].copy_from_slice(&d.to_le_bytes());
    }
    lie[70..72].copy_from_slice(&4i16.to_le_bytes());
    for n in 0..4 {
        lie[76 + 4 * n..80 + 4 * n].copy_from_slice(&1f32.to_le_bytes());
    }
    lie[108..112].copy_from_slice(&352f32.to_le_bytes());
    lie[344..348].copy_from_slice(b"n+1\0");
    let lying = tmp.path().join("lying.nii");
    std::fs::write(&lying, &lie).expect("write");
    let out = run(&[Path::new("convert"), &lying, &tmp.path().join("x.nii.gz")]);
    assert_one_line_error(&out, "lying.nii");
    assert!(
        text(&out.stderr).contains("128000352"),
        "{}",
        text(&out.stderr)
    );

    let empty = tmp.path().join("empty_folder");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_one_line_error(&run(&[Path::new("info"), &empty]), "empty_folder");

    let out = run(&[Path::new("convert"), &lying, &tmp.path().join("x.png")]);
    assert_one_line_error(&out, "x.png");
}

#[test]
fn report_from_the_cli_draws_its_3d_pictures_like_the_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let html = dir.path().join("report.html");
    let out = run(&[
        Path::new("report"),
        Path::new("--sample"),
        Path::new("-o"),
        &html,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let page = std::fs::read_to_string(&html).expect("report written");
    let pictures = page.matches("data:image/png;base64,").count();
    if said.contains("3D drawn on the GPU") {
        // Three fused slices, the model from the mesh viewer and the volume from the raycaster.
        assert_eq!(pictures, 5, "{said}");
        assert!(page.contains("GPU mesh viewer on") && page.contains("GPU raycaster on"));
    } else {
        assert!(
            std::env::var_os("FUSEPRINT_REQUIRE_GPU").is_none(),
            "FUSEPRINT_REQUIRE_GPU is set but: {said}"
        );
        assert!(said.contains("3D drawn on the CPU: "), "{said}");
        assert_eq!(pictures, 4, "three slices and the CPU model: {said}");
    }
    assert!(
        said.contains(&format!("({pictures} pictures,")),
        "the summary counts what was written: {said}"
    );
}

/// `bench mesh --peers` runs the peer script with the given interpreter on the phantom it
/// wrote, then sets the peer's figures beside ours. A stand-in interpreter prints what
/// `scripts/bench_mesh_peers.py` prints (CI has no VTK), after checking it was handed the
/// script and a folder holding the phantom.
#[cfg(unix)]
#[test]
fn bench_mesh_peers_sets_vtk_figures_beside_ours() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("fake-python");
    std::fs::write(
        &fake,
        "#!/bin/sh\n\
         case \"$1\" in *bench_mesh_peers.py) ;; *) echo \"not the peer script: $1\" >&2; exit 3;; esac\n\
         test -s \"$2/labels.nii\" && test -s \"$2/ct.nii\" || { echo \"no phantom in $2\" >&2; exit 4; }\n\
         echo 'VTK 9.7.2, SMP backend Sequential (1 threads), 64×64×48 phantom, best of 2'\n\
         echo 'VTK flying edges @200 HU: 0.500 s (1 M voxels/s), 100 faces'\n\
         echo 'VTK surface nets, 9 labels: 0.800 s, 10 vertices, 10 quads'\n\
         echo 'VTK 9 labels: surface nets + windowed sinc + quadric clustering 100 → 50 + STL write: 2.000 s (runs: 2.000, 4.000); 0 boundary edges, 0 non-manifold edges'\n",
    )
    .expect("write stand-in");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = bench_mesh_with_peer([64, 64, 48], 4000, 2, &fake);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let line = stdout
        .lines()
        .find(|l| l.contains("9 labels to the face budget"))
        .unwrap_or_else(|| panic!("no comparison line in {stdout}"));
    // VTK's best of (2.0, 4.0) is 2.0 s, its median (upper of two) 4.0 s; ours are this run's.
    assert!(line.contains("best 2.000 s, median 4.000 s"), "{line}");
    assert!(
        stdout.contains("surface nets, 9 labels: VTK 0.800 s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("isosurface @200 HU: VTK flying edges 0.500 s"),
        "{stdout}"
    );

    // A peer that fails is an error naming the interpreter, not a silent figure.
    let failing = dir.path().join("failing-python");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'ModuleNotFoundError: vtk' >&2\nexit 1\n",
    )
    .expect("write failing stand-in");
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = bench_mesh_with_peer([32, 32, 24], 2000, 1, &failing);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("failing-python") && err.contains("ModuleNotFoundError: vtk"),
        "{err}"
    );
}

/// `fuseprint bench mesh --peers` on a small phantom, with `python` as the peer's interpreter.
#[cfg(unix)]
fn bench_mesh_with_peer(dims: [usize; 3], faces: usize, repeat: usize, python: &Path) -> Output {
    let [x, y, z] = dims.map(|d| d.to_string());
    let (faces, repeat) = (faces.to_string(), repeat.to_string());
    let args: [&std::ffi::OsStr; 13] = [
        "bench".as_ref(),
        "mesh".as_ref(),
        "--dims".as_ref(),
        x.as_ref(),
        y.as_ref(),
        z.as_ref(),
        "--faces".as_ref(),
        faces.as_ref(),
        "--repeat".as_ref(),
        repeat.as_ref(),
        "--peers".as_ref(),
        "--python".as_ref(),
        python.as_os_str(),
    ];
    fuseprint(&args)
}
