//! Colours and sizes of the window: the one place that spells out `Color32` values.

use crate::document::ViewAxis;
use egui::Color32;

pub const VIEW_BACKGROUND: Color32 = Color32::BLACK;
pub const VIEW_TEXT: Color32 = Color32::from_rgb(230, 230, 140);
pub const ERROR_TEXT: Color32 = Color32::from_rgb(255, 120, 110);
/// Amber: something asked for did not happen, for a reason the user can fix.
pub const WARNING_TEXT: Color32 = Color32::from_rgb(240, 180, 60);
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
pub const RIGHT_PANEL_WIDTH: f32 = 330.0;
/// Live threshold preview tint (linear 0..1 RGB, blended at 45 %).
pub const PREVIEW_RGB: [f32; 3] = [0.2, 1.0, 0.35];
/// Tint of low-confidence voxels (model or registration confidence maps).
pub const LOW_CONFIDENCE_RGB: [f32; 3] = [1.0, 0.1, 0.1];
pub const TOOL_OUTLINE: Color32 = Color32::from_rgb(255, 220, 60);
pub const PLACEHOLDER_TEXT: Color32 = Color32::from_rgb(150, 150, 160);

/// A label colour as egui shows it.
pub fn rgba(color: crate::document::Rgba) -> Color32 {
    let [r, g, b, a] = color.0;
    Color32::from_rgba_unmultiplied(r, g, b, a)
}
/// Measurements drawn on the slices, and the one being placed.
pub const MEASUREMENT: Color32 = Color32::from_rgb(90, 220, 255);
pub const MEASUREMENT_PENDING: Color32 = Color32::from_rgb(255, 170, 60);

/// An 8-bit RGB colour computed at run time (e.g. a transfer function's).
pub fn rgb(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}
