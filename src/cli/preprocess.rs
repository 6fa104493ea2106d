//! `fuseprint preprocess OP IN -o OUT [options]` and `fuseprint bench preprocess`.

use crate::jobs::JobContext;
use crate::preprocess::denoise::{self, DenoiseMethod, DenoisePreset};
use crate::preprocess::{metrics, phantom};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchPreprocessArgs {
    /// Phantom size (i, j, k), 1 mm isotropic voxels.
    #[arg(long, num_args = 3, default_values_t = [256, 256, 200])]
    pub dims: Vec<usize>,
    /// Noise σ in HU.
    #[arg(long, default_value_t = 20.0)]
    pub noise: f32,
    /// Only these methods (default: all).
    #[arg(long)]
    pub methods: Vec<String>,
}

/// Times each denoiser on a noisy CT phantom and reports error inside the body vs the clean image.
pub fn bench(args: BenchPreprocessArgs) -> anyhow::Result<()> {
    let dims = match args.dims.as_slice() {
        [a, b, c] => [*a, *b, *c],
        _ => anyhow::bail!("--dims needs three numbers"),
    };
    let ph = phantom::ct_torso(dims, [1.0; 3]);
    let noisy = phantom::add_gaussian_noise(&ph.clean, args.noise, 7);
    let body = Some(ph.body.as_slice());
    let range = 2000.0;
    let ctx = JobContext::detached();
    let edge_clean = body_edge_mm(&ph.clean);
    println!(
        "phantom {}x{}x{} @1 mm, noise σ {} HU, {} rayon threads",
        dims[0],
        dims[1],
        dims[2],
        args.noise,
        rayon::current_num_threads()
    );
    println!(
        "{:<12} {:>8} {:>9} {:>8} {:>7} {:>10}",
        "method", "time_s", "RMSE_HU", "PSNR_dB", "SSIM", "edge_mm"
    );
    let report = |name: &str, secs: f64, out: &crate::volume::Volume<f32>| {
        let e = metrics::rmse(out, &ph.clean, body);
        println!(
            "{:<12} {:>8.2} {:>9.2} {:>8.2} {:>7.4} {:>10.3}",
            name,
            secs,
            e,
            metrics::psnr(e, range),
            metrics::ssim(&ph.clean, out, body, range),
            body_edge_mm(out) - edge_clean
        );
    };
    report("noisy", 0.0, &noisy);
    let names = if args.methods.is_empty() {
        vec!["gaussian", "median", "bilateral", "curvature", "nlm"]
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        args.methods.clone()
    };
    for name in names {
        let Some(method) = DenoiseMethod::preset(&name, DenoisePreset::Ct) else {
            anyhow::bail!("unknown method {name}");
        };
        let t = Instant::now();
        let out = denoise::denoise(&noisy, &method, &ctx)?;
        report(&name, t.elapsed().as_secs_f64(), &out);
    }
    Ok(())
}

/// Mean position (mm along +i from the centre) where the mid-row profile of each slice crosses
/// halfway from fat (−100) to air (−1000): the body outline.
fn body_edge_mm(v: &crate::volume::Volume<f32>) -> f64 {
    let [nx, ny, nz] = v.dims();
    let sp = v.geometry().spacing_mm[0];
    let (mut sum, mut n) = (0.0, 0usize);
    for k in 0..nz {
        for j in [ny / 2 - 1, ny / 2, ny / 2 + 1] {
            let profile: Vec<f32> = (nx / 2..nx).map(|i| v.at(i, j, k)).collect();
            // Start the search inside the fat shell: the last crossing outwards is the skin.
            let start = profile.len().saturating_sub(profile.len() / 5);
            if let Some(x) = metrics::half_crossing(&profile[start..], -100.0, -1000.0) {
                sum += (x + start as f64) * sp;
                n += 1;
            }
        }
    }
    sum / n.max(1) as f64
}
