//! The command line: argument parsing, and the only code that prints or draws.

mod apply;
mod binaries;
mod bindelta;
mod bundle;
mod bundle_lock;
mod charts;
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
mod man;
mod output;
mod pins;
mod preload;
mod progress;
mod push;
mod registry_args;
mod restore;
mod restore_from;
mod rm;
mod serve;
mod signals;
mod signatures;
mod snapshot;
mod source_arg;
mod sources;
mod stdout;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry::error::{Category, Error, Kind};

/// Exit codes: 0 everything worked, 1 something failed, 2 usage error or local configuration,
/// 130 interrupted. A [`Failure`]'s code follows from its error's [`Category`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every image or check succeeded.
    Ok = 0,
    /// Some image failed, or verification found problems.
    Failed = 1,
    /// The command line or a local configuration file was wrong.
    Usage = 2,
    /// Stopped by Ctrl-C or SIGTERM; a re-run continues.
    Interrupted = 130,
}

/// Why a command stopped: the typed error, whose kind decides the exit code.
#[derive(Debug)]
pub struct Failure(pub ferry::error::Error);

impl Failure {
    /// Bad input on the command line (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure(Error::msg(Kind::Usage, message))
    }

    /// A local file or setting named by the user is missing or invalid (exit 2).
    pub fn config(message: impl Into<String>) -> Failure {
        Failure(Error::msg(Kind::Configuration, message))
    }

    /// An error about something the user named (a file, a folder, an address): local
    /// configuration (exit 2), whatever kind the library gave it.
    pub fn local(error: impl Into<Error>) -> Failure {
        let e = error.into();
        match e.category() {
            Category::Usage => Failure(e),
            _ => Failure(e.with_kind(Kind::Configuration)),
        }
    }

    /// Something failed that is not the command line's fault (exit 1).
    pub fn failed(kind: Kind, message: impl Into<String>) -> Failure {
        Failure(Error::msg(kind, message))
    }

    /// Adds (or replaces) the hint.
    pub fn with_hint(self, hint: impl Into<String>) -> Failure {
        Failure(self.0.with_hint(hint))
    }

    /// The exit code this failure maps to.
    pub fn exit(&self) -> Exit {
        Exit::from(self.0.category())
    }
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(error.into())
    }
}

impl From<Category> for Exit {
    fn from(c: Category) -> Exit {
        match c {
            Category::Usage => Exit::Usage,
            Category::Failed => Exit::Failed,
            Category::Interrupted => Exit::Interrupted,
        }
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
    /// Diagnostic logs on stderr: requests, retries, auth scopes, timings (-v debug; -vv adds
    /// response headers; RUST_LOG=ferry=debug works too). Secrets and query strings are never
    /// shown.
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
    Man(man::ManArgs),
    Diff(diff::DiffArgs),
    Apply(apply::ApplyArgs),
    Rm(rm::RmArgs),
    Gc(gc::GcArgs),
    PreloadManifests(preload::PreloadArgs),
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    output::init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            let exit = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            // A command line clap refuses still owes `--json` its one object.
            if exit != Exit::Ok && std::env::args().skip(1).any(|a| a == "--json") {
                let error = Error::msg(Kind::Usage, e.kind().to_string());
                output::finish_json(true, false, Some(&error));
            }
            return ExitCode::from(exit as u8);
        }
    };
    log::init(cli.verbose);
    let json = cli.command.wants_json();
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
        Command::Man(args) => man::man(args),
        Command::Diff(args) => diff::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Gc(args) => gc::run(args),
        Command::PreloadManifests(args) => preload::run(args),
    };
    match result {
        Ok(exit) => {
            output::finish_json(json, exit == Exit::Ok, None);
            // Data that could not be written (a full disk behind `>`) is no success.
            let exit = match exit {
                Exit::Ok if stdout::failed() => Exit::Failed,
                exit => exit,
            };
            ExitCode::from(exit as u8)
        }
        Err(failure) => {
            output::failure(&failure.0);
            output::finish_json(json, false, Some(&failure.0));
            ExitCode::from(failure.exit() as u8)
        }
    }
}

impl Command {
    /// Whether `--json` was asked for: the run then prints exactly one JSON object, whose
    /// `ok` agrees with the exit code (see [`output::finish_json`]).
    fn wants_json(&self) -> bool {
        match self {
            Command::Bundle(a) => a.json,
            Command::Images(a) => a.json,
            Command::Ls(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Restore(a) => a.json,
            Command::Push(a) => a.json,
            Command::Snapshot(a) => a.json,
            Command::Version(a) => a.json,
            Command::Diff(a) => a.json,
            Command::Apply(a) => a.json,
            Command::Rm(a) => a.json,
            Command::Gc(a) => a.json,
            Command::Lock(_)
            | Command::Export(_)
            | Command::Serve(_)
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::PreloadManifests(_) => false,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_follows_the_error_kind() {
        assert_eq!(Failure::usage("x").exit(), Exit::Usage);
        assert_eq!(Failure::config("x").exit(), Exit::Usage);
        assert_eq!(Failure::failed(Kind::TagNotFound, "x").exit(), Exit::Failed);
        assert_eq!(
            Failure::failed(Kind::Interrupted, "x").exit(),
            Exit::Interrupted
        );
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let bundle_problem = Error::context(Kind::Bundle, "index.json", io);
        assert_eq!(Failure::from(bundle_problem.clone()).exit(), Exit::Failed);
        assert_eq!(Failure::local(bundle_problem).exit(), Exit::Usage);
        // A folder in use by another ferry process is a local condition: exit 2.
        let e = ferry::store::StoreError::Busy("/b".into());
        let f = Failure::from(e);
        assert_eq!(f.exit(), Exit::Usage);
        assert_eq!(
            f.0.hint(),
            Some("wait for it to finish, or use another -o folder")
        );
    }
}
