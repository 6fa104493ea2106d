//! The four-view projection window (View tab → Four-view projection), driven headless through
//! egui_kittest on the bundled sample study. Without native windows the viewport is shown as a
//! window inside the main one, drawn by the same paint callbacks (wgpu on lavapipe).

mod ui_harness;
use egui::Vec2;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use fuseprint::app::App;
use fuseprint::render::four_view::pyramid_layout;
use fuseprint::ui::four_view::DEFAULT_SPEED_DEG_PER_S;
use ui_harness::wait_for_sample;

const WINDOW: Vec2 = Vec2::new(1200.0, 800.0);

fn four_view_open() -> Harness<'static, App> {
    let mut h = Harness::builder()
        .with_size(WINDOW)
        .wgpu()
        .build_eframe(|cc| App::new(cc));
    wait_for_sample(&mut h);
    h.get_by_label("View").click();
    h.run_steps(2);
    assert!(!h.state().ui_state().four_view().is_open());
    h.get_by_label("Four-view projection").click();
    h.run_steps(2);
    h
}

/// Bounding box `[x0, y0, x1, y1]` (pixels, exclusive end) of the non-black pixels inside
/// `rect`, or `None` when the cell is black.
fn lit_box(image: &image::RgbaImage, rect: egui::Rect, ppp: f32) -> Option<[u32; 4]> {
    let x0 = (rect.min.x * ppp).round() as u32;
    let y0 = (rect.min.y * ppp).round() as u32;
    let x1 = ((rect.max.x * ppp).round() as u32).min(image.width());
    let y1 = ((rect.max.y * ppp).round() as u32).min(image.height());
    let mut found: Option<[u32; 4]> = None;
    // Inset by 2 px: the cell's own edge may be anti-aliased against its neighbours.
    for y in y0 + 2..y1.saturating_sub(2) {
        for x in x0 + 2..x1.saturating_sub(2) {
            let p = image.get_pixel(x, y).0;
            if p[0].max(p[1]).max(p[2]) > 24 {
                let b = found.get_or_insert([x, y, x + 1, y + 1]);
                b[0] = b[0].min(x);
                b[1] = b[1].min(y);
                b[2] = b[2].max(x + 1);
                b[3] = b[3].max(y + 1);
            }
        }
    }
    found
}

#[test]
fn the_view_tab_opens_four_views_in_the_pyramid_layout_turning_with_time() {
    let mut h = four_view_open();
    let four = h.state().ui_state().four_view().clone();
    assert!(four.is_open());
    h.get_by_label("Four-view pictures");
    let frame = four.last_frame().expect("the four-view drew a frame");
    assert!(frame.drew_scene, "the sample CT is drawn in the cells");

    // The cells are pyramid_layout's for the canvas, in points.
    let ppp = h.ctx.pixels_per_point();
    let canvas_px = [frame.canvas.width(), frame.canvas.height()].map(|p| (p * ppp) as u32);
    let placements = pyramid_layout(canvas_px);
    for (n, place) in placements.iter().enumerate() {
        let [x, y, w, hgt] = place.rect_px.map(|v| v as f32 / ppp);
        let want =
            egui::Rect::from_min_size(frame.canvas.min + egui::vec2(x, y), egui::vec2(w, hgt));
        assert!(
            (frame.cells[n].min - want.min).length() < 1e-3
                && (frame.cells[n].max - want.max).length() < 1e-3,
            "cell {n}: {:?} vs {want:?}",
            frame.cells[n]
        );
        assert_eq!(frame.quarter_turns[n], place.quarter_turns);
        assert!(w > 60.0, "cells are big enough to see: {w} points");
    }
    // Each next cell orbits a further 90° (the layout's offsets, plus the common turn).
    for n in 1..4 {
        let step = frame.yaw_deg[n] - frame.yaw_deg[0];
        assert!(
            (step - placements[n].yaw_offset_deg).abs() < 1e-9,
            "cell {n}: {step}"
        );
    }

    // Rotation advances with time (kittest steps 0.25 s), at the default speed, and stops
    // when paused.
    let before = four.rotation_deg();
    h.run_steps(4);
    let turned = four.rotation_deg() - before;
    let want = f64::from(DEFAULT_SPEED_DEG_PER_S) * 4.0 * 0.25;
    assert!(
        (turned - want).abs() < 1e-6,
        "turned {turned}°, want {want}°"
    );
    let later = four.last_frame().expect("frame");
    assert!((later.yaw_deg[0] - frame.yaw_deg[0] - turned).abs() < 1e-6);
    h.get_all_by_label("Pause")
        .next()
        .expect("a Pause button")
        .click();
    h.run_steps(2);
    assert!(four.is_paused());
    let paused_at = four.rotation_deg();
    h.run_steps(4);
    assert_eq!(four.rotation_deg(), paused_at, "paused: no turning");

    // On lavapipe: four pictures of the CT, black between them, each turned so its top points
    // away from the centre. Turning about the vertical axis keeps the object's height, so the
    // lit extent along each cell's outward axis (vertical for the top and bottom cells,
    // horizontal for the side cells) is the same in all four.
    let image = h.render().expect("render the window");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("four_view.png");
    image.save(&path).expect("save the picture");
    eprintln!("four-view picture: {}", path.display());
    let frame = four.last_frame().expect("frame");
    let boxes: Vec<[u32; 4]> = frame
        .cells
        .iter()
        .enumerate()
        .map(|(n, cell)| lit_box(&image, *cell, ppp).unwrap_or_else(|| panic!("cell {n} is black")))
        .collect();
    let centre = egui::Rect::from_center_size(frame.canvas.center(), frame.cells[0].size());
    assert_eq!(
        lit_box(&image, centre, ppp),
        None,
        "the centre of the cross stays black"
    );
    let outward = |n: usize| {
        let b = boxes[n];
        if frame.quarter_turns[n] % 2 == 0 {
            b[3] - b[1]
        } else {
            b[2] - b[0]
        }
    };
    let across = |n: usize| {
        let b = boxes[n];
        if frame.quarter_turns[n] % 2 == 0 {
            b[2] - b[0]
        } else {
            b[3] - b[1]
        }
    };
    eprintln!("lit boxes {boxes:?}");
    for n in 1..4 {
        assert!(
            outward(n).abs_diff(outward(0)) <= 3,
            "cell {n}: outward extent {} vs {} ({boxes:?})",
            outward(n),
            outward(0)
        );
    }
    // The check above only means something if the object's height differs from its width
    // in some cell (it would hold for a sphere however the cells were turned).
    assert!(
        (0..4).any(|n| across(n).abs_diff(outward(n)) > 6),
        "the sample's silhouette is as wide as it is tall in every cell: {boxes:?}"
    );
}

#[test]
fn closing_the_four_view_from_its_window_unchecks_the_view_tab() {
    let mut h = four_view_open();
    assert!(h.state().ui_state().four_view().is_open());
    h.get_by_label("Close").click();
    h.run_steps(2);
    assert!(!h.state().ui_state().four_view().is_open());
    assert!(h.query_by_label("Four-view pictures").is_none());
}
