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
    let mut said = err.to_string();
    let mut s = format!("error: {said}\n");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        let _ = writeln!(s, "  Caused by: {text}");
        said.push_str(&text);
    }
    stderr(&s);
}

/// Whether the error is a closed stdout (treated as success, like ripgrep).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
