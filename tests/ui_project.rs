//! The window's File menu, driven headless through egui_kittest (wgpu on lavapipe): save a
//! project and open it in a fresh app, autosave and crash recovery, the question before
//! replacing an existing project, the planning report and a view screenshot. File dialogs
//! are answered in advance (`App::script_file_dialog`), so no system dialog opens.

mod ui_harness;
use egui::Vec2;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use fuseprint::app::{App, AppOptions, Start};
use fuseprint::document::Command;
use std::path::Path;
use std::time::{Duration, Instant};

const WINDOW: Vec2 = Vec2::new(1100.0, 720.0);

/// Per-test folders: recovery root and recent-files list never touch the user's own.
fn options(dir: &Path, start: Start) -> AppOptions {
    AppOptions {
        start,
        recovery_root: Some(dir.join("recovery")),
        recent_file: Some(dir.join("config/recent.json")),
        autosave_idle: Duration::from_secs(3600),
        backend: None,
    }
}

fn harness(options: AppOptions) -> Harness<'static, App> {
    Harness::builder()
        .with_size(WINDOW)
        .wgpu()
        .build_eframe(move |cc| App::with_options(cc, options, Instant::now()))
}

/// Steps the UI until `done` holds: jobs finish on worker threads and wake the UI.
/// The step cap only guards against a hang; it is not a speed requirement.
fn step_until(h: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    ui_harness::step_until_settled(h, what, 2, done);
}

fn sample_loaded(options: AppOptions) -> Harness<'static, App> {
    let mut h = harness(options);
    step_until(&mut h, "the sample study loaded", |app| {
        app.document().volumes.len() == 2 && !app.is_busy()
    });
    h
}

/// Steps until a widget labelled `label` is shown (a dialog opens a frame or two after the
/// click that asked for it).
fn wait_for_label(h: &mut Harness<'static, App>, label: &str) {
    for _ in 0..200 {
        if h.query_by_label(label).is_some() {
            return;
        }
        h.step();
    }
    panic!("{label:?} never appeared");
}

/// File ▸ `item` (▸ `sub_item`), as a user clicks it.
fn file_menu(h: &mut Harness<'static, App>, item: &str, sub_item: Option<&str>) {
    h.get_by_label("File").click();
    wait_for_label(h, item);
    h.get_by_label(item).click();
    h.run_steps(2);
    if let Some(sub) = sub_item {
        wait_for_label(h, sub);
        h.get_by_label(sub).click();
        h.run_steps(2);
    }
}

/// Bone on the sample CT into a label map, and an accepted (nudged) MR → CT transform.
fn segment_and_register(h: &mut Harness<'static, App>) {
    h.state_mut().apply(Command::ApplyThreshold {
        low: 200.0,
        high: 3000.0,
    });
    step_until(h, "the threshold applied", |app| {
        !app.is_busy() && app.document().labels.is_some()
    });
    let app = h.state_mut();
    app.apply(Command::BeginRegistration {
        fixed: 0,
        moving: 1,
    });
    app.apply(Command::NudgeRegistration {
        translate_mm: [3.0, -2.0, 1.5],
        rotate_deg: [0.0, 0.0, 4.0],
    });
    app.apply(Command::AcceptRegistration);
    h.run_steps(2);
    assert_eq!(h.state().document().transforms.len(), 1);
}

fn labelled_voxels(app: &App) -> usize {
    app.document()
        .labels
        .as_ref()
        .map(|l| l.map.volume.data().iter().filter(|v| **v != 0).count())
        .unwrap_or(0)
}

#[test]
fn a_project_saved_from_the_window_opens_in_a_fresh_app_with_the_same_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = sample_loaded(options(dir.path(), Start::Sample));
    segment_and_register(&mut h);
    assert!(h.state().is_modified());
    h.state_mut().script_file_dialog(dir.path().join("plan"));
    file_menu(&mut h, "Save project as…", None);
    step_until(&mut h, "the project saved", |app| {
        !app.is_busy() && app.project_path().is_some()
    });
    let folder = dir.path().join("plan.fuseprint");
    assert_eq!(h.state().project_path(), Some(folder.as_path()));
    assert!(!h.state().is_modified(), "saved: no unsaved-changes marker");
    h.get_by_label("plan");
    let recent_list = dir.path().join("config/recent.json");
    step_until(&mut h, "the recent list written", |_| recent_list.is_file());

    let mut fresh = harness(options(dir.path(), Start::Nothing));
    step_until(&mut fresh, "the recent list read", |app| {
        !app.is_busy() && app.recent_files().contains(&folder)
    });
    fresh.state_mut().script_file_dialog(folder.clone());
    file_menu(&mut fresh, "Open project…", None);
    step_until(&mut fresh, "the project opened", |app| {
        !app.is_busy() && app.document().volumes.len() == 2
    });

    let (a, b) = (h.state().document(), fresh.state().document());
    for (va, vb) in a.volumes.iter().zip(&b.volumes) {
        let (ga, gb) = (va.image.volume.geometry(), vb.image.volume.geometry());
        assert_eq!(ga.dims, gb.dims);
        assert_eq!(ga.spacing_mm, gb.spacing_mm);
        assert_eq!(va.image.volume.data(), vb.image.volume.data());
        assert_eq!(va.image.meta.modality, vb.image.meta.modality);
        assert_eq!(va.window, vb.window);
    }
    let (la, lb) = (
        a.labels.as_ref().expect("labels saved"),
        b.labels.as_ref().expect("labels opened"),
    );
    assert!(labelled_voxels(h.state()) > 0);
    assert_eq!(la.map.volume.data(), lb.map.volume.data());
    assert_eq!(
        la.map.table.iter().map(|l| &l.name).collect::<Vec<_>>(),
        lb.map.table.iter().map(|l| &l.name).collect::<Vec<_>>()
    );
    assert_eq!(
        b.label_reference().map(|(i, _)| i),
        a.label_reference().map(|(i, _)| i)
    );
    assert_eq!(b.transforms.len(), 1);
    let (ta, tb) = (&a.transforms[0], &b.transforms[0]);
    assert_eq!(ta.moving_from_fixed, tb.moving_from_fixed);
    assert_eq!(b.volumes[1].moving_from_fixed, Some(ta.moving_from_fixed));
    assert_eq!(fresh.state().project_path(), Some(folder.as_path()));
    assert!(!fresh.state().is_modified());
}

#[test]
fn autosave_leaves_a_recoverable_session_that_the_prompt_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path(), Start::Sample);
    opts.autosave_idle = Duration::ZERO;
    let mut h = sample_loaded(opts);
    segment_and_register(&mut h);
    step_until(&mut h, "the autosave caught up", |app| {
        app.autosave_is_current()
    });
    let session_dir = h.state().recovery_dir().expect("autosave on").to_path_buf();
    assert!(session_dir
        .join("autosave.fuseprint")
        .join("project.json")
        .is_file());
    let voxels = labelled_voxels(h.state());
    let transform = h.state().document().transforms[0].moving_from_fixed;

    // A crash: the app never exits cleanly and its process is gone.
    std::mem::forget(h);
    fuseprint::io::project::write_session_marker(
        &session_dir,
        &fuseprint::io::project::SessionMarker {
            pid: u32::MAX - 1,
            started_unix_s: 1,
            project: None,
        },
    )
    .expect("marker rewritten");

    let mut next = harness(options(dir.path(), Start::Nothing));
    step_until(&mut next, "recovery offered", |app| {
        app.recoverable().len() == 1
    });
    wait_for_label(&mut next, "Recover");
    next.get_by_label("Recover").click();
    step_until(&mut next, "the session recovered", |app| {
        !app.is_busy() && app.document().volumes.len() == 2
    });
    assert_eq!(labelled_voxels(next.state()), voxels);
    assert_eq!(
        next.state().document().transforms[0].moving_from_fixed,
        transform
    );
    assert!(
        next.state().is_modified(),
        "recovered work is not saved yet"
    );
    assert!(!session_dir.exists(), "the recovered autosave is removed");

    // A clean exit removes this session's own recovery folder.
    let own = next
        .state()
        .recovery_dir()
        .expect("autosave on")
        .to_path_buf();
    assert!(own.is_dir());
    drop(next);
    assert!(!own.exists());
}

#[test]
fn save_as_over_an_existing_project_asks_before_replacing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = sample_loaded(options(dir.path(), Start::Sample));
    let first = dir.path().join("first.fuseprint");
    let second = dir.path().join("second.fuseprint");
    for target in [&first, &second] {
        h.state_mut().script_file_dialog(target.clone());
        file_menu(&mut h, "Save project as…", None);
        step_until(&mut h, "saved", |app| {
            !app.is_busy() && app.project_path() == Some(target.as_path())
        });
    }
    let manifest = first.join("project.json");
    let before = std::fs::read(&manifest).expect("first project saved");

    h.state_mut().script_file_dialog(first.clone());
    file_menu(&mut h, "Save project as…", None);
    wait_for_label(&mut h, "Replace");
    h.get_by_label("Cancel").click();
    h.run_steps(3);
    assert!(h.query_by_label("Replace").is_none(), "question closed");
    assert!(!h.state().is_busy(), "nothing is written after Cancel");
    assert_eq!(h.state().project_path(), Some(second.as_path()));
    assert_eq!(std::fs::read(&manifest).expect("still there"), before);

    h.state_mut().apply(Command::SetOverlayOpacity(0.8));
    h.state_mut().script_file_dialog(first.clone());
    file_menu(&mut h, "Save project as…", None);
    wait_for_label(&mut h, "Replace");
    h.get_by_label("Replace").click();
    step_until(&mut h, "replaced", |app| {
        !app.is_busy() && app.project_path() == Some(first.as_path())
    });
    assert!(manifest.is_file());
}

#[test]
fn the_report_and_screenshot_menus_write_the_html_with_pictures_and_a_png() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = sample_loaded(options(dir.path(), Start::Sample));
    segment_and_register(&mut h);
    h.state_mut().apply(Command::BuildMeshes);
    step_until(&mut h, "meshes built", |app| {
        !app.is_busy() && !app.document().meshes.is_empty()
    });

    let report = dir.path().join("report.html");
    h.state_mut().script_file_dialog(report.clone());
    file_menu(&mut h, "Planning report…", None);
    step_until(&mut h, "the report written", |app| {
        !app.is_busy() && report.is_file()
    });
    let html = std::fs::read_to_string(&report).expect("report readable");
    let pictures = html.matches("data:image/png;base64,").count();
    // Axial, coronal and sagittal slices through the cursor, and the model; with a GPU
    // adapter (lavapipe counts) the model comes from the mesh viewer and the CT's 3D picture
    // from the raycaster, and the captions say so.
    if html.contains("GPU mesh viewer on") {
        assert_eq!(pictures, 5, "pictures in the report");
        assert!(html.contains("GPU raycaster on"));
    } else {
        assert_eq!(pictures, 4, "pictures in the report");
        assert!(html.contains("drawn on the CPU"));
    }
    for mesh in &h.state().document().meshes {
        assert!(html.contains(&mesh.name), "report names part {}", mesh.name);
    }

    let png = dir.path().join("axial.png");
    h.state_mut().script_file_dialog(png.clone());
    file_menu(&mut h, "Screenshot", Some("Axial view…"));
    step_until(&mut h, "the screenshot written", |app| {
        !app.is_busy() && png.is_file()
    });
    let image = image::open(&png).expect("a PNG").to_rgba8();
    let rect = h.get_by_label("Axial view").rect();
    let ppp = h.ctx.pixels_per_point();
    assert!((image.width() as f32 - rect.width() * ppp).abs() <= 2.0);
    assert!((image.height() as f32 - rect.height() * ppp).abs() <= 2.0);
    let distinct: std::collections::HashSet<[u8; 4]> = image.pixels().map(|p| p.0).collect();
    assert!(
        distinct.len() > 50,
        "the slice is in the picture, not a flat fill"
    );
}
