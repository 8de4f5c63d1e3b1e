//! A running node: the server, the loops, identity on disk, and shutdown.

pub mod admin;
pub mod admin_broadcast;
mod admin_force;
mod admin_labels;
pub mod admin_maint;
pub mod advertise;
pub mod broadcast;
pub mod handler;
pub mod http;
pub mod http_maint;
pub mod identity;
pub mod jobs;
pub mod labels;
pub mod maintenance;
pub mod membership;
pub mod metrics;
mod metrics_broadcast;
mod metrics_security;
pub mod node;
pub mod on_event;
pub mod on_message;
pub mod posture;
pub mod resources;
pub mod snapshot;
pub mod view;
