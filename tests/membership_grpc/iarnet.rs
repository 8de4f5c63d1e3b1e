//! iarnet's messages, with only iarnet's fields: what a client generated from
//! iarnet's discovery.proto sends and understands.
#![allow(unreachable_pub, reason = "test-local message definitions")]

#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerNodeInfo {
    #[prost(string, tag = "1")]
    pub node_id: String,
    #[prost(string, tag = "2")]
    pub node_name: String,
    #[prost(string, tag = "3")]
    pub address: String,
    #[prost(string, tag = "4")]
    pub domain_id: String,
    #[prost(int32, tag = "7")]
    pub status: i32,
    #[prost(int64, tag = "8")]
    pub last_seen: i64,
    #[prost(int64, tag = "9")]
    pub last_updated: i64,
    #[prost(uint64, tag = "10")]
    pub version: u64,
    #[prost(int32, tag = "11")]
    pub gossip_count: i32,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeInfoGossipMessage {
    #[prost(string, tag = "1")]
    pub sender_node_id: String,
    #[prost(string, tag = "2")]
    pub sender_address: String,
    #[prost(string, tag = "3")]
    pub sender_domain_id: String,
    #[prost(message, repeated, tag = "4")]
    pub nodes: Vec<PeerNodeInfo>,
    #[prost(string, tag = "5")]
    pub message_id: String,
    #[prost(int64, tag = "6")]
    pub timestamp: i64,
    #[prost(int32, tag = "7")]
    pub ttl: i32,
    #[prost(int32, tag = "8")]
    pub max_hops: i32,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeInfoGossipResponse {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<PeerNodeInfo>,
    #[prost(string, tag = "2")]
    pub message_id: String,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceRequest {
    #[prost(int64, tag = "1")]
    pub cpu: i64,
    #[prost(int64, tag = "2")]
    pub memory: i64,
    #[prost(int64, tag = "3")]
    pub gpu: i64,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceQueryRequest {
    #[prost(string, tag = "1")]
    pub query_id: String,
    #[prost(string, tag = "2")]
    pub requester_node_id: String,
    #[prost(string, tag = "4")]
    pub requester_domain_id: String,
    #[prost(message, optional, tag = "5")]
    pub resource_request: Option<ResourceRequest>,
    #[prost(int32, tag = "8")]
    pub max_hops: i32,
    #[prost(int32, tag = "9")]
    pub ttl: i32,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceQueryResponse {
    #[prost(string, tag = "1")]
    pub query_id: String,
    #[prost(string, tag = "2")]
    pub responder_node_id: String,
    #[prost(message, repeated, tag = "4")]
    pub available_nodes: Vec<PeerNodeInfo>,
    #[prost(bool, tag = "6")]
    pub is_final: bool,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetLocalNodeInfoRequest {}
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetLocalNodeInfoResponse {
    #[prost(message, optional, tag = "1")]
    pub node_info: Option<PeerNodeInfo>,
}
