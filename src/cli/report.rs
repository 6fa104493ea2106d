//! `fuseprint report PROJECT.fuseprint -o report.html`: the one-page planning report of a
//! saved project (or of the bundled sample with `--sample`). Its 3D pictures come from the real
//! renderer offscreen when a GPU adapter exists (Mesa's lavapipe counts), as in the app; the CPU
//! drawing otherwise, and the command says which.

use super::progress::run_with_progress;
use crate::document::project::{self, sample_project, Project, ReportOptions, SaveMode};
use crate::export::report::write_report;
use anyhow::Context;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A project folder (`NAME.fuseprint`) or its project.json.
    #[arg(required_unless_present = "sample")]
    pub project: Option<PathBuf>,
    /// Report on the bundled sample study instead of a saved project.
    #[arg(long, conflicts_with = "project")]
    pub sample: bool,
    /// The HTML file to write.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Leave out the patient's name, ID and study date.
    #[arg(long)]
    pub anonymise: bool,
    #[arg(long)]
    pub title: Option<String>,
    /// Also save the project (e.g. the sample) as a project folder here.
    #[arg(long)]
    pub save_project: Option<PathBuf>,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        anyhow::bail!(
            "refusing to overwrite existing file (use --force): {}",
            args.out.display()
        );
    }
    let source = args.project.clone();
    let project: Project = run_with_progress("report", move |ctx| -> anyhow::Result<Project> {
        match &source {
            Some(path) => Ok(project::open(path, ctx)?),
            None => Ok(sample_project(ctx)?),
        }
    })?;
    if let Some(folder) = &args.save_project {
        let folder = project::with_project_extension(folder);
        let mode = if args.force {
            SaveMode::Replace
        } else {
            SaveMode::CreateNew
        };
        let contents = project.to_contents();
        let target = folder.clone();
        let summary = run_with_progress("save", move |ctx| {
            project::save_contents(&contents, &target, mode, ctx)
        })?;
        println!(
            "saved {} ({} files written)",
            summary.folder.display(),
            summary.written.len()
        );
    }
    let (images, drawn) = crate::app::report_pictures::report_pictures(&project);
    let report = project.planning_report(ReportOptions {
        title: args.title.clone().unwrap_or_default(),
        generated: crate::export::report::today_utc(),
        anonymise: args.anonymise,
        images,
    });
    write_report(&args.out, &report, args.force)
        .with_context(|| format!("writing the report {}", args.out.display()))?;
    let drawn = match drawn {
        crate::app::report_pictures::Drawn::Gpu(adapter) => {
            format!("3D drawn on the GPU ({adapter})")
        }
        crate::app::report_pictures::Drawn::Cpu(why) => format!("3D drawn on the CPU: {why}"),
    };
    println!(
        "wrote {} ({} pictures, {drawn}; {} label volumes, {} parts)",
        args.out.display(),
        report.images.len(),
        report.label_volumes.len(),
        report.accuracy.as_ref().map(|a| a.parts.len()).unwrap_or(0)
    );
    Ok(())
}
