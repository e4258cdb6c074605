//! `ferry export`: a bundle as an oci-archive, a docker-archive or an ext4 image.

use std::path::PathBuf;

use clap::{ArgGroup, Args};

use ferry::export::ext4::{Size, ext4_image};
use ferry::export::{Target, docker_archive, oci_archive};
use ferry::platform::Platform;
use ferry::store::{BundleSource, Layout};
use tokio_util::sync::CancellationToken;

use super::progress::ProgressArgs;
use super::{Exit, Failure, output};

/// Write a bundle as an oci-archive (`.tar`, `.tar.zst`), a docker-archive (for `docker load`
/// and `podman load`), or an ext4 filesystem image ready for a volume or snapshot.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("format").required(true).args(["oci_archive", "docker_archive", "ext4", "files"])))]
#[command(after_help = "Examples:
  ferry export ./bundle --oci-archive images.tar.zst
  ferry export ./bundle --oci-archive - | ssh node ctr -n k8s.io images import -
  ferry export ./bundle --docker-archive images.tar --platform linux/arm64
  ferry export ./bundle --ext4 preload.img --label preload
  ferry export --files ./files ./bundle")]
pub struct ExportArgs {
    /// The bundle: a folder, or an archive (`.tar`, `.tar.zst`) read in place.
    pub bundle: PathBuf,
    /// Write an oci-archive: the bundle in one file, with its ferry.lock and restore.sh (in the
    /// zstd seekable format when the name ends in .zst; `-`: a tar to stdout). Deterministic.
    #[arg(long, value_name = "OUT.tar")]
    pub oci_archive: Option<PathBuf>,
    /// Write a docker-archive of one platform per image (`-`: to stdout). Deterministic.
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
    /// The platform of a docker-archive (default: this machine's). Checked against GOOS/GOARCH
    /// names, so a typo is refused rather than matching nothing.
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        requires = "docker_archive",
        value_parser = Platform::parse_requested
    )]
    pub platform: Option<Platform>,
    /// Write the files the bundle carries as artifacts (`bundle --add-file`, `oras push`) into
    /// DIR under their titles, each checked against its digest.
    #[arg(long, value_name = "DIR")]
    pub files: Option<PathBuf>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

fn parse_size(s: &str) -> Result<Size, String> {
    if s == "auto" {
        return Ok(Size::Auto);
    }
    parse_bytes(s)
        .map(Size::Bytes)
        .map_err(|_| format!("{s:?} is not a size (auto, 512M, 2G, …)"))
}

/// A size in bytes: a number with an optional unit (`512M`, `2G`, `64MiB`; powers of 1024).
pub(super) fn parse_bytes(s: &str) -> Result<u64, String> {
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
        .map_err(|_| format!("{s:?} is not a size (512M, 2G, …)"))?;
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// Runs `ferry export`.
pub fn run(args: ExportArgs) -> Result<Exit, Failure> {
    let layout = super::source_arg::open_bundle(&args.bundle)?;
    let layout = &*layout;
    let marker = ferry::delta::Marker::of(layout)?;
    if marker.is_some() && (args.docker_archive.is_some() || args.ext4.is_some()) {
        super::delta_args::refuse_delta_in(
            layout,
            "export it as a docker-archive or ext4 image",
            "a delta travels as --oci-archive (or as the folder itself)",
        )?;
    }
    // Outputs are checked before any work: a symlink, folder or device is refused (exit 2).
    let target = |p: &PathBuf| Target::parse(p);
    let (oci, docker, ext4) = (
        args.oci_archive.as_ref().map(target).transpose()?,
        args.docker_archive.as_ref().map(target).transpose()?,
        args.ext4.as_ref().map(target).transpose()?,
    );
    if ext4 == Some(Target::Stdout) {
        return Err(
            Failure::usage("--ext4 -: mkfs.ext4 needs a file, it cannot write to stdout")
                .with_hint("name a file (`--ext4 preload.img`)"),
        );
    }
    // Kept alive for the whole export: its task turns Ctrl-C or SIGTERM into `cancel`, so the
    // export stops, removes its temp file and exits 130.
    let runtime = super::runtime();
    let cancel = CancellationToken::new();
    stop_on_signals(&runtime, cancel.clone())?;
    let quiet = args.progress.quiet;
    if let Some(out) = &oci {
        let progress = args.progress.progress("reading the bundle");
        match &marker {
            Some(m) => ferry::delta::verify::export_delta(layout, m, out, &cancel, &progress),
            None => oci_archive(layout, out, &cancel, &progress),
        }?;
        progress.finish_copy();
        if let (Target::File(path), false) = (out, quiet) {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            eprintln!("wrote {} ({})", path.display(), output::bytes(size));
        }
    }
    if let Some(out) = &docker {
        let platform = args.platform.clone().unwrap_or_else(Platform::host);
        let progress = args.progress.progress("reading the bundle");
        let skipped = docker_archive(layout, out, &platform, &cancel, &progress)?;
        progress.finish_copy();
        for s in &skipped {
            output::warning(s);
        }
        if !quiet {
            eprintln!("wrote {out} for {platform}");
        }
    }
    if let Some(out) = &ext4 {
        // mkfs.ext4 says nothing while it copies: a spinner shows the export is alive.
        let progress = args.progress.progress("mkfs.ext4 is copying the bundle");
        let size = ext4_image(
            &folder_for_ext4(&args.bundle, layout)?,
            out,
            args.size,
            &args.label,
            &cancel,
        )?;
        progress.finish();
        if !quiet {
            eprintln!(
                "wrote {out} ({} ext4, label {}, checked with e2fsck)",
                output::bytes(size),
                args.label
            );
        }
    }
    if let Some(dir) = &args.files {
        let written =
            ferry::artifact::export::export_files(layout, dir).map_err(ferry::error::Error::new)?;
        for f in written.iter().filter(|_| !quiet) {
            eprintln!(
                "wrote {} ({}, from {})",
                f.path.display(),
                output::bytes(f.size),
                f.reference
            );
        }
        if written.is_empty() {
            output::note("the bundle carries no titled files");
        }
    }
    Ok(Exit::Ok)
}

/// mkfs.ext4 copies a folder (e2fsprogs 1.47 on Debian cannot read a tar): an archive is
/// refused rather than unpacked into a temporary copy.
fn folder_for_ext4(bundle: &std::path::Path, source: &dyn BundleSource) -> Result<Layout, Failure> {
    if source.kind().is_archive() {
        return Err(Failure::usage(format!(
            "--ext4 needs a bundle folder: mkfs.ext4 copies a folder, and {} is an archive",
            bundle.display()
        ))
        .with_hint(
            "make the ext4 image from the bundle folder, or unpack the archive into a folder \
             (`mkdir b && tar -xf ARCHIVE -C b`, with `--zstd` for a .tar.zst) and export that",
        ));
    }
    Ok(Layout::open_read(bundle)?)
}

/// Installs the handlers now (before any temp file exists); the first signal cancels, a
/// second one exits at once.
pub(super) fn stop_on_signals(
    runtime: &tokio::runtime::Runtime,
    cancel: CancellationToken,
) -> Result<(), Failure> {
    super::signals::on_each_signal(runtime, move || {
        if cancel.is_cancelled() {
            super::progress::take_off_screen();
            std::process::exit(Exit::Interrupted as i32);
        }
        cancel.cancel();
    })
}
