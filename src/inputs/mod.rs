//! Image lists: references on the command line, and list files (one reference a line, `#`
//! comments and blank lines ignored), from a path or standard input.

pub mod manifests;

use std::io::Read;
use std::path::Path;

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
    /// A list file cannot be read.
    #[error("cannot read image list {path}: {source}")]
    Io {
        /// The file (`-` for stdin).
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Parses a list: one reference a line; `#` starts a comment; blank lines are skipped.
pub fn parse_list(text: &str, origin: &str) -> Result<Vec<ImageRef>, InputError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line
            .split_once('#')
            .map_or(line, |(before, _)| before)
            .trim();
        if line.is_empty() {
            continue;
        }
        let r = line
            .parse::<ImageRef>()
            .map_err(|source| InputError::Reference {
                origin: format!("{origin}:{}", n + 1),
                source,
            })?;
        out.push(r);
    }
    Ok(out)
}

/// Reads a list file; `-` reads standard input.
pub fn read_list(path: &Path) -> Result<Vec<ImageRef>, InputError> {
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
    parse_list(&text, if name == "-" { "stdin" } else { &name })
}

/// Parses references given as arguments.
pub fn parse_args(args: &[String]) -> Result<Vec<ImageRef>, InputError> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse().map_err(|source| InputError::Reference {
                origin: format!("argument {}", i + 1),
                source,
            })
        })
        .collect()
}

/// Sorts and removes duplicates (after normalization `alpine` and
/// `docker.io/library/alpine:latest` are the same image).
pub fn dedup(mut refs: Vec<ImageRef>) -> Vec<ImageRef> {
    refs.sort();
    refs.dedup();
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn errors_name_the_line() {
        let err = parse_list("alpine\nNot/Valid:1\n", "images.txt")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("images.txt:2: "), "{err}");
    }
}
