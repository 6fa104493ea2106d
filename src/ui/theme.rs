//! Colours and sizes of the window: the one place that spells out `Color32` values.

use crate::document::ViewAxis;
use egui::Color32;

pub const VIEW_BACKGROUND: Color32 = Color32::BLACK;
pub const VIEW_TEXT: Color32 = Color32::from_rgb(230, 230, 140);
pub const ERROR_TEXT: Color32 = Color32::from_rgb(255, 120, 110);
pub const LEFT_PANEL_WIDTH: f32 = 260.0;

/// Each view's accent colour, used for its crosshair line in the *other* views
/// (Slicer's convention: axial red, sagittal yellow, coronal green).
pub fn accent(axis: ViewAxis) -> Color32 {
    match axis {
        ViewAxis::Axial => Color32::from_rgb(230, 80, 70),
        ViewAxis::Coronal => Color32::from_rgb(90, 200, 90),
        ViewAxis::Sagittal => Color32::from_rgb(235, 210, 70),
    }
}
