//! `gsp query`: finds nodes that can take a job now, asking peers up to
//! `--max-hops` away.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use super::{GlobalArgs, client, exit::ExitStatus, output, peers};
use crate::{
    core::{
        membership::record::Tags,
        resources::{
            query::MAX_HOPS_CAP,
            request::{GpuFilter, MAX_MODEL_LEN, parse_cpu, parse_gpus, parse_memory},
        },
        units::HumanBytes,
    },
    runtime::view::NodeJson,
    transport::{
        membership::extras::tags_to_pb,
        pb::{admin::v1 as pb, discovery as dpb},
    },
};

/// Schema of `gsp query --json`.
pub const SCHEMA: &str = "gsp.query.v1";

/// Arguments of `gsp query`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp query --cpu 2 --memory 4GiB             # nodes with 2 cores and 4 GiB free now (exit 1: none)
  gsp query --gpu 1 --tag gpu --limit 1 --json
  gsp query --gpu 2 --gpu-memory 30GiB --gpu-model H100   # 2 free H100s with 30 GiB free each
  gsp query --label zone=eu --max-hops 2      # ask peers up to 2 hops away")]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    filters: Filters,
    /// Return at most this many nodes, best first.
    #[arg(long, value_name = "K")]
    limit: Option<u32>,
}

/// What a node must have: `gsp query`'s and `gsp run`'s filters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Filters {
    /// Free CPU needed: cores (2, 0.5) or millicores (2000m).
    #[arg(long, value_name = "CPU", allow_hyphen_values = true, value_parser = |s: &str| parse_cpu(s).map_err(|e| e.to_string()))]
    cpu: Option<i64>,
    /// Free memory needed: 4GiB, 512MiB, or bytes.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = |s: &str| parse_memory(s).map_err(|e| e.to_string()))]
    memory: Option<i64>,
    /// Free GPUs needed (a MIG instance counts as one).
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = |s: &str| parse_gpus(s).map_err(|e| e.to_string()))]
    gpu: Option<i64>,
    /// Free memory each of those GPUs must have: 30GiB, or bytes (implies --gpu 1 when --gpu is not given).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = |s: &str| parse_memory(s).map_err(|e| e.to_string()))]
    gpu_memory: Option<i64>,
    /// Text each of those GPUs' model name must contain, any case: H100, "A100 80GB" (implies --gpu 1 when --gpu is not given).
    #[arg(long, value_name = "TEXT", value_parser = parse_gpu_model)]
    gpu_model: Option<String>,
    /// Capability tag required (repeatable): cpu, gpu, memory, camera.
    #[arg(long, value_parser = ["cpu", "gpu", "memory", "camera"])]
    tag: Vec<String>,
    /// Label required (repeatable; all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = peers::parse_label)]
    label: Vec<(String, String)>,
    /// Also ask peers this many hops away (0: the node's own view; capped at 8).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) max_hops: u32,
}

impl Filters {
    /// The query for these filters, answered within `timeout` (the node gets
    /// 90% of it, so its answer arrives), at most `limit` nodes (0: all).
    pub(crate) fn request(
        &self,
        limit: u32,
        timeout: std::time::Duration,
    ) -> tonic::Request<pb::QueryRequest> {
        let tags = Tags {
            cpu: self.tag.iter().any(|t| t == "cpu"),
            gpu: self.tag.iter().any(|t| t == "gpu"),
            memory: self.tag.iter().any(|t| t == "memory"),
            camera: self.tag.iter().any(|t| t == "camera"),
        };
        let mut req = tonic::Request::new(pb::QueryRequest {
            resources: Some(dpb::ResourceRequest {
                cpu: self.cpu.unwrap_or(0),
                memory: self.memory.unwrap_or(0),
                gpu: self.gpus(),
                gsp_gpu_memory: self.gpu_filter().memory_bytes,
                gsp_gpu_model: self.gpu_filter().model,
            }),
            tags: Some(tags_to_pb(tags)),
            labels: self
                .label
                .iter()
                .cloned()
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            max_hops: self.max_hops,
            timeout_ms: u32::try_from(timeout.mul_f64(0.9).as_millis()).unwrap_or(u32::MAX),
            limit,
        });
        req.set_timeout(timeout);
        req
    }

    /// The resources asked for (what `gsp run` reserves).
    pub(crate) fn resources(&self) -> crate::core::membership::record::Amounts {
        crate::core::membership::record::Amounts {
            cpu_millis: self.cpu.unwrap_or(0).max(0),
            memory_bytes: self.memory.unwrap_or(0).max(0),
            gpus: self.gpus(),
        }
    }

    /// GPUs asked for: `--gpu`, or 1 when only `--gpu-memory` or
    /// `--gpu-model` is given.
    fn gpus(&self) -> i64 {
        match self.gpu {
            Some(n) => n.max(0),
            None if self.gpu_memory.is_some() || self.gpu_model.is_some() => 1,
            None => 0,
        }
    }

    /// What each GPU asked for must offer.
    pub(crate) fn gpu_filter(&self) -> GpuFilter {
        GpuFilter {
            memory_bytes: self.gpu_memory.map_or(0, |m| u64::try_from(m).unwrap_or(0)),
            model: self.gpu_model.clone().unwrap_or_default(),
        }
    }

    /// Whether any filter is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.cpu.is_none()
            && self.memory.is_none()
            && self.gpu.is_none()
            && self.gpu_memory.is_none()
            && self.gpu_model.is_none()
            && self.tag.is_empty()
            && self.label.is_empty()
    }
}

/// A `--gpu-model` value: 1-128 bytes of printable text.
fn parse_gpu_model(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_MODEL_LEN {
        return Err(format!(
            "{} bytes, over the limit of {MAX_MODEL_LEN}",
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(s.trim().to_owned())
}

#[derive(Serialize)]
struct QueryJson {
    schema: &'static str,
    query_id: String,
    nodes: Vec<NodeJson>,
    total: usize,
    matched: u32,
    hops_used: u32,
    max_hops: u32,
}

/// Exit 0 when a node matches, 1 when none does.
pub(crate) async fn run(args: QueryArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let mut client = client::admin(&global).await?;
    let timeout = client::timeout(&global);
    let req = args.filters.request(args.limit.unwrap_or(0), timeout);
    let resp = client
        .query(req)
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    let members = peers::views(pb::ListMembersResponse {
        members: resp.nodes,
        ..pb::ListMembersResponse::default()
    })?;
    let nodes: Vec<NodeJson> = members.iter().map(NodeJson::from_view).collect();
    if global.json {
        output::json(&QueryJson {
            schema: SCHEMA,
            query_id: resp.query_id,
            total: nodes.len(),
            matched: resp.total,
            hops_used: resp.hops_used,
            max_hops: resp.max_hops,
            nodes,
        })?;
    } else {
        output::stdout(&render(
            &nodes,
            (resp.total, resp.hops_used),
            (args.filters.max_hops, resp.max_hops),
            global.color.resolve(),
        ))?;
    }
    Ok(if members.is_empty() {
        ExitStatus::Negative
    } else {
        ExitStatus::Success
    })
}

fn render(
    nodes: &[NodeJson],
    (matched, hops_used): (u32, u32),
    (asked_hops, max_hops): (u32, u32),
    color: bool,
) -> String {
    let mut out = String::new();
    if !nodes.is_empty() {
        // Fitted to the terminal (100 columns into a pipe): the node id
        // wraps first.
        let mut t = super::style::table(false, color);
        t.set_header(vec![
            "NAME", "ADDRESS", "CPU FREE", "MEM FREE", "GPU FREE", "EXEC", "LABELS", "NODE ID",
        ]);
        for n in nodes {
            // A node that has not published resources yet shows `-`, not 0.
            let free = |u: &Option<crate::runtime::view::UsageJson>, f: &dyn Fn(i64) -> String| {
                u.map_or_else(|| "-".to_owned(), |u| f(u.available))
            };
            t.add_row(vec![
                n.node_name.clone(),
                n.address.clone(),
                free(&n.cpu, &|v| format!("{v}m")),
                free(&n.memory, &|v| {
                    HumanBytes(u64::try_from(v).unwrap_or(0)).to_string()
                }),
                free(&n.gpu, &|v| v.to_string()),
                if n.exec { "yes" } else { "-" }.to_owned(),
                n.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                n.node_id.clone(),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    let _ = write!(
        out,
        "{} of {} matching",
        nodes.len(),
        super::output::count(matched, "node")
    );
    if matched > 0 {
        let _ = write!(
            out,
            ", found within {}",
            super::output::count(u64::from(hops_used), "hop")
        );
    }
    out.push('\n');
    if asked_hops > max_hops {
        let _ = writeln!(
            out,
            "note: --max-hops {asked_hops} was capped at {MAX_HOPS_CAP}"
        );
    }
    out
}
