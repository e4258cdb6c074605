//! `ferry login` / `ferry logout`: store and remove registry credentials as `docker login`
//! does (a credential helper when one is configured, else config.json).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use ferry::credentials::Credential;
use ferry::credentials::login::{self, Stored};
use ferry::error::{Error, Kind, ResultExt};
use ferry::report::Silent;

use super::registry_args::RegistryArgs;
use super::{Exit, Failure};

/// Log in to a registry: check the credentials, then store them where docker would.
#[derive(Args)]
#[command(after_help = "Example:\n  echo \"$TOKEN\" | ferry login ghcr.io -u me --password-stdin")]
pub struct LoginArgs {
    /// The registry (`ghcr.io`, `harbor.corp:8443`, `docker.io`).
    pub registry: String,
    /// User name.
    #[arg(short, long)]
    pub username: String,
    /// Read the password (or token) from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// The password on the command line (visible to other users of the machine: prefer
    /// --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Registry options (--authfile is where the credentials are written).
    #[command(flatten)]
    pub registry_args: RegistryArgs,
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
    /// The credential file to edit (default: $DOCKER_CONFIG/config.json).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
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
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context(Kind::Usage, || "cannot read the password from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => {
            return Err(Failure::usage(
                "no password: pass --password-stdin and pipe it in",
            ));
        }
    };
    if password.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    let credential = Credential::Basic {
        username: args.username.clone(),
        password: password.clone(),
    };
    let registries = args.registry_args.registries(Arc::new(Silent))?;
    registries
        .verify_login(&registry, &credential)
        .await
        .map_err(|e| Error::from(e).wrap(format!("login to {registry} failed")))?;
    let stored = login::store(
        &registry,
        &args.username,
        &password,
        args.registry_args.authfile.as_deref(),
    )?;
    match stored {
        Stored::Helper(h) => eprintln!("Login Succeeded (credentials stored with {h})"),
        Stored::File(p) => eprintln!("Login Succeeded (credentials stored in {})", p.display()),
    }
    Ok(Exit::Ok)
}

/// Runs `ferry logout`.
pub fn logout(args: LogoutArgs) -> Result<Exit, Failure> {
    let registry = registry_name(&args.registry);
    let removed = login::erase(&registry, args.authfile.as_deref())?;
    if removed {
        eprintln!("Removed login credentials for {registry}");
    } else {
        eprintln!("Not logged in to {registry}");
    }
    Ok(Exit::Ok)
}
