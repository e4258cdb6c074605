//! `ferry man --out DIR` (what `cargo xtask man` runs): one page per command, as clap_mangen
//! renders it, with the sections a man page is expected to have and clap does not know of:
//! EXAMPLES (each command's "Examples:" help), EXIT STATUS and ENVIRONMENT.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::{Cli, Exit, Failure};
use ferry::error::{Kind, ResultExt};

/// Write the man pages (ferry.1 and one per subcommand) into a folder.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry man --out /usr/local/share/man/man1 && mandb")]
pub struct ManArgs {
    /// The folder to write into (created when missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// What each exit code means (README: "Exit codes").
const EXIT_STATUS: [(&str, &str); 4] = [
    ("0", "everything asked for worked"),
    (
        "1",
        "an image or a check failed (the others are done and kept): a missing image, a full \
         disk, a --timeout, a corrupt blob, a signature that does not verify",
    ),
    (
        "2",
        "usage or local configuration: a bad flag, reference, platform or list file, a \
         missing --ca-file or --authfile, something that is not a bundle; nothing is contacted \
         or written",
    ),
    (
        "130",
        "interrupted (Ctrl-C or SIGTERM): what finished is kept; run the same command again \
         to continue",
    ),
];

/// The environment ferry itself reads (restore.sh's own variables: `ferry-restore`(1)).
const ENVIRONMENT: [(&str, &str); 9] = [
    (
        "FERRY_AUTHFILE",
        "the credentials file to use, as --authfile",
    ),
    (
        "REGISTRY_AUTH_FILE",
        "podman's auth.json location, read (and written by login) before ~/.docker/config.json",
    ),
    ("DOCKER_CONFIG", "the folder of docker's config.json"),
    (
        "CONTAINERS_REGISTRIES_CONF",
        "a registries.conf whose mirrors to use, as --registries-conf",
    ),
    (
        "CONTAINERD_ADDRESS",
        "containerd's socket for restore (default /run/containerd/containerd.sock)",
    ),
    (
        "FERRY_BINARIES",
        "where bundle --with-binary finds ferry-linux-ARCH, as --binaries",
    ),
    (
        "FERRY_LOG_INTERVAL",
        "seconds between progress lines of bundle, push, export, apply and restore when stderr \
         is not a terminal or with --no-progress (10 by default)",
    ),
    ("RUST_LOG", "log filter, as -v (ferry=debug)"),
    ("NO_COLOR", "when set, no colour on a terminal"),
];

/// restore.sh's variables, on the restore page: a node without ferry reads the page too.
const RESTORE_SH_ENVIRONMENT: [(&str, &str); 5] = [
    ("FERRY_PIN=1", "restore.sh --pin"),
    ("FERRY_RUNTIME", "auto (default), containerd or cri-o"),
    (
        "FERRY_PLATFORM",
        "os/arch[/variant] to import (default: this node's)",
    ),
    (
        "FERRY_CONTAINERS_STORAGE",
        "containers-storage spec for skopeo on CRI-O nodes, e.g. [vfs@/var/lib/x+/run/x]",
    ),
    (
        "FERRY_MIRROR=1",
        "restore.sh --mirror: serve the bundle to the node instead of importing it",
    ),
];

/// Runs `ferry man`.
pub fn man(args: ManArgs) -> Result<Exit, Failure> {
    std::fs::create_dir_all(&args.out).context(Kind::Configuration, || {
        format!("cannot create {}", args.out.display())
    })?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_page(&cmd, &args.out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub, &args.out)?;
    }
    eprintln!("wrote man pages into {}", args.out.display());
    Ok(Exit::Ok)
}

/// One page: clap_mangen's sections, then EXAMPLES, EXIT STATUS, ENVIRONMENT.
fn write_page(cmd: &clap::Command, out: &Path) -> Result<(), Failure> {
    let man = Man::new(cmd.clone());
    let path = out.join(man.get_filename());
    let mut page = Vec::new();
    let rendered = (|| -> std::io::Result<()> {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        if cmd.has_subcommands() {
            man.render_subcommands_section(&mut page)?;
        }
        Ok(())
    })();
    rendered.context(Kind::Io, || format!("cannot render {}", path.display()))?;
    page.extend(extra_sections(cmd).to_roff().into_bytes());
    std::fs::write(&path, &page)
        .context(Kind::Io, || format!("cannot write {}", path.display()))?;
    Ok(())
}

/// EXAMPLES from the command's "Examples:" help (other after-help text as NOTES), then EXIT
/// STATUS and ENVIRONMENT.
fn extra_sections(cmd: &clap::Command) -> Roff {
    let mut roff = Roff::default();
    if let Some(after) = cmd.get_after_help().map(|s| s.to_string()) {
        let (title, body) = match after.strip_prefix("Examples:") {
            Some(examples) => ("EXAMPLES", examples.to_owned()),
            None => ("NOTES", after),
        };
        roff.control("SH", [title]);
        roff.control("nf", []);
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
        }
        roff.control("fi", []);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_STATUS {
        roff.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    let restore = cmd.get_name() == "ferry-restore" || cmd.get_name() == "restore";
    let vars = ENVIRONMENT.iter().chain(
        restore
            .then_some(RESTORE_SH_ENVIRONMENT.iter())
            .into_iter()
            .flatten(),
    );
    for (name, meaning) in vars {
        roff.control("TP", [])
            .text([bold(*name)])
            .text([roman(*meaning)]);
    }
    roff
}
