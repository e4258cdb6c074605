//! Progress of the copies out of a bundle (#27): export, apply and restore show bars on a
//! terminal, plain totals lines elsewhere (running every FERRY_LOG_INTERVAL seconds and once
//! at the end), and nothing with `-q`. The terminal is a real pseudo-terminal (python3's pty),
//! its screen rebuilt from what ferry drew by [`screen`].

use crate::common;

use std::path::Path;
use std::process::Command;

use common::snapshots::settings;
use common::*;

/// `exit N`, stdout and stderr, for a snapshot (no running totals line: only the final one,
/// however slow the machine).
fn outcome(args: &[&str]) -> String {
    let (code, stdout, stderr) = ferry_env(args, &[("FERRY_LOG_INTERVAL", "3600")]);
    format!("exit {code}\n--- stdout\n{stdout}--- stderr\n{stderr}")
}

/// The snapshot settings: the registry's port, `dir` as [DIR], rates and seconds.
fn filters(reg: &Registry, dir: &Path) -> insta::Settings {
    let mut s = settings(Some(reg), &[(dir, "[DIR]")]);
    s.add_filter(r", [0-9.]+ [KMGT]?i?B/s, [0-9]+ s", ", [RATE], [SECS] s");
    s
}

#[test]
fn export_and_apply_print_totals_and_quiet_silences_them() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let base = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    let b = base.to_str().unwrap();
    let delta = dir.path().join("delta");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--no-progress",
        "-o",
        delta.to_str().unwrap(),
        "--since",
        b,
        &reg.image("sample/hello:1.0"),
        &reg.image("sample/multi:1.0"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let tar = dir.path().join("base.tar");
    filters(&reg, dir.path()).bind(|| {
        insta::assert_snapshot!(
            "export_totals",
            outcome(&["export", b, "--oci-archive", tar.to_str().unwrap()])
        );
        insta::assert_snapshot!(
            "export_quiet",
            outcome(&["export", "-q", b, "--oci-archive", tar.to_str().unwrap()])
        );
        insta::assert_snapshot!(
            "apply_totals",
            outcome(&["apply", delta.to_str().unwrap(), b])
        );
    });
}

#[test]
fn restore_prints_totals_by_image_and_quiet_only_failures() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let base = bundle_tags(
        &reg,
        dir.path(),
        &["sample/hello:1.0", "sample/multi:1.0"],
        &["--platform", "linux/amd64"],
    );
    let node = Containerd::start();
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            base.to_str().unwrap(),
            "--address",
            &node.socket,
            "--platform",
            "linux/amd64",
        ];
        args.extend_from_slice(extra);
        outcome(&args)
    };
    filters(&reg, dir.path()).bind(|| {
        insta::assert_snapshot!("restore_totals", restore(&[]));
        insta::assert_snapshot!("restore_quiet", restore(&["-q", "--pin"]));
    });
}

/// Runs ferry on a pseudo-terminal (stdout and stderr) with python3's `pty`; with
/// `interrupt_at`, sends it SIGINT once that text is on the screen (exit 99 when it never
/// came). Returns the exit code and the raw bytes the terminal received.
pub(crate) fn on_pty(args: &[&str], interrupt_at: Option<&str>) -> (i32, String) {
    on_pty_env(args, interrupt_at, &[])
}

/// [`on_pty`] with extra environment.
pub(crate) fn on_pty_env(
    args: &[&str],
    interrupt_at: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String) {
    require("python3", "python3");
    const DRIVER: &str = r#"
import os, pty, select, signal, sys
interrupt = sys.argv[1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
seen, sent = b"", False
while True:
    ready, _, _ = select.select([fd], [], [], 120)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        break
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    seen += data
    if interrupt and not sent and interrupt in seen:
        os.kill(pid, signal.SIGINT)
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status) if sent or not interrupt else 99)
"#;
    let ferry = ferry();
    let mut cmd = Command::new("python3");
    for (k, v) in ferry.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.envs(env.iter().copied());
    let out = cmd
        .args(["-c", DRIVER, interrupt_at.unwrap_or_default()])
        .arg(ferry.get_program())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The screen a terminal shows after `raw`: printable text at the cursor, `\r`, `\n`, and the
/// CSI sequences indicatif uses (cursor up/down, erase line, erase to the end of the line or
/// screen); colours and other sequences are dropped. One entry per line, trailing blanks cut.
pub(crate) fn screen(raw: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
                if lines.len() <= row {
                    lines.push(Vec::new());
                }
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut end = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        end = c;
                        break;
                    }
                    params.push(c);
                }
                let n = params.parse::<usize>().unwrap_or(0);
                match end {
                    'A' => row = row.saturating_sub(n.max(1)),
                    'B' => {
                        row += n.max(1);
                        while lines.len() <= row {
                            lines.push(Vec::new());
                        }
                    }
                    'K' if n == 2 => lines[row].clear(),
                    'K' => lines[row].truncate(col),
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_owned())
        .collect()
}

/// A line of a progress bar left on the screen.
pub(crate) fn bar_lines(screen: &[String]) -> Vec<&String> {
    screen
        .iter()
        .filter(|l| l.contains("ETA") || l.contains("B/s"))
        .collect()
}

#[test]
fn export_draws_a_bar_on_a_terminal_and_takes_it_away() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = sample_bundle(dir.path(), "b");
    let out = dir.path().join("b.tar");
    let (code, raw) = on_pty(
        &[
            "export",
            bundle.to_str().unwrap(),
            "--oci-archive",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{raw:?}");
    // Drawn (the bytes, their rate and the ETA), then gone: the screen ends with the summary.
    assert!(raw.contains("ETA"), "no bar was drawn: {raw:?}");
    let shown = screen(&raw);
    assert!(bar_lines(&shown).is_empty(), "{shown:#?}");
    assert!(shown.iter().any(|l| l.starts_with("wrote ")), "{shown:#?}");
}

#[test]
fn the_screen_is_rebuilt_as_a_terminal_shows_it() {
    let raw = "a bar 10%\r\x1b[2Kline two\nthird\r\x1b[1A\x1b[2Kreplaced\n\nend\x1b[K";
    assert_eq!(screen(raw), ["replaced", "third", "end"]);
    // A message printed under a bar that is later cleared from the wrong line stays stale.
    let raw = "bar ETA 1s\nwarning: stop\r\x1b[2K";
    assert_eq!(bar_lines(&screen(raw)), ["bar ETA 1s"]);
}
