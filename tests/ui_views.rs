//! The View and Measurements tabs and the meshes in the 3D quadrant, driven headless through
//! egui_kittest (wgpu on lavapipe) on the bundled sample study.

mod ui_harness;
use egui::{Event, Modifiers, PointerButton, Pos2, Vec2};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use fuseprint::app::App;
use fuseprint::document::{
    Command, MeasureTool, MeasurementKind, Projection3d, Region, Rgba, SceneContent, SliceFusion,
    ViewAxis,
};
use fuseprint::render::RenderMode;
use ui_harness::{step_until, wait_for_sample};

const WINDOW: Vec2 = Vec2::new(1200.0, 760.0);
/// The sample CT is 160 voxels of 1.2 mm across, centred on the world origin.
const SAMPLE_CT_FOV_MM: f32 = 160.0 * 1.2;

fn sample_loaded() -> Harness<'static, App> {
    let mut h = Harness::builder()
        .with_size(WINDOW)
        .wgpu()
        .build_eframe(|cc| App::new(cc));
    wait_for_sample(&mut h);
    h
}

fn open_tab(h: &mut Harness<'static, App>, title: &str) {
    h.get_by_label(title).click();
    h.run_steps(2);
}

fn axial_rect(h: &Harness<'static, App>) -> egui::Rect {
    h.get_by_label("Axial view").rect()
}

fn click_at(h: &mut Harness<'static, App>, pos: Pos2) {
    h.hover_at(pos);
    h.step();
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
        h.step();
    }
    h.run_steps(2);
}

fn drag(h: &mut Harness<'static, App>, from: Pos2, to: Pos2) {
    h.hover_at(from);
    h.step();
    h.event(Event::PointerButton {
        pos: from,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    for t in [0.25, 0.5, 0.75, 1.0] {
        h.hover_at(from + (to - from) * t);
        h.step();
    }
    h.event(Event::PointerButton {
        pos: to,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run_steps(2);
}

/// The world point (LPS mm) under an offset from the axial view's centre: the CT's square
/// field of view fits the view's smaller side, centred on the world origin; screen right is
/// patient left (+x), screen down posterior (+y); the slice is the cursor's.
fn axial_world(h: &Harness<'static, App>, offset: Vec2) -> [f64; 3] {
    let axial = axial_rect(h);
    let points_per_mm = axial.width().min(axial.height()) / SAMPLE_CT_FOV_MM;
    let z = h.state().document().cursor_world[2];
    [
        (offset.x / points_per_mm) as f64,
        (offset.y / points_per_mm) as f64,
        z,
    ]
}

fn assert_near(got: [f64; 3], want: [f64; 3], tol: f64) {
    for a in 0..3 {
        assert!((got[a] - want[a]).abs() < tol, "{got:?} vs {want:?}");
    }
}

#[test]
fn view_tab_sets_the_3d_views_transfer_function_projection_and_crop() {
    let mut h = sample_loaded();
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    let tf = frame.transfer.expect("the volume is drawn");
    assert_eq!(tf.name, "ct-bone", "the CT opens on the bone preset");
    assert_eq!(frame.mode, RenderMode::Dvr);

    open_tab(&mut h, "View");
    h.get_by_label("ct-soft").click();
    h.run_steps(2);
    assert_eq!(
        h.state().document().view_settings.preset.as_deref(),
        Some("ct-soft")
    );
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    assert_eq!(
        frame.transfer,
        Some(fuseprint::render::TransferFunction::preset("ct-soft").expect("preset")),
        "the 3D view draws the chosen preset unchanged"
    );

    h.get_by_label(Projection3d::Mip.name()).click();
    h.run_steps(2);
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    assert_eq!(frame.mode, RenderMode::Mip);

    // The opacity slider scales every control point of what the 3D view draws.
    let mut settings = h.state().document().view_settings.clone();
    settings.opacity_scale = 0.5;
    settings.crop[2] = [0.5, 1.0];
    h.state_mut().apply(Command::SetViewSettings(settings));
    h.run_steps(2);
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    let soft = fuseprint::render::TransferFunction::preset("ct-soft").expect("preset");
    let drawn = frame.transfer.clone().expect("volume drawn");
    for (a, b) in soft.points().iter().zip(drawn.points()) {
        assert!((b.opacity_per_mm - a.opacity_per_mm * 0.5).abs() < 1e-6);
    }
    let [lo, hi] = frame.clip_box_world.expect("cropped");
    let ct = &h.state().document().volumes[0].image.volume;
    let bounds = fuseprint::render::volume_bounds_world(ct);
    assert!((lo.z - (bounds[0].z + bounds[1].z) / 2.0).abs() < 1e-6);
    assert!((hi.z - bounds[1].z).abs() < 1e-6 && (lo.x - bounds[0].x).abs() < 1e-6);
    h.get_by_label("Reset crop").click();
    h.run_steps(2);
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    assert_eq!(frame.clip_box_world, None);

    // "Edit points" turns what is drawn into editable points: same picture, now custom.
    let before = frame.transfer.clone().expect("volume drawn");
    h.get_by_label("Edit points").click();
    h.run_steps(2);
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    let custom = frame.transfer.expect("volume drawn");
    assert_eq!(custom.name, "custom");
    for hu in [-500.0, 0.0, 100.0, 400.0, 1200.0] {
        let (a, b) = (before.sample(hu), custom.sample(hu));
        assert!(
            (0..4).all(|c| (a[c] - b[c]).abs() < 1e-5),
            "{hu}: {a:?} vs {b:?}"
        );
    }
    h.get_by_label("Add point").click();
    h.run_steps(2);
    let points = h
        .state()
        .document()
        .view_settings
        .points
        .clone()
        .expect("points");
    assert_eq!(points.len(), before.points().len() + 1);
    h.get_by_label("Reset to preset").click();
    h.run_steps(2);
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    assert_eq!(frame.transfer, Some(soft));

    h.get_by_label(SliceFusion::Checkerboard.name()).click();
    h.run_steps(2);
    assert_eq!(
        h.state().document().view_settings.slice_fusion,
        SliceFusion::Checkerboard
    );
}

/// Pixels of `rect` (points; the harness draws one pixel per point) whose green clearly
/// outweighs red and blue.
fn green_pixels(image: &image::RgbaImage, rect: egui::Rect) -> usize {
    let mut count = 0;
    for y in rect.top().ceil() as u32..rect.bottom().floor() as u32 {
        for x in rect.left().ceil() as u32..rect.right().floor() as u32 {
            if let Some(p) = image.get_pixel_checked(x, y) {
                let [r, g, b, _] = p.0.map(i32::from);
                if g > 60 && g > r + 40 && g > b + 40 {
                    count += 1;
                }
            }
        }
    }
    count
}

#[test]
fn built_meshes_are_drawn_in_the_3d_view_in_their_label_colour() {
    let mut h = sample_loaded();
    h.state_mut().apply(Command::ApplyThreshold {
        low: 226.0,
        high: 3071.0,
    });
    step_until(&mut h, "bone thresholded", |app| !app.is_busy());
    // A colour no preset or grey image has, so its pixels can only come from the mesh.
    h.state_mut()
        .apply(Command::SetLabelColor(1, Rgba::rgb(40, 220, 60)));
    open_tab(&mut h, "Mesh & export");
    h.get_by_label("Build meshes").click();
    h.run_steps(2);
    step_until(&mut h, "meshes built", |app| {
        !app.is_busy() && !app.document().meshes.is_empty()
    });
    let mesh_count = h.state().document().meshes.len();
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    assert_eq!(
        frame.mesh_count, mesh_count,
        "meshes are handed to the viewer"
    );

    open_tab(&mut h, "View");
    h.get_by_label(SceneContent::Meshes.name()).click();
    h.remove_cursor();
    h.run_steps(3);
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    assert_eq!(frame.transfer, None, "meshes only: no volume");
    assert_eq!(frame.mesh_count, mesh_count);
    let three_d = h.get_by_label("3D view").rect();
    let image = h.render().expect("lavapipe renders the window");
    let with_meshes = green_pixels(&image, three_d);
    let area = (three_d.width() * three_d.height()) as usize;
    assert!(
        with_meshes > area / 50,
        "{with_meshes} mesh-coloured pixels of {area}"
    );

    h.get_by_label(SceneContent::Volume.name()).click();
    h.remove_cursor();
    h.run_steps(3);
    let frame = h
        .state()
        .ui_state()
        .last_3d_frame()
        .cloned()
        .expect("3D frame");
    assert_eq!(frame.mesh_count, 0);
    let image = h.render().expect("lavapipe renders the window");
    let volume_only = green_pixels(&image, three_d);
    assert!(
        volume_only * 20 < with_meshes,
        "the green came from the meshes: {volume_only} without vs {with_meshes} with"
    );
}

#[test]
fn two_clicks_measure_a_distance_and_three_an_angle() {
    let mut h = sample_loaded();
    let axial = axial_rect(&h);
    h.hover_at(axial.center());
    h.step();
    h.key_press(egui::Key::D);
    h.run_steps(2);
    assert_eq!(
        h.state().document().measure_tool,
        Some(MeasureTool::Distance)
    );
    let cursor_before = h.state().document().cursor_world;
    let (oa, ob) = (Vec2::new(-40.0, 10.0), Vec2::new(30.0, -25.0));
    let (wa, wb) = (axial_world(&h, oa), axial_world(&h, ob));
    click_at(&mut h, axial.center() + oa);
    assert!(
        h.state().document().measurements.is_empty(),
        "one click is not enough"
    );
    click_at(&mut h, axial.center() + ob);
    let doc = h.state().document();
    assert_eq!(
        doc.cursor_world, cursor_before,
        "measuring does not move the cursor"
    );
    assert_eq!(doc.measurements.len(), 1);
    let MeasurementKind::Distance { a_mm, b_mm } = doc.measurements[0].kind else {
        panic!("{:?}", doc.measurements[0]);
    };
    assert_near(a_mm, wa, 0.05);
    assert_near(b_mm, wb, 0.05);
    let expected = fuseprint::measure::distance_mm(wa, wb).expect("distance");
    let stored = fuseprint::measure::distance_mm(a_mm, b_mm).expect("distance");
    assert!((stored - expected).abs() < 0.1, "{stored} vs {expected}");
    assert_eq!(doc.measurements[0].name, "Distance 1");

    h.key_press(egui::Key::A);
    h.run_steps(2);
    let offsets = [
        Vec2::new(-50.0, 0.0),
        Vec2::new(0.0, 0.0),
        Vec2::new(0.0, -50.0),
    ];
    let worlds = offsets.map(|o| axial_world(&h, o));
    for o in offsets {
        click_at(&mut h, axial.center() + o);
    }
    let doc = h.state().document();
    assert_eq!(doc.measurements.len(), 2);
    let MeasurementKind::Angle {
        a_mm,
        vertex_mm,
        c_mm,
    } = doc.measurements[1].kind
    else {
        panic!("{:?}", doc.measurements[1]);
    };
    let stored = fuseprint::measure::angle_deg(a_mm, vertex_mm, c_mm).expect("angle");
    let expected = fuseprint::measure::angle_deg(worlds[0], worlds[1], worlds[2]).expect("angle");
    assert!((stored - expected).abs() < 0.1, "{stored} vs {expected}");
    assert!((expected - 90.0).abs() < 1e-6, "a right angle on screen");

    // Listed with their values, and deletable.
    let distance_text = doc.measurements[0]
        .geometric_value_text()
        .expect("distance text");
    h.key_press(egui::Key::Escape);
    open_tab(&mut h, "Measurements");
    h.get_by_label(&distance_text);
    h.get_by_label("Distance 1");
    h.get_all_by_label("Delete")
        .next()
        .expect("delete button")
        .click();
    h.run_steps(2);
    let doc = h.state().document();
    assert_eq!(doc.measurements.len(), 1);
    assert_eq!(doc.measurements[0].name, "Angle 1");
    assert_eq!(doc.measure_tool, None, "Esc returns to navigation");
}

#[test]
fn a_dragged_box_reports_the_region_statistics_of_the_ct() {
    let mut h = sample_loaded();
    open_tab(&mut h, "Measurements");
    h.get_by_label("Region box").click();
    h.run_steps(2);
    let axial = axial_rect(&h);
    let (from, to) = (Vec2::new(-30.0, -20.0), Vec2::new(25.0, 15.0));
    let (wa, wb) = (axial_world(&h, from), axial_world(&h, to));
    drag(&mut h, axial.center() + from, axial.center() + to);
    let doc = h.state().document();
    assert_eq!(doc.measurements.len(), 1, "{:?}", doc.measurements);
    let MeasurementKind::RegionStats {
        volume,
        ref region,
        label_map,
    } = doc.measurements[0].kind
    else {
        panic!("{:?}", doc.measurements[0]);
    };
    assert_eq!((volume, label_map), (0, None));
    let Region::Box { min_mm, max_mm } = region else {
        panic!("{region:?}");
    };
    let ct = &doc.volumes[0].image.volume;
    let half = fuseprint::document::slice::slice_step_mm(ct.geometry(), ViewAxis::Axial) / 2.0;
    assert_near(
        *min_mm,
        [wa[0].min(wb[0]), wa[1].min(wb[1]), wa[2] - half],
        0.05,
    );
    assert_near(
        *max_mm,
        [wa[0].max(wb[0]), wa[1].max(wb[1]), wa[2] + half],
        0.05,
    );
    let stats = fuseprint::measure::region_stats(ct, region, None).expect("stats");
    // One slice of voxel centres inside the box's x-y rectangle (1.2 mm spacing).
    let expected_voxels = ((max_mm[0] - min_mm[0]) / 1.2) * ((max_mm[1] - min_mm[1]) / 1.2);
    assert!(
        (stats.voxel_count as f64 - expected_voxels).abs() < expected_voxels * 0.1,
        "{} voxels vs about {expected_voxels:.0}",
        stats.voxel_count
    );
    // The panel shows exactly what measure::region_stats gives.
    let text = fuseprint::document::viewing::region_stats_text(&stats, " HU");
    h.run_steps(2);
    h.get_by_label(&text);
    h.get_by_label("Region 1");
}
