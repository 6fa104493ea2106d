//! Colour maps for slices: 256-entry lookup tables shared by the GPU (one texture row per map)
//! and the CPU (tests, legends), so both give the same colour for the same value.

/// How a windowed intensity in `[0, 1]` becomes a colour. No rainbow/jet on purpose: its
/// uneven lightness invents edges that are not in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    #[default]
    Grey,
    /// Black → red → yellow → white (lightness rises monotonically).
    Hot,
    /// Perceptually uniform, readable by colour-blind viewers (matplotlib's viridis, from 9 anchors).
    Viridis,
}

/// Entries per lookup table (one per 8-bit step).
pub const LUT_SIZE: usize = 256;

impl Colormap {
    pub const ALL: [Colormap; 3] = [Colormap::Grey, Colormap::Hot, Colormap::Viridis];

    /// Row of this map in the lookup texture built by [`lut_rows`].
    pub fn row(self) -> u32 {
        match self {
            Colormap::Grey => 0,
            Colormap::Hot => 1,
            Colormap::Viridis => 2,
        }
    }

    /// Colour of `t` in `[0, 1]` (clamped), continuous (before 8-bit quantisation).
    pub fn continuous(self, t: f32) -> [f32; 3] {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self {
            Colormap::Grey => [t, t, t],
            Colormap::Hot => [
                (3.0 * t).clamp(0.0, 1.0),
                (3.0 * t - 1.0).clamp(0.0, 1.0),
                (3.0 * t - 2.0).clamp(0.0, 1.0),
            ],
            Colormap::Viridis => {
                let x = t * (VIRIDIS.len() - 1) as f32;
                let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
                let f = x - i as f32;
                let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
                [0, 1, 2].map(|c| a[c] + (b[c] - a[c]) * f)
            }
        }
    }

    /// The 8-bit table the shader reads.
    pub fn lut(self) -> [[u8; 4]; LUT_SIZE] {
        let mut out = [[0u8; 4]; LUT_SIZE];
        for (i, entry) in out.iter_mut().enumerate() {
            let c = self.continuous(i as f32 / (LUT_SIZE - 1) as f32);
            *entry = [to_u8(c[0]), to_u8(c[1]), to_u8(c[2]), 255];
        }
        out
    }

    /// Exactly what the slice shader outputs for a windowed value `t` (same rounding).
    pub fn apply(self, t: f32) -> [u8; 4] {
        self.lut()[lut_index(t)]
    }
}

/// Table index of a windowed value: `floor(t * 255 + 0.5)` as in `slice.wgsl`.
pub fn lut_index(t: f32) -> usize {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((t * (LUT_SIZE - 1) as f32 + 0.5).floor() as usize).min(LUT_SIZE - 1)
}

/// All maps, one row each, row-major RGBA8: the contents of the lookup texture.
pub fn lut_rows() -> Vec<u8> {
    Colormap::ALL
        .iter()
        .flat_map(|m| m.lut().into_iter().flatten())
        .collect()
}

fn to_u8(c: f32) -> u8 {
    (c * 255.0).round().clamp(0.0, 255.0) as u8
}

/// matplotlib viridis at t = 0, 1/8, …, 1.
const VIRIDIS: [[f32; 3]; 9] = [
    [0.267004, 0.004874, 0.329415],
    [0.282623, 0.140926, 0.457517],
    [0.253935, 0.265254, 0.529983],
    [0.206756, 0.371758, 0.553117],
    [0.163625, 0.471133, 0.558148],
    [0.127568, 0.566949, 0.550556],
    [0.134692, 0.658636, 0.517649],
    [0.266941, 0.748751, 0.440573],
    [0.993248, 0.906157, 0.143936],
];

#[cfg(test)]
mod tests {
    use super::*;

    fn luminance(c: [f32; 3]) -> f32 {
        0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    }

    #[test]
    fn every_map_gets_lighter_from_low_to_high() {
        for map in Colormap::ALL {
            let mut last = -1.0;
            for i in 0..=64 {
                let l = luminance(map.continuous(i as f32 / 64.0));
                assert!(l >= last - 1e-6, "{map:?} darkens at {i}/64");
                last = l;
            }
        }
    }

    #[test]
    fn ends_and_rounding_match_the_shader_rule() {
        assert_eq!(Colormap::Grey.apply(0.0), [0, 0, 0, 255]);
        assert_eq!(Colormap::Grey.apply(1.0), [255, 255, 255, 255]);
        assert_eq!(Colormap::Hot.apply(1.0), [255, 255, 255, 255]);
        // 0.5 * 255 + 0.5 = 128.0 → entry 128.
        assert_eq!(lut_index(0.5), 128);
        assert_eq!(lut_index(f32::NAN), 0);
        assert_eq!(lut_rows().len(), Colormap::ALL.len() * LUT_SIZE * 4);
    }
}
