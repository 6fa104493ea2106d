//! One loaded ONNX model behind the [`Backend`] trait.

use super::runtime::{self, BackendKind};
use super::{Backend, InferenceError, Manifest, Tensor};
use crate::jobs::CancelToken;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::TensorRef;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An ONNX model ready to run on the active engine.
pub struct ModelSession {
    name: String,
    session: Session,
    input_name: String,
    output_name: String,
    /// ONNX Runtime only: lets a cancel stop a run that is already in flight.
    run_options: Option<Arc<RunOptions>>,
    cancel: Option<CancelToken>,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSession")
            .field("name", &self.name)
            .field("input", &self.input_name)
            .field("output", &self.output_name)
            .finish()
    }
}

impl ModelSession {
    /// Loads the manifest's model on the active engine (starting the default engine if needed).
    pub fn load(manifest: &Manifest) -> Result<Self, InferenceError> {
        let backend = runtime::active_backend()?;
        let env = runtime::environment()?;
        let path = manifest.model_path();
        let load_err = |message: String| InferenceError::Load {
            model: manifest.name.clone(),
            message,
            path: path.clone(),
        };
        if !path.is_file() {
            return Err(load_err("model file not found".into()));
        }
        let builder = Session::builder(env).map_err(|e| load_err(e.to_string()))?;
        // tract runs the unoptimised graph otherwise (tens of times slower).
        let mut builder = builder
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| load_err(e.to_string()))?;
        if backend.kind == BackendKind::OnnxRuntime {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            builder = builder
                .with_intra_threads(threads)
                .map_err(|e| load_err(e.to_string()))?;
        }
        let session = builder
            .commit_from_file(&path)
            .map_err(|e| load_err(e.to_string()))?;

        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        if !inputs.iter().any(|n| n == &manifest.input.name) {
            return Err(load_err(format!(
                "manifest names input {:?} but the model's inputs are {inputs:?}",
                manifest.input.name
            )));
        }
        if !outputs.iter().any(|n| n == &manifest.output.name) {
            return Err(InferenceError::MissingOutput {
                model: manifest.name.clone(),
                output: manifest.output.name.clone(),
                available: outputs,
            });
        }
        let run_options = match backend.kind {
            BackendKind::OnnxRuntime => Some(Arc::new(
                RunOptions::new().map_err(|e| load_err(e.to_string()))?,
            )),
            // tract's API table has no run options; cancellation happens between patches.
            BackendKind::Tract => None,
        };
        Ok(Self {
            name: manifest.name.clone(),
            session,
            input_name: manifest.input.name.clone(),
            output_name: manifest.output.name.clone(),
            run_options,
            cancel: None,
        })
    }

    /// Watches `token` during each run, so a cancel stops ONNX Runtime mid-run (tract finishes
    /// the current run; callers check between patches).
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    fn run_inner(&mut self, input: &Tensor) -> Result<Tensor, InferenceError> {
        let run_err = |name: &str, e: ort::Error| InferenceError::Run {
            model: name.to_string(),
            message: e.to_string(),
        };
        let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
        let value = TensorRef::from_array_view((shape, input.data.as_slice()))
            .map_err(|e| run_err(&self.name, e))?;
        let inputs = ort::inputs![self.input_name.as_str() => value];
        let outputs = match &self.run_options {
            Some(options) => self.session.run_with_options(inputs, options.as_ref()),
            None => self.session.run(inputs),
        }
        .map_err(|e| run_err(&self.name, e))?;
        let Some(value) = outputs.get(&self.output_name) else {
            return Err(InferenceError::MissingOutput {
                model: self.name.clone(),
                output: self.output_name.clone(),
                available: outputs.keys().map(|k| k.to_string()).collect(),
            });
        };
        let (shape, data): (Vec<usize>, Vec<f32>) =
            if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
                (
                    shape.iter().map(|&d| d.max(0) as usize).collect(),
                    data.to_vec(),
                )
            } else if let Ok((shape, data)) = value.try_extract_tensor::<i64>() {
                (
                    shape.iter().map(|&d| d.max(0) as usize).collect(),
                    data.iter().map(|&v| v as f32).collect(),
                )
            } else {
                return Err(InferenceError::OutputShape {
                    model: self.name.clone(),
                    output: self.output_name.clone(),
                    actual: Vec::new(),
                    expected: "a float32 or int64 tensor".into(),
                });
            };
        Tensor::new(shape, data)
    }
}

impl Backend for ModelSession {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, InferenceError> {
        let (Some(options), Some(token)) = (self.run_options.clone(), self.cancel.clone()) else {
            return self.run_inner(input);
        };
        if token.is_cancelled() {
            return Err(InferenceError::Cancelled {
                model: self.name.clone(),
            });
        }
        // A rayon task watches the cancel flag while ONNX Runtime (on its own threads) runs.
        let finished = AtomicBool::new(false);
        let (result, ()) = rayon::join(
            || {
                let r = self.run_inner(input);
                finished.store(true, Ordering::Release);
                r
            },
            || {
                while !finished.load(Ordering::Acquire) {
                    if token.is_cancelled() {
                        let _ = options.terminate();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            },
        );
        if token.is_cancelled() {
            let _ = options.unterminate();
            return Err(InferenceError::Cancelled {
                model: self.name.clone(),
            });
        }
        result
    }

    fn model_name(&self) -> &str {
        &self.name
    }
}
