//! The four-view projection window for pyramid (Pepper's-ghost) displays: what the 3D view
//! shows, drawn from four directions 90° apart in the cross layout of
//! `render::four_view::pyramid_layout`, on black, turning slowly about the vertical axis.
//!
//! It is its own native window (an egui deferred viewport), so the user can drag it onto the
//! display's monitor and make it full screen there (double-click, F11 or the button; Esc
//! leaves). Being deferred, it repaints on its own: the turning does not redraw the main
//! window. Where the platform has one window only (tests), it shows as a window inside the
//! main one.

use super::theme;
use crate::render::egui_bridge::{four_view_cell_callback, VolumeView};
use crate::render::four_view::pyramid_layout;
use std::sync::{Arc, Mutex, MutexGuard};

/// Turning speed when the window first opens, degrees per second.
pub const DEFAULT_SPEED_DEG_PER_S: f32 = 20.0;
pub const MAX_SPEED_DEG_PER_S: f32 = 90.0;
/// A stalled frame (window hidden, debugger) must not jump the turn.
const MAX_STEP_SECS: f64 = 0.25;

/// Where the four-view window drew its cells in its last frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FourViewFrame {
    pub rotation_deg: f64,
    /// The black canvas, in points of the four-view window.
    pub canvas: egui::Rect,
    /// Bottom, right, top, left (the order of `pyramid_layout`), in points.
    pub cells: [egui::Rect; 4],
    pub quarter_turns: [u32; 4],
    /// Each cell's camera yaw (the 3D view's orbit + the turn + the cell's offset), degrees.
    pub yaw_deg: [f64; 4],
    /// Whether a scene was drawn (an image is open).
    pub drew_scene: bool,
}

struct Shared {
    open: bool,
    paused: bool,
    speed_deg_per_s: f32,
    rotation_deg: f64,
    last_time: Option<f64>,
    /// What the 3D view shows, refreshed by every frame of the main window.
    scene: Option<VolumeView>,
    last_frame: Option<FourViewFrame>,
}

/// Widget state of the four-view window, shared with the window's own repaint callback.
#[derive(Clone)]
pub struct FourViewState {
    shared: Arc<Mutex<Shared>>,
}

impl Default for FourViewState {
    fn default() -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                open: false,
                paused: false,
                speed_deg_per_s: DEFAULT_SPEED_DEG_PER_S,
                rotation_deg: 0.0,
                last_time: None,
                scene: None,
                last_frame: None,
            })),
        }
    }
}

impl std::fmt::Debug for FourViewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.shared);
        f.debug_struct("FourViewState")
            .field("open", &s.open)
            .field("paused", &s.paused)
            .field("rotation_deg", &s.rotation_deg)
            .finish()
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Both sides run on the window's thread; a panic while holding it leaves usable state.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl FourViewState {
    pub fn is_open(&self) -> bool {
        lock(&self.shared).open
    }

    pub fn is_paused(&self) -> bool {
        lock(&self.shared).paused
    }

    pub fn rotation_deg(&self) -> f64 {
        lock(&self.shared).rotation_deg
    }

    /// The cells of the last four-view frame (`None` before the window first drew).
    pub fn last_frame(&self) -> Option<FourViewFrame> {
        lock(&self.shared).last_frame.clone()
    }
}

/// The View tab's controls: open/close, pause, speed.
pub fn controls_ui(ui: &mut egui::Ui, state: &FourViewState) {
    let mut s = lock(&state.shared);
    ui.checkbox(&mut s.open, "Four-view projection")
        .on_hover_text(
            "The 3D view from four sides in the cross layout of pyramid (Pepper's ghost) \
             displays, turning slowly, in its own window: drag it onto the display and \
             double-click it (or F11) for full screen; Esc leaves full screen",
        );
    if !s.open {
        return;
    }
    ui.horizontal(|ui| {
        pause_button(ui, &mut s);
        ui.add(
            egui::Slider::new(&mut s.speed_deg_per_s, 0.0..=MAX_SPEED_DEG_PER_S)
                .suffix(" °/s")
                .text("Speed"),
        )
        .on_hover_text("How fast the model turns");
    });
}

fn pause_button(ui: &mut egui::Ui, s: &mut Shared) {
    let label = if s.paused { "Turn" } else { "Pause" };
    if ui
        .button(label)
        .on_hover_text("Stop or restart the turning (Space in the four-view window)")
        .clicked()
    {
        s.paused = !s.paused;
    }
}

/// Shows the four-view window while it is open, with `scene` (what the 3D view shows). Call
/// every frame of the main window: a frame without it closes the window.
pub fn show(ctx: &egui::Context, scene: Option<VolumeView>, state: &FourViewState) {
    {
        let mut s = lock(&state.shared);
        if !s.open {
            s.last_time = None;
            return;
        }
        s.scene = scene;
    }
    let shared = Arc::clone(&state.shared);
    let builder = egui::ViewportBuilder::default()
        .with_title("fuseprint — four-view projection")
        .with_inner_size([720.0, 760.0]);
    ctx.show_viewport_deferred(
        egui::ViewportId::from_hash_of("fuseprint four-view"),
        builder,
        move |ui, class| window_ui(ui, class, &shared),
    );
}

fn window_ui(ui: &mut egui::Ui, class: egui::ViewportClass, shared: &Mutex<Shared>) {
    let mut s = lock(shared);
    let native = class != egui::ViewportClass::EmbeddedWindow;
    if native && ui.input(|i| i.viewport().close_requested()) {
        s.open = false;
        ui.ctx().request_repaint_of(egui::ViewportId::ROOT);
        return;
    }
    let now = ui.input(|i| i.time);
    if let (Some(last), false) = (s.last_time, s.paused) {
        let step = (now - last).clamp(0.0, MAX_STEP_SECS);
        s.rotation_deg = (s.rotation_deg + step * f64::from(s.speed_deg_per_s)).rem_euclid(360.0);
    }
    s.last_time = Some(now);

    let fullscreen = native && ui.input(|i| i.viewport().fullscreen.unwrap_or(false));
    let (escape, toggle_full, toggle_pause) = ui.input(|i| {
        (
            i.key_pressed(egui::Key::Escape),
            i.key_pressed(egui::Key::F11),
            i.key_pressed(egui::Key::Space),
        )
    });
    let mut want_fullscreen = None;
    if native && escape && fullscreen {
        want_fullscreen = Some(false);
    }
    if native && toggle_full {
        want_fullscreen = Some(!fullscreen);
    }
    if native && toggle_pause {
        s.paused = !s.paused;
    }

    let mut draw = |ui: &mut egui::Ui, s: &mut Shared| {
        if !fullscreen {
            ui.horizontal(|ui| {
                pause_button(ui, s);
                ui.add(
                    egui::Slider::new(&mut s.speed_deg_per_s, 0.0..=MAX_SPEED_DEG_PER_S)
                        .suffix(" °/s"),
                );
                if native
                    && ui
                        .button("Full screen")
                        .on_hover_text("Fill this monitor (Esc leaves)")
                        .clicked()
                {
                    want_fullscreen = Some(true);
                }
                if ui.button("Close").clicked() {
                    s.open = false;
                    ui.ctx().request_repaint_of(egui::ViewportId::ROOT);
                }
            });
        }
        let canvas = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(canvas, egui::Sense::click());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Image, true, "Four-view pictures")
        });
        if native && response.double_clicked() {
            want_fullscreen = Some(!fullscreen);
        }
        let painter = ui.painter_at(canvas);
        painter.rect_filled(canvas, 0.0, theme::VIEW_BACKGROUND);
        s.last_frame = Some(draw_cells(ui, &painter, canvas, s));
    };
    if native {
        egui::CentralPanel::no_frame()
            .frame(egui::Frame::NONE.fill(theme::VIEW_BACKGROUND))
            .show(ui, |ui| draw(ui, &mut s));
    } else {
        draw(ui, &mut s);
    }
    if let Some(on) = want_fullscreen {
        ui.ctx()
            .send_viewport_cmd(egui::ViewportCommand::Fullscreen(on));
    }
    if s.open && !s.paused {
        ui.ctx().request_repaint();
    }
}

/// Lays the four cells of `pyramid_layout` over `canvas` and hands each its paint callback.
fn draw_cells(
    ui: &egui::Ui,
    painter: &egui::Painter,
    canvas: egui::Rect,
    s: &Shared,
) -> FourViewFrame {
    let ppp = ui.ctx().pixels_per_point();
    let canvas_px = [canvas.width(), canvas.height()].map(|p| (p * ppp).max(0.0) as u32);
    let placements = pyramid_layout(canvas_px);
    let mut frame = FourViewFrame {
        rotation_deg: s.rotation_deg,
        canvas,
        cells: [egui::Rect::NOTHING; 4],
        quarter_turns: [0; 4],
        yaw_deg: [0.0; 4],
        drew_scene: false,
    };
    for (n, place) in placements.iter().enumerate() {
        let [x, y, w, h] = place.rect_px.map(|v| v as f32 / ppp);
        let rect = egui::Rect::from_min_size(canvas.min + egui::vec2(x, y), egui::vec2(w, h));
        frame.cells[n] = rect;
        frame.quarter_turns[n] = place.quarter_turns;
        let base_yaw = s.scene.as_ref().map_or(0.0, |v| v.yaw_deg);
        frame.yaw_deg[n] = base_yaw + s.rotation_deg + place.yaw_offset_deg;
        if let Some(scene) = &s.scene {
            if rect.width() >= 1.0 && rect.height() >= 1.0 {
                let mut view = scene.clone();
                view.yaw_deg = frame.yaw_deg[n];
                painter.add(four_view_cell_callback(rect, n, place.quarter_turns, view));
                frame.drew_scene = true;
            }
        }
    }
    if s.scene.is_none() {
        painter.text(
            canvas.center(),
            egui::Align2::CENTER_CENTER,
            "Open an image to see it here",
            egui::FontId::proportional(16.0),
            theme::PLACEHOLDER_TEXT,
        );
    }
    frame
}
