//! [`LogSource`] over the Kubernetes API (kube-rs): list the pods of a label selector, pick one,
//! read its container's log through `pods/log`. The client comes from [`crate::kube_client`]; it
//! is only built when `podLogs` is set.

use std::time::Duration;

use futures::AsyncReadExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use sandcanary_canary::pod_logs::MESH_CONTAINERS;
use sandcanary_canary::{LogError, LogRequest, LogSource, PodLog};

use crate::kube_client::{self, api_error};

/// Pods listed per selector at most (one is read).
const LIST_LIMIT: u32 = 50;

/// Reads pod logs through the API server. The client is built per read, so a plugin that never
/// reads logs never touches a kubeconfig, and a fixed credential file is picked up again.
#[derive(Debug, Clone)]
pub struct KubeLogSource {
    /// Read timeout of the HTTP client (the caller also bounds the whole read).
    read_timeout: Duration,
}

impl KubeLogSource {
    pub fn new(read_timeout: Duration) -> Self {
        Self { read_timeout }
    }

    async fn client(&self) -> Result<kube::Client, LogError> {
        kube_client::client(self.read_timeout)
            .await
            .map_err(|e| LogError::Api(e.to_string()))
    }

    async fn read_log(&self, req: &LogRequest) -> Result<PodLog, LogError> {
        let pods: Api<Pod> = Api::namespaced(self.client().await?, &req.namespace);
        let list = pods
            .list(
                &ListParams::default()
                    .labels(&req.selector)
                    .limit(LIST_LIMIT),
            )
            .await
            .map_err(|e| LogError::Api(format!("listing pods: {}", api_error(&e))))?;
        let pod = pick_pod(list.items).ok_or_else(|| LogError::NoPod {
            namespace: req.namespace.clone(),
            selector: req.selector.clone(),
        })?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let container = pick_container(&pod, req.container.as_deref()).ok_or_else(|| {
            LogError::NoContainer {
                pod: name.clone(),
                container: req.container.clone().unwrap_or_default(),
            }
        })?;
        let params = LogParams {
            container: Some(container.clone()),
            tail_lines: Some(req.tail_lines as i64),
            limit_bytes: Some(req.max_bytes as i64),
            since_seconds: req.since_seconds.map(|s| s as i64),
            ..LogParams::default()
        };
        let stream = pods
            .log_stream(&name, &params)
            .await
            .map_err(|e| LogError::Api(format!("reading the log of {name}: {}", api_error(&e))))?;
        // Bounded here too: a server that ignores limitBytes cannot make us read more.
        let mut bytes = Vec::new();
        stream
            .take(req.max_bytes)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| LogError::Api(format!("reading the log of {name}: {e}")))?;
        Ok(PodLog {
            pod: name,
            container,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

impl LogSource for KubeLogSource {
    fn read<'a>(&'a self, request: &'a LogRequest) -> BoxFuture<'a, Result<PodLog, LogError>> {
        Box::pin(self.read_log(request))
    }
}

/// A running pod first, then by name, so repeated analyses read the same pod.
fn pick_pod(mut pods: Vec<Pod>) -> Option<Pod> {
    let running = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|ph| ph == "Running")
    };
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods.sort_by(|a, b| {
        running(b)
            .cmp(&running(a))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    pods.into_iter().next()
}

/// The configured container if the pod has it, else the first that is not a mesh sidecar.
fn pick_container(pod: &Pod, wanted: Option<&str>) -> Option<String> {
    let containers = &pod.spec.as_ref()?.containers;
    match wanted {
        Some(w) => containers
            .iter()
            .find(|c| c.name == w)
            .map(|c| c.name.clone()),
        None => containers
            .iter()
            .find(|c| !MESH_CONTAINERS.contains(&c.name.as_str()))
            .map(|c| c.name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus};
    use kube::api::ObjectMeta;

    fn pod(name: &str, phase: &str, containers: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|c| Container {
                        name: c.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_running_pod_and_the_non_mesh_container_are_picked() {
        let picked = pick_pod(vec![
            pod("a", "Pending", &["proxy"]),
            pod("c", "Running", &["proxy"]),
            pod("b", "Running", &["proxy"]),
        ])
        .unwrap();
        assert_eq!(picked.metadata.name.as_deref(), Some("b"));
        let p = pod("x", "Running", &["istio-init", "istio-proxy", "proxy"]);
        assert_eq!(pick_container(&p, None).as_deref(), Some("proxy"));
        assert_eq!(
            pick_container(&p, Some("istio-proxy")).as_deref(),
            Some("istio-proxy")
        );
        assert_eq!(pick_container(&p, Some("nope")), None);
        assert!(pick_pod(vec![]).is_none());
    }
}
