//! Layer 1: meshes to files.
