//! Any byte stream sent to the net/rpc server serving a metric provider: it must answer or close,
//! never panic or wedge.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use goplugin::gob::Limits;
use goplugin::metric::{
    AnalysisPhase, GarbageCollectArgs, GetMetadataArgs, Measurement, MetricPluginService,
    MetricProvider, RunArgs, TerminateAndResumeArgs,
};
use goplugin::rpc::{self, Router};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Quick;

impl MetricProvider for Quick {
    async fn init(&self) -> Result<(), String> {
        Ok(())
    }
    async fn run(&self, _: RunArgs) -> Measurement {
        Measurement::new(AnalysisPhase::Successful, "")
    }
    async fn resume(&self, a: TerminateAndResumeArgs) -> Measurement {
        a.measurement
    }
    async fn terminate(&self, a: TerminateAndResumeArgs) -> Measurement {
        a.measurement
    }
    async fn garbage_collect(&self, _: GarbageCollectArgs) -> Result<(), String> {
        Ok(())
    }
    fn type_name(&self) -> String {
        "Quick".into()
    }
    fn metadata(&self, _: GetMetadataArgs) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let data = data.to_vec();
    rt.block_on(async move {
        let (client, server) = tokio::io::duplex(1 << 16);
        let router = Router::new().register(
            "Plugin",
            Arc::new(MetricPluginService::new(Arc::new(Quick))),
        );
        let limits = Limits {
            max_message: 1 << 20,
            max_depth: 100,
        };
        let srv = tokio::spawn(rpc::serve(server, router, limits));
        let (mut rd, mut wr) = tokio::io::split(client);
        let w = tokio::spawn(async move {
            let _ = wr.write_all(&data).await;
            let _ = wr.shutdown().await;
            wr
        });
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut sink))
            .await
            .expect("server wedged")
            .ok();
        let _ = w.await;
        let _ = srv.await;
    });
});
