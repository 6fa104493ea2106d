//! The bundled sample study: a synthetic head CT and a misaligned MR of the same anatomy.
//!
//! Everything is generated from one analytic phantom (no files), so every property has a known
//! answer: the tissue at any world point, the CT number of each tissue, and the rigid transform
//! that maps the CT's world onto the MR's. Later stages (registration, segmentation) test
//! against it; the desktop window opens with it so a new user sees something real at once.
//!
//! The phantom lives in the CT's world frame (LPS mm, head centred on the origin):
//! an ellipsoidal head with a 4 mm scalp, a 7 mm skull (cortical tables around a diploe), brain,
//! an oblique contrast-filled vessel and a spherical lesion.

mod anatomy;

pub use anatomy::{
    point_inside, Tissue, LESION_CENTER_MM, LESION_RADIUS_MM, VESSEL_END_MM, VESSEL_START_MM,
};

use crate::io::LoadedImage;
use crate::volume::{
    ImageMeta, LabelInfo, LabelMap, LabelTable, Modality, Rgba, Volume, VolumeGeometry,
};
use nalgebra::{Matrix3, Matrix4, Point3, Rotation3, Translation3, Vector3};

/// Label values of [`SampleStudy::labels`].
pub const LABEL_BONE: u16 = 1;
pub const LABEL_BRAIN: u16 = 2;
pub const LABEL_VESSEL: u16 = 3;
pub const LABEL_LESION: u16 = 4;

/// Rotation of the MR relative to the CT about the superior (z) axis, degrees.
pub const MR_ROTATION_DEG: f64 = 6.0;
/// Translation of the MR relative to the CT, LPS mm.
pub const MR_TRANSLATION_MM: [f64; 3] = [5.0, -3.0, 2.0];

/// A CT + MR pair of one synthetic head, with the ground truth that relates them.
#[derive(Debug, Clone)]
pub struct SampleStudy {
    /// 160×160×120 at 1.2 mm, axis-aligned LPS, values in HU.
    pub ct: LoadedImage,
    /// 210×210×100 at 1.0×1.0×1.5 mm, stored right-to-left and anterior-to-posterior
    /// (direction diag(−1, −1, 1), like a NIfTI written in RAS order), arbitrary units.
    pub mr: LoadedImage,
    /// Maps a CT world point to the MR world point that shows the same anatomy
    /// (`translate(MR_TRANSLATION_MM) · rotate_z(MR_ROTATION_DEG)`).
    pub mr_world_from_ct_world: Matrix4<f64>,
    /// Bone, brain, vessel and lesion on the CT grid (values `LABEL_*`).
    pub labels: LabelMap,
}

impl SampleStudy {
    /// Builds the study; deterministic (same bytes every call), well under a second.
    pub fn generate() -> Self {
        let mr_world_from_ct_world = ground_truth_mr_world_from_ct_world();
        let ct_world_from_mr_world = mr_world_from_ct_world
            .try_inverse()
            .unwrap_or_else(Matrix4::identity);

        let ct_geometry = ct_geometry();
        let ct_world_from_voxel = ct_geometry.world_from_voxel();
        let tissue_at_ct_voxel = |[i, j, k]: [usize; 3]| {
            let p = ct_world_from_voxel.transform_point(&Point3::new(i as f64, j as f64, k as f64));
            anatomy::tissue_at(&p)
        };
        let ct_volume = Volume::from_fn(ct_geometry.clone(), |ijk| tissue_at_ct_voxel(ijk).ct_hu());
        let label_volume = Volume::from_fn(ct_geometry, |ijk| label_of(tissue_at_ct_voxel(ijk)));

        let mr_geometry = mr_geometry();
        let mr_world_from_voxel = mr_geometry.world_from_voxel();
        let [mx, my, _] = mr_geometry.dims;
        let mr_volume = Volume::from_fn(mr_geometry, |[i, j, k]| {
            let p_mr =
                mr_world_from_voxel.transform_point(&Point3::new(i as f64, j as f64, k as f64));
            let tissue = anatomy::tissue_at(&ct_world_from_mr_world.transform_point(&p_mr));
            let clean = tissue.mr_signal() * bias_field(&p_mr);
            let noise = gaussian_noise((i + mx * (j + my * k)) as u64) * MR_NOISE_SIGMA;
            // Magnitude images are Rician: never negative, a noise floor in the air.
            (clean + noise).abs()
        });

        let ct = LoadedImage {
            volume: ct_volume,
            meta: sample_meta(Modality::Ct, "Sample CT (synthetic head phantom)"),
        };
        let mr = LoadedImage {
            volume: mr_volume,
            meta: sample_meta(Modality::Mr, "Sample MR T1 (synthetic, misaligned)"),
        };
        Self {
            ct,
            mr,
            mr_world_from_ct_world,
            labels: LabelMap::new(label_volume, label_table()),
        }
    }
}

const MR_NOISE_SIGMA: f32 = 12.0;

fn ground_truth_mr_world_from_ct_world() -> Matrix4<f64> {
    let rotation = Rotation3::from_axis_angle(&Vector3::z_axis(), MR_ROTATION_DEG.to_radians())
        .to_homogeneous();
    let [tx, ty, tz] = MR_TRANSLATION_MM;
    Translation3::new(tx, ty, tz).to_homogeneous() * rotation
}

/// A grid centred on the world origin.
fn centred_geometry(
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    direction: Matrix3<f64>,
) -> VolumeGeometry {
    let half_extent = Vector3::new(
        (dims[0] - 1) as f64 * spacing_mm[0] / 2.0,
        (dims[1] - 1) as f64 * spacing_mm[1] / 2.0,
        (dims[2] - 1) as f64 * spacing_mm[2] / 2.0,
    );
    let origin = -(direction * half_extent);
    VolumeGeometry::new(dims, spacing_mm, [origin.x, origin.y, origin.z], direction)
        .expect("constant sample geometry is valid")
}

fn ct_geometry() -> VolumeGeometry {
    centred_geometry([160, 160, 120], [1.2, 1.2, 1.2], Matrix3::identity())
}

fn mr_geometry() -> VolumeGeometry {
    centred_geometry(
        [210, 210, 100],
        [1.0, 1.0, 1.5],
        Matrix3::from_diagonal(&Vector3::new(-1.0, -1.0, 1.0)),
    )
}

/// A smooth multiplicative intensity inhomogeneity, ±~20 % across the head, as a receive coil
/// gives; defined in the MR's own frame because it belongs to the scanner, not the anatomy.
fn bias_field(p_mr: &Point3<f64>) -> f32 {
    let b = 1.0 + 0.12 * (p_mr.x / 90.0) - 0.08 * (p_mr.y / 90.0)
        + 0.06 * ((p_mr.z / 60.0) * std::f64::consts::FRAC_PI_2).sin();
    b as f32
}

/// Deterministic approximately-normal noise (Irwin–Hall sum of 4 uniforms) from a seed.
fn gaussian_noise(seed: u64) -> f32 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut sum = 0.0f32;
    for _ in 0..4 {
        state = splitmix64(state);
        sum += (state >> 40) as f32 / (1u64 << 24) as f32;
    }
    // Sum of 4 U(0,1) has mean 2 and variance 1/3.
    (sum - 2.0) * 3f32.sqrt()
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn label_of(tissue: Tissue) -> u16 {
    match tissue {
        Tissue::Air | Tissue::Scalp => 0,
        Tissue::CorticalBone | Tissue::Diploe => LABEL_BONE,
        Tissue::Brain => LABEL_BRAIN,
        Tissue::Vessel => LABEL_VESSEL,
        Tissue::Lesion => LABEL_LESION,
    }
}

fn label_table() -> LabelTable {
    let mut table = LabelTable::new();
    table.insert(LabelInfo::new(
        LABEL_BONE,
        "Bone",
        Rgba([241, 214, 145, 255]),
    ));
    table.insert(LabelInfo::new(
        LABEL_BRAIN,
        "Brain",
        Rgba([250, 190, 190, 255]),
    ));
    table.insert(LabelInfo::new(
        LABEL_VESSEL,
        "Vessel",
        Rgba([216, 40, 40, 255]),
    ));
    table.insert(LabelInfo::new(
        LABEL_LESION,
        "Lesion",
        Rgba([90, 200, 90, 255]),
    ));
    table
}

fn sample_meta(modality: Modality, description: &str) -> ImageMeta {
    let mut meta = ImageMeta::new(modality, description);
    meta.source = "built-in sample study".to_string();
    meta
}

#[cfg(test)]
mod tests;
