//! The desktop window, driven headless through egui_kittest (wgpu on lavapipe): the three
//! linked views, slice scrolling, window presets, clicking a view, loading a real NIfTI
//! through the same job path as the file dialog, and snapshots of the views.

mod common;
mod ui_harness;
use common::shared_data;
use ui_harness::{step_until, wait_for_sample};

use egui::{Event, Modifiers, PointerButton, Pos2, Vec2};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use fuseprint::app::App;
use fuseprint::document::{Command, ViewAxis, CT_PRESETS};
use fuseprint::inference::BackendRequest;

const WINDOW: Vec2 = Vec2::new(1100.0, 720.0);
/// The sample CT is 160 voxels of 1.2 mm across, centred on the world origin.
const SAMPLE_CT_FOV_MM: f32 = 160.0 * 1.2;

/// A file dropped on the window, as the platform layer reports it.
#[derive(Debug)]
struct DroppedPath(std::path::PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        Err("the app opens dropped files by path".to_string())
    }
}

fn harness() -> Harness<'static, App> {
    Harness::builder()
        .with_size(WINDOW)
        .wgpu()
        .build_eframe(|cc| App::with_backend(cc, BackendRequest::Tract))
}

/// The window with the bundled sample study loaded.
fn sample_loaded() -> Harness<'static, App> {
    let mut h = harness();
    wait_for_sample(&mut h);
    h
}

fn view_rect(h: &Harness<'static, App>, axis: ViewAxis) -> egui::Rect {
    h.get_by_label(&format!("{} view", axis.name())).rect()
}

fn click_at(h: &mut Harness<'static, App>, pos: Pos2) {
    h.hover_at(pos);
    h.step();
    h.event(Event::PointerButton {
        pos,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    h.event(Event::PointerButton {
        pos,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run_steps(2);
}

#[test]
fn starts_on_the_sample_with_three_views_and_both_volumes() {
    let mut h = sample_loaded();
    for axis in ViewAxis::ALL {
        let rect = view_rect(&h, axis);
        assert!(
            rect.width() > 100.0 && rect.height() > 100.0,
            "{axis:?} view is {rect:?}"
        );
    }
    h.get_by_label("Sample CT (synthetic head phantom)");
    h.get_by_label("Sample MR T1 (synthetic, misaligned)");
    let doc = h.state().document();
    assert_eq!(doc.active, Some(0), "the CT is shown first");
    // The sample opens on its lesion.
    assert_eq!(doc.cursor_world, fuseprint::sample::LESION_CENTER_MM);
    h.remove_cursor();
    h.run_steps(2);
    h.snapshot("sample_ct_views");
}

#[test]
fn mouse_wheel_scrolls_one_ct_slice_in_the_hovered_view() {
    let mut h = sample_loaded();
    let before = h.state().document().cursor_world;
    let axial = view_rect(&h, ViewAxis::Axial);
    h.hover_at(axial.center());
    h.step();
    h.event(Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: Vec2::new(0.0, 1.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: Modifiers::NONE,
    });
    h.run_steps(2);
    let after = h.state().document().cursor_world;
    // One axial step is the CT's 1.2 mm slice spacing towards superior; x and y stay.
    assert!(
        (after[2] - before[2] - 1.2).abs() < 1e-9,
        "{before:?} -> {after:?}"
    );
    assert_eq!(&after[..2], &before[..2]);

    // Ctrl + wheel zooms that view instead of scrolling.
    h.event(Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: Vec2::new(0.0, 1.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: Modifiers::CTRL,
    });
    h.run_steps(2);
    let doc = h.state().document();
    assert_eq!(doc.cursor_world, after);
    assert!(doc.views[ViewAxis::Axial.index()].zoom > 1.0);
    assert_eq!(doc.views[ViewAxis::Coronal.index()].zoom, 1.0);

    // Arrow down steps back one slice, Page Down ten.
    h.key_press(egui::Key::ArrowDown);
    h.run_steps(2);
    assert!((h.state().document().cursor_world[2] - before[2]).abs() < 1e-9);
    h.key_press(egui::Key::PageDown);
    h.run_steps(2);
    assert!((h.state().document().cursor_world[2] - (before[2] - 12.0)).abs() < 1e-9);
}

#[test]
fn window_preset_buttons_set_the_active_volumes_window() {
    let mut h = sample_loaded();
    h.get_by_label("Bone").click();
    h.run_steps(2);
    assert_eq!(h.state().document().volumes[0].window, CT_PRESETS[2].window);
    h.get_by_label("Brain").click();
    h.run_steps(2);
    assert_eq!(h.state().document().volumes[0].window, CT_PRESETS[0].window);
    // The MR has no HU presets, only its percentile window.
    h.get_by_label("Sample MR T1 (synthetic, misaligned)")
        .click();
    h.run_steps(2);
    assert_eq!(h.state().document().active, Some(1));
    assert!(h.query_by_label("Bone").is_none());
    let mr = &h.state().document().volumes[1];
    assert_eq!(mr.window, mr.auto_window);
    assert!(mr.window.width > 0.0);
}

#[test]
fn clicking_a_view_moves_the_cursor_to_that_world_point() {
    let mut h = sample_loaded();
    let start = h.state().document().cursor_world;
    let axial = view_rect(&h, ViewAxis::Axial);
    // The CT's square field of view fits the view's smaller side, centred.
    let points_per_mm = axial.width().min(axial.height()) / SAMPLE_CT_FOV_MM;
    let offset = Vec2::new(40.0, -25.0);
    click_at(&mut h, axial.center() + offset);
    let cursor = h.state().document().cursor_world;
    let expected = [offset.x / points_per_mm, offset.y / points_per_mm];
    // Radiological axial: screen right is patient left (+x), screen down is posterior (+y).
    assert!(
        (cursor[0] - expected[0] as f64).abs() < 0.05,
        "{cursor:?} vs {expected:?}"
    );
    assert!(
        (cursor[1] - expected[1] as f64).abs() < 0.05,
        "{cursor:?} vs {expected:?}"
    );
    assert!(
        (cursor[2] - start[2]).abs() < 1e-9,
        "an axial click keeps the slice"
    );

    // Coronal: screen up is superior; the click keeps the coronal (y) position just set.
    let coronal = view_rect(&h, ViewAxis::Coronal);
    // Its field of view is 192 mm wide (x) and 120 × 1.2 = 144 mm high (z).
    let points_per_mm = (coronal.width() / SAMPLE_CT_FOV_MM).min(coronal.height() / 144.0);
    click_at(&mut h, coronal.center() + Vec2::new(0.0, -30.0));
    let after = h.state().document().cursor_world;
    assert!(
        (after[2] - (30.0 / points_per_mm) as f64).abs() < 0.05,
        "{after:?}"
    );
    assert!((after[1] - cursor[1]).abs() < 1e-9);
}

#[test]
fn opens_a_real_nifti_through_the_load_job() {
    let Some(data) = shared_data() else { return };
    let path = data.join("totalsegmentator/example_ct_sm.nii.gz");
    let mut h = sample_loaded();
    // Dropped on the window: the same `LoadPath` command the file dialog and browser give.
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(DroppedPath(path)));
    h.step();
    assert!(h.state().is_loading());
    step_until(&mut h, "the NIfTI loaded", |app| !app.is_loading());
    let doc = h.state().document();
    assert_eq!(doc.message, None, "load failed");
    assert_eq!(doc.volumes.len(), 3);
    assert_eq!(doc.active, Some(2), "the opened image is shown");
    let ct = &doc.volumes[2];
    assert_eq!(ct.image.volume.dims(), [122, 101, 30]);
    assert!(ct.is_hounsfield());
    let description = ct.image.meta.description.clone();
    h.get_by_label(&description);
}

#[test]
fn a_multi_series_folder_shows_the_series_table_and_loads_the_pick() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ct_series(&dir.path().join("a"), 1, [24, 20, 6]);
    write_ct_series(&dir.path().join("b"), 2, [32, 28, 10]);
    let mut h = sample_loaded();
    h.state_mut()
        .apply(Command::LoadPath(dir.path().to_path_buf()));
    step_until(&mut h, "the folder scanned", |app| !app.is_loading());
    let rows = h
        .state()
        .document()
        .series_choice
        .as_ref()
        .map(|c| c.rows.len());
    assert_eq!(rows, Some(2), "message: {:?}", h.state().document().message);
    h.get_by_label("Choose a series");
    h.get_by_label("Open (suggested)").click();
    h.run_steps(2);
    step_until(&mut h, "the series loaded", |app| !app.is_loading());
    let doc = h.state().document();
    assert!(doc.series_choice.is_none());
    assert_eq!(doc.volumes.len(), 3, "message: {:?}", doc.message);
    // The suggested series is the larger one.
    assert_eq!(doc.volumes[2].image.volume.dims(), [32, 28, 10]);
}

/// A uniform CT series (0 HU) with its own SeriesInstanceUID.
fn write_ct_series(dir: &std::path::Path, number: i32, dims: [usize; 3]) {
    use fuseprint::io::dicom::synthetic::{write_series, SyntheticSeries, SyntheticSlice};
    let series = SyntheticSeries {
        series_uid: format!("1.2.826.0.1.3680043.8.498.77.{number}"),
        series_number: number,
        modality: "CT".to_string(),
        description: format!("uniform CT {number}"),
        rows: dims[1] as u16,
        cols: dims[0] as u16,
        pixel_spacing: [1.0, 1.0],
        rescale_slope: 1.0,
        rescale_intercept: -1024.0,
        image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()],
    };
    let slice = |k: usize| SyntheticSlice {
        position: [0.0, 0.0, 2.0 * k as f64],
        orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        stored: vec![1024; dims[0] * dims[1]],
        instance_number: k as i32 + 1,
    };
    write_series(dir, &series, dims[2], slice, |k| {
        format!("s{number}_{k:03}")
    })
    .expect("synthetic series written");
}

#[test]
fn a_running_load_shows_progress_and_can_be_cancelled() {
    let mut h = harness();
    // The sample takes a few hundred milliseconds to generate: it is still running here.
    h.step();
    assert!(h.state().is_loading());
    h.get_by_label("Building the sample study");
    h.get_by_label("Cancel").click();
    h.step();
    step_until(&mut h, "the load ended", |app| !app.is_loading());
    let doc = h.state().document();
    assert!(doc.volumes.is_empty());
    let message = doc.message.clone().unwrap_or_default();
    assert!(message.contains("cancelled"), "{message}");
    assert!(
        h.query_by_label("Cancel").is_none(),
        "the progress bar is gone"
    );
}

#[test]
fn the_mr_can_be_overlaid_on_the_ct() {
    let mut h = sample_loaded();
    h.get_by_label("blended");
    h.state_mut().apply(Command::SetOverlay(Some(1)));
    h.run_steps(2);
    let doc = h.state().document();
    let (overlay, opacity) = doc.visible_overlay().expect("overlay visible");
    assert_eq!(overlay.id, doc.volumes[1].id);
    assert!(opacity > 0.0);
    assert!(
        h.query_all_by_label("Opacity").next().is_some(),
        "opacity slider shown"
    );
    h.remove_cursor();
    h.run_steps(2);
    // The misaligned MR's lesion and vessel sit beside the CT's: the picture registration fixes.
    h.snapshot("sample_ct_with_mr_overlay");
}

#[test]
fn shift_drag_changes_window_and_level_and_right_drag_zooms() {
    let mut h = sample_loaded();
    let before = h.state().document().volumes[0].window;
    let sagittal = view_rect(&h, ViewAxis::Sagittal);
    let start = sagittal.center();
    let end = start + Vec2::new(60.0, -40.0);
    drag(&mut h, start, end, PointerButton::Primary, Modifiers::SHIFT);
    let doc = h.state().document();
    let after = doc.volumes[0].window;
    // Right widens the window, up raises the level; the cursor does not move.
    assert!(after.width > before.width, "{before:?} -> {after:?}");
    assert!(after.center > before.center, "{before:?} -> {after:?}");
    assert_eq!(doc.cursor_world, fuseprint::sample::LESION_CENTER_MM);

    drag(
        &mut h,
        start,
        start + Vec2::new(0.0, -50.0),
        PointerButton::Secondary,
        Modifiers::NONE,
    );
    assert!(h.state().document().views[ViewAxis::Sagittal.index()].zoom > 1.0);
}

fn drag(
    h: &mut Harness<'static, App>,
    from: Pos2,
    to: Pos2,
    button: PointerButton,
    modifiers: Modifiers,
) {
    h.event(Event::ModifiersChanged(modifiers));
    h.hover_at(from);
    h.step();
    h.event(Event::PointerButton {
        pos: from,
        button,
        pressed: true,
        modifiers,
    });
    h.step();
    for t in [0.25, 0.5, 0.75, 1.0] {
        h.hover_at(from + (to - from) * t);
        h.step();
    }
    h.event(Event::PointerButton {
        pos: to,
        button,
        pressed: false,
        modifiers,
    });
    h.step();
    h.event(Event::ModifiersChanged(Modifiers::NONE));
    h.run_steps(2);
}

#[test]
fn the_built_in_file_browser_walks_folders_and_opens_a_series_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ct_series(&dir.path().join("series_a"), 3, [16, 12, 4]);
    let mut h = sample_loaded();
    // What "Browse…" (or a missing system dialog) asks for.
    h.state_mut()
        .apply(Command::BrowseFolder(Some(dir.path().to_path_buf())));
    h.run_steps(2);
    h.get_by_label("Open a file or folder");
    h.get_by_label("series_a/").click();
    h.run_steps(2);
    let folder = h
        .state()
        .document()
        .browser
        .as_ref()
        .map(|b| b.folder.clone());
    assert_eq!(folder, Some(dir.path().join("series_a")));
    h.get_by_label("Open this folder (DICOM)").click();
    h.run_steps(2);
    assert!(
        h.state().document().browser.is_none(),
        "the browser closes on open"
    );
    step_until(&mut h, "the series loaded", |app| !app.is_loading());
    let doc = h.state().document();
    assert_eq!(doc.volumes.len(), 3, "message: {:?}", doc.message);
    assert_eq!(doc.volumes[2].image.volume.dims(), [16, 12, 4]);
}

// --- The planning workflow (issue 9): layout, segment, edit, export, register, preprocess. ---

/// Steps until no workflow task runs (threshold, meshes, registration, …).
fn wait_for_tasks(h: &mut Harness<'static, App>, what: &str) {
    step_until(h, what, |app| !app.is_busy());
}

fn label_count(app: &App, value: u16) -> usize {
    app.document()
        .labels
        .as_ref()
        .map(|l| l.map.volume.data().iter().filter(|&&v| v == value).count())
        .unwrap_or(0)
}

fn open_tab(h: &mut Harness<'static, App>, title: &str) {
    h.get_by_label(title).click();
    h.run_steps(2);
}

/// Two clicks a few 1/30 s frames apart: within egui's double-click delay (0.3 s).
fn double_click_at(h: &mut Harness<'static, App>, pos: Pos2) {
    h.hover_at(pos);
    h.step();
    for _ in 0..2 {
        for pressed in [true, false] {
            h.event(Event::PointerButton {
                pos,
                button: PointerButton::Primary,
                pressed,
                modifiers: Modifiers::NONE,
            });
            h.step();
        }
    }
    h.run_steps(2);
}

#[test]
fn four_views_maximise_on_double_click_and_come_back_with_m() {
    let mut h = Harness::builder()
        .with_size(WINDOW)
        .with_step_dt(1.0 / 30.0)
        .wgpu()
        .build_eframe(|cc| App::with_backend(cc, BackendRequest::Tract));
    wait_for_sample(&mut h);
    let three_d = h.get_by_label("3D view").rect();
    assert!(
        three_d.width() > 100.0,
        "the 3D quadrant is shown: {three_d:?}"
    );
    let axial = view_rect(&h, ViewAxis::Axial);
    double_click_at(&mut h, axial.center());
    assert_eq!(
        h.state().document().layout,
        fuseprint::document::Layout::Single(fuseprint::document::ViewKind::Slice(ViewAxis::Axial))
    );
    assert!(h.query_by_label("Coronal view").is_none());
    let maximised = view_rect(&h, ViewAxis::Axial);
    assert!(
        maximised.width() > axial.width() * 1.8,
        "{axial:?} -> {maximised:?}"
    );
    h.hover_at(maximised.center());
    h.step();
    h.key_press(egui::Key::M);
    h.run_steps(2);
    assert_eq!(
        h.state().document().layout,
        fuseprint::document::Layout::FourUp
    );
    h.get_by_label("Coronal view");
}

#[test]
fn thresholding_bone_previews_live_then_labels_exactly_the_voxels_in_range() {
    let mut h = sample_loaded();
    open_tab(&mut h, "Segment");
    h.get_by_label("Bone").click();
    h.run_steps(2);
    let (low, high) = fuseprint::document::ThresholdPreset::Bone.range_hu();
    assert_eq!(h.state().document().threshold_preview, Some((low, high)));
    h.get_by_label("Apply threshold").click();
    h.run_steps(2);
    wait_for_tasks(&mut h, "the threshold job finished");
    let doc = h.state().document();
    assert_eq!(
        doc.message.as_deref().map(|m| m.contains("voxels changed")),
        Some(true),
        "{:?}",
        doc.message
    );
    assert_eq!(doc.threshold_preview, None, "applying ends the preview");
    let expected = doc.volumes[0]
        .image
        .volume
        .data()
        .iter()
        .filter(|&&v| v >= low && v <= high)
        .count();
    assert!(expected > 1000, "the sample has a skull");
    assert_eq!(label_count(h.state(), 1), expected);
    // One undoable gesture.
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(2);
    assert_eq!(label_count(h.state(), 1), 0);
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Y);
    h.run_steps(2);
    assert_eq!(label_count(h.state(), 1), expected);
    h.remove_cursor();
    h.run_steps(2);
    h.snapshot("sample_bone_labels");
}

#[test]
fn a_brush_stroke_paints_on_the_axial_slice_and_undo_redo_keys_revert_it() {
    let mut h = sample_loaded();
    h.key_press(egui::Key::B);
    h.run_steps(2);
    assert_eq!(
        h.state().document().tools.tool,
        fuseprint::document::Tool::Brush
    );
    let cursor = h.state().document().cursor_world;
    let axial = view_rect(&h, ViewAxis::Axial);
    drag(
        &mut h,
        axial.center() - Vec2::new(30.0, 0.0),
        axial.center() + Vec2::new(30.0, 0.0),
        PointerButton::Primary,
        Modifiers::NONE,
    );
    let doc = h.state().document();
    let layer = doc.labels.as_ref().expect("painting creates the label map");
    let painted: Vec<usize> = layer
        .map
        .volume
        .data()
        .iter()
        .enumerate()
        .filter(|(_, &v)| v == 1)
        .map(|(n, _)| n)
        .collect();
    // A 3 mm disk swept over 60 screen points (about 60 × 192/view mm) on one slice.
    assert!(painted.len() > 50, "painted {}", painted.len());
    let g = layer.map.geometry().clone();
    let slice_k = g.voxel_from_world_point(nalgebra::Point3::from(cursor))[2].round() as usize;
    assert!(
        painted.iter().all(|&n| g.index3(n)[2] == slice_k),
        "the stroke stays on the crosshair's axial slice"
    );
    assert_eq!(
        doc.cursor_world, cursor,
        "painting does not move the crosshair"
    );
    let before = painted.len();
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(2);
    assert_eq!(label_count(h.state(), 1), 0);
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, egui::Key::Z);
    h.run_steps(2);
    assert_eq!(label_count(h.state(), 1), before);
    // The eraser (E) removes what the brush painted along the same path.
    h.key_press(egui::Key::E);
    h.run_steps(2);
    drag(
        &mut h,
        axial.center() - Vec2::new(30.0, 0.0),
        axial.center() + Vec2::new(30.0, 0.0),
        PointerButton::Primary,
        Modifiers::NONE,
    );
    assert_eq!(label_count(h.state(), 1), 0);
}

#[test]
fn exporting_a_3mf_writes_every_visible_label_as_a_part() {
    let mut h = sample_loaded();
    h.state_mut().apply(Command::ApplyThreshold {
        low: 226.0,
        high: 3071.0,
    });
    wait_for_tasks(&mut h, "bone thresholded");
    // A second label painted as a ball, so the model has two parts in two colours.
    h.state_mut().apply(Command::AddLabel);
    h.state_mut().apply(Command::SetBrushRadius(8.0));
    let cursor = h.state().document().cursor_world;
    h.state_mut()
        .apply(Command::Edit(fuseprint::document::Edit::Stroke {
            axis: ViewAxis::Axial,
            points: vec![cursor],
            tool: fuseprint::document::Tool::Sphere,
        }));
    assert!(label_count(h.state(), 2) > 100);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.3mf");
    // What "Export…" sends once the file dialog returns a path.
    h.state_mut().apply(Command::ExportModel {
        path: path.clone(),
        format: fuseprint::document::ExportFormat::ThreeMf,
    });
    h.step();
    assert!(h.state().is_busy(), "export runs as a job");
    h.get_by_label("Stop");
    wait_for_tasks(&mut h, "the export finished");
    let doc = h.state().document();
    assert_eq!(doc.meshes.len(), 2, "message: {:?}", doc.message);
    let report = doc.accuracy.as_ref().expect("accuracy report");
    assert_eq!(report.parts.len(), 2);
    let file = std::fs::File::open(&path).expect("3MF written");
    let mut zip = zip::ZipArchive::new(file).expect("3MF is a zip");
    let mut model = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("3D/3dmodel.model").expect("model part"),
        &mut model,
    )
    .expect("UTF-8 XML");
    // One multi-part object on the bed (slicers keep the parts registered); each tissue is a
    // part with its own base material.
    let objects = model.matches("<object ").count();
    assert_eq!(objects, 1, "{objects} objects");
    let materials = model.matches("<base ").count();
    assert_eq!(materials, doc.meshes.len(), "one material per tissue");
    let triangles = model.matches("<triangle ").count();
    let expected: usize = doc.meshes.iter().map(|m| m.mesh.face_count()).sum();
    assert_eq!(triangles, expected);
    open_tab(&mut h, "Mesh & export");
    h.get_by_label("Accuracy");
}

#[test]
fn registration_can_be_nudged_checked_as_a_checkerboard_and_accepted() {
    let mut h = sample_loaded();
    open_tab(&mut h, "Register");
    h.get_by_label("Start registration").click();
    h.run_steps(2);
    let doc = h.state().document();
    let reg = doc
        .registration
        .as_ref()
        .expect("registration under review");
    assert_eq!((reg.fixed, reg.moving), (0, 1));
    assert_eq!(
        doc.overlay.map(|o| o.volume),
        Some(1),
        "the moving image is blended"
    );
    h.get_by_label("Checkerboard").click();
    h.run_steps(2);
    // Alt + drag in the axial view moves the moving image right on screen (patient left, +x).
    let axial = view_rect(&h, ViewAxis::Axial);
    let points_per_mm = axial.width().min(axial.height()) / SAMPLE_CT_FOV_MM;
    drag(
        &mut h,
        axial.center(),
        axial.center() + Vec2::new(40.0, 0.0),
        PointerButton::Primary,
        Modifiers::ALT,
    );
    let m = h
        .state()
        .document()
        .registration
        .as_ref()
        .expect("still reviewing")
        .moving_from_fixed;
    let moved_mm = 40.0 / points_per_mm as f64;
    // The fixed point now shows the moving point `moved_mm` to its right (−x).
    assert!((m[(0, 3)] + moved_mm).abs() < 0.05, "{m}");
    assert_eq!(
        h.state().document().cursor_world,
        fuseprint::sample::LESION_CENTER_MM
    );
    h.remove_cursor();
    h.run_steps(2);
    h.snapshot("sample_registration_checkerboard");
    h.get_by_label("Accept").click();
    h.run_steps(2);
    let doc = h.state().document();
    assert!(doc.registration.is_none());
    assert_eq!(doc.transforms.len(), 1);
    assert_eq!(doc.volumes[1].moving_from_fixed, Some(m));
}

#[test]
fn a_preprocessing_step_adds_a_new_volume_and_keeps_the_original() {
    let mut h = sample_loaded();
    h.get_by_label("Sample MR T1 (synthetic, misaligned)")
        .click();
    h.run_steps(2);
    open_tab(&mut h, "Preprocess");
    h.get_by_label("Normalise (z-score)").click();
    h.run_steps(2);
    wait_for_tasks(&mut h, "normalised");
    let doc = h.state().document();
    assert_eq!(doc.volumes.len(), 3, "message: {:?}", doc.message);
    assert_eq!(doc.active, Some(2), "the result is shown");
    let original = &doc.volumes[1].image.volume;
    let normalised = &doc.volumes[2].image.volume;
    assert_eq!(original.dims(), normalised.dims());
    assert!(doc.volumes[2].image.meta.description.contains("z-score"));
    // z-scored inside the head: its foreground has mean ≈ 0; the original's is far above.
    let (lo, hi) = normalised.min_max();
    assert!(lo < 0.0 && hi > 0.0, "{lo}..{hi}");
    assert!(
        original.min_max().0 >= 0.0,
        "the original is untouched (magnitude MR)"
    );
}
