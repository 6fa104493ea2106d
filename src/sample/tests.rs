use super::*;
use crate::volume::resample::nearest_at;
use std::sync::OnceLock;

/// Generated once for the whole module: every test reads the same study.
fn study() -> &'static SampleStudy {
    static STUDY: OnceLock<SampleStudy> = OnceLock::new();
    STUDY.get_or_init(SampleStudy::generate)
}

fn value_at_world<T: Copy + Send + Sync>(volume: &Volume<T>, p: [f64; 3]) -> Option<T> {
    let ijk = volume.geometry().voxel_from_world_point(Point3::from(p));
    nearest_at(volume, ijk)
}

#[test]
fn ct_has_head_sized_grid_and_each_tissue_has_its_ct_number() {
    let ct = &study().ct.volume;
    assert_eq!(ct.dims(), [160, 160, 120]);
    assert_eq!(study().ct.meta.modality, Modality::Ct);
    let hu = |t: Tissue| value_at_world(ct, point_inside(t)).expect("landmark inside the CT grid");
    assert_eq!(hu(Tissue::Air), -1000.0);
    assert!((1000.0..=1500.0).contains(&hu(Tissue::CorticalBone)));
    assert!(hu(Tissue::Diploe) > 200.0 && hu(Tissue::Diploe) < hu(Tissue::CorticalBone));
    assert!((30.0..=40.0).contains(&hu(Tissue::Brain)));
    assert!((250.0..=350.0).contains(&hu(Tissue::Vessel)));
    assert!((50.0..=70.0).contains(&hu(Tissue::Lesion)));
    assert!(hu(Tissue::Scalp) < 0.0 && hu(Tissue::Scalp) > -200.0);
}

#[test]
fn labels_sit_on_the_ct_grid_and_match_the_tissues() {
    let s = study();
    assert!(s.labels.geometry().same_grid(s.ct.volume.geometry(), 1e-9));
    let label = |t: Tissue| value_at_world(&s.labels.volume, point_inside(t)).expect("inside");
    assert_eq!(label(Tissue::Air), 0);
    assert_eq!(label(Tissue::CorticalBone), LABEL_BONE);
    assert_eq!(label(Tissue::Diploe), LABEL_BONE);
    assert_eq!(label(Tissue::Brain), LABEL_BRAIN);
    assert_eq!(label(Tissue::Vessel), LABEL_VESSEL);
    assert_eq!(label(Tissue::Lesion), LABEL_LESION);
    // The lesion's voxel volume approximates the sphere's (4/3·π·r³ = 4.19 ml at r = 10 mm).
    let expected_ml = 4.0 / 3.0 * std::f64::consts::PI * LESION_RADIUS_MM.powi(3) / 1000.0;
    let measured_ml = s.labels.label_volume_ml(LABEL_LESION);
    assert!(
        (measured_ml - expected_ml).abs() / expected_ml < 0.05,
        "{measured_ml} ml"
    );
}

#[test]
fn mr_is_on_another_flipped_grid() {
    let mr = &study().mr;
    let g = mr.volume.geometry();
    assert_eq!(mr.meta.modality, Modality::Mr);
    assert_eq!(g.spacing_mm, [1.0, 1.0, 1.5]);
    assert!(!g.same_grid(study().ct.volume.geometry(), 1e-3));
    // Voxel i grows to the patient's right: world x decreases.
    let step =
        g.world_from_voxel_point([1.0, 0.0, 0.0]) - g.world_from_voxel_point([0.0, 0.0, 0.0]);
    assert!(step.x < -0.99);
}

#[test]
fn ground_truth_maps_ct_landmarks_onto_the_mr_anatomy() {
    let s = study();
    let vessel_ct = point_inside(Tissue::Vessel);
    let lesion_ct = point_inside(Tissue::Lesion);
    let to_mr = |p: [f64; 3]| {
        let q = s.mr_world_from_ct_world.transform_point(&Point3::from(p));
        [q.x, q.y, q.z]
    };
    let mr_at = |p: [f64; 3]| value_at_world(&s.mr.volume, p).expect("inside the MR grid");
    let brain_mr = mr_at(to_mr(point_inside(Tissue::Brain)));
    // Through the transform, the MR shows the vessel and the lesion brighter than brain.
    assert!(mr_at(to_mr(vessel_ct)) > brain_mr * 1.3);
    assert!(mr_at(to_mr(lesion_ct)) > brain_mr * 2.0);
    // Without it (identity), the vessel's CT position falls beside the 3 mm tube on the MR:
    // the misalignment is real.
    let moved = (Point3::from(to_mr(vessel_ct)) - Point3::from(vessel_ct)).norm();
    assert!(moved > 5.0, "moved {moved} mm");
    assert!(mr_at(vessel_ct) < brain_mr * 1.3);
    // Bone is dark on MR, bright on CT.
    assert!(mr_at(to_mr(point_inside(Tissue::CorticalBone))) < brain_mr * 0.5);
}

#[test]
fn generation_is_deterministic() {
    let again = SampleStudy::generate();
    assert_eq!(again.mr.volume.data(), study().mr.volume.data());
    assert_eq!(again.ct.volume.data(), study().ct.volume.data());
}
