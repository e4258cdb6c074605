//! `ferry login` / `ferry logout`: store and remove registry credentials as `podman login`
//! does, in the file `ferry bundle` reads first (through the credential helper it configures,
//! else in its `auths`); the password from a flag, stdin, or the terminal without echo.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use ferry::credentials::login::{self, Stored};
use ferry::credentials::{Anonymous, Credential};
use ferry::error::{Error, Kind, ResultExt};
use ferry::report::Silent;

use super::registry_args::{AccessArgs, TransferArgs};
use super::{Exit, Failure, output};
use ferry::registry::Mirrors;

/// Log in to a registry: check the credentials, then store them where ferry reads first.
#[derive(Args)]
#[command(
    after_help = "Credentials are stored in --authfile, else $REGISTRY_AUTH_FILE, else
$XDG_RUNTIME_DIR/containers/auth.json, else ~/.config/containers/auth.json: the first file
`ferry bundle` reads (through the credential helper that file configures, if any).

Examples:
  ferry login ghcr.io -u me                      # asks for the password on a terminal
  echo \"$TOKEN\" | ferry login ghcr.io -u me --password-stdin"
)]
pub struct LoginArgs {
    /// The registry (`ghcr.io`, `harbor.corp:8443`, `docker.io`).
    pub registry: String,
    /// User name (asked for on a terminal when not given).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password (or token) from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// The password on the command line (visible to other users of the machine: prefer
    /// --password-stdin, or the terminal prompt).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Registry options (--authfile is where the credentials are written; it is created, with
    /// its folder, when missing).
    #[command(flatten)]
    pub registry_args: AccessArgs,
}

impl std::fmt::Debug for LoginArgs {
    // The password must not reach a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginArgs")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .finish_non_exhaustive()
    }
}

/// Log out of a registry: remove its stored credentials.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry.
    pub registry: String,
    /// The credential file to edit (default: the one `ferry login` writes, see its --help).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

/// Whether ferry may ask: stdin and stderr are both terminals (a pipeline is never prompted).
fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks for a secret on the terminal without echo (`prompt` on stderr); `None` when there is
/// no terminal to ask on.
pub(super) fn ask_secret(prompt: &str) -> Result<Option<String>, Failure> {
    ask(prompt, console::Term::read_secure_line)
}

/// Asks for a line (echoed) on the terminal; `None` without one.
fn ask_line(prompt: &str) -> Result<Option<String>, Failure> {
    Ok(ask(prompt, console::Term::read_line)?.map(|s| s.trim().to_owned()))
}

/// Writes `prompt` on the terminal and reads the answer with `read`; `None` without a terminal.
fn ask(
    prompt: &str,
    read: fn(&console::Term) -> std::io::Result<String>,
) -> Result<Option<String>, Failure> {
    if !can_ask() {
        return Ok(None);
    }
    let term = console::Term::stderr();
    term.write_str(prompt)
        .and_then(|()| read(&term))
        .map(Some)
        .map_err(|e| Failure::usage(format!("cannot read from the terminal: {e}")))
}

/// Where `ferry login`'s password comes from.
#[derive(Debug, PartialEq, Eq)]
enum PasswordFrom {
    /// `--password`.
    Flag,
    /// `--password-stdin`.
    Stdin,
    /// The terminal, without echo.
    Prompt,
}

/// The password's source, or the usage error when there is none (no flag, no terminal).
fn password_from(flag: bool, stdin: bool, terminal: bool) -> Result<PasswordFrom, Failure> {
    match (flag, stdin, terminal) {
        (true, _, _) => Ok(PasswordFrom::Flag),
        (false, true, _) => Ok(PasswordFrom::Stdin),
        (false, false, true) => Ok(PasswordFrom::Prompt),
        (false, false, false) => Err(Failure::usage("no password, and no terminal to ask for it")
            .with_hint(
                "pipe it in with --password-stdin \
             (echo \"$TOKEN\" | ferry login REGISTRY -u USER --password-stdin)",
            )),
    }
}

/// A credential file that cannot be used is the user's to fix (exit 2); its hint stays one.
fn credential_usage(e: ferry::credentials::CredentialError) -> Failure {
    Failure::from(Error::from(e).with_kind(Kind::Usage))
}

/// The user name: `-u`, else asked on the terminal.
fn username(args: &LoginArgs) -> Result<String, Failure> {
    let missing = || {
        Failure::usage(
            "no user name: pass -u USER (with --password-stdin, stdin holds the password only)",
        )
    };
    let name = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => return Err(missing()),
        None => ask_line("Username: ")?.ok_or_else(missing)?,
    };
    if name.is_empty() {
        return Err(missing());
    }
    Ok(name)
}

/// The password from `--password`, stdin, or the terminal.
fn password(args: &LoginArgs) -> Result<String, Failure> {
    let password = match password_from(args.password.is_some(), args.password_stdin, can_ask())? {
        PasswordFrom::Flag => args.password.clone().unwrap_or_default(),
        PasswordFrom::Stdin => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context(Kind::Usage, || "cannot read the password from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_owned()
        }
        PasswordFrom::Prompt => ask_secret("Password: ")?.unwrap_or_default(),
    };
    if password.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    Ok(password)
}

/// `docker.io`'s other spellings, and scheme prefixes people paste, to a registry name.
fn registry_name(arg: &str) -> String {
    let s = arg
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    ferry::docker_hub::canonical(s).to_owned()
}

/// Runs `ferry login`.
pub async fn login(args: LoginArgs) -> Result<Exit, Failure> {
    let registry = registry_name(&args.registry);
    let authfile = args.registry_args.authfile.as_deref();
    // Where the credentials will go, known (and a bad path refused) before asking for them.
    let target = login::login_file(authfile).map_err(credential_usage)?;
    let username = username(&args)?;
    let password = password(&args)?;
    let credential = Credential::Basic {
        username: username.clone(),
        password: password.clone(),
    };
    // The credentials being checked are these, not the files' (--authfile may not exist yet).
    let registries = args.registry_args.registries_with(
        Arc::new(Silent),
        Arc::new(Anonymous),
        Mirrors::default(),
        &TransferArgs::defaults(),
    )?;
    registries
        .verify_login(&registry, &credential)
        .await
        .map_err(|e| Error::from(e).wrap(format!("login to {registry} failed")))?;
    let stored =
        login::store(&registry, &username, &password, Some(&target)).map_err(credential_usage)?;
    match stored {
        Stored::Helper(h) => eprintln!("Login Succeeded (credentials stored with {h})"),
        Stored::File(p) => eprintln!("Login Succeeded (credentials stored in {})", p.display()),
    }
    Ok(Exit::Ok)
}

/// Runs `ferry logout`.
pub fn logout(args: LogoutArgs) -> Result<Exit, Failure> {
    let registry = registry_name(&args.registry);
    let file = login::login_file(args.authfile.as_deref()).map_err(credential_usage)?;
    let removed = login::erase(&registry, Some(&file))?;
    if removed {
        eprintln!(
            "Removed login credentials for {registry} from {}",
            file.display()
        );
    } else {
        eprintln!("Not logged in to {registry} in {}", file.display());
    }
    if args.authfile.is_none() {
        for other in login::entries_elsewhere(&registry, &file) {
            output::warning(&format!(
                "{} still holds credentials for {registry} (ferry reads it too): remove them \
                 there, e.g. with `docker logout {registry}`",
                other.display()
            ));
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_comes_from_a_flag_stdin_or_the_terminal_else_usage() {
        assert_eq!(
            password_from(true, false, false).unwrap(),
            PasswordFrom::Flag
        );
        assert_eq!(
            password_from(false, true, true).unwrap(),
            PasswordFrom::Stdin
        );
        assert_eq!(
            password_from(false, false, true).unwrap(),
            PasswordFrom::Prompt
        );
        let e = password_from(false, false, false).unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert!(e.0.hint().unwrap().contains("--password-stdin"), "{e:?}");
    }

    #[test]
    fn registry_names_as_pasted() {
        assert_eq!(registry_name("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_name("harbor.corp:8443/"), "harbor.corp:8443");
    }
}
