//! The command line: argument parsing, and the only code that prints or draws.

mod apply;
mod bundle;
mod completions;
mod delta_args;
mod diff;
mod export;
mod gc;
mod images;
mod lock;
mod log;
mod login;
mod ls;
mod output;
mod progress;
mod push;
mod registry_args;
mod restore;
mod rm;
mod serve;
mod signals;
mod signatures;
mod snapshot;
mod sources;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes: 0 everything worked, 1 something failed, 2 usage error, 130 interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every image or check succeeded.
    Ok = 0,
    /// Some image failed, or verification found problems.
    Failed = 1,
    /// The command line was wrong.
    Usage = 2,
    /// Stopped by Ctrl-C or SIGTERM; a re-run continues.
    Interrupted = 130,
}

/// Why a command stopped, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// The message (with any `hint:` lines).
    pub message: String,
}

impl Failure {
    /// Bad input on the command line (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            exit: Exit::Failed,
            message,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::from(message.to_owned())
    }
}

/// ferry: ferry container images across an air gap, no container daemon needed.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about,
    propagate_version = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Diagnostic logs on stderr: requests, retries, auth scopes, timings (-v debug, -vv trace;
    /// RUST_LOG=ferry=debug works too). Secrets and query strings are never shown.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Bundle(bundle::BundleArgs),
    Images(images::ImagesArgs),
    Lock(lock::LockArgs),
    Ls(ls::LsArgs),
    Verify(verify::VerifyArgs),
    Restore(restore::RestoreArgs),
    Export(export::ExportArgs),
    Serve(serve::ServeArgs),
    Push(push::PushArgs),
    Login(login::LoginArgs),
    Logout(login::LogoutArgs),
    Snapshot(snapshot::SnapshotArgs),
    Completions(completions::CompletionsArgs),
    Version(completions::VersionArgs),
    #[command(hide = true)]
    Man(completions::ManArgs),
    Diff(diff::DiffArgs),
    Apply(apply::ApplyArgs),
    Rm(rm::RmArgs),
    Gc(gc::GcArgs),
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    output::init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { 0 });
        }
    };
    log::init(cli.verbose);
    let result = match cli.command {
        Command::Bundle(args) => runtime().block_on(bundle::run(args)),
        Command::Images(args) => runtime().block_on(images::run(args)),
        Command::Lock(args) => runtime().block_on(lock::run(args)),
        Command::Ls(args) => ls::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Restore(args) => restore::run(args),
        Command::Export(args) => export::run(args),
        Command::Serve(args) => runtime().block_on(serve::run(args)),
        Command::Push(args) => runtime().block_on(push::run(args)),
        Command::Login(args) => runtime().block_on(login::login(args)),
        Command::Logout(args) => login::logout(args),
        Command::Snapshot(args) => runtime().block_on(snapshot::run(args)),
        Command::Completions(args) => completions::completions(args),
        Command::Version(args) => completions::version(args),
        Command::Man(args) => completions::man(args),
        Command::Diff(args) => diff::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Gc(args) => gc::run(args),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failure) => {
            output::error(&failure.message);
            ExitCode::from(failure.exit as u8)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}
