//! A running node: the server, the loops, identity on disk, and shutdown.

pub mod admin;
pub mod advertise;
pub mod broadcast;
pub mod data_dir;
pub mod handler;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod labels;
pub mod latency;
pub mod maintenance;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod on_event;
pub mod on_message;
pub mod posture;
pub mod resources;
pub mod snapshot;
pub mod state_file;
pub mod stream_slots;
pub mod view;
