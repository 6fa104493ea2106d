//! Meshing on phantoms with known answers, and on TotalSegmentator label maps.

mod common;
use common::shared_data;

use fuseprint::jobs::JobContext;
use fuseprint::meshing::repair::{self, check};
use fuseprint::meshing::smooth::SmoothParams;
use fuseprint::meshing::{self, DecimateTarget, MeshingParams};
use fuseprint::volume::{LabelMap, LabelTable, TriMesh, Volume, VolumeGeometry};
use std::collections::HashSet;
use std::f64::consts::PI;

fn grid(n: usize, spacing: f64) -> VolumeGeometry {
    VolumeGeometry::axis_aligned([n; 3], [spacing; 3], [-10.0, 20.0, 5.0]).expect("valid grid")
}

/// Signed distance field of a sphere (positive inside), radius in mm.
fn sphere_field(g: &VolumeGeometry, radius_mm: f64) -> Volume<f32> {
    let c = g.center_world();
    let g2 = g.clone();
    Volume::from_fn(g.clone(), move |[i, j, k]| {
        let p = g2.world_from_voxel_point([i as f64, j as f64, k as f64]);
        (radius_mm - (p - c).norm()) as f32
    })
}

fn raw() -> MeshingParams {
    MeshingParams {
        smooth: None,
        decimate: None,
        min_component_mm3: 0.0,
        fill_holes: false,
    }
}

fn assert_closed(m: &TriMesh, what: &str) {
    let c = check(m);
    assert!(c.watertight && c.manifold, "{what}: {c:?}");
}

#[test]
fn marching_cubes_sphere_volume_and_area() {
    let g = grid(40, 1.0);
    let r = 14.0;
    let m = meshing::iso_mesh(&sphere_field(&g, r), 0.0, &raw(), &JobContext::detached())
        .expect("mesh");
    assert_closed(&m, "sphere");
    let v = 4.0 / 3.0 * PI * r.powi(3);
    let a = 4.0 * PI * r * r;
    assert!(
        (m.signed_volume_mm3() / v - 1.0).abs() < 0.01,
        "volume {} vs {v}",
        m.signed_volume_mm3()
    );
    assert!(
        (m.area_mm2() / a - 1.0).abs() < 0.03,
        "area {} vs {a}",
        m.area_mm2()
    );
}

#[test]
fn marching_cubes_torus_anisotropic_and_mirrored() {
    use nalgebra::Matrix3;
    // A mirrored (det < 0) anisotropic grid must still give outward normals in world space.
    let dir = Matrix3::new(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0);
    let g =
        VolumeGeometry::new([60, 60, 30], [0.8, 0.8, 1.2], [30.0, -5.0, 2.0], dir).expect("valid");
    let (big, small) = (14.0, 5.0);
    let c = g.center_world();
    let g2 = g.clone();
    let vol = Volume::from_fn(g.clone(), move |[i, j, k]| {
        let p = g2.world_from_voxel_point([i as f64, j as f64, k as f64]) - c;
        let q = ((p.x * p.x + p.y * p.y).sqrt() - big).hypot(p.z);
        (small - q) as f32
    });
    let m = meshing::iso_mesh(&vol, 0.0, &raw(), &JobContext::detached()).expect("mesh");
    assert_closed(&m, "torus");
    let v = 2.0 * PI * PI * big * small * small;
    let a = 4.0 * PI * PI * big * small;
    assert!(
        (m.signed_volume_mm3() / v - 1.0).abs() < 0.01,
        "volume {} vs {v}",
        m.signed_volume_mm3()
    );
    assert!(
        (m.area_mm2() / a - 1.0).abs() < 0.03,
        "area {} vs {a}",
        m.area_mm2()
    );
}

#[test]
fn marching_cubes_random_field_is_watertight() {
    // Noise exercises every ambiguous face case; the surface must still close.
    let g = grid(24, 1.0);
    let mut state = 12345u64;
    let vol = Volume::from_fn(g, |_| 0.0f32).map(|_| 0.0f32);
    let data: Vec<f32> = (0..vol.data().len())
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let vol = Volume::new(vol.geometry().clone(), data).expect("fits");
    let m = meshing::isosurface(&vol, 0.5, &JobContext::detached()).expect("mesh");
    assert!(m.face_count() > 1000);
    assert_closed(&m, "noise");
    assert!(m.signed_volume_mm3() > 0.0);
}

#[test]
fn taubin_smoothing_keeps_sphere_volume() {
    let g = grid(40, 1.0);
    let field = sphere_field(&g, 13.0);
    let raw_mesh = meshing::iso_mesh(&field, 0.0, &raw(), &JobContext::detached()).expect("mesh");
    let params = MeshingParams {
        smooth: Some(SmoothParams {
            iterations: 20,
            max_offset_voxels: None,
            ..SmoothParams::default()
        }),
        ..raw()
    };
    let smooth = meshing::iso_mesh(&field, 0.0, &params, &JobContext::detached()).expect("mesh");
    assert_closed(&smooth, "smoothed sphere");
    let change = smooth.signed_volume_mm3() / raw_mesh.signed_volume_mm3() - 1.0;
    assert!(
        change.abs() < 0.01,
        "volume changed by {:.3} %",
        change * 100.0
    );
    // And it did move vertices.
    let moved = raw_mesh
        .positions_world_mm
        .iter()
        .zip(&smooth.positions_world_mm)
        .filter(|(a, b)| (0..3).any(|d| (a[d] - b[d]).abs() > 1e-4))
        .count();
    assert!(moved > raw_mesh.vertex_count() / 2);
}

fn label_map(g: VolumeGeometry, f: impl Fn([usize; 3]) -> u16 + Sync) -> LabelMap {
    LabelMap::new(Volume::from_fn(g, f), LabelTable::new())
}

/// A label map on a 40 mm cube of 1 mm voxels whose label depends only on the distance (mm)
/// from its centre, meshed with the default parameters.
fn concentric_labels(
    label_at: impl Fn(f64) -> u16 + Sync,
) -> (LabelMap, Vec<meshing::LabelSurface>) {
    let g = grid(40, 1.0);
    let c = g.center_world();
    let g2 = g.clone();
    let map = label_map(g, move |[i, j, k]| {
        label_at((g2.world_from_voxel_point([i as f64, j as f64, k as f64]) - c).norm())
    });
    let parts = meshing::label_surfaces(
        &map,
        None,
        &MeshingParams::default(),
        &JobContext::detached(),
    )
    .expect("mesh");
    (map, parts)
}

#[test]
fn touching_cubes_share_their_wall() {
    let g = grid(20, 1.0);
    let map = label_map(g, |[i, j, k]| {
        let inside = (4..12).contains(&j) && (4..12).contains(&k);
        match i {
            4..=9 if inside => 1,
            10..=15 if inside => 2,
            _ => 0,
        }
    });
    for params in [
        raw(),
        MeshingParams {
            fill_holes: false,
            ..MeshingParams::default()
        },
    ] {
        let parts =
            meshing::label_surfaces(&map, None, &params, &JobContext::detached()).expect("mesh");
        assert_eq!(parts.len(), 2);
        for p in &parts {
            assert_closed(&p.mesh, &p.name);
            let expected = 6.0 * 8.0 * 8.0;
            assert!(
                (p.mesh.signed_volume_mm3() / expected - 1.0).abs() < 0.15,
                "{}: {}",
                p.name,
                p.mesh.signed_volume_mm3()
            );
        }
        let key = |m: &TriMesh, t: [u32; 3]| {
            t.map(|v| m.positions_world_mm[v as usize].map(f32::to_bits))
        };
        let (a, b) = (&parts[0].mesh, &parts[1].mesh);
        let verts_b: HashSet<[u32; 3]> = b
            .positions_world_mm
            .iter()
            .map(|p| p.map(f32::to_bits))
            .collect();
        let wall_a: Vec<[[u32; 3]; 3]> = a
            .indices
            .iter()
            .map(|&t| key(a, t))
            .filter(|t| t.iter().all(|p| verts_b.contains(p)))
            .collect();
        let tris_b: HashSet<[[u32; 3]; 3]> = b.indices.iter().map(|&t| key(b, t)).collect();
        // The wall is 8×8 voxel faces = 128 triangles, each present reversed in the other part.
        assert!(wall_a.len() >= 128, "wall has {} triangles", wall_a.len());
        for t in &wall_a {
            let rev = [[t[0], t[2], t[1]], [t[2], t[1], t[0]], [t[1], t[0], t[2]]];
            assert!(
                rev.iter().any(|r| tris_b.contains(r)),
                "wall triangle without a twin"
            );
        }
    }
}

#[test]
fn constrained_smoothing_keeps_two_voxel_plate() {
    let g = grid(24, 1.0);
    let map = label_map(g, |[i, j, k]| {
        ((3..21).contains(&i) && (3..21).contains(&j) && (10..12).contains(&k)) as u16
    });
    let params = MeshingParams {
        smooth: Some(SmoothParams {
            iterations: 50,
            ..SmoothParams::default()
        }),
        ..raw()
    };
    let parts =
        meshing::label_surfaces(&map, None, &params, &JobContext::detached()).expect("mesh");
    let m = &parts[0].mesh;
    assert_closed(m, "plate");
    // Plate occupies voxel centres z = 10, 11 (world z = 15, 16): walls must stay apart.
    let mid = 5.0 + 10.5;
    // Away from the rim (voxels i, j in 6..18) both faces must stay at least half a voxel from the mid-plane.
    let interior = |p: &&[f32; 3]| (-4.0..=8.0).contains(&p[0]) && (26.0..=38.0).contains(&p[1]);
    let min_half = m
        .positions_world_mm
        .iter()
        .filter(interior)
        .map(|p| (p[2] - mid).abs())
        .fold(f32::INFINITY, f32::min);
    assert!(min_half >= 0.49, "plate thinned to {} mm", 2.0 * min_half);
    let mask = 18.0 * 18.0 * 2.0;
    assert!(
        m.signed_volume_mm3() > 0.75 * mask,
        "{}",
        m.signed_volume_mm3()
    );
}

#[test]
fn a_label_around_another_keeps_its_cavity_out_of_its_volume() {
    // Label 1: a shell between radii 6 and 15 mm; label 2 fills the cavity. Label 1's mesh
    // has an inner wall that must face into the cavity, so its volume is the shell's only.
    let (map, parts) = concentric_labels(|r| {
        if r < 6.0 {
            2
        } else if r < 15.0 {
            1
        } else {
            0
        }
    });
    let report = meshing::accuracy_report(&map, &parts, 0.5);
    for p in &report.parts {
        assert!(p.check.watertight && p.check.manifold, "{p:?}");
        assert!(p.volume_difference_percent.abs() < 3.0, "{p:?}");
    }
    let shell = &report.parts[0];
    assert_eq!((shell.label, shell.check.components), (Some(1), 2));
    let (outer, inner) = (
        4.0 / 3.0 * PI * 15f64.powi(3),
        4.0 / 3.0 * PI * 6f64.powi(3),
    );
    assert!(
        (shell.mesh_volume_mm3 / (outer - inner) - 1.0).abs() < 0.03,
        "shell volume {} vs {}",
        shell.mesh_volume_mm3,
        outer - inner
    );
}

#[test]
fn labelled_sphere_report_within_half_voxel() {
    let (map, parts) = concentric_labels(|r| (r < 14.0) as u16);
    let report = meshing::accuracy_report(&map, &parts, 0.5);
    let p = &report.parts[0];
    assert!(p.check.watertight, "{:?}", p.check);
    assert!(p.mean_mm < 0.5 && p.max_mm < 1.0, "{p:?}");
    assert!(p.volume_difference_percent.abs() < 3.0, "{p:?}");
    assert!(report.summary().contains("watertight"));
    let v = 4.0 / 3.0 * PI * 14f64.powi(3);
    assert!((p.mask_volume_mm3 / v - 1.0).abs() < 0.03);
}

#[test]
fn decimation_keeps_a_closed_outward_sphere() {
    let g = grid(48, 1.0);
    let r = 18.0;
    let field = sphere_field(&g, r);
    let params = MeshingParams {
        decimate: Some(DecimateTarget::Faces(2000)),
        ..raw()
    };
    let full = meshing::iso_mesh(&field, 0.0, &raw(), &JobContext::detached()).expect("mesh");
    let m = meshing::iso_mesh(&field, 0.0, &params, &JobContext::detached()).expect("mesh");
    assert!(full.face_count() > 10_000);
    assert!(m.face_count() <= 2002, "{}", m.face_count());
    assert_closed(&m, "decimated sphere");
    let v = 4.0 / 3.0 * PI * r.powi(3);
    assert!(
        (m.signed_volume_mm3() / v - 1.0).abs() < 0.02,
        "{}",
        m.signed_volume_mm3()
    );
    let c = g.center_world();
    for f in 0..m.face_count() {
        let n = m.face_normal_scaled(f);
        let p = m.face_corners(f)[0];
        let out = (0..3).map(|d| n[d] * (p[d] - c[d])).sum::<f64>();
        assert!(out > 0.0, "face {f} points inward");
    }
    assert_eq!(repair::self_intersections(&m, 10), 0);
    // Error-bounded mode stops early on a smooth sphere but keeps it closed.
    let params = MeshingParams {
        decimate: Some(DecimateTarget::MaxErrorMm(0.05)),
        ..raw()
    };
    let e = meshing::iso_mesh(&field, 0.0, &params, &JobContext::detached()).expect("mesh");
    assert!(e.face_count() < full.face_count() && e.face_count() > m.face_count());
    assert_closed(&e, "error-bounded");
}

#[test]
fn repairs_close_holes_orient_and_drop_specks() {
    let g = grid(32, 1.0);
    let field = sphere_field(&g, 10.0);
    let mut m = meshing::isosurface(&field, 0.0, &JobContext::detached()).expect("mesh");
    let v0 = m.signed_volume_mm3();
    // Punch a hole, flip a third of the faces, add a far-away speck.
    m.indices.drain(0..3);
    for t in m.indices.iter_mut().step_by(3) {
        t.swap(1, 2);
    }
    let speck = TriMesh::new(
        vec![
            [100.0, 0.0, 0.0],
            [100.5, 0.0, 0.0],
            [100.0, 0.5, 0.0],
            [100.0, 0.0, 0.5],
        ],
        vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
    );
    m.append(&speck);
    assert!(!check(&m).watertight);
    assert_eq!(repair::remove_small_components(&mut m, 1.0), 1);
    repair::orient_outward(&mut m);
    assert_eq!(repair::fill_holes(&mut m), 1);
    repair::orient_outward(&mut m);
    assert_closed(&m, "repaired");
    assert!((m.signed_volume_mm3() / v0 - 1.0).abs() < 0.01);
    // A triangle soup (every vertex repeated) welds back to a closed mesh.
    let mut soup = TriMesh::default();
    for t in &m.indices {
        let base = soup.positions_world_mm.len() as u32;
        soup.positions_world_mm
            .extend(t.map(|v| m.positions_world_mm[v as usize]));
        soup.indices.push([base, base + 1, base + 2]);
    }
    repair::merge_duplicate_vertices(&mut soup, 1e-4);
    assert_eq!(soup.vertex_count(), m.vertex_count());
    assert_closed(&soup, "welded");
}

#[test]
fn self_intersection_is_reported() {
    let mut a = TriMesh::new(
        vec![
            [0.0, 0.0, 0.0],
            [2.0, 0.0, 0.0],
            [0.0, 2.0, 0.0],
            [0.5, 0.5, -1.0],
            [0.5, 0.5, 1.0],
            [1.5, 1.5, 0.0],
        ],
        vec![[0, 1, 2], [3, 4, 5]],
    );
    assert_eq!(repair::self_intersections(&a, 10), 1);
    a.positions_world_mm[3] = [0.5, 0.5, 0.5];
    assert_eq!(repair::self_intersections(&a, 10), 0);
}

#[test]
fn cancelled_job_stops() {
    let ctx = JobContext::detached();
    ctx.cancel_token().cancel();
    let g = grid(16, 1.0);
    let err = meshing::isosurface(&sphere_field(&g, 5.0), 0.0, &ctx).expect_err("cancelled");
    assert_eq!(
        err,
        meshing::MeshingError::Cancelled(fuseprint::jobs::Cancelled)
    );
}

fn read_label_nifti(path: &std::path::Path) -> LabelMap {
    use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
    let obj = ReaderOptions::new().read_file(path).expect("read nifti");
    let header = obj.header().clone();
    let arr = obj.into_volume().into_ndarray::<f32>().expect("ndarray");
    let shape = arr.shape().to_vec();
    let dims = [shape[0], shape[1], shape[2]];
    // nifti arrays are x-fastest: walk in that order.
    let mut data = Vec::with_capacity(dims[0] * dims[1] * dims[2]);
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                data.push(arr[[i, j, k]].round() as u16);
            }
        }
    }
    // RAS sform → LPS: negate the first two rows.
    let a = header.affine::<f64>();
    let mut m = nalgebra::Matrix4::identity();
    for r in 0..4 {
        for c in 0..4 {
            m[(r, c)] = a[(r, c)] * if r < 2 { -1.0 } else { 1.0 };
        }
    }
    let g = VolumeGeometry::from_world_from_voxel(dims, &m).expect("geometry");
    LabelMap::new(Volume::new(g, data).expect("fits"), LabelTable::new())
}

#[test]
fn totalsegmentator_labels_give_watertight_parts() {
    let Some(data) = shared_data() else { return };
    let map = read_label_nifti(&data.join("totalsegmentator/example_seg.nii.gz"));
    let params = MeshingParams {
        min_component_mm3: 0.0,
        ..MeshingParams::default()
    };
    let parts =
        meshing::label_surfaces(&map, None, &params, &JobContext::detached()).expect("mesh");
    assert!(parts.len() >= 10, "{} labels", parts.len());
    let report = meshing::accuracy_report(&map, &parts, 0.5);
    eprintln!("{}", report.summary());
    for p in &report.parts {
        assert_eq!(p.check.boundary_edges, 0, "{}: open", p.name);
        assert!(p.mesh_volume_mm3 > 0.0, "{}", p.name);
        // Constrained smoothing stays within a voxel of the mask.
        assert!(p.max_mm < 3.0 * 0.87 + 0.01, "{}: max {}", p.name, p.max_mm);
        if p.mask_volume_mm3 > 10_000.0 {
            assert!(
                p.volume_difference_percent.abs() < 15.0,
                "{}: {:?}",
                p.name,
                p
            );
        }
    }
}

/// Every label map shipped with TotalSegmentator's tests (multi-label maps, per-class masks,
/// vessel and tissue masks), as `fuseprint mesh --labels --smooth` meshes them: each exported
/// part must be closed and manifold (no edge with more than two faces, no pinched vertex).
#[test]
fn every_totalsegmentator_part_is_watertight_and_manifold() {
    let Some(data) = shared_data() else { return };
    let mut files = Vec::new();
    let mut dirs = vec![data.join("totalsegmentator")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("lists the folder") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".nii.gz")
                && !["example_ct", "example_mr", "ct_cropped", "atlas"]
                    .iter()
                    .any(|image| name.contains(image))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 100, "{} label maps", files.len());
    let params = MeshingParams::default();
    let (mut parts_checked, mut failures) = (0, Vec::new());
    for path in &files {
        let (map, ()) = fuseprint::io::labels::load_label_map::<()>(path, &JobContext::detached())
            .expect("label map loads");
        if map.values_present().is_empty() {
            continue;
        }
        let parts =
            meshing::label_surfaces(&map, None, &params, &JobContext::detached()).expect("mesh");
        for p in &parts {
            let c = check(&p.mesh);
            parts_checked += 1;
            if !(c.watertight && c.manifold) {
                failures.push(format!("{} label {}: {c:?}", path.display(), p.label));
            }
        }
    }
    eprintln!(
        "{parts_checked} parts from {} label maps checked",
        files.len()
    );
    assert!(parts_checked > 150, "{parts_checked} parts");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
