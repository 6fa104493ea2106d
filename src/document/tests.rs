use super::*;
use crate::volume::{ImageMeta, Modality, Volume, VolumeGeometry};

fn image(
    modality: Modality,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    origin_mm: [f64; 3],
) -> LoadedImage {
    let geometry = VolumeGeometry::axis_aligned(dims, spacing_mm, origin_mm).expect("valid");
    LoadedImage {
        volume: Volume::from_fn(geometry, |[i, j, k]| (i + j + k) as f32),
        meta: ImageMeta::new(modality, "test"),
    }
}

fn doc_with_ct() -> Document {
    let mut doc = Document::new();
    doc.add_volume(NewVolume::prepare(image(
        Modality::Ct,
        [11, 21, 31],
        [1.0, 0.5, 2.0],
        [0.0; 3],
    )));
    doc
}

#[test]
fn first_volume_becomes_active_with_the_cursor_at_its_centre() {
    let doc = doc_with_ct();
    assert_eq!(doc.active, Some(0));
    assert_eq!(doc.cursor_world, [5.0, 5.0, 30.0]);
    assert_eq!(doc.volumes[0].window, CT_DEFAULT);
    assert!(doc.revision > 0);
}

#[test]
fn scrolling_moves_one_slice_spacing_along_the_view_normal_and_stops_at_the_edge() {
    let mut doc = doc_with_ct();
    doc.apply(Command::ScrollSlice {
        axis: ViewAxis::Axial,
        steps: 2,
    });
    assert_eq!(doc.cursor_world, [5.0, 5.0, 34.0]);
    doc.apply(Command::ScrollSlice {
        axis: ViewAxis::Coronal,
        steps: 1,
    });
    // Positive coronal steps go anterior (−y), by the 0.5 mm row spacing.
    assert_eq!(doc.cursor_world, [5.0, 4.5, 34.0]);
    doc.apply(Command::ScrollSlice {
        axis: ViewAxis::Sagittal,
        steps: 1000,
    });
    assert_eq!(doc.cursor_world[0], 10.0);
}

#[test]
fn set_cursor_clamps_into_the_volume() {
    let mut doc = doc_with_ct();
    doc.apply(Command::SetCursor([3.0, -50.0, 12.0]));
    assert_eq!(doc.cursor_world, [3.0, 0.0, 12.0]);
}

#[test]
fn window_level_is_per_volume_and_an_mr_opens_with_its_auto_window() {
    let mut doc = doc_with_ct();
    let mr = doc.add_volume(NewVolume::prepare(image(
        Modality::Mr,
        [8, 8, 8],
        [1.0; 3],
        [0.0; 3],
    )));
    assert_eq!(doc.volumes[mr].window, doc.volumes[mr].auto_window);
    assert_eq!(
        doc.active,
        Some(0),
        "adding a second volume keeps the first on screen"
    );
    doc.apply(Command::SetWindowLevel {
        volume: 0,
        window: CT_PRESETS[2].window,
    });
    assert_eq!(doc.volumes[0].window, CT_PRESETS[2].window);
    assert_eq!(doc.volumes[mr].window, doc.volumes[mr].auto_window);
}

#[test]
fn removing_volumes_keeps_a_valid_active_index() {
    let mut doc = doc_with_ct();
    doc.add_volume(NewVolume::prepare(image(
        Modality::Mr,
        [8, 8, 8],
        [1.0; 3],
        [0.0; 3],
    )));
    doc.apply(Command::SetActiveVolume(1));
    doc.apply(Command::RemoveVolume(0));
    assert_eq!(doc.active, Some(0));
    assert_eq!(doc.volumes.len(), 1);
    doc.apply(Command::RemoveVolume(0));
    assert_eq!(doc.active, None);
    assert!(doc.slice_plane(ViewAxis::Axial).is_none());
}

#[test]
fn value_at_reads_the_volume_at_a_world_point() {
    let doc = doc_with_ct();
    // Voxel (2, 4, 3) sits at world (2, 2, 6) and holds 2 + 4 + 3.
    assert_eq!(doc.value_at(0, Point3::new(2.0, 2.0, 6.0)), Some(9.0));
    assert_eq!(doc.value_at(0, Point3::new(-50.0, 0.0, 0.0)), None);
}

#[test]
fn overlay_follows_its_volume_and_is_hidden_on_itself() {
    let mut doc = doc_with_ct();
    let mr = doc.add_volume(NewVolume::prepare(image(
        Modality::Mr,
        [8, 8, 8],
        [1.0; 3],
        [0.0; 3],
    )));
    doc.apply(Command::SetOverlay(Some(mr)));
    doc.apply(Command::SetOverlayOpacity(0.3));
    let (entry, opacity) = doc.visible_overlay().expect("overlay shown");
    assert_eq!((entry.id, opacity), (doc.volumes[mr].id, 0.3));
    doc.apply(Command::SetActiveVolume(mr));
    assert!(
        doc.visible_overlay().is_none(),
        "a volume is never blended over itself"
    );
    doc.apply(Command::RemoveVolume(0));
    assert_eq!(
        doc.overlay.map(|o| o.volume),
        Some(0),
        "index follows the removal"
    );
    doc.apply(Command::RemoveVolume(0));
    assert_eq!(doc.overlay, None);
}
