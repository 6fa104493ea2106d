//! Project folders: exact round trip of the whole sample study, re-saves that rewrite only
//! what changed, no silent overwrite, clear refusals, and a real CT + label map.

mod common;

use fuseprint::document::project::{
    self, backup_path, sample_project, Project, ProjectError, SaveMode,
};
use fuseprint::io::project::{open_project, MANIFEST_FILE};
use fuseprint::jobs::JobContext;
use fuseprint::registration::transform::parse_itk_text;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, OnceLock};

/// Built once per test binary: the sample's meshes take a moment.
fn sample() -> &'static Project {
    static SAMPLE: OnceLock<Project> = OnceLock::new();
    SAMPLE.get_or_init(|| sample_project(&JobContext::detached()).expect("sample project builds"))
}

fn assert_same_project(a: &Project, b: &Project) {
    assert_eq!(a.study, b.study);
    assert_eq!(a.volumes.len(), b.volumes.len());
    for (x, y) in a.volumes.iter().zip(&b.volumes) {
        // Geometry to the bit and every voxel.
        assert_eq!(
            x.image.volume.geometry(),
            y.image.volume.geometry(),
            "{}",
            x.name
        );
        assert!(
            x.image.volume.data() == y.image.volume.data(),
            "{} voxels",
            x.name
        );
        assert_eq!(x.image.meta, y.image.meta);
        assert_eq!((&x.name, &x.role, x.window), (&y.name, &y.role, y.window));
    }
    assert_eq!(a.label_maps.len(), b.label_maps.len());
    for (x, y) in a.label_maps.iter().zip(&b.label_maps) {
        assert!(*x.map == *y.map, "label map {} changed", x.name);
        assert_eq!(x.print_profiles, y.print_profiles);
        assert_eq!(x.reference_volume, y.reference_volume);
    }
    assert_eq!(a.transforms, b.transforms);
    assert_eq!(a.meshes.len(), b.meshes.len());
    for (x, y) in a.meshes.iter().zip(&b.meshes) {
        assert!(*x.mesh == *y.mesh, "mesh {} changed", x.name);
        assert_eq!(
            (&x.name, x.label, &x.profile),
            (&y.name, y.label, &y.profile)
        );
    }
    assert_eq!(a.view, b.view);
    assert_eq!(a.measurements, b.measurements);
    assert_eq!(a.registration, b.registration);
    assert_eq!(a.accuracy, b.accuracy);
}

#[test]
fn sample_project_round_trips_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("sample.fuseprint");
    let ctx = JobContext::detached();
    let original = sample();
    assert!(!original.meshes.is_empty() && original.accuracy.is_some());
    let summary = project::save(original, &folder, SaveMode::CreateNew, &ctx).expect("saves");
    assert!(summary.reused.is_empty());
    let back = project::open(&folder, &ctx).expect("opens");
    assert_same_project(original, &back);

    // The transform is also an ITK file other tools read, holding the same matrix.
    let tfm = std::fs::read_dir(&folder)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tfm"))
        .expect("a .tfm member");
    let from_itk = parse_itk_text(&std::fs::read_to_string(&tfm).expect("read")).expect("parses");
    let diff = (from_itk - original.transforms[0].moving_from_fixed)
        .abs()
        .max();
    assert!(diff < 1e-9, "ITK file differs by {diff}");

    // Opening into a document restores the images, windows and view.
    let doc = back.into_document();
    assert_eq!(doc.volumes.len(), 2);
    assert_eq!(Some(doc.volumes[0].window), original.volumes[0].window);
    assert_eq!(doc.cursor_world, original.view.cursor_world);
    assert_eq!(doc.overlay.map(|o| o.volume), Some(1));
}

#[test]
fn resave_rewrites_only_what_changed_and_never_overwrites_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("case.fuseprint");
    let ctx = JobContext::detached();
    let mut p = sample().clone();
    project::save(&p, &folder, SaveMode::CreateNew, &ctx).expect("saves");
    let ct_file = folder.join("volume-00-Sample_CT.nii.gz");
    let ct_inode = std::fs::metadata(&ct_file).expect("CT member").ino();

    let err = project::save(&p, &folder, SaveMode::CreateNew, &ctx).expect_err("exists");
    assert!(matches!(err, ProjectError::Exists { .. }), "{err}");

    // One brush stroke later: only the label map (and the small text members) are written.
    let mut labels = (*p.label_maps[0].map).clone();
    labels.volume.set(3, 4, 5, 2);
    p.label_maps[0].map = Arc::new(labels);
    let summary = project::save(&p, &folder, SaveMode::Replace, &ctx).expect("replaces");
    let compressed: Vec<&String> = summary
        .written
        .iter()
        .filter(|f| f.ends_with(".nii.gz"))
        .collect();
    assert_eq!(compressed, vec!["labels-00-Anatomy.nii.gz"]);
    assert!(summary.reused.iter().any(|f| f.starts_with("volume-00")));
    assert_eq!(
        std::fs::metadata(&ct_file).expect("CT member").ino(),
        ct_inode,
        "the unchanged CT was rewritten"
    );
    assert!(
        !backup_path(&folder).exists(),
        "backup kept after a complete save"
    );
    let back = project::open(&folder, &ctx).expect("opens");
    assert_eq!(back.label_maps[0].map.volume.at(3, 4, 5), 2);

    // A save interrupted between moving the old version aside and placing the new one.
    std::fs::rename(&folder, backup_path(&folder)).expect("simulate");
    let err = project::open(&folder, &ctx).expect_err("interrupted");
    assert!(matches!(err, ProjectError::InterruptedSave { .. }), "{err}");
    assert!(err.to_string().contains("case.fuseprint.backup"), "{err}");
}

#[test]
fn damaged_projects_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("damaged.fuseprint");
    let ctx = JobContext::detached();
    project::save(sample(), &folder, SaveMode::CreateNew, &ctx).expect("saves");

    let mr = folder.join("volume-01-Sample_MR.nii.gz");
    let bytes = std::fs::read(&mr).expect("read");
    std::fs::write(&mr, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = project::open(&folder, &ctx).expect_err("corrupt");
    assert!(matches!(err, ProjectError::CorruptMember { .. }), "{err}");
    assert!(
        err.to_string().ends_with("volume-01-Sample_MR.nii.gz"),
        "{err}"
    );

    std::fs::remove_file(&mr).expect("rm");
    let err = project::open(&folder, &ctx).expect_err("missing");
    assert!(matches!(err, ProjectError::MissingMember { .. }), "{err}");
    assert!(
        err.to_string().ends_with("volume-01-Sample_MR.nii.gz"),
        "{err}"
    );

    let manifest = folder.join(MANIFEST_FILE);
    std::fs::write(
        &manifest,
        b"{\"format\": \"fuseprint-project\", \"version\": 7}",
    )
    .expect("w");
    let err = project::open(&folder, &ctx).expect_err("newer");
    assert!(
        matches!(err, ProjectError::NewerVersion { found: 7, .. }),
        "{err}"
    );
    std::fs::write(&manifest, b"{ not json").expect("w");
    let err = project::open(&folder, &ctx).expect_err("garbage");
    assert!(matches!(err, ProjectError::BadManifest { .. }), "{err}");
    let err = open_project(dir.path(), &ctx).expect_err("not a project");
    assert!(matches!(err, ProjectError::NotAProject { .. }), "{err}");
}

#[test]
fn real_ct_and_label_map_round_trip() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let ctx = JobContext::detached();
    let ct = fuseprint::io::load_image(&data.join("totalsegmentator/example_ct_sm.nii.gz"), &ctx)
        .expect("CT loads");
    let seg =
        fuseprint::io::nifti::read_labels(&data.join("totalsegmentator/example_seg.nii.gz"), &ctx)
            .expect("labels load");
    let original = Project {
        volumes: vec![project::ProjectVolume {
            name: "CT".into(),
            role: project::VolumeRole::Fixed,
            image: Arc::new(ct),
            window: None,
        }],
        label_maps: vec![project::ProjectLabelMap {
            name: "TotalSegmentator".into(),
            map: Arc::new(seg),
            print_profiles: Default::default(),
            reference_volume: Some(0),
        }],
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("real.fuseprint");
    project::save(&original, &folder, SaveMode::CreateNew, &ctx).expect("saves");
    let back = project::open(&folder, &ctx).expect("opens");
    assert_same_project(&original, &back);
}

#[test]
fn a_crashed_session_is_offered_for_recovery() {
    use fuseprint::document::autosave::{find_recoverable_in, AutosavePolicy, Session};
    use fuseprint::io::project::{write_session_marker, SessionMarker};
    use std::time::{Duration, Instant};

    let root = tempfile::tempdir().expect("tempdir");
    let ctx = JobContext::detached();
    let original = std::path::PathBuf::from("/cases/jane.fuseprint");
    let mut policy = AutosavePolicy::new(root.path());
    policy.idle = Duration::ZERO;
    let mut session = Session::start(policy, Some(original.clone())).expect("starts");
    let t0 = Instant::now();
    let mut p = sample().clone();
    assert!(!session.tick(1, t0), "the state at start needs no autosave");
    assert!(session.tick(2, t0), "a change, then idle");
    let job = session.prepare(&p, 2);
    job.run(&ctx).expect("autosaves");
    session.finished(job.revision, true, t0);

    // The next autosave after an edit rewrites the label map only.
    let mut labels = (*p.label_maps[0].map).clone();
    labels.volume.set(1, 1, 1, 4);
    p.label_maps[0].map = Arc::new(labels);
    assert!(session.tick(3, t0));
    let job = session.prepare(&p, 3);
    let summary = job.run(&ctx).expect("autosaves again");
    session.finished(job.revision, true, t0);
    assert!(summary.reused.iter().any(|f| f.starts_with("volume-00")));
    assert!(!summary.written.iter().any(|f| f.starts_with("volume-")));

    // A live session is not a crash.
    assert!(find_recoverable_in(root.path()).is_empty());

    // Crash: the process ends without a clean exit. Its marker now names a finished process.
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    };
    let marker = SessionMarker {
        pid: dead_pid,
        started_unix_s: 1,
        project: Some(original.clone()),
    };
    write_session_marker(session.dir(), &marker).expect("marker");
    drop(session);

    let found = find_recoverable_in(root.path());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].original.as_ref(), Some(&original));
    let recovered = found[0].open(&ctx).expect("recovers");
    assert_same_project(&p, &recovered);
    found[0].discard().expect("discards");
    assert!(find_recoverable_in(root.path()).is_empty());
    assert!(!found[0].dir.exists());

    // A clean exit leaves nothing behind.
    let session = Session::start(AutosavePolicy::new(root.path()), None).expect("starts");
    session.end_clean().expect("clean exit");
    assert_eq!(std::fs::read_dir(root.path()).expect("ls").count(), 0);
}
