//! fuseprint: CT and MRI to a fused 3D picture and a colour-coded printable model.
//!
//! Modules are listed bottom layer first; see README's Architecture section for the rules.

// L0
pub mod jobs;
pub mod volume;

// L1
pub mod io;

// L2
pub mod registration;

// L6: composition roots
pub mod app;
pub mod cli;
