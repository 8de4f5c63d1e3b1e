//! Where `gsp run` puts a job: the member `--node` names, or the matches of
//! the query's filters, best first; and starting it there (a node that
//! refuses is skipped for the next match, and named).

use crate::cli::{
    GlobalArgs, client,
    exit::{NegativeOutcome, Unreachable, UsageError},
    fanout, nodeset, peers,
    run::RunArgs,
};
use crate::{
    core::membership::MemberView,
    transport::pb::{admin::v1 as admin_pb, jobs::v1 as pb},
};

/// Where a job goes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub id: String,
    pub name: String,
    pub address: String,
}

impl Target {
    pub(crate) fn of(v: &MemberView) -> Self {
        Self {
            id: v.record.id.to_string(),
            name: v.record.name.clone(),
            address: v.record.address.clone(),
        }
    }
}

/// Every member the node at `--addr` lists.
///
/// # Errors
/// The node cannot be reached or refused.
pub(crate) async fn members(global: &GlobalArgs) -> anyhow::Result<Vec<MemberView>> {
    members_on(&client::conn(global, &global.addr).await?, global).await
}

/// [`members`] over an open connection to `--addr`.
async fn members_on(home: &client::Conn, global: &GlobalArgs) -> anyhow::Result<Vec<MemberView>> {
    let mut admin = home.admin();
    let mut req = tonic::Request::new(admin_pb::ListMembersRequest::default());
    req.set_timeout(client::timeout(global));
    let resp = admin
        .list_members(req)
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    peers::views(resp)
}

/// The up member named `node` (id or name), through `--addr`'s view, over an
/// open connection to it.
async fn member_on(home: &client::Conn, global: &GlobalArgs, node: &str) -> anyhow::Result<Target> {
    let views = members_on(home, global).await?;
    let found: Vec<_> = views
        .iter()
        .filter(|v| v.record.id.as_str() == node || v.record.name == node)
        .collect();
    match found.as_slice() {
        [v] if v.record.state.is_up() => Ok(Target::of(v)),
        [v] => Err(Unreachable(format!(
            "node {node} is {} in the view of {}",
            v.record.state.as_str(),
            global.addr
        ))
        .into()),
        [] => Err(Unreachable(format!(
            "no member named {node} is known to the node at {}",
            global.addr
        ))
        .into()),
        many => Err(UsageError(format!(
            "{} members are named {node}; name one by id: {}",
            many.len(),
            many.iter()
                .map(|v| v.record.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

/// [`named`] through the node at `--addr`.
///
/// # Errors
/// As [`named`]; or `--addr` cannot be reached.
pub(crate) async fn named_members(
    global: &GlobalArgs,
    specs: &[String],
) -> anyhow::Result<Vec<Target>> {
    named(&client::conn(global, &global.addr).await?, global, specs).await
}

/// The up members `--node` names (node sets, see [`nodeset`]), each once.
/// One id or name alone keeps [`member_on`]'s errors; in a set, a name that
/// matches no member, or one that is down, is an error too (exit 3), and a
/// label selector takes the up members that have the label.
async fn named(
    home: &client::Conn,
    global: &GlobalArgs,
    specs: &[String],
) -> anyhow::Result<Vec<Target>> {
    let mut patterns = Vec::new();
    for spec in specs {
        patterns.extend(nodeset::expand(spec).map_err(|e| UsageError(format!("--node: {e}")))?);
    }
    if let [nodeset::Pattern::Name(one)] = patterns.as_slice() {
        return Ok(vec![member_on(home, global, one).await?]);
    }
    let views = members_on(home, global).await?;
    let mut targets: Vec<Target> = Vec::new();
    for p in &patterns {
        let found: Vec<&MemberView> = views
            .iter()
            .filter(|v| p.matches(v.record.id.as_str(), &v.record.name, &v.record.labels))
            .collect();
        match p {
            nodeset::Pattern::Name(n) => match found.as_slice() {
                [v] if v.record.state.is_up() => targets.push(Target::of(v)),
                [v] => {
                    return Err(Unreachable(format!(
                        "node {n} is {} in the view of {}",
                        v.record.state.as_str(),
                        global.addr
                    ))
                    .into());
                }
                [] => {
                    return Err(Unreachable(format!(
                        "no member named {n} is known to the node at {}",
                        global.addr
                    ))
                    .into());
                }
                many => {
                    return Err(UsageError(format!(
                        "{} members are named {n}; name one by id",
                        many.len()
                    ))
                    .into());
                }
            },
            nodeset::Pattern::Label(..) => {
                let up: Vec<_> = found.iter().filter(|v| v.record.state.is_up()).collect();
                if up.is_empty() {
                    return Err(Unreachable(format!(
                        "no up member has the label {} in the view of {}",
                        &p.to_string()[1..],
                        global.addr
                    ))
                    .into());
                }
                targets.extend(up.into_iter().map(|v| Target::of(v)));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    targets.retain(|t| seen.insert(t.address.clone()));
    Ok(targets)
}

/// Matching up nodes that run jobs (`gsp node --exec`), best first, and
/// the names of the other up nodes that matched.
async fn candidates(
    args: &RunArgs,
    global: &GlobalArgs,
    home: &client::Conn,
) -> anyhow::Result<(Vec<Target>, Vec<String>)> {
    let mut admin = home.admin();
    let req = args.filters.request(0, client::timeout(global));
    let resp = admin
        .query(req)
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    let views = peers::views(admin_pb::ListMembersResponse {
        members: resp.nodes,
        ..admin_pb::ListMembersResponse::default()
    })?;
    let (exec, other): (Vec<MemberView>, Vec<MemberView>) = views
        .into_iter()
        .filter(|v| v.record.state.is_up())
        .partition(|v| v.record.exec);
    Ok((
        exec.iter().map(Target::of).collect(),
        other.into_iter().map(|v| v.record.name.clone()).collect(),
    ))
}

/// A job started on a node: its stream, from the `started` event on.
pub(crate) struct Started {
    pub target: Target,
    pub job: pb::Job,
    pub stream: tonic::Streaming<pb::JobEvent>,
}

/// Why a node did not start the job.
fn refusal(t: &Target, status: &tonic::Status) -> String {
    format!("{} ({}) refused: {}", t.name, t.address, status.message())
}

/// Why a job did not start on a node.
pub(crate) enum NotStarted {
    /// The node could not be reached or refused the job: nothing runs there.
    Refused(String),
    /// The node accepted the job, then went away before confirming it: it
    /// may have started (not tried elsewhere; exit 1, as a lost node).
    Lost(String),
}

pub(crate) async fn start(
    global: &GlobalArgs,
    t: &Target,
    request: pb::RunRequest,
    home: &client::Conn,
) -> Result<Started, NotStarted> {
    // The node at `--addr` is already connected.
    let mut client = if t.address == home.addr() {
        home.jobs()
    } else {
        client::jobs(global, &t.address)
            .await
            .map_err(|e| NotStarted::Refused(format!("{} ({}): {e:#}", t.name, t.address)))?
    };
    let mut stream = client
        .run(request)
        .await
        .map_err(|s| NotStarted::Refused(refusal(t, &s)))?
        .into_inner();
    match stream.message().await {
        Ok(Some(pb::JobEvent {
            kind: Some(pb::job_event::Kind::Started(job)),
        })) => Ok(Started {
            target: t.clone(),
            job,
            stream,
        }),
        Ok(_) => Err(NotStarted::Refused(format!(
            "{} ({}) sent no job",
            t.name, t.address
        ))),
        // The call was accepted: a refusal would have come as its answer.
        Err(s) => Err(NotStarted::Lost(format!(
            "lost {} ({}) while its job was starting: {}; the job may have started \
             there (see `gsp jobs --node {}`)",
            t.name,
            t.address,
            s.message(),
            t.name
        ))),
    }
}

/// Time between placement attempts under `--wait`.
pub(crate) const WAIT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a job went: the started jobs, the refusals, the nodes lost while
/// starting it, and how many jobs were asked for.
pub(crate) struct Placed {
    pub started: Vec<Started>,
    pub refused: Vec<String>,
    pub lost: Vec<String>,
    pub count: usize,
}

/// Finds the targets and starts the job on as many as asked.
pub(crate) async fn place(
    args: &RunArgs,
    global: &GlobalArgs,
    request: &pb::RunRequest,
) -> anyhow::Result<Placed> {
    let home = client::conn(global, &global.addr).await?;
    let (targets, count) = if args.node.is_empty() {
        let (found, no_exec) = candidates(args, global, &home).await?;
        if found.is_empty() {
            // Known in advance: a refusal (exit 3), not a miss.
            match no_exec.as_slice() {
                [] => {}
                [one] => {
                    return Err(Unreachable(format!(
                        "node {one} does not run jobs: start it with `gsp node --exec`"
                    ))
                    .into());
                }
                many => {
                    return Err(Unreachable(format!(
                        "{} match, but none runs jobs ({}): start them with `gsp node --exec` \
                         (`gsp peers` shows which do, under EXEC)",
                        crate::cli::output::count(many.len() as u64, "node"),
                        many.join(", ")
                    ))
                    .into());
                }
            }
            return Err(NegativeOutcome(if args.filters.is_empty() {
                format!(
                    "no member can take the job: every member the node at {} knows is down, \
                     in maintenance or disabled",
                    global.addr
                )
            } else {
                "no node matches the filters (try `gsp query` with them; nodes in maintenance \
                 or disabled take no jobs)"
                    .to_owned()
            })
            .into());
        }
        let want = if args.all {
            found.len()
        } else {
            args.count.map_or(1, |c| c as usize)
        };
        (found, want)
    } else {
        let targets = named(&home, global, &args.node).await?;
        let n = targets.len();
        (targets, n)
    };

    // One stream per job stays open until it ends.
    if count > 1 {
        let what = if args.all {
            "--all matched"
        } else if !args.node.is_empty() {
            "--node names"
        } else {
            "--count asks for"
        };
        fanout::room_for(count.min(targets.len()), what)?;
    }
    let mut started = Vec::new();
    let mut refused = Vec::new();
    let mut lost = Vec::new();
    if args.everywhere() {
        // Every match, a window at a time: the slowest node, not the sum,
        // sets the time.
        let results = fanout::each(targets, fanout::WINDOW, |t| {
            let (global, request, home) = (global.clone(), request.clone(), home.clone());
            async move { start(&global, &t, request, &home).await }
        })
        .await;
        for r in results {
            match r {
                Ok(s) => started.push(s),
                Err(NotStarted::Refused(why)) => {
                    crate::cli::output::note(&format!("gsp: {why}"));
                    refused.push(why);
                }
                Err(NotStarted::Lost(why)) => {
                    crate::cli::output::note(&format!("gsp: {why}"));
                    lost.push(why);
                }
            }
        }
    } else {
        for t in &targets {
            if started.len() >= count {
                break;
            }
            match start(global, t, request.clone(), &home).await {
                Ok(s) => started.push(s),
                Err(NotStarted::Refused(why)) => refused.push(why),
                Err(NotStarted::Lost(why)) => {
                    // Not tried elsewhere: it may be running there.
                    lost.push(why);
                    break;
                }
            }
        }
    }
    if started.is_empty() && lost.is_empty() {
        return Err(Unreachable(match refused.as_slice() {
            [one] => one.clone(),
            many => format!("every matching node refused the job: {}", many.join("; ")),
        })
        .into());
    }
    Ok(Placed {
        started,
        refused,
        lost,
        count,
    })
}
