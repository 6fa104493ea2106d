// Multi-planar slice: one full-viewport triangle; each fragment is a world point on the plane,
// mapped into each volume's voxel space by affine steps precomputed on the CPU in f64.
// Fixed volume (CT) and moving volume (MRI through moving_from_fixed) are trilinear-sampled by
// hand (textureLoad), so r32float needs no FLOAT32_FILTERABLE and matches the CPU resampler.

struct SliceUniforms {
    // Voxel position at uv = (0, 0) (top-left corner of the viewport) and its change across
    // the whole viewport width (du) and height (dv).
    fixed_origin: vec4<f32>,
    fixed_du: vec4<f32>,
    fixed_dv: vec4<f32>,
    moving_origin: vec4<f32>,
    moving_du: vec4<f32>,
    moving_dv: vec4<f32>,
    label_origin: vec4<f32>,
    label_du: vec4<f32>,
    label_dv: vec4<f32>,
    // Columns of transpose(voxel_from_world) for the fixed volume: turns a voxel-space
    // gradient into a world (per mm) gradient.
    fixed_grad_c0: vec4<f32>,
    fixed_grad_c1: vec4<f32>,
    fixed_grad_c2: vec4<f32>,
    fixed_dims: vec4<f32>,
    moving_dims: vec4<f32>,
    label_dims: vec4<f32>,
    // (window low, window width, colour map row, unused)
    fixed_window: vec4<f32>,
    moving_window: vec4<f32>,
    // (width px, height px, width mm, height mm)
    viewport: vec4<f32>,
    // (mode, p0, p1, has_moving)
    fusion: vec4<f32>,
    // (fill opacity, outline on/off, outline opacity, has_labels)
    labels: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: SliceUniforms;
@group(0) @binding(1) var fixed_tex: texture_3d<f32>;
@group(0) @binding(2) var moving_tex: texture_3d<f32>;
@group(0) @binding(3) var label_tex: texture_3d<u32>;
@group(0) @binding(4) var lut_tex: texture_2d<f32>;
@group(0) @binding(5) var<storage, read> label_colors: array<u32>;

struct VsOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VsOut {
    // One triangle covering the viewport; uv is (0,0) top-left, (1,1) bottom-right.
    let x = f32(i32(index & 1u) * 4 - 1);
    let y = f32(i32(index >> 1u) * 4 - 1);
    var out: VsOut;
    out.position = vec4<f32>(x, y, 0.0, 1.0);
    out.uv = vec2<f32>((x + 1.0) * 0.5, (1.0 - y) * 0.5);
    return out;
}

fn inside(p: vec3<f32>, dims: vec3<f32>) -> bool {
    return all(p >= vec3<f32>(-0.5)) && all(p <= dims - vec3<f32>(0.5));
}

// Same rule as volume::resample::trilinear_at: clamp into the grid, the last cell reuses
// the one before it, a one-voxel axis does not step.
fn trilinear(tex: texture_3d<f32>, p: vec3<f32>, dims: vec3<f32>) -> f32 {
    let c = clamp(p, vec3<f32>(0.0), dims - vec3<f32>(1.0));
    let base = min(floor(c), max(dims - vec3<f32>(2.0), vec3<f32>(0.0)));
    let f = select(c - base, vec3<f32>(0.0), dims <= vec3<f32>(1.0));
    let b = vec3<i32>(base);
    let s = vec3<i32>(select(vec3<f32>(1.0), vec3<f32>(0.0), dims <= vec3<f32>(1.0)));
    let v000 = textureLoad(tex, b, 0).r;
    let v100 = textureLoad(tex, b + vec3<i32>(s.x, 0, 0), 0).r;
    let v010 = textureLoad(tex, b + vec3<i32>(0, s.y, 0), 0).r;
    let v110 = textureLoad(tex, b + vec3<i32>(s.x, s.y, 0), 0).r;
    let v001 = textureLoad(tex, b + vec3<i32>(0, 0, s.z), 0).r;
    let v101 = textureLoad(tex, b + vec3<i32>(s.x, 0, s.z), 0).r;
    let v011 = textureLoad(tex, b + vec3<i32>(0, s.y, s.z), 0).r;
    let v111 = textureLoad(tex, b + vec3<i32>(s.x, s.y, s.z), 0).r;
    let c00 = mix(v000, v100, f.x);
    let c10 = mix(v010, v110, f.x);
    let c01 = mix(v001, v101, f.x);
    let c11 = mix(v011, v111, f.x);
    return mix(mix(c00, c10, f.y), mix(c01, c11, f.y), f.z);
}

fn colormap(value: f32, window: vec4<f32>) -> vec3<f32> {
    let t = clamp((value - window.x) / max(window.y, 1e-6), 0.0, 1.0);
    let index = i32(floor(t * 255.0 + 0.5));
    return textureLoad(lut_tex, vec2<i32>(index, i32(window.z)), 0).rgb;
}

fn windowed(value: f32, window: vec4<f32>) -> f32 {
    return clamp((value - window.x) / max(window.y, 1e-6), 0.0, 1.0);
}

fn label_at(uv: vec2<f32>) -> u32 {
    let p = u.label_origin.xyz + uv.x * u.label_du.xyz + uv.y * u.label_dv.xyz;
    if !inside(p, u.label_dims.xyz) {
        return 0u;
    }
    let idx = clamp(vec3<i32>(floor(p + vec3<f32>(0.5))), vec3<i32>(0), vec3<i32>(u.label_dims.xyz) - vec3<i32>(1));
    return textureLoad(label_tex, idx, 0).r;
}

fn label_color(label: u32) -> vec4<f32> {
    if label == 0u || label >= arrayLength(&label_colors) {
        return vec4<f32>(0.0);
    }
    return unpack4x8unorm(label_colors[label]);
}

// CT gradient magnitude in units per mm, central differences one voxel apart.
fn fixed_gradient_mm(p: vec3<f32>) -> f32 {
    let d = u.fixed_dims.xyz;
    let gx = (trilinear(fixed_tex, p + vec3<f32>(1.0, 0.0, 0.0), d) - trilinear(fixed_tex, p - vec3<f32>(1.0, 0.0, 0.0), d)) * 0.5;
    let gy = (trilinear(fixed_tex, p + vec3<f32>(0.0, 1.0, 0.0), d) - trilinear(fixed_tex, p - vec3<f32>(0.0, 1.0, 0.0), d)) * 0.5;
    let gz = (trilinear(fixed_tex, p + vec3<f32>(0.0, 0.0, 1.0), d) - trilinear(fixed_tex, p - vec3<f32>(0.0, 0.0, 1.0), d)) * 0.5;
    let g = u.fixed_grad_c0.xyz * gx + u.fixed_grad_c1.xyz * gy + u.fixed_grad_c2.xyz * gz;
    return length(g);
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let uv = in.uv;
    let pf = u.fixed_origin.xyz + uv.x * u.fixed_du.xyz + uv.y * u.fixed_dv.xyz;
    let fixed_in = inside(pf, u.fixed_dims.xyz);
    var fixed_value = 0.0;
    var fixed_rgb = vec3<f32>(0.0);
    if fixed_in {
        fixed_value = trilinear(fixed_tex, pf, u.fixed_dims.xyz);
        fixed_rgb = colormap(fixed_value, u.fixed_window);
    }

    var rgb = fixed_rgb;
    let mode = i32(u.fusion.x);
    if u.fusion.w > 0.5 && mode != 0 {
        let pm = u.moving_origin.xyz + uv.x * u.moving_du.xyz + uv.y * u.moving_dv.xyz;
        var moving_t = 0.0;
        var moving_rgb = vec3<f32>(0.0);
        if inside(pm, u.moving_dims.xyz) {
            let mv = trilinear(moving_tex, pm, u.moving_dims.xyz);
            moving_t = windowed(mv, u.moving_window);
            moving_rgb = colormap(mv, u.moving_window);
        }
        if mode == 1 {
            // Alpha blend: p0 is the moving image's weight.
            rgb = mix(fixed_rgb, moving_rgb, u.fusion.y);
        } else if mode == 2 {
            // Colour overlay: the moving map over the fixed one, its own brightness as alpha.
            rgb = mix(fixed_rgb, moving_rgb, u.fusion.y * moving_t);
        } else if mode == 3 {
            // Checkerboard in plane millimetres from the viewport centre; p0 = square size.
            let a = (uv.x - 0.5) * u.viewport.z;
            let b = (uv.y - 0.5) * u.viewport.w;
            let cell = i32(floor(a / u.fusion.y)) + i32(floor(b / u.fusion.y));
            rgb = select(moving_rgb, fixed_rgb, (cell & 1) == 0);
        } else if mode == 4 {
            // Gradient-weighted: w = smoothstep(p0, p1, |grad CT| per mm); CT where w is high.
            var w = 0.0;
            if fixed_in {
                w = smoothstep(u.fusion.y, u.fusion.z, fixed_gradient_mm(pf));
            }
            rgb = mix(moving_rgb, fixed_rgb, w);
        }
    }

    if u.labels.w > 0.5 {
        let label = label_at(uv);
        if label != 0u {
            let color = label_color(label);
            var alpha = u.labels.x;
            if u.labels.y > 0.5 {
                let px = vec2<f32>(1.0 / u.viewport.x, 0.0);
                let py = vec2<f32>(0.0, 1.0 / u.viewport.y);
                let edge = label_at(uv + px) != label || label_at(uv - px) != label
                    || label_at(uv + py) != label || label_at(uv - py) != label;
                if edge {
                    alpha = u.labels.z;
                }
            }
            rgb = mix(rgb, color.rgb, alpha * color.a);
        }
    }
    return vec4<f32>(rgb, 1.0);
}
