//! An orbit camera around a point in patient space (LPS millimetres).
//!
//! Conventions every view shares:
//! - `yaw = 0, pitch = 0` is the **anterior** view: the eye sits in front of the patient (−y),
//!   looks toward posterior (+y), superior (+z) is up, so the patient's left (+x) is on the
//!   screen's right (the radiological "facing the patient" view).
//! - `yaw` turns the eye around the superior axis: +90° puts it on the patient's right.
//! - `pitch` lifts the eye toward superior; ±90° are the superior/inferior views, where the
//!   screen's up follows the orbit (anterior up for [`StandardView::Superior`] and
//!   [`StandardView::Inferior`]).
//! - Clip space is wgpu's: x, y in −1..1 (y up), depth 0 (near) .. 1 (far).

use crate::volume::Volume;
use nalgebra::{Matrix4, Point3, Vector3, Vector4};

/// How the scene is projected onto the screen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Projection {
    /// Vertical field of view in degrees.
    Perspective { fov_y_deg: f64 },
    /// Height of the visible window in millimetres (at any distance).
    Orthographic { height_mm: f64 },
}

/// The six views radiologists name; `--view` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardView {
    Anterior,
    Posterior,
    Left,
    Right,
    Superior,
    Inferior,
}

impl StandardView {
    pub const ALL: [StandardView; 6] = [
        Self::Anterior,
        Self::Posterior,
        Self::Left,
        Self::Right,
        Self::Superior,
        Self::Inferior,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Anterior => "anterior",
            Self::Posterior => "posterior",
            Self::Left => "left",
            Self::Right => "right",
            Self::Superior => "superior",
            Self::Inferior => "inferior",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// `(yaw, pitch)` in degrees that put the eye on this side of the patient.
    pub fn yaw_pitch_deg(self) -> (f64, f64) {
        match self {
            Self::Anterior => (0.0, 0.0),
            Self::Posterior => (180.0, 0.0),
            Self::Left => (-90.0, 0.0),
            Self::Right => (90.0, 0.0),
            // Yaw 180 keeps anterior at the top of the screen when looking down the body.
            Self::Superior => (180.0, 90.0),
            Self::Inferior => (0.0, -90.0),
        }
    }
}

/// A ray in world (LPS mm): `origin + t * direction`, direction of unit length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ray {
    pub origin: Point3<f64>,
    pub direction: Vector3<f64>,
}

impl Ray {
    pub fn at(&self, t: f64) -> Point3<f64> {
        self.origin + self.direction * t
    }
}

/// Orbit camera: the eye sits `distance_mm` from `target_world` in the direction given by
/// `yaw_deg`/`pitch_deg` (see the module docs for the conventions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub target_world: Point3<f64>,
    pub yaw_deg: f64,
    pub pitch_deg: f64,
    pub distance_mm: f64,
    pub projection: Projection,
    /// Near and far clip distances from the eye, millimetres.
    pub near_mm: f64,
    pub far_mm: f64,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            target_world: Point3::origin(),
            yaw_deg: 0.0,
            pitch_deg: 0.0,
            distance_mm: 500.0,
            projection: Projection::Perspective { fov_y_deg: 30.0 },
            near_mm: 1.0,
            far_mm: 5000.0,
        }
    }
}

impl Camera {
    /// A camera looking at `target_world` from one of the standard sides.
    pub fn standard(view: StandardView, target_world: Point3<f64>, distance_mm: f64) -> Self {
        let (yaw_deg, pitch_deg) = view.yaw_pitch_deg();
        Self {
            target_world,
            yaw_deg,
            pitch_deg,
            distance_mm,
            ..Self::default()
        }
    }

    pub fn set_view(&mut self, view: StandardView) {
        (self.yaw_deg, self.pitch_deg) = view.yaw_pitch_deg();
    }

    /// Unit vector from the target to the eye.
    pub fn eye_direction(&self) -> Vector3<f64> {
        let (yaw, pitch) = (self.yaw_deg.to_radians(), self.pitch_deg.to_radians());
        Vector3::new(
            -yaw.sin() * pitch.cos(),
            -yaw.cos() * pitch.cos(),
            pitch.sin(),
        )
    }

    /// Screen up in world: the derivative of the eye direction along pitch, so it is
    /// defined (and continuous) even looking straight down the body axis.
    pub fn up(&self) -> Vector3<f64> {
        let (yaw, pitch) = (self.yaw_deg.to_radians(), self.pitch_deg.to_radians());
        Vector3::new(
            yaw.sin() * pitch.sin(),
            yaw.cos() * pitch.sin(),
            pitch.cos(),
        )
    }

    /// Direction the camera looks (from the eye toward the target).
    pub fn forward(&self) -> Vector3<f64> {
        -self.eye_direction()
    }

    /// Screen right in world.
    pub fn right(&self) -> Vector3<f64> {
        self.forward().cross(&self.up())
    }

    pub fn eye_world(&self) -> Point3<f64> {
        self.target_world + self.eye_direction() * self.distance_mm
    }

    pub fn is_orthographic(&self) -> bool {
        matches!(self.projection, Projection::Orthographic { .. })
    }

    /// Rotates the orbit by a drag: yaw wraps, pitch stops at straight up/down.
    pub fn orbit(&mut self, delta_yaw_deg: f64, delta_pitch_deg: f64) {
        self.yaw_deg = (self.yaw_deg + delta_yaw_deg + 180.0).rem_euclid(360.0) - 180.0;
        self.pitch_deg = (self.pitch_deg + delta_pitch_deg).clamp(-90.0, 90.0);
    }

    /// Moves closer (`factor < 1`) or farther; orthographic cameras zoom their window instead.
    pub fn zoom(&mut self, factor: f64) {
        let factor = factor.clamp(1e-3, 1e3);
        match &mut self.projection {
            Projection::Orthographic { height_mm } => *height_mm *= factor,
            Projection::Perspective { .. } => self.distance_mm *= factor,
        }
    }

    /// World-to-camera transform: camera looks down −z with y up (right-handed).
    pub fn view_from_world(&self) -> Matrix4<f64> {
        let eye = self.eye_world();
        let (r, u, f) = (self.right(), self.up(), self.forward());
        #[rustfmt::skip]
        let m = Matrix4::new(
            r.x, r.y, r.z, -r.dot(&eye.coords),
            u.x, u.y, u.z, -u.dot(&eye.coords),
            -f.x, -f.y, -f.z, f.dot(&eye.coords),
            0.0, 0.0, 0.0, 1.0,
        );
        m
    }

    /// Camera-to-clip for a viewport of `aspect = width / height` (wgpu depth 0..1).
    pub fn clip_from_view(&self, aspect: f64) -> Matrix4<f64> {
        let (n, f) = (self.near_mm, self.far_mm.max(self.near_mm * 1.001));
        let aspect = if aspect.is_finite() && aspect > 0.0 {
            aspect
        } else {
            1.0
        };
        match self.projection {
            Projection::Perspective { fov_y_deg } => {
                let sy = 1.0 / (fov_y_deg.to_radians() * 0.5).tan();
                let sx = sy / aspect;
                #[rustfmt::skip]
                let m = Matrix4::new(
                    sx, 0.0, 0.0, 0.0,
                    0.0, sy, 0.0, 0.0,
                    0.0, 0.0, f / (n - f), n * f / (n - f),
                    0.0, 0.0, -1.0, 0.0,
                );
                m
            }
            Projection::Orthographic { height_mm } => {
                let sy = 2.0 / height_mm;
                let sx = sy / aspect;
                #[rustfmt::skip]
                let m = Matrix4::new(
                    sx, 0.0, 0.0, 0.0,
                    0.0, sy, 0.0, 0.0,
                    0.0, 0.0, 1.0 / (n - f), n / (n - f),
                    0.0, 0.0, 0.0, 1.0,
                );
                m
            }
        }
    }

    pub fn clip_from_world(&self, aspect: f64) -> Matrix4<f64> {
        self.clip_from_view(aspect) * self.view_from_world()
    }

    /// Inverse of [`Self::clip_from_world`]: always exists for a valid camera.
    pub fn world_from_clip(&self, aspect: f64) -> Matrix4<f64> {
        self.clip_from_world(aspect)
            .try_inverse()
            .unwrap_or_else(Matrix4::identity)
    }

    /// The ray through the centre of pixel `(x, y)` (top-left origin) of a `width × height`
    /// image, starting on the near plane.
    pub fn ray_through_pixel(&self, x: f64, y: f64, width: u32, height: u32) -> Ray {
        let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
        let ndc_x = (x + 0.5) / w * 2.0 - 1.0;
        let ndc_y = 1.0 - (y + 0.5) / h * 2.0;
        self.ray_through_ndc(ndc_x, ndc_y, w / h)
    }

    /// The ray through normalised device coordinates (−1..1, y up).
    pub fn ray_through_ndc(&self, ndc_x: f64, ndc_y: f64, aspect: f64) -> Ray {
        let inv = self.world_from_clip(aspect);
        let unproject = |z: f64| {
            let p = inv * Vector4::new(ndc_x, ndc_y, z, 1.0);
            Point3::new(p.x / p.w, p.y / p.w, p.z / p.w)
        };
        let (near, far) = (unproject(0.0), unproject(1.0));
        let d = far - near;
        let direction = if d.norm() > 0.0 {
            d.normalize()
        } else {
            self.forward()
        };
        Ray {
            origin: near,
            direction,
        }
    }

    /// Where a world point lands in pixels (top-left origin), `None` behind the eye.
    pub fn project_to_pixel(&self, p: Point3<f64>, width: u32, height: u32) -> Option<[f64; 2]> {
        let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
        let c = self.clip_from_world(w / h) * p.to_homogeneous();
        if c.w <= 0.0 {
            return None;
        }
        let (x, y) = (c.x / c.w, c.y / c.w);
        Some([(x + 1.0) * 0.5 * w - 0.5, (1.0 - y) * 0.5 * h - 0.5])
    }

    /// Aims at the centre of a world box and backs off until its bounding sphere fills the
    /// smaller side of an `aspect` viewport (with a small margin); near/far enclose it.
    pub fn fit_to_bounds(&mut self, min_world: Point3<f64>, max_world: Point3<f64>, aspect: f64) {
        let center = nalgebra::center(&min_world, &max_world);
        let radius = ((max_world - min_world).norm() * 0.5).max(1e-3) * 1.05;
        let aspect = if aspect.is_finite() && aspect > 0.0 {
            aspect
        } else {
            1.0
        };
        self.target_world = center;
        match &mut self.projection {
            Projection::Perspective { fov_y_deg } => {
                let half_y = (*fov_y_deg).to_radians() * 0.5;
                let half_x = (half_y.tan() * aspect).atan();
                self.distance_mm = radius / half_y.min(half_x).sin();
            }
            Projection::Orthographic { height_mm } => {
                *height_mm = 2.0 * radius / aspect.min(1.0);
                self.distance_mm = radius * 2.0;
            }
        }
        self.near_mm = (self.distance_mm - radius).max(self.distance_mm * 1e-3);
        self.far_mm = self.distance_mm + radius;
    }
}

/// World bounding box (LPS mm) of a volume's voxels, outer faces included.
pub fn volume_bounds_world(volume: &Volume<f32>) -> [Point3<f64>; 2] {
    let g = volume.geometry();
    let [nx, ny, nz] = g.dims.map(|d| d as f64 - 0.5);
    let (mut lo, mut hi) = (
        Point3::new(f64::INFINITY, f64::INFINITY, f64::INFINITY),
        Point3::new(f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY),
    );
    for i in [-0.5, nx] {
        for j in [-0.5, ny] {
            for k in [-0.5, nz] {
                let c = g.world_from_voxel_point([i, j, k]);
                for a in 0..3 {
                    lo[a] = lo[a].min(c[a]);
                    hi[a] = hi[a].max(c[a]);
                }
            }
        }
    }
    [lo, hi]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Vector3<f64>, b: Vector3<f64>) -> bool {
        (a - b).norm() < 1e-9
    }

    #[test]
    fn anterior_view_puts_patient_left_on_screen_right_and_superior_up() {
        let cam = Camera::default();
        assert!(close(cam.forward(), Vector3::new(0.0, 1.0, 0.0)));
        assert!(close(cam.up(), Vector3::new(0.0, 0.0, 1.0)));
        assert!(close(cam.right(), Vector3::new(1.0, 0.0, 0.0)));
    }

    #[test]
    fn standard_views_look_from_their_side_with_an_orthonormal_frame() {
        let expected_eye = [
            (StandardView::Anterior, Vector3::new(0.0, -1.0, 0.0)),
            (StandardView::Posterior, Vector3::new(0.0, 1.0, 0.0)),
            (StandardView::Left, Vector3::new(1.0, 0.0, 0.0)),
            (StandardView::Right, Vector3::new(-1.0, 0.0, 0.0)),
            (StandardView::Superior, Vector3::new(0.0, 0.0, 1.0)),
            (StandardView::Inferior, Vector3::new(0.0, 0.0, -1.0)),
        ];
        for (view, eye) in expected_eye {
            let cam = Camera::standard(view, Point3::origin(), 100.0);
            assert!(close(cam.eye_direction(), eye), "{view:?}");
            let (r, u, f) = (cam.right(), cam.up(), cam.forward());
            assert!((r.norm() - 1.0).abs() < 1e-9 && (u.norm() - 1.0).abs() < 1e-9);
            assert!(r.dot(&u).abs() < 1e-9 && u.dot(&f).abs() < 1e-9);
            assert_eq!(StandardView::from_name(view.name()), Some(view));
        }
        // Looking down the body, anterior is at the top of the screen.
        for view in [StandardView::Superior, StandardView::Inferior] {
            let cam = Camera::standard(view, Point3::origin(), 100.0);
            assert!(close(cam.up(), Vector3::new(0.0, -1.0, 0.0)), "{view:?}");
        }
    }

    #[test]
    fn projecting_then_casting_a_ray_returns_to_the_point() {
        for projection in [
            Projection::Perspective { fov_y_deg: 40.0 },
            Projection::Orthographic { height_mm: 300.0 },
        ] {
            let mut cam = Camera {
                target_world: Point3::new(10.0, -20.0, 30.0),
                yaw_deg: 33.0,
                pitch_deg: -21.0,
                distance_mm: 400.0,
                projection,
                near_mm: 10.0,
                far_mm: 2000.0,
            };
            cam.orbit(5.0, 3.0);
            let p = Point3::new(40.0, 5.0, 12.0);
            let [x, y] = cam.project_to_pixel(p, 320, 200).unwrap();
            let ray = cam.ray_through_pixel(x, y, 320, 200);
            // The point lies on the ray: its distance to the ray's line is ~0.
            let v = p - ray.origin;
            let off_line = (v - ray.direction * v.dot(&ray.direction)).norm();
            assert!(off_line < 1e-6, "{projection:?}: {off_line}");
            assert!(v.dot(&ray.direction) > 0.0);
        }
    }

    #[test]
    fn the_centre_pixel_looks_at_the_target() {
        let cam = Camera::standard(StandardView::Left, Point3::new(1.0, 2.0, 3.0), 250.0);
        let [x, y] = cam.project_to_pixel(cam.target_world, 101, 51).unwrap();
        assert!((x - 50.0).abs() < 1e-9 && (y - 25.0).abs() < 1e-9);
        let ray = cam.ray_through_pixel(50.0, 25.0, 101, 51);
        assert!(close(ray.direction, cam.forward()));
    }

    #[test]
    fn fit_to_bounds_keeps_every_corner_on_screen() {
        let (lo, hi) = (
            Point3::new(-50.0, -80.0, 0.0),
            Point3::new(70.0, 40.0, 300.0),
        );
        for projection in [
            Projection::Perspective { fov_y_deg: 30.0 },
            Projection::Orthographic { height_mm: 1.0 },
        ] {
            for (w, h) in [(400, 300), (300, 400)] {
                let mut cam = Camera {
                    projection,
                    yaw_deg: 20.0,
                    pitch_deg: 10.0,
                    ..Camera::default()
                };
                cam.fit_to_bounds(lo, hi, f64::from(w) / f64::from(h));
                for corner in 0..8 {
                    let p = Point3::new(
                        if corner & 1 == 0 { lo.x } else { hi.x },
                        if corner & 2 == 0 { lo.y } else { hi.y },
                        if corner & 4 == 0 { lo.z } else { hi.z },
                    );
                    let [x, y] = cam.project_to_pixel(p, w, h).unwrap();
                    assert!((0.0..f64::from(w)).contains(&x), "{projection:?} x {x}");
                    assert!((0.0..f64::from(h)).contains(&y), "{projection:?} y {y}");
                    let depth = (p - cam.eye_world()).dot(&cam.forward());
                    assert!(depth >= cam.near_mm - 1e-6 && depth <= cam.far_mm + 1e-6);
                }
            }
        }
    }

    #[test]
    fn pitch_stops_at_the_poles_and_yaw_wraps() {
        let mut cam = Camera::default();
        cam.orbit(370.0, 200.0);
        assert!((cam.pitch_deg - 90.0).abs() < 1e-12);
        assert!((cam.yaw_deg - 10.0).abs() < 1e-9);
    }
}
