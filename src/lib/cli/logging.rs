//! Logs to stderr. `GSP_LOG` (or `RUST_LOG`) sets the filter; otherwise a
//! node takes `gsp.log` from its config file, at start and on every SIGHUP.
//! Colours only on a terminal, and never under `NO_COLOR`. `--log-format json`
//! (`GSP_LOG_FORMAT=json`) writes one JSON object per line instead, for log
//! shippers: `{"timestamp","level","fields":{"message",...},"target"}`.

use std::sync::OnceLock;

use tracing_subscriber::{EnvFilter, Registry, layer::SubscriberExt as _, reload};

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The filter set in the environment, which nothing else overrides.
pub(crate) fn from_env() -> Option<String> {
    std::env::var("GSP_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal unless `NO_COLOR`).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the process's subscriber: the environment's filter, else `default`
/// (nodes `info`, client commands `warn`, the bench `error`), in `format`.
pub(crate) fn init(default: &str, format: LogFormat) {
    let filter = from_env().map_or_else(|| EnvFilter::new(default), EnvFilter::new);
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let subscriber = Registry::default().with(filter).with(text).with(json);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Replaces the filter of the running process.
///
/// # Errors
/// `spec` is not a filter, or no reloadable subscriber is installed.
pub(crate) fn set_filter(spec: &str) -> Result<(), String> {
    let filter = EnvFilter::builder()
        .parse(spec)
        .map_err(|e| format!("'{spec}' is not a log filter: {e}"))?;
    FILTER
        .get()
        .ok_or_else(|| "no reloadable logger installed".to_owned())?
        .reload(filter)
        .map_err(|e| e.to_string())
}
