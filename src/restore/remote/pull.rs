//! Pulling a served bundle's images into the runtime by digest, with growing attempt limits:
//! containerd through `ctr images pull` (which resumes a cut download from what it kept),
//! CRI-O's containers-storage through `skopeo copy`.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::attempts::{Attempt, run_attempts, run_for};
use super::{Origin, RemoteBundle, RemoteImage};
use crate::error::{Error, Kind};
use crate::restore::containerd::{ctr, name_and_pin, read_back_pins, run, skip_present};
use crate::restore::{RestoreError, RestoreOptions, Restored, repository};

/// What a tool said, without its informational log lines (ctr logs each host it tries) and
/// its own name in front.
fn tool_message(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| {
            !(l.starts_with("time=") && (l.contains("level=info") || l.contains("level=debug")))
        })
        .map(|l| l.trim_start_matches("ctr: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Not-found answers fail at once; anything else (a cut connection, a timeout) is retried.
fn classify(stderr: String) -> Attempt {
    let stderr = tool_message(&stderr);
    let lower = stderr.to_lowercase();
    if lower.contains("not found") || lower.contains("manifest unknown") {
        Attempt::Fail(stderr)
    } else {
        Attempt::Retry(stderr)
    }
}

/// The error kind a final failure message reads as.
fn failure(message: String) -> Error {
    let lower = message.to_lowercase();
    let kind = if lower.contains("not found") || lower.contains("manifest unknown") {
        Kind::ManifestNotFound
    } else if lower.contains("took longer than") {
        Kind::Timeout
    } else {
        Kind::Failed
    };
    let error = Error::msg(kind, crate::redact::redact(&message));
    if kind == Kind::ManifestNotFound {
        return error.with_hint(
            "the server does not hold this image: does --from serve the bundle the list comes \
             from? (`ferry ls BUNDLE` on the serving side)",
        );
    }
    error
}

/// An outcome for an image that did not come.
fn failed(image: &RemoteImage, error: Error) -> Restored {
    Restored {
        reference: image.name.clone(),
        digest: image.digest.to_string(),
        error: Some(error),
        names: Vec::new(),
        pinned: false,
        already_present: false,
    }
}

/// Runs `f` over `items` on `workers` threads; results in the items' order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a pull thread panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Pulls what containerd lacks, side by side (`--jobs`), names each image as the bundle does
/// (and `repository@digest`), pins when asked; what is there already is left alone.
pub fn into_containerd(
    from: &Origin,
    bundle: &RemoteBundle,
    options: &RestoreOptions,
) -> Result<Vec<Restored>, RestoreError> {
    let (mut outcomes, todo) = skip_present(
        &bundle.images,
        |i| (i.name.as_str(), i.digest.to_string()),
        options,
    );
    let workers = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n,
    };
    outcomes.extend(in_parallel(&todo, workers, |image| {
        pull_into_containerd(from, bundle.served, image, options)
    }));
    read_back_pins(&mut outcomes, options);
    Ok(outcomes)
}

/// One image: pulled by digest under the source's name, named as the bundle names it, the
/// source's name dropped.
fn pull_into_containerd(
    from: &Origin,
    served: bool,
    image: &RemoteImage,
    options: &RestoreOptions,
) -> Restored {
    let source = match from.pull_name(image, served) {
        Ok(s) => s,
        Err(e) => return failed(image, Error::new(e)),
    };
    let platform = options.platform.to_string();
    let pulled = run_attempts(&from.retry, |limit| {
        let mut pull = ctr(options);
        pull.args(["images", "pull", "--platform", &platform]);
        if from.url.scheme() == "http" {
            pull.arg("--plain-http");
        }
        if from.insecure {
            pull.arg("--skip-verify");
        }
        pull.arg(&source);
        run_for(pull, limit, classify)
    });
    if let Err(e) = pulled {
        return failed(image, failure(e).wrap(format!("cannot pull {source}")));
    }
    let digest = image.digest.to_string();
    let mut tag = ctr(options);
    tag.args(["images", "tag", "--force", &source, &image.name]);
    if let Err(e) = run(tag) {
        let e = Error::context(Kind::Failed, format!("cannot name it {}", image.name), e);
        return failed(image, e);
    }
    let outcome = name_and_pin(&image.name, &digest, options);
    let twin = format!("{}@{digest}", repository(&image.name));
    if source != image.name && source != twin {
        // The source's name is an artefact of the transfer; the content stays (named twice).
        let mut rm = ctr(options);
        rm.args(["images", "rm", &source]);
        let _ = run(rm);
    }
    outcome
}

/// Copies each image into containers-storage with skopeo (one platform, as CRI-O runs it),
/// then adds both names to ferry's pinned_images drop-in when asked.
pub fn into_crio(
    from: &Origin,
    bundle: &RemoteBundle,
    options: &RestoreOptions,
) -> Result<Vec<Restored>, RestoreError> {
    let mut outcomes = Vec::new();
    for image in &bundle.images {
        let present = in_crio_storage(image, options);
        let copied = if present {
            Ok(())
        } else {
            copy_into_crio(from, bundle.served, image, options)
        };
        outcomes.push(match copied {
            Ok(()) => Restored {
                reference: image.name.clone(),
                digest: image.digest.to_string(),
                error: None,
                names: vec![image.name.clone()],
                pinned: options.pin,
                already_present: present,
            },
            Err(e) => failed(image, e),
        });
    }
    if options.pin {
        let mut list = crate::restore::crio_pins::PinList::read(&options.crio_conf_dir);
        for o in outcomes.iter().filter(|o| o.error.is_none()) {
            for name in crate::restore::pins::names([(o.reference.as_str(), o.digest.as_str())]) {
                list.add(&name, options.record.as_ref());
            }
        }
        list.write(&options.crio_conf_dir)?;
    }
    Ok(outcomes)
}

/// Whether containers-storage holds this very manifest (looked up as `repository@digest`, its
/// bytes hashing to the digest) and the name is that same image (containers-storage keys an
/// image by its config: the name's config is the manifest's). Any doubt copies again, which is
/// harmless.
fn in_crio_storage(image: &RemoteImage, options: &RestoreOptions) -> bool {
    let inspect = |name: &str, what: &[&str]| -> Option<Vec<u8>> {
        let mut c = Command::new("skopeo");
        c.arg("inspect")
            .args(what)
            .arg(format!("containers-storage:{}{name}", options.storage));
        c.output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    let twin = format!("{}@{}", repository(&image.name), image.digest);
    let manifest_there = inspect(&twin, &["--raw"])
        .is_some_and(|raw| crate::digest::Digest::sha256_of(&raw) == image.digest);
    manifest_there && {
        let config = inspect(&twin, &["--config", "--raw"]);
        config.is_some() && config == inspect(&image.name, &["--config", "--raw"])
    }
}

/// One image into containers-storage.
fn copy_into_crio(
    from: &Origin,
    served: bool,
    image: &RemoteImage,
    options: &RestoreOptions,
) -> Result<(), Error> {
    let source = from.pull_name(image, served).map_err(Error::new)?;
    let p = &options.platform;
    run_attempts(&from.retry, |limit| {
        let mut copy = Command::new("skopeo");
        copy.arg("--command-timeout")
            .arg(format!("{}s", limit.as_secs().max(1)))
            .args(["copy", "--quiet", "--override-os", p.os()])
            .args(["--override-arch", p.architecture()]);
        if let Some(v) = p.variant() {
            copy.args(["--override-variant", v]);
        }
        if from.url.scheme() == "http" || from.insecure {
            copy.arg("--src-tls-verify=false");
        }
        copy.arg(format!("docker://{source}")).arg(format!(
            "containers-storage:{}{}",
            options.storage, image.name
        ));
        run_for(copy, limit, classify)
    })
    .map(drop)
    .map_err(|e| failure(e).wrap(format!("cannot copy {source}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctr_log_lines_are_dropped_and_not_found_is_final() {
        let stderr = "time=\"x\" level=info msg=\"trying next host\" host=h\n\
                      ctr: failed to resolve reference \"h/a@sha256:1\": not found";
        assert_eq!(
            classify(stderr.into()),
            Attempt::Fail("failed to resolve reference \"h/a@sha256:1\": not found".into())
        );
        assert!(matches!(
            classify("ctr: connection reset by peer".into()),
            Attempt::Retry(_)
        ));
        assert_eq!(
            failure("x: not found".into()).kind(),
            Kind::ManifestNotFound
        );
        assert_eq!(
            failure("ctr took longer than 30s".into()).kind(),
            Kind::Timeout
        );
    }
}
