//! The substrate backend against a stand-in substrate (tests/substrate_support): the exact RPC
//! sequences, retries on Aborted, deadlines, readiness, TLS with a generated CA, suspend/resume
//! through the session API, and Playwright's official client reaching real Chromium through the
//! proxy and a Host-routing gateway.

mod substrate_support;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sandcanary_proxy::backend::local::{LocalBackend, process_tree};
use sandcanary_proxy::backend::substrate::proto::actor::Status as ActorStatus;
use sandcanary_proxy::backend::substrate::{SubstrateBackend, actor_id, host_header};
use sandcanary_proxy::backend::{Backend, BackendError};
use sandcanary_proxy::config::{BackendConfig, RawConfig, RawIdentity, RawLocal, RawSubstrate};
use substrate_support::{FakeSubstrate, Rpc, TEMPLATE_NAME, TEMPLATE_NS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

fn raw(fake: &FakeSubstrate) -> RawConfig {
    RawConfig {
        backend: Some("substrate".into()),
        identity: RawIdentity {
            identity: Some("static".into()),
            ..support::raw_config().identity
        },
        substrate: RawSubstrate {
            substrate_api_endpoint: Some(fake.api_addr.to_string()),
            substrate_router_addr: Some(fake.router_addr.to_string()),
            substrate_actor_template: Some(format!("{TEMPLATE_NS}/{TEMPLATE_NAME}")),
            substrate_force_boot: Some("true".into()),
            substrate_tls: Some("plaintext".into()),
            substrate_call_timeout: Some("2s".into()),
            substrate_poll_interval: Some("20ms".into()),
            substrate_running_timeout: Some("3s".into()),
            substrate_probe_timeout: Some("2s".into()),
            ..support::raw_config().substrate
        },
        ..support::raw_config()
    }
}

fn backend(raw: RawConfig) -> SubstrateBackend {
    support::init_tracing();
    match support::config(raw).backend {
        BackendConfig::Substrate(s) => SubstrateBackend::new(s),
        other => panic!("not substrate settings: {other:?}"),
    }
}

/// The gRPC code a backend error keeps, if it is a gRPC failure (and that the status is its source).
fn grpc_code(e: &BackendError) -> Option<Code> {
    assert_eq!(
        e.grpc_status().is_some(),
        std::error::Error::source(e).is_some(),
        "a gRPC failure keeps its status as the source: {e:?}"
    );
    e.grpc_status().map(tonic::Status::code)
}

fn count(rpcs: &[Rpc], name: &str) -> usize {
    rpcs.iter().filter(|r| r.name() == name).count()
}

/// One raw request to the gateway with a given Host; returns the status code.
async fn gateway_status(router: SocketAddr, host: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(router).await.unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn ensure_creates_resumes_polls_probes_and_routes_by_host() {
    let fake = FakeSubstrate::start(None, None).await;
    fake.script(|s| {
        s.resuming_polls = 2;
        s.gateway_503 = 2;
    });
    let b = backend(raw(&fake));
    let ep = b.ensure("abc").await.unwrap();
    assert_eq!(ep.ws.to_string(), fake.router_addr.to_string());
    assert_eq!(ep.mcp, None);
    assert_eq!(
        ep.host_header.as_deref(),
        Some("pw-abc.actors.resources.substrate.ate.dev")
    );
    let rpcs = fake.rpcs();
    assert_eq!(
        rpcs[..3],
        [
            Rpc::Get("pw-abc".into()),
            Rpc::Create {
                actor: "pw-abc".into(),
                namespace: TEMPLATE_NS.into(),
                name: TEMPLATE_NAME.into()
            },
            Rpc::Resume {
                actor: "pw-abc".into(),
                boot: true
            },
        ]
    );
    // Polled through two RESUMING answers, then RUNNING; nothing else.
    assert_eq!(rpcs[3..], vec![Rpc::Get("pw-abc".into()); 3][..]);
    // The probe saw 503 twice, then reached the workload, always with the actor's Host.
    let seen = fake.gateway_requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|(h, _)| h == &host_header("pw-abc")));
    assert_eq!(
        seen.iter().map(|(_, ok)| *ok).collect::<Vec<_>>(),
        [false, false, true]
    );
    // A wrong Host never reaches the workload.
    for host in [
        "pw-zzz.actors.resources.substrate.ate.dev",
        "example.com",
        "",
    ] {
        assert_eq!(gateway_status(fake.router_addr, host).await, 404, "{host}");
    }

    // A RUNNING actor: one GetActor, no create, no resume.
    fake.clear_rpcs();
    assert_eq!(b.ensure("abc").await.unwrap(), ep);
    assert_eq!(fake.rpcs(), [Rpc::Get("pw-abc".into())]);

    // Delete: suspend, confirm SUSPENDED, delete.
    fake.clear_rpcs();
    b.delete("abc").await.unwrap();
    assert_eq!(
        fake.rpcs(),
        [
            Rpc::Suspend("pw-abc".into()),
            Rpc::Get("pw-abc".into()),
            Rpc::Delete("pw-abc".into())
        ]
    );
    assert_eq!(fake.status("pw-abc"), None);
    // Deleting again is success without a DeleteActor.
    fake.clear_rpcs();
    b.delete("abc").await.unwrap();
    assert_eq!(fake.rpcs(), [Rpc::Suspend("pw-abc".into())]);
    fake.stop();
}

#[tokio::test]
async fn create_races_resume_races_and_unmappable_ids() {
    let fake = FakeSubstrate::start(None, None).await;
    let b = backend(RawConfig {
        substrate: RawSubstrate {
            substrate_force_boot: Some("false".into()),
            ..raw(&fake).substrate
        },
        ..raw(&fake)
    });
    // Someone else created the actor between our GetActor and CreateActor: AlreadyExists => GetActor.
    fake.insert(
        "pw-raced",
        TEMPLATE_NS,
        TEMPLATE_NAME,
        ActorStatus::Suspended,
    );
    fake.script(|s| {
        s.fail.insert("GetActor", Code::NotFound);
    });
    let get_then_fail = b.ensure("raced").await;
    assert!(get_then_fail.is_err());
    fake.script(|s| s.fail.clear());
    fake.clear_rpcs();
    b.ensure("raced").await.unwrap();
    assert_eq!(
        fake.rpcs()[..2],
        [
            Rpc::Get("pw-raced".into()),
            Rpc::Resume {
                actor: "pw-raced".into(),
                boot: false
            }
        ]
    );
    // Ids substrate would reject get a stable hashed DNS-1123 actor id.
    let ep = b.ensure("Tenant_1").await.unwrap();
    let actor = actor_id("Tenant_1");
    assert_ne!(actor, "pw-Tenant_1");
    assert_eq!(ep.host_header, Some(host_header(&actor)));
    assert_eq!(fake.status(&actor), Some(ActorStatus::Running));
    // An actor of another template is not ours.
    fake.insert("pw-foreign", "other", "tpl", ActorStatus::Running);
    match b.ensure("foreign").await {
        Err(BackendError::Failed(m)) => assert!(m.contains("belongs to template other/tpl"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    fake.stop();
}

#[tokio::test]
async fn aborted_and_unavailable_are_retried_a_bounded_number_of_times() {
    let fake = FakeSubstrate::start(None, None).await;
    let b = backend(RawConfig {
        substrate: RawSubstrate {
            substrate_max_attempts: Some("3".into()),
            ..raw(&fake).substrate
        },
        ..raw(&fake)
    });
    fake.script(|s| {
        s.aborted.insert("GetActor", 2);
        s.unavailable.insert("ResumeActor", 1);
        s.aborted.insert("ResumeActor", 1);
    });
    b.ensure("a").await.unwrap();
    let rpcs = fake.rpcs();
    assert_eq!(rpcs[..3], vec![Rpc::Get("pw-a".into()); 3][..]);
    assert_eq!(count(&rpcs, "CreateActor"), 1);
    assert_eq!(count(&rpcs, "ResumeActor"), 3);

    // Aborted forever: gives up after SUBSTRATE_MAX_ATTEMPTS with a clean error.
    fake.clear_rpcs();
    fake.script(|s| {
        s.aborted.insert("CreateActor", 100);
    });
    let started = Instant::now();
    match b.ensure("b").await {
        Err(e @ BackendError::Grpc { .. }) => {
            let m = e.to_string();
            assert!(m.contains("CreateActor pw-b: Aborted"), "{m}");
            assert!(m.contains("gave up after 3 attempts"), "{m}");
            assert_eq!(grpc_code(&e), Some(Code::Aborted), "the status is kept");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(count(&fake.rpcs(), "CreateActor"), 3);
    // Backoff 100 ms then 200 ms.
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Other codes are not retried.
    fake.clear_rpcs();
    fake.script(|s| {
        s.fail.insert("GetActor", Code::PermissionDenied);
    });
    match b.ensure("c").await {
        Err(e @ BackendError::Grpc { .. }) => {
            assert_eq!(grpc_code(&e), Some(Code::PermissionDenied));
            assert!(e.to_string().contains("PermissionDenied"), "{e}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(fake.rpcs(), [Rpc::Get("pw-c".into())]);
    // ResourceExhausted (no free workers) is a capacity error: 503 to the caller.
    fake.script(|s| {
        s.fail.insert("GetActor", Code::ResourceExhausted);
    });
    match b.ensure("c").await {
        Err(e) => {
            assert!(e.is_capacity(), "{e:?}");
            assert_eq!(grpc_code(&e), Some(Code::ResourceExhausted));
        }
        Ok(ep) => panic!("expected a capacity error, got {ep:?}"),
    }
    fake.stop();
}

#[tokio::test]
async fn never_running_failed_boot_and_unreachable_workloads_fail_cleanly() {
    let fake = FakeSubstrate::start(None, None).await;
    let b = backend(RawConfig {
        substrate: RawSubstrate {
            substrate_running_timeout: Some("500ms".into()),
            substrate_probe_timeout: Some("300ms".into()),
            ..raw(&fake).substrate
        },
        ..raw(&fake)
    });
    fake.script(|s| s.never_ready = true);
    match b.ensure("slow").await {
        Err(BackendError::Timeout(m)) => {
            assert!(m.contains("not RUNNING"), "{m}");
            assert!(m.contains("STATUS_RESUMING"), "{m}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(count(&fake.rpcs(), "ResumeActor"), 1, "resumed once only");

    fake.script(|s| {
        s.never_ready = false;
        s.boot_fails = true;
        s.resuming_polls = 1;
    });
    match b.ensure("broken").await {
        // Failed, not a timeout: it does not wait out SUBSTRATE_RUNNING_TIMEOUT.
        Err(BackendError::Failed(m)) => assert!(m.contains("boot failed"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }

    // RUNNING but the router keeps answering 503: an error, not a blind success.
    fake.script(|s| {
        s.boot_fails = false;
        s.gateway_503 = 1000;
    });
    match b.ensure("mute").await {
        Err(BackendError::Timeout(m)) => assert!(m.contains("503 from the router"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // 404 means atenet does not know the actor: not ready, although something answered.
    fake.script(|s| {
        s.gateway_503 = 0;
        s.gateway_404 = 1000;
    });
    match b.ensure("unknown").await {
        Err(BackendError::Timeout(m)) => assert!(m.contains("404 from the router"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // A few 404s while atenet catches up are fine.
    fake.script(|s| s.gateway_404 = 2);
    b.ensure("unknown").await.unwrap();
    // A server that answers for another actor than asked is a newer API, not a success.
    fake.script(|s| s.wrong_actor_id = Some("".into()));
    match b.ensure("unknown").await {
        Err(BackendError::Failed(m)) => assert!(m.contains("newer than the pinned"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    fake.stop();
}

#[tokio::test]
async fn delete_tolerates_not_found_and_list_is_scoped_and_paged() {
    let fake = FakeSubstrate::start(None, None).await;
    let b = backend(raw(&fake));
    b.ensure("gone").await.unwrap();
    fake.script(|s| s.delete_not_found = true);
    b.delete("gone").await.unwrap();
    assert_eq!(count(&fake.rpcs(), "DeleteActor"), 1);

    // Deleting an actor that is still resuming: SuspendActor is refused (not RUNNING), so the
    // backend polls, suspends again once it runs, and deletes it once SUSPENDED.
    fake.script(|s| s.delete_not_found = false);
    fake.insert("pw-r", TEMPLATE_NS, TEMPLATE_NAME, ActorStatus::Resuming);
    fake.clear_rpcs();
    b.delete("r").await.unwrap();
    assert_eq!(
        fake.rpcs(),
        [
            Rpc::Suspend("pw-r".into()),
            Rpc::Get("pw-r".into()),
            Rpc::Suspend("pw-r".into()),
            Rpc::Get("pw-r".into()),
            Rpc::Delete("pw-r".into()),
        ]
    );
    assert_eq!(fake.status("pw-r"), None);

    fake.clear_rpcs();
    fake.script(|s| s.page_size = 2);
    let mine = |a: &str, st| fake.insert(a, TEMPLATE_NS, TEMPLATE_NAME, st);
    mine("pw-a", ActorStatus::Running);
    mine("pw-b", ActorStatus::Suspended);
    mine("pw-d", ActorStatus::Resuming);
    mine("other-x", ActorStatus::Running);
    mine(&actor_id("Tenant_1"), ActorStatus::Running);
    fake.insert("pw-c", "other", "tpl", ActorStatus::Running);
    assert_eq!(b.list().await.unwrap(), ["a", "d"]);
    let rpcs = fake.rpcs();
    assert_eq!(
        rpcs,
        ["", "2", "4"]
            .iter()
            .map(|t| Rpc::List {
                page_size: 500,
                page_token: t.to_string()
            })
            .collect::<Vec<_>>()
    );
    fake.stop();
}

#[tokio::test]
async fn a_call_past_its_deadline_is_a_clean_502_through_the_proxy() {
    let fake = FakeSubstrate::start(None, None).await;
    fake.script(|s| {
        s.delay.insert("GetActor", Duration::from_secs(5));
    });
    let p = sandcanary_proxy::server::start(support::config(RawConfig {
        substrate: RawSubstrate {
            substrate_call_timeout: Some("300ms".into()),
            ..raw(&fake).substrate
        },
        ..raw(&fake)
    }))
    .await
    .unwrap();
    let started = Instant::now();
    let (status, body) = http_from("127.0.0.2", p.data_addr, "/").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.starts_with("session unavailable:"), "{body}");
    assert!(body.contains("SUBSTRATE_CALL_TIMEOUT (300ms)"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // DeadlineExceeded is not retried (the start-up ListActors plus one GetActor).
    assert_eq!(count(&fake.rpcs(), "GetActor"), 1);
    p.shutdown();
    p.wait().await;
    fake.stop();
}

#[tokio::test]
async fn proxied_http_carries_the_actor_host_to_the_router() {
    let fake = FakeSubstrate::start(None, None).await;
    let p = sandcanary_proxy::server::start(support::config(raw(&fake)))
        .await
        .unwrap();
    let (status, body) = http_from("127.0.0.3", p.data_addr, "/").await;
    assert_eq!((status, body.as_str()), (200, "workload"));
    let host = host_header("pw-tenant-3");
    let seen = fake.gateway_requests();
    // The readiness probe, then the proxied request, both routed by the actor's Host.
    assert_eq!(seen, [(host.clone(), true), (host, true)]);
    p.shutdown();
    p.wait().await;
    fake.stop();
}

async fn http_from(source: &str, to: SocketAddr, path: &str) -> (u16, String) {
    let s = support::connect_from(source, to).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "proxy.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn admin(to: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    let s = tokio::net::TcpStream::connect(to).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin.test")
        .header(
            "authorization",
            format!("Bearer {}", support::SESSION_TOKEN),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn tls_with_a_generated_ca_and_the_insecure_modes() {
    let (ca_pem, server_tls) = substrate_support::ca_and_server_cert();
    let (other_ca, _) = substrate_support::ca_and_server_cert();
    let fake = FakeSubstrate::start(Some(server_tls), None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let wrong = dir.path().join("other.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    std::fs::write(&wrong, other_ca).unwrap();
    let port = fake.api_addr.port();
    let tls = |endpoint: String, mode: &str, ca: Option<&std::path::Path>, name: Option<&str>| {
        backend(RawConfig {
            substrate: RawSubstrate {
                substrate_api_endpoint: Some(endpoint),
                substrate_tls: Some(mode.into()),
                substrate_ca_file: ca.map(|p| p.to_string_lossy().into_owned()),
                substrate_tls_server_name: name.map(String::from),
                substrate_max_attempts: Some("2".into()),
                ..raw(&fake).substrate
            },
            ..raw(&fake)
        })
    };

    // Verified against the CA, by host name and by IP with a server-name override.
    tls(format!("localhost:{port}"), "verify", Some(&ca), None)
        .ensure("t1")
        .await
        .unwrap();
    tls(
        format!("127.0.0.1:{port}"),
        "verify",
        Some(&ca),
        Some("localhost"),
    )
    .ensure("t2")
    .await
    .unwrap();
    let before = fake.rpcs().len();

    // A certificate that CA did not sign is refused before any RPC reaches the server.
    match tls(format!("localhost:{port}"), "verify", Some(&wrong), None)
        .ensure("t3")
        .await
    {
        Err(e @ BackendError::Grpc { .. }) => {
            assert_eq!(grpc_code(&e), Some(Code::Unavailable));
            let m = e.to_string();
            assert!(m.to_lowercase().contains("certificate"), "{m}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // Plaintext against a TLS server fails as well.
    assert!(
        tls(format!("localhost:{port}"), "plaintext", None, None)
            .ensure("t3")
            .await
            .is_err()
    );
    assert_eq!(fake.rpcs().len(), before, "no RPC got through");

    // skip-verify: the explicit opt-in accepts the certificate without a CA.
    tls(format!("localhost:{port}"), "skip-verify", None, None)
        .ensure("t4")
        .await
        .unwrap();
    fake.stop();
}

/// The whole path with real parts: Playwright's official client -> the proxy (BACKEND=substrate) ->
/// the Host-routing gateway -> a real Chromium sandbox; then suspend and resume through the session
/// API (the sandbox's processes really stop), and delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playwright_reaches_chromium_through_the_gateway_and_survives_suspend_resume() {
    support::init_tracing();
    let fixture = support::fixture_server().await;
    // Short (Chromium's socket paths), and removed even when the test fails.
    let tmp = tempfile::Builder::new()
        .prefix("sc-sub")
        .tempdir_in("/tmp")
        .unwrap();
    let local_cfg = support::config(RawConfig {
        local: RawLocal {
            local_tmp_dir: Some(tmp.path().to_string_lossy().into_owned()), // As in an ateom pod, the workload is not bound to localhost: Playwright only checks Host
            // headers (against DNS rebinding) on servers bound to a localhost address.
            local_bind: Some("127.0.0.10".into()),
            local_warm_pool: Some("0".into()),
            local_max_sandboxes: Some("2".into()),
            local_start_timeout: Some("120s".into()),
            ..support::raw_config().local
        },
        ..support::raw_config()
    })
    .backend;
    let BackendConfig::Local(local_cfg) = local_cfg else {
        panic!("not local settings")
    };
    let workloads = LocalBackend::new(local_cfg);
    let fake = FakeSubstrate::start(None, Some(workloads.clone())).await;
    let p = sandcanary_proxy::server::start(support::config(RawConfig {
        ensure_timeout: Some("150s".into()),
        substrate: RawSubstrate {
            substrate_running_timeout: Some("120s".into()),
            substrate_probe_timeout: Some("30s".into()),
            ..raw(&fake).substrate
        },
        ..raw(&fake)
    }))
    .await
    .unwrap();
    let env = vec![
        ("PW_URL", format!("ws://{}/", p.data_addr)),
        ("PW_TARGET_URL", format!("http://{fixture}/")),
    ];
    let check = |r: &support::NodeResult| {
        assert_eq!(r.code, 0, "client failed: {}", r.stderr);
        let v = r.result.as_ref().expect("a RESULT line");
        assert_eq!(v["status"], 200, "{v}");
        assert_eq!(v["title"], "sandcanary fixture", "{v}");
    };
    check(&support::run_node("client.js", "127.0.0.2", &env).await);
    let host = host_header("pw-tenant-2");
    let routed = fake
        .gateway_requests()
        .iter()
        .filter(|(h, ok)| h == &host && *ok)
        .count();
    assert!(
        routed >= 2,
        "the probe and the WebSocket went through the gateway with the actor's Host: {:?}",
        fake.gateway_requests()
    );
    assert!(
        fake.gateway_requests().iter().all(|(h, _)| h == &host),
        "{:?}",
        fake.gateway_requests()
    );

    // Suspend through the session API: substrate suspends the actor; its processes stop.
    let (s, v) = admin(p.admin_addr, "POST", "/v1/sessions/tenant-2/suspend").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "suspended");
    assert_eq!(fake.status("pw-tenant-2"), Some(ActorStatus::Suspended));
    let sb = workloads
        .sandbox("pw-tenant-2")
        .expect("the actor's sandbox");
    assert!(sb.suspended());
    let tree = process_tree(sb.pid);
    assert!(!tree.is_empty());
    let stopped = || {
        tree.iter()
            // Stopped, or already dead (a renderer that exited just before; its parent is stopped
            // and cannot reap it).
            .all(|p| process_state(*p).is_none_or(|c| matches!(c, 'T' | 't' | 'Z' | 'X')))
    };
    let since = Instant::now();
    while !stopped() && since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stopped(),
        "sandbox processes are stopped: {:?}",
        tree.iter()
            .map(|p| (*p, process_state(*p)))
            .collect::<Vec<_>>()
    );

    // Resume through the session API: ResumeActor with the configured boot flag, then usable again.
    fake.clear_rpcs();
    let (s, v) = admin(p.admin_addr, "POST", "/v1/sessions/tenant-2/resume").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "ready");
    assert!(fake.rpcs().contains(&Rpc::Resume {
        actor: "pw-tenant-2".into(),
        boot: true
    }));
    assert!(!sb.suspended());
    check(&support::run_node("client.js", "127.0.0.2", &env).await);

    let (s, _) = admin(p.admin_addr, "DELETE", "/v1/sessions/tenant-2").await;
    assert_eq!(s, 204);
    assert_eq!(fake.status("pw-tenant-2"), None);
    assert!(workloads.sandbox("pw-tenant-2").is_none());
    p.shutdown();
    p.wait().await;
    workloads.shutdown().await;
    fake.stop();
}

fn process_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim_start().chars().next()
}
