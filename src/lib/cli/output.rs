//! Where output goes. The library never prints; the CLI writes through these so
//! a closed pipe (`gsp ... | head`) ends quietly instead of panicking.

use std::{
    fmt::Write as _,
    io::{self, Write},
};

/// `n` and the noun in the number it takes: `count(1, "member")` is
/// "1 member", `count(2, "member")` "2 members" (nouns here take an "s").
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Writes `s` to stdout.
///
/// # Errors
/// The write failed (a broken pipe included; the caller treats it as success).
pub fn stdout(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()
}

/// Writes `s` to stderr, ignoring failures (nowhere left to report them).
pub fn stderr(s: &str) {
    let _ = io::stderr().lock().write_all(s.as_bytes());
}

/// Writes `line` and a newline to stderr (progress and notes beside a
/// command's output).
pub fn note(line: &str) {
    stderr(&format!("{line}\n"));
}

/// Serializes `value` as pretty JSON plus a newline on stdout.
///
/// # Errors
/// Serialization or the write failed.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    stdout(&s)?;
    Ok(())
}

/// Prints an error the way uv does: `error: top`, then one `  Caused by: ...`
/// per cause that says something the lines above did not.
pub fn error(err: &anyhow::Error) {
    let (top, causes) = error_lines(err);
    let mut s = format!("error: {top}\n");
    for text in causes {
        let _ = writeln!(s, "  Caused by: {text}");
    }
    stderr(&s);
}

/// The error's message and the causes that add something to it.
fn error_lines(err: &anyhow::Error) -> (String, Vec<String>) {
    let mut said = err.to_string();
    let top = said.clone();
    let mut causes = Vec::new();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        said.push_str(&text);
        causes.push(text);
    }
    (top, causes)
}

/// `gsp.error.v1`, what a failed command prints with `--json`: one JSON
/// object on one line of stderr (stdout stays the command's output, possibly
/// partial), besides the exit code.
#[derive(Debug, serde::Serialize)]
pub struct ErrorJson<'a> {
    /// Always "gsp.error.v1".
    pub schema: &'static str,
    /// What kind of failure (stable): see [`super::exit::error_code`].
    pub code: &'a str,
    /// What went wrong, with its causes joined by ": ".
    pub message: String,
    /// The exit status the command ends with.
    pub exit_code: u8,
}

/// Prints `err` as one `gsp.error.v1` line on stderr.
pub fn error_json(err: &anyhow::Error, code: &str, exit_code: u8) {
    let (top, causes) = error_lines(err);
    let message = std::iter::once(top)
        .chain(causes)
        .collect::<Vec<_>>()
        .join(": ");
    let e = ErrorJson {
        schema: "gsp.error.v1",
        code,
        message,
        exit_code,
    };
    if let Ok(line) = serde_json::to_string(&e) {
        stderr(&format!("{line}\n"));
    }
}

/// Whether the error is a closed stdout (treated as success, like ripgrep).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
