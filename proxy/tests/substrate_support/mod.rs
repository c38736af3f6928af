//! A stand-in for substrate, for the substrate backend's tests: a tonic server implementing
//! `ateapi.Control` (proto/ateapi.proto) with upstream's actor life cycle and scriptable failures, and
//! an atenet-like gateway that routes by Host header to each RUNNING actor's workload. With a
//! workload pool the workloads are real Chromium sandboxes (the local backend's); without one the
//! gateway answers for the workload itself (for tests of the control path only).
//!
//! Every RPC and every gateway request is recorded, so tests assert the exact requests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandcanary_proxy::backend::Backend;
use sandcanary_proxy::backend::local::LocalBackend;
use sandcanary_proxy::backend::substrate::HOST_SUFFIX;
use sandcanary_proxy::backend::substrate::proto::actor::Status as ActorStatus;
use sandcanary_proxy::backend::substrate::proto::control_server::{Control, ControlServer};
use sandcanary_proxy::backend::substrate::proto::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

/// One RPC as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rpc {
    Get(String),
    Create {
        actor: String,
        namespace: String,
        name: String,
    },
    Resume {
        actor: String,
        boot: bool,
    },
    Suspend(String),
    Delete(String),
    List {
        page_size: i32,
        page_token: String,
    },
}

impl Rpc {
    pub fn name(&self) -> &'static str {
        match self {
            Rpc::Get(_) => "GetActor",
            Rpc::Create { .. } => "CreateActor",
            Rpc::Resume { .. } => "ResumeActor",
            Rpc::Suspend(_) => "SuspendActor",
            Rpc::Delete(_) => "DeleteActor",
            Rpc::List { .. } => "ListActors",
        }
    }
}

/// Scripted behaviour. Failures by RPC name ("GetActor", "CreateActor", ...).
#[derive(Default)]
pub struct Script {
    /// Answer `Aborted` this many times.
    pub aborted: HashMap<&'static str, u32>,
    /// Answer `Unavailable` this many times.
    pub unavailable: HashMap<&'static str, u32>,
    /// Answer with this code forever.
    pub fail: HashMap<&'static str, Code>,
    /// Sleep this long before answering.
    pub delay: HashMap<&'static str, Duration>,
    /// DeleteActor answers NotFound (and forgets the actor).
    pub delete_not_found: bool,
    /// Resumed actors stay RESUMING forever.
    pub never_ready: bool,
    /// Resumed actors go back to SUSPENDED: the boot failed.
    pub boot_fails: bool,
    /// GetActor polls an actor stays RESUMING after its workload is up.
    pub resuming_polls: u32,
    /// The gateway answers 503 this many times for a RUNNING actor before routing to it.
    pub gateway_503: u32,
    /// The gateway answers 404 (unknown actor) this many times for a RUNNING actor.
    pub gateway_404: u32,
    /// GetActor answers with this actor id instead of the one asked for (API version skew).
    pub wrong_actor_id: Option<String>,
    /// Actors per ListActors page (0: all).
    pub page_size: usize,
}

struct FakeActor {
    actor: Actor,
    /// Address of the workload once started.
    workload: Option<SocketAddr>,
    /// Polls left in RESUMING.
    polls: u32,
    starting: bool,
}

#[derive(Default)]
struct World {
    actors: HashMap<String, FakeActor>,
    rpcs: Vec<Rpc>,
    gateway: Vec<(String, bool)>,
    script: Script,
    version: i64,
}

/// The fake substrate: API server and gateway.
#[derive(Clone)]
pub struct FakeSubstrate {
    world: Arc<Mutex<World>>,
    workloads: Option<LocalBackend>,
    template: (String, String),
    pub api_addr: SocketAddr,
    pub router_addr: SocketAddr,
    stop: CancellationToken,
}

/// TLS material for the API server.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

pub const TEMPLATE_NS: &str = "ate-test";
pub const TEMPLATE_NAME: &str = "playwright";

impl FakeSubstrate {
    /// Starts the API server (TLS when given) and the gateway. `workloads` runs real sandboxes.
    pub async fn start(tls: Option<ServerTls>, workloads: Option<LocalBackend>) -> Self {
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = FakeSubstrate {
            world: Arc::new(Mutex::new(World::default())),
            workloads,
            template: (TEMPLATE_NS.into(), TEMPLATE_NAME.into()),
            api_addr: api.local_addr().unwrap(),
            router_addr: router.local_addr().unwrap(),
            stop: CancellationToken::new(),
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(t) = tls {
            builder = builder
                .tls_config(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(t.cert_pem, t.key_pem)),
                )
                .unwrap();
        }
        let stop = s.stop.clone();
        let svc = ControlServer::new(s.clone());
        tokio::spawn(async move {
            let mut builder = builder;
            let incoming = tonic::transport::server::TcpIncoming::from(api);
            let _ = builder
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await;
        });
        tokio::spawn(s.clone().gateway(router));
        s
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.world.lock().unwrap().script);
    }

    pub fn rpcs(&self) -> Vec<Rpc> {
        self.world.lock().unwrap().rpcs.clone()
    }

    pub fn clear_rpcs(&self) {
        self.world.lock().unwrap().rpcs.clear();
    }

    /// Requests the gateway got: (Host header, routed to a workload).
    pub fn gateway_requests(&self) -> Vec<(String, bool)> {
        self.world.lock().unwrap().gateway.clone()
    }

    pub fn status(&self, actor: &str) -> Option<ActorStatus> {
        self.world
            .lock()
            .unwrap()
            .actors
            .get(actor)
            .map(|a| ActorStatus::try_from(a.actor.status).unwrap())
    }

    /// Puts an actor in place directly (another proxy's, a leftover, ...).
    pub fn insert(&self, actor: &str, ns: &str, name: &str, status: ActorStatus) {
        let mut w = self.world.lock().unwrap();
        w.actors.insert(
            actor.to_string(),
            FakeActor {
                actor: Actor {
                    actor_id: actor.into(),
                    actor_template_namespace: ns.into(),
                    actor_template_name: name.into(),
                    status: status as i32,
                    ..Default::default()
                },
                workload: None,
                polls: 0,
                starting: false,
            },
        );
    }

    /// Records the call, then applies the scripted delay and failures for `rpc`.
    async fn enter(&self, call: Rpc) -> Result<(), Status> {
        let name = call.name();
        let delay = {
            let mut w = self.world.lock().unwrap();
            w.rpcs.push(call);
            w.script.delay.get(name).copied()
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let mut w = self.world.lock().unwrap();
        if let Some(code) = w.script.fail.get(name) {
            return Err(Status::new(*code, format!("scripted {code:?}")));
        }
        if let Some(n) = w.script.aborted.get_mut(name).filter(|n| **n > 0) {
            *n -= 1;
            return Err(Status::aborted("concurrent update (scripted)"));
        }
        if let Some(n) = w.script.unavailable.get_mut(name).filter(|n| **n > 0) {
            *n -= 1;
            return Err(Status::unavailable("scripted outage"));
        }
        Ok(())
    }

    /// Advances a RESUMING actor: RUNNING once its workload is up and its polls are spent.
    fn advance(&self, w: &mut World, id: &str) {
        let boot_fails = w.script.boot_fails;
        let never_ready = w.script.never_ready;
        let Some(a) = w.actors.get_mut(id) else {
            return;
        };
        if a.actor.status != ActorStatus::Resuming as i32 || never_ready || a.starting {
            return;
        }
        if a.polls > 0 {
            a.polls -= 1;
            return;
        }
        if boot_fails {
            a.actor.status = ActorStatus::Suspended as i32;
            return;
        }
        if a.workload.is_some() || self.workloads.is_none() {
            a.actor.status = ActorStatus::Running as i32;
            a.actor.ateom_pod_name = format!("ateom-{id}");
            a.actor.ateom_pod_uid = format!("uid-{id}-{}", w.version);
            a.actor.ateom_pod_ip = "127.0.0.1".into();
        }
    }

    /// Starts (or continues) the actor's real sandbox in the background.
    fn start_workload(&self, id: &str) {
        let Some(pool) = self.workloads.clone() else {
            return;
        };
        let world = self.world.clone();
        let id = id.to_string();
        if let Some(a) = world.lock().unwrap().actors.get_mut(&id) {
            a.starting = true;
        }
        tokio::spawn(async move {
            let ep = pool.ensure(&id).await;
            let mut w = world.lock().unwrap();
            if let Some(a) = w.actors.get_mut(&id) {
                a.starting = false;
                match ep {
                    Ok(ep) => a.workload = Some(format!("{}", ep.ws).parse().unwrap()),
                    Err(_) => a.actor.status = ActorStatus::Suspended as i32,
                }
            }
        });
    }

    async fn gateway(self, l: TcpListener) {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move { me.route(s).await });
        }
    }

    /// Reads one request head, routes by its Host header, then splices the connection (so WebSocket
    /// upgrades and everything after them pass through).
    async fn route(&self, mut client: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_len = loop {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(&buf[..head_len]).is_err() {
            return;
        }
        let host = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .unwrap_or_default();
        // atenet: strip a port and a trailing dot, require the suffix.
        let bare = host.split(':').next().unwrap_or("").trim_end_matches('.');
        let actor = bare.strip_suffix(HOST_SUFFIX).map(str::to_string);
        let decision = {
            let mut w = self.world.lock().unwrap();
            let d = match actor.as_ref().and_then(|a| w.actors.get(a)) {
                None => Err(404),
                Some(a) if a.actor.status != ActorStatus::Running as i32 => Err(503),
                Some(a) => Ok(a.workload),
            };
            let d = match d {
                Ok(_) if w.script.gateway_503 > 0 => {
                    w.script.gateway_503 -= 1;
                    Err(503)
                }
                Ok(_) if w.script.gateway_404 > 0 => {
                    w.script.gateway_404 -= 1;
                    Err(404)
                }
                d => d,
            };
            w.gateway.push((host.clone(), d.is_ok()));
            d
        };
        match decision {
            Err(code) => {
                let reason = if code == 404 {
                    "Not Found"
                } else {
                    "Service Unavailable"
                };
                let _ = client
                    .write_all(
                        format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .as_bytes(),
                    )
                    .await;
            }
            Ok(None) => {
                let _ = client
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nworkload")
                    .await;
            }
            Ok(Some(addr)) => {
                let Ok(mut up) = TcpStream::connect(addr).await else {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                };
                if up.write_all(&buf).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            }
        }
    }

    fn not_found(id: &str) -> Status {
        Status::not_found(format!("actor {id} not found"))
    }
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Control for FakeSubstrate {
    async fn get_actor(&self, req: Request<GetActorRequest>) -> R<GetActorResponse> {
        let id = req.into_inner().actor_id;
        self.enter(Rpc::Get(id.clone())).await?;
        let mut w = self.world.lock().unwrap();
        self.advance(&mut w, &id);
        let mut actor = w
            .actors
            .get(&id)
            .ok_or_else(|| Self::not_found(&id))?
            .actor
            .clone();
        if let Some(other) = &w.script.wrong_actor_id {
            actor.actor_id = other.clone();
        }
        Ok(Response::new(GetActorResponse { actor: Some(actor) }))
    }

    async fn create_actor(&self, req: Request<CreateActorRequest>) -> R<CreateActorResponse> {
        let r = req.into_inner();
        self.enter(Rpc::Create {
            actor: r.actor_id.clone(),
            namespace: r.actor_template_namespace.clone(),
            name: r.actor_template_name.clone(),
        })
        .await?;
        if (
            r.actor_template_namespace.as_str(),
            r.actor_template_name.as_str(),
        ) != (self.template.0.as_str(), self.template.1.as_str())
        {
            return Err(Status::failed_precondition("actor template not found"));
        }
        let mut w = self.world.lock().unwrap();
        if w.actors.contains_key(&r.actor_id) {
            return Err(Status::already_exists("actor exists"));
        }
        w.version += 1;
        let actor = Actor {
            actor_id: r.actor_id.clone(),
            version: w.version,
            actor_template_namespace: r.actor_template_namespace,
            actor_template_name: r.actor_template_name,
            status: ActorStatus::Suspended as i32,
            ..Default::default()
        };
        w.actors.insert(
            r.actor_id,
            FakeActor {
                actor: actor.clone(),
                workload: None,
                polls: 0,
                starting: false,
            },
        );
        Ok(Response::new(CreateActorResponse { actor: Some(actor) }))
    }

    async fn suspend_actor(&self, req: Request<SuspendActorRequest>) -> R<SuspendActorResponse> {
        let id = req.into_inner().actor_id;
        self.enter(Rpc::Suspend(id.clone())).await?;
        {
            let w = self.world.lock().unwrap();
            let a = w.actors.get(&id).ok_or_else(|| Self::not_found(&id))?;
            if a.actor.status != ActorStatus::Running as i32 {
                return Err(Status::failed_precondition("actor is not RUNNING"));
            }
        }
        // Upstream's suspend runs to SUSPENDED before it answers; the workload really stops.
        if let Some(pool) = &self.workloads {
            let _ = pool.suspend(&id).await;
        }
        let mut w = self.world.lock().unwrap();
        let a = w.actors.get_mut(&id).ok_or_else(|| Self::not_found(&id))?;
        a.actor.status = ActorStatus::Suspended as i32;
        Ok(Response::new(SuspendActorResponse {
            actor: Some(a.actor.clone()),
        }))
    }

    async fn resume_actor(&self, req: Request<ResumeActorRequest>) -> R<ResumeActorResponse> {
        let r = req.into_inner();
        self.enter(Rpc::Resume {
            actor: r.actor_id.clone(),
            boot: r.boot,
        })
        .await?;
        let actor = {
            let mut w = self.world.lock().unwrap();
            let polls = w.script.resuming_polls;
            let a = w
                .actors
                .get_mut(&r.actor_id)
                .ok_or_else(|| Self::not_found(&r.actor_id))?;
            if a.actor.status != ActorStatus::Suspended as i32 {
                return Err(Status::failed_precondition("actor is not SUSPENDED"));
            }
            a.actor.status = ActorStatus::Resuming as i32;
            a.polls = polls;
            a.actor.clone()
        };
        self.start_workload(&r.actor_id);
        Ok(Response::new(ResumeActorResponse { actor: Some(actor) }))
    }

    async fn delete_actor(&self, req: Request<DeleteActorRequest>) -> R<DeleteActorResponse> {
        let id = req.into_inner().actor_id;
        self.enter(Rpc::Delete(id.clone())).await?;
        let not_found = self.world.lock().unwrap().script.delete_not_found;
        {
            let mut w = self.world.lock().unwrap();
            let a = w.actors.get(&id).ok_or_else(|| Self::not_found(&id))?;
            if a.actor.status != ActorStatus::Suspended as i32 {
                return Err(Status::failed_precondition(
                    "only SUSPENDED actors can be deleted",
                ));
            }
            w.actors.remove(&id);
        }
        if let Some(pool) = &self.workloads {
            let _ = pool.delete(&id).await;
        }
        if not_found {
            return Err(Self::not_found(&id));
        }
        Ok(Response::new(DeleteActorResponse {}))
    }

    async fn list_workers(&self, _req: Request<ListWorkersRequest>) -> R<ListWorkersResponse> {
        Err(Status::unimplemented("not used by the proxy"))
    }

    async fn list_actors(&self, req: Request<ListActorsRequest>) -> R<ListActorsResponse> {
        let r = req.into_inner();
        self.enter(Rpc::List {
            page_size: r.page_size,
            page_token: r.page_token.clone(),
        })
        .await?;
        let w = self.world.lock().unwrap();
        let mut all: Vec<Actor> = w.actors.values().map(|a| a.actor.clone()).collect();
        all.sort_by(|a, b| a.actor_id.cmp(&b.actor_id));
        let start: usize = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse()
                .map_err(|_| Status::invalid_argument("bad page token"))?
        };
        let size = match w.script.page_size {
            0 => all.len().max(1),
            n => n,
        }
        .min(r.page_size.max(1) as usize);
        let end = (start + size).min(all.len());
        let actors = all.get(start..end).unwrap_or_default().to_vec();
        let next = if end < all.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(ListActorsResponse {
            actors,
            next_page_token: next,
        }))
    }

    async fn debug_clear(&self, _req: Request<DebugClearRequest>) -> R<DebugClearResponse> {
        Err(Status::unimplemented("not used by the proxy"))
    }
}

/// A CA and a server certificate it signs for `localhost` and 127.0.0.1; plus the CA's PEM.
pub fn ca_and_server_cert() -> (String, ServerTls) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sandcanary test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        ca_cert.pem(),
        ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    )
}
