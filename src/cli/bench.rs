//! `fuseprint bench load`: load time and peak memory (see issue 2). Not a test.

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchWhich,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchWhich {
    /// DICOM series vs .nii.gz load time and peak memory for a synthetic CT.
    Load(LoadArgs),
    /// Rigid and deformable registration of a synthetic CT/MR phantom: time and TRE.
    Register(super::register::BenchRegisterArgs),
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Folder for the generated data (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Number of 512×512 slices.
    #[arg(long, default_value_t = 400)]
    pub slices: usize,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which {
        BenchWhich::Load(_a) => anyhow::bail!("not yet"),
        BenchWhich::Register(a) => super::register::bench(a),
    }
}
