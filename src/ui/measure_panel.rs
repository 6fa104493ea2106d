//! The Measurements tab: the measuring tools, the list of measurements with their values
//! (and a delete button each), and the label volumes in millilitres.

use crate::document::project::{label_volumes, LabelVolume};
use crate::document::viewing::measurement_text;
use crate::document::{Command, Document, MeasureTool, Measurement, RegionShape};

/// Values already worked out: region statistics and label volumes read every voxel.
#[derive(Debug, Clone, Default)]
pub struct MeasureCache {
    /// Each measurement with its text, for the images it was computed on (by volume id).
    texts: Vec<(Measurement, Vec<u64>, String)>,
    label_volumes: Option<(u64, Vec<LabelVolume>)>,
}

const TOOLS: [(MeasureTool, &str, &str); 4] = [
    (
        MeasureTool::Distance,
        "D",
        "Click two points on a slice: their distance in mm",
    ),
    (
        MeasureTool::Angle,
        "A",
        "Click an end, the vertex, then the other end: the angle in degrees",
    ),
    (
        MeasureTool::Region(RegionShape::Box),
        "R",
        "Drag a box on a slice: intensity statistics of the active image in it (one slice thick)",
    ),
    (
        MeasureTool::Region(RegionShape::Circle),
        "",
        "Drag from a centre outwards: statistics inside that sphere",
    ),
];

impl MeasureCache {
    fn text(&mut self, doc: &Document, index: usize) -> String {
        let m = &doc.measurements[index];
        let ids: Vec<u64> = doc.volumes.iter().map(|v| v.id).collect();
        if let Some((_, _, text)) = self
            .texts
            .iter()
            .find(|(cached, cached_ids, _)| cached == m && *cached_ids == ids)
        {
            return text.clone();
        }
        let text = measurement_text(doc, m);
        self.texts.push((m.clone(), ids, text.clone()));
        // Keep the cache to what is listed (plus a few deleted ones).
        if self.texts.len() > doc.measurements.len() + 8 {
            self.texts.remove(0);
        }
        text
    }
}

pub fn measure_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    cache: &mut MeasureCache,
    commands: &mut Vec<Command>,
) {
    ui.heading("Tools");
    ui.horizontal_wrapped(|ui| {
        for (tool, key, help) in TOOLS {
            let tip = if key.is_empty() {
                help.to_string()
            } else {
                format!("{help} ({key})")
            };
            let active = doc.measure_tool == Some(tool);
            if ui
                .selectable_label(active, tool.name())
                .on_hover_text(tip)
                .clicked()
            {
                commands.push(Command::SetMeasureTool((!active).then_some(tool)));
            }
        }
    });
    match doc.measure_tool {
        Some(tool) => ui.weak(match tool {
            MeasureTool::Region(_) => "Drag on a slice view; Esc returns to navigation.",
            _ => "Click on a slice view; Esc returns to navigation.",
        }),
        None => ui.weak("Choose a tool, or press D, A or R over the views."),
    };

    ui.separator();
    ui.heading("Measurements");
    if doc.measurements.is_empty() {
        ui.weak("None yet.");
    }
    let mut delete = None;
    for index in 0..doc.measurements.len() {
        let text = cache.text(doc, index);
        ui.horizontal(|ui| {
            ui.strong(&doc.measurements[index].name);
            if ui
                .small_button("Delete")
                .on_hover_text("Remove this measurement")
                .clicked()
            {
                delete = Some(index);
            }
        });
        ui.add(egui::Label::new(text).wrap());
        ui.add_space(4.0);
    }
    if let Some(index) = delete {
        commands.push(Command::DeleteMeasurement(index));
    }

    ui.separator();
    ui.heading("Label volumes");
    let Some(layer) = &doc.labels else {
        ui.weak("No label map yet.");
        return;
    };
    if cache.label_volumes.as_ref().map(|(r, _)| *r) != Some(layer.revision) {
        cache.label_volumes = Some((layer.revision, label_volumes(&layer.map)));
    }
    let rows = cache
        .label_volumes
        .as_ref()
        .map(|(_, rows)| rows.as_slice())
        .unwrap_or_default();
    egui::Grid::new("label volumes")
        .num_columns(3)
        .striped(true)
        .show(ui, |ui| {
            ui.strong("Label");
            ui.strong("Volume");
            ui.strong("Voxels");
            ui.end_row();
            for row in rows {
                ui.label(&row.name);
                ui.label(format!("{:.2} ml", row.volume_ml));
                ui.label(row.voxel_count.to_string());
                ui.end_row();
            }
        });
}
