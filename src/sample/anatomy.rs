//! The analytic head phantom: which tissue sits at a world point (CT frame, LPS mm).

use nalgebra::{Point3, Vector3};

/// Semi-axes of the head's outer surface (left-right, anterior-posterior, inferior-superior), mm.
const HEAD_SEMI_AXES_MM: [f64; 3] = [72.0, 88.0, 64.0];
const SCALP_MM: f64 = 4.0;
const SKULL_MM: f64 = 7.0;
/// The diploe is the spongy middle third of the skull.
const OUTER_TABLE_MM: f64 = 2.5;
const DIPLOE_MM: f64 = 2.0;

/// Centre line of the contrast-filled vessel (an oblique straight tube inside the brain).
pub const VESSEL_START_MM: [f64; 3] = [-12.0, -25.0, -40.0];
pub const VESSEL_END_MM: [f64; 3] = [-18.0, -35.0, 40.0];
const VESSEL_RADIUS_MM: f64 = 3.0;

/// A spherical lesion in the left, anterior, upper brain (LPS: x > 0 is left, y < 0 anterior).
pub const LESION_CENTER_MM: [f64; 3] = [28.0, -15.0, 15.0];
pub const LESION_RADIUS_MM: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tissue {
    Air,
    /// Skin and subcutaneous fat.
    Scalp,
    CorticalBone,
    Diploe,
    Brain,
    Vessel,
    Lesion,
}

impl Tissue {
    /// CT number (Hounsfield units).
    pub fn ct_hu(self) -> f32 {
        match self {
            Tissue::Air => -1000.0,
            Tissue::Scalp => -60.0,
            Tissue::CorticalBone => 1300.0,
            Tissue::Diploe => 600.0,
            Tissue::Brain => 35.0,
            Tissue::Vessel => 300.0,
            Tissue::Lesion => 60.0,
        }
    }

    /// T1-weighted-like MR signal before bias field and noise: bone is dark, fat bright,
    /// the lesion hyperintense (as after gadolinium) and flowing blood moderately bright.
    pub fn mr_signal(self) -> f32 {
        match self {
            Tissue::Air => 0.0,
            Tissue::Scalp => 800.0,
            Tissue::CorticalBone => 40.0,
            Tissue::Diploe => 450.0,
            Tissue::Brain => 400.0,
            Tissue::Vessel => 650.0,
            Tissue::Lesion => 950.0,
        }
    }
}

/// Whether `p` lies inside the head ellipsoid shrunk by `inset_mm` along each semi-axis.
fn inside_head_inset(p: &Point3<f64>, inset_mm: f64) -> bool {
    let [a, b, c] = HEAD_SEMI_AXES_MM.map(|s| s - inset_mm);
    (p.x / a).powi(2) + (p.y / b).powi(2) + (p.z / c).powi(2) <= 1.0
}

fn distance_to_segment(p: &Point3<f64>, a: [f64; 3], b: [f64; 3]) -> f64 {
    let a = Point3::from(a);
    let ab: Vector3<f64> = Point3::from(b) - a;
    let t = ((p - a).dot(&ab) / ab.norm_squared()).clamp(0.0, 1.0);
    (p - (a + ab * t)).norm()
}

/// The tissue at a world point of the CT frame.
pub fn tissue_at(p: &Point3<f64>) -> Tissue {
    if !inside_head_inset(p, 0.0) {
        return Tissue::Air;
    }
    if !inside_head_inset(p, SCALP_MM) {
        return Tissue::Scalp;
    }
    if !inside_head_inset(p, SCALP_MM + SKULL_MM) {
        let in_diploe = inside_head_inset(p, SCALP_MM + OUTER_TABLE_MM)
            && !inside_head_inset(p, SCALP_MM + OUTER_TABLE_MM + DIPLOE_MM);
        return if in_diploe {
            Tissue::Diploe
        } else {
            Tissue::CorticalBone
        };
    }
    if (p - Point3::from(LESION_CENTER_MM)).norm() <= LESION_RADIUS_MM {
        return Tissue::Lesion;
    }
    if distance_to_segment(p, VESSEL_START_MM, VESSEL_END_MM) <= VESSEL_RADIUS_MM {
        return Tissue::Vessel;
    }
    Tissue::Brain
}

/// Where to find each tissue for tests: a world point (CT frame) well inside it.
pub fn point_inside(tissue: Tissue) -> [f64; 3] {
    let [a, _, _] = HEAD_SEMI_AXES_MM;
    match tissue {
        Tissue::Air => [a + 10.0, 0.0, 0.0],
        Tissue::Scalp => [a - SCALP_MM / 2.0, 0.0, 0.0],
        Tissue::CorticalBone => [a - SCALP_MM - 1.0, 0.0, 0.0],
        Tissue::Diploe => [a - SCALP_MM - OUTER_TABLE_MM - DIPLOE_MM / 2.0, 0.0, 0.0],
        Tissue::Brain => [0.0, -40.0, 0.0],
        Tissue::Vessel => midpoint(VESSEL_START_MM, VESSEL_END_MM),
        Tissue::Lesion => LESION_CENTER_MM,
    }
}

fn midpoint(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        (a[0] + b[0]) / 2.0,
        (a[1] + b[1]) / 2.0,
        (a[2] + b[2]) / 2.0,
    ]
}
