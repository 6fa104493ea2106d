// Volume raycaster: one full-screen triangle, one ray per pixel, marched in world mm.
// Keep `Uniforms` in sync with `RaycastUniforms` and `Brick` with `BrickUniforms` in
// src/render/raycast.rs.
//
// A volume larger than the largest 3D texture comes as several bricks, one draw each: a draw
// marches only the part of the ray inside its brick's box (`Brick.seg_lo..seg_hi`, the outer
// faces pushed far out so the boxes tile all space), on the same per-pixel step grid as an
// unbricked ray. DVR draws bricks back to front with premultiplied "over" blending; MIP and
// MinIP first write a neutral opaque value where the ray has samples (`fs_footprint`) and
// then take the max (min) of the bricks' values with blending.
//
// With a scene depth texture (meshes drawn first), rays stop at the surface, so the volume in
// front of it is composited over the mesh colour already in the target.

struct Uniforms {
    world_from_clip: mat4x4<f32>,
    tex1_from_world: mat4x4<f32>,
    // Second volume: its texture coordinates from the first volume's world (moving_from_fixed folded in).
    tex2_from_world: mat4x4<f32>,
    label_tex_from_world: mat4x4<f32>,
    // xyz normal, w offset: a plane removes the side where dot(n, p) > w.
    clip_planes: array<vec4<f32>, 4>,
    clip_box_min: vec4<f32>,
    clip_box_max: vec4<f32>,
    // xyz texture size, w step between samples in mm.
    dims1: vec4<f32>,
    // xyz texture size of the second volume, w reference length (mm) opacities are given for.
    dims2: vec4<f32>,
    // xyz label texture size, w label opacity per mm.
    label_dims: vec4<f32>,
    // xyz brick counts, w voxels per brick side.
    bricks: vec4<f32>,
    // x, y: MIP/MinIP window in stored units; z: jitter amount (0 or 1); w: opacity-table buckets.
    window: vec4<f32>,
    // ambient, diffuse, specular, shininess.
    light: vec4<f32>,
    // mode (0 DVR, 1 MIP, 2 MinIP), has second volume, has labels, clip plane count.
    flags: vec4<u32>,
    // shading on, empty-space skipping on, frame seed, max steps.
    flags2: vec4<u32>,
    // x: scene depth bound (0/1); yzw unused.
    flags3: vec4<u32>,
}

struct Brick {
    // Box of ray parameters this draw covers, in the first volume's texture coordinates.
    seg_lo: vec4<f32>,
    seg_hi: vec4<f32>,
    // Brick texture coordinates = first volume texture coordinates * scale + offset.
    scale: vec4<f32>,
    offset: vec4<f32>,
    // xyz brick texture size, w number of bricks of the volume.
    dims: vec4<f32>,
}

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var linear_clamp: sampler;
@group(0) @binding(2) var vol1: texture_3d<f32>;
@group(0) @binding(3) var bricks1: texture_3d<f32>;
@group(0) @binding(4) var tf1: texture_1d<f32>;
@group(0) @binding(5) var max_opacity1: texture_2d<f32>;
@group(0) @binding(6) var vol2: texture_3d<f32>;
@group(0) @binding(7) var tf2: texture_1d<f32>;
@group(0) @binding(8) var labels: texture_3d<u32>;
@group(0) @binding(9) var label_colours: texture_1d<f32>;
@group(0) @binding(10) var scene_depth: texture_depth_2d;
@group(0) @binding(11) var<uniform> brick: Brick;

const MODE_DVR: u32 = 0u;
const MODE_MIP: u32 = 1u;
const MODE_MINIP: u32 = 2u;

struct VsOut {
    @builtin(position) position: vec4<f32>,
    @location(0) ndc: vec2<f32>,
}

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VsOut {
    // (-1,-1), (3,-1), (-1,3): one triangle covering the viewport.
    let x = f32(i32(index & 1u) * 4 - 1);
    let y = f32(i32(index >> 1u) * 4 - 1);
    var out: VsOut;
    out.position = vec4<f32>(x, y, 0.0, 1.0);
    out.ndc = vec2<f32>(x, y);
    return out;
}

fn unproject(ndc: vec2<f32>, z: f32) -> vec3<f32> {
    let p = u.world_from_clip * vec4<f32>(ndc, z, 1.0);
    return p.xyz / p.w;
}

// Entry and exit parameters of a ray through an axis-aligned box (empty when x > y).
fn box_interval(o: vec3<f32>, d: vec3<f32>, lo: vec3<f32>, hi: vec3<f32>) -> vec2<f32> {
    let s = select(vec3<f32>(1.0), vec3<f32>(-1.0), d < vec3<f32>(0.0));
    let inv = s / max(abs(d), vec3<f32>(1e-12));
    let t0 = (lo - o) * inv;
    let t1 = (hi - o) * inv;
    let near = min(t0, t1);
    let far = max(t0, t1);
    return vec2<f32>(max(max(near.x, near.y), near.z), min(min(far.x, far.y), far.z));
}

fn hash01(p: vec2<u32>, seed: u32) -> f32 {
    var h = p.x * 1973u + p.y * 9277u + seed * 26699u + 1u;
    h = (h ^ (h >> 16u)) * 0x45d9f3bu;
    h = (h ^ (h >> 16u)) * 0x45d9f3bu;
    h = h ^ (h >> 16u);
    return f32(h & 0xffffffu) / 16777216.0;
}

fn tf_lookup(tf: texture_1d<f32>, value: f32) -> vec4<f32> {
    let n = textureDimensions(tf);
    let x = clamp(value, 0.0, 1.0) * f32(n - 1u);
    let i0 = u32(floor(x));
    let i1 = min(i0 + 1u, n - 1u);
    return mix(textureLoad(tf, i0, 0), textureLoad(tf, i1, 0), x - f32(i0));
}

fn inside_unit(p: vec3<f32>) -> bool {
    return all(p >= vec3<f32>(0.0)) && all(p <= vec3<f32>(1.0));
}

// World-space gradient of a volume at texture position p (central differences, one texel).
// `scale` converts derivatives along the texture's coordinates to the first volume's (bricks).
fn gradient(vol: texture_3d<f32>, p: vec3<f32>, dims: vec3<f32>, scale: vec3<f32>, tex_from_world: mat4x4<f32>) -> vec3<f32> {
    let h = 1.0 / dims;
    let gx = textureSampleLevel(vol, linear_clamp, p + vec3<f32>(h.x, 0.0, 0.0), 0.0).r
        - textureSampleLevel(vol, linear_clamp, p - vec3<f32>(h.x, 0.0, 0.0), 0.0).r;
    let gy = textureSampleLevel(vol, linear_clamp, p + vec3<f32>(0.0, h.y, 0.0), 0.0).r
        - textureSampleLevel(vol, linear_clamp, p - vec3<f32>(0.0, h.y, 0.0), 0.0).r;
    let gz = textureSampleLevel(vol, linear_clamp, p + vec3<f32>(0.0, 0.0, h.z), 0.0).r
        - textureSampleLevel(vol, linear_clamp, p - vec3<f32>(0.0, 0.0, h.z), 0.0).r;
    let g_tex = vec3<f32>(gx, gy, gz) / (2.0 * h) * scale;
    let m = mat3x3<f32>(tex_from_world[0].xyz, tex_from_world[1].xyz, tex_from_world[2].xyz);
    return transpose(m) * g_tex;
}

fn label_index(p: vec3<f32>) -> u32 {
    if !inside_unit(p) {
        return 0u;
    }
    let dims = vec3<i32>(u.label_dims.xyz);
    let i = clamp(vec3<i32>(floor(p * u.label_dims.xyz)), vec3<i32>(0), dims - 1);
    return textureLoad(labels, i, 0).r;
}

// Outward-ish normal of a label's surface from its 6 neighbours (blocky but stable).
fn label_gradient(p: vec3<f32>, index: u32) -> vec3<f32> {
    let h = 1.0 / u.label_dims.xyz;
    let g_tex = vec3<f32>(
        f32(label_index(p + vec3<f32>(h.x, 0.0, 0.0)) == index) - f32(label_index(p - vec3<f32>(h.x, 0.0, 0.0)) == index),
        f32(label_index(p + vec3<f32>(0.0, h.y, 0.0)) == index) - f32(label_index(p - vec3<f32>(0.0, h.y, 0.0)) == index),
        f32(label_index(p + vec3<f32>(0.0, 0.0, h.z)) == index) - f32(label_index(p - vec3<f32>(0.0, 0.0, h.z)) == index),
    ) / (2.0 * h);
    let m = mat3x3<f32>(u.label_tex_from_world[0].xyz, u.label_tex_from_world[1].xyz, u.label_tex_from_world[2].xyz);
    return transpose(m) * g_tex;
}

// Headlight Blinn-Phong, two-sided: gradients point into dense matter.
fn shade(colour: vec3<f32>, grad: vec3<f32>, to_eye: vec3<f32>) -> vec3<f32> {
    let len = length(grad);
    if u.flags2.x == 0u || len < 1e-6 {
        return colour * (u.light.x + u.light.y);
    }
    let n_dot_l = abs(dot(grad / len, to_eye));
    let specular = u.light.z * pow(n_dot_l, u.light.w);
    return colour * (u.light.x + u.light.y * n_dot_l) + vec3<f32>(specular);
}

// Brick bounds are widened by 1e-3 for 16-bit rounding; a brick that can beat the current
// MIP/MinIP value by less than SKIP_SLACK (0.5/255 of a full-range window) is not worth a visit.
const SKIP_SLACK: f32 = 0.002;

fn brick_is_empty(mm: vec2<f32>, mode: u32, mip: f32, minip: f32) -> bool {
    if mode == MODE_MIP {
        return mm.y <= mip + SKIP_SLACK;
    }
    if mode == MODE_MINIP {
        return mm.x >= minip - SKIP_SLACK;
    }
    let b = u.window.w;
    let i = u32(clamp(floor(mm.x * b), 0.0, b - 1.0));
    let j = u32(clamp(floor(mm.y * b), 0.0, b - 1.0));
    return textureLoad(max_opacity1, vec2<u32>(i, j), 0).r <= 0.0;
}

struct RaySetup {
    near: vec3<f32>,
    dir: vec3<f32>,
    o1: vec3<f32>,
    d1: vec3<f32>,
    o2: vec3<f32>,
    d2: vec3<f32>,
    // Parameter range to sample, mm from `near` (empty when x > y).
    t_range: vec2<f32>,
    // First sample of this pixel's step grid; sample n sits at t_first + n * step.
    t_first: f32,
}

fn setup_ray(ndc: vec2<f32>, pixel: vec2<f32>) -> RaySetup {
    var r: RaySetup;
    r.near = unproject(ndc, 0.0);
    let far = unproject(ndc, 1.0);
    r.dir = normalize(far - r.near);
    let near = r.near;
    let dir = r.dir;
    let mode = u.flags.x;

    // Parameter range: the volumes' boxes, cut by near/far, the clip box and the planes.
    r.o1 = (u.tex1_from_world * vec4<f32>(near, 1.0)).xyz;
    r.d1 = (u.tex1_from_world * vec4<f32>(dir, 0.0)).xyz;
    var t_range = box_interval(r.o1, r.d1, vec3<f32>(0.0), vec3<f32>(1.0));
    r.o2 = (u.tex2_from_world * vec4<f32>(near, 1.0)).xyz;
    r.d2 = (u.tex2_from_world * vec4<f32>(dir, 0.0)).xyz;
    // MIP and MinIP project the first volume only.
    if u.flags.y != 0u && mode == MODE_DVR {
        let r2 = box_interval(r.o2, r.d2, vec3<f32>(0.0), vec3<f32>(1.0));
        if r2.x <= r2.y {
            if t_range.x <= t_range.y {
                t_range = vec2<f32>(min(t_range.x, r2.x), max(t_range.y, r2.y));
            } else {
                t_range = r2;
            }
        }
    }
    let clip_box = box_interval(near, dir, u.clip_box_min.xyz, u.clip_box_max.xyz);
    t_range = vec2<f32>(max(max(t_range.x, clip_box.x), 0.0), min(min(t_range.y, clip_box.y), length(far - near)));
    for (var c = 0u; c < min(u.flags.w, 4u); c++) {
        let plane = u.clip_planes[c];
        let denom = dot(plane.xyz, dir);
        let room = plane.w - dot(plane.xyz, near);
        if abs(denom) < 1e-9 {
            if room < 0.0 {
                t_range = vec2<f32>(1.0, 0.0);
            }
        } else if denom > 0.0 {
            t_range.y = min(t_range.y, room / denom);
        } else {
            t_range.x = max(t_range.x, room / denom);
        }
    }
    // Stop where the scene's meshes are: nothing behind them shows.
    if u.flags3.x != 0u {
        let size = vec2<i32>(textureDimensions(scene_depth));
        let texel = clamp(vec2<i32>(pixel), vec2<i32>(0), size - vec2<i32>(1));
        let depth = textureLoad(scene_depth, texel, 0);
        if depth < 1.0 {
            let surface = unproject(ndc, depth);
            t_range.y = min(t_range.y, dot(surface - near, dir));
        }
    }
    r.t_range = t_range;
    let jitter = u.window.z * hash01(vec2<u32>(pixel), u.flags2.z);
    r.t_first = t_range.x + jitter * u.dims1.w;
    return r;
}

// Several bricks, MIP/MinIP: an opaque neutral value (black for MIP, white for MinIP) where
// the ray has at least one sample, which the bricks' max (min) blending then raises (lowers).
@fragment
fn fs_footprint(in: VsOut) -> @location(0) vec4<f32> {
    let r = setup_ray(in.ndc, in.position.xy);
    if r.t_first > r.t_range.y {
        discard;
    }
    if u.flags.x == MODE_MINIP {
        return vec4<f32>(1.0);
    }
    return vec4<f32>(0.0, 0.0, 0.0, 1.0);
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let r = setup_ray(in.ndc, in.position.xy);
    let near = r.near;
    let dir = r.dir;
    let to_eye = -dir;
    let mode = u.flags.x;
    let o1 = r.o1;
    let d1 = r.d1;
    let o2 = r.o2;
    let d2 = r.d2;
    let t_range = r.t_range;
    let several_bricks = brick.dims.w > 1.5;
    let step_mm = u.dims1.w;
    // This draw's part of the ray: samples with seg.x <= t < seg.y.
    let seg = box_interval(o1, d1, brick.seg_lo.xyz, brick.seg_hi.xyz);
    if t_range.x > t_range.y || seg.x > seg.y {
        if several_bricks {
            discard;
        }
        return vec4<f32>(0.0);
    }

    let skipping = u.flags2.y != 0u;
    let brick_dims = vec3<i32>(u.bricks.xyz);
    let alpha_exponent = step_mm / u.dims2.w;

    var acc = vec4<f32>(0.0);
    var mip = -1e30;
    var minip = 1e30;
    var n = max(ceil((seg.x - r.t_first) / step_mm), 0.0);
    for (var i = 0u; i < u.flags2.w; i++) {
        let t = r.t_first + n * step_mm;
        if t > t_range.y || t >= seg.y {
            break;
        }
        let p1 = o1 + t * d1;
        if skipping {
            let cell = clamp(vec3<i32>(floor(p1 * u.dims1.xyz / u.bricks.w)), vec3<i32>(0), brick_dims - 1);
            let mm = textureLoad(bricks1, cell, 0).xy;
            if brick_is_empty(mm, mode, mip, minip) {
                let lo = vec3<f32>(cell) * u.bricks.w / u.dims1.xyz;
                let hi = (vec3<f32>(cell) + 1.0) * u.bricks.w / u.dims1.xyz;
                let exit = box_interval(o1, d1, lo, hi).y;
                // Stay on this pixel's step grid so skipping changes no sample position.
                n += max(ceil((exit - t) / step_mm), 1.0);
                continue;
            }
        }
        let pb = p1 * brick.scale.xyz + brick.offset.xyz;
        let v1 = textureSampleLevel(vol1, linear_clamp, pb, 0.0).r;
        if mode == MODE_MIP {
            mip = max(mip, v1);
        } else if mode == MODE_MINIP {
            minip = min(minip, v1);
        } else {
            var colour = vec4<f32>(0.0);
            var grad = vec3<f32>(0.0);
            var labelled = false;
            if u.flags.z != 0u {
                let pl = (u.label_tex_from_world * vec4<f32>(near + t * dir, 1.0)).xyz;
                let index = label_index(pl);
                if index != 0u {
                    let lc = textureLoad(label_colours, index, 0);
                    if lc.a > 0.0 {
                        colour = vec4<f32>(lc.rgb, lc.a * u.label_dims.w);
                        if colour.a > 0.0 {
                            grad = label_gradient(pl, index);
                        }
                        labelled = true;
                    }
                }
            }
            if !labelled {
                if inside_unit(p1) {
                    colour = tf_lookup(tf1, v1);
                }
                if u.flags.y != 0u {
                    let p2 = o2 + t * d2;
                    if inside_unit(p2) {
                        let c2 = tf_lookup(tf2, textureSampleLevel(vol2, linear_clamp, p2, 0.0).r);
                        let total = colour.a + c2.a;
                        if c2.a > colour.a && c2.a > 0.0 {
                            grad = gradient(vol2, p2, u.dims2.xyz, vec3<f32>(1.0), u.tex2_from_world);
                        }
                        if total > 0.0 {
                            colour = vec4<f32>(
                                (colour.rgb * colour.a + c2.rgb * c2.a) / total,
                                1.0 - (1.0 - colour.a) * (1.0 - c2.a),
                            );
                        }
                    }
                }
                if colour.a > 0.0 && all(grad == vec3<f32>(0.0)) {
                    grad = gradient(vol1, pb, brick.dims.xyz, brick.scale.xyz, u.tex1_from_world);
                }
            }
            if colour.a > 0.0 {
                let alpha = 1.0 - pow(1.0 - min(colour.a, 0.9999), alpha_exponent);
                let rgb = shade(colour.rgb, grad, to_eye);
                acc = vec4<f32>(acc.rgb + (1.0 - acc.a) * alpha * rgb, acc.a + (1.0 - acc.a) * alpha);
                if acc.a >= 0.99 {
                    break;
                }
            }
        }
        n += 1.0;
    }

    if mode == MODE_DVR {
        return vec4<f32>(min(acc.rgb, vec3<f32>(acc.a)), acc.a);
    }
    var value = mip;
    if mode == MODE_MINIP {
        value = minip;
    }
    if value < -1e29 || value > 1e29 {
        if several_bricks {
            discard;
        }
        return vec4<f32>(0.0);
    }
    let grey = clamp((value - u.window.x) / max(u.window.y - u.window.x, 1e-6), 0.0, 1.0);
    return vec4<f32>(grey, grey, grey, 1.0);
}
