//! The one mapping from the proxy's errors to HTTP statuses, used by the data port, the session
//! API's ensure and its control calls, so that the same failure answers the same everywhere.

use http::StatusCode;

use crate::backend::BackendError;
use crate::session::{ControlError, SessionError};

/// An error the proxy answers over HTTP: its status, and its `Display` text as the body.
pub trait HttpError: std::error::Error {
    fn status(&self) -> StatusCode;
}

impl HttpError for BackendError {
    /// No room is the caller's to retry (503); an operation the backend lacks is 501; an unknown
    /// sandbox 404; any other failure of the sandbox or its platform is a bad gateway (502).
    fn status(&self) -> StatusCode {
        match self {
            _ if self.is_capacity() => StatusCode::SERVICE_UNAVAILABLE,
            BackendError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            BackendError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl HttpError for SessionError {
    /// A request waiting for its sandbox: capacity is 503, anything else (the ensure failed, the
    /// wait ran out, the proxy is stopping) 502.
    fn status(&self) -> StatusCode {
        match self {
            SessionError::Ensure(e) if e.is_capacity() => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::Ensure(_) | SessionError::WaitTimeout(_) | SessionError::ShuttingDown => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

impl HttpError for ControlError {
    fn status(&self) -> StatusCode {
        match self {
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            ControlError::Conflict { .. } => StatusCode::CONFLICT,
            ControlError::Backend(e) => e.status(),
            ControlError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_one_status() {
        let kube = BackendError::kube(
            "cannot read SandboxClaim pw-a",
            kube::Error::Api(Box::new(kube::core::Status {
                code: 403,
                reason: "Forbidden".into(),
                message: "no".into(),
                ..Default::default()
            })),
        );
        assert_eq!(kube.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            kube.to_string(),
            "cannot read SandboxClaim pw-a: Forbidden (403): no"
        );
        assert!(
            std::error::Error::source(&kube).is_some(),
            "the cause is kept"
        );
        let capacity = BackendError::Capacity("full".into());
        assert_eq!(capacity.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            SessionError::Ensure(capacity.clone()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let unsupported = BackendError::Unsupported {
            backend: "local",
            operation: "suspend",
        };
        assert_eq!(unsupported.status(), StatusCode::NOT_IMPLEMENTED);
        // On the request path only capacity is the caller's to retry.
        assert_eq!(
            SessionError::Ensure(unsupported.clone()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            ControlError::Backend(unsupported).status(),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            ControlError::Backend(BackendError::NotFound("a".into())).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ControlError::Timeout("30s".into()).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            SessionError::WaitTimeout("60s".into()).status(),
            StatusCode::BAD_GATEWAY
        );
        let io = BackendError::io(
            "cannot start node",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(io.status(), StatusCode::BAD_GATEWAY);
        assert!(io.to_string().starts_with("cannot start node: "));
        // A platform's gRPC status keeps its code: no free workers is capacity, the rest a bad gateway.
        let exhausted = BackendError::grpc(
            "substrate GetActor pw-a",
            tonic::Status::resource_exhausted("no free workers"),
        );
        assert_eq!(exhausted.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            SessionError::Ensure(exhausted.clone()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            exhausted.to_string(),
            "substrate GetActor pw-a: ResourceExhausted: no free workers"
        );
        let denied = BackendError::grpc(
            "substrate GetActor pw-a",
            tonic::Status::permission_denied("no"),
        );
        assert_eq!(denied.status(), StatusCode::BAD_GATEWAY);
        assert!(std::error::Error::source(&denied).is_some());
    }
}
