//! Layer 2: segmentation.

pub mod model;
