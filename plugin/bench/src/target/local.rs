//! Sandboxes started by the bench itself: cold = a new process, warm = the same process again,
//! restore = the process tree stopped with SIGSTOP and continued inside the timed connect phase.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Endpoint, Prepared, Target, TargetError};
use crate::sandbox_process::{SandboxCommand, SandboxProcess};
use crate::scenario::Scenario;

/// Settings of a [`LocalTarget`].
#[derive(Debug, Clone)]
pub struct LocalTargetConfig {
    pub name: String,
    pub command: SandboxCommand,
}

/// One sandbox process per scenario, managed directly.
pub struct LocalTarget {
    config: LocalTargetConfig,
    slots: HashMap<Scenario, SandboxProcess>,
}

impl LocalTarget {
    pub fn new(config: LocalTargetConfig) -> Self {
        Self {
            config,
            slots: HashMap::new(),
        }
    }

    async fn ensure(&mut self, scenario: Scenario) -> Result<bool, TargetError> {
        if let Some(p) = self.slots.get_mut(&scenario) {
            if p.is_alive() {
                return Ok(false);
            }
            tracing::warn!(?scenario, pid = p.pid(), "sandbox died; starting another");
            if let Some(p) = self.slots.remove(&scenario) {
                p.stop().await;
            }
        }
        // Only the MCP slot pays for starting @playwright/mcp; server.js starts it before the browser.
        let mut command = self.config.command.clone();
        command.mcp = scenario == Scenario::Mcp;
        let p = SandboxProcess::start(&command)
            .await
            .map_err(TargetError::Process)?;
        self.slots.insert(scenario, p);
        Ok(true)
    }

    fn endpoint(&self, scenario: Scenario) -> Result<Endpoint, TargetError> {
        let p = self
            .slots
            .get(&scenario)
            .ok_or_else(|| TargetError::Process(format!("no sandbox for {scenario}")))?;
        Ok(Endpoint {
            ws_url: p.ws_url().to_string(),
            headers: Vec::new(),
            mcp_url: p.mcp_url(),
        })
    }

    fn instance(&self, scenario: Scenario) -> Option<String> {
        self.slots
            .get(&scenario)
            .map(|p| format!("pid-{}", p.pid()))
    }
}

impl Target for LocalTarget {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn prepare(
        &mut self,
        scenario: Scenario,
        _sample: usize,
    ) -> BoxFuture<'_, Result<Prepared, TargetError>> {
        async move {
            match scenario {
                Scenario::Cold => {
                    if let Some(p) = self.slots.remove(&scenario) {
                        p.stop().await;
                    }
                    Ok(Prepared::default())
                }
                Scenario::Warm | Scenario::Mcp => {
                    let fresh = self.ensure(scenario).await?;
                    Ok(Prepared {
                        instance_before: self.instance(scenario),
                        fresh,
                    })
                }
                Scenario::Restore => {
                    let fresh = self.ensure(scenario).await?;
                    let p = self.slots.get_mut(&scenario).ok_or_else(|| {
                        TargetError::Process("sandbox vanished after start".into())
                    })?;
                    // SIGSTOP is delivered asynchronously and a child may appear meanwhile: signal the
                    // tree again until the kernel shows every process stopped.
                    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
                    loop {
                        p.suspend().map_err(TargetError::Process)?;
                        if p.is_stopped() {
                            break;
                        }
                        if tokio::time::Instant::now() > deadline {
                            return Err(TargetError::Process(format!(
                                "sandbox {} did not stop after SIGSTOP",
                                p.pid()
                            )));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    Ok(Prepared {
                        instance_before: self.instance(scenario),
                        fresh,
                    })
                }
            }
        }
        .boxed()
    }

    fn open(&mut self, scenario: Scenario) -> BoxFuture<'_, Result<Endpoint, TargetError>> {
        async move {
            match scenario {
                Scenario::Cold => {
                    self.ensure(scenario).await?;
                }
                Scenario::Restore => {
                    let p = self.slots.get_mut(&scenario).ok_or_else(|| {
                        TargetError::Process("restore without a suspended sandbox".into())
                    })?;
                    p.resume().map_err(TargetError::Process)?;
                }
                Scenario::Warm | Scenario::Mcp => {}
            }
            self.endpoint(scenario)
        }
        .boxed()
    }

    fn observe(
        &mut self,
        scenario: Scenario,
    ) -> BoxFuture<'_, Result<Option<String>, TargetError>> {
        async move { Ok(self.instance(scenario)) }.boxed()
    }

    fn shutdown(&mut self) -> BoxFuture<'_, ()> {
        async move {
            for (_, p) in self.slots.drain() {
                p.stop().await;
            }
        }
        .boxed()
    }
}
