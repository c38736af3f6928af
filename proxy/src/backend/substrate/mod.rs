//! The `substrate` backend (ate.dev, spec §5.2): one actor per sandbox id, driven through ate-api's
//! `ateapi.Control` gRPC service, and reached through the atenet router by virtual host
//! (`Host: <actor>.actors.resources.substrate.ate.dev`).
//!
//! Beyond the reference: every call has a deadline; `Aborted` (substrate's answer to concurrent
//! updates) and `Unavailable` are retried a bounded number of times with backoff; a boot that falls
//! back to SUSPENDED fails at once; the readiness probe fails instead of proceeding blindly; delete
//! waits for SUSPENDED before deleting; and `list` only adopts running actors of our template.
//!
//! Every actor's endpoint is the router's address, so the forwarder's keep-alive pool (keyed by
//! address) may carry requests of several actors over one connection; that relies on atenet (Envoy)
//! routing each request by its Host header, as it does, not each connection. UPSTREAM_HOST=preserve
//! is refused at start-up for this backend.

mod channel;
mod probe;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::{debug, info, warn};

use super::cluster::clip;
use super::naming;
use super::{Backend, BackendError, Endpoint};
use crate::config::duration::format as fmt;
pub use probe::{Probe, probe};

/// Code generated from proto/ateapi.proto (pinned; see the file's header).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ateapi");
}

use proto::actor::Status as ActorStatus;
use proto::control_client::ControlClient;
use proto::*;

/// How the substrate backend secures its gRPC connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubstrateTls {
    /// TLS, certificate checked against SUBSTRATE_CA_FILE or the system roots.
    Verify,
    /// TLS without checking the certificate (the reference's only mode); an explicit opt-in.
    SkipVerify,
    /// No TLS at all; an explicit opt-in.
    Plaintext,
}

/// Settings of the `substrate` backend (spec §5.2).
#[derive(Debug, Clone)]
pub struct SubstrateSettings {
    pub api_endpoint: crate::backend::Authority,
    pub router: crate::backend::Authority,
    pub template_namespace: String,
    pub template_name: String,
    pub force_boot: bool,
    pub tls: SubstrateTls,
    /// CAs from SUBSTRATE_CA_FILE; empty means the system roots.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub tls_server_name: Option<String>,
    pub call_timeout: Duration,
    pub max_attempts: u32,
    pub poll_interval: Duration,
    pub running_timeout: Duration,
    pub probe_timeout: Duration,
}

/// atenet routes `<actor>` + this suffix to the actor's workload.
pub const HOST_SUFFIX: &str = ".actors.resources.substrate.ate.dev";

/// `ListActors` page size (the reference's).
pub const PAGE_SIZE: i32 = 500;

/// The actor of sandbox `id`: `pw-<id>`, or a hashed DNS-1123 label for ids substrate would reject.
pub fn actor_id(id: &str) -> String {
    naming::object_name(id)
}

/// The Host header atenet routes to the actor.
pub fn host_header(actor: &str) -> String {
    format!("{actor}{HOST_SUFFIX}")
}

/// Whether a stripped actor id ends in the hash [`naming::object_name`] appends to ids it had to
/// map: such a name cannot be traced back to its id (actors carry no labels), and adopting it under
/// the stripped name would let the reaper delete an actor its real owner is using.
fn looks_hashed(stripped: &str) -> bool {
    let tail = stripped.rsplit('-').next().unwrap_or("");
    tail.len() == 16
        && tail
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The status message with its source chain (transport failures such as refused or TLS carry their
/// cause there only), on one line of bounded length: the text comes from the server.
pub(crate) fn describe(s: &Status) -> String {
    let mut detail = s.message().to_string();
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        let text = e.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        source = e.source();
    }
    clip(&detail)
}

fn status_of(a: &Actor) -> ActorStatus {
    ActorStatus::try_from(a.status).unwrap_or(ActorStatus::Unspecified)
}

fn retryable(code: Code) -> bool {
    matches!(code, Code::Aborted | Code::Unavailable)
}

pub struct SubstrateBackend {
    client: ControlClient<Channel>,
    cfg: SubstrateSettings,
}

impl SubstrateBackend {
    pub fn new(cfg: SubstrateSettings) -> Self {
        info!(
            api = %cfg.api_endpoint,
            router = %cfg.router,
            template = %format!("{}/{}", cfg.template_namespace, cfg.template_name),
            tls = ?cfg.tls,
            force_boot = cfg.force_boot,
            "substrate backend"
        );
        Self {
            client: ControlClient::new(channel::channel(&cfg)),
            cfg,
        }
    }

    /// One RPC with its deadline, retried on `Aborted`/`Unavailable` with exponential backoff up to
    /// SUBSTRATE_MAX_ATTEMPTS. The last status is returned with the attempt count in its message.
    async fn call<M, R, F, Fut>(
        &self,
        rpc: &'static str,
        actor: &str,
        msg: M,
        f: F,
    ) -> Result<R, Status>
    where
        M: Clone,
        F: Fn(ControlClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let max = self.cfg.max_attempts.max(1);
        let attempts = AtomicU32::new(0);
        let once = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let mut req = tonic::Request::new(msg.clone());
            // Sent as grpc-timeout, so the server gives up too; tonic also enforces it locally.
            req.set_timeout(self.cfg.call_timeout);
            let started = Instant::now();
            let deadline = || {
                Status::deadline_exceeded(format!(
                    "no answer within SUBSTRATE_CALL_TIMEOUT ({})",
                    fmt(self.cfg.call_timeout)
                ))
            };
            match tokio::time::timeout(self.cfg.call_timeout, f(self.client.clone(), req)).await {
                Ok(Err(s))
                    if matches!(s.code(), Code::Cancelled | Code::DeadlineExceeded)
                        && started.elapsed() + Duration::from_millis(20)
                            >= self.cfg.call_timeout =>
                {
                    Err(deadline())
                }
                Ok(r) => r,
                Err(_) => Err(deadline()),
            }
        };
        let backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(max as usize - 1);
        match once
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|s: &Status| retryable(s.code()))
            .notify(|s: &Status, wait: Duration| {
                let attempt = attempts.load(Ordering::Relaxed);
                debug!(rpc, actor, attempt, code = ?s.code(), message = %clip(s.message()), wait_ms = wait.as_millis() as u64, "substrate call failed; retrying");
            })
            .await
        {
            Ok(resp) => Ok(resp.into_inner()),
            Err(s) if retryable(s.code()) => {
                let attempt = attempts.load(Ordering::Relaxed);
                Err(Status::new(
                    s.code(),
                    format!("{} (gave up after {attempt} attempts)", describe(&s)),
                ))
            }
            Err(s) => Err(s),
        }
    }

    /// A failed call keeps its status as the error's source; a deadline that ran out is a timeout
    /// like any other backend's.
    fn fail(rpc: &str, actor: &str, s: Status) -> BackendError {
        let action = format!("substrate {rpc} {actor}");
        match s.code() {
            Code::DeadlineExceeded => {
                BackendError::Timeout(format!("{action}: {:?}: {}", s.code(), describe(&s)))
            }
            _ => BackendError::grpc(action, s),
        }
    }

    fn actor_in(rpc: &str, actor: &str, a: Option<Actor>) -> Result<Actor, BackendError> {
        a.ok_or_else(|| {
            BackendError::Failed(format!("substrate {rpc} {actor}: answer without an actor"))
        })
    }

    /// `GetActor`; `Ok(None)` for NotFound.
    async fn get(&self, actor: &str) -> Result<Option<Actor>, BackendError> {
        let msg = GetActorRequest {
            actor_id: actor.to_string(),
        };
        match self
            .call("GetActor", actor, msg, |mut c, r| async move {
                c.get_actor(r).await
            })
            .await
        {
            Ok(r) => {
                let a = Self::actor_in("GetActor", actor, r.actor)?;
                if a.actor_id != actor {
                    // A newer substrate reads field 1 as an ActorRef message, not our string.
                    return Err(BackendError::Failed(format!(
                        "substrate GetActor {actor} answered for actor {:?}: is ate-api newer than the pinned proto/ateapi.proto (actor_ref/atespace API)?",
                        clip(&a.actor_id)
                    )));
                }
                Ok(Some(a))
            }
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Self::fail("GetActor", actor, s)),
        }
    }

    async fn get_or_create(&self, actor: &str) -> Result<Actor, BackendError> {
        if let Some(a) = self.get(actor).await? {
            return Ok(a);
        }
        let msg = CreateActorRequest {
            actor_id: actor.to_string(),
            actor_template_namespace: self.cfg.template_namespace.clone(),
            actor_template_name: self.cfg.template_name.clone(),
        };
        match self
            .call("CreateActor", actor, msg, |mut c, r| async move {
                c.create_actor(r).await
            })
            .await
        {
            Ok(r) => {
                info!(actor, "created substrate actor");
                Self::actor_in("CreateActor", actor, r.actor)
            }
            Err(s) if s.code() == Code::AlreadyExists => self.get(actor).await?.ok_or_else(|| {
                BackendError::Failed(format!(
                    "substrate actor {actor} already existed on create but is gone now"
                ))
            }),
            Err(s) => Err(Self::fail("CreateActor", actor, s)),
        }
    }

    /// An actor of another template (another proxy's, or somebody else's) is not ours to use.
    fn check_template(&self, a: &Actor) -> Result<(), BackendError> {
        if a.actor_template_namespace == self.cfg.template_namespace
            && a.actor_template_name == self.cfg.template_name
        {
            return Ok(());
        }
        Err(BackendError::Failed(format!(
            "substrate actor {} belongs to template {}/{}, not {}/{}",
            a.actor_id,
            a.actor_template_namespace,
            a.actor_template_name,
            self.cfg.template_namespace,
            self.cfg.template_name
        )))
    }

    async fn resume_call(&self, actor: &str) -> Result<Option<Actor>, Status> {
        let msg = ResumeActorRequest {
            actor_id: actor.to_string(),
            boot: self.cfg.force_boot,
        };
        self.call("ResumeActor", actor, msg, |mut c, r| async move {
            c.resume_actor(r).await
        })
        .await
        .map(|r| r.actor)
    }

    /// Polls the actor to RUNNING, resuming it when it is SUSPENDED. A resume that raced with another
    /// one (FailedPrecondition) is tolerated; an actor that fell back to SUSPENDED after it was seen
    /// RESUMING failed to boot.
    async fn wait_running(&self, actor: &str, mut a: Actor) -> Result<Actor, BackendError> {
        let deadline = Instant::now() + self.cfg.running_timeout;
        let mut resumes = 0;
        let mut resuming_seen = false;
        loop {
            let status = status_of(&a);
            match status {
                ActorStatus::Running => return Ok(a),
                ActorStatus::Suspended if resuming_seen => {
                    return Err(BackendError::Failed(format!(
                        "substrate actor {actor} went back to SUSPENDED while resuming: its boot failed"
                    )));
                }
                ActorStatus::Suspended if resumes < 2 => {
                    resumes += 1;
                    match self.resume_call(actor).await {
                        Ok(resumed) => {
                            info!(actor, boot = self.cfg.force_boot, "resumed substrate actor");
                            if let Some(r) = resumed
                                && status_of(&r) != ActorStatus::Suspended
                            {
                                a = r;
                                continue;
                            }
                        }
                        Err(s) if s.code() == Code::FailedPrecondition => {
                            debug!(actor, "resume raced out of SUSPENDED; polling");
                        }
                        Err(s) if s.code() == Code::NotFound => {
                            return Err(BackendError::NotFound(actor.to_string()));
                        }
                        Err(s) => return Err(Self::fail("ResumeActor", actor, s)),
                    }
                }
                ActorStatus::Resuming if resumes > 0 => resuming_seen = true,
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Timeout(format!(
                    "substrate actor {actor} not RUNNING within SUBSTRATE_RUNNING_TIMEOUT ({}); last status {}",
                    fmt(self.cfg.running_timeout),
                    status.as_str_name()
                )));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
            a = self.get(actor).await?.ok_or_else(|| {
                BackendError::Failed(format!("substrate actor {actor} vanished while starting"))
            })?;
        }
    }

    /// Polls the actor to SUSPENDED. An actor that was still resuming when it was asked to suspend
    /// (FailedPrecondition) is asked again once it is RUNNING. `Ok(false)` when it does not exist.
    async fn wait_suspended(&self, actor: &str) -> Result<bool, BackendError> {
        let deadline = Instant::now() + self.cfg.running_timeout;
        loop {
            let Some(a) = self.get(actor).await? else {
                return Ok(false);
            };
            let status = status_of(&a);
            if status == ActorStatus::Suspended {
                return Ok(true);
            }
            if status == ActorStatus::Running && !self.suspend_call(actor).await? {
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Timeout(format!(
                    "substrate actor {actor} not SUSPENDED within SUBSTRATE_RUNNING_TIMEOUT ({}); last status {}",
                    fmt(self.cfg.running_timeout),
                    status.as_str_name()
                )));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        }
    }

    /// `SuspendActor`, tolerating an actor that is not RUNNING (FailedPrecondition). `Ok(false)` when
    /// the actor does not exist.
    async fn suspend_call(&self, actor: &str) -> Result<bool, BackendError> {
        let msg = SuspendActorRequest {
            actor_id: actor.to_string(),
        };
        match self
            .call("SuspendActor", actor, msg, |mut c, r| async move {
                c.suspend_actor(r).await
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) if s.code() == Code::FailedPrecondition => Ok(true),
            Err(s) => Err(Self::fail("SuspendActor", actor, s)),
        }
    }

    /// Probes the workload through the router until it answers. Unlike the reference, 404 (atenet
    /// does not know the actor) is not taken for readiness, and running out of time is an error.
    async fn wait_reachable(&self, actor: &str) -> Result<(), BackendError> {
        let host = host_header(actor);
        let deadline = Instant::now() + self.cfg.probe_timeout;
        loop {
            let seen = probe(&self.cfg.router, &host).await;
            if let Probe::Ready(code) = seen {
                debug!(actor, code, "substrate workload answers");
                return Ok(());
            }
            if Instant::now() >= deadline {
                let last = match seen {
                    Probe::Unavailable => "503 from the router (workload not listening yet)".into(),
                    Probe::UnknownActor => {
                        "404 from the router (it does not know the actor)".into()
                    }
                    Probe::NoAnswer(e) => e,
                    Probe::Ready(_) => unreachable!(),
                };
                return Err(BackendError::Timeout(format!(
                    "substrate actor {actor} is RUNNING but not reachable through {} within SUBSTRATE_PROBE_TIMEOUT ({}); last: {last}",
                    self.cfg.router,
                    fmt(self.cfg.probe_timeout)
                )));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        }
    }

    fn endpoint(&self, a: &Actor) -> Endpoint {
        let worker = if a.ateom_pod_uid.is_empty() {
            &a.ateom_pod_name
        } else {
            &a.ateom_pod_uid
        };
        Endpoint {
            // The same address for every actor: atenet routes by Host header alone.
            ws: self.cfg.router.clone(),
            mcp: None,
            host_header: Some(host_header(&a.actor_id)),
            instance: format!("{}@{worker}", a.actor_id),
        }
    }
}

#[async_trait]
impl Backend for SubstrateBackend {
    fn name(&self) -> &'static str {
        "substrate"
    }

    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError> {
        let actor = actor_id(id);
        let a = self.get_or_create(&actor).await?;
        self.check_template(&a)?;
        let a = self.wait_running(&actor, a).await?;
        self.wait_reachable(&actor).await?;
        info!(id, actor, "substrate actor ready");
        Ok(self.endpoint(&a))
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        let actor = actor_id(id);
        // Upstream deletes only SUSPENDED actors.
        if !self.suspend_call(&actor).await? || !self.wait_suspended(&actor).await? {
            return Ok(());
        }
        let deadline = Instant::now() + self.cfg.running_timeout;
        loop {
            let msg = DeleteActorRequest {
                actor_id: actor.clone(),
            };
            match self
                .call("DeleteActor", &actor, msg, |mut c, r| async move {
                    c.delete_actor(r).await
                })
                .await
            {
                Ok(_) => {
                    info!(id, actor, "deleted substrate actor");
                    return Ok(());
                }
                Err(s) if s.code() == Code::NotFound => return Ok(()),
                // Someone resumed it in between; suspend again and retry within the budget.
                Err(s) if s.code() == Code::FailedPrecondition && Instant::now() < deadline => {
                    warn!(actor, message = %clip(s.message()), "actor not deletable yet; suspending again");
                    tokio::time::sleep(self.cfg.poll_interval).await;
                    if !self.suspend_call(&actor).await? {
                        return Ok(());
                    }
                }
                Err(s) => return Err(Self::fail("DeleteActor", &actor, s)),
            }
        }
    }

    /// Actors of our template that are RUNNING or RESUMING and whose id maps back to a sandbox id
    /// (hashed names do not; ids that end in 16 hex digits are not adopted either).
    /// SUSPENDED actors are left alone: adopting one would resume it eagerly (the reference adopted
    /// every `pw-` actor cluster-wide); its owner's next request resumes it.
    async fn list(&self) -> Result<Vec<String>, BackendError> {
        let mut ids = Vec::new();
        let mut token = String::new();
        let mut seen_tokens = std::collections::HashSet::new();
        let mut unmapped = 0usize;
        loop {
            let msg = ListActorsRequest {
                page_size: PAGE_SIZE,
                page_token: token.clone(),
            };
            let page = self
                .call("ListActors", "*", msg, |mut c, r| async move {
                    c.list_actors(r).await
                })
                .await
                .map_err(|s| Self::fail("ListActors", "*", s))?;
            for a in &page.actors {
                if a.actor_template_namespace != self.cfg.template_namespace
                    || a.actor_template_name != self.cfg.template_name
                    || !matches!(status_of(a), ActorStatus::Running | ActorStatus::Resuming)
                {
                    continue;
                }
                match a.actor_id.strip_prefix(naming::PREFIX) {
                    Some(id) if actor_id(id) == a.actor_id && !looks_hashed(id) => {
                        ids.push(id.to_string())
                    }
                    _ => unmapped += 1,
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            if !seen_tokens.insert(page.next_page_token.clone()) {
                return Err(BackendError::Failed(
                    "substrate ListActors returned a page token twice".into(),
                ));
            }
            token = page.next_page_token;
        }
        if unmapped > 0 {
            info!(
                count = unmapped,
                "substrate actors of our template whose ids cannot be mapped back; not adopted"
            );
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Suspends the actor (substrate snapshots it) and waits until it is SUSPENDED.
    async fn suspend(&self, id: &str) -> Result<(), BackendError> {
        let actor = actor_id(id);
        if !self.suspend_call(&actor).await? || !self.wait_suspended(&actor).await? {
            return Err(BackendError::NotFound(id.to_string()));
        }
        info!(id, actor, "suspended substrate actor");
        Ok(())
    }

    /// Resumes the actor (boot = SUBSTRATE_FORCE_BOOT) and waits until its workload answers.
    async fn resume(&self, id: &str) -> Result<(), BackendError> {
        let actor = actor_id(id);
        let a = self
            .get(&actor)
            .await?
            .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
        self.check_template(&a)?;
        self.wait_running(&actor, a).await?;
        self.wait_reachable(&actor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_names_and_hosts() {
        assert_eq!(actor_id("abc"), "pw-abc");
        assert_eq!(
            host_header("pw-abc"),
            "pw-abc.actors.resources.substrate.ate.dev"
        );
        let hashed = actor_id("Tenant_1");
        assert!(naming::valid_dns_label(&hashed), "{hashed}");
        assert_ne!(hashed, "pw-Tenant_1");
        assert!(looks_hashed(hashed.strip_prefix("pw-").unwrap()));
        assert!(!looks_hashed("tenant-1"));
        assert!(!looks_hashed("build-0123456789abcdeg"));
    }

    #[test]
    fn only_aborted_and_unavailable_are_retried() {
        assert!(retryable(Code::Aborted));
        assert!(retryable(Code::Unavailable));
        for c in [
            Code::NotFound,
            Code::FailedPrecondition,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::InvalidArgument,
        ] {
            assert!(!retryable(c), "{c:?}");
        }
    }
}
