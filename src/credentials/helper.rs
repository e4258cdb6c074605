//! The docker-credential-helpers protocol: `docker-credential-NAME get|store|erase`, JSON on
//! stdin and stdout. Run by ferry itself so that a helper failing before it reads its input
//! still reports its own stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::{Credential, CredentialError};

/// Runs `docker-credential-NAME ACTION` with `input` on stdin; returns stdout, or the helper's
/// words (stderr, else stdout) when it fails.
fn run(name: &str, action: &str, input: &[u8]) -> Result<Result<Vec<u8>, String>, CredentialError> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CredentialError::new(format!("cannot run {program}: {e}"))
                .with_hint("is it installed and on PATH?")
        })?;
    // A helper that fails early may not read its input: a broken pipe here is not the story,
    // its exit status and stderr are.
    let _ = child.stdin.take().expect("stdin is piped").write_all(input);
    let out = child
        .wait_with_output()
        .map_err(|e| CredentialError::new(format!("{program} {action}: {e}")))?;
    if out.status.success() {
        return Ok(Ok(out.stdout));
    }
    let said = if out.stderr.iter().all(u8::is_ascii_whitespace) {
        &out.stdout
    } else {
        &out.stderr
    };
    Ok(Err(String::from_utf8_lossy(said).trim().to_owned()))
}

/// `get`: the credentials a helper holds for `server`, `None` when it has none.
pub fn get(name: &str, server: &str) -> Result<Option<Credential>, CredentialError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Response {
        username: String,
        secret: String,
    }
    match run(name, "get", server.as_bytes())? {
        Ok(stdout) => {
            let r: Response = serde_json::from_slice(&stdout).map_err(|_| {
                CredentialError::new(format!("docker-credential-{name} get answered something that is not its JSON for {server}"))
            })?;
            // The protocol's way of returning an identity token.
            Ok(Some(if r.username == "<token>" {
                Credential::IdentityToken(r.secret)
            } else {
                Credential::Basic {
                    username: r.username,
                    password: r.secret,
                }
            }))
        }
        Err(said) if said.contains("credentials not found") => Ok(None),
        Err(said) => Err(CredentialError::new(format!(
            "credential helper docker-credential-{name} failed for {server}: {said}"
        ))),
    }
}

/// `store`: saves credentials in the helper.
pub fn store(
    name: &str,
    server: &str,
    username: &str,
    secret: &str,
) -> Result<(), CredentialError> {
    let input = serde_json::json!({ "ServerURL": server, "Username": username, "Secret": secret });
    match run(name, "store", input.to_string().as_bytes())? {
        Ok(_) => Ok(()),
        Err(said) => Err(CredentialError::new(format!(
            "docker-credential-{name} store failed: {said}"
        ))),
    }
}

/// `erase`: removes the helper's credentials for `server`.
pub fn erase(name: &str, server: &str) -> Result<(), CredentialError> {
    match run(name, "erase", server.as_bytes())? {
        Ok(_) => Ok(()),
        Err(said) if said.contains("credentials not found") => Ok(()),
        Err(said) => Err(CredentialError::new(format!(
            "docker-credential-{name} erase failed: {said}"
        ))),
    }
}
