// Lays one cell of the four-view projection (pyramid / Pepper's-ghost displays) onto its place
// in the cross layout: the cell's picture is rendered upright offscreen, then turned here by
// quarter turns counter-clockwise so each picture's top points away from the screen centre.
// The turn rides on the draw's first vertex (vertices 3q..3q+2 draw q quarter turns), so no
// uniform buffer is needed.

@group(0) @binding(0) var picture: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One triangle covering the viewport. `uv` is where the screen point samples the upright
// picture (0..1, y down): the screen point turned back clockwise by the picture's turn.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let corner = index % 3u;
    let turns = (index / 3u) % 4u;
    let x = f32((corner << 1u) & 2u);
    let y = f32(corner & 2u);
    // Screen position about the viewport centre, y up.
    var p = vec2<f32>(x - 0.5, 0.5 - y);
    for (var t = 0u; t < turns; t = t + 1u) {
        p = vec2<f32>(p.y, -p.x);
    }
    var out: VertexOut;
    out.position = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(p.x + 0.5, 0.5 - p.y);
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = vec2<f32>(textureDimensions(picture));
    let texel = clamp(vec2<i32>(in.uv * size), vec2<i32>(0), vec2<i32>(size) - vec2<i32>(1));
    return textureLoad(picture, texel, 0);
}
