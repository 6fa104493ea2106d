//! Chooses the inference engine once per process.
//!
//! `ort` is built with `alternative-backend`: nothing is downloaded or linked at build time, and
//! the process hands `ort` one C API table at run time (`ort::set_api`, which only the first call
//! wins). We prefer a real ONNX Runtime library (execution providers, speed) when one loads and
//! speaks API ≥ 24; otherwise the pure-Rust tract backend, which always works on CPU.

use super::InferenceError;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Which engine runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Pure Rust (tract), CPU only.
    Tract,
    /// A dynamically loaded ONNX Runtime shared library.
    OnnxRuntime,
}

/// What the caller asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendRequest {
    /// ONNX Runtime when one loads, else tract.
    #[default]
    Auto,
    Tract,
    /// ONNX Runtime or an error (optionally from this library file).
    OnnxRuntime(Option<PathBuf>),
}

impl BackendRequest {
    /// Reads `FUSEPRINT_BACKEND` (`auto`, `tract`, `onnxruntime`/`ort`); unset means auto.
    pub fn from_env() -> Result<Self, InferenceError> {
        match std::env::var("FUSEPRINT_BACKEND") {
            Err(_) => Ok(Self::Auto),
            Ok(v) => Self::parse(&v),
        }
    }

    pub fn parse(text: &str) -> Result<Self, InferenceError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "tract" => Ok(Self::Tract),
            "ort" | "onnxruntime" | "onnx-runtime" => Ok(Self::OnnxRuntime(None)),
            other => Err(InferenceError::Backend(format!(
                "unknown backend {other:?} (expected auto, tract or onnxruntime)"
            ))),
        }
    }
}

/// The engine in use, for the UI's status line and `fuseprint models`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    pub kind: BackendKind,
    /// ONNX Runtime's version string, or tract's build string.
    pub version: String,
    /// The shared library ONNX Runtime came from.
    pub library: Option<PathBuf>,
    /// Execution providers the engine offers (e.g. `CUDAExecutionProvider`, `CPUExecutionProvider`).
    pub providers: Vec<String>,
    /// Why ONNX Runtime was not used, when the request allowed it.
    pub fallback_reason: Option<String>,
}

impl BackendInfo {
    /// One line: "tract 0.5.0 (CPU)" or "ONNX Runtime 1.23.2 from /x/libonnxruntime.so [CPUExecutionProvider]".
    pub fn summary(&self) -> String {
        match self.kind {
            BackendKind::Tract => format!("tract ({}) [CPU]", self.version),
            BackendKind::OnnxRuntime => format!(
                "ONNX Runtime {} from {} [{}]",
                self.version,
                self.library
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "?".into()),
                self.providers.join(", ")
            ),
        }
    }
}

static ACTIVE: OnceLock<BackendInfo> = OnceLock::new();
static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Starts the engine `request` asks for; later calls return the engine already chosen (the
/// choice cannot change inside one process) and fail only if it contradicts a strict request.
pub fn init_backend(request: &BackendRequest) -> Result<&'static BackendInfo, InferenceError> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(info) = ACTIVE.get() {
        return check_matches(info, request);
    }
    let info = match request {
        BackendRequest::Tract => start_tract(None)?,
        BackendRequest::OnnxRuntime(path) => {
            let candidates = match path {
                Some(p) => vec![p.clone()],
                None => library_candidates(),
            };
            start_onnxruntime(&candidates).map_err(InferenceError::Backend)?
        }
        BackendRequest::Auto => match start_onnxruntime(&library_candidates()) {
            Ok(info) => info,
            Err(reason) => start_tract(Some(reason))?,
        },
    };
    let env = ort::init()
        .with_name("fuseprint")
        .build()
        .map_err(|e| InferenceError::Backend(format!("creating the ort environment: {e}")))?;
    let _ = ENVIRONMENT.set(env);
    Ok(ACTIVE.get_or_init(|| info))
}

/// The engine in use, starting the one `FUSEPRINT_BACKEND` asks for (default auto) if none is.
pub fn active_backend() -> Result<&'static BackendInfo, InferenceError> {
    match ACTIVE.get() {
        Some(info) => Ok(info),
        None => init_backend(&BackendRequest::from_env()?),
    }
}

pub(super) fn environment() -> Result<&'static ort::environment::Environment, InferenceError> {
    active_backend()?;
    ENVIRONMENT
        .get()
        .ok_or_else(|| InferenceError::Backend("the ort environment was not created".into()))
}

fn check_matches(
    info: &'static BackendInfo,
    request: &BackendRequest,
) -> Result<&'static BackendInfo, InferenceError> {
    let ok = match request {
        BackendRequest::Auto => true,
        BackendRequest::Tract => info.kind == BackendKind::Tract,
        BackendRequest::OnnxRuntime(_) => info.kind == BackendKind::OnnxRuntime,
    };
    if ok {
        Ok(info)
    } else {
        Err(InferenceError::Backend(format!(
            "{} is already active in this process; restart to switch to {request:?}",
            info.summary()
        )))
    }
}

fn start_tract(fallback_reason: Option<String>) -> Result<BackendInfo, InferenceError> {
    if !ort::set_api(ort_tract::api()) {
        return Err(InferenceError::Backend(
            "another ort API was installed before fuseprint chose one".into(),
        ));
    }
    // tract runs its kernels on one thread unless told otherwise; rayon's global pool is the
    // one `jobs` sizes and lowers in priority, so tract shares it instead of spawning its own.
    tract_linalg::multithread::set_default_executor(
        tract_linalg::multithread::Executor::RayonGlobal,
    );
    Ok(BackendInfo {
        kind: BackendKind::Tract,
        version: "ort-tract 0.5 / tract-onnx 0.23".into(),
        library: None,
        providers: vec!["tract CPU".into()],
        fallback_reason,
    })
}

/// Where to look for ONNX Runtime, most specific first: `ORT_DYLIB_PATH`, next to the
/// executable, then the system's library search path.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    let names: &[&str] = if cfg!(windows) {
        &["onnxruntime.dll"]
    } else if cfg!(target_os = "macos") {
        &["libonnxruntime.dylib"]
    } else {
        &["libonnxruntime.so", "libonnxruntime.so.1"]
    };
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.extend(names.iter().map(|n| dir.join(n)));
    }
    // A bare name lets the dynamic loader search the system paths.
    out.extend(names.iter().map(PathBuf::from));
    out
}

fn start_onnxruntime(candidates: &[PathBuf]) -> Result<BackendInfo, String> {
    let mut reasons = Vec::new();
    for path in candidates {
        // A bare file name is a system search; a path that does not exist is skipped quietly.
        if path.components().count() > 1 && !path.exists() {
            continue;
        }
        match load_onnxruntime(path) {
            Ok(info) => return Ok(info),
            Err(e) => reasons.push(format!("{}: {e}", path.display())),
        }
    }
    if reasons.is_empty() {
        Err("no ONNX Runtime library found (set ORT_DYLIB_PATH)".into())
    } else {
        Err(reasons.join("; "))
    }
}

#[allow(unsafe_code)]
fn load_onnxruntime(path: &Path) -> Result<BackendInfo, String> {
    // SAFETY: loading a shared library runs its initialisers; we only load files the user
    // pointed us at (ORT_DYLIB_PATH, next to the exe, system paths) and then call the documented
    // C entry point `OrtGetApiBase`, whose returned table lives as long as the library, which we
    // keep loaded for the rest of the process.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").map_err(|e| e.to_string())?;
        let base = get_base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let version_ptr = ((*base).GetVersionString)();
        let version = if version_ptr.is_null() {
            "unknown".to_string()
        } else {
            std::ffi::CStr::from_ptr(version_ptr)
                .to_string_lossy()
                .into_owned()
        };
        let api = ((*base).GetApi)(ort::sys::ORT_API_VERSION);
        if api.is_null() {
            return Err(format!(
                "ONNX Runtime {version} does not offer API version {} (need 1.{}+)",
                ort::sys::ORT_API_VERSION,
                ort::sys::ORT_API_VERSION
            ));
        }
        if !ort::set_api((*api).clone()) {
            return Err("another ort API was installed before fuseprint chose one".into());
        }
        std::mem::forget(lib);
        Ok(BackendInfo {
            kind: BackendKind::OnnxRuntime,
            version,
            library: Some(path.to_path_buf()),
            providers: available_providers(),
            fallback_reason: None,
        })
    }
}

#[allow(unsafe_code)]
fn available_providers() -> Vec<String> {
    let api = ort::api();
    let mut providers: *mut *mut std::os::raw::c_char = std::ptr::null_mut();
    let mut count: std::os::raw::c_int = 0;
    // SAFETY: the documented C API: fills an array of `count` C strings that we copy and then
    // release with the matching call.
    unsafe {
        let status = (api.GetAvailableProviders)(&mut providers, &mut count);
        if !status.0.is_null() {
            (api.ReleaseStatus)(status.0);
            return Vec::new();
        }
        if providers.is_null() {
            return Vec::new();
        }
        let out = (0..count.max(0) as isize)
            .map(|i| {
                std::ffi::CStr::from_ptr(*providers.offset(i))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let _ = (api.ReleaseAvailableProviders)(providers, count);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_names() {
        assert_eq!(
            BackendRequest::parse("TRACT").ok(),
            Some(BackendRequest::Tract)
        );
        assert_eq!(BackendRequest::parse("").ok(), Some(BackendRequest::Auto));
        assert_eq!(
            BackendRequest::parse("ort").ok(),
            Some(BackendRequest::OnnxRuntime(None))
        );
        assert!(BackendRequest::parse("cuda").is_err());
    }

    #[test]
    fn missing_library_is_a_reason_not_a_crash() {
        let reason = start_onnxruntime(&[PathBuf::from("/nonexistent/dir/libonnxruntime.so")])
            .expect_err("nothing to load");
        assert!(reason.contains("ORT_DYLIB_PATH"), "{reason}");
    }
}
