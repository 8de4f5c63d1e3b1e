//! How tables look on the terminal they go to, as ripgrep does it: as wide
//! as the terminal (100 columns when the output is not a terminal, every
//! column at full width with `--wide`), and states in colour when
//! `--color` says so (`auto`: on a terminal, unless `NO_COLOR` is set or
//! `TERM` is `dumb`).

use std::io::IsTerminal as _;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (and not empty) or `TERM` is `dumb`.
    #[default]
    Auto,
    /// Always, also into a pipe or file.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether output is coloured, given the environment.
    pub(crate) fn resolve(self) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}

/// Width of a table that does not go to a terminal.
pub(crate) const PIPE_WIDTH: u16 = 100;

/// A table with gsp's borders, fitted to the terminal's width (or
/// [`PIPE_WIDTH`]) unless `wide`, styled when `color`.
pub(crate) fn table(wide: bool, color: bool) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    if !wide {
        // Long cells wrap rather than widening the table past the terminal.
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if !t.is_tty() {
            t.set_width(PIPE_WIDTH);
        }
    }
    if color {
        t.enforce_styling().style_text_only();
    }
    t
}

/// A membership or maintenance state, coloured when `color`: alive and
/// normal green, suspect and maintenance yellow, dead and disabled red,
/// left grey.
pub(crate) fn state(text: &str, color: bool) -> Cell {
    let cell = Cell::new(text);
    if !color {
        return cell;
    }
    match text {
        "alive" | "normal" => cell.fg(Color::Green),
        "suspect" | "maintenance" => cell.fg(Color::Yellow),
        "dead" | "disabled" => cell.fg(Color::Red),
        "left" => cell.fg(Color::DarkGrey),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_and_always_are_what_they_say() {
        assert!(!ColorChoice::Never.resolve());
        assert!(ColorChoice::Always.resolve());
    }

    #[test]
    fn a_coloured_state_carries_its_escape_and_a_plain_one_none() {
        let mut t = table(false, true);
        t.add_row(vec![state("dead", true)]);
        assert!(t.to_string().contains("\u{1b}["), "{t}");
        let mut t = table(false, false);
        t.add_row(vec![state("dead", false)]);
        assert!(!t.to_string().contains('\u{1b}'), "{t}");
    }
}
