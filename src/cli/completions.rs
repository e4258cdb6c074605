//! `ferry completions`, `ferry version`, and the hidden `ferry man` that `cargo xtask man` runs:
//! what shells, packagers and scripts ask of a command-line tool.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::{Cli, Exit, Failure, output};
use ferry::error::{Kind, ResultExt};

/// Print a shell completion script on stdout.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry completions bash > /etc/bash_completion.d/ferry
  ferry completions zsh > \"${fpath[1]}/_ferry\"
  ferry completions fish > ~/.config/fish/completions/ferry.fish")]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Print ferry's version.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Write the man pages (ferry.1 and one per subcommand) into a folder.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The folder to write into (created when missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// Runs `ferry completions`.
pub fn completions(args: CompletionsArgs) -> Result<Exit, Failure> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "ferry", &mut std::io::stdout());
    Ok(Exit::Ok)
}

/// Runs `ferry version`.
pub fn version(args: VersionArgs) -> Result<Exit, Failure> {
    let version = env!("CARGO_PKG_VERSION");
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "ferry": version,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        }));
    } else {
        println!("ferry {version}");
    }
    Ok(Exit::Ok)
}

/// Runs `ferry man`.
pub fn man(args: ManArgs) -> Result<Exit, Failure> {
    let cmd = Cli::command();
    std::fs::create_dir_all(&args.out).context(Kind::Configuration, || {
        format!("cannot create {}", args.out.display())
    })?;
    clap_mangen::generate_to(cmd, &args.out).context(Kind::Io, || {
        format!("cannot write man pages into {}", args.out.display())
    })?;
    eprintln!("wrote man pages into {}", args.out.display());
    Ok(Exit::Ok)
}
