//! Layer 1: running ONNX models. The only module that knows about `ort` (and its backends).
//!
//! - [`runtime`] picks the engine once per process: ONNX Runtime when a recent enough shared
//!   library can be loaded, else the pure-Rust tract backend that always works.
//! - [`manifest`] reads the JSON beside each `.onnx`: what the model expects and produces.
//! - [`session`] wraps one loaded model as a [`Backend`]; callers (segmentation, registration)
//!   see only the trait, so they can be tested with a fake.
//! - [`sliding_window`] tiles a grid into overlapping patches with Gaussian blending weights.

pub mod manifest;
pub mod registration;
pub mod runtime;
pub mod session;
pub mod sliding_window;

pub use manifest::{
    Manifest, ManifestError, ModelLabel, Normalisation, OutputKind, PatchMode, Task, TensorAxes,
    TRACT_PATCH,
};
pub use runtime::{active_backend, init_backend, BackendInfo, BackendKind, BackendRequest};
pub use session::ModelSession;

use std::path::PathBuf;

/// A dense `f32` tensor in C order (last axis fastest), e.g. `[1, C, D, H, W]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// Pairs data with a shape; refuses a buffer of the wrong length.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, InferenceError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(InferenceError::TensorLength {
                shape,
                actual: data.len(),
            });
        }
        Ok(Self { shape, data })
    }
}

/// Runs one model on one input tensor. Implemented by [`ModelSession`] (ONNX through `ort`)
/// and by fakes in tests.
pub trait Backend: Send {
    /// `input` is `[1, C, D, H, W]`; returns the output the manifest names, as `f32`
    /// (`[1, K, D, H, W]` scores, or `[1, D, H, W]` / `[1, 1, D, H, W]` label ids).
    fn run(&mut self, input: &Tensor) -> Result<Tensor, InferenceError>;

    /// The model's name, for messages.
    fn model_name(&self) -> &str;
}

/// Why a model could not be loaded or run. Messages name the model (and the node where known).
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("no inference backend could be started: {0}")]
    Backend(String),
    #[error("model {model}: could not load: {message} ({path})")]
    Load {
        model: String,
        message: String,
        path: PathBuf,
    },
    #[error("model {model}: run failed: {message}")]
    Run { model: String, message: String },
    #[error("model {model}: has no output named {output:?} (outputs: {available:?})")]
    MissingOutput {
        model: String,
        output: String,
        available: Vec<String>,
    },
    #[error("model {model}: output {output:?} has shape {actual:?}, expected {expected}")]
    OutputShape {
        model: String,
        output: String,
        actual: Vec<usize>,
        expected: String,
    },
    #[error("tensor shape {shape:?} does not fit {actual} values")]
    TensorLength { shape: Vec<usize>, actual: usize },
    #[error("model {model}: cancelled")]
    Cancelled { model: String },
}
