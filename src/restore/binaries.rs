//! The ferry binaries a bundle carries for its nodes (`ferry bundle --with-binary`): one
//! static (musl), stripped build per Linux architecture the bundle serves, as
//! `ferry-linux-<arch>` beside restore.sh, which picks one by `uname -m`.
//!
//! Where they come from: `--binaries DIR` (or `FERRY_BINARIES`), where `cargo xtask dist`
//! writes them (target/dist); else the running binary's folder and its `../dist`; else the
//! running binary itself when it is a static build for that architecture. A binary that is
//! not an ELF executable for the architecture, or is dynamically linked (it would need the
//! node's C library), is not placed: the platform is named as missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic_mode;
use crate::platform::Platform;
use crate::store::lockfile::LockFile;
use crate::store::{Layout, StoreError, WORK_DIR};

/// One binary placed into the bundle.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The node platform it runs on (`linux/arm64`).
    pub platform: String,
    /// Its file name in the bundle (`ferry-linux-arm64`).
    pub file: String,
    /// Where it was copied from.
    pub source: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A platform of the bundle for which no binary could be placed.
#[derive(Debug, Clone)]
pub struct Missing {
    /// The node platform (`linux/arm64`).
    pub platform: String,
    /// Why: every place looked at, and what was wrong there.
    pub reason: String,
}

/// What `--with-binary` did.
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    /// The binaries in the bundle now.
    pub placed: Vec<Placed>,
    /// The platforms left without one (restore.sh then uses its plain-sh path there).
    pub missing: Vec<Missing>,
}

/// Where to look for the binaries.
#[derive(Debug, Clone)]
pub struct Search {
    /// Folders holding `ferry-linux-<arch>` files, in order.
    pub dirs: Vec<PathBuf>,
    /// The running binary, offered for its own platform (placed when it is a static build).
    pub running: Option<PathBuf>,
}

impl Search {
    /// `dir` alone when given; else beside the running binary, its `../dist`, then itself.
    pub fn new(dir: Option<PathBuf>) -> Search {
        let exe = std::env::current_exe().ok();
        match dir {
            Some(d) => Search {
                dirs: vec![d],
                running: None,
            },
            None => {
                let mut dirs = Vec::new();
                if let Some(folder) = exe.as_deref().and_then(Path::parent) {
                    dirs.push(folder.to_path_buf());
                    dirs.push(folder.join("../dist"));
                }
                Search { dirs, running: exe }
            }
        }
    }
}

/// The platform a node binary is for: Linux, with the variants that do not change the
/// instruction set dropped (arm64/v8, amd64/v2).
fn node_platform(p: &Platform) -> Option<Platform> {
    if p.os() != "linux" {
        return None;
    }
    let text = match (p.architecture(), p.variant()) {
        ("arm", Some(v)) => format!("linux/arm/{v}"),
        (arch, _) => format!("linux/{arch}"),
    };
    text.parse().ok()
}

/// The binary's file name in a bundle: `ferry-linux-arm64`, `ferry-linux-arm-v7`.
pub fn file_name(platform: &Platform) -> String {
    format!("ferry-{}", platform.to_string().replace('/', "-"))
}

/// The Linux platforms the bundle's images serve (the host's when none declares one).
pub fn wanted(lock: &LockFile) -> BTreeSet<Platform> {
    let mut out = BTreeSet::new();
    for image in &lock.images {
        for p in &image.platforms {
            match &p.platform {
                Some(platform) => out.extend(node_platform(platform)),
                None => out.extend(node_platform(&Platform::host())),
            }
        }
    }
    out
}

/// ELF's e_machine for an architecture, and whether it is little-endian.
fn elf_machine(arch: &str) -> Option<(u16, bool)> {
    Some(match arch {
        "amd64" => (62, true),
        "arm64" => (183, true),
        "riscv64" => (243, true),
        "ppc64le" => (21, true),
        "s390x" => (22, false),
        "arm" => (40, true),
        "386" => (3, true),
        _ => return None,
    })
}

/// Whether `path` is a statically linked ELF executable for `platform`. Hand-read (the header
/// and program headers: a few fixed offsets) rather than pulling an object-file crate into
/// every build for two fields.
pub fn check_static(path: &Path, platform: &Platform) -> Result<(), String> {
    use std::io::Read;
    let (machine, little) = elf_machine(platform.architecture())
        .ok_or_else(|| format!("ferry knows no ELF machine for {platform}"))?;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = head.get(o..o + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let word_at = |o: usize, wide: bool| -> Option<u64> {
        let n = if wide { 8 } else { 4 };
        let b = head.get(o..o + n)?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if little { b[n - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    if head.get(..4) != Some(b"\x7fELF") {
        return Err(format!("{} is not an ELF executable", path.display()));
    }
    let found = u16_at(18).unwrap_or(0);
    if found != machine {
        return Err(format!(
            "{} is for another architecture (ELF machine {found}, {platform} is {machine})",
            path.display()
        ));
    }
    let wide = head.get(4) == Some(&2);
    let (phoff, phentsize, phnum) = if wide {
        (word_at(32, true), u16_at(54), u16_at(56))
    } else {
        (word_at(28, false), u16_at(42), u16_at(44))
    };
    let (Some(phoff), Some(size), Some(count)) = (phoff, phentsize, phnum) else {
        return Err(format!("{} has a truncated ELF header", path.display()));
    };
    for i in 0..u64::from(count) {
        let at = usize::try_from(phoff + i * u64::from(size)).unwrap_or(usize::MAX);
        match word_at(at, false) {
            // PT_INTERP: a dynamic loader, hence the node's C library, is needed.
            Some(3) => {
                return Err(format!(
                    "{} is dynamically linked (it needs the node's C library); build static ones with `cargo xtask dist`",
                    path.display()
                ));
            }
            Some(_) => {}
            None => return Err(format!("{} has truncated program headers", path.display())),
        }
    }
    Ok(())
}

/// The first static binary for `platform` the search finds, or why there is none.
fn locate(platform: &Platform, search: &Search) -> Result<PathBuf, String> {
    let name = file_name(platform);
    let mut tried = Vec::new();
    for dir in &search.dirs {
        let path = dir.join(&name);
        if !path.is_file() {
            tried.push(format!("no {}", path.display()));
            continue;
        }
        match check_static(&path, platform) {
            Ok(()) => return Ok(path),
            Err(e) => tried.push(e),
        }
    }
    if let Some(exe) = &search.running
        && node_platform(&Platform::host()).as_ref() == Some(platform)
    {
        match check_static(exe, platform) {
            Ok(()) => return Ok(exe.clone()),
            Err(e) => tried.push(format!("the running ferry: {e}")),
        }
    }
    Err(tried.join("; "))
}

/// Places a binary for every platform of the bundle, each written atomically (mode 0755) and
/// left as it is when its bytes are already there. Fails only when the bundle cannot be
/// written; a platform without a binary is reported in [`Binaries::missing`].
pub fn place(layout: &Layout, search: &Search) -> Result<Binaries, StoreError> {
    let lock = layout.read_lock()?;
    let mut out = Binaries::default();
    for platform in wanted(&lock) {
        let source = match locate(&platform, search) {
            Ok(path) => path,
            Err(reason) => {
                out.missing.push(Missing {
                    platform: platform.to_string(),
                    reason,
                });
                continue;
            }
        };
        let bytes = std::fs::read(&source).map_err(StoreError::io("read", &source))?;
        let file = file_name(&platform);
        let dest = layout.root().join(&file);
        if !std::fs::read(&dest).is_ok_and(|old| old == bytes) {
            let tmp = layout.root().join(WORK_DIR).join("tmp");
            write_atomic_mode(&dest, &bytes, Some(&tmp), 0o755).map_err(StoreError::from)?;
        }
        out.placed.push(Placed {
            platform: platform.to_string(),
            file,
            source,
            bytes: bytes.len() as u64,
        });
    }
    layout.tidy();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn names_drop_variants_that_keep_the_instruction_set() {
        assert_eq!(
            node_platform(&p("linux/arm64/v8")).map(|p| file_name(&p)),
            Some("ferry-linux-arm64".into())
        );
        assert_eq!(
            node_platform(&p("linux/arm/v7")).map(|p| file_name(&p)),
            Some("ferry-linux-arm-v7".into())
        );
        assert_eq!(node_platform(&p("windows/amd64")), None);
    }

    #[test]
    fn a_script_or_a_foreign_elf_is_not_a_node_binary() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\necho `\n").unwrap();
        assert!(
            check_static(&script, &p("linux/amd64"))
                .unwrap_err()
                .contains("not an ELF")
        );
        // /bin/sh: an ELF for this machine, dynamically linked on Debian.
        let sh = Path::new("/bin/sh").canonicalize().unwrap();
        let err = check_static(&sh, &p("linux/s390x")).unwrap_err();
        assert!(err.contains("another architecture"), "{err}");
        if cfg!(target_arch = "x86_64") {
            let err = check_static(&sh, &p("linux/amd64")).unwrap_err();
            assert!(err.contains("dynamically linked"), "{err}");
        }
    }
}
