//! The raycaster on synthetic phantoms with answers known in closed form, rendered offscreen
//! (lavapipe on CI). Without a GPU adapter each test says so and returns, unless
//! FUSEPRINT_REQUIRE_GPU is set. A failing image comparison writes the actual and expected
//! pictures to Cargo's test temp folder and names them.

use fuseprint::render::{
    render_image, save_png, upload_labels, upload_volume, upload_volume_with, Camera, ClipPlane,
    ControlPoint, GpuContext, OffscreenTarget, Projection, RaycastParams, Raycaster, RenderError,
    RenderMode, RgbaImage, SecondVolume, StandardView, TransferFunction, UploadOptions,
    ValueDomain, VolumeLayer,
};
use fuseprint::volume::{LabelInfo, LabelMap, LabelTable, Rgba, Volume, VolumeGeometry};
use nalgebra::{Matrix4, Point3, Vector3};

mod common;

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

const SIZE: [u32; 2] = [96, 96];

/// An `n³` grid of 1 mm voxels centred on `centre`, valued `profile(distance to centre)`.
fn radial_phantom(n: usize, centre: [f64; 3], profile: impl Fn(f64) -> f32 + Sync) -> Volume<f32> {
    let half = (n as f64 - 1.0) / 2.0;
    let origin = [centre[0] - half, centre[1] - half, centre[2] - half];
    let geometry = VolumeGeometry::axis_aligned([n; 3], [1.0; 3], origin).unwrap();
    let g = geometry.clone();
    let c = Point3::from(centre);
    Volume::from_fn(geometry, move |[i, j, k]| {
        let p = g.world_from_voxel_point([i as f64, j as f64, k as f64]);
        profile((p - c).norm())
    })
}

/// 1000 at the centre falling linearly to 0 at `radius`: a MIP of it is known per ray.
fn cone(radius: f64) -> impl Fn(f64) -> f32 + Sync {
    move |r| (1000.0 * (1.0 - r / radius)).max(0.0) as f32
}

/// 1000 inside, 0 outside, a linear 2 mm rim so the 500 level sits exactly at `radius`.
fn ball(radius: f64) -> impl Fn(f64) -> f32 + Sync {
    move |r| (1000.0 * ((radius + 1.0 - r) / 2.0).clamp(0.0, 1.0)) as f32
}

/// Opaque above 550, clear below 450: the 500 surface, in one colour.
fn surface_tf(rgb: [f32; 3]) -> TransferFunction {
    TransferFunction::new(
        "surface",
        ValueDomain::Absolute,
        vec![
            ControlPoint::new(450.0, rgb, 0.0),
            ControlPoint::new(550.0, rgb, 1.0),
        ],
    )
    .unwrap()
}

fn ortho_camera(height_mm: f64) -> Camera {
    Camera {
        projection: Projection::Orthographic { height_mm },
        distance_mm: 150.0,
        near_mm: 1.0,
        far_mm: 400.0,
        ..Camera::standard(StandardView::Anterior, Point3::origin(), 150.0)
    }
}

fn distance_to_ray(camera: &Camera, x: u32, y: u32, p: Point3<f64>) -> f64 {
    let ray = camera.ray_through_pixel(f64::from(x), f64::from(y), SIZE[0], SIZE[1]);
    let v = p - ray.origin;
    (v - ray.direction * v.dot(&ray.direction)).norm()
}

fn render(ctx: &GpuContext, params: &RaycastParams<'_>) -> RgbaImage {
    let mut raycaster = Raycaster::new(&ctx.device, OffscreenTarget::COLOR_FORMAT);
    render_image(ctx, &mut raycaster, params, SIZE).unwrap()
}

/// Image differences, all channels, in 1/255 units.
struct Diff {
    mean: f64,
    within_8: f64,
    max: u8,
}

fn diff(a: &RgbaImage, b: &RgbaImage) -> Diff {
    let d: Vec<u8> = a
        .pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    Diff {
        mean: d.iter().map(|v| f64::from(*v)).sum::<f64>() / d.len() as f64,
        within_8: d.iter().filter(|v| **v <= 8).count() as f64 / d.len() as f64,
        max: d.iter().copied().max().unwrap_or(0),
    }
}

fn keep_for_debugging(name: &str, actual: &RgbaImage, expected: Option<&RgbaImage>) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let actual_path = dir.join(format!("{name}.actual.png"));
    let _ = save_png(actual, &actual_path, true);
    if let Some(e) = expected {
        let _ = save_png(e, &dir.join(format!("{name}.expected.png")), true);
    }
    format!("images in {}", dir.display())
}

/// Grey `value / 1000` over an opaque pixel, or nothing where the ray misses the volume.
fn expected_projection(camera: &Camera, half_box_mm: f64, value: impl Fn(f64) -> f64) -> RgbaImage {
    let mut pixels = Vec::new();
    for y in 0..SIZE[1] {
        for x in 0..SIZE[0] {
            let ray = camera.ray_through_pixel(f64::from(x), f64::from(y), SIZE[0], SIZE[1]);
            let hits_box = ray.origin.x.abs() < half_box_mm && ray.origin.z.abs() < half_box_mm;
            if hits_box {
                let d = distance_to_ray(camera, x, y, Point3::origin());
                let g = (value(d) / 1000.0 * 255.0).round().clamp(0.0, 255.0) as u8;
                pixels.extend([g, g, g, 255]);
            } else {
                pixels.extend([0, 0, 0, 0]);
            }
        }
    }
    RgbaImage {
        width: SIZE[0],
        height: SIZE[1],
        pixels,
    }
}

/// Tolerances: trilinear interpolation rounds the cone's tip (the centre voxels read ~956,
/// not 1000) and its rim; both touch well under 1 % of the pixels. Everywhere else the
/// projection is exact to a step's worth of slope (< 1/255).
fn assert_projection_matches(name: &str, actual: &RgbaImage, expected: &RgbaImage) {
    let d = diff(actual, expected);
    assert!(
        d.mean < 2.0 && d.within_8 >= 0.99,
        "{name}: mean abs diff {:.2}/255, {:.2} % within 8/255, max {}; {}",
        d.mean,
        d.within_8 * 100.0,
        d.max,
        keep_for_debugging(name, actual, Some(expected))
    );
}

#[test]
fn mip_of_a_cone_matches_the_analytic_projection() {
    let Some(ctx) = gpu_or_skip() else { return };
    let radius = 20.0;
    let volume = upload_volume(
        &ctx.device,
        &ctx.queue,
        &radial_phantom(48, [0.0; 3], cone(radius)),
    )
    .unwrap();
    let tf = TransferFunction::preset("ct-bone").unwrap();
    let camera = ortho_camera(60.0);
    let mut params = RaycastParams::new(&volume, &tf, camera);
    params.mode = RenderMode::Mip;
    params.window = Some((0.0, 1000.0));
    params.jitter = false;
    params.background = [0.0; 4];
    let actual = render(&ctx, &params);
    let expected = expected_projection(&camera, 24.0, |d| 1000.0 * (1.0 - d / radius).max(0.0));
    assert_projection_matches("mip_cone", &actual, &expected);
}

#[test]
fn minip_of_an_inverted_cone_matches_the_analytic_projection() {
    let Some(ctx) = gpu_or_skip() else { return };
    let radius = 20.0;
    let inverted = move |r: f64| 1000.0 - cone(radius)(r);
    let volume = upload_volume(
        &ctx.device,
        &ctx.queue,
        &radial_phantom(48, [0.0; 3], inverted),
    )
    .unwrap();
    let tf = TransferFunction::preset("ct-bone").unwrap();
    let camera = ortho_camera(60.0);
    let mut params = RaycastParams::new(&volume, &tf, camera);
    params.mode = RenderMode::MinIp;
    params.window = Some((0.0, 1000.0));
    params.jitter = false;
    params.background = [0.0; 4];
    let actual = render(&ctx, &params);
    let expected = expected_projection(&camera, 24.0, |d| 1000.0 * (d / radius).min(1.0));
    assert_projection_matches("minip_cone", &actual, &expected);
}

fn opaque(image: &RgbaImage, x: u32, y: u32) -> bool {
    image.pixel(x, y)[3] > 127
}

fn luminance(image: &RgbaImage, x: u32, y: u32) -> f64 {
    let [r, g, b, _] = image.pixel(x, y);
    0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)
}

#[test]
fn dvr_sphere_has_the_projected_radius_is_lit_from_the_eye_and_skipping_changes_nothing() {
    let Some(ctx) = gpu_or_skip() else { return };
    let radius = 16.0;
    let volume = upload_volume(
        &ctx.device,
        &ctx.queue,
        &radial_phantom(48, [0.0; 3], ball(radius)),
    )
    .unwrap();
    let tf = surface_tf([1.0, 1.0, 1.0]);
    let distance = 150.0;
    let fov_y_deg = 30.0f64;
    let camera = Camera {
        projection: Projection::Perspective { fov_y_deg },
        near_mm: 50.0,
        far_mm: 300.0,
        ..Camera::standard(StandardView::Anterior, Point3::origin(), distance)
    };
    let mut params = RaycastParams::new(&volume, &tf, camera);
    params.background = [0.0; 4];
    params.frame_seed = 7;
    let image = render(&ctx, &params);

    // A sphere's silhouette seen from `distance` subtends asin(r / distance).
    let half_height_px = f64::from(SIZE[1]) / 2.0;
    let expected_px =
        (radius / distance).asin().tan() / (fov_y_deg.to_radians() / 2.0).tan() * half_height_px;
    let mut area = 0usize;
    for y in 0..SIZE[1] {
        for x in 0..SIZE[0] {
            area += usize::from(opaque(&image, x, y));
        }
    }
    let measured_px = (area as f64 / std::f64::consts::PI).sqrt();
    assert!(
        (measured_px - expected_px).abs() < 1.0,
        "silhouette radius {measured_px:.2} px, projected sphere {expected_px:.2} px; {}",
        keep_for_debugging("dvr_sphere", &image, None)
    );

    // The headlight faces the middle of the sphere head-on and the rim at a grazing angle.
    let (cx, cy) = (SIZE[0] / 2, SIZE[1] / 2);
    let rim_x = cx + (0.85 * expected_px) as u32;
    let (centre, rim) = (luminance(&image, cx, cy), luminance(&image, rim_x, cy));
    assert!(
        centre > rim + 30.0,
        "centre {centre:.0} should be brighter than near the rim {rim:.0}"
    );

    params.empty_space_skipping = false;
    let unskipped = render(&ctx, &params);
    let d = diff(&image, &unskipped);
    assert!(
        d.mean < 0.5 && d.max <= 8,
        "skipping changed the picture: mean {:.2}, max {}; {}",
        d.mean,
        d.max,
        keep_for_debugging("dvr_unskipped", &unskipped, Some(&image))
    );
}

#[test]
fn a_clip_plane_through_the_centre_removes_half_the_sphere() {
    let Some(ctx) = gpu_or_skip() else { return };
    let volume = upload_volume(
        &ctx.device,
        &ctx.queue,
        &radial_phantom(48, [0.0; 3], ball(16.0)),
    )
    .unwrap();
    let tf = surface_tf([1.0, 0.8, 0.6]);
    let mut params = RaycastParams::new(&volume, &tf, ortho_camera(48.0));
    params.background = [0.0; 4];
    let whole = render(&ctx, &params);
    // Anterior view: the patient's left (+x) is on the screen's right.
    params.clip_planes = vec![ClipPlane::through(Point3::origin(), Vector3::x())];
    let clipped = render(&ctx, &params);
    let count = |image: &RgbaImage, xs: std::ops::Range<u32>| {
        let mut n = 0;
        for y in 0..SIZE[1] {
            for x in xs.clone() {
                n += usize::from(opaque(image, x, y));
            }
        }
        n
    };
    let cx = SIZE[0] / 2;
    let (left_whole, right_whole) = (count(&whole, 0..cx - 1), count(&whole, cx + 1..SIZE[0]));
    let (left_clipped, right_clipped) =
        (count(&clipped, 0..cx - 1), count(&clipped, cx + 1..SIZE[0]));
    assert!(right_whole > 500 && left_whole > 500, "no sphere drawn");
    assert_eq!(
        right_clipped,
        0,
        "the removed half still shows; {}",
        keep_for_debugging("clip", &clipped, None)
    );
    // The cut face is opaque too, so the kept half covers the same pixels as before.
    assert_eq!(left_clipped, left_whole);
}

#[test]
fn label_map_voxels_appear_in_their_label_colours() {
    let Some(ctx) = gpu_or_skip() else { return };
    let image_volume = radial_phantom(40, [0.0; 3], ball(14.0));
    let geometry = image_volume.geometry().clone();
    let g = geometry.clone();
    // Label 3 (red) on the patient's right (x < 0), label 7 (green) on the left.
    let labels = Volume::from_fn(geometry, move |[i, j, k]| {
        let p = g.world_from_voxel_point([i as f64, j as f64, k as f64]);
        match (p.coords.norm() < 14.0, p.x < 0.0) {
            (false, _) => 0u16,
            (true, true) => 3,
            (true, false) => 7,
        }
    });
    let mut table = LabelTable::new();
    table.insert(LabelInfo::new(3, "right", Rgba([255, 0, 0, 255])));
    table.insert(LabelInfo::new(7, "left", Rgba([0, 255, 0, 255])));
    let map = LabelMap::new(labels, table);
    let volume = upload_volume(&ctx.device, &ctx.queue, &image_volume).unwrap();
    let label_texture = upload_labels(&ctx.device, &ctx.queue, &map).unwrap();
    let invisible = TransferFunction::new(
        "clear",
        ValueDomain::Absolute,
        vec![ControlPoint::new(0.0, [0.0; 3], 0.0)],
    )
    .unwrap();
    let mut params = RaycastParams::new(&volume, &invisible, ortho_camera(40.0));
    params.labels = Some(&label_texture);
    params.background = [0.0; 4];
    let image = render(&ctx, &params);
    let (cx, cy) = (SIZE[0] / 2, SIZE[1] / 2);
    let [r, g, b, a] = image.pixel(cx - 12, cy).map(u32::from);
    let [r2, g2, b2, a2] = image.pixel(cx + 12, cy).map(u32::from);
    let note = keep_for_debugging("labels", &image, None);
    assert!(
        a > 200 && r > 100 && r > 3 * g && r > 3 * b,
        "screen left {:?}; {note}",
        [r, g, b, a]
    );
    assert!(
        a2 > 200 && g2 > 100 && g2 > 3 * r2 && g2 > 3 * b2,
        "screen right {:?}; {note}",
        [r2, g2, b2, a2]
    );
    // Outside the labelled sphere the (invisible) image shows nothing.
    assert_eq!(image.pixel(2, 2)[3], 0);
}

#[test]
fn two_volumes_render_together_each_with_its_own_transfer_function() {
    let Some(ctx) = gpu_or_skip() else { return };
    // Fixed: a sphere 12 mm to the patient's right. Moving: a sphere at its own origin,
    // placed 12 mm to the left by moving_from_fixed.
    let fixed = upload_volume(
        &ctx.device,
        &ctx.queue,
        &radial_phantom(32, [-12.0, 0.0, 0.0], ball(8.0)),
    )
    .unwrap();
    let moving = upload_volume(
        &ctx.device,
        &ctx.queue,
        &radial_phantom(24, [0.0; 3], ball(8.0)),
    )
    .unwrap();
    let red = surface_tf([1.0, 0.0, 0.0]);
    let blue = surface_tf([0.0, 0.0, 1.0]);
    let mut params = RaycastParams::new(&fixed, &red, ortho_camera(60.0));
    params.second = Some(SecondVolume {
        layer: VolumeLayer {
            volume: &moving,
            transfer: &blue,
        },
        moving_from_fixed: Matrix4::new_translation(&Vector3::new(-12.0, 0.0, 0.0)),
    });
    params.background = [0.0; 4];
    let image = render(&ctx, &params);
    let note = keep_for_debugging("two_volumes", &image, None);
    let mm_to_px = f64::from(SIZE[0]) / 60.0;
    let (cx, cy) = (f64::from(SIZE[0]) / 2.0, SIZE[1] / 2);
    let left = image
        .pixel((cx - 12.0 * mm_to_px) as u32, cy)
        .map(u32::from);
    let right = image
        .pixel((cx + 12.0 * mm_to_px) as u32, cy)
        .map(u32::from);
    // Specular highlights are white, so "red" means red well above blue, not blue at zero.
    assert!(
        left[3] > 200 && left[0] > 100 && left[0] > 2 * left[2],
        "screen left {left:?}; {note}"
    );
    assert!(
        right[3] > 200 && right[2] > 100 && right[2] > 2 * right[0],
        "screen right {right:?}; {note}"
    );
    // Between the spheres nothing.
    assert_eq!(image.pixel(cx as u32, cy)[3], 0);
}

#[test]
fn interactive_quality_takes_coarser_steps_yet_shows_the_same_sphere() {
    let Some(ctx) = gpu_or_skip() else { return };
    let volume = upload_volume(
        &ctx.device,
        &ctx.queue,
        &radial_phantom(32, [0.0; 3], ball(10.0)),
    )
    .unwrap();
    let tf = surface_tf([1.0, 1.0, 1.0]);
    let mut params = RaycastParams::new(&volume, &tf, ortho_camera(32.0));
    params.background = [0.0; 4];
    let full = render(&ctx, &params);
    params.interactive = true;
    assert!(params.step_mm() > 2.0 * RaycastParams::new(&volume, &tf, ortho_camera(1.0)).step_mm());
    let quick = render(&ctx, &params);
    let coverage = |image: &RgbaImage| image.pixels.chunks(4).filter(|p| p[3] > 127).count();
    let (a, b) = (coverage(&full) as f64, coverage(&quick) as f64);
    assert!(
        a > 1000.0 && (a - b).abs() / a < 0.05,
        "full {a} px, interactive {b} px"
    );
}

#[test]
fn cli_renders_a_png_and_never_silently_overwrites_it() {
    let Some(_ctx) = gpu_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ball.nii.gz");
    let ct = radial_phantom(32, [0.0; 3], |r| if r < 10.0 { 1000.0 } else { -1000.0 });
    fuseprint::io::save_nifti(&input, &ct, false).unwrap();
    let output = dir.path().join("view.png");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fuseprint"))
            .arg("render")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .args(["--preset", "ct-bone", "--size", "64x48"])
            .args(extra)
            .output()
            .unwrap()
    };
    let first = run(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let png = image::open(&output).unwrap().to_rgba8();
    assert_eq!(png.dimensions(), (64, 48));
    // Lit bone in the middle, the opaque black background in the corner.
    assert!(
        png.get_pixel(32, 24).0[0] > 100,
        "{:?}",
        png.get_pixel(32, 24)
    );
    assert_eq!(png.get_pixel(0, 0).0, [0, 0, 0, 255]);

    let before = std::fs::read(&output).unwrap();
    let refused = run(&["--view", "left"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("already exists"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&output).unwrap(), before);

    let forced = run(&["--mode", "mip", "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_ne!(std::fs::read(&output).unwrap(), before);

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_fuseprint"))
        .arg("render")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["--preset", "ct-lung", "--force"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("ct-lung"),
        "{stderr}"
    );
}

/// Trilinear sample at a continuous voxel position, clamped to the edge voxels as the
/// GPU's clamp-to-edge sampler does.
fn trilinear(volume: &Volume<f32>, v: [f64; 3]) -> f64 {
    let d = volume.dims();
    let c: [f64; 3] = std::array::from_fn(|a| v[a].clamp(0.0, (d[a] - 1) as f64));
    let i0: [usize; 3] = std::array::from_fn(|a| c[a].floor() as usize);
    let i1: [usize; 3] = std::array::from_fn(|a| (i0[a] + 1).min(d[a] - 1));
    let f: [f64; 3] = std::array::from_fn(|a| c[a] - i0[a] as f64);
    let mut sum = 0.0;
    for corner in 0..8 {
        let pick = |a: usize| corner >> a & 1 == 1;
        let idx: [usize; 3] = std::array::from_fn(|a| if pick(a) { i1[a] } else { i0[a] });
        let w: f64 = (0..3)
            .map(|a| if pick(a) { f[a] } else { 1.0 - f[a] })
            .product();
        sum += w * f64::from(volume.at(idx[0], idx[1], idx[2]));
    }
    sum
}

/// Where a world ray enters and leaves the grid's box (outer voxel faces), in mm along it.
fn grid_interval(volume: &Volume<f32>, ray: &fuseprint::render::Ray) -> Option<(f64, f64)> {
    let m = volume.geometry().voxel_from_world();
    let o = m * ray.origin.to_homogeneous();
    let d = m * ray.direction.to_homogeneous();
    let (mut t0, mut t1) = (f64::NEG_INFINITY, f64::INFINITY);
    for a in 0..3 {
        let (lo, hi) = (-0.5, volume.dims()[a] as f64 - 0.5);
        if d[a].abs() < 1e-12 {
            if o[a] < lo || o[a] > hi {
                return None;
            }
            continue;
        }
        let (ta, tb) = ((lo - o[a]) / d[a], (hi - o[a]) / d[a]);
        t0 = t0.max(ta.min(tb));
        t1 = t1.min(ta.max(tb));
    }
    (t0 <= t1).then_some((t0.max(0.0), t1))
}

#[test]
fn real_ct_mip_matches_a_cpu_projection_and_its_labels_land_where_they_project() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let Some(ctx) = gpu_or_skip() else { return };
    let dir = data.join("totalsegmentator");
    let jobs = fuseprint::jobs::JobContext::detached();
    let ct = fuseprint::io::load_image(&dir.join("example_ct.nii.gz"), &jobs)
        .expect("example_ct.nii.gz loads")
        .volume;
    let (labels, _) = fuseprint::io::labels::load_label_map::<()>(
        &dir.join("example_seg_fast_force_split.nii.gz"),
        &jobs,
    )
    .expect("its segmentation loads");
    let volume = upload_volume(&ctx.device, &ctx.queue, &ct).unwrap();
    let label_texture = upload_labels(&ctx.device, &ctx.queue, &labels).unwrap();
    let corners = volume.corners_world();
    let (mut lo, mut hi) = (corners[0], corners[0]);
    for c in &corners {
        lo = lo.inf(c);
        hi = hi.sup(c);
    }
    let mut camera = Camera {
        projection: Projection::Orthographic { height_mm: 1.0 },
        ..Camera::standard(StandardView::Anterior, Point3::origin(), 1.0)
    };
    camera.fit_to_bounds(lo, hi, 1.0);
    let tf = TransferFunction::preset("ct-bone").unwrap();
    let window = (-200.0f32, 1000.0f32);
    let mut params = RaycastParams::new(&volume, &tf, camera);
    params.mode = RenderMode::Mip;
    params.window = Some(window);
    params.jitter = false;
    params.background = [0.0; 4];
    let step_mm = params.step_mm();
    let actual = render(&ctx, &params);

    // CPU: the same rays, samples at the same distances from where each enters the grid.
    let mut pixels = Vec::new();
    for y in 0..SIZE[1] {
        for x in 0..SIZE[0] {
            let ray = camera.ray_through_pixel(f64::from(x), f64::from(y), SIZE[0], SIZE[1]);
            let voxel_from_world = ct.geometry().voxel_from_world();
            match grid_interval(&ct, &ray) {
                Some((t0, t1)) => {
                    let mut max = f64::NEG_INFINITY;
                    let mut t = t0;
                    while t <= t1 {
                        let v = voxel_from_world * ray.at(t).to_homogeneous();
                        max = max.max(trilinear(&ct, [v.x, v.y, v.z]));
                        t += step_mm;
                    }
                    let grey = ((max - f64::from(window.0)) / f64::from(window.1 - window.0))
                        .clamp(0.0, 1.0);
                    let g = (grey * 255.0).round() as u8;
                    pixels.extend([g, g, g, 255]);
                }
                None => pixels.extend([0, 0, 0, 0]),
            }
        }
    }
    let expected = RgbaImage {
        width: SIZE[0],
        height: SIZE[1],
        pixels,
    };
    assert_projection_matches("real_ct_mip", &actual, &expected);

    // Labels alone (the CT made invisible): a pixel is coloured exactly when its ray meets a
    // labelled voxel, up to the boundary pixels where the step grid decides.
    let invisible = TransferFunction::new(
        "clear",
        ValueDomain::Absolute,
        vec![ControlPoint::new(0.0, [0.0; 3], 0.0)],
    )
    .unwrap();
    let mut params = RaycastParams::new(&volume, &invisible, camera);
    params.labels = Some(&label_texture);
    params.background = [0.0; 4];
    params.jitter = false;
    let coloured = render(&ctx, &params);
    let label_from_world = labels.geometry().voxel_from_world();
    let (mut both, mut either) = (0usize, 0usize);
    for y in 0..SIZE[1] {
        for x in 0..SIZE[0] {
            let ray = camera.ray_through_pixel(f64::from(x), f64::from(y), SIZE[0], SIZE[1]);
            let mut hit = false;
            if let Some((t0, t1)) = grid_interval(&ct, &ray) {
                let mut t = t0;
                while t <= t1 && !hit {
                    let v = label_from_world * ray.at(t).to_homogeneous();
                    let idx = [v.x, v.y, v.z].map(|c| c.round() as i64);
                    hit = labels
                        .volume
                        .get(idx[0], idx[1], idx[2])
                        .is_some_and(|l| l != 0);
                    t += step_mm;
                }
            }
            let drawn = coloured.pixel(x, y)[3] > 0;
            both += usize::from(hit && drawn);
            either += usize::from(hit || drawn);
        }
    }
    let iou = both as f64 / either.max(1) as f64;
    assert!(
        either > 1000 && iou > 0.97,
        "labelled pixels: GPU and CPU agree on {both} of {either} (IoU {iou:.3}); {}",
        keep_for_debugging("real_labels", &coloured, None)
    );
}

/// 64×64×100 voxels of 1 mm around the origin: an elongated cone plus a ripple, so every
/// seam between bricks crosses structure, gradients and semi-transparent layers.
fn long_phantom() -> Volume<f32> {
    let dims = [64usize, 64, 100];
    let half = dims.map(|n| (n as f64 - 1.0) / 2.0);
    let geometry =
        VolumeGeometry::axis_aligned(dims, [1.0; 3], [-half[0], -half[1], -half[2]]).unwrap();
    let g = geometry.clone();
    Volume::from_fn(geometry, move |[i, j, k]| {
        let p = g.world_from_voxel_point([i as f64, j as f64, k as f64]);
        let r = (p.x * p.x + p.y * p.y + 0.4 * p.z * p.z).sqrt();
        let ripple = 150.0 * (p.x * 0.3).sin() * (p.z * 0.2).cos();
        ((1000.0 * (1.0 - r / 34.0)).max(0.0) + ripple) as f32
    })
}

/// Bricks of at most 48 voxels on a 64×64×100 phantom (2×2×3 bricks) draw the same DVR, MIP
/// and MinIP pictures as one texture, head-on (rays along a brick seam's normal) and from an
/// oblique perspective (rays crossing seams of all three axes). Tolerance: every sample sits
/// at the same place and reads the same voxels, so only rounding differs, except that DVR's
/// early ray termination at 99 % opacity happens per brick: a bricked ray may add up to 1 %
/// of what lies behind (≤ 3/255). A visible seam would be a line of pixels far off.
#[test]
fn a_bricked_volume_draws_the_same_picture_as_one_texture() {
    let Some(ctx) = gpu_or_skip() else { return };
    let phantom = long_phantom();
    let whole = upload_volume(&ctx.device, &ctx.queue, &phantom).unwrap();
    let options = UploadOptions {
        max_texture_dimension: Some(48),
        ..UploadOptions::default()
    };
    let bricked = upload_volume_with(&ctx.device, &ctx.queue, &phantom, &options).unwrap();
    assert!(!whole.is_bricked());
    assert_eq!(bricked.brick_grid, [2, 2, 3]);
    assert_eq!(bricked.dims, whole.dims);
    assert_eq!(bricked.downsample, [1, 1, 1]);
    assert!(bricked
        .texture_bricks()
        .all(|b| b.size.iter().all(|n| *n <= 48)));

    let dvr_tf = TransferFunction::new(
        "layers",
        ValueDomain::Absolute,
        vec![
            ControlPoint::new(300.0, [0.2, 0.4, 1.0], 0.0),
            ControlPoint::new(700.0, [1.0, 0.6, 0.2], 0.05),
            ControlPoint::new(1100.0, [1.0, 1.0, 0.9], 0.3),
        ],
    )
    .unwrap();
    let head_on = ortho_camera(110.0);
    let oblique = Camera {
        projection: Projection::Perspective { fov_y_deg: 40.0 },
        yaw_deg: 35.0,
        pitch_deg: 25.0,
        distance_mm: 180.0,
        near_mm: 20.0,
        far_mm: 500.0,
        target_world: Point3::origin(),
    };
    for (camera_name, camera) in [("head_on", head_on), ("oblique", oblique)] {
        for mode in [RenderMode::Dvr, RenderMode::Mip, RenderMode::MinIp] {
            let picture = |volume| {
                let mut params = RaycastParams::new(volume, &dvr_tf, camera);
                params.mode = mode;
                params.background = [0.0; 4];
                params.frame_seed = 3;
                render(&ctx, &params)
            };
            let (one, several) = (picture(&whole), picture(&bricked));
            let name = format!("bricked_{camera_name}_{}", mode.name());
            let d = diff(&several, &one);
            let drawn = one.pixels.chunks(4).filter(|p| p[3] > 0).count();
            assert!(
                drawn > 1000 && d.mean < 0.5 && d.max <= 4,
                "{name}: {drawn} pixels drawn; bricked vs one texture: mean {:.3}/255, max {}; {}",
                d.mean,
                d.max,
                keep_for_debugging(&name, &several, Some(&one))
            );
        }
    }
}

#[test]
fn a_volume_over_the_memory_budget_is_downsampled_and_past_4x_refused_by_name() {
    let Some(ctx) = gpu_or_skip() else { return };
    let phantom = long_phantom();
    let full_bytes = 64 * 64 * 100 * 2;
    // Half the 16-bit size: one halving per axis fits.
    let options = UploadOptions {
        max_texture_dimension: None,
        max_bytes: full_bytes / 2,
    };
    let reduced = upload_volume_with(&ctx.device, &ctx.queue, &phantom, &options).unwrap();
    assert_eq!(reduced.downsample, [2, 2, 2]);
    assert_eq!(reduced.dims, [32, 32, 50]);
    assert!(reduced.texture_bytes <= full_bytes / 2);
    let options = UploadOptions {
        max_texture_dimension: None,
        max_bytes: 1000,
    };
    match upload_volume_with(&ctx.device, &ctx.queue, &phantom, &options) {
        Err(e @ RenderError::VolumeTooLarge { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("64×64×100") && message.contains("MiB"),
                "{message}"
            );
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(t) => panic!("uploaded at {:?} despite a 1000-byte budget", t.dims),
    }
}
