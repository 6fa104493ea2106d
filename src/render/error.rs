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
    #[error("nothing to render: {0}")]
    Empty(String),
}
