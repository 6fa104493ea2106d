//! fuseprint: CT and MRI to a fused 3D picture and a colour-coded printable model.
//!
//! Modules are listed bottom layer first; see README's Architecture section for the rules.

// L0
pub mod jobs;
pub mod volume;

// L1
pub mod editing;
pub mod export;
pub mod inference;
pub mod io;
pub mod measure;
pub mod meshing;
pub mod preprocess;

// L2
pub mod segmentation;

// Synthetic data built from core types (used by the app and by tests of later layers).
pub mod sample;

// L2
pub mod registration;

// L3
pub mod document;

// L4: the only module that knows wgpu
pub mod render;

// L5
pub mod ui;

// L6: composition roots
pub mod app;
pub mod cli;
