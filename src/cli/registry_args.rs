//! Options for every command that talks to registries: credentials, TLS, mirrors, retries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use ferry::credentials::{Credential, CredentialFiles, CredentialSource, Given};
use ferry::error::{Error, Kind};
use ferry::registry::{ClientOptions, Mirrors, Registries, RetryPolicy, TlsOptions};
use ferry::report::Reporter;

use super::Failure;

/// `--creds USER[:PASSWORD]` as typed. Its Debug never shows the password, and clap never
/// quotes it back (no value is refused while parsing).
#[derive(Clone)]
pub struct Creds(String);

impl std::str::FromStr for Creds {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Creds, Self::Err> {
        Ok(Creds(s.to_owned()))
    }
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.0.split_once(':').map_or(self.0.as_str(), |(u, _)| u);
        write!(f, "Creds({user}:****)")
    }
}

impl Creds {
    /// The credential: `USER:PASSWORD` split at the first colon (user names have none, as
    /// with skopeo); `USER` alone asks for the password on the terminal.
    pub fn credential(&self) -> Result<Credential, Failure> {
        let (username, password) = match self.0.split_once(':') {
            Some((u, p)) => (u.to_owned(), p.to_owned()),
            None => {
                let user = self.0.clone();
                let asked = super::login::ask_secret(&format!("Password for {user}: "))?;
                let password = asked.ok_or_else(|| {
                    Failure::usage(format!(
                        "--creds {user}: no password, and no terminal to ask for it"
                    ))
                    .with_hint("pass --creds USER:PASSWORD, or run ferry login first")
                })?;
                (user, password)
            }
        };
        if username.is_empty() || password.is_empty() {
            return Err(Failure::usage(
                "--creds: the user name and the password must not be empty (USER:PASSWORD)",
            ));
        }
        Ok(Credential::Basic { username, password })
    }
}

/// Where registries are and how to reach them: for commands that pull (`bundle`, `lock`).
#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub creds: CredsArg,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub mirrors: MirrorArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// The options of a command that writes to a registry (`push`): no pull mirrors.
#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub creds: CredsArg,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// `--creds` (not for `login`, which takes -u and a password).
#[derive(Debug, Args)]
pub struct CredsArg {
    /// Credentials for every registry this command contacts, ahead of any file: USER:PASSWORD,
    /// or USER alone to be asked for the password on a terminal (as skopeo's --creds). Sent to
    /// each registry of the command's images and mirrors: for several registries with
    /// different accounts, use `ferry login` or --authfile instead.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<Creds>,
}

/// Where credentials are read and whom to trust: the options `login` takes too.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// Allow plain HTTP or unverified TLS for this registry (`host[:port]`; repeatable).
    /// Loopback registries fall back to HTTP without it.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,

    /// Read credentials from this file only: docker's config.json, podman's auth.json, or a
    /// Kubernetes kubernetes.io/dockerconfigjson Secret (JSON or YAML).
    #[arg(long, value_name = "PATH", env = "FERRY_AUTHFILE")]
    pub authfile: Option<PathBuf>,

    /// Trust this CA certificate (PEM) for every registry (repeatable).
    #[arg(long = "ca-file", value_name = "PATH")]
    pub ca_files: Vec<PathBuf>,

    /// Also look for per-registry TLS folders (DIR/HOST:PORT/ca.crt, client.cert, client.key)
    /// here, after /etc/containers/certs.d and /etc/docker/certs.d (repeatable).
    #[arg(long = "cert-dir", value_name = "DIR")]
    pub cert_dirs: Vec<PathBuf>,
}

/// Mirrors to pull through.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Pull through a mirror first: `docker.io=mirror.example:5000` (repeatable, tried in
    /// order, falling back to the source). The bundle keeps the original names.
    #[arg(long = "mirror", value_name = "SOURCE=MIRROR", value_parser = MirrorFlag)]
    pub mirrors: Vec<String>,

    /// A containers registries.conf whose [[registry.mirror]] entries to use. Default:
    /// $CONTAINERS_REGISTRIES_CONF, else /etc/containers/registries.conf when present.
    #[arg(long, value_name = "PATH")]
    pub registries_conf: Option<PathBuf>,
}

/// How hard to push on a registry, and when to give up.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Requests in flight to one registry at once.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs_per_registry: u16,

    /// Failed attempts in a row before a request gives up.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,

    /// Cut and retry a connection that delivers no bytes for this long.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub stall_timeout: Duration,

    /// How long the first attempt of a request waits for the response to begin; it doubles
    /// with each retry, up to 5 min (a registry slow to start answering gets there).
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub response_timeout: Duration,

    /// Cut and retry a download slower than this many bytes per second, averaged over the
    /// --stall-timeout (like curl's --speed-limit); 0 turns the check off.
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = 1024)]
    pub min_rate: u64,

    /// Give up on everything still running after this long (e.g. `2h`). Default: no limit.
    #[arg(long, value_parser = positive_duration)]
    pub timeout: Option<Duration>,
}

/// `--stall-timeout`, `--response-timeout`, `--timeout`: a duration above zero (zero would
/// cut every connection, or the whole run, at once).
pub(super) fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than 0 (e.g. 30s)".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// `--mirror SOURCE=MIRROR`, checked while the command line is parsed (a usage error, before
/// anything is written). Its own message: clap's would quote the value, password and all.
#[derive(Clone)]
struct MirrorFlag;

impl clap::builder::TypedValueParser for MirrorFlag {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let fail = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{message}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| fail("--mirror: not UTF-8".into()))?;
        Mirrors::default()
            .add_flag(text)
            .map_err(|e| fail(e.to_string()))?;
        Ok(text.to_owned())
    }
}

impl MirrorArgs {
    /// The mirrors from --mirror and the registries.conf in force.
    fn mirrors(&self) -> Result<Mirrors, Failure> {
        let mut m = Mirrors::default();
        for spec in &self.mirrors {
            m.add_flag(spec)?;
        }
        let conf = self.registries_conf.clone().or_else(|| {
            std::env::var_os("CONTAINERS_REGISTRIES_CONF")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        match conf {
            Some(path) => m.add_registries_conf(&path)?,
            None => {
                let system = PathBuf::from("/etc/containers/registries.conf");
                if system.is_file() {
                    m.add_registries_conf(&system).map_err(|e| {
                        Failure::from(e).with_hint("pass --registries-conf with a valid file")
                    })?;
                }
            }
        }
        Ok(m)
    }
}

impl TransferArgs {
    /// The values a command without these flags (`login`) uses: clap's defaults, so that
    /// they are written once.
    pub fn defaults() -> TransferArgs {
        use clap::{FromArgMatches, Parser};
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            transfer: TransferArgs,
        }
        let matches = <Only as clap::CommandFactory>::command().get_matches_from(["ferry"]);
        Only::from_arg_matches(&matches)
            .expect("the defaults parse")
            .transfer
    }
}

impl RegistryArgs {
    /// A registry pool for these options. A bad registries.conf, --ca-file, --cert-dir or
    /// --authfile is local configuration (exit 2), found before anything is written.
    pub fn registries(&self, reporter: Arc<dyn Reporter>) -> Result<Registries, Failure> {
        let credentials = self.access.credentials(&self.creds)?;
        let mirrors = self.mirrors.mirrors()?;
        self.access
            .registries_with(reporter, credentials, mirrors, &self.transfer)
    }
}

impl TargetArgs {
    /// A registry pool for a push: these options, no mirrors.
    pub fn registries(&self, reporter: Arc<dyn Reporter>) -> Result<Registries, Failure> {
        let credentials = self.access.credentials(&self.creds)?;
        self.access
            .registries_with(reporter, credentials, Mirrors::default(), &self.transfer)
    }
}

impl AccessArgs {
    /// The credential source: --creds, else --authfile alone, else the usual files. A file
    /// that cannot be read is local configuration (exit 2).
    pub fn credentials(&self, given: &CredsArg) -> Result<Arc<dyn CredentialSource>, Failure> {
        if let Some(creds) = &given.creds {
            return Ok(Arc::new(Given::new(creds.credential()?, "--creds")));
        }
        let files = CredentialFiles::new(self.authfile.clone())
            .map_err(|e| Error::from(e).with_kind(Kind::Configuration))?;
        Ok(Arc::new(files))
    }

    /// Every --cert-dir must be a folder: a typo would silently trust nothing.
    fn check_cert_dirs(&self) -> Result<(), Failure> {
        for dir in &self.cert_dirs {
            std::fs::read_dir(dir).map_err(|e| {
                Error::context(
                    Kind::Configuration,
                    format!("--cert-dir {}: cannot read the folder", dir.display()),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// The one way a registry pool is made: these credentials and TLS options, `mirrors`, and
    /// `transfer`'s caps and retries (`ferry login` passes the credentials it was given).
    pub fn registries_with(
        &self,
        reporter: Arc<dyn Reporter>,
        credentials: Arc<dyn CredentialSource>,
        mirrors: Mirrors,
        transfer: &TransferArgs,
    ) -> Result<Registries, Failure> {
        self.check_cert_dirs()?;
        let mut tls = TlsOptions {
            ca_files: self.ca_files.clone(),
            ..TlsOptions::default()
        };
        tls.cert_dirs.extend(self.cert_dirs.iter().cloned());
        let options = ClientOptions {
            insecure_registries: self.insecure_registries.clone(),
            connections_per_registry: transfer.jobs_per_registry.into(),
            retry: RetryPolicy {
                retries: transfer.retries,
                stall_timeout: transfer.stall_timeout,
                min_rate: transfer.min_rate,
                attempt_timeout: transfer.response_timeout,
                deadline: transfer.timeout.map(|t| Instant::now() + t),
                base_delay: retry_base_delay(),
                ..RetryPolicy::default()
            },
            tls,
            mirrors,
        };
        Ok(Registries::new(options, credentials, reporter)?)
    }
}

/// The first backoff delay: `FERRY_RETRY_BASE_MS` milliseconds (500 by default), so that the
/// tests of retries do not sleep for seconds; it doubles per retry as ever.
fn retry_base_delay() -> std::time::Duration {
    std::env::var("FERRY_RETRY_BASE_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(
            RetryPolicy::default().base_delay,
            std::time::Duration::from_millis,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_split_at_the_first_colon_and_never_debug_print_the_password() {
        let c: Creds = "me:pa:ss".parse().unwrap();
        assert_eq!(
            c.credential().unwrap(),
            Credential::Basic {
                username: "me".into(),
                password: "pa:ss".into()
            }
        );
        assert_eq!(format!("{c:?}"), "Creds(me:****)");
        let e = "me:".parse::<Creds>().unwrap().credential().unwrap_err();
        assert_eq!(e.exit(), super::super::Exit::Usage);
    }
}
