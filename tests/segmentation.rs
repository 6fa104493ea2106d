//! Classical segmentation on real data (porcine CT, TotalSegmentator outputs) and the
//! `segment` / `metrics` command lines.

mod common;
use common::shared_data;

use fuseprint::io::labels::load_label_map;
use fuseprint::jobs::JobContext;
use fuseprint::segmentation::components::{keep_largest, label_components, threshold_keep_largest};
use fuseprint::segmentation::metrics::{compare_label_maps, compare_masks};
use fuseprint::segmentation::morphology::fill_holes;
use fuseprint::segmentation::threshold::{threshold_preset, ThresholdPreset};
use fuseprint::segmentation::{count, Connectivity, Mask};
use fuseprint::volume::{LabelMap, Volume, VolumeGeometry};
use std::collections::BTreeMap;
use std::process::Command;

fn subset(a: &Mask, b: &Mask) -> bool {
    a.data().iter().zip(b.data()).all(|(x, y)| x <= y)
}

/// Component count by breadth-first flood fill: the slow, obvious reference.
fn count_components_bfs(mask: &Mask, connectivity: Connectivity) -> usize {
    let g = mask.geometry();
    let offsets = connectivity.offsets();
    let mut seen = vec![false; g.voxel_count()];
    let mut n = 0;
    for start in 0..g.voxel_count() {
        if mask.data()[start] == 0 || seen[start] {
            continue;
        }
        n += 1;
        seen[start] = true;
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            let [i, j, k] = g.index3(v);
            for o in &offsets {
                let (a, b, c) = (i as i64 + o[0], j as i64 + o[1], k as i64 + o[2]);
                if g.contains_index(a, b, c) {
                    let w = g.linear_index(a as usize, b as usize, c as usize);
                    if mask.data()[w] != 0 && !seen[w] {
                        seen[w] = true;
                        queue.push_back(w);
                    }
                }
            }
        }
    }
    n
}

#[test]
fn bone_threshold_on_the_porcine_ct() {
    let Some(data) = shared_data() else { return };
    let path = data.join("registration/mri_dir_porcine_phantom/ct_from_dicom_2x_inplane.nii.gz");
    let ct = fuseprint::io::load_image(&path, &JobContext::detached())
        .expect("porcine CT loads")
        .volume;
    let bone = threshold_preset(&ct, ThresholdPreset::Bone);
    let (low, high) = ThresholdPreset::Bone.range_hu();
    let expected = ct.data().iter().filter(|&&v| v >= low && v <= high).count();
    assert_eq!(count(&bone), expected);
    assert!(
        expected > 1000,
        "the phantom contains bone: {expected} voxels"
    );

    // Fused threshold + keep largest equals the two-step path, and is a piece of the bone.
    let largest = threshold_keep_largest(&ct, low, high, Connectivity::TwentySix);
    assert!(largest.data() == keep_largest(&bone, Connectivity::TwentySix).data());
    assert!(subset(&largest, &bone));
    let (_, sizes) = label_components(&bone, Connectivity::TwentySix);
    assert_eq!(
        count(&largest) as u64,
        sizes.iter().copied().max().unwrap_or(0)
    );
    assert!(subset(&bone, &fill_holes(&bone)));

    // On a real block around the bone, run-based labelling agrees with flood fill.
    let centre = bone
        .data()
        .iter()
        .position(|&v| v != 0)
        .map(|idx| bone.geometry().index3(idx))
        .expect("bone present");
    let dims = bone.dims();
    let lo = [0, 1, 2].map(|a| centre[a].saturating_sub(32).min(dims[a].saturating_sub(64)));
    let sub_g = VolumeGeometry::axis_aligned(
        [64.min(dims[0]), 64.min(dims[1]), 64.min(dims[2])],
        [1.0; 3],
        [0.0; 3],
    )
    .expect("valid");
    let block = Volume::from_fn(sub_g, |[i, j, k]| bone.at(lo[0] + i, lo[1] + j, lo[2] + k));
    for c in [Connectivity::Six, Connectivity::TwentySix] {
        assert_eq!(
            label_components(&block, c).1.len(),
            count_components_bfs(&block, c),
            "{c:?}"
        );
    }
}

#[test]
fn totalsegmentator_maps_compare_per_label() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("totalsegmentator");
    let ctx = JobContext::detached();
    let (full, ()) = load_label_map::<()>(&dir.join("example_seg.nii.gz"), &ctx).expect("loads");
    let (fast, ()) =
        load_label_map::<()>(&dir.join("example_seg_fast.nii.gz"), &ctx).expect("loads");
    let c = compare_label_maps(&full, &fast, &ctx).expect("same grid");
    let present: std::collections::BTreeSet<u16> = full
        .values_present()
        .into_iter()
        .chain(fast.values_present())
        .collect();
    assert_eq!(
        c.per_label
            .iter()
            .map(|l| l.label)
            .collect::<std::collections::BTreeSet<_>>(),
        present
    );
    // Overall Dice from voxel counts, computed independently.
    let (a, b) = (full.volume.data(), fast.volume.data());
    let both = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 && **y != 0)
        .count() as f64;
    let na = a.iter().filter(|x| **x != 0).count() as f64;
    let nb = b.iter().filter(|x| **x != 0).count() as f64;
    assert!((c.overall.dice - 2.0 * both / (na + nb)).abs() < 1e-12);
    // Symmetric metrics are symmetric; a map against itself is perfect.
    let back = compare_label_maps(&fast, &full, &ctx).expect("same grid");
    assert!((back.overall.dice - c.overall.dice).abs() < 1e-12);
    assert_eq!(back.overall.hausdorff95_mm, c.overall.hausdorff95_mm);
    let same = compare_label_maps(&full, &full, &ctx).expect("same grid");
    assert!(same
        .per_label
        .iter()
        .all(|l| l.metrics.dice == 1.0 && l.metrics.hausdorff95_mm == Some(0.0)));
    // A label's mask metrics equal the per-label entry.
    let liver = 5u16;
    if let Some(entry) = c.per_label.iter().find(|l| l.label == liver) {
        let m = |map: &LabelMap| map.volume.map(|v| u8::from(v == liver));
        let direct = compare_masks(&m(&full), &m(&fast)).expect("same grid");
        assert_eq!(direct, entry.metrics);
    }
}

fn fuseprint(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fuseprint"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn segment_and_metrics_command_lines() {
    let Some(data) = shared_data() else { return };
    let ct = data.join("totalsegmentator/example_ct_sm.nii.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bone.nii.gz");
    let (ok, stdout, stderr) = fuseprint(&[
        "segment",
        "threshold",
        ct.to_str().expect("utf-8"),
        "--low",
        "226",
        "--high",
        "3071",
        "--largest",
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ml"), "{stdout}");
    // Same answer as the library.
    let image = fuseprint::io::load_image(&ct, &JobContext::detached())
        .expect("loads")
        .volume;
    let expect = threshold_keep_largest(&image, 226.0, 3071.0, Connectivity::TwentySix);
    let (written, profiles): (LabelMap, BTreeMap<u16, serde_json::Value>) =
        load_label_map(&out, &JobContext::detached()).expect("output loads");
    assert!(profiles.is_empty());
    assert_eq!(
        written.volume.data().iter().filter(|&&v| v == 1).count(),
        count(&expect)
    );
    assert!(written.geometry().same_grid(image.geometry(), 1e-4));

    // metrics: overall Dice first, then per label; --json parses.
    let grown = dir.path().join("grown.nii.gz");
    let (ok, _, stderr) = fuseprint(&[
        "segment",
        "morph",
        out.to_str().expect("utf-8"),
        "--op",
        "dilate",
        "--mm",
        "3",
        "-o",
        grown.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = fuseprint(&[
        "metrics",
        out.to_str().expect("utf-8"),
        grown.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("overall") && first.contains("dice"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (ok, stdout, _) = fuseprint(&[
        "metrics",
        "--json",
        out.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    ]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["overall"]["dice"], 1.0);
    // Refuses to overwrite; bad presets are one-line errors naming the choices.
    let (ok, _, stderr) = fuseprint(&[
        "segment",
        "threshold",
        ct.to_str().expect("utf-8"),
        "--preset",
        "bone",
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(!ok && stderr.contains("overwrite"), "{stderr}");
    let (ok, _, stderr) = fuseprint(&[
        "segment",
        "threshold",
        ct.to_str().expect("utf-8"),
        "--preset",
        "bones",
        "-o",
        grown.to_str().expect("utf-8"),
        "--force",
    ]);
    assert!(
        !ok && stderr.contains("cortical-bone") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
