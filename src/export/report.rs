//! The planning report: one self-contained HTML page (pictures embedded as base64 PNG, no
//! external files or scripts) with the study identifiers, the fused views and the model, the
//! registration figures, the label volumes, the accuracy of each printed part and the print
//! profile table. Bars, swatches and gauges where people would rather look than read.
//!
//! The inputs are plain figures ([`PlanningReport`]), filled by the layer that holds the
//! project; pictures come as PNG bytes (the GPU renderer's screenshots, or the CPU
//! [`slice_png`] / [`model_png`] here, which need no GPU).

use super::{write_atomic, ExportError};
use crate::volume::resample::trilinear_at;
use crate::volume::{LabelMap, Rgba, TriMesh, Volume};
use nalgebra::Point3;
use std::io::Write;
use std::path::Path;

/// Who and what (shown unless anonymised).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportStudy {
    pub patient_name: String,
    pub patient_id: String,
    pub study_date: String,
    pub study_description: String,
    pub institution: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportImage {
    pub caption: String,
    pub png: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TreFigures {
    pub points: usize,
    pub mean_mm: f64,
    pub rms_mm: f64,
    pub max_mm: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfidenceFigures {
    pub regions: usize,
    /// Share of regions judged well aligned, 0..1.
    pub confident_fraction: f64,
    pub mean_confidence: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationFigures {
    /// "Rigid", "Affine", "Deformable", "Landmarks"…
    pub method: String,
    pub metric: String,
    pub success: bool,
    pub failure_reason: Option<String>,
    pub metric_initial: f64,
    pub metric_final: f64,
    pub rotation_deg: f64,
    pub translation_mm: [f64; 3],
    pub iterations: usize,
    pub duration_secs: f64,
    pub tre: Option<TreFigures>,
    pub confidence: Option<ConfidenceFigures>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelVolumeRow {
    /// The label map it belongs to.
    pub map: String,
    pub name: String,
    pub color: Rgba,
    pub voxels: u64,
    pub volume_ml: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartAccuracyRow {
    pub name: String,
    pub color: Option<Rgba>,
    pub faces: usize,
    pub mean_mm: f64,
    pub p95_mm: f64,
    pub max_mm: f64,
    pub volume_difference_percent: f64,
    pub watertight: bool,
    pub manifold: bool,
    pub over_budget: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyFigures {
    pub budget_mm: f64,
    pub rule: String,
    pub parts: Vec<PartAccuracyRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    pub part: String,
    pub material: String,
    pub color: Rgba,
    pub infill_percent: f32,
    pub wall_count: u32,
    pub extruder: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementRow {
    pub name: String,
    /// Already formatted with its unit ("42.1 mm", "mean 61 HU, sd 12 HU").
    pub value: String,
}

/// Everything the page shows. Empty lists and `None` leave their section out (saying so).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanningReport {
    pub title: String,
    /// When it was generated, as the caller wants it shown.
    pub generated: String,
    pub study: ReportStudy,
    /// Replace the patient's name, ID, birth-identifying date and institution.
    pub anonymise: bool,
    pub images: Vec<ReportImage>,
    pub registration: Option<RegistrationFigures>,
    pub label_volumes: Vec<LabelVolumeRow>,
    pub accuracy: Option<AccuracyFigures>,
    pub profiles: Vec<ProfileRow>,
    pub measurements: Vec<MeasurementRow>,
}

/// Writes the page atomically; refuses an existing file unless `overwrite`.
/// The report's date: today (UTC) as `YYYY-MM-DD`, from the civil-from-days algorithm (no time crate).
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} (UTC)")
}

pub fn write_report(
    path: &Path,
    report: &PlanningReport,
    overwrite: bool,
) -> Result<(), ExportError> {
    if let Some(bad) = report.images.iter().find(|i| !is_png(&i.png)) {
        return Err(ExportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("picture {:?} is not a PNG", bad.caption),
            ),
        });
    }
    let html = render_html(report);
    write_atomic(path, overwrite, |w| w.write_all(html.as_bytes()))
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

// ---------------------------------------------------------------------------------------
// HTML

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn css_color(c: Rgba) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0[0], c.0[1], c.0[2])
}

fn swatch(c: Rgba) -> String {
    format!(
        "<span class=\"swatch\" style=\"background:{}\" title=\"{}\"></span>",
        css_color(c),
        css_color(c)
    )
}

/// Standard base64 (RFC 4648) for data URLs.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const STYLE: &str =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;\
margin:24px auto;padding:0 16px;color:#1d2330;background:#fff}\
h1{margin-bottom:4px}h2{border-bottom:2px solid #dde3ee;padding-bottom:4px;margin-top:32px}\
.sub{color:#5b6475}table{border-collapse:collapse;width:100%;margin:8px 0}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e9f0;vertical-align:middle}\
th{background:#f4f6fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.swatch{display:inline-block;width:18px;height:18px;border-radius:4px;border:1px solid #0003;\
vertical-align:middle;margin-right:6px}\
.bar{height:14px;border-radius:3px;min-width:2px}.track{background:#eef1f6;border-radius:3px;\
position:relative;height:14px;width:100%}.budget{position:absolute;top:-3px;bottom:-3px;width:2px;\
background:#1d2330}.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}\
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;flex:1 1 300px}\
.gallery img{width:100%;border-radius:6px;background:#000;image-rendering:auto}\
figcaption{color:#5b6475;font-size:90%;margin-top:4px}.cards{display:flex;gap:12px;flex-wrap:wrap}\
.card{flex:1 1 180px;border:1px solid #e6e9f0;border-radius:8px;padding:10px 12px}\
.card .v{font-size:150%;font-weight:600}.card .k{color:#5b6475;font-size:85%}\
.note{color:#5b6475;font-style:italic}@media print{.gallery figure{break-inside:avoid}}";

fn card(key: &str, value: &str) -> String {
    format!(
        "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
        esc(value),
        esc(key)
    )
}

/// A horizontal bar `fraction` (0..1) of the track, in `color`, with an optional marker.
fn bar(fraction: f64, color: &str, marker: Option<f64>) -> String {
    let pct = |f: f64| (f.clamp(0.0, 1.0) * 100.0 * 10.0).round() / 10.0;
    let marker = marker
        .map(|m| format!("<div class=\"budget\" style=\"left:{}%\"></div>", pct(m)))
        .unwrap_or_default();
    format!(
        "<div class=\"track\"><div class=\"bar\" style=\"width:{}%;background:{color}\"></div>{marker}</div>",
        pct(fraction)
    )
}

/// The page as one string.
pub fn render_html(r: &PlanningReport) -> String {
    let mut h = String::new();
    let title = if r.title.is_empty() {
        "Planning report"
    } else {
        &r.title
    };
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    ));
    h.push_str(&format!("<h1>{}</h1>\n", esc(title)));
    if !r.generated.is_empty() {
        h.push_str(&format!(
            "<div class=\"sub\">Generated {} by fuseprint {}</div>\n",
            esc(&r.generated),
            env!("CARGO_PKG_VERSION")
        ));
    }

    // Study
    h.push_str("<section id=\"study\"><h2>Patient and study</h2><table>\n");
    let s = &r.study;
    let shown = |v: &str| {
        if v.is_empty() {
            "—".to_string()
        } else {
            esc(v)
        }
    };
    let rows: Vec<(&str, String)> = if r.anonymise {
        vec![
            ("Patient", "Anonymised".into()),
            ("Patient ID", "Anonymised".into()),
            ("Study date", "Removed".into()),
            ("Study", shown(&s.study_description)),
        ]
    } else {
        vec![
            ("Patient", shown(&s.patient_name)),
            ("Patient ID", shown(&s.patient_id)),
            ("Study date", shown(&s.study_date)),
            ("Study", shown(&s.study_description)),
            ("Institution", shown(&s.institution)),
        ]
    };
    for (k, v) in rows {
        h.push_str(&format!("<tr><th>{k}</th><td>{v}</td></tr>\n"));
    }
    h.push_str("</table>");
    if r.anonymise {
        h.push_str("<p class=\"note\">Identifiers removed from this report.</p>");
    }
    h.push_str("</section>\n");

    // Pictures
    h.push_str("<section id=\"views\"><h2>Fused views and model</h2>");
    if r.images.is_empty() {
        h.push_str("<p class=\"note\">No pictures were attached.</p>");
    } else {
        h.push_str("<div class=\"gallery\">");
        for img in &r.images {
            h.push_str(&format!(
                "<figure><img alt=\"{c}\" src=\"data:image/png;base64,{}\"><figcaption>{c}</figcaption></figure>",
                base64(&img.png),
                c = esc(&img.caption)
            ));
        }
        h.push_str("</div>");
    }
    h.push_str("</section>\n");

    // Registration
    h.push_str("<section id=\"registration\"><h2>Registration</h2>");
    match &r.registration {
        None => h.push_str("<p class=\"note\">No registration in this plan.</p>"),
        Some(g) => {
            let verdict = if g.success {
                "<span class=\"ok\">accepted by the sanity check</span>".to_string()
            } else {
                format!(
                    "<span class=\"bad\">failed: {}</span>",
                    esc(g.failure_reason.as_deref().unwrap_or("no reason given"))
                )
            };
            h.push_str(&format!(
                "<p>{} registration, metric {}: {verdict}.</p><div class=\"cards\">",
                esc(&g.method),
                esc(&g.metric)
            ));
            let figure = |v: f64| {
                if v.is_finite() {
                    format!("{v:.4}")
                } else {
                    "—".to_string()
                }
            };
            h.push_str(&card(
                "metric (start → end)",
                &format!("{} → {}", figure(g.metric_initial), figure(g.metric_final)),
            ));
            h.push_str(&card("rotation", &format!("{:.2}°", g.rotation_deg)));
            let t = g.translation_mm;
            h.push_str(&card(
                "translation (L, P, S)",
                &format!("{:.1}, {:.1}, {:.1} mm", t[0], t[1], t[2]),
            ));
            if let Some(tre) = &g.tre {
                h.push_str(&card(
                    &format!(
                        "TRE over {} points (mean; max {:.2} mm)",
                        tre.points, tre.max_mm
                    ),
                    &format!("{:.2} mm", tre.mean_mm),
                ));
            }
            h.push_str(&card(
                "time",
                &format!("{:.1} s, {} iterations", g.duration_secs, g.iterations),
            ));
            h.push_str("</div>");
            match &g.confidence {
                Some(c) => {
                    let color = if c.confident_fraction >= 0.8 {
                        "#2e9d4f"
                    } else if c.confident_fraction >= 0.5 {
                        "#e0a100"
                    } else {
                        "#c62828"
                    };
                    h.push_str(&format!(
                        "<p>Local alignment confidence: {:.0}% of {} regions confident (mean confidence {:.2}).</p>{}",
                        c.confident_fraction * 100.0,
                        c.regions,
                        c.mean_confidence,
                        bar(c.confident_fraction, color, None)
                    ));
                }
                None => h.push_str("<p class=\"note\">No confidence map was computed.</p>"),
            }
            if g.tre.is_none() {
                h.push_str(
                    "<p class=\"note\">No landmarks: target registration error not measured.</p>",
                );
            }
        }
    }
    h.push_str("</section>\n");

    // Segmentation volumes
    h.push_str("<section id=\"segmentation\"><h2>Segmentation volumes</h2>");
    if r.label_volumes.is_empty() {
        h.push_str("<p class=\"note\">No label maps.</p>");
    } else {
        let max = r
            .label_volumes
            .iter()
            .map(|l| l.volume_ml)
            .fold(0.0f64, f64::max);
        h.push_str("<table><tr><th>Structure</th><th>Label map</th><th class=\"num\">Voxels</th><th class=\"num\">Volume (ml)</th><th style=\"width:35%\"></th></tr>\n");
        for l in &r.label_volumes {
            h.push_str(&format!(
                "<tr><td>{}{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td><td>{}</td></tr>\n",
                swatch(l.color),
                esc(&l.name),
                esc(&l.map),
                l.voxels,
                l.volume_ml,
                bar(if max > 0.0 { l.volume_ml / max } else { 0.0 }, &css_color(l.color), None)
            ));
        }
        h.push_str("</table><p class=\"note\">Volume = voxel count × voxel volume.</p>");
    }
    h.push_str("</section>\n");

    // Accuracy
    h.push_str("<section id=\"accuracy\"><h2>Model accuracy</h2>");
    match &r.accuracy {
        None => h.push_str("<p class=\"note\">No meshes were built.</p>"),
        Some(a) => {
            let scale = a
                .parts
                .iter()
                .map(|p| p.p95_mm)
                .fold(a.budget_mm * 2.0, f64::max);
            h.push_str(&format!(
                "<p>Budget {:.2} mm: {}.</p><table><tr><th>Part</th><th class=\"num\">Faces</th><th class=\"num\">Mean (mm)</th><th class=\"num\">P95 (mm)</th><th class=\"num\">Max (mm)</th><th class=\"num\">ΔVolume</th><th>Checks</th><th style=\"width:25%\">P95 against the budget (line)</th></tr>\n",
                a.budget_mm,
                esc(&a.rule)
            ));
            for p in &a.parts {
                let checks = format!(
                    "{}, {}{}",
                    if p.watertight {
                        "watertight"
                    } else {
                        "<span class=\"bad\">open</span>"
                    },
                    if p.manifold {
                        "manifold"
                    } else {
                        "<span class=\"bad\">non-manifold</span>"
                    },
                    if p.over_budget {
                        ", <span class=\"bad\">over budget</span>"
                    } else {
                        ""
                    }
                );
                let color = if p.over_budget { "#c62828" } else { "#2e9d4f" };
                h.push_str(&format!(
                    "<tr><td>{}{}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:+.2}%</td><td>{checks}</td><td>{}</td></tr>\n",
                    p.color.map(swatch).unwrap_or_default(),
                    esc(&p.name),
                    p.faces,
                    p.mean_mm,
                    p.p95_mm,
                    p.max_mm,
                    p.volume_difference_percent,
                    bar(p.p95_mm / scale, color, Some(a.budget_mm / scale))
                ));
            }
            h.push_str("</table>");
        }
    }
    h.push_str("</section>\n");

    // Print profiles
    h.push_str("<section id=\"print-profiles\"><h2>Print profile</h2>");
    if r.profiles.is_empty() {
        h.push_str("<p class=\"note\">No print profiles.</p>");
    } else {
        h.push_str("<table><tr><th>Part</th><th>Colour</th><th>Material</th><th class=\"num\">Infill</th><th class=\"num\">Walls</th><th class=\"num\">Extruder</th></tr>\n");
        for p in &r.profiles {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td class=\"num\">{:.0}%</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                esc(&p.part),
                swatch(p.color),
                css_color(p.color),
                esc(&p.material),
                p.infill_percent,
                p.wall_count,
                p.extruder
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");

    // Measurements
    h.push_str("<section id=\"measurements\"><h2>Measurements</h2>");
    if r.measurements.is_empty() {
        h.push_str("<p class=\"note\">No measurements.</p>");
    } else {
        h.push_str("<table><tr><th>Measurement</th><th>Value</th></tr>\n");
        for m in &r.measurements {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                esc(&m.name),
                esc(&m.value)
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");
    h.push_str("<p class=\"note\">Coordinates are patient LPS millimetres. For planning only; verify against the source images.</p>\n</body></html>\n");
    h
}

// ---------------------------------------------------------------------------------------
// CPU pictures (no GPU needed)

/// Which plane a slice picture shows, in radiological orientation (patient's right on the
/// left of the picture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlicePlane {
    Axial,
    Coronal,
    Sagittal,
}

/// An image over the base one: colour-mapped (a warm ramp) through its own window.
#[derive(Debug, Clone, Copy)]
pub struct SliceOverlay<'a> {
    pub volume: &'a Volume<f32>,
    pub window: (f32, f32),
    pub opacity: f32,
    /// Maps a world point of the base image to the overlay's world (ITK's fixed → moving;
    /// identity when the overlay is already in the base's frame).
    pub moving_from_fixed: nalgebra::Matrix4<f64>,
}

fn grey(v: f32, (center, width): (f32, f32)) -> f32 {
    ((v - (center - width / 2.0)) / width.max(1e-6)).clamp(0.0, 1.0)
}

fn encode_png(width: u32, height: u32, rgb: Vec<u8>) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let ok = image::RgbImage::from_raw(width, height, rgb)
        .map(|img| img.write_to(&mut out, image::ImageFormat::Png).is_ok())
        .unwrap_or(false);
    if ok {
        out.into_inner()
    } else {
        Vec::new()
    }
}

/// A slice through `through_mm` of `base` (window `(center, width)`), with an optional
/// fused overlay and label outlines filled at 45 %, sampled in world space so images on
/// different grids line up. At most `max_px` pixels on the long side. PNG bytes.
pub fn slice_png(
    base: &Volume<f32>,
    window: (f32, f32),
    overlay: Option<SliceOverlay<'_>>,
    labels: Option<&LabelMap>,
    plane: SlicePlane,
    through_mm: [f64; 3],
    max_px: u32,
) -> Vec<u8> {
    let g = base.geometry();
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for corner in 0..8 {
        let v = [0, 1, 2].map(|a| {
            if corner >> a & 1 == 1 {
                g.dims[a] as f64 - 1.0
            } else {
                0.0
            }
        });
        let p = g.world_from_voxel_point(v);
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    // (column axis, row axis, row direction): rows run down the picture.
    let (col_axis, row_axis, row_sign) = match plane {
        SlicePlane::Axial => (0, 1, 1.0),
        SlicePlane::Coronal => (0, 2, -1.0),
        SlicePlane::Sagittal => (1, 2, -1.0),
    };
    let pixel_mm = g
        .spacing_mm
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-3);
    let extent = |a: usize| (hi[a] - lo[a]).max(pixel_mm);
    let mut step = pixel_mm;
    let longest = extent(col_axis).max(extent(row_axis));
    if longest / step > max_px.max(16) as f64 {
        step = longest / max_px.max(16) as f64;
    }
    let width = (extent(col_axis) / step).round() as u32 + 1;
    let height = (extent(row_axis) / step).round() as u32 + 1;
    let base_from_world = g.voxel_from_world();
    let overlay_from_world =
        overlay.map(|o| o.volume.geometry().voxel_from_world() * o.moving_from_fixed);
    let labels_from_world = labels.map(|l| l.geometry().voxel_from_world());
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let mut p = Point3::from(through_mm);
            p[col_axis] = lo[col_axis] + x as f64 * step;
            p[row_axis] = if row_sign > 0.0 {
                lo[row_axis] + y as f64 * step
            } else {
                hi[row_axis] - y as f64 * step
            };
            let vb = base_from_world.transform_point(&p);
            let mut c = match trilinear_at(base, [vb.x, vb.y, vb.z]) {
                Some(v) => [grey(v, window); 3],
                None => [0.0; 3],
            };
            if let (Some(o), Some(m)) = (overlay, &overlay_from_world) {
                let vo = m.transform_point(&p);
                if let Some(v) = trilinear_at(o.volume, [vo.x, vo.y, vo.z]) {
                    let t = grey(v, o.window);
                    // Warm ramp: black → red → orange → yellow-white.
                    let warm = [
                        (t * 2.0).min(1.0),
                        (t * 1.6 - 0.4).clamp(0.0, 1.0),
                        (t * 2.5 - 1.5).clamp(0.0, 1.0),
                    ];
                    let a = o.opacity.clamp(0.0, 1.0) * t.sqrt();
                    for k in 0..3 {
                        c[k] = c[k] * (1.0 - a) + warm[k] * a;
                    }
                }
            }
            if let (Some(l), Some(m)) = (labels, &labels_from_world) {
                let vl = m.transform_point(&p);
                let value = l
                    .volume
                    .get(
                        vl.x.round() as i64,
                        vl.y.round() as i64,
                        vl.z.round() as i64,
                    )
                    .unwrap_or(0);
                if let Some(info) = l.table.get(value).filter(|i| i.visible) {
                    for k in 0..3 {
                        c[k] = c[k] * 0.55 + info.color.0[k] as f32 / 255.0 * 0.45;
                    }
                }
            }
            rgb.extend(c.map(|v| (v * 255.0).round() as u8));
        }
    }
    encode_png(width, height, rgb)
}

/// The printed parts seen from the front (anterior), flat-shaded in their print colours on a
/// dark background: a z-buffered orthographic rasteriser, `size` pixels square. PNG bytes.
pub fn model_png(parts: &[(&TriMesh, Rgba)], size: u32) -> Vec<u8> {
    let size = size.clamp(16, 4096);
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for (mesh, _) in parts {
        if let Some((a, b)) = mesh.bounds_mm() {
            for k in 0..3 {
                lo[k] = lo[k].min(a[k] as f64);
                hi[k] = hi[k].max(b[k] as f64);
            }
        }
    }
    let n = size as usize;
    let background = [28u8, 32, 40];
    let mut rgb: Vec<u8> = background.iter().copied().cycle().take(n * n * 3).collect();
    if !(lo[0] <= hi[0]) {
        return encode_png(size, size, rgb);
    }
    // Screen x = world +x (patient's left on the right, as seen from the front), screen
    // y = −z (superior up); depth = world y (anterior, −y, is nearest).
    let span = (hi[0] - lo[0]).max(hi[2] - lo[2]).max(1e-3) * 1.08;
    let cx = (lo[0] + hi[0]) / 2.0;
    let cz = (lo[2] + hi[2]) / 2.0;
    let to_screen = |p: [f32; 3]| {
        let p = p.map(f64::from);
        (
            ((p[0] - cx) / span + 0.5) * n as f64,
            ((cz - p[2]) / span + 0.5) * n as f64,
            p[1],
        )
    };
    let mut depth = vec![f64::INFINITY; n * n];
    let light = {
        let l = [0.35f64, -1.0, 0.55];
        let len = (l[0] * l[0] + l[1] * l[1] + l[2] * l[2]).sqrt();
        l.map(|v| v / len)
    };
    for (mesh, color) in parts {
        for f in 0..mesh.face_count() {
            let [a, b, c] = mesh.indices[f].map(|v| mesh.positions_world_mm[v as usize]);
            let nrm = mesh.face_normal_scaled(f);
            let len = (nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2]).sqrt();
            if len <= 0.0 {
                continue;
            }
            let lambert = ((nrm[0] * light[0] + nrm[1] * light[1] + nrm[2] * light[2]) / len).abs();
            let shade = 0.25 + 0.75 * lambert;
            let (s0, s1, s2) = (to_screen(a), to_screen(b), to_screen(c));
            let min_x = s0.0.min(s1.0).min(s2.0).floor().max(0.0) as usize;
            let max_x = s0.0.max(s1.0).max(s2.0).ceil().min(n as f64 - 1.0) as usize;
            let min_y = s0.1.min(s1.1).min(s2.1).floor().max(0.0) as usize;
            let max_y = s0.1.max(s1.1).max(s2.1).ceil().min(n as f64 - 1.0) as usize;
            let area = (s1.0 - s0.0) * (s2.1 - s0.1) - (s2.0 - s0.0) * (s1.1 - s0.1);
            if area.abs() < 1e-12 {
                continue;
            }
            for y in min_y..=max_y {
                for x in min_x..=max_x {
                    let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                    let w0 = ((s1.0 - px) * (s2.1 - py) - (s2.0 - px) * (s1.1 - py)) / area;
                    let w1 = ((s2.0 - px) * (s0.1 - py) - (s0.0 - px) * (s2.1 - py)) / area;
                    let w2 = 1.0 - w0 - w1;
                    if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                        continue;
                    }
                    let d = w0 * s0.2 + w1 * s1.2 + w2 * s2.2;
                    let i = y * n + x;
                    if d < depth[i] {
                        depth[i] = d;
                        for k in 0..3 {
                            rgb[i * 3 + k] = (color.0[k] as f64 * shade).round().min(255.0) as u8;
                        }
                    }
                }
            }
        }
    }
    encode_png(size, size, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn text_is_escaped_and_anonymising_hides_identifiers() {
        let mut r = PlanningReport {
            title: "Plan <1>".into(),
            study: ReportStudy {
                patient_name: "Doe^Jane".into(),
                patient_id: "12345".into(),
                study_date: "20260101".into(),
                ..Default::default()
            },
            measurements: vec![MeasurementRow {
                name: "a<script>".into(),
                value: "1 mm".into(),
            }],
            ..Default::default()
        };
        let html = render_html(&r);
        assert!(html.contains("Plan &lt;1&gt;") && !html.contains("<script>"));
        assert!(html.contains("Doe^Jane") && html.contains("12345"));
        r.anonymise = true;
        let html = render_html(&r);
        assert!(
            !html.contains("Doe^Jane") && !html.contains("12345") && !html.contains("20260101")
        );
    }

    #[test]
    fn slice_and_model_pictures_decode_with_the_expected_content() {
        let g = VolumeGeometry::axis_aligned([20, 10, 5], [1.0; 3], [0.0; 3]).expect("g");
        let v = Volume::from_fn(g, |[i, ..]| if i < 10 { 0.0 } else { 100.0 });
        let png = slice_png(
            &v,
            (50.0, 100.0),
            None,
            None,
            SlicePlane::Axial,
            [0.0, 0.0, 2.0],
            64,
        );
        let img = image::load_from_memory(&png).expect("decodes").to_rgb8();
        assert_eq!((img.width(), img.height()), (20, 10));
        // Patient's right (low x) on the left of the picture: dark left, bright right.
        assert_eq!(img.get_pixel(2, 5).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(17, 5).0, [255, 255, 255]);

        let tri = TriMesh::new(
            vec![[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 0.0, 10.0]],
            vec![[0, 1, 2]],
        );
        let png = model_png(&[(&tri, Rgba::rgb(200, 0, 0))], 32);
        let img = image::load_from_memory(&png).expect("decodes").to_rgb8();
        let red = img.pixels().filter(|p| p.0[0] > 100 && p.0[1] == 0).count();
        // The triangle covers about half of its (square) bounding box.
        assert!(
            red > 32 * 32 / 4 && red < 32 * 32 * 3 / 4,
            "{red} red pixels"
        );
    }
}
