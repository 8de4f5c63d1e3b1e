//! The `gsp.jobs.v1.Jobs` service: starts, lists, follows and cancels this
//! node's jobs. Starting and cancelling take the admin token when the node
//! has one (and under mTLS a client certificate, as every call does) and are
//! logged with the actor; a node in maintenance or disabled starts none.

use std::{pin::Pin, sync::Arc};

use crate::runtime::stream_slots::{Slotted, StreamSlots};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};
use tracing::info;

use super::{
    Job, Jobs, ReaderPin, StartError,
    logfile::{self, FilePos},
};
use crate::{
    core::{
        jobs::log::{Cursor, Entry},
        maintenance::Maintenance,
        membership::record::Amounts,
        resources::request::{GpuFilter, MAX_MODEL_LEN},
    },
    runtime::maintenance::MaintenanceControl,
    transport::{
        auth::{Access, AdminAuth},
        pb::jobs::v1 as pb,
    },
};

mod convert;

use convert::{entry_to_pb, event, spec_from_pb};
pub use convert::{job_to_pb, status_from_pb};

/// Events queued per stream before the follower waits on the client.
const STREAM_QUEUE: usize = 64;
/// Output bytes taken from the ring per read.
const READ_BYTES: usize = 1 << 20;
/// Log file entries read at once.
const FILE_BATCH: usize = 64;
/// Requests (a job's spec) up to this size.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The service.
#[derive(Debug, Clone)]
pub struct JobsService {
    jobs: Jobs,
    auth: AdminAuth,
    maint: MaintenanceControl,
    /// Bounds `Logs` streams.
    streams: StreamSlots,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send>>;

impl JobsService {
    /// Serves `jobs`, checking callers with `auth`, refusing new jobs while
    /// `maint` is not normal.
    pub fn new(jobs: Jobs, auth: AdminAuth, maint: MaintenanceControl) -> Self {
        Self {
            jobs,
            auth,
            maint,
            streams: StreamSlots::default(),
        }
    }

    /// Counts its log streams in `slots` (shared with the other services
    /// that hold streams open).
    #[must_use]
    pub fn with_stream_slots(mut self, slots: StreamSlots) -> Self {
        self.streams = slots;
        self
    }

    /// The tonic server.
    pub fn into_server(self) -> pb::jobs_server::JobsServer<Self> {
        pb::jobs_server::JobsServer::new(self)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(READ_BYTES + (64 << 10))
    }

    /// Streams `job`'s events (live while `follow`), holding output back for
    /// the reader with `pin` if it has one (the client that started the job:
    /// taken before the job wrote anything).
    fn stream(&self, job: Arc<Job>, follow: bool, pin: Option<ReaderPin>) -> EventStream {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let shutdown = self.jobs.shutdown().clone();
        let node = self.jobs.node().clone();
        // The caller that started the job (it holds the pin) learns its id
        // from this stream's first event: the record is on disk already
        // (`Jobs::launch`).
        tokio::spawn(async move {
            tokio::select! {
                () = stream_events(&job, &node, (follow, pin), &tx) => {}
                () = shutdown.cancelled() => {
                    let _ = tx.send(Err(Status::unavailable("the node is shutting down"))).await;
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

/// Sends `job`'s events from its start: `started`, retained entries (with a
/// gap where the ring dropped output), then live ones while `follow`, and
/// `finished` once the job is over and everything was sent.
async fn stream_events(
    job: &Job,
    node: &(String, String),
    (follow, pin): (bool, Option<ReaderPin>),
    tx: &mpsc::Sender<Result<pb::JobEvent, Status>>,
) {
    let mut changes = job.subscribe();
    let started = job_to_pb(job, node);
    if tx
        .send(Ok(event(pb::job_event::Kind::Started(started))))
        .await
        .is_err()
    {
        return;
    }
    let mut cursor = Cursor::default();
    let mut file_pos = FilePos::default();
    loop {
        changes.borrow_and_update();
        // What the ring no longer holds comes from the job's log file.
        if let Some(entries) = from_file(job, &cursor, &mut file_pos).await {
            for e in entries {
                cursor.skip(&e);
                if tx.send(Ok(event(entry_to_pb(e)))).await.is_err() {
                    return;
                }
            }
            continue;
        }
        let (read, over) = {
            let g = job.lock();
            let read = g.log.read(&mut cursor, READ_BYTES);
            (
                read,
                g.log.is_read(&cursor).then(|| g.state.status().is_final()),
            )
        };
        // Sent (queued) below before anything more is held for this reader.
        let idle = read.entries.is_empty() && read.gap == 0;
        if read.gap > 0 {
            let gap = pb::job_event::Kind::Gap(pb::LogGap { bytes: read.gap });
            if tx.send(Ok(event(gap))).await.is_err() {
                return;
            }
        }
        for e in read.entries {
            if tx.send(Ok(event(entry_to_pb(e)))).await.is_err() {
                return;
            }
        }
        if let Some(p) = &pin {
            p.advance(cursor);
        }
        match over {
            Some(true) => {
                let done = job_to_pb(job, node);
                let _ = tx
                    .send(Ok(event(pb::job_event::Kind::Finished(done))))
                    .await;
                return;
            }
            Some(false) if !follow => return,
            _ => {}
        }
        if idle && changes.changed().await.is_err() {
            return;
        }
    }
}

/// Entries from `cursor` on that the ring dropped but the job's log file
/// has (a batch), or `None` when there are none to read there.
async fn from_file(job: &Job, cursor: &Cursor, pos: &mut FilePos) -> Option<Vec<Entry>> {
    let (path, end) = {
        let g = job.lock();
        let f = g.file.as_ref()?;
        (f.path().to_path_buf(), g.log.first_seq().min(f.entries()))
    };
    let from = cursor.seq();
    if from >= end {
        return None;
    }
    let mut p = *pos;
    let read = tokio::task::spawn_blocking(move || {
        logfile::read(&path, &mut p, from, end, FILE_BATCH).map(|e| (e, p))
    })
    .await
    .ok()?;
    match read {
        Ok((entries, p)) if !entries.is_empty() => {
            *pos = p;
            Some(entries)
        }
        // Unreadable or shorter than recorded: the ring reports the gap.
        _ => None,
    }
}

fn not_found(id: &str) -> Status {
    Status::not_found(format!("no job '{id}' on this node"))
}

#[tonic::async_trait]
impl pb::jobs_server::Jobs for JobsService {
    type RunStream = EventStream;
    type LogsStream = EventStream;

    async fn run(
        &self,
        request: Request<pb::RunRequest>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let actor = self.auth.check(&request, Access::Write)?;
        if !self.jobs.config().enabled {
            return Err(Status::failed_precondition(
                StartError::Disabled.to_string(),
            ));
        }
        let maint = self.maint.status();
        if maint.state != Maintenance::Normal {
            return Err(Status::failed_precondition(format!(
                "node {} is in {} and takes no new jobs{}",
                self.jobs.node().1,
                maint.state.as_str(),
                if maint.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", maint.reason)
                }
            )));
        }
        let req = request.into_inner();
        let reserve = Amounts {
            cpu_millis: req.reserve_cpu_millis,
            memory_bytes: req.reserve_memory_bytes,
            gpus: req.reserve_gpus,
        };
        if reserve.cpu_millis < 0 || reserve.memory_bytes < 0 || reserve.gpus < 0 {
            return Err(Status::invalid_argument("reserve_* must not be negative"));
        }
        if req.reserve_gpu_model.len() > MAX_MODEL_LEN
            || req.reserve_gpu_model.chars().any(char::is_control)
        {
            return Err(Status::invalid_argument(format!(
                "reserve_gpu_model must be at most {MAX_MODEL_LEN} bytes of printable text"
            )));
        }
        let gpu = GpuFilter {
            memory_bytes: req.reserve_gpu_memory_bytes,
            model: req.reserve_gpu_model.clone(),
        };
        if reserve.gpus == 0 && !gpu.is_empty() {
            return Err(Status::invalid_argument(
                "reserve_gpu_memory_bytes and reserve_gpu_model need reserve_gpus of 1 or more",
            ));
        }
        let spec = spec_from_pb(req)?;
        let refused = |e: StartError| match e {
            StartError::Disabled => Status::failed_precondition(e.to_string()),
            StartError::Busy(_) | StartError::Short(_) => Status::resource_exhausted(e.to_string()),
            // The node cannot keep its promise (a job id means a record on
            // disk): as unavailable for jobs as a node that is down.
            StartError::Unrecorded(_) => {
                Status::unavailable(format!("node {}: {e}", self.jobs.node().1))
            }
        };
        let admitted = self
            .jobs
            .start(spec, actor, reserve, &gpu)
            .map_err(refused)?;
        let (job, pin) = self.jobs.launch(admitted).await.map_err(refused)?;
        let steps = job.lock().state.steps.len();
        info!(target: "audit", job = %job.id, actor = %job.actor, steps, "job started");
        Ok(Response::new(self.stream(job, true, Some(pin))))
    }

    async fn list(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        self.auth.check(&request, Access::Read)?;
        let want = &request.get_ref().job_id;
        let node = self.jobs.node();
        let jobs = if want.is_empty() {
            self.jobs.list()
        } else {
            self.jobs.get(want).into_iter().collect()
        };
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.iter().map(|j| job_to_pb(j, node)).collect(),
            exec_enabled: self.jobs.config().enabled,
        }))
    }

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        self.auth.check(&request, Access::Read)?;
        let slot = self.streams.admit(&request)?;
        let req = request.into_inner();
        let job = self
            .jobs
            .get(&req.job_id)
            .ok_or_else(|| not_found(&req.job_id))?;
        // Only the client that started the job (a writer) holds its output
        // back; a follower with read access alone must not slow a job, so it
        // is told of a gap if it falls behind instead.
        let stream = self.stream(job, req.follow, None);
        Ok(Response::new(Box::pin(Slotted::new(stream, slot))))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let actor = self.auth.check(&request, Access::Write)?;
        let id = request.into_inner().job_id;
        let asked = self
            .jobs
            .cancel(&id, &actor)
            .ok_or_else(|| not_found(&id))?;
        if asked {
            info!(target: "audit", job = %id, actor = %actor, "job cancelled");
        }
        let job = self.jobs.get(&id).ok_or_else(|| not_found(&id))?;
        Ok(Response::new(job_to_pb(&job, self.jobs.node())))
    }
}
