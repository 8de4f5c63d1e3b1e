//! Ctrl-C while `gsp run` follows its jobs: cancel them (`--cancel-on-interrupt`,
//! or "y" at the prompt on a terminal), or leave them running and say how to
//! follow them (the default without a terminal).

use std::io::IsTerminal as _;

use tokio::task::JoinSet;

use crate::cli::{
    GlobalArgs, client,
    run::{Followed, Target},
};
use crate::transport::pb::jobs::v1 as pb;

/// Waits for every followed job; `None` when the user interrupted and left
/// them running.
///
/// # Errors
/// None so far; the signal handler could not be installed is ignored.
pub(crate) async fn wait(
    set: &mut JoinSet<Followed>,
    jobs: &[(Target, String)],
    global: &GlobalArgs,
    cancel_on_interrupt: bool,
) -> anyhow::Result<Option<Vec<Followed>>> {
    let mut out = Vec::new();
    let mut asked = false;
    loop {
        tokio::select! {
            joined = set.join_next() => match joined {
                None => return Ok(Some(out)),
                Some(Ok(f)) => out.push(f),
                Some(Err(e)) => out.push(Followed::Lost(e.to_string())),
            },
            r = tokio::signal::ctrl_c(), if !asked => {
                asked = true;
                if r.is_err() {
                    continue;
                }
                let stop = cancel_on_interrupt || (std::io::stdin().is_terminal() && ask(jobs.len()).await);
                if !stop {
                    for (t, id) in jobs {
                        crate::cli::output::note(&format!(
                            "gsp: job {id} keeps running on {}; follow it with `gsp logs {id} --follow --addr {}`",
                            t.name, t.address
                        ));
                    }
                    return Ok(None);
                }
                for (t, id) in jobs {
                    match cancel(global, t, id).await {
                        Ok(()) => crate::cli::output::note(&format!("gsp: cancelling job {id} on {}", t.name)),
                        Err(e) => crate::cli::output::note(&format!("gsp: cannot cancel job {id} on {}: {e:#}", t.name)),
                    }
                }
            }
        }
    }
}

async fn ask(n: usize) -> bool {
    crate::cli::output::stderr(&format!(
        "\ngsp: cancel the {}? [y/N] ",
        if n == 1 {
            "job".to_owned()
        } else {
            format!("{n} jobs")
        }
    ));
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
    })
    .await
    .unwrap_or(false)
}

/// Asks the node at `t` to cancel job `id`.
///
/// # Errors
/// The node cannot be reached or refused.
pub(crate) async fn cancel(global: &GlobalArgs, t: &Target, id: &str) -> anyhow::Result<()> {
    let mut c = client::jobs(global, &t.address).await?;
    let mut req = tonic::Request::new(pb::CancelRequest {
        job_id: id.to_owned(),
    });
    req.set_timeout(client::timeout(global));
    c.cancel(req)
        .await
        .map_err(|s| client::call_failed(&t.address, s))?;
    Ok(())
}
