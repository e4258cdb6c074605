//! Messages on stderr: `error:`, `warning:` and `hint:` lines, colored only where colors are
//! wanted (a terminal, and no `NO_COLOR`).

use std::io::IsTerminal;

use console::style;

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

fn print_labelled(label: console::StyledObject<&str>, message: &str) {
    // The last line of defence: whatever the message quotes, no password or signed query.
    let message = &ferry::redact::redact(message);
    let mut lines = message.lines();
    if let Some(first) = lines.next() {
        eprintln!("{label} {first}");
    }
    for line in lines {
        match line.strip_prefix("hint:") {
            Some(rest) => eprintln!("{}{rest}", style("hint:").for_stderr().cyan().bold()),
            None => eprintln!("  {line}"),
        }
    }
}

/// Prints `error: message` (with any `hint:` lines styled).
pub fn error(message: &str) {
    print_labelled(style("error:").for_stderr().red().bold(), message);
}

/// Prints `warning: message`.
pub fn warning(message: &str) {
    print_labelled(style("warning:").for_stderr().yellow().bold(), message);
}

/// Formats a byte count for people (`312.4 MiB`).
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Prints a JSON value on stdout.
pub fn json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}
