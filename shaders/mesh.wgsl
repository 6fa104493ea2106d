// Meshes in world LPS mm with Blinn-Phong lighting from a light fixed to the camera.
// Each object is drawn as one instance; its colour (alpha = opacity) comes from a storage
// buffer indexed by the instance index, so recolouring is a buffer write, not a re-upload.

struct MeshUniforms {
    clip_from_world: mat4x4<f32>,
    eye_world: vec4<f32>,
    // Unit world direction towards the light (w unused).
    light_world: vec4<f32>,
    // (ambient, diffuse, specular, shininess)
    material: vec4<f32>,
    // (view direction x, y, z, orthographic 0/1): for orthographic views the eye direction
    // is the same for every fragment.
    view_dir: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: MeshUniforms;
@group(0) @binding(1) var<storage, read> colors: array<vec4<f32>>;

struct VsIn {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
};

struct VsOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) @interpolate(flat) color: vec4<f32>,
};

@vertex
fn vs_main(v: VsIn, @builtin(instance_index) object: u32) -> VsOut {
    var out: VsOut;
    out.clip = u.clip_from_world * vec4<f32>(v.position, 1.0);
    out.world = v.position;
    out.normal = v.normal;
    out.color = colors[object];
    return out;
}

@fragment
fn fs_main(in: VsOut, @builtin(front_facing) front: bool) -> @location(0) vec4<f32> {
    var n = normalize(in.normal);
    if !front {
        // Inside surfaces seen through a transparent outer one are lit from their own side.
        n = -n;
    }
    var v = normalize(u.eye_world.xyz - in.world);
    if u.view_dir.w > 0.5 {
        v = u.view_dir.xyz;
    }
    let l = u.light_world.xyz;
    let h = normalize(l + v);
    let diffuse = max(dot(n, l), 0.0);
    var specular = 0.0;
    if diffuse > 0.0 {
        specular = pow(max(dot(n, h), 0.0), u.material.w);
    }
    let rgb = in.color.rgb * (u.material.x + u.material.y * diffuse) + vec3<f32>(u.material.z * specular);
    return vec4<f32>(min(rgb, vec3<f32>(1.0)), in.color.a);
}
