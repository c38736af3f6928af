//! The plugin's one way to reach the Kubernetes API (pod logs, tenant Secrets, and whatever else
//! the plugin reads or writes there): KUBECONFIG or, in the controller's pod, the in-cluster
//! service account (`kube::Config::infer`). Built per use, so a plugin that never touches the API
//! never reads a kubeconfig, and rotated credentials are picked up.

use std::time::Duration;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("no Kubernetes configuration: {0}")]
    Config(#[source] kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// A client whose connects and reads each give up after `timeout` (callers also bound the
/// whole operation).
pub async fn client(timeout: Duration) -> Result<kube::Client, KubeClientError> {
    let mut config = kube::Config::infer()
        .await
        .map_err(KubeClientError::Config)?;
    config.read_timeout = Some(timeout);
    config.connect_timeout = Some(timeout);
    kube::Client::try_from(config).map_err(KubeClientError::Client)
}

/// The API's own message for status errors (`secrets "x" is forbidden: ...`), else the error.
pub fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}
