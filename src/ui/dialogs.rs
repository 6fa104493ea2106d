//! Floating windows: the series table of a multi-series folder, the built-in file browser,
//! questions (replace a file? quit unsaved?), the crash-recovery offer and the built-in
//! save prompt.

use super::Prompt;
use crate::document::{BrowserListing, Command, SeriesChoice};

pub fn series_table_ui(ctx: &egui::Context, choice: &SeriesChoice, commands: &mut Vec<Command>) {
    egui::Window::new("Choose a series")
        .collapsible(false)
        .default_width(900.0)
        .show(ctx, |ui| {
            ui.label(format!(
                "{} holds {} series.",
                choice.source,
                choice.rows.len()
            ));
            egui::ScrollArea::both().max_height(400.0).show(ui, |ui| {
                egui::Grid::new("series_table")
                    .striped(true)
                    .show(ui, |ui| {
                        for title in [
                            "",
                            "#",
                            "Modality",
                            "Description",
                            "Dims",
                            "Spacing (mm)",
                            "Slices",
                            "Transfer syntax",
                            "Warnings",
                        ] {
                            ui.strong(title);
                        }
                        ui.end_row();
                        for (index, row) in choice.rows.iter().enumerate() {
                            let label = if choice.suggested == Some(index) {
                                "Open (suggested)"
                            } else {
                                "Open"
                            };
                            if ui.button(label).clicked() {
                                commands.push(Command::SelectSeries(index));
                            }
                            ui.label(&row.number);
                            ui.label(&row.modality);
                            ui.label(&row.description);
                            let [x, y, z] = row.dims;
                            ui.label(format!("{x}×{y}×{z}"));
                            let [sx, sy, sz] = row.spacing_mm;
                            ui.label(format!("{sx:.2}×{sy:.2}×{sz:.2}"));
                            ui.label(row.slice_count.to_string());
                            ui.label(&row.transfer_syntax);
                            ui.label(row.warnings.join("; "));
                            ui.end_row();
                        }
                    });
            });
            if ui.button("Close").clicked() {
                commands.push(Command::DismissSeriesChoice);
            }
        });
}

pub fn file_browser_ui(ctx: &egui::Context, listing: &BrowserListing, commands: &mut Vec<Command>) {
    egui::Window::new("Open a file or folder")
        .collapsible(false)
        .default_width(560.0)
        .default_height(480.0)
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                if let Some(parent) = &listing.parent {
                    if ui.button("Up").clicked() {
                        commands.push(Command::BrowseFolder(Some(parent.clone())));
                    }
                }
                ui.label(listing.folder.display().to_string());
            });
            if let Some(error) = &listing.error {
                ui.colored_label(super::theme::ERROR_TEXT, error);
            }
            egui::ScrollArea::vertical()
                .max_height(380.0)
                .show(ui, |ui| {
                    for entry in &listing.entries {
                        ui.horizontal(|ui| {
                            if ui.small_button("Open").clicked() {
                                commands.push(Command::LoadPath(entry.path.clone()));
                                commands.push(Command::BrowseFolder(None));
                            }
                            if entry.is_folder {
                                if ui.link(format!("{}/", entry.name)).clicked() {
                                    commands.push(Command::BrowseFolder(Some(entry.path.clone())));
                                }
                            } else {
                                ui.label(&entry.name);
                            }
                        });
                    }
                });
            ui.horizontal(|ui| {
                if ui.button("Open this folder (DICOM)").clicked() {
                    commands.push(Command::LoadPath(listing.folder.clone()));
                    commands.push(Command::BrowseFolder(None));
                }
                if ui.button("Close").clicked() {
                    commands.push(Command::BrowseFolder(None));
                }
            });
        });
}

/// A yes/no question; nothing else is asked until it is answered.
pub fn question_ui(ctx: &egui::Context, prompt: &Prompt, commands: &mut Vec<Command>) {
    egui::Modal::new(egui::Id::unique("question")).show(ctx, |ui| {
        ui.set_max_width(420.0);
        ui.label(&prompt.text);
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button(&prompt.yes).clicked() {
                commands.push(Command::AnswerQuestion(true));
            }
            if ui.button(&prompt.no).clicked() {
                commands.push(Command::AnswerQuestion(false));
            }
        });
    });
}

/// The offer to recover a session that did not exit cleanly.
pub fn recovery_ui(ctx: &egui::Context, offer: &str, commands: &mut Vec<Command>) {
    egui::Modal::new(egui::Id::unique("recovery")).show(ctx, |ui| {
        ui.set_max_width(460.0);
        ui.heading("Recover unsaved work?");
        ui.label(offer);
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui
                .button("Recover")
                .on_hover_text("Open the autosaved session (the current one is replaced)")
                .clicked()
            {
                commands.push(Command::RecoverSession(true));
            }
            if ui
                .button("Discard")
                .on_hover_text("Delete the autosave for good")
                .clicked()
            {
                commands.push(Command::RecoverSession(false));
            }
            if ui
                .button("Later")
                .on_hover_text("Keep the autosave and ask again at the next start")
                .clicked()
            {
                commands.push(Command::PostponeRecovery);
            }
        });
    });
}

/// A path typed by hand, for desktops without a file dialog service: `Some(true)` to save,
/// `Some(false)` to cancel, `None` while the user is typing.
pub fn save_prompt_ui(ctx: &egui::Context, text: &mut String) -> Option<bool> {
    let mut answer = None;
    egui::Window::new("Save as")
        .collapsible(false)
        .default_width(520.0)
        .show(ctx, |ui| {
            ui.label("No file dialog is available on this desktop: type the path.");
            ui.add(egui::TextEdit::singleline(text).desired_width(480.0));
            ui.horizontal(|ui| {
                if ui.button("Save").clicked() {
                    answer = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    answer = Some(false);
                }
            });
        });
    answer
}
