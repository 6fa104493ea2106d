use thiserror::Error;

/// What can go wrong between asking for a picture and getting its pixels back.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("no GPU adapter found (on a machine without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers)")]
    NoAdapter,
    #[error("the GPU refused to create a device: {0}")]
    Device(String),
    #[error("reading the rendered image back from the GPU failed: {0}")]
    Readback(String),
    #[error("{what} is {got}, more than this GPU allows ({limit})")]
    TooLarge {
        what: &'static str,
        got: u32,
        limit: u32,
    },
    #[error(
        "volume {volume} cannot be drawn: it needs {needed_mib} MiB of 16-bit textures, more \
         than the {budget_mib} MiB allowed for one volume even at 1/{max_factor} resolution per axis"
    )]
    VolumeTooLarge {
        volume: String,
        needed_mib: u64,
        budget_mib: u64,
        max_factor: usize,
    },
    #[error(
        "the GPU has no memory for volume {volume} ({textures} texture(s), {bytes_mib} MiB in all): {message}"
    )]
    OutOfMemory {
        volume: String,
        textures: usize,
        bytes_mib: u64,
        message: String,
    },
    #[error("nothing to render: {0}")]
    Empty(String),
}
