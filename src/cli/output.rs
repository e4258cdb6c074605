//! Messages on stderr: `error:`, `caused by:`, `warning:` and `hint:` lines, colored only where colors are
//! wanted (a terminal, and no `NO_COLOR`).

use std::io::IsTerminal;

use console::style;
use ferry::error::{Error, Kind};

use super::stdout::outln;

/// Applies `NO_COLOR` (https://no-color.org) and the terminal check once, at start.
pub fn init() {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color || !std::io::stderr().is_terminal() {
        console::set_colors_enabled_stderr(false);
    }
    if no_color || !std::io::stdout().is_terminal() {
        console::set_colors_enabled(false);
    }
}

/// Whether stderr is a terminal, i.e. progress bars make sense.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// What a message may show: no password or signed query ([`ferry::redact`]), and no control
/// character from whatever it quotes ([`ferry::untrusted::printable`], line by line: the
/// message's own line breaks stay, each line continued under its label).
fn shown_lines(message: &str) -> Vec<String> {
    ferry::redact::redact(message)
        .lines()
        .map(|l| ferry::untrusted::printable(l).into_owned())
        .collect()
}

fn print_labelled(label: console::StyledObject<&str>, message: &str) {
    let lines = shown_lines(message);
    let mut lines = lines.iter();
    if let Some(first) = lines.next() {
        eprintln!("{label} {first}");
    }
    for line in lines {
        eprintln!("  {line}");
    }
}

/// Prints `hint: text` on its own line.
pub fn hint(text: &str) {
    let text = shown_lines(text).join(" ");
    eprintln!("{} {text}", style("hint:").for_stderr().cyan().bold());
}

/// Prints a plain line of text that may quote what came from outside (escaped, redacted).
pub fn line(text: &str) {
    for l in shown_lines(text) {
        eprintln!("{l}");
    }
}

/// Prints `error: message`.
pub fn error(message: &str) {
    print_labelled(style("error:").for_stderr().red().bold(), message);
}

/// Prints a typed error: `error: <message>`, `  caused by: <cause>` for each cause in its
/// chain (repeats skipped), then its `hint:` once.
pub fn failure(e: &Error) {
    report_error(None, e);
}

/// [`failure`] for one image: `error: <reference>: <message>`...
pub fn image_failure(reference: &str, e: &Error) {
    report_error(Some(reference), e);
}

/// The failed images of a run, at its end: each error in full, except that a failure of a
/// whole registry (no login, refused TLS, unreachable, rate limited) is shown once for the
/// first image it stopped, then one line naming the others, counted.
pub fn image_failures<'a>(failed: impl IntoIterator<Item = (&'a str, &'a Error)>) {
    let mut seen: Vec<((Kind, String), &str, Vec<&str>)> = Vec::new();
    for (reference, e) in failed {
        let Some(key) = registry_wide(reference, e) else {
            image_failure(reference, e);
            continue;
        };
        match seen.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, others)) => others.push(reference),
            None => {
                image_failure(reference, e);
                seen.push((key, reference, Vec::new()));
            }
        }
    }
    for ((kind, registry), first, others) in seen.iter().filter(|(_, _, o)| !o.is_empty()) {
        error(&format!(
            "{} other image(s) of {registry} failed as {first} did ({kind}): {}",
            others.len(),
            ferry::report::some_of(others, 5)
        ));
    }
}

/// (kind, registry) when the error is about the registry rather than the image.
fn registry_wide(reference: &str, e: &Error) -> Option<(Kind, String)> {
    let wide = matches!(
        e.kind(),
        Kind::Unauthorized
            | Kind::Credentials
            | Kind::Transport
            | Kind::RateLimited
            | Kind::Certificate
    );
    let registry = reference
        .split('/')
        .next()
        .filter(|_| reference.contains('/'))?;
    wide.then(|| (e.kind(), registry.to_owned()))
}

fn report_error(subject: Option<&str>, e: &Error) {
    let chain = e.chain();
    let (first, causes) = chain.split_first().expect("a chain has its error");
    match subject {
        Some(s) => error(&format!("{s}: {first}")),
        None => error(first),
    }
    for cause in causes {
        eprintln!("  caused by: {}", shown_lines(cause).join(" "));
    }
    if let Some(h) = e.hint() {
        hint(h);
    }
}

/// The `"error"` object of every `--json` output: `{"kind", "message", "hint"}`, where `kind`
/// is one of the stable names documented on [`ferry::error::Kind`], `message` the error and its
/// causes joined by `: `, and `hint` what to do (or null).
pub fn error_json(e: &Error) -> serde_json::Value {
    serde_json::json!({
        "kind": e.kind().as_str(),
        "message": ferry::redact::redact(&e.one_line()),
        "hint": e.hint().map(ferry::redact::redact),
    })
}

/// Prints `note: message` (something worth knowing, nothing wrong).
pub fn note(message: &str) {
    print_labelled(style("note:").for_stderr().cyan().bold(), message);
}

/// Prints `warning: message`.
pub fn warning(message: &str) {
    print_labelled(style("warning:").for_stderr().yellow().bold(), message);
}

/// Formats a byte count for people (`312.4 MiB`).
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// The `--json` document of this run, printed once at its end by [`finish_json`].
static JSON: std::sync::Mutex<Option<serde_json::Value>> = std::sync::Mutex::new(None);

/// Sets the `--json` document (a command's report). It is printed when the command has ended,
/// with its `ok` set from the exit code, so that the two cannot disagree.
pub fn json(value: &serde_json::Value) {
    let previous = JSON.lock().expect("not poisoned").replace(value.clone());
    debug_assert!(previous.is_none(), "a command sets one JSON document");
}

/// Prints the one `--json` object of a run on stdout: the command's report (or, when it
/// stopped before making one, `{"version": 1}`), with `ok` true exactly when the exit code is
/// 0, and the failure's `error` object when the report has none. Nothing without `--json`.
pub fn finish_json(wanted: bool, exit_ok: bool, failure: Option<&Error>) {
    let Some(mut value) = JSON
        .lock()
        .expect("not poisoned")
        .take()
        .or_else(|| wanted.then(|| serde_json::json!({"version": 1})))
    else {
        return;
    };
    if let Some(object) = value.as_object_mut() {
        object.insert("ok".into(), exit_ok.into());
        if let Some(e) = failure
            && object.get("error").is_none_or(serde_json::Value::is_null)
        {
            object.insert("error".into(), error_json(e));
        }
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&value).expect("JSON values serialize")
    );
}
