//! `ferry completions` and `ferry version`: what shells and scripts ask of a command-line
//! tool (the man pages: man.rs).

use clap::{Args, CommandFactory};

use super::stdout::outln;
use super::{Cli, Exit, Failure, output};

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

/// Runs `ferry completions`.
pub fn completions(args: CompletionsArgs) -> Result<Exit, Failure> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ferry", &mut script);
    super::stdout::write_bytes(&script);
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
            // Go's spelling (amd64, arm64), as image platforms and every message use.
            "arch": ferry::platform::Platform::host().architecture(),
        }));
    } else {
        outln!("ferry {version}");
    }
    Ok(Exit::Ok)
}
