//! Image lists from where users keep them: references on the command line, list files (one
//! reference a line, `#` comments), Kubernetes manifests, a node's containerd, a cluster.

pub mod cluster;
pub mod containerd;
pub mod manifests;

use std::io::Read;
use std::path::{Path, PathBuf};

use manifests::ManifestOptions;

use crate::reference::{ImageRef, ReferenceError};

/// A reference that could not be read, with where it came from.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A line or argument is not a reference.
    #[error("{origin}: {source}")]
    Reference {
        /// `FILE:LINE`, `stdin:LINE` or `argument N`.
        origin: String,
        /// What is wrong with it.
        source: ReferenceError,
    },
    /// A manifest document that does not parse.
    #[error("{origin}: {reason}")]
    Manifest {
        /// `FILE: document N`.
        origin: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A source (containerd, the cluster) could not be read.
    #[error("{source_name}: {reason}")]
    Source {
        /// The option that named it.
        source_name: String,
        /// What went wrong.
        reason: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// Several of the problems above, all reported at once (every bad line of every list
    /// and argument, so that one run shows them all).
    #[error("{}", several(.0))]
    Several(Vec<InputError>),
    /// A list or manifest file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file (`-` for stdin).
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// At most this many problems are listed; the rest are counted (a wrong file given as a list
/// would otherwise print itself line by line).
const MAX_LISTED: usize = 50;

/// The text of [`InputError::Several`]: a count, then one problem a line.
fn several(errors: &[InputError]) -> String {
    let mut text = format!("{} input problems:", errors.len());
    for e in errors.iter().take(MAX_LISTED) {
        text.push_str("\n  ");
        text.push_str(&e.to_string());
    }
    if errors.len() > MAX_LISTED {
        text.push_str(&format!("\n  … and {} more", errors.len() - MAX_LISTED));
    }
    text
}

impl InputError {
    /// One error from a list of them: itself when alone, [`InputError::Several`] otherwise
    /// (nested lists flattened). `None` when the list is empty.
    pub fn gather(errors: Vec<InputError>) -> Option<InputError> {
        let mut flat: Vec<InputError> = Vec::new();
        for e in errors {
            match e {
                InputError::Several(inner) => flat.extend(inner),
                e => flat.push(e),
            }
        }
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(InputError::Several(flat)),
        }
    }

    /// Every problem this error holds, one a line (for callers that show them separately).
    pub fn problems(&self) -> Vec<&InputError> {
        match self {
            InputError::Several(all) => all.iter().collect(),
            one => vec![one],
        }
    }
}

/// Parses a list: one reference a line; `#` starts a comment; blank lines are skipped. Every
/// bad line is reported (`FILE:LINE: problem`), not only the first.
pub fn parse_list(text: &str, origin: &str) -> Result<Vec<ImageRef>, InputError> {
    parse_list_with_charts(text, origin).map(|(refs, _)| refs)
}

/// Whether a list line names a Helm chart of an HTTP repository (`ferry bundle --chart`'s
/// `REPO_URL/NAME:VERSION`) rather than an image: no image reference starts with a scheme.
pub fn is_chart_line(line: &str) -> bool {
    line.starts_with("https://") || line.starts_with("http://")
}

/// [`parse_list`], with the chart lines (see [`is_chart_line`]) handed back apart, unchecked.
pub fn parse_list_with_charts(
    text: &str,
    origin: &str,
) -> Result<(Vec<ImageRef>, Vec<String>), InputError> {
    let mut out = Vec::new();
    let mut charts = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line
            .split_once('#')
            .map_or(line, |(before, _)| before)
            .trim();
        if line.is_empty() {
            continue;
        }
        if is_chart_line(line) {
            charts.push(line.to_owned());
            continue;
        }
        match line.parse::<ImageRef>() {
            Ok(r) => out.push(r),
            Err(source) => bad.push(InputError::Reference {
                origin: format!("{origin}:{}", n + 1),
                source,
            }),
        }
    }
    match InputError::gather(bad) {
        Some(e) => Err(e),
        None => Ok((out, charts)),
    }
}

/// Reads a list file; `-` reads standard input. Chart lines are handed back apart.
pub fn read_list(path: &Path) -> Result<(Vec<ImageRef>, Vec<String>), InputError> {
    let name = path.display().to_string();
    let io_err = |source| InputError::Io {
        path: name.clone(),
        source,
    };
    let text = if name == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(io_err)?;
        s
    } else {
        std::fs::read_to_string(path).map_err(io_err)?
    };
    parse_list_with_charts(&text, if name == "-" { "stdin" } else { &name })
}

/// Parses references given as arguments; every bad one is reported.
pub fn parse_args(args: &[String]) -> Result<Vec<ImageRef>, InputError> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, a) in args.iter().enumerate() {
        match a.parse() {
            Ok(r) => out.push(r),
            Err(source) => bad.push(InputError::Reference {
                origin: format!("argument {}", i + 1),
                source,
            }),
        }
    }
    match InputError::gather(bad) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Sorts and removes duplicates (after normalization `alpine` and
/// `docker.io/library/alpine:latest` are the same image).
pub fn dedup(mut refs: Vec<ImageRef>) -> Vec<ImageRef> {
    refs.sort();
    refs.dedup();
    refs
}

/// Every place references can come from, for `ferry images`, `ferry lock` and `ferry bundle`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// References given as arguments.
    pub images: Vec<String>,
    /// List files (`-` for stdin).
    pub files: Vec<PathBuf>,
    /// Manifest files or folders (`-` for stdin).
    pub manifests: Vec<PathBuf>,
    /// How to read manifests.
    pub manifest_options: ManifestOptions,
    /// The containerd namespace to list, when `--from-containerd`.
    pub containerd_namespace: Option<String>,
    /// List the cluster's workloads.
    pub cluster: bool,
    /// Only this namespace of the cluster.
    pub cluster_namespace: Option<String>,
    /// Drop references starting with these (normalized) prefixes.
    pub excludes: Vec<String>,
}

/// What the sources gave.
#[derive(Debug, Default)]
pub struct Collected {
    /// The references, normalized, deduplicated and sorted.
    pub references: Vec<ImageRef>,
    /// Things worth telling the user (names skipped, references excluded).
    pub notes: Vec<String>,
    /// Chart lines of the list files (`REPO_URL/NAME:VERSION`), for `ferry bundle --chart`.
    pub charts: Vec<String>,
}

/// The note naming what `--exclude` left out: every reference, up to ten, then a count.
fn excluded_note(dropped: &[ImageRef]) -> String {
    let mut names: Vec<String> = dropped.iter().map(ToString::to_string).collect();
    names.sort();
    format!(
        "--exclude left out {} reference(s): {}",
        dropped.len(),
        crate::report::some_of(&names, 10)
    )
}

/// Whether `name` starts with `prefix` at a name boundary: `busybox` leaves `busyboxplus` alone
/// and `nginx:1.2` leaves `nginx:1.27` alone.
fn matches_prefix(name: &str, prefix: &str) -> bool {
    match name.strip_prefix(prefix) {
        Some(rest) => {
            prefix.ends_with(['/', ':', '@'])
                || rest.is_empty()
                || rest.starts_with(['/', ':', '@'])
        }
        None => false,
    }
}

impl Sources {
    /// True when no source is given.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.files.is_empty()
            && self.manifests.is_empty()
            && self.containerd_namespace.is_none()
            && !self.cluster
    }

    /// Reads every source. Standard input can serve one of them only.
    pub async fn collect(&self) -> Result<Collected, InputError> {
        let stdin_users = self
            .files
            .iter()
            .chain(&self.manifests)
            .filter(|p| p.as_os_str() == "-")
            .count();
        if stdin_users > 1 {
            return Err(InputError::Source {
                source_name: "-".into(),
                reason:
                    "standard input can feed one list (-f - or --from-manifests -), not several"
                        .into(),
                hint: None,
            });
        }
        let mut out = Collected::default();
        // Arguments and list files are all read before anything fails, so that one run names
        // every bad line; nothing here contacts a registry.
        let mut bad = Vec::new();
        let mut refs = parse_args(&self.images).unwrap_or_else(|e| {
            bad.push(e);
            Vec::new()
        });
        for f in &self.files {
            match read_list(f) {
                Ok((r, charts)) => {
                    refs.extend(r);
                    out.charts.extend(charts);
                }
                Err(e) => bad.push(e),
            }
        }
        if let Some(e) = InputError::gather(bad) {
            return Err(e);
        }
        let mut read_stdin = || {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map(|_| s)
                .map_err(|source| InputError::Io {
                    path: "-".into(),
                    source,
                })
        };
        let found =
            manifests::read_manifests(&self.manifests, self.manifest_options, &mut read_stdin)?;
        out.notes.extend(found.unscanned_note());
        refs.extend(found.images);
        if let Some(ns) = &self.containerd_namespace {
            let found = containerd::list(ns)?;
            if !found.skipped.is_empty() {
                out.notes.push(format!(
                    "--from-containerd: skipped {} name(s) that are not pullable references: {}",
                    found.skipped.len(),
                    found.skipped.join(", ")
                ));
            }
            refs.extend(found.references);
        }
        if self.cluster {
            refs.extend(
                cluster::list(self.cluster_namespace.as_deref(), self.manifest_options).await?,
            );
        }
        let prefixes: Vec<String> = self
            .excludes
            .iter()
            .map(|p| crate::reference::normalize_prefix(p))
            .collect();
        let refs = dedup(refs);
        let excluded = |r: &ImageRef| prefixes.iter().any(|p| matches_prefix(&r.to_string(), p));
        let (dropped, mut refs): (Vec<ImageRef>, Vec<ImageRef>) =
            refs.into_iter().partition(|r| excluded(r));
        // The order people read: by the reference as written.
        refs.sort_by_cached_key(ToString::to_string);
        if !dropped.is_empty() {
            out.notes.push(excluded_note(&dropped));
        }
        out.references = refs;
        Ok(out)
    }
}

impl crate::error::Diagnostic for InputError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            InputError::Reference { .. } | InputError::Manifest { .. } | InputError::Several(_) => {
                Kind::Usage
            }
            InputError::Source { .. } => Kind::Failed,
            InputError::Io { source, .. } => crate::error::io_kind(source),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            InputError::Source { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::normalize_prefix;

    #[test]
    fn exclude_prefixes() {
        assert_eq!(normalize_prefix("busybox"), "docker.io/library/busybox");
        assert_eq!(normalize_prefix("bitnami/redis"), "docker.io/bitnami/redis");
        assert_eq!(
            normalize_prefix("nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(normalize_prefix("docker.io/library"), "docker.io/library");
        assert_eq!(
            normalize_prefix("index.docker.io/library/"),
            "docker.io/library/"
        );
        assert_eq!(normalize_prefix("quay.io/org/"), "quay.io/org/");
        assert_eq!(normalize_prefix("localhost:5000/app"), "localhost:5000/app");
        // Every name of Docker Hub is docker.io, as in references (and as mirror rules say).
        let alpine = normalize_prefix("registry-1.docker.io/library/alpine");
        assert_eq!(alpine, "docker.io/library/alpine");
        assert!(matches_prefix("docker.io/library/alpine:3.20", &alpine));
        let busybox = normalize_prefix("busybox");
        assert!(matches_prefix("docker.io/library/busybox:1", &busybox));
        assert!(!matches_prefix("docker.io/library/busyboxplus:1", &busybox));
        let tagged = normalize_prefix("nginx:1.2");
        assert!(matches_prefix("docker.io/library/nginx:1.2", &tagged));
        assert!(!matches_prefix("docker.io/library/nginx:1.27", &tagged));
        assert!(matches_prefix("quay.io/org/app:1", "quay.io/org/"));
        assert!(matches_prefix(
            "docker.io/library/nginx:1",
            "docker.io/library"
        ));
    }

    #[test]
    fn list_with_comments_blanks_and_duplicates() {
        let text = "# base images\nalpine:3.20\n\n  docker.io/library/alpine:3.20  # same\nquay.io/org/app:1\n";
        let refs = dedup(parse_list(text, "images.txt").unwrap());
        let names: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            ["docker.io/library/alpine:3.20", "quay.io/org/app:1"]
        );
    }

    #[test]
    fn every_bad_line_and_argument_is_reported() {
        let err =
            parse_list("alpine\nBad Ref\nquay.io/ok:1\nx/y@sha256:zz\n", "l.txt").unwrap_err();
        let lines: Vec<String> = err.problems().iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("l.txt:2: ") && lines[1].starts_with("l.txt:4: "));
        let text = err.to_string();
        assert!(text.starts_with("2 input problems:\n  l.txt:2: "), "{text}");
        let err = parse_args(&["ok".into(), "a b".into(), "c d".into()]).unwrap_err();
        assert_eq!(err.problems().len(), 2);
        let many: String = (0..60).map(|i| format!("bad ref {i}\n")).collect();
        let text = parse_list(&many, "m").unwrap_err().to_string();
        assert!(
            text.contains("m:50: ") && !text.contains("m:51: ") && text.ends_with("and 10 more"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_list("alpine\nNot/Valid:1\n", "images.txt")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("images.txt:2: "), "{err}");
    }
}
