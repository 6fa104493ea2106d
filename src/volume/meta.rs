//! What an image is, beyond its voxels: modality, units and where it came from.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Modality {
    Ct,
    Mr,
    /// Another DICOM modality code (`PT`, `US`, …) or unknown.
    Other(String),
}

impl Modality {
    pub fn from_dicom_code(code: &str) -> Self {
        match code.trim().to_ascii_uppercase().as_str() {
            "CT" => Modality::Ct,
            "MR" => Modality::Mr,
            other => Modality::Other(other.to_string()),
        }
    }
    pub fn code(&self) -> &str {
        match self {
            Modality::Ct => "CT",
            Modality::Mr => "MR",
            Modality::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntensityUnit {
    /// Hounsfield units (CT after rescale slope/intercept).
    Hounsfield,
    /// Scanner-relative values (MR, or anything without a physical unit).
    Arbitrary,
}

/// Descriptive information carried alongside a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub modality: Modality,
    pub unit: IntensityUnit,
    /// Human-readable name: series description or file name.
    pub description: String,
    /// File or folder it was read from, for reports and error messages.
    pub source: String,
    /// DICOM SeriesInstanceUID when known.
    pub series_uid: Option<String>,
    /// Anything noteworthy the reader found (irregular spacing, tilt resampled, …).
    pub warnings: Vec<String>,
}

impl ImageMeta {
    pub fn new(modality: Modality, description: impl Into<String>) -> Self {
        let unit = if modality == Modality::Ct {
            IntensityUnit::Hounsfield
        } else {
            IntensityUnit::Arbitrary
        };
        Self {
            modality,
            unit,
            description: description.into(),
            source: String::new(),
            series_uid: None,
            warnings: Vec::new(),
        }
    }
}
