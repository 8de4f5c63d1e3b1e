//! Starting a node: binds the gRPC server and the HTTP side port, and wires
//! the membership agent, broadcast engine, maintenance, labels, jobs and the
//! helper tasks (resource readings, peer snapshot, event and message hooks).

use std::sync::Arc;

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::Server;
use tracing::{info, warn};

use super::{Listeners, NodeConfig, NodeError, NodeHandle, ProbeChoice};
use crate::{
    core::membership::record::{MemberRecord, RecordSigner},
    probe::{ResourceProbe, SystemProbe},
    runtime::{
        admin::AdminService,
        admin::maint::MaintApi,
        broadcast::BroadcastEngine,
        identity::Identity,
        maintenance::{MaintenanceControl, store::Store},
        membership::MembershipAgent,
    },
    transport::{
        broadcast::links::LinkSet,
        data_plane::{server::DataPlaneService, sink::MessageSink, stats::DataPlaneStats},
        grpc_errors::{CountErrorsLayer, GrpcErrors},
        membership::{grpc::GrpcMembership, service::MembershipService},
        pb,
        pool::{ChannelPool, DEFAULT_POOL_CAPACITY},
        refusals::Refusals,
        tls::{self, conns::ConnTable},
        traffic::Traffic,
    },
};

impl NodeHandle {
    /// Starts serving on `listeners` and joins the cluster through the configured
    /// seeds. Received broadcasts go to the node's broadcast engine; other data
    /// plane messages (point-to-point, `hops == 0`) go to `sink`.
    ///
    /// # Errors
    /// A listener's address cannot be read or reflection cannot be built.
    pub async fn start(
        config: NodeConfig,
        identity: Identity,
        listeners: impl Into<Listeners>,
        sink: Arc<dyn MessageSink>,
    ) -> Result<Self, NodeError> {
        if config.tls.is_some() && config.shared_pools.is_some() {
            return Err(NodeError::SharedPoolsWithTls);
        }
        let listeners = listeners.into();
        let local_addr = listeners.grpc.local_addr().map_err(NodeError::Listener)?;
        let security_warning = crate::runtime::posture::plaintext_warning(
            config.tls.is_some(),
            config.insecure,
            local_addr,
        );
        if let Some(w) = &security_warning {
            warn!("{w}");
        }
        // Refusals nobody else counts: failed authentications, connections.
        let refusals = Arc::new(Refusals::default());
        let auth = config.auth.clone().counting_into(Arc::clone(&refusals));
        let http_addr = match &listeners.http {
            Some(l) => Some(l.local_addr().map_err(NodeError::Listener)?),
            None => None,
        };
        let advertised = crate::runtime::advertise::choose(
            config.advertise.as_deref(),
            config.advertise_host.as_deref(),
            local_addr,
        );
        if advertised.local_only {
            warn!(advertise = %advertised.addr, "{}", advertised.why);
        } else {
            info!(advertise = %advertised.addr, "advertising {}: {}", advertised.addr, advertised.why);
        }
        let advertise = advertised.addr;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let stats = Arc::new(DataPlaneStats::default());
        let traffic = Arc::new(Traffic::default());
        let dp = &config.data_plane;
        let (pool, control_pool) = match &config.shared_pools {
            Some(shared) => (shared.data.clone(), shared.control.clone()),
            None => (
                ChannelPool::with_tls(
                    dp.clone(),
                    DEFAULT_POOL_CAPACITY,
                    Arc::clone(&traffic),
                    config.tls.clone(),
                ),
                // Membership gets connections of its own: a probe must never
                // wait behind payload bytes queued on a shared connection (a
                // full link to a peer would otherwise make it look dead), nor
                // share a stalled one.
                ChannelPool::with_tls(
                    dp.clone(),
                    DEFAULT_POOL_CAPACITY,
                    Arc::clone(&traffic),
                    config.tls.clone(),
                ),
            ),
        };

        let store = identity.data_dir().map(Store::in_dir);
        let data_dir_health = Arc::new(crate::runtime::data_dir::DataDirHealth::default());
        if let Some(dir) = identity.data_dir() {
            tasks.spawn(crate::runtime::data_dir::keep_checking(
                dir.to_path_buf(),
                Arc::clone(&data_dir_health),
                shutdown.clone(),
            ));
        }
        let loaded = crate::runtime::maintenance::load(store.as_ref())?;
        let mut record = MemberRecord::new(
            identity.node_id.clone(),
            config.name.clone(),
            advertise.clone(),
            config.domain.clone(),
            identity.incarnation,
        );
        let label_overrides = crate::runtime::labels::load(identity.data_dir())?;
        record.labels = crate::core::labels::effective(&config.labels, &label_overrides);
        record.maintenance = loaded.0.state;
        record.exec = config.jobs.enabled;
        record.updated_unix_ns = crate::clock::unix_ns();
        // Under TLS, records and broadcasts are signed with the node's key and
        // others' are checked against the CA.
        let keys = match &config.tls {
            Some(tls) => Some((
                tls::origin::OriginSigner::from_tls(tls).map(Arc::new),
                tls::origin::OriginVerifier::from_tls(tls)?,
            )),
            None => None,
        };
        let mut agent_config = config.membership.clone();
        let snapshot = identity
            .data_dir()
            .map(crate::runtime::snapshot::Snapshot::in_dir);
        if let Some(snap) = &snapshot {
            let known: Vec<String> = snap.load().into_iter().map(|p| p.address).collect();
            if !known.is_empty() {
                info!(
                    peers = known.len(),
                    "trying the peers known in the last run alongside the seeds"
                );
            }
            agent_config.rejoin = known;
        }
        if let Some((signer, verifier)) = &keys {
            agent_config.record_auth = Some(crate::runtime::membership::RecordAuth {
                signer: signer.clone().map(|s| s as Arc<dyn RecordSigner>),
                verifier: verifier.clone(),
            });
            // Every record's name is checked against its signer's certificate.
            agent_config.membership.names_certified = true;
        }
        let agent = MembershipAgent::start(
            agent_config,
            record,
            Arc::new(GrpcMembership::new(control_pool)),
        );
        if config.on_event.is_none() {
            // Nobody needs the events from the start: let them go.
            drop(agent.events_from_start());
        }

        let links = LinkSet::new(
            pool.clone(),
            identity.node_id.clone(),
            config.domain.clone(),
            dp.clone(),
            Arc::clone(&stats),
        );
        let mut engine_config = config.broadcast.clone();
        engine_config.seen_dir = identity.data_dir().map(std::path::Path::to_path_buf);
        if let Some((signer, verifier)) = keys {
            engine_config.origin_auth =
                Some(crate::runtime::broadcast::OriginKeys { signer, verifier });
        }
        let engine = BroadcastEngine::start(
            engine_config,
            agent.clone(),
            Arc::new(Arc::new(links)),
            sink,
        );
        let data_plane = DataPlaneService::new(
            identity.node_id.clone(),
            config.domain.clone(),
            dp.clone(),
            engine.sink(),
            Arc::clone(&stats),
            shutdown.clone(),
            tasks.clone(),
        )
        .with_names({
            let agent = agent.clone();
            Arc::new(move |id| crate::transport::membership::MembershipHandler::name_of(&agent, id))
        })
        .into_server();
        let (health, health_service) = tonic_health::server::health_reporter();
        let maint =
            MaintenanceControl::start(loaded, store, agent.clone(), engine.clone(), health.clone())
                .await;
        let labels = crate::runtime::labels::LabelsControl::new(
            config.labels.clone(),
            label_overrides,
            identity.data_dir(),
            agent.clone(),
        );
        let reservations = crate::runtime::resources::Reservations::default();
        // `gsp watch`, `gsp watch --messages` and `gsp logs` streams, counted
        // together per caller address and in all.
        let stream_slots = crate::runtime::stream_slots::StreamSlots::default();
        let jobs = crate::runtime::jobs::Jobs::new(
            config.jobs.clone(),
            reservations.clone(),
            (identity.node_id.to_string(), config.name.clone()),
            identity.data_dir().map(std::path::Path::to_path_buf),
            shutdown.clone(),
        );
        let side_jobs = jobs.clone();
        let jobs =
            crate::runtime::jobs::service::JobsService::new(jobs, auth.clone(), maint.clone())
                .with_stream_slots(stream_slots.clone())
                .into_server();
        let membership = MembershipService::with_rates(Arc::new(agent.clone()), config.peer_rates);
        let max_admin_request = usize::try_from(config.broadcast.max_payload)
            .unwrap_or(usize::MAX)
            .saturating_add(1 << 20);
        let admin = AdminService::new(
            agent.clone(),
            engine.clone(),
            MaintApi {
                control: maint.clone(),
                labels: labels.clone(),
                agent: agent.clone(),
                pool: pool.clone(),
                auth: auth.clone(),
            },
            shutdown.clone(),
            config.query_timeout,
        )
        .with_security_warning(security_warning)
        .with_data_dir_health(Arc::clone(&data_dir_health))
        .with_stream_slots(stream_slots)
        .into_server(max_admin_request);
        let probe: Option<Box<dyn ResourceProbe>> = match &config.probe {
            ProbeChoice::System { nvml_library } => {
                Some(Box::new(SystemProbe::new(nvml_library.as_ref())))
            }
            ProbeChoice::Fake(f) => Some(Box::new(f.clone())),
            ProbeChoice::Off => None,
        };
        if let Some(probe) = probe {
            tasks.spawn(crate::runtime::resources::run(
                agent.clone(),
                probe,
                config.resources,
                reservations.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(snap) = snapshot {
            tasks.spawn(crate::runtime::snapshot::keep(
                snap,
                agent.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(handlers) = &config.on_event {
            tasks.spawn(crate::runtime::on_event::run(
                agent.clone(),
                handlers.clone(),
                crate::runtime::on_event::LocalNode {
                    id: identity.node_id.to_string(),
                    name: config.name.clone(),
                },
                shutdown.clone(),
            ));
        }
        if let Some(cmd) = &config.on_message {
            tasks.spawn(crate::runtime::on_message::run(
                engine.clone(),
                cmd.clone(),
                shutdown.clone(),
            ));
        }
        health
            .set_serving::<pb::gossip::v1::data_plane_server::DataPlaneServer<DataPlaneService>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let grpc_errors = Arc::new(GrpcErrors::default());
        let router = Server::builder()
            .layer(
                CountErrorsLayer::new(Arc::clone(&grpc_errors))
                    .with_refusals(Arc::clone(&refusals)),
            )
            .layer(tls::roles::NodeOnlyLayer::new(Arc::clone(&refusals)))
            // Gossip cancels calls that time out; under load many resets are normal
            // and must not make h2 drop the connection (its default allows 20).
            .http2_max_pending_accept_reset_streams(Some(1024))
            // A peer that vanished is noticed and its connection slot freed.
            .http2_keepalive_interval(Some(dp.keepalive.interval))
            .http2_keepalive_timeout(Some(dp.keepalive.timeout))
            .max_frame_size(dp.h2_max_frame_bytes)
            .initial_stream_window_size(dp.h2_stream_window_bytes)
            .initial_connection_window_size(dp.h2_connection_window_bytes)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(data_plane)
            .add_service(membership.membership_server())
            .add_service(membership.discovery_server())
            .add_service(jobs)
            .add_service(admin);
        let conns = ConnTable::new(config.conn_limits.clone());
        let incoming = tls::incoming::incoming(
            listeners.grpc,
            Arc::clone(&traffic),
            config.tls.clone(),
            Arc::clone(&conns),
            Arc::clone(&refusals),
            dp.keepalive,
        );
        let signal = shutdown.clone().cancelled_owned();
        let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, signal));
        let http = listeners.http.map(|l| {
            tokio::spawn(crate::runtime::http::serve(
                l,
                crate::runtime::metrics::Sources {
                    agent: agent.clone(),
                    data_plane: Arc::clone(&stats),
                    traffic: Arc::clone(&traffic),
                    grpc_errors: Arc::clone(&grpc_errors),
                    refusals: Arc::clone(&refusals),
                    conns: Arc::clone(&conns),
                    broadcast: engine.clone(),
                    maintenance: maint.clone(),
                    tls: config.tls.clone(),
                    data_dir: Arc::clone(&data_dir_health),
                    jobs: side_jobs,
                    auth: auth.clone(),
                },
                shutdown.clone(),
            ))
        });
        info!(
            node_id = %identity.node_id,
            listen = %local_addr,
            advertise = %advertise,
            http = ?http_addr,
            domain = %config.domain,
            "node serving"
        );

        Ok(Self {
            pool,
            engine,
            maint,
            labels,
            identity,
            config,
            local_addr,
            http_addr,
            advertise,
            stats,
            traffic,
            grpc_errors,
            conns,
            refusals,
            agent,
            shutdown,
            tasks,
            health,
            server: Some(server),
            http,
        })
    }
}
