//! `ferry export`: a bundle as an oci-archive, a docker-archive or an ext4 image.

use std::path::PathBuf;

use clap::{ArgGroup, Args};

use ferry::export::ext4::{Size, ext4_image};
use ferry::export::{docker_archive, oci_archive};
use ferry::platform::Platform;
use ferry::store::Layout;

use super::{Exit, Failure, output};

/// Write a bundle as an oci-archive (`.tar`, `.tar.zst`), a docker-archive (for `docker load`
/// and `podman load`), or an ext4 filesystem image ready for a volume or snapshot.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("format").required(true).args(["oci_archive", "docker_archive", "ext4"])))]
#[command(after_help = "Examples:
  ferry export ./bundle --oci-archive images.tar.zst
  ferry export ./bundle --docker-archive images.tar --platform linux/arm64
  ferry export ./bundle --ext4 preload.img --label preload")]
pub struct ExportArgs {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// Write an oci-archive (zstd-compressed when the name ends in .zst). Deterministic.
    #[arg(long, value_name = "OUT.tar")]
    pub oci_archive: Option<PathBuf>,
    /// Write a docker-archive of one platform per image. Deterministic.
    #[arg(long, value_name = "OUT.tar")]
    pub docker_archive: Option<PathBuf>,
    /// Write an ext4 filesystem image holding the bundle (mkfs.ext4 -d, checked by e2fsck).
    #[arg(long, value_name = "OUT.img")]
    pub ext4: Option<PathBuf>,
    /// The ext4 image's size: `auto` (the bundle plus headroom) or a size (`2G`, `512M`).
    #[arg(long, default_value = "auto", value_parser = parse_size, requires = "ext4")]
    pub size: Size,
    /// The ext4 filesystem label (16 characters at most).
    #[arg(long, default_value = "ferry-bundle", requires = "ext4")]
    pub label: String,
    /// The platform of a docker-archive (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", requires = "docker_archive")]
    pub platform: Option<Platform>,
}

fn parse_size(s: &str) -> Result<Size, String> {
    if s == "auto" {
        return Ok(Size::Auto);
    }
    let t = s.trim().trim_end_matches(['b', 'B']).trim_end_matches('i');
    let (num, shift) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (auto, 512M, 2G, …)"))?;
    Ok(Size::Bytes((n * (1u64 << shift) as f64) as u64))
}

/// Runs `ferry export`.
pub fn run(args: ExportArgs) -> Result<Exit, Failure> {
    let layout = Layout::open_read(&args.bundle).map_err(|e| e.to_string())?;
    let marker = ferry::delta::Marker::read(&args.bundle).map_err(|e| e.to_string())?;
    if marker.is_some() && args.oci_archive.is_none() {
        super::delta_args::refuse_delta(
            &args.bundle,
            "export it as a docker-archive or ext4 image",
            "a delta travels as --oci-archive (or as the folder itself)",
        )?;
    }
    if let Some(out) = &args.oci_archive {
        match &marker {
            Some(m) => ferry::delta::verify::export_delta(&layout, m, out),
            None => oci_archive(&layout, out),
        }
        .map_err(|e| e.to_string())?;
        eprintln!(
            "wrote {} ({})",
            out.display(),
            output::bytes(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
        );
    }
    if let Some(out) = &args.docker_archive {
        let platform = args.platform.clone().unwrap_or_else(Platform::host);
        let skipped = docker_archive(&layout, out, &platform).map_err(|e| e.to_string())?;
        for s in &skipped {
            output::warning(s);
        }
        eprintln!("wrote {} for {platform}", out.display());
    }
    if let Some(out) = &args.ext4 {
        let size = ext4_image(&layout, out, args.size, &args.label).map_err(|e| match e {
            ferry::export::ExportError::Usage(m) => Failure::usage(m),
            other => Failure::from(other.to_string()),
        })?;
        eprintln!(
            "wrote {} ({} ext4, label {}, checked with e2fsck)",
            out.display(),
            output::bytes(size),
            args.label
        );
    }
    Ok(Exit::Ok)
}
