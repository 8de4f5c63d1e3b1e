//! Signals and systemd for `gsp node`: SIGHUP reloads, SIGINT and SIGTERM
//! stop, a second interrupt exits at once, and systemd hears of each step.

use tracing::warn;

/// Reloads on every SIGHUP (see `reload`). Without a handler, SIGHUP
/// (what `systemctl reload` and `kill -HUP` send) would kill the node as if it
/// had crashed.
pub(super) async fn reload_on_sighup(
    hup: Option<HangupSignal>,
    mut reloader: crate::cli::node::reload::Reloader,
) {
    #[cfg(unix)]
    {
        let Some(mut hup) = hup else {
            warn!("cannot listen for SIGHUP; nothing will be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            // Type=notify-reload (systemd 253+) waits for READY=1 after this.
            if let Ok(at) = sd_notify::NotifyState::monotonic_usec_now() {
                notify_systemd(&[sd_notify::NotifyState::Reloading, at]);
            }
            reloader.reload();
            notify_systemd(&[sd_notify::NotifyState::Ready]);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hup, &mut reloader);
    }
}

/// Tells systemd (a `Type=notify` unit; `NOTIFY_SOCKET` set) where the node
/// is; does nothing elsewhere. A socket that cannot take the message is
/// logged, never fatal.
pub(super) fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
    }
}

#[cfg(unix)]
type HangupSignal = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type HangupSignal = ();

/// Installs the SIGHUP handler now (replacing the default action, which would
/// end the process); `None` if it cannot be installed.
pub(super) fn hangup_signal() -> Option<HangupSignal> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// While the node leaves and drains, a second Ctrl-C ends the process at once
/// (exit 130), as daemons and `cargo` do. The handler is in place before the
/// log line that says so.
pub(super) fn exit_on_second_interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut int) = signal(SignalKind::interrupt()) {
            tokio::spawn(async move {
                if int.recv().await.is_some() {
                    warn!("second interrupt: exiting at once, without finishing the leave");
                    std::process::exit(130);
                }
            });
        }
    }
    tracing::info!(
        "shutting down: leaving the cluster and draining; interrupt again to exit at once"
    );
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
