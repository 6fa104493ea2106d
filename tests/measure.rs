//! Measurements on a real CT and its TotalSegmentator label map.

mod common;

use fuseprint::io::labels::{apply_class_names, read_class_map};
use fuseprint::jobs::JobContext;
use fuseprint::measure::{label_volumes, region_stats, Region};

#[test]
fn label_volumes_and_hu_statistics_on_a_real_ct() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let ctx = JobContext::detached();
    let dir = data.join("totalsegmentator");
    let ct = fuseprint::io::load_image(&dir.join("example_ct_sm.nii.gz"), &ctx).expect("CT");
    let mut seg =
        fuseprint::io::nifti::read_labels(&dir.join("example_seg.nii.gz"), &ctx).expect("seg");
    let names = read_class_map(&dir.join("class_map_total.json"), None).expect("class map");
    apply_class_names(&mut seg, &names);

    // Volume = count × |det(world_from_voxel)|, computed here from the affine directly.
    let m = seg.geometry().world_from_voxel();
    let voxel_ml = m.fixed_view::<3, 3>(0, 0).into_owned().determinant().abs() / 1000.0;
    let rows = label_volumes(&seg);
    assert!(rows.len() > 5, "only {} labels", rows.len());
    let background = seg.volume.data().iter().filter(|v| **v == 0).count() as u64;
    let labelled: u64 = rows.iter().map(|r| r.voxel_count).sum();
    assert_eq!(labelled + background, seg.volume.data().len() as u64);

    let mut physical_checks = 0;
    for row in &rows {
        assert!((row.volume_ml - row.voxel_count as f64 * voxel_ml).abs() < 1e-9);
        if row.voxel_count == 0 {
            continue;
        }
        let stats = region_stats(&ct.volume, &Region::Label { value: row.value }, Some(&seg))
            .expect("stats");
        assert_eq!(stats.voxel_count, row.voxel_count, "{}", row.name);
        assert!(stats.min <= stats.median && stats.median <= stats.max);
        assert!(stats.min <= stats.mean && stats.mean <= stats.max);
        // Tissue physics, not numbers from this code: aerated lung is far below water,
        // liver parenchyma is soft tissue.
        if row.name.starts_with("lung_") && row.voxel_count > 100 {
            assert!(stats.mean < -500.0, "{} mean {} HU", row.name, stats.mean);
            physical_checks += 1;
        }
        if row.name == "liver" && row.voxel_count > 100 {
            assert!(
                (0.0..150.0).contains(&stats.mean),
                "liver mean {} HU",
                stats.mean
            );
            physical_checks += 1;
        }
    }
    assert!(
        physical_checks > 0,
        "neither lung nor liver in the label map"
    );

    // A 30 mm sphere at the centre of the scan (inside it on every axis).
    let g = ct.volume.geometry();
    let centre = g.center_world();
    let s = region_stats(
        &ct.volume,
        &Region::Sphere {
            centre_mm: [centre.x, centre.y, centre.z],
            radius_mm: 30.0,
        },
        None,
    )
    .expect("sphere stats");
    let sphere_ml = 4.0 / 3.0 * std::f64::consts::PI * 27_000.0 / 1000.0;
    // Centre sampling on 3 mm voxels: within a few percent of the true sphere volume.
    assert!(
        (s.volume_ml - sphere_ml).abs() / sphere_ml < 0.1,
        "{} ml vs {sphere_ml} ml",
        s.volume_ml
    );
}
