//! The parts of Argo's `RunArgs`, `AnalysisRun`, `Metric` and `Measurement` a plugin reads,
//! pulled by field name out of dynamically decoded gob values (Go's ids and field numbers are
//! never assumed, and fields we do not model are ignored).

use std::collections::BTreeMap;

use crate::gob::{GoTime, GoType, Struct, Value};

/// A value that does not have the shape Argo's Go types give it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("expected interface value {expected:?}, got {got:?}")]
    WrongInterface { expected: &'static str, got: String },
    #[error("field {0} has an unexpected type")]
    WrongType(&'static str),
}

/// `AnalysisPhase`. `Completed()` holds for Successful, Failed, Error and Inconclusive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AnalysisPhase {
    #[default]
    Empty,
    Pending,
    Running,
    Successful,
    Failed,
    Error,
    Inconclusive,
    Other(String),
}

impl AnalysisPhase {
    pub fn as_str(&self) -> &str {
        match self {
            AnalysisPhase::Empty => "",
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::Inconclusive => "Inconclusive",
            AnalysisPhase::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> AnalysisPhase {
        match s {
            "" => AnalysisPhase::Empty,
            "Pending" => AnalysisPhase::Pending,
            "Running" => AnalysisPhase::Running,
            "Successful" => AnalysisPhase::Successful,
            "Failed" => AnalysisPhase::Failed,
            "Error" => AnalysisPhase::Error,
            "Inconclusive" => AnalysisPhase::Inconclusive,
            other => AnalysisPhase::Other(other.to_string()),
        }
    }

    pub fn is_completed(&self) -> bool {
        matches!(
            self,
            AnalysisPhase::Successful
                | AnalysisPhase::Failed
                | AnalysisPhase::Error
                | AnalysisPhase::Inconclusive
        )
    }
}

fn string(v: &Value, f: &'static str) -> Result<String, ModelError> {
    match v.field(f) {
        None | Some(Value::Nil) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

fn opt_string(v: &Value, f: &'static str) -> Result<Option<String>, ModelError> {
    match v.field(f) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

fn int(v: &Value, f: &'static str) -> Result<i64, ModelError> {
    match v.field(f) {
        None => Ok(0),
        Some(Value::Int(i)) => Ok(*i),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

fn boolean(v: &Value, f: &'static str) -> Result<bool, ModelError> {
    match v.field(f) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

fn opt_bool(v: &Value, f: &'static str) -> Result<Option<bool>, ModelError> {
    match v.field(f) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

fn time(v: &Value, f: &'static str) -> Result<Option<GoTime>, ModelError> {
    match v.field(f) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Opaque(b)) => GoTime::from_bytes(b)
            .map(Some)
            .map_err(|_| ModelError::WrongType(f)),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

fn string_map(v: &Value, f: &'static str) -> Result<Option<BTreeMap<String, String>>, ModelError> {
    match v.field(f) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| match (k, v) {
                (Value::String(k), Value::String(v)) => Ok((k.clone(), v.clone())),
                _ => Err(ModelError::WrongType(f)),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

fn list<'a>(v: &'a Value, f: &'static str) -> Result<&'a [Value], ModelError> {
    match v.field(f) {
        None => Ok(&[]),
        Some(x) => x.as_slice().ok_or(ModelError::WrongType(f)),
    }
}

fn child<'a>(v: &'a Value, f: &'static str) -> Result<Option<&'a Value>, ModelError> {
    match v.field(f) {
        None | Some(Value::Nil) => Ok(None),
        Some(s @ Value::Struct(_)) => Ok(Some(s)),
        Some(_) => Err(ModelError::WrongType(f)),
    }
}

static EMPTY: Value = Value::Nil;

/// `intstr.IntOrString` (`Type` 0 = Int, 1 = String).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl IntOrString {
    fn parse(v: &Value) -> Result<Self, ModelError> {
        Ok(if int(v, "Type")? == 1 {
            IntOrString::String(string(v, "StrVal")?)
        } else {
            IntOrString::Int(int(v, "IntVal")?)
        })
    }

    fn field(v: &Value, f: &'static str) -> Result<Option<Self>, ModelError> {
        child(v, f)?.map(Self::parse).transpose()
    }

    /// Like Go's `IntValue()`: strings are parsed, 0 on error.
    pub fn int_value(&self) -> i64 {
        match self {
            IntOrString::Int(i) => *i,
            IntOrString::String(s) => s.parse().unwrap_or(0),
        }
    }
}

/// `v1alpha1.Measurement`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Measurement {
    pub phase: AnalysisPhase,
    pub message: String,
    pub started_at: Option<GoTime>,
    pub finished_at: Option<GoTime>,
    pub value: String,
    pub metadata: Option<BTreeMap<String, String>>,
    pub resume_at: Option<GoTime>,
}

fn time_type() -> GoType {
    GoType::GobEncoder("Time".into())
}

fn opt_time_value(t: &Option<GoTime>) -> Value {
    t.map(|t| Value::Opaque(t.to_bytes())).unwrap_or(Value::Nil)
}

pub(crate) fn string_map_value(m: &BTreeMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone())))
            .collect(),
    )
}

impl Measurement {
    /// A measurement in `phase` with a message, stamped now and finished when completed.
    pub fn new(phase: AnalysisPhase, message: impl Into<String>) -> Self {
        let now = GoTime::now();
        let finished = phase.is_completed().then_some(now);
        Measurement {
            phase,
            message: message.into(),
            started_at: Some(now),
            finished_at: finished,
            ..Default::default()
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(AnalysisPhase::Error, message)
    }

    pub fn gob_type() -> GoType {
        GoType::structure(
            "Measurement",
            &[
                ("Phase", GoType::String),
                ("Message", GoType::String),
                ("StartedAt", time_type()),
                ("FinishedAt", time_type()),
                ("Value", GoType::String),
                ("Metadata", GoType::map(GoType::String, GoType::String)),
                ("ResumeAt", time_type()),
            ],
        )
    }

    pub fn to_value(&self) -> Value {
        Value::Struct(
            Struct::new()
                .with("Phase", Value::String(self.phase.as_str().to_string()))
                .with("Message", Value::String(self.message.clone()))
                .with("StartedAt", opt_time_value(&self.started_at))
                .with("FinishedAt", opt_time_value(&self.finished_at))
                .with("Value", Value::String(self.value.clone()))
                .with(
                    "Metadata",
                    self.metadata
                        .as_ref()
                        .map(string_map_value)
                        .unwrap_or(Value::Nil),
                )
                .with("ResumeAt", opt_time_value(&self.resume_at)),
        )
    }

    pub fn from_value(v: &Value) -> Result<Self, ModelError> {
        Ok(Measurement {
            phase: AnalysisPhase::parse(&string(v, "Phase")?),
            message: string(v, "Message")?,
            started_at: time(v, "StartedAt")?,
            finished_at: time(v, "FinishedAt")?,
            value: string(v, "Value")?,
            metadata: string_map(v, "Metadata")?,
            resume_at: time(v, "ResumeAt")?,
        })
    }
}

/// `types.RpcError`: empty means success.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RpcError {
    pub error_string: String,
}

impl RpcError {
    pub fn gob_type() -> GoType {
        GoType::structure("RpcError", &[("ErrorString", GoType::String)])
    }

    pub fn to_value(&self) -> Value {
        Value::Struct(Struct::new().with("ErrorString", Value::String(self.error_string.clone())))
    }
}

/// `v1alpha1.Metric`, without the built-in providers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metric {
    pub name: String,
    pub interval: String,
    pub initial_delay: String,
    pub count: Option<IntOrString>,
    pub success_condition: String,
    pub failure_condition: String,
    pub failure_limit: Option<IntOrString>,
    pub inconclusive_limit: Option<IntOrString>,
    pub consecutive_error_limit: Option<IntOrString>,
    pub consecutive_success_limit: Option<IntOrString>,
    /// `Provider.Plugin`: plugin name to its (already templated) JSON configuration.
    pub plugin: BTreeMap<String, Vec<u8>>,
}

impl Metric {
    fn parse(v: &Value) -> Result<Self, ModelError> {
        let mut plugin = BTreeMap::new();
        if let Some(p) = child(v, "Provider")? {
            match p.field("Plugin") {
                None | Some(Value::Nil) => {}
                Some(Value::Map(entries)) => {
                    for (k, val) in entries {
                        match (k, val) {
                            (Value::String(k), Value::Bytes(b)) => {
                                plugin.insert(k.clone(), b.clone());
                            }
                            _ => return Err(ModelError::WrongType("Provider.Plugin")),
                        }
                    }
                }
                Some(_) => return Err(ModelError::WrongType("Provider.Plugin")),
            }
        }
        Ok(Metric {
            name: string(v, "Name")?,
            interval: string(v, "Interval")?,
            initial_delay: string(v, "InitialDelay")?,
            count: IntOrString::field(v, "Count")?,
            success_condition: string(v, "SuccessCondition")?,
            failure_condition: string(v, "FailureCondition")?,
            failure_limit: IntOrString::field(v, "FailureLimit")?,
            inconclusive_limit: IntOrString::field(v, "InconclusiveLimit")?,
            consecutive_error_limit: IntOrString::field(v, "ConsecutiveErrorLimit")?,
            consecutive_success_limit: IntOrString::field(v, "ConsecutiveSuccessLimit")?,
            plugin,
        })
    }

    /// The plugin's own configuration: the only key under `provider.plugin`, whatever name the
    /// plugin was registered under (the controller chose this binary by that key).
    pub fn plugin_config(&self) -> Option<(&str, &[u8])> {
        if self.plugin.len() != 1 {
            return None;
        }
        self.plugin
            .iter()
            .next()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// `metav1.OwnerReference`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: Option<bool>,
    pub block_owner_deletion: Option<bool>,
}

/// `v1alpha1.Argument`. Secret-backed values arrive resolved, in plain text: never log them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Argument {
    pub name: String,
    pub value: Option<String>,
    pub secret_key_ref: Option<(String, String)>,
    pub field_ref: Option<String>,
}

/// `v1alpha1.MetricResult`, the parts a plugin reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricResult {
    pub name: String,
    pub phase: AnalysisPhase,
    pub measurements: Vec<Measurement>,
    pub message: String,
    pub count: i64,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `v1alpha1.AnalysisRun`, the parts a plugin reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnalysisRun {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub generation: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerReference>,
    pub creation_timestamp: Option<GoTime>,
    pub deletion_timestamp: Option<GoTime>,
    pub args: Vec<Argument>,
    pub terminate: bool,
    pub dry_run: Vec<String>,
    pub phase: AnalysisPhase,
    pub message: String,
    pub started_at: Option<GoTime>,
    pub metric_results: Vec<MetricResult>,
}

impl AnalysisRun {
    fn parse(v: &Value) -> Result<Self, ModelError> {
        let meta = child(v, "ObjectMeta")?.unwrap_or(&EMPTY);
        let spec = child(v, "Spec")?.unwrap_or(&EMPTY);
        let status = child(v, "Status")?.unwrap_or(&EMPTY);
        let owner_references = list(meta, "OwnerReferences")?
            .iter()
            .map(|o| {
                Ok(OwnerReference {
                    api_version: string(o, "APIVersion")?,
                    kind: string(o, "Kind")?,
                    name: string(o, "Name")?,
                    uid: string(o, "UID")?,
                    controller: opt_bool(o, "Controller")?,
                    block_owner_deletion: opt_bool(o, "BlockOwnerDeletion")?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        let args = list(spec, "Args")?
            .iter()
            .map(|a| {
                let vf = child(a, "ValueFrom")?.unwrap_or(&EMPTY);
                let secret = child(vf, "SecretKeyRef")?
                    .map(|s| Ok::<_, ModelError>((string(s, "Name")?, string(s, "Key")?)))
                    .transpose()?;
                let field_ref = child(vf, "FieldRef")?
                    .map(|f| string(f, "FieldPath"))
                    .transpose()?;
                Ok(Argument {
                    name: string(a, "Name")?,
                    value: opt_string(a, "Value")?,
                    secret_key_ref: secret,
                    field_ref,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        let dry_run = list(spec, "DryRun")?
            .iter()
            .map(|d| string(d, "MetricName"))
            .collect::<Result<_, _>>()?;
        let metric_results = list(status, "MetricResults")?
            .iter()
            .map(|r| {
                Ok(MetricResult {
                    name: string(r, "Name")?,
                    phase: AnalysisPhase::parse(&string(r, "Phase")?),
                    measurements: list(r, "Measurements")?
                        .iter()
                        .map(Measurement::from_value)
                        .collect::<Result<_, _>>()?,
                    message: string(r, "Message")?,
                    count: int(r, "Count")?,
                    metadata: string_map(r, "Metadata")?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(AnalysisRun {
            name: string(meta, "Name")?,
            namespace: string(meta, "Namespace")?,
            uid: string(meta, "UID")?,
            generation: int(meta, "Generation")?,
            labels: string_map(meta, "Labels")?.unwrap_or_default(),
            annotations: string_map(meta, "Annotations")?.unwrap_or_default(),
            owner_references,
            creation_timestamp: time(meta, "CreationTimestamp")?,
            deletion_timestamp: time(meta, "DeletionTimestamp")?,
            args,
            terminate: boolean(spec, "Terminate")?,
            dry_run,
            phase: AnalysisPhase::parse(&string(status, "Phase")?),
            message: string(status, "Message")?,
            started_at: time(status, "StartedAt")?,
            metric_results,
        })
    }

    fn field(v: &Value) -> Result<Option<Self>, ModelError> {
        child(v, "AnalysisRun")?.map(Self::parse).transpose()
    }

    /// The Rollout that owns this run, if any.
    pub fn rollout_name(&self) -> Option<&str> {
        self.owner_references
            .iter()
            .find(|o| o.kind == "Rollout")
            .map(|o| o.name.as_str())
    }
}

/// Unwraps an interface value registered under `name` (as `gob.RegisterName` did in Go).
fn concrete<'a>(v: &'a Value, name: &'static str) -> Result<&'a Value, ModelError> {
    match v {
        Value::Interface(n, inner) if n == name => Ok(inner),
        Value::Interface(n, _) => Err(ModelError::WrongInterface {
            expected: name,
            got: n.clone(),
        }),
        Value::Nil => Err(ModelError::WrongInterface {
            expected: name,
            got: "nil".into(),
        }),
        _ => Err(ModelError::WrongInterface {
            expected: name,
            got: "a non-interface value".into(),
        }),
    }
}

/// `rpc.RunArgs`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunArgs {
    /// `nil` in Go is possible (Argo's own tests send it).
    pub analysis_run: Option<AnalysisRun>,
    pub metric: Metric,
}

impl RunArgs {
    pub fn from_value(v: &Value) -> Result<Self, ModelError> {
        let v = concrete(v, "RunArgs")?;
        Ok(RunArgs {
            analysis_run: AnalysisRun::field(v)?,
            metric: Metric::parse(child(v, "Metric")?.unwrap_or(&EMPTY))?,
        })
    }
}

/// `rpc.TerminateAndResumeArgs`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TerminateAndResumeArgs {
    pub analysis_run: Option<AnalysisRun>,
    pub metric: Metric,
    pub measurement: Measurement,
}

impl TerminateAndResumeArgs {
    pub fn from_value(v: &Value) -> Result<Self, ModelError> {
        let v = concrete(v, "TerminateAndResumeArgs")?;
        Ok(TerminateAndResumeArgs {
            analysis_run: AnalysisRun::field(v)?,
            metric: Metric::parse(child(v, "Metric")?.unwrap_or(&EMPTY))?,
            measurement: Measurement::from_value(child(v, "Measurement")?.unwrap_or(&EMPTY))?,
        })
    }
}

/// `rpc.GarbageCollectArgs`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GarbageCollectArgs {
    pub analysis_run: Option<AnalysisRun>,
    pub metric: Metric,
    pub limit: i64,
}

impl GarbageCollectArgs {
    pub fn from_value(v: &Value) -> Result<Self, ModelError> {
        let v = concrete(v, "GarbageCollectArgs")?;
        Ok(GarbageCollectArgs {
            analysis_run: AnalysisRun::field(v)?,
            metric: Metric::parse(child(v, "Metric")?.unwrap_or(&EMPTY))?,
            limit: int(v, "Limit")?,
        })
    }
}

/// `rpc.GetMetadataArgs`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetMetadataArgs {
    pub metric: Metric,
}

impl GetMetadataArgs {
    pub fn from_value(v: &Value) -> Result<Self, ModelError> {
        let v = concrete(v, "GetMetadataArgs")?;
        Ok(GetMetadataArgs {
            metric: Metric::parse(child(v, "Metric")?.unwrap_or(&EMPTY))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gob::{Decoder, Encoder};

    #[test]
    fn measurement_round_trips_through_gob() {
        let m = Measurement {
            phase: AnalysisPhase::Running,
            message: "m".into(),
            started_at: Some(GoTime::from_unix(1_704_067_200, 7)),
            finished_at: None,
            value: "0.5".into(),
            metadata: Some(BTreeMap::from([("job".into(), "42".into())])),
            resume_at: Some(GoTime::from_unix(1_704_067_210, 0)),
        };
        let mut buf = Vec::new();
        Encoder::new()
            .encode(&Measurement::gob_type(), &m.to_value(), &mut buf)
            .unwrap();
        let v = Decoder::new(&buf[..]).decode().unwrap();
        assert_eq!(Measurement::from_value(&v).unwrap(), m);
    }

    #[test]
    fn wrong_interface_names_are_errors() {
        let v = Value::Interface("GarbageCollectArgs".into(), Box::new(Value::Nil));
        assert!(matches!(
            RunArgs::from_value(&v),
            Err(ModelError::WrongInterface { .. })
        ));
        assert!(RunArgs::from_value(&Value::Nil).is_err());
        let bad = Value::Interface(
            "RunArgs".into(),
            Box::new(Value::Struct(Struct::new().with("Metric", Value::Int(3)))),
        );
        assert_eq!(
            RunArgs::from_value(&bad),
            Err(ModelError::WrongType("Metric"))
        );
    }

    #[test]
    fn plugin_config_needs_exactly_one_key() {
        let mut m = Metric::default();
        assert!(m.plugin_config().is_none());
        m.plugin.insert("acme/x".into(), b"{}".to_vec());
        assert_eq!(m.plugin_config(), Some(("acme/x", &b"{}"[..])));
        m.plugin.insert("acme/y".into(), b"{}".to_vec());
        assert!(m.plugin_config().is_none());
    }
}
