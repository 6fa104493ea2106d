//! Layer 1: files to volumes and back. The only module that knows file formats and the
//! RAS convention; everything it returns is LPS millimetres.

mod error;
pub mod jpeg12;
pub mod jpegls;

pub use error::IoError;

use crate::volume::{ImageMeta, Volume};

/// A volume as read from disk, with what is known about it.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub volume: Volume<f32>,
    pub meta: ImageMeta,
}
