//! Offscreen pictures to PNG files: for the CLI, reports and failing tests.

use super::raycast::{RaycastParams, Raycaster};
use super::{GpuContext, OffscreenTarget, RenderError, RgbaImage};
use std::path::{Path, PathBuf};

/// Why a picture did not reach its file.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    #[error("{0} already exists (pass --force to replace it)")]
    Exists(PathBuf),
    #[error("cannot write PNG: {source}: {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode PNG: {source}: {path}")]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Writes `image` as an 8-bit RGBA PNG; an existing file is replaced only with `overwrite`.
pub fn save_png(image: &RgbaImage, path: &Path, overwrite: bool) -> Result<(), PngError> {
    use image::ImageEncoder;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        // Atomic "create only if absent": no window between a check and the write.
        options.create_new(true);
    }
    let file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            PngError::Exists(path.to_path_buf())
        } else {
            PngError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let writer = std::io::BufWriter::new(file);
    image::codecs::png::PngEncoder::new(writer)
        .write_image(
            &image.pixels,
            image.width,
            image.height,
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|source| PngError::Encode {
            path: path.to_path_buf(),
            source,
        })
}

/// Raycasts one frame offscreen at `size` and reads it back.
pub fn render_image(
    ctx: &GpuContext,
    raycaster: &mut Raycaster,
    params: &RaycastParams<'_>,
    size: [u32; 2],
) -> Result<RgbaImage, RenderError> {
    if raycaster.target_format() != OffscreenTarget::COLOR_FORMAT {
        return Err(RenderError::Device(format!(
            "the raycaster targets {:?}, offscreen pictures are {:?}",
            raycaster.target_format(),
            OffscreenTarget::COLOR_FORMAT
        )));
    }
    let target = OffscreenTarget::new(ctx, size[0], size[1])?;
    raycaster.render(&ctx.device, &ctx.queue, &target.color_view, size, params);
    target.read_rgba(ctx)
}

/// [`render_image`] then [`save_png`]; returns the picture too.
pub fn render_to_png(
    ctx: &GpuContext,
    raycaster: &mut Raycaster,
    params: &RaycastParams<'_>,
    size: [u32; 2],
    path: &Path,
    overwrite: bool,
) -> Result<RgbaImage, PngError> {
    if !overwrite && path.exists() {
        // Fail before spending a render on it; save_png checks again atomically.
        return Err(PngError::Exists(path.to_path_buf()));
    }
    let image = render_image(ctx, raycaster, params, size)?;
    save_png(&image, path, overwrite)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_kept_unless_overwrite_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.png");
        let image = RgbaImage {
            width: 2,
            height: 1,
            pixels: vec![255, 0, 0, 255, 0, 0, 255, 128],
        };
        save_png(&image, &path, false).unwrap();
        let before = std::fs::read(&path).unwrap();
        let other = RgbaImage {
            pixels: vec![0; 8],
            ..image.clone()
        };
        assert!(matches!(
            save_png(&other, &path, false),
            Err(PngError::Exists(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        save_png(&other, &path, true).unwrap();
        let back = image::open(&path).unwrap().to_rgba8();
        assert_eq!(back.into_raw(), other.pixels);
        let decoded = image::load_from_memory(&before).unwrap().to_rgba8();
        assert_eq!(decoded.into_raw(), image.pixels);
    }
}
