//! How a fixed image (CT) and a registered moving image (MRI) combine on a slice.
//!
//! The shader (`shaders/slice.wgsl`) and [`fuse_pixel`] implement the same formulas; the CPU
//! version is the reference the GPU tests compare against. Colours below are the colour-mapped
//! layers, `c_f` (fixed) and `c_m` (moving), each in `[0, 1]`:
//! - alpha blend: `mix(c_f, c_m, weight)`;
//! - colour overlay: `mix(c_f, c_m, opacity * t_m)` with `t_m` the moving image's windowed
//!   value, so dark MRI lets the CT show through;
//! - checkerboard: squares of `square_mm` in plane millimetres measured from the viewport
//!   centre; even squares (`floor(a/s) + floor(b/s)` even) show `c_f`, odd ones `c_m`;
//! - gradient weighted: `w = smoothstep(edge_low, edge_high, |∇CT|)` with the CT gradient in
//!   units per mm (central differences one voxel apart, turned into world units through the
//!   grid's `voxel_from_world`); the pixel is `mix(c_m, c_f, w)`: CT at strong edges (bone
//!   cortex, around 500 HU/mm), MRI in soft tissue where CT is flat.

use super::colormap::Colormap;

/// Window/level: `center ± width/2` maps to black…white.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f32,
    pub width: f32,
}

impl Window {
    pub const fn new(center: f32, width: f32) -> Self {
        Self { center, width }
    }

    pub fn low(&self) -> f32 {
        self.center - self.width / 2.0
    }

    /// Value to `[0, 1]` exactly as the shader does it.
    pub fn normalise(&self, value: f32) -> f32 {
        ((value - self.low()) / self.width.max(1e-6)).clamp(0.0, 1.0)
    }
}

/// Window and colour map of one image layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerStyle {
    pub window: Window,
    pub colormap: Colormap,
}

impl LayerStyle {
    pub const fn new(window: Window, colormap: Colormap) -> Self {
        Self { window, colormap }
    }

    /// The layer's colour for a voxel value, 0…1 per channel (8-bit table, as on the GPU).
    pub fn color(&self, value: f32) -> [f32; 3] {
        let c = self.colormap.apply(self.window.normalise(value));
        [c[0], c[1], c[2]].map(|x| f32::from(x) / 255.0)
    }
}

/// How the moving image joins the fixed one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Fusion {
    /// The fixed image alone.
    #[default]
    FixedOnly,
    /// `weight` of the moving image, `1 - weight` of the fixed.
    AlphaBlend { weight: f32 },
    /// The moving image's colour map over the fixed one, its brightness as alpha.
    ColorOverlay { opacity: f32 },
    /// Alternating squares of each image, side in millimetres.
    Checkerboard { square_mm: f32 },
    /// CT where its gradient (units/mm) is high, MRI elsewhere; see the module docs.
    GradientWeighted { edge_low: f32, edge_high: f32 },
}

impl Fusion {
    /// All modes with sensible defaults, for benchmarks and menus.
    pub const ALL: [Fusion; 5] = [
        Fusion::FixedOnly,
        Fusion::AlphaBlend { weight: 0.5 },
        Fusion::ColorOverlay { opacity: 0.8 },
        Fusion::Checkerboard { square_mm: 20.0 },
        Fusion::GradientWeighted {
            edge_low: 50.0,
            edge_high: 300.0,
        },
    ];

    /// `(mode code, p0, p1)` for the shader.
    pub(crate) fn shader_code(&self) -> [f32; 3] {
        match *self {
            Fusion::FixedOnly => [0.0, 0.0, 0.0],
            Fusion::AlphaBlend { weight } => [1.0, weight.clamp(0.0, 1.0), 0.0],
            Fusion::ColorOverlay { opacity } => [2.0, opacity.clamp(0.0, 1.0), 0.0],
            Fusion::Checkerboard { square_mm } => [3.0, square_mm.max(1e-3), 0.0],
            Fusion::GradientWeighted {
                edge_low,
                edge_high,
            } => [4.0, edge_low, edge_high.max(edge_low + 1e-3)],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Fusion::FixedOnly => "fixed only",
            Fusion::AlphaBlend { .. } => "alpha blend",
            Fusion::ColorOverlay { .. } => "colour overlay",
            Fusion::Checkerboard { .. } => "checkerboard",
            Fusion::GradientWeighted { .. } => "gradient weighted",
        }
    }
}

/// What one slice pixel sees, for [`fuse_pixel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelSamples {
    /// Fixed value, `None` outside its grid.
    pub fixed: Option<f32>,
    /// Moving value, `None` outside its grid.
    pub moving: Option<f32>,
    /// Position in the plane, mm from the viewport centre along (right, down).
    pub plane_mm: [f32; 2],
    /// |∇ fixed| in units per mm (only read by the gradient-weighted mode).
    pub fixed_gradient_mm: f32,
}

/// The CPU twin of the shader's fusion: the pixel colour (0…1) before any label overlay.
pub fn fuse_pixel(
    fusion: Fusion,
    fixed_style: &LayerStyle,
    moving_style: &LayerStyle,
    s: &PixelSamples,
) -> [f32; 3] {
    let c_f = s.fixed.map_or([0.0; 3], |v| fixed_style.color(v));
    let c_m = s.moving.map_or([0.0; 3], |v| moving_style.color(v));
    let t_m = s.moving.map_or(0.0, |v| moving_style.window.normalise(v));
    let [code, p0, p1] = fusion.shader_code();
    let mix = |a: [f32; 3], b: [f32; 3], t: f32| [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t);
    match code as i32 {
        1 => mix(c_f, c_m, p0),
        2 => mix(c_f, c_m, p0 * t_m),
        3 => {
            let cell = (s.plane_mm[0] / p0).floor() as i64 + (s.plane_mm[1] / p0).floor() as i64;
            if cell.rem_euclid(2) == 0 {
                c_f
            } else {
                c_m
            }
        }
        4 => {
            let w = if s.fixed.is_some() {
                smoothstep(p0, p1, s.fixed_gradient_mm)
            } else {
                0.0
            };
            mix(c_m, c_f, w)
        }
        _ => c_f,
    }
}

/// WGSL's `smoothstep`.
pub fn smoothstep(low: f32, high: f32, x: f32) -> f32 {
    let t = ((x - low) / (high - low)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(center: f32, width: f32) -> LayerStyle {
        LayerStyle::new(Window::new(center, width), Colormap::Grey)
    }

    fn samples(fixed: f32, moving: f32, plane_mm: [f32; 2], grad: f32) -> PixelSamples {
        PixelSamples {
            fixed: Some(fixed),
            moving: Some(moving),
            plane_mm,
            fixed_gradient_mm: grad,
        }
    }

    #[test]
    fn alpha_blend_weights_the_two_layers() {
        // Fixed white, moving black: 25 % moving leaves 75 % white.
        let c = fuse_pixel(
            Fusion::AlphaBlend { weight: 0.25 },
            &grey(0.0, 2.0),
            &grey(0.0, 2.0),
            &samples(1.0, -1.0, [0.0; 2], 0.0),
        );
        assert!((c[0] - 0.75).abs() < 1e-6, "{c:?}");
    }

    #[test]
    fn checkerboard_alternates_every_square() {
        let f = Fusion::Checkerboard { square_mm: 10.0 };
        let (fs, ms) = (grey(0.0, 2.0), grey(0.0, 2.0));
        let at = |a, b| fuse_pixel(f, &fs, &ms, &samples(1.0, -1.0, [a, b], 0.0))[0];
        assert_eq!(at(5.0, 5.0), 1.0);
        assert_eq!(at(15.0, 5.0), 0.0);
        assert_eq!(at(-5.0, 5.0), 0.0);
        assert_eq!(at(-5.0, -5.0), 1.0);
    }

    #[test]
    fn gradient_weighting_picks_ct_at_edges_and_mri_in_flat_regions() {
        let f = Fusion::GradientWeighted {
            edge_low: 50.0,
            edge_high: 300.0,
        };
        let (fs, ms) = (grey(0.0, 2.0), grey(0.0, 2.0));
        let at = |g| fuse_pixel(f, &fs, &ms, &samples(1.0, -1.0, [0.0; 2], g))[0];
        assert_eq!(at(500.0), 1.0);
        assert_eq!(at(10.0), 0.0);
        assert!((at(175.0) - 0.5).abs() < 1e-6);
    }
}
