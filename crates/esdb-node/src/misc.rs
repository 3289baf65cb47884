//! The small services: server features (the handshake), gossip (one leader: this node), and
//! persistent subscriptions (out of scope: an empty list, everything else unimplemented).

use tonic::{Request, Response, Status, Streaming};

use crate::proto::event_store::client::gossip::{
    self, gossip_server, member_info::VNodeState, ClusterInfo, EndPoint, MemberInfo,
};
use crate::proto::event_store::client::persistent_subscriptions::{
    self as ps, persistent_subscriptions_server,
};
use crate::proto::event_store::client::server_features::{
    server_features_server, SupportedMethod, SupportedMethods,
};
use crate::NodeOptions;

pub struct Features;

fn method(service: &str, name: &str, features: &[&str]) -> SupportedMethod {
    SupportedMethod {
        method_name: name.to_owned(),
        service_name: service.to_owned(),
        features: features.iter().map(|f| (*f).to_owned()).collect(),
    }
}

#[tonic::async_trait]
impl server_features_server::ServerFeatures for Features {
    async fn get_supported_methods(
        &self,
        _request: Request<()>,
    ) -> Result<Response<SupportedMethods>, Status> {
        let streams = "event_store.client.streams.streams";
        Ok(Response::new(SupportedMethods {
            methods: vec![
                method(streams, "read", &["position", "events"]),
                method(streams, "append", &[]),
                method(streams, "delete", &[]),
                method(streams, "tombstone", &[]),
                method(streams, "batchappend", &["deadline_duration"]),
                method("event_store.client.gossip.gossip", "read", &[]),
                method(
                    "event_store.client.server_features.serverfeatures",
                    "getsupportedmethods",
                    &[],
                ),
            ],
            event_store_server_version: crate::SERVER_VERSION.to_owned(),
        }))
    }
}

pub struct Gossip {
    host: String,
    port: u16,
    instance: uuid::Uuid,
}

impl Gossip {
    pub fn new(o: &NodeOptions) -> Self {
        Self {
            host: o.advertise_host.clone(),
            port: o.advertise_port,
            instance: uuid::Uuid::new_v4(),
        }
    }
}

#[tonic::async_trait]
impl gossip_server::Gossip for Gossip {
    async fn read(&self, _request: Request<()>) -> Result<Response<ClusterInfo>, Status> {
        let ticks = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64 * 10);
        Ok(Response::new(gossip::ClusterInfo {
            members: vec![MemberInfo {
                instance_id: Some(crate::convert::uuid_to(self.instance, false)),
                time_stamp: ticks,
                state: VNodeState::Leader as i32,
                is_alive: true,
                http_end_point: Some(EndPoint {
                    address: self.host.clone(),
                    port: u32::from(self.port),
                }),
            }],
        }))
    }
}

pub struct Persistent;

fn unsupported<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "persistent subscriptions are not supported by the embedded node",
    ))
}

#[tonic::async_trait]
impl persistent_subscriptions_server::PersistentSubscriptions for Persistent {
    type ReadStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<ps::ReadResp, Status>> + Send>>;

    async fn create(&self, _r: Request<ps::CreateReq>) -> Result<Response<ps::CreateResp>, Status> {
        unsupported()
    }
    async fn update(&self, _r: Request<ps::UpdateReq>) -> Result<Response<ps::UpdateResp>, Status> {
        unsupported()
    }
    async fn delete(&self, _r: Request<ps::DeleteReq>) -> Result<Response<ps::DeleteResp>, Status> {
        unsupported()
    }
    async fn read(
        &self,
        _r: Request<Streaming<ps::ReadReq>>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        unsupported()
    }
    async fn get_info(
        &self,
        _r: Request<ps::GetInfoReq>,
    ) -> Result<Response<ps::GetInfoResp>, Status> {
        unsupported()
    }
    async fn replay_parked(
        &self,
        _r: Request<ps::ReplayParkedReq>,
    ) -> Result<Response<ps::ReplayParkedResp>, Status> {
        unsupported()
    }
    /// No groups: an empty list (clients' test tear-downs call it).
    async fn list(&self, _r: Request<ps::ListReq>) -> Result<Response<ps::ListResp>, Status> {
        Ok(Response::new(ps::ListResp {
            subscriptions: Vec::new(),
        }))
    }
    async fn restart_subsystem(&self, _r: Request<()>) -> Result<Response<()>, Status> {
        unsupported()
    }
}
