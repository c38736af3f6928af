//! Verdict events through the real kube-apiserver, written with the argo-rollouts ServiceAccount's
//! own token and only the Role of deploy/argo-rollouts/events-rbac.yaml, then read back the way
//! `kubectl describe analysisrun` reads them (kubectl itself runs the describe).
//!
//! Run by `make test-plugin-kube-events` (test/kube/apiserver.sh starts the API server; Argo's
//! CRDs come from the argo-rollouts Go module, `SANDCANARY_ARGO_CRDS`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use goplugin::metric::AnalysisPhase;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use sandcanary_plugin::events::{
    AnalysisRunRef, EventSink, KubeEvents, Recorded, VerdictEvent, record_verdict,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let bin = std::env::var("SANDCANARY_KUBE_BIN").expect("run under test/kube/apiserver.sh");
    let mut cmd = Command::new(Path::new(&bin).join("kubectl"));
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            pipe.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A client that authenticates as the argo-rollouts ServiceAccount (a real TokenRequest token).
async fn service_account_client() -> kube::Client {
    let token = kubectl(
        &[
            "create",
            "token",
            "argo-rollouts",
            "-n",
            "argo-rollouts",
            "--duration=10m",
        ],
        None,
    );
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.trim().to_string().into()),
        ..Default::default()
    };
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
#[ignore = "needs a real kube-apiserver and Argo's CRDs: make test-plugin-kube-events"]
async fn verdict_events_with_only_create_on_events() {
    let crds = std::env::var("SANDCANARY_ARGO_CRDS").expect("SANDCANARY_ARGO_CRDS (make sets it)");
    kubectl(
        &[
            "apply",
            "--server-side",
            "-f",
            &format!("{crds}/analysis-run-crd.yaml"),
        ],
        None,
    );
    // Established shortly after the create (kubectl wait fails before the status exists).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while kubectl(
        &[
            "get",
            "crd/analysisruns.argoproj.io",
            "-o",
            "jsonpath={.status.acceptedNames.kind}",
        ],
        None,
    ) != "AnalysisRun"
    {
        assert!(std::time::Instant::now() < deadline, "CRD not established");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The namespaces and ServiceAccount the RBAC file names, then the file itself, unchanged.
    for ns in ["playwright", "argo-rollouts", "elsewhere"] {
        let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
        kubectl(&["apply", "-f", "-"], Some(&yaml));
    }
    kubectl(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: argo-rollouts\n  namespace: argo-rollouts\n",
        ),
    );
    let rbac = repo_root().join("deploy/argo-rollouts/events-rbac.yaml");
    kubectl(&["apply", "-f", rbac.to_str().unwrap()], None);

    // An AnalysisRun as Argo's controller would see it (the plugin gets namespace, name and uid).
    let name = format!("proxy-7d9f-{}", std::process::id());
    let run_yaml = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata:\n  name: {name}\n  namespace: playwright\nspec:\n  metrics:\n  - name: sandcanary\n    provider:\n      plugin:\n        sandcanary/sandcanary: {{}}\n"
    );
    kubectl(&["create", "-f", "-"], Some(&run_yaml));
    let uid = kubectl(
        &[
            "get",
            "analysisrun",
            &name,
            "-n",
            "playwright",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
        None,
    );
    let run = AnalysisRunRef {
        namespace: "playwright".into(),
        name: name.clone(),
        uid,
    };

    let sa = KubeEvents::new(service_account_client().await);
    let failed = VerdictEvent::of(
        &AnalysisPhase::Failed,
        "statistical: Failed (score 12.5): cold.total_ms High",
        Some("created https://github.com/acme/proxy/issues/7"),
    );
    let key = format!("{}/sandcanary/0", run.uid);
    let note = record_verdict(&sa, &run, &key, &failed, Duration::from_secs(10)).await;
    assert_eq!(note, "recorded Warning SandcanaryRegression");
    // The same measurement again (a restarted plugin re-runs it): one event, no patch needed.
    let again = sa.record(&run, &key, &failed).await.unwrap();
    assert_eq!(again, Recorded::AlreadyThere);
    // The next measurement's verdict is a promote.
    let promote = VerdictEvent::of(
        &AnalysisPhase::Successful,
        "statistical: Successful (score 98)",
        None,
    );
    let note = record_verdict(
        &sa,
        &run,
        &format!("{}/sandcanary/1", run.uid),
        &promote,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(note, "recorded Normal SandcanaryPromote");

    // As kubectl describe selects them: by the involved object's kind, name, namespace and uid.
    let admin = kube::Client::try_default().await.unwrap();
    let events: Api<Event> = Api::namespaced(admin, "playwright");
    let selector = format!(
        "involvedObject.kind=AnalysisRun,involvedObject.name={name},involvedObject.uid={}",
        run.uid
    );
    let listed = events
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap();
    let mut seen: Vec<(String, String)> = listed
        .items
        .iter()
        .map(|e| {
            (
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("Normal".into(), "SandcanaryPromote".into()),
            ("Warning".into(), "SandcanaryRegression".into())
        ]
    );
    let described = kubectl(
        &["describe", "analysisrun", &name, "-n", "playwright"],
        None,
    );
    let events_section = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{described}"));
    for want in [
        "Warning  SandcanaryRegression",
        "Normal   SandcanaryPromote",
        "sandcanary-plugin",
        "cold.total_ms High; GitHub issue: created https://github.com/acme/proxy/issues/7",
    ] {
        assert!(
            events_section.contains(want),
            "kubectl describe lacks {want:?}:\n{events_section}"
        );
    }

    // Outside the Role's namespace the write is refused; the verdict only gets a note.
    let elsewhere = AnalysisRunRef {
        namespace: "elsewhere".into(),
        ..run.clone()
    };
    let note = record_verdict(&sa, &elsewhere, &key, &failed, Duration::from_secs(10)).await;
    assert!(
        note.starts_with("not recorded: the API server refused the event:")
            && note.contains("events is forbidden")
            && note.len() <= 200,
        "{note}"
    );
    // The Role grants nothing else: not even reading the events back.
    let sa_events: Api<Event> = Api::namespaced(service_account_client().await, "playwright");
    let denied = sa_events.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "{denied}"
    );
}
