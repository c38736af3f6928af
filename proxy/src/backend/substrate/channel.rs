//! The gRPC channel to ate-api. TLS goes through rustls (ring, as for kube) with the CA bundle from
//! SUBSTRATE_CA_FILE or the system roots, and an optional server-name override; TLS without
//! certificate checks and plaintext exist only as explicit opt-ins (SUBSTRATE_TLS).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Channel, Endpoint};
use tower_service::Service;
use tracing::warn;

use super::{SubstrateSettings, SubstrateTls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A lazily connecting channel: the proxy starts even while substrate is unreachable, and every call
/// reports the connection error instead.
pub fn channel(cfg: &SubstrateSettings) -> Channel {
    // Always an http:// URI: TLS is the connector's business, not tonic's, so that one code path
    // serves the verified and the unverified mode whatever tonic features the build unifies.
    let endpoint = Endpoint::from_shared(format!("http://{}", cfg.api_endpoint))
        .expect("config::parse_authority checked that the endpoint makes a URI")
        .connect_timeout(cfg.call_timeout)
        .tcp_nodelay(true);
    match cfg.tls {
        SubstrateTls::Plaintext => endpoint.connect_lazy(),
        SubstrateTls::Verify | SubstrateTls::SkipVerify => {
            endpoint.connect_with_connector_lazy(TlsConnector(https_connector(cfg)))
        }
    }
}

fn https_connector(cfg: &SubstrateSettings) -> HttpsConnector<HttpConnector> {
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(client_config(cfg))
        .https_only();
    let builder = match cfg
        .tls_server_name
        .as_ref()
        .and_then(|n| ServerName::try_from(n.clone()).ok())
    {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    builder.enable_http2().build()
}

fn client_config(cfg: &SubstrateSettings) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions");
    match cfg.tls {
        SubstrateTls::SkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
        _ => {
            let mut roots = RootCertStore::empty();
            if cfg.ca_certs.is_empty() {
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    warn!(error = %e, "cannot load a system CA certificate");
                }
                roots.add_parsable_certificates(native.certs);
            } else {
                roots.add_parsable_certificates(cfg.ca_certs.iter().cloned());
            }
            if roots.is_empty() {
                warn!("no CA certificates to verify substrate's API with; set SUBSTRATE_CA_FILE");
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    }
}

/// Turns tonic's `http://` URI into `https://` for hyper-rustls.
#[derive(Clone)]
struct TlsConnector(HttpsConnector<HttpConnector>);

impl Service<Uri> for TlsConnector {
    type Response = <HttpsConnector<HttpConnector> as Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut parts = uri.into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTPS);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        match Uri::from_parts(parts) {
            Ok(uri) => self.0.call(uri),
            Err(e) => Box::pin(async move { Err(e.into()) }),
        }
    }
}

/// SUBSTRATE_TLS=skip-verify: any certificate is accepted (the reference's behaviour against the
/// in-cluster self-signed certificate), but the handshake signatures are still checked so the session
/// is at least bound to the key the server presented.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
