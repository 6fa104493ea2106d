//! Editing on real label maps: TotalSegmentator labels keep their names through save/load, and
//! a session of mixed tools undoes and redoes bit for bit.

mod common;
use common::shared_data;

use fuseprint::editing::brush::{paint_stroke, BrushShape, BrushStroke};
use fuseprint::editing::fill::fill_in_slice;
use fuseprint::editing::interpolate::fill_between_slices;
use fuseprint::editing::scissors::{scissors, ScissorsSide};
use fuseprint::editing::{
    apply_mask, EditMask, Gesture, PaintValue, PrintProfile, SliceOrientation, UndoHistory,
};
use fuseprint::io::labels::{apply_class_names, load_label_map, read_class_map, save_label_map};
use fuseprint::jobs::JobContext;
use fuseprint::segmentation::mask_of_label;
use fuseprint::segmentation::morphology::dilate;
use fuseprint::volume::{LabelMap, Rgba};
use nalgebra::Point3;
use std::collections::BTreeMap;
use std::path::Path;

fn totalsegmentator(data: &Path) -> LabelMap {
    let dir = data.join("totalsegmentator");
    let (mut map, ()) =
        load_label_map::<()>(&dir.join("example_seg.nii.gz"), &JobContext::detached())
            .expect("loads");
    let names =
        read_class_map(&dir.join("class_map_total.json"), Some("total")).expect("class map");
    apply_class_names(&mut map, &names);
    map
}

#[test]
fn totalsegmentator_labels_round_trip_with_names() {
    let Some(data) = shared_data() else { return };
    let map = totalsegmentator(&data);
    // Names come from the class map, read here independently.
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("totalsegmentator/class_map_total.json")).expect("reads"),
    )
    .expect("JSON");
    let present = map.values_present();
    assert!(present.len() > 10, "{present:?}");
    for v in &present {
        let expected = json["total"][v.to_string()]
            .as_str()
            .expect("every TotalSegmentator id is named");
        assert_eq!(map.table.get(*v).map(|l| l.name.as_str()), Some(expected));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("total.nii.gz");
    let mut profiles = BTreeMap::new();
    profiles.insert(
        present[0],
        PrintProfile {
            material: "PETG".into(),
            color: Rgba::rgb(10, 20, 30),
            infill_percent: 15.0,
            wall_count: 4,
            ..PrintProfile::default()
        },
    );
    let mut edited = map.clone();
    if let Some(l) = edited.table.get_mut(present[1]) {
        l.locked = true;
        l.visible = false;
    }
    save_label_map(&path, &edited, &profiles, false).expect("writes");
    let (back, back_profiles): (LabelMap, BTreeMap<u16, PrintProfile>) =
        load_label_map(&path, &JobContext::detached()).expect("reads back");
    assert!(back.volume.data() == edited.volume.data());
    assert_eq!(back.geometry(), edited.geometry());
    assert_eq!(back.table, edited.table);
    assert_eq!(back_profiles, profiles);
}

#[test]
fn a_session_of_mixed_tools_undoes_and_redoes_bit_for_bit() {
    let Some(data) = shared_data() else { return };
    let mut map = totalsegmentator(&data);
    let start = map.clone();
    let g = map.geometry().clone();
    let liver = 5u16;
    let new_label = map.table.next_free_value();
    let centre = g.center_world();
    let mut history = UndoHistory::default();
    let mut states = vec![map.clone()];
    let keep_others = EditMask {
        overwrite_other_labels: false,
        ..EditMask::default()
    };

    // 1. A 3D sphere stroke through the middle of the abdomen, sparing other organs.
    let mut gesture = Gesture::begin(&mut map, "sphere brush", &keep_others, None).expect("ok");
    let stroke = BrushStroke {
        shape: BrushShape::Sphere,
        radius_mm: 9.0,
        points_in_world: vec![centre, centre + nalgebra::Vector3::new(30.0, 10.0, 6.0)],
    };
    assert!(paint_stroke(&mut gesture, &stroke, PaintValue::Label(new_label)).expect("valid") > 0);
    history.push(gesture.finish());
    states.push(map.clone());
    assert!(
        start.values_present().iter().all(|&v| {
            map.volume.data().iter().filter(|&&x| x == v).count()
                == start.volume.data().iter().filter(|&&x| x == v).count()
        }),
        "other labels untouched"
    );

    // 2. Grow the liver by 3 mm into background only.
    let grown = dilate(&mask_of_label(&map, liver), 3.0).expect("valid radius");
    let mut gesture = Gesture::begin(&mut map, "margin", &keep_others, None).expect("ok");
    apply_mask(&mut gesture, &grown, PaintValue::Label(liver)).expect("same grid");
    history.push(gesture.finish());
    states.push(map.clone());

    // 3. Scissors: erase everything inside a square on a coronal view, slices through the centre.
    let c = g.voxel_from_world_point(centre).map(|x| x.round() as usize);
    let square: Vec<Point3<f64>> = [(-20.0, -15.0), (20.0, -15.0), (20.0, 15.0), (-20.0, 15.0)]
        .iter()
        .map(|(dx, dz)| centre + nalgebra::Vector3::new(*dx, 0.0, *dz))
        .collect();
    let mut gesture = Gesture::begin(&mut map, "scissors", &EditMask::default(), None).expect("ok");
    scissors(
        &mut gesture,
        SliceOrientation::Coronal,
        &square,
        ScissorsSide::Inside,
        Some(c[1] - 3..=c[1] + 3),
        PaintValue::Erase(None),
    )
    .expect("valid polygon");
    history.push(gesture.finish());
    states.push(map.clone());

    // 4. Fill the hole left by the scissors on one axial slice, then interpolate a label drawn
    // on two sagittal slices.
    let mut gesture = Gesture::begin(&mut map, "fill", &EditMask::default(), None).expect("ok");
    fill_in_slice(
        &mut gesture,
        SliceOrientation::Axial,
        c,
        PaintValue::Label(new_label),
    )
    .expect("inside");
    history.push(gesture.finish());
    states.push(map.clone());
    let mut gesture =
        Gesture::begin(&mut map, "draw + interpolate", &EditMask::default(), None).expect("ok");
    for (di, r) in [(-6.0, 4.0), (6.0, 10.0)] {
        let stroke = BrushStroke {
            shape: BrushShape::Disk(SliceOrientation::Sagittal),
            radius_mm: r,
            points_in_world: vec![centre + nalgebra::Vector3::new(di * g.spacing_mm[0], 0.0, 0.0)],
        };
        paint_stroke(&mut gesture, &stroke, PaintValue::Label(new_label + 1)).expect("valid");
    }
    assert!(
        fill_between_slices(&mut gesture, new_label + 1, SliceOrientation::Sagittal)
            .expect("valid")
            > 0
    );
    history.push(gesture.finish());
    states.push(map.clone());

    assert_eq!(history.undo_len(), 5);
    for expected in states.iter().rev().skip(1) {
        history.undo(&mut map).expect("undo");
        assert!(
            map == *expected,
            "undo must restore the previous state exactly"
        );
    }
    assert!(map == start);
    for expected in states.iter().skip(1) {
        history.redo(&mut map).expect("redo");
        assert!(map == *expected, "redo must restore the next state exactly");
    }
    assert!(
        history.memory_bytes() < 1_000_000,
        "{} bytes for five gestures",
        history.memory_bytes()
    );
}
