//! How the 3D view and the slice overlay are drawn (the View tab), and the measuring tools
//! (the Measurements tab). Plain data: `ui` turns these settings into render parameters.

pub use crate::measure::{Measurement, MeasurementKind, Region};

/// What the 3D quadrant draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SceneContent {
    /// The raycast volume alone.
    Volume,
    /// The surfaces from Mesh & export alone.
    Meshes,
    /// Both: meshes first, the volume blended over them.
    #[default]
    Both,
}

impl SceneContent {
    pub const ALL: [SceneContent; 3] = [Self::Volume, Self::Meshes, Self::Both];

    pub fn name(self) -> &'static str {
        match self {
            Self::Volume => "Volume only",
            Self::Meshes => "Meshes only",
            Self::Both => "Volume and meshes",
        }
    }

    pub fn shows_volume(self) -> bool {
        self != Self::Meshes
    }

    pub fn shows_meshes(self) -> bool {
        self != Self::Volume
    }
}

/// What each ray of the 3D view reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Projection3d {
    /// Composite rendering through the transfer function.
    #[default]
    Composite,
    /// Maximum intensity projection.
    Mip,
    /// Minimum intensity projection.
    MinIp,
}

impl Projection3d {
    pub const ALL: [Projection3d; 3] = [Self::Composite, Self::Mip, Self::MinIp];

    pub fn name(self) -> &'static str {
        match self {
            Self::Composite => "Composite",
            Self::Mip => "MIP",
            Self::MinIp => "MinIP",
        }
    }
}

/// How the overlay volume joins the active one on the slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SliceFusion {
    /// The overlay in a hot colour map, blended at the overlay opacity.
    #[default]
    HotOverlay,
    /// Grey over grey at the overlay opacity.
    GreyBlend,
    /// Alternating squares of each image.
    Checkerboard,
}

impl SliceFusion {
    pub const ALL: [SliceFusion; 3] = [Self::HotOverlay, Self::GreyBlend, Self::Checkerboard];

    pub fn name(self) -> &'static str {
        match self {
            Self::HotOverlay => "Colour overlay",
            Self::GreyBlend => "Alpha blend",
            Self::Checkerboard => "Checkerboard",
        }
    }
}

/// The opacity ramp of the transfer function moved and scaled by the user: the preset's
/// control points are stretched so that its first and last points land on
/// `center ± width / 2` (image units), and every opacity is multiplied by `opacity_scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RampEdit {
    pub center: f32,
    pub width: f32,
}

/// One control point of a hand-edited transfer function, in image units (HU on CT).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TfPoint {
    pub value: f32,
    /// 0..1 per channel.
    pub rgb: [f32; 3],
    /// 0..1.
    pub opacity_per_mm: f32,
}

/// Everything the View tab sets.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSettings {
    /// A transfer-function preset name (`ct-bone`, `mr-t1`, …); `None` picks one from the
    /// active volume's modality.
    pub preset: Option<String>,
    /// Hand-edited control points replacing the preset (`None`: the preset's).
    pub points: Option<Vec<TfPoint>>,
    /// `None` keeps the preset's own placement.
    pub ramp: Option<RampEdit>,
    /// Multiplies every opacity of the transfer function (clamped to 1 per point).
    pub opacity_scale: f32,
    pub projection: Projection3d,
    pub content: SceneContent,
    /// Crop box per world axis as fractions 0..1 of the volume's extent, `[min, max]` for
    /// x (L), y (P) and z (S).
    pub crop: [[f32; 2]; 3],
    pub slice_fusion: SliceFusion,
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self {
            preset: None,
            points: None,
            ramp: None,
            opacity_scale: 1.0,
            projection: Projection3d::default(),
            content: SceneContent::default(),
            crop: [[0.0, 1.0]; 3],
            slice_fusion: SliceFusion::default(),
        }
    }
}

impl ViewSettings {
    /// Whether the crop box cuts anything away.
    pub fn crops(&self) -> bool {
        self.crop.iter().any(|[lo, hi]| *lo > 0.0 || *hi < 1.0)
    }

    /// Keeps values in range: fractions ordered in 0..1, a positive width and scale.
    pub fn sanitised(mut self) -> Self {
        for range in &mut self.crop {
            let lo = finite_or(range[0], 0.0).clamp(0.0, 1.0);
            let hi = finite_or(range[1], 1.0).clamp(0.0, 1.0);
            *range = [lo.min(hi), lo.max(hi)];
        }
        self.opacity_scale = finite_or(self.opacity_scale, 1.0).clamp(0.0, 20.0);
        if let Some(points) = &mut self.points {
            for p in points.iter_mut() {
                p.value = finite_or(p.value, 0.0);
                p.rgb = p.rgb.map(|c| finite_or(c, 0.0).clamp(0.0, 1.0));
                p.opacity_per_mm = finite_or(p.opacity_per_mm, 0.0).clamp(0.0, 1.0);
            }
            if points.is_empty() {
                self.points = None;
            }
        }
        if let Some(ramp) = &mut self.ramp {
            ramp.center = finite_or(ramp.center, 0.0);
            ramp.width = finite_or(ramp.width, 1.0).max(1e-3);
        }
        self
    }
}

fn finite_or(v: f32, fallback: f32) -> f32 {
    if v.is_finite() {
        v
    } else {
        fallback
    }
}

/// Which measuring tool clicks on the slices place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureTool {
    /// Two clicks: a distance in millimetres.
    Distance,
    /// Three clicks (end, vertex, end): an angle in degrees.
    Angle,
    /// A drag: statistics of the active image inside the box (through one slice) or circle
    /// (a sphere) drawn.
    Region(RegionShape),
}

/// The shape a region drag draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegionShape {
    #[default]
    Box,
    Circle,
}

impl MeasureTool {
    pub fn name(self) -> &'static str {
        match self {
            Self::Distance => "Distance",
            Self::Angle => "Angle",
            Self::Region(RegionShape::Box) => "Region box",
            Self::Region(RegionShape::Circle) => "Region circle",
        }
    }

    /// Clicks that complete a point measurement (regions are one drag).
    pub fn points_needed(self) -> usize {
        match self {
            Self::Distance => 2,
            Self::Angle => 3,
            Self::Region(_) => 2,
        }
    }
}

/// A measurement's value with its unit, evaluated on the open document's images:
/// `"42.1 mm"`, `"87.3°"`, `"mean 40.2 HU, sd 3.1 HU, min 31 HU, max 52 HU; 812 voxels, 1.17 ml"`.
pub fn measurement_text(doc: &super::Document, m: &Measurement) -> String {
    if let Some(text) = m.geometric_value_text() {
        return text;
    }
    match &m.kind {
        MeasurementKind::RegionStats {
            volume,
            region,
            label_map,
        } => {
            let Some(entry) = doc.volumes.get(*volume) else {
                return format!("image {volume} is no longer open");
            };
            let unit = if entry.is_hounsfield() { " HU" } else { "" };
            let labels = label_map.and(doc.labels.as_ref()).map(|layer| &*layer.map);
            match crate::measure::region_stats(&entry.image.volume, region, labels) {
                Ok(s) => region_stats_text(&s, unit),
                Err(e) => e.to_string(),
            }
        }
        MeasurementKind::LabelVolume { value, .. } => match &doc.labels {
            Some(layer) => crate::measure::label_volumes(&layer.map)
                .into_iter()
                .find(|l| l.value == *value)
                .map(|l| format!("{:.2} ml ({} voxels)", l.volume_ml, l.voxel_count))
                .unwrap_or_else(|| "0 ml (label not present)".into()),
            None => "no label map".into(),
        },
        _ => String::new(),
    }
}

/// How the window shows region statistics (`unit` is `" HU"` on CT, empty otherwise).
pub fn region_stats_text(s: &crate::measure::RegionStats, unit: &str) -> String {
    format!(
        "mean {:.1}{unit}, sd {:.1}{unit}, min {:.0}{unit}, max {:.0}{unit}; {} voxels, {:.2} ml",
        s.mean, s.sd, s.min, s.max, s.voxel_count, s.volume_ml
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Command, Document, Tool};

    fn distance(x: f64) -> Measurement {
        Measurement {
            name: String::new(),
            kind: MeasurementKind::Distance {
                a_mm: [0.0; 3],
                b_mm: [x, 0.0, 0.0],
            },
        }
    }

    #[test]
    fn measurements_are_numbered_per_kind_deleted_by_index_and_shown_with_units() {
        let mut doc = Document::new();
        doc.apply(Command::AddMeasurement(distance(3.0)));
        doc.apply(Command::AddMeasurement(Measurement {
            name: String::new(),
            kind: MeasurementKind::Angle {
                a_mm: [1.0, 0.0, 0.0],
                vertex_mm: [0.0; 3],
                c_mm: [0.0, 2.0, 0.0],
            },
        }));
        doc.apply(Command::AddMeasurement(distance(4.5)));
        let names: Vec<&str> = doc.measurements.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["Distance 1", "Angle 1", "Distance 2"]);
        assert_eq!(measurement_text(&doc, &doc.measurements[1]), "90.0°");
        assert_eq!(measurement_text(&doc, &doc.measurements[2]), "4.5 mm");
        doc.apply(Command::DeleteMeasurement(0));
        doc.apply(Command::DeleteMeasurement(7));
        let names: Vec<&str> = doc.measurements.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["Angle 1", "Distance 2"]);
        // A region on an image that is not open says so instead of failing.
        let region = Measurement {
            name: String::new(),
            kind: MeasurementKind::RegionStats {
                volume: 3,
                region: Region::Sphere {
                    centre_mm: [0.0; 3],
                    radius_mm: 5.0,
                },
                label_map: None,
            },
        };
        assert!(measurement_text(&doc, &region).contains("no longer open"));
    }

    #[test]
    fn measurements_travel_with_the_project() {
        let mut doc = Document::new();
        doc.apply(Command::AddMeasurement(distance(12.0)));
        let project = crate::document::project::Project::from_document(&doc);
        assert_eq!(project.measurements, doc.measurements);
        let reopened = project.into_document();
        assert_eq!(reopened.measurements, doc.measurements);
    }

    #[test]
    fn a_measuring_tool_and_an_editing_tool_exclude_each_other() {
        let mut doc = Document::new();
        doc.apply(Command::SetTool(Tool::Brush));
        doc.apply(Command::SetMeasureTool(Some(MeasureTool::Angle)));
        assert_eq!(doc.tools.tool, Tool::Navigate);
        assert_eq!(doc.measure_tool, Some(MeasureTool::Angle));
        doc.apply(Command::SetTool(Tool::Navigate));
        assert_eq!(doc.measure_tool, None);
    }

    #[test]
    fn sanitising_orders_crop_fractions_and_keeps_scales_positive() {
        let settings = ViewSettings {
            crop: [[0.8, 0.2], [f32::NAN, 2.0], [-1.0, 0.5]],
            opacity_scale: -3.0,
            ramp: Some(RampEdit {
                center: f32::INFINITY,
                width: -5.0,
            }),
            ..Default::default()
        }
        .sanitised();
        assert_eq!(settings.crop, [[0.2, 0.8], [0.0, 1.0], [0.0, 0.5]]);
        assert_eq!(settings.opacity_scale, 0.0);
        let ramp = settings.ramp.expect("ramp kept");
        assert!(ramp.center == 0.0 && ramp.width > 0.0);
        assert!(settings.crops());
        assert!(!ViewSettings::default().crops());
    }
}
