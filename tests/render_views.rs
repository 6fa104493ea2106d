//! GPU slices, fusion, labels, mesh view, picking and four-view on synthetic phantoms,
//! checked against CPU formulas (runs on Mesa lavapipe; skips without an adapter unless
//! FUSEPRINT_REQUIRE_GPU is set).

use fuseprint::render::camera::Projection;
use fuseprint::render::colormap::Colormap;
use fuseprint::render::fusion::{fuse_pixel, PixelSamples};
use fuseprint::render::viewport_meshes::ViewportMeshes;
use fuseprint::render::{
    render_four_view, render_four_view_scene, render_scene, upload_volume, Camera, ControlPoint,
    Fusion, GpuContext, LabelStyle, LayerStyle, MeshRenderer, OffscreenTarget, RaycastParams,
    Raycaster, RenderMode, RgbaImage, SceneDrawer, SceneView, SliceParams, SlicePlane,
    SliceRenderer, StandardView, TransferFunction, ValueDomain, VolumeDrawer, Window,
};
use fuseprint::volume::{LabelInfo, LabelMap, LabelTable, Rgba, TriMesh, Volume, VolumeGeometry};
use nalgebra::{Matrix3, Matrix4, Point3, Rotation3, Translation3, Vector3};

/// With FUSEPRINT_VIEWS_DUMP=<folder>, tests also write what they rendered there as PNGs,
/// for a person to look at.
fn dump(name: &str, image: &RgbaImage) {
    if let Some(dir) = std::env::var_os("FUSEPRINT_VIEWS_DUMP") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        fuseprint::render::save_png(image, &path, true).expect("write the dump PNG");
    }
}

fn gpu_or_skip() -> Option<GpuContext> {
    match GpuContext::headless() {
        Ok(ctx) => Some(ctx),
        Err(e) if std::env::var_os("FUSEPRINT_REQUIRE_GPU").is_none() => {
            eprintln!("skipping GPU test: {e}");
            None
        }
        Err(e) => panic!("FUSEPRINT_REQUIRE_GPU is set but: {e}"),
    }
}

/// An oblique grid (rotated 20° about an off-axis direction, anisotropic spacing) holding a
/// smooth field plus a bright ball: trilinear interpolation is exercised everywhere.
fn oblique_phantom() -> Volume<f32> {
    let direction = Rotation3::from_axis_angle(
        &nalgebra::Unit::new_normalize(Vector3::new(1.0, 2.0, 0.5)),
        20f64.to_radians(),
    )
    .into_inner();
    let g = VolumeGeometry::new(
        [40, 36, 30],
        [1.2, 0.9, 1.5],
        [-20.0, -15.0, 5.0],
        direction,
    )
    .expect("valid geometry");
    Volume::from_fn(g, |[i, j, k]| {
        let (x, y, z) = (i as f64, j as f64, k as f64);
        let ball = if (x - 20.0).powi(2) + (y - 18.0).powi(2) + (z - 15.0).powi(2) < 64.0 {
            400.0
        } else {
            0.0
        };
        (300.0 + 200.0 * (x * 0.3).sin() * (y * 0.2).cos() + 5.0 * z + ball) as f32
    })
}

/// Distance (in voxels) from a continuous voxel position to the in/out border of the grid.
fn border_distance(p: [f64; 3], dims: [usize; 3]) -> f64 {
    (0..3)
        .map(|a| {
            (p[a] + 0.5)
                .abs()
                .min((p[a] - (dims[a] as f64 - 0.5)).abs())
        })
        .fold(f64::INFINITY, f64::min)
}

fn render_slice(ctx: &GpuContext, renderer: &SliceRenderer, params: &SliceParams) -> RgbaImage {
    let [w, h] = params.viewport_px;
    let target = OffscreenTarget::new(ctx, w, h).expect("target");
    renderer
        .render_offscreen(ctx, &target, params)
        .expect("render");
    target.read_rgba(ctx).expect("readback")
}

#[test]
fn oblique_gpu_slice_equals_cpu_trilinear_resampling() {
    let Some(ctx) = gpu_or_skip() else { return };
    let volume = oblique_phantom();
    let mut renderer = SliceRenderer::new(&ctx.device, &ctx.queue, OffscreenTarget::COLOR_FORMAT);
    renderer
        .upload_fixed(&ctx.device, &ctx.queue, &volume)
        .expect("upload");
    let plane = SlicePlane::new(
        volume.geometry().center_world(),
        Vector3::new(1.0, 0.3, 0.2),
        Vector3::new(-0.2, 1.0, 0.5),
        0.7,
    );
    let mut params = SliceParams::new(plane.clone(), [64, 64]);
    // Window over the whole range so no value is clipped: one grey level = 1000/255 units.
    params.fixed_style = LayerStyle::new(Window::new(500.0, 1000.0), Colormap::Grey);
    let image = render_slice(&ctx, &renderer, &params);
    dump("oblique_slice", &image);

    let voxel_from_world = volume.geometry().voxel_from_world();
    let (mut compared, mut worst, mut inside) = (0, 0i32, 0);
    for y in 0..64u32 {
        for x in 0..64u32 {
            let world = plane.world_at_pixel([64, 64], f64::from(x) + 0.5, f64::from(y) + 0.5);
            let v = voxel_from_world.transform_point(&world);
            let p = [v.x, v.y, v.z];
            // f32 on the GPU vs f64 here: the in/out decision may differ right at the border.
            if border_distance(p, volume.dims()) < 0.01 {
                continue;
            }
            let expected = match volume.sample_trilinear(p) {
                Some(value) => {
                    inside += 1;
                    Colormap::Grey.apply(params.fixed_style.window.normalise(value))[0]
                }
                None => 0,
            };
            let got = image.pixel(x, y)[0];
            worst = worst.max((i32::from(got) - i32::from(expected)).abs());
            compared += 1;
        }
    }
    assert!(
        inside > 1500,
        "the plane must cut the volume ({inside} pixels inside)"
    );
    assert!(compared > 4000);
    // Tolerance: one grey level (a value within f32 rounding of a level boundary may round
    // either way).
    assert!(worst <= 1, "largest difference {worst} grey levels");
}

/// CT-like fixed image (a bone cube in soft tissue) and an MRI-like moving image on a
/// different grid, related by a known rigid `moving_from_fixed`.
fn fusion_phantoms() -> (Volume<f32>, Volume<f32>, Matrix4<f64>) {
    let fg = VolumeGeometry::axis_aligned([48, 48, 24], [1.0, 1.0, 2.0], [-24.0, -24.0, -24.0])
        .expect("valid");
    let fixed = Volume::from_fn(fg, |[i, j, k]| {
        let bone = (14..34).contains(&i) && (14..34).contains(&j) && (4..20).contains(&k);
        if bone {
            1000.0
        } else {
            40.0 + i as f32
        }
    });
    let mg = VolumeGeometry::new(
        [40, 44, 40],
        [1.3, 1.2, 1.25],
        [-26.0, -25.0, -24.0],
        Matrix3::identity(),
    )
    .expect("valid");
    let moving = Volume::from_fn(mg, |[i, j, k]| {
        (200.0 + 300.0 * ((i as f64 * 0.25).sin() * (j as f64 * 0.15).cos()) + 4.0 * k as f64)
            as f32
    });
    let moving_from_fixed = Translation3::new(2.0, -1.5, 1.0).to_homogeneous()
        * Rotation3::from_axis_angle(&Vector3::z_axis(), 10f64.to_radians()).to_homogeneous();
    (fixed, moving, moving_from_fixed)
}

/// Clamped trilinear, as the shader's gradient reads it.
fn clamped(v: &Volume<f32>, p: [f64; 3]) -> f32 {
    let d = v.dims();
    let q = [0, 1, 2].map(|a| p[a].clamp(0.0, d[a] as f64 - 1.0));
    v.sample_trilinear(q).expect("clamped into the grid")
}

fn gradient_mm(v: &Volume<f32>, p: [f64; 3]) -> f32 {
    let m = v.geometry().voxel_from_world();
    let lin = m.fixed_view::<3, 3>(0, 0).transpose();
    let mut g_vox = Vector3::zeros();
    for a in 0..3 {
        let (mut hi, mut lo) = (p, p);
        hi[a] += 1.0;
        lo[a] -= 1.0;
        g_vox[a] = f64::from(clamped(v, hi) - clamped(v, lo)) * 0.5;
    }
    (lin * g_vox).norm() as f32
}

#[test]
fn every_fusion_mode_matches_its_cpu_formula() {
    let Some(ctx) = gpu_or_skip() else { return };
    let (fixed, moving, moving_from_fixed) = fusion_phantoms();
    let mut renderer = SliceRenderer::new(&ctx.device, &ctx.queue, OffscreenTarget::COLOR_FORMAT);
    renderer
        .upload_fixed(&ctx.device, &ctx.queue, &fixed)
        .expect("upload");
    renderer
        .upload_moving(&ctx.device, &ctx.queue, &moving)
        .expect("upload");
    // Axial through the middle of the bone cube, 0.5 mm pixels: checkerboard squares of
    // 8 mm are 16 pixels and their borders fall between pixel centres.
    let plane = SlicePlane::axial(Point3::new(0.0, 0.0, 1.0), 0.5);
    let vp = [96u32, 96];
    let mut params = SliceParams::new(plane.clone(), vp);
    params.fixed_style = LayerStyle::new(Window::new(400.0, 1200.0), Colormap::Grey);
    params.moving_style = LayerStyle::new(Window::new(250.0, 700.0), Colormap::Hot);
    params.moving_from_fixed = moving_from_fixed;
    let modes = [
        Fusion::FixedOnly,
        Fusion::AlphaBlend { weight: 0.3 },
        Fusion::ColorOverlay { opacity: 0.9 },
        Fusion::Checkerboard { square_mm: 8.0 },
        Fusion::GradientWeighted {
            edge_low: 50.0,
            edge_high: 300.0,
        },
    ];
    let fixed_vfw = fixed.geometry().voxel_from_world();
    let moving_vfw = moving.geometry().voxel_from_world() * moving_from_fixed;
    for fusion in modes {
        params.fusion = fusion;
        let image = render_slice(&ctx, &renderer, &params);
        dump(
            &format!("fusion_{}", fusion.name().replace(' ', "_")),
            &image,
        );
        let (mut worst, mut checked) = (0i32, 0);
        let mut saw_fixed_edge = false;
        for y in (1..vp[1]).step_by(3) {
            for x in (1..vp[0]).step_by(3) {
                let (px, py) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                let world = plane.world_at_pixel(vp, px, py);
                let pf = fixed_vfw.transform_point(&world);
                let pm = moving_vfw.transform_point(&world);
                let (pf, pm) = ([pf.x, pf.y, pf.z], [pm.x, pm.y, pm.z]);
                if border_distance(pf, fixed.dims()) < 0.01
                    || border_distance(pm, moving.dims()) < 0.01
                {
                    continue;
                }
                let grad = fixed
                    .sample_trilinear(pf)
                    .map_or(0.0, |_| gradient_mm(&fixed, pf));
                // smoothstep is steep mid-ramp: skip pixels where f32 vs f64 could move w.
                saw_fixed_edge |= grad > 300.0;
                let samples = PixelSamples {
                    fixed: fixed.sample_trilinear(pf),
                    moving: moving.sample_trilinear(pm),
                    plane_mm: [
                        ((px - f64::from(vp[0]) / 2.0) * plane.mm_per_pixel) as f32,
                        ((py - f64::from(vp[1]) / 2.0) * plane.mm_per_pixel) as f32,
                    ],
                    fixed_gradient_mm: grad,
                };
                let expected =
                    fuse_pixel(fusion, &params.fixed_style, &params.moving_style, &samples);
                let got = image.pixel(x, y);
                for c in 0..3 {
                    let e = (expected[c] * 255.0).round() as i32;
                    worst = worst.max((i32::from(got[c]) - e).abs());
                }
                checked += 1;
            }
        }
        assert!(checked > 800, "{}: {checked} pixels checked", fusion.name());
        assert!(saw_fixed_edge, "the plane must cross the bone edge");
        // Tolerance: 2 levels per channel (8-bit colour tables, f32 vs f64 positions).
        assert!(worst <= 2, "{}: largest difference {worst}", fusion.name());
    }
}

#[test]
fn checkerboard_squares_alternate_every_square_mm() {
    let Some(ctx) = gpu_or_skip() else { return };
    let g =
        VolumeGeometry::axis_aligned([64, 64, 3], [1.0; 3], [-32.0, -32.0, -1.0]).expect("valid");
    let white = Volume::filled(g.clone(), 1000.0f32);
    let black = Volume::filled(g, 0.0f32);
    let mut renderer = SliceRenderer::new(&ctx.device, &ctx.queue, OffscreenTarget::COLOR_FORMAT);
    renderer
        .upload_fixed(&ctx.device, &ctx.queue, &white)
        .expect("upload");
    renderer
        .upload_moving(&ctx.device, &ctx.queue, &black)
        .expect("upload");
    let square_mm = 6.0;
    let mm_per_pixel = 0.25;
    let mut params = SliceParams::new(SlicePlane::axial(Point3::origin(), mm_per_pixel), [96, 96]);
    params.fixed_style = LayerStyle::new(Window::new(500.0, 1000.0), Colormap::Grey);
    params.moving_style = params.fixed_style;
    params.fusion = Fusion::Checkerboard { square_mm };
    let image = render_slice(&ctx, &renderer, &params);
    // Along a row, the colour flips exactly where the plane coordinate crosses a multiple of
    // the square size (measured from the viewport centre).
    let px_per_square = (f64::from(square_mm) / mm_per_pixel) as u32;
    let y = 48 + px_per_square / 2;
    let mut flips = Vec::new();
    for x in 1..96u32 {
        if image.pixel(x, y)[0] != image.pixel(x - 1, y)[0] {
            flips.push(x);
        }
    }
    let expected: Vec<u32> = (0..96u32)
        .filter(|x| *x > 0 && (i64::from(*x) - 48).rem_euclid(i64::from(px_per_square)) == 0)
        .collect();
    assert_eq!(flips, expected);
    // The square right-below the centre is the fixed (white) one.
    assert_eq!(image.pixel(50, y)[0], 255);
    assert_eq!(image.pixel(50 + px_per_square, y)[0], 0);
}

#[test]
fn labels_fill_outline_and_hide() {
    let Some(ctx) = gpu_or_skip() else { return };
    let g = VolumeGeometry::axis_aligned([32, 32, 4], [1.0; 3], [0.0; 3]).expect("valid");
    let image_volume = Volume::filled(g.clone(), -1000.0f32);
    let mut table = LabelTable::new();
    table.insert(LabelInfo::new(1, "liver", Rgba::rgb(255, 0, 0)));
    let mut hidden = LabelInfo::new(2, "hidden", Rgba::rgb(0, 255, 0));
    hidden.visible = false;
    table.insert(hidden);
    let labels = Volume::from_fn(g.clone(), |[i, j, _]| {
        if (8..20).contains(&i) && (10..22).contains(&j) {
            1
        } else if (24..30).contains(&i) && (2..8).contains(&j) {
            2
        } else {
            0
        }
    });
    let labels = LabelMap::new(labels, table);
    let mut renderer = SliceRenderer::new(&ctx.device, &ctx.queue, OffscreenTarget::COLOR_FORMAT);
    renderer
        .upload_fixed(&ctx.device, &ctx.queue, &image_volume)
        .expect("upload");
    renderer
        .upload_labels(&ctx.device, &ctx.queue, &labels)
        .expect("upload");
    // One pixel per voxel, pixel centres on voxel centres (voxel 15.5 at the viewport centre).
    let plane = SlicePlane::axial(Point3::new(15.5, 15.5, 2.0), 1.0);
    let mut params = SliceParams::new(plane, [32, 32]);
    params.labels = LabelStyle {
        fill_opacity: 0.5,
        outline: true,
        outline_opacity: 1.0,
    };
    let image = render_slice(&ctx, &renderer, &params);
    dump("labels_outline", &image);
    let near = |got: [u8; 4], want: [u8; 3]| {
        (0..3).all(|c| (i32::from(got[c]) - i32::from(want[c])).abs() <= 1)
    };
    assert!(
        near(image.pixel(12, 15), [128, 0, 0]),
        "fill {:?}",
        image.pixel(12, 15)
    );
    for edge in [(8, 15), (19, 15), (12, 10), (12, 21)] {
        assert!(
            near(image.pixel(edge.0, edge.1), [255, 0, 0]),
            "outline at {edge:?}"
        );
    }
    assert!(near(image.pixel(7, 15), [0, 0, 0]), "outside the label");
    assert!(near(image.pixel(26, 4), [0, 0, 0]), "hidden label drawn");

    params.labels.outline = false;
    let image = render_slice(&ctx, &renderer, &params);
    assert!(near(image.pixel(8, 15), [128, 0, 0]), "no outline when off");
}

/// UV sphere with outward counter-clockwise faces.
fn sphere(center: [f64; 3], radius: f64, rings: usize, segments: usize) -> TriMesh {
    let mut positions = Vec::new();
    for r in 0..=rings {
        let theta = std::f64::consts::PI * r as f64 / rings as f64;
        for s in 0..segments {
            let phi = 2.0 * std::f64::consts::PI * s as f64 / segments as f64;
            positions.push([
                (center[0] + radius * theta.sin() * phi.cos()) as f32,
                (center[1] + radius * theta.sin() * phi.sin()) as f32,
                (center[2] + radius * theta.cos()) as f32,
            ]);
        }
    }
    let mut indices = Vec::new();
    let at = |r: usize, s: usize| (r * segments + s % segments) as u32;
    for r in 0..rings {
        for s in 0..segments {
            let (a, b, c, d) = (at(r, s), at(r + 1, s), at(r + 1, s + 1), at(r, s + 1));
            if r > 0 {
                indices.push([a, b, d]);
            }
            if r + 1 < rings {
                indices.push([b, c, d]);
            }
        }
    }
    let mut mesh = TriMesh::new(positions, indices);
    mesh.compute_normals();
    mesh
}

fn camera_on(target: [f64; 3], distance_mm: f64) -> Camera {
    Camera {
        target_world: Point3::from(target),
        yaw_deg: 30.0,
        pitch_deg: 10.0,
        distance_mm,
        projection: Projection::Perspective { fov_y_deg: 30.0 },
        near_mm: 10.0,
        far_mm: 1000.0,
    }
}

fn render_meshes(
    ctx: &GpuContext,
    renderer: &mut MeshRenderer,
    camera: &Camera,
    size: u32,
) -> RgbaImage {
    let target = OffscreenTarget::new(ctx, size, size).expect("target");
    renderer
        .render_offscreen(ctx, &target, &SceneView::new(*camera, [size, size]))
        .expect("render");
    target.read_rgba(ctx).expect("readback")
}

fn lum(p: [u8; 4]) -> f64 {
    f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2])
}

#[test]
fn sphere_silhouette_has_the_projected_radius_and_the_lit_side_is_brighter() {
    let Some(ctx) = gpu_or_skip() else { return };
    let center = [10.0, -5.0, 30.0];
    let (radius, distance) = (20.0, 150.0);
    let mesh = sphere(center, radius, 48, 96);
    assert!(mesh.signed_volume_mm3() > 0.0, "outward faces");
    let mut renderer = MeshRenderer::new(
        &ctx.device,
        OffscreenTarget::COLOR_FORMAT,
        OffscreenTarget::DEPTH_FORMAT,
    );
    renderer.set_meshes(&ctx.device, &[(&mesh, Rgba::rgb(200, 200, 200))]);
    renderer.lighting.light_from_camera = [1.0, 0.0, 0.3];
    let camera = camera_on(center, distance);
    let size = 128;
    let image = render_meshes(&ctx, &mut renderer, &camera, size);
    dump("sphere_lit_from_right", &image);

    let (mut count, mut sx, mut sy) = (0.0, 0.0, 0.0);
    let (mut left, mut right, mut nl, mut nr) = (0.0, 0.0, 0, 0);
    for y in 0..size {
        for x in 0..size {
            let p = image.pixel(x, y);
            if lum(p) > 0.0 {
                count += 1.0;
                sx += f64::from(x);
                sy += f64::from(y);
                if x < size / 2 - 4 {
                    left += lum(p);
                    nl += 1;
                } else if x >= size / 2 + 4 {
                    right += lum(p);
                    nr += 1;
                }
            }
        }
    }
    // Silhouette of a sphere seen in perspective: a circle of angular radius asin(R/d).
    let half_fov = 15f64.to_radians();
    let expected = (radius / distance).asin().tan() / half_fov.tan() * f64::from(size) / 2.0;
    let measured = (count / std::f64::consts::PI).sqrt();
    assert!(
        (measured - expected).abs() < 1.0,
        "radius {measured:.2} px, expected {expected:.2}"
    );
    let centre = f64::from(size) / 2.0 - 0.5;
    assert!((sx / count - centre).abs() < 1.0 && (sy / count - centre).abs() < 1.0);
    let (left, right) = (left / f64::from(nl), right / f64::from(nr));
    assert!(
        right > 1.5 * left,
        "light from the right: right {right:.0} vs left {left:.0}"
    );
}

#[test]
fn inner_structure_shows_through_a_transparent_outer_one_and_picking_finds_the_surface() {
    let Some(ctx) = gpu_or_skip() else { return };
    let center = [0.0, 20.0, -10.0];
    let outer = sphere(center, 30.0, 32, 64);
    let inner = sphere(center, 12.0, 32, 64);
    let mut renderer = MeshRenderer::new(
        &ctx.device,
        OffscreenTarget::COLOR_FORMAT,
        OffscreenTarget::DEPTH_FORMAT,
    );
    let camera = camera_on(center, 200.0);
    let size = 96u32;
    let mid = size / 2;
    // Projected outer radius ≈ 21 px, inner ≈ 8 px: sample the centre and a ring between.
    let ring = (mid + 14, mid);

    renderer.set_meshes(
        &ctx.device,
        &[
            (&outer, Rgba([40, 80, 255, 90])),
            (&inner, Rgba::rgb(255, 40, 40)),
        ],
    );
    let image = render_meshes(&ctx, &mut renderer, &camera, size);
    let c = image.pixel(mid, mid);
    assert!(
        c[0] > 100 && c[2] > 30,
        "centre {c:?}: red inner seen through blue outer"
    );
    let r = image.pixel(ring.0, ring.1);
    assert!(
        r[2] > 30 && r[0] < r[2],
        "between the surfaces only the outer: {r:?}"
    );

    // Opaque outer hides the inner one.
    renderer.set_color(&ctx.queue, 0, Rgba([40, 80, 255, 255]));
    let image = render_meshes(&ctx, &mut renderer, &camera, size);
    let c = image.pixel(mid, mid);
    assert!(
        c[0] < c[2] / 2,
        "centre {c:?}: opaque outer hides the inner"
    );

    // Both transparent: still both colours at the centre.
    renderer.set_color(&ctx.queue, 0, Rgba([40, 80, 255, 90]));
    renderer.set_color(&ctx.queue, 1, Rgba([255, 40, 40, 160]));
    let image = render_meshes(&ctx, &mut renderer, &camera, size);
    let c = image.pixel(mid, mid);
    assert!(c[0] > 60 && c[2] > 30, "centre {c:?}");

    // Picking: the outer surface is hit first; hidden, the inner one is.
    let hit = renderer
        .pick(&camera.ray_through_pixel(f64::from(mid), f64::from(mid), size, size))
        .expect("hit at the centre");
    assert_eq!(hit.object, 0);
    let c = Point3::from(center);
    assert!(((hit.point_world_mm - c).norm() - 30.0).abs() < 0.5);
    renderer.set_visible(0, false);
    for (x, y) in [(mid, mid), (mid + 3, mid - 2), (mid - 4, mid + 4)] {
        let hit = renderer
            .pick(&camera.ray_through_pixel(f64::from(x), f64::from(y), size, size))
            .expect("hit on the inner sphere");
        assert_eq!(hit.object, 1);
        let err = ((hit.point_world_mm - c).norm() - 12.0).abs();
        assert!(err < 0.5, "picked point {err:.3} mm off the sphere");
    }
    assert!(renderer
        .pick(&camera.ray_through_pixel(2.0, 2.0, size, size))
        .is_none());
}

/// Rotates a square image counter-clockwise by quarter turns.
fn rotate_ccw(image: &RgbaImage, quarter_turns: u32) -> RgbaImage {
    let s = image.width;
    let mut out = image.clone();
    for _ in 0..quarter_turns % 4 {
        let src = out.clone();
        for y in 0..s {
            for x in 0..s {
                // (x, y) moves to (y, s-1-x): the right edge becomes the top.
                let i = ((y * s + x) * 4) as usize;
                let j = (((s - 1 - x) * s + y) * 4) as usize;
                out.pixels[j..j + 4].copy_from_slice(&src.pixels[i..i + 4]);
            }
        }
    }
    out
}

#[test]
fn four_view_puts_four_rotated_views_around_a_black_centre() {
    let Some(ctx) = gpu_or_skip() else { return };
    // An asymmetric scene: a grey ball with a green one to its left and above, a red one in
    // front, so every view direction and rotation looks different.
    let body = sphere([0.0, 0.0, 0.0], 20.0, 16, 32);
    let left_top = sphere([18.0, 0.0, 18.0], 8.0, 16, 32);
    let front = sphere([0.0, -22.0, -5.0], 6.0, 16, 32);
    let mut renderer = MeshRenderer::new(
        &ctx.device,
        OffscreenTarget::COLOR_FORMAT,
        OffscreenTarget::DEPTH_FORMAT,
    );
    renderer.set_meshes(
        &ctx.device,
        &[
            (&body, Rgba::rgb(180, 180, 180)),
            (&left_top, Rgba::rgb(0, 220, 0)),
            (&front, Rgba::rgb(220, 0, 0)),
        ],
    );
    let mut camera = camera_on([0.0; 3], 130.0);
    camera.pitch_deg = 0.0;
    let rotation_deg = 25.0;
    let s = 64u32;
    let canvas = OffscreenTarget::new(&ctx, 3 * s, 3 * s).expect("target");
    render_four_view(&ctx, &canvas, &mut renderer, &camera, rotation_deg).expect("four-view");
    let four = canvas.read_rgba(&ctx).expect("readback");
    dump("four_view", &four);

    for y in s..2 * s {
        for x in s..2 * s {
            assert_eq!(lum(four.pixel(x, y)), 0.0, "centre must stay black");
        }
    }
    let cells = fuseprint::render::four_view::pyramid_layout([3 * s, 3 * s]);
    for cell in cells {
        let mut cam = camera;
        cam.orbit(rotation_deg + cell.yaw_offset_deg, 0.0);
        let single = render_meshes(&ctx, &mut renderer, &cam, s);
        let want = rotate_ccw(&single, cell.quarter_turns);
        let [x0, y0, ..] = cell.rect_px;
        let (mut differ, mut lit) = (0, 0);
        for y in 0..s {
            for x in 0..s {
                let (a, b) = (four.pixel(x0 + x, y0 + y), want.pixel(x, y));
                if lum(b) > 0.0 {
                    lit += 1;
                }
                if (0..3).any(|c| (i32::from(a[c]) - i32::from(b[c])).abs() > 8) {
                    differ += 1;
                }
            }
        }
        assert!(lit > 500, "{:?}: the scene must be visible", cell.cell);
        // Rasterisation of edge pixels may differ under rotation; the picture must not.
        assert!(
            differ * 100 < s * s,
            "{:?}: {differ} pixels differ",
            cell.cell
        );
    }
    // The four pictures are different views, not copies.
    let bottom = rotate_ccw(
        &render_meshes(
            &ctx,
            &mut renderer,
            &{
                let mut c = camera;
                c.orbit(rotation_deg, 0.0);
                c
            },
            s,
        ),
        2,
    );
    let top_cell = cells[2].rect_px;
    let same = (0..s * s)
        .filter(|i| {
            let (x, y) = (i % s, i / s);
            four.pixel(top_cell[0] + x, top_cell[1] + y) == bottom.pixel(x, y)
        })
        .count() as u32;
    assert!(
        same < s * s * 95 / 100,
        "top cell must not be the front view"
    );
}

/// Per-frame cost of each fusion mode; prints figures, run with `--ignored --nocapture`.
#[test]
#[ignore = "benchmark: cargo test --test render_views -- --ignored --nocapture"]
fn bench_fusion_modes_per_frame() {
    let Some(ctx) = gpu_or_skip() else { return };
    let dim: usize = std::env::var("FUSION_BENCH_DIM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let px: u32 = std::env::var("FUSION_BENCH_PX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let timings = fuseprint::render::slices::bench_fusion_modes(&ctx, dim, px, 20).expect("bench");
    println!("device: {}", ctx.describe());
    for (fusion, ms) in &timings {
        println!(
            "{dim}³ volume, {px}² slice, {:<18} {ms:8.2} ms/frame",
            fusion.name()
        );
    }
    assert_eq!(timings.len(), Fusion::ALL.len());
}

// ---- Volume and meshes in one scene -------------------------------------------------------

/// A 48³ grid of 1 mm voxels centred on the origin, valued `f(world position)`.
fn scene_volume(f: impl Fn(Point3<f64>) -> f32 + Sync) -> Volume<f32> {
    let geometry = VolumeGeometry::axis_aligned([48; 3], [1.0; 3], [-23.5; 3]).unwrap();
    let g = geometry.clone();
    Volume::from_fn(geometry, move |[i, j, k]| {
        f(g.world_from_voxel_point([i as f64, j as f64, k as f64]))
    })
}

/// Anterior orthographic view (rays along +y) of a 60 mm window.
fn front_camera() -> Camera {
    Camera {
        projection: Projection::Orthographic { height_mm: 60.0 },
        near_mm: 1.0,
        far_mm: 400.0,
        ..Camera::standard(StandardView::Anterior, Point3::origin(), 150.0)
    }
}

const SCENE_PX: u32 = 96;

/// `render_scene` of the meshes and then the volume reading their depth.
fn render_volume_and_meshes(
    ctx: &GpuContext,
    meshes: &mut MeshRenderer,
    params: &RaycastParams<'_>,
) -> RgbaImage {
    let target = OffscreenTarget::new(ctx, SCENE_PX, SCENE_PX).unwrap();
    let mut raycaster = Raycaster::for_scenes(&ctx.device, OffscreenTarget::COLOR_FORMAT);
    let mut volume = VolumeDrawer::new(&ctx.device, &mut raycaster, params.clone()).unwrap();
    let mut drawers: [&mut dyn SceneDrawer; 2] = [meshes, &mut volume];
    render_scene(ctx, &target, &mut drawers, &params.camera).unwrap();
    target.read_rgba(ctx).unwrap()
}

/// The window's path: meshes and volume offscreen (ViewportMeshes), laid onto a black pass.
fn render_through_viewport(
    ctx: &GpuContext,
    meshes: &[(&TriMesh, Rgba)],
    params: &RaycastParams<'_>,
) -> RgbaImage {
    let format = OffscreenTarget::COLOR_FORMAT;
    let mut viewport = ViewportMeshes::new(&ctx.device, format);
    viewport.set_meshes(&ctx.device, 1, meshes);
    let mut raycaster = Raycaster::new(&ctx.device, format);
    let target = OffscreenTarget::new(ctx, SCENE_PX, SCENE_PX).unwrap();
    let view = SceneView::new(params.camera, [SCENE_PX, SCENE_PX]);
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    viewport.render_with_volume(
        &ctx.device,
        &ctx.queue,
        &mut encoder,
        &view,
        Some((&mut raycaster, params)),
    );
    {
        let mut pass = fuseprint::render::cleared_colour_pass(
            &mut encoder,
            "window stand-in",
            &target.color_view,
        );
        viewport.paint(&mut pass);
    }
    ctx.queue.submit([encoder.finish()]);
    target.read_rgba(ctx).unwrap()
}

/// Where a ray meets a sphere first (mm along it), if it does.
fn hit_sphere(ray: &fuseprint::render::Ray, center: [f64; 3], radius: f64) -> Option<f64> {
    let oc = ray.origin - Point3::from(center);
    let b = oc.dot(&ray.direction);
    let disc = b * b - (oc.norm_squared() - radius * radius);
    (disc >= 0.0).then(|| -b - disc.sqrt())
}

/// 0 red, 1 green, 2 blue by the strongest channel; 3 for (near) black.
fn dominant(p: [u8; 4]) -> usize {
    let max = p[0].max(p[1]).max(p[2]);
    if max < 40 {
        return 3;
    }
    (0..3).find(|c| p[*c] == max).unwrap_or(3)
}

/// A red opaque volume ball (the 500 level at r = 14 mm) with a green mesh sphere in front of
/// it, another green one hidden inside it, and a large blue one behind it: the picture shows
/// for every pixel the colour of the first surface along the ray, as a CPU ray-sphere test
/// predicts (boundary pixels aside), through render_scene and through the window's path.
#[test]
fn the_nearest_of_volume_and_meshes_shows_in_each_pixel() {
    let Some(ctx) = gpu_or_skip() else { return };
    let radius = 14.0;
    let volume_cpu = scene_volume(|p| {
        (1000.0 * ((radius + 1.0 - p.coords.norm()) / 2.0).clamp(0.0, 1.0)) as f32
    });
    let volume = upload_volume(&ctx.device, &ctx.queue, &volume_cpu).unwrap();
    let red = TransferFunction::new(
        "red surface",
        ValueDomain::Absolute,
        vec![
            ControlPoint::new(450.0, [1.0, 0.0, 0.0], 0.0),
            ControlPoint::new(550.0, [1.0, 0.0, 0.0], 1.0),
        ],
    )
    .unwrap();
    let front = ([-6.0, -25.0, -6.0], 5.0);
    let hidden = ([6.0, 0.0, 6.0], 5.0);
    let behind = ([0.0, 35.0, 0.0], 20.0);
    let spheres = [
        sphere(front.0, front.1, 24, 48),
        sphere(hidden.0, hidden.1, 24, 48),
        sphere(behind.0, behind.1, 32, 64),
    ];
    let green = Rgba([40, 220, 40, 255]);
    let blue = Rgba([40, 40, 230, 255]);
    let coloured: Vec<(&TriMesh, Rgba)> = vec![
        (&spheres[0], green),
        (&spheres[1], green),
        (&spheres[2], blue),
    ];
    let mut meshes = MeshRenderer::new(
        &ctx.device,
        OffscreenTarget::COLOR_FORMAT,
        OffscreenTarget::DEPTH_FORMAT,
    );
    meshes.set_meshes(&ctx.device, &coloured);
    let mut params = RaycastParams::new(&volume, &red, front_camera());
    params.jitter = false;
    let image = render_volume_and_meshes(&ctx, &mut meshes, &params);
    dump("scene_nearest", &image);
    let window = render_through_viewport(&ctx, &coloured, &params);
    dump("scene_nearest_window", &window);

    let camera = params.camera;
    let (mut agree, mut counts) = (0usize, [0usize; 4]);
    for y in 0..SCENE_PX {
        for x in 0..SCENE_PX {
            let ray = camera.ray_through_pixel(f64::from(x), f64::from(y), SCENE_PX, SCENE_PX);
            let candidates = [
                (hit_sphere(&ray, [0.0; 3], radius), 0),
                (hit_sphere(&ray, front.0, front.1), 1),
                (hit_sphere(&ray, hidden.0, hidden.1), 1),
                (hit_sphere(&ray, behind.0, behind.1), 2),
            ];
            let expected = candidates
                .iter()
                .filter_map(|(t, class)| t.map(|t| (t, *class)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(3, |(_, class)| class);
            counts[expected] += 1;
            agree += usize::from(dominant(image.pixel(x, y)) == expected);
        }
    }
    let total = (SCENE_PX * SCENE_PX) as f64;
    assert!(
        counts[0] > 800 && counts[1] > 150 && counts[2] > 800,
        "scene set-up: {counts:?}"
    );
    assert!(
        agree as f64 / total > 0.95,
        "first-surface colour agrees with the CPU in {agree} of {total} pixels (expected classes {counts:?})"
    );
    // The hidden sphere's centre shows the volume, the front sphere's centre the mesh.
    let to_px = |p: [f64; 3]| {
        let s = f64::from(SCENE_PX) / 60.0;
        (
            (f64::from(SCENE_PX) / 2.0 + p[0] * s) as u32,
            (f64::from(SCENE_PX) / 2.0 - p[2] * s) as u32,
        )
    };
    let (hx, hy) = to_px(hidden.0);
    let (fx, fy) = to_px(front.0);
    assert_eq!(
        dominant(image.pixel(hx, hy)),
        0,
        "{:?}",
        image.pixel(hx, hy)
    );
    assert_eq!(
        dominant(image.pixel(fx, fy)),
        1,
        "{:?}",
        image.pixel(fx, fy)
    );

    // The window draws the same picture offscreen and lays it on: same pixels.
    let differing = image
        .pixels
        .iter()
        .zip(&window.pixels)
        .filter(|(a, b)| a.abs_diff(**b) > 2)
        .count();
    assert!(
        differing * 1000 < image.pixels.len(),
        "window path differs from render_scene in {differing} channels"
    );
}

/// An opaque magenta plane (a two-sided quad) across the whole view at y = 3.3 mm.
fn plane_mesh(y: f32) -> TriMesh {
    let e = 60.0f32;
    // Each side has its own vertices so each gets its own normal.
    let corners = [[-e, y, -e], [e, y, -e], [e, y, e], [-e, y, e]];
    let positions = [corners, corners].concat();
    let indices = vec![[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6]];
    let mut mesh = TriMesh::new(positions, indices);
    mesh.compute_normals();
    mesh
}

/// Samples of a ray entering the 48 mm box at `t0`: t0 + n·step up to `t_end` (jitter off).
fn samples_until(t0: f64, step: f64, t_end: f64) -> Vec<f64> {
    (0..)
        .map(|n| t0 + f64::from(n) * step)
        .take_while(|t| *t <= t_end)
        .collect()
}

/// DVR and MIP with an opaque plane halfway along every ray: only the samples in front of
/// the plane count, composited over the plane's colour. CPU reference: the same sample
/// positions (entry face + n·step), front-to-back "over" of a constant colour/opacity for DVR,
/// the largest of a linear ramp for MIP, over the plane's pixel from a meshes-only render.
/// Tolerance 3/255: the GPU's 8-bit output and float rounding.
#[test]
fn dvr_and_mip_stop_at_a_mesh_in_the_middle_of_the_ray() {
    let Some(ctx) = gpu_or_skip() else { return };
    let plane_y = 3.3;
    let plane = plane_mesh(plane_y as f32);
    let magenta = Rgba([230, 40, 200, 255]);
    let mut meshes = MeshRenderer::new(
        &ctx.device,
        OffscreenTarget::COLOR_FORMAT,
        OffscreenTarget::DEPTH_FORMAT,
    );
    meshes.set_meshes(&ctx.device, &[(&plane, magenta)]);
    let camera = front_camera();
    let behind_plane = render_meshes(&ctx, &mut meshes, &camera, SCENE_PX);

    // DVR of a constant volume: colour c, opacity a per mm, shading off.
    let constant = upload_volume(&ctx.device, &ctx.queue, &scene_volume(|_| 1000.0)).unwrap();
    let (c, a) = ([0.2f32, 0.9, 0.3], 0.05f32);
    let haze = TransferFunction::new(
        "haze",
        ValueDomain::Absolute,
        vec![
            ControlPoint::new(0.0, c, a),
            ControlPoint::new(2000.0, c, a),
        ],
    )
    .unwrap();
    let mut dvr = RaycastParams::new(&constant, &haze, camera);
    dvr.jitter = false;
    dvr.shading = false;
    let step = dvr.step_mm();
    let dvr_image = render_volume_and_meshes(&ctx, &mut meshes, &dvr);
    dump("scene_dvr_plane", &dvr_image);

    // MIP of a ramp rising along the rays (+y): 10 per mm, 5 at the first voxel centre.
    let ramp = scene_volume(|p| (10.0 * (p.y + 24.0)) as f32);
    let ramp_texture = upload_volume(&ctx.device, &ctx.queue, &ramp).unwrap();
    let mut mip = RaycastParams::new(&ramp_texture, &haze, camera);
    mip.mode = RenderMode::Mip;
    mip.window = Some((0.0, 500.0));
    mip.jitter = false;
    let mip_image = render_volume_and_meshes(&ctx, &mut meshes, &mip);
    dump("scene_mip_plane", &mip_image);

    let alpha = 1.0 - (1.0 - f64::from(a)).powf(step);
    let (mut checked, mut worst_dvr, mut worst_mip) = (0usize, 0u8, 0u8);
    for y in 0..SCENE_PX {
        for x in 0..SCENE_PX {
            let ray = camera.ray_through_pixel(f64::from(x), f64::from(y), SCENE_PX, SCENE_PX);
            let (px, pz) = (ray.origin.x.abs(), ray.origin.z.abs());
            let mesh = behind_plane.pixel(x, y);
            if px > 24.5 || pz > 24.5 {
                // Outside the volume's box: the plane alone.
                assert_eq!(
                    dvr_image.pixel(x, y),
                    mesh,
                    "pixel ({x}, {y}) outside the box"
                );
                continue;
            }
            if px > 23.5 || pz > 23.5 {
                continue;
            }
            checked += 1;
            // Rays run along +y from the near plane: the box's front face is y = -24.
            let t0 = -24.0 - ray.origin.y;
            let samples = samples_until(t0, step, plane_y - ray.origin.y);
            let kept = (1.0 - alpha).powi(samples.len() as i32);
            let expected_dvr: [f64; 3] = std::array::from_fn(|ch| {
                f64::from(c[ch]) * (1.0 - kept) * 255.0 + kept * f64::from(mesh[ch])
            });
            let max = samples
                .iter()
                .map(|t| 10.0 * ((ray.origin.y + t).clamp(-23.5, 23.5) + 24.0))
                .fold(f64::NEG_INFINITY, f64::max);
            let expected_grey = (max / 500.0).clamp(0.0, 1.0) * 255.0;
            let got_dvr = dvr_image.pixel(x, y);
            let got_mip = mip_image.pixel(x, y);
            for ch in 0..3 {
                let e = (expected_dvr[ch] - f64::from(got_dvr[ch])).abs().round() as u8;
                worst_dvr = worst_dvr.max(e);
                let e = (expected_grey - f64::from(got_mip[ch])).abs().round() as u8;
                worst_mip = worst_mip.max(e);
            }
        }
    }
    assert!(checked > 5000, "only {checked} pixels inside the box");
    assert!(
        worst_dvr <= 3 && worst_mip <= 3,
        "largest difference from the CPU: DVR {worst_dvr}/255, MIP {worst_mip}/255 (over {checked} pixels)"
    );
}

/// The pyramid layout of a volume with meshes: every cell equals render_scene of that cell's
/// camera turned by the cell's quarter turns (edge pixels of the rotation aside), so the
/// volume stops at the meshes in all four views.
#[test]
fn four_view_of_volume_and_meshes_matches_render_scene_per_cell() {
    let Some(ctx) = gpu_or_skip() else { return };
    let volume_cpu =
        scene_volume(|p| (1000.0 * ((15.0 - p.coords.norm()) / 2.0).clamp(0.0, 1.0)) as f32);
    let volume = upload_volume(&ctx.device, &ctx.queue, &volume_cpu).unwrap();
    let red = TransferFunction::new(
        "red surface",
        ValueDomain::Absolute,
        vec![
            ControlPoint::new(450.0, [1.0, 0.0, 0.0], 0.0),
            ControlPoint::new(550.0, [1.0, 0.0, 0.0], 1.0),
        ],
    )
    .unwrap();
    let poking_out = sphere([-8.0, -12.0, 0.0], 7.0, 24, 48);
    let mut meshes = MeshRenderer::new(
        &ctx.device,
        OffscreenTarget::COLOR_FORMAT,
        OffscreenTarget::DEPTH_FORMAT,
    );
    meshes.set_meshes(&ctx.device, &[(&poking_out, Rgba([40, 220, 40, 255]))]);
    let camera = Camera {
        pitch_deg: 20.0,
        ..front_camera()
    };
    let mut params = RaycastParams::new(&volume, &red, camera);
    params.jitter = false;

    let s = SCENE_PX;
    let canvas = OffscreenTarget::new(&ctx, 3 * s, 3 * s).unwrap();
    {
        let mut raycaster = Raycaster::for_scenes(&ctx.device, OffscreenTarget::COLOR_FORMAT);
        let mut drawer = VolumeDrawer::new(&ctx.device, &mut raycaster, params.clone()).unwrap();
        let mut drawers: [&mut dyn SceneDrawer; 2] = [&mut meshes, &mut drawer];
        render_four_view_scene(&ctx, &canvas, &mut drawers, &camera, 0.0).unwrap();
    }
    let four = canvas.read_rgba(&ctx).unwrap();
    dump("four_view_scene", &four);
    for cell in fuseprint::render::four_view::pyramid_layout([3 * s, 3 * s]) {
        let mut cam = camera;
        cam.orbit(cell.yaw_offset_deg, 0.0);
        let mut single_params = params.clone();
        single_params.camera = cam;
        let want = rotate_ccw(
            &render_volume_and_meshes(&ctx, &mut meshes, &single_params),
            cell.quarter_turns,
        );
        let [x0, y0, ..] = cell.rect_px;
        let (mut differ, mut red_px, mut green_px) = (0, 0, 0);
        for y in 0..s {
            for x in 0..s {
                let (a, b) = (four.pixel(x0 + x, y0 + y), want.pixel(x, y));
                red_px += usize::from(dominant(b) == 0);
                green_px += usize::from(dominant(b) == 1);
                if (0..3).any(|c| a[c].abs_diff(b[c]) > 8) {
                    differ += 1;
                }
            }
        }
        assert!(
            red_px > 300 && green_px > 30,
            "{:?}: volume {red_px} px, mesh {green_px} px",
            cell.cell
        );
        assert!(
            differ * 100 < (s * s) as usize,
            "{:?}: {differ} pixels differ from render_scene",
            cell.cell
        );
    }
}
