//! The `blocks` tool: the building-block catalog (`blocks/<id>.md`) and `check_status`, which
//! decides whether a block is Ready, Progressing, Degraded or Missing in an environment from the
//! release state (Flux HelmRelease or Helm's own release Secrets), its workloads, pods, recent
//! warning events, Service endpoints and Ingresses — with the reasons and the access points
//! (credentials only as vault references).

use super::k8s::{self, condition, kube_err, list_all, ClusterAccess};
use super::{Invocation, Scope, Tool, ToolCtx, ToolError};
use crate::blocks::{self, Block};
use crate::compact;
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::kube_client::Cluster;
use crate::policy::Environment;
use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, ListParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub const NAME: &str = "blocks";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("list", EffectClass::ReadOnly),
    ("show", EffectClass::ReadOnly),
    ("check_status", EffectClass::ReadOnly),
];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    List,
    Show,
    CheckStatus,
}

// Arguments of the blocks tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    /// Block id, e.g. minio.
    block: Option<String>,
    /// dev, tier or prod.
    environment: Option<String>,
    context: Option<String>,
    namespace: Option<String>,
    release: Option<String>,
    timeout_seconds: Option<u64>,
}

/// The verdict on a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Missing,
    Degraded,
    Progressing,
    Ready,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "Missing",
            Self::Degraded => "Degraded",
            Self::Progressing => "Progressing",
            Self::Ready => "Ready",
        })
    }
}

/// The blocks tool.
pub struct Blocks {
    dir: PathBuf,
    access: ClusterAccess,
    max_tokens: usize,
}

fn env_of(s: &str) -> Result<Environment, ToolError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "dev" => Ok(Environment::Dev),
        "tier" | "test" | "staging" => Ok(Environment::Tier),
        "prod" | "production" => Ok(Environment::Prod),
        other => Err(ToolError::InvalidArguments(format!(
            "environment `{other}` is not one of dev, tier, prod"
        ))),
    }
}

impl Blocks {
    pub fn new(dir: PathBuf, kubeconfig: Option<PathBuf>, default_context: Option<String>) -> Self {
        Self {
            dir,
            access: ClusterAccess::new(kubeconfig, default_context),
            max_tokens: compact::DEFAULT_RESULT_TOKENS,
        }
    }

    fn catalog(&self) -> Result<Vec<Block>, ToolError> {
        blocks::load_catalog(&self.dir)
            .map(|(b, _)| b)
            .map_err(|d| ToolError::Failed(format!("the block catalog has errors:\n{d}")))
    }

    fn block(&self, id: &str) -> Result<Block, ToolError> {
        let all = self.catalog()?;
        let ids: Vec<String> = all.iter().map(|b| b.def.id.clone()).collect();
        all.into_iter().find(|b| b.def.id == id).ok_or_else(|| {
            ToolError::InvalidArguments(format!(
                "no block `{id}` in the catalog; blocks: {}",
                ids.join(", ")
            ))
        })
    }

    fn parse(args: &Value) -> Result<Args, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        if a.operation != Operation::List && a.block.as_deref().is_none_or(|b| b.trim().is_empty())
        {
            return Err(ToolError::InvalidArguments(
                "`block` is required (see operation list)".into(),
            ));
        }
        if a.operation == Operation::CheckStatus && a.environment.is_none() {
            return Err(ToolError::InvalidArguments(
                "`environment` (dev, tier or prod) is required for check_status".into(),
            ));
        }
        if let Some(e) = &a.environment {
            env_of(e)?;
        }
        Ok(a)
    }

    /// The kube context for the call: explicit, else the one context mapped to the
    /// environment, else the default context if it is that environment.
    fn context_for(
        &self,
        a: &Args,
        ctx: &ToolCtx,
        env: Environment,
    ) -> Result<Option<String>, ToolError> {
        if let Some(c) = a.context.as_deref() {
            let have = ctx.environment(c);
            if have != env {
                return Err(ToolError::InvalidArguments(format!(
                    "context {c} is environment {have}, not {env}; pass the context of {env}"
                )));
            }
            return Ok(Some(c.to_string()));
        }
        let mapped: Vec<&String> = ctx
            .environments
            .iter()
            .filter(|(_, e)| **e == env)
            .map(|(c, _)| c)
            .collect();
        match mapped.as_slice() {
            [one] => return Ok(Some((*one).clone())),
            [] => {}
            many => {
                return Err(ToolError::InvalidArguments(format!(
                    "several contexts are environment {env}: {}; pass context",
                    many.iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
        let (default, _) = self.access.defaults(None, None);
        match default {
            Some(c) if ctx.environment(&c) == env => Ok(Some(c)),
            Some(c) => Err(ToolError::InvalidArguments(format!(
                "no kube context is known for environment {env} (the default context {c} is {}); pass context",
                ctx.environment(&c)
            ))),
            None => Ok(None),
        }
    }

    async fn run(&self, a: Args, ctx: &ToolCtx) -> Result<String, ToolError> {
        match a.operation {
            Operation::List => {
                let all = self.catalog()?;
                if all.is_empty() {
                    return Ok(format!(
                        "The block catalog {} is empty.",
                        self.dir.display()
                    ));
                }
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|b| {
                        let c = &b.def.deploy.chart;
                        vec![
                            b.def.id.clone(),
                            b.def.name.clone(),
                            b.def.version.clone().unwrap_or_default(),
                            format!("{} {}", c.name, c.version),
                            b.def.capabilities.join(","),
                            compact::clip_line(&b.def.description, 80),
                        ]
                    })
                    .collect();
                Ok(super::table::render(
                    &[
                        "ID",
                        "NAME",
                        "VERSION",
                        "CHART",
                        "CAPABILITIES",
                        "DESCRIPTION",
                    ],
                    &rows,
                    usize::MAX,
                ))
            }
            Operation::Show => {
                let b = self.block(a.block.as_deref().unwrap_or(""))?;
                let env = a.environment.clone().unwrap_or_else(|| "dev".into());
                let release = a.release.clone().unwrap_or_else(|| b.release());
                let ns = a
                    .namespace
                    .clone()
                    .unwrap_or_else(|| b.def.deploy.namespace.clone());
                let c = &b.def.deploy.chart;
                let mut out = format!(
                    "{} ({}, block version {}): {}\nchart: {} {} from {}\nnamespace: {ns} · release: {release}\n",
                    b.def.id,
                    b.def.name,
                    b.def.version.clone().unwrap_or_default(),
                    b.def.description,
                    c.name,
                    c.version,
                    c.repository
                );
                if let Some(v) = b.values(&env, &release, &ns) {
                    out.push_str(&format!("values ({env}):\n{}", compact::to_yaml(&v)));
                }
                let h = &b.def.health;
                out.push_str(&format!(
                    "ready when: {}; services {}; ingresses {}\n",
                    h.workloads
                        .iter()
                        .map(|w| format!(
                            "{} {}",
                            w.kind,
                            blocks::expand(&w.name, &env, &release, &ns)
                        ))
                        .collect::<Vec<_>>()
                        .join(", "),
                    h.services
                        .iter()
                        .map(|s| blocks::expand(&s.name, &env, &release, &ns))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if h.ingresses.is_empty() {
                        "none".to_string()
                    } else {
                        h.ingresses.join(", ")
                    }
                ));
                for (p, r) in b.credentials(&env, &release, &ns) {
                    out.push_str(&format!("credential {p}: {r}\n"));
                }
                out.push('\n');
                out.push_str(&b.body);
                Ok(compact::fit_budget(&out, self.max_tokens))
            }
            Operation::CheckStatus => {
                let b = self.block(a.block.as_deref().unwrap_or(""))?;
                let env = env_of(a.environment.as_deref().unwrap_or(""))?;
                let context = self.context_for(&a, ctx, env)?;
                let cluster = self.access.cluster(context.as_deref()).await?;
                let release = a.release.clone().unwrap_or_else(|| b.release());
                let ns = a
                    .namespace
                    .clone()
                    .unwrap_or_else(|| b.def.deploy.namespace.clone());
                let report = check(&cluster, &b, env, &ns, &release).await?;
                Ok(compact::fit_budget(&report.render(), self.max_tokens))
            }
        }
    }
}

/// The result of a check.
#[derive(Debug, Clone)]
pub struct Report {
    pub header: String,
    pub verdict: Verdict,
    pub suspended: bool,
    pub reasons: Vec<String>,
    pub evidence: Vec<String>,
    pub access: Vec<String>,
    pub credentials: Vec<String>,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}\nVerdict: {}{}\n",
            self.header,
            self.verdict,
            if self.suspended {
                " (suspended: Flux does not reconcile it)"
            } else {
                ""
            }
        );
        let list = |title: &str, items: &[String], out: &mut String| {
            if !items.is_empty() {
                out.push_str(&format!("{title}:\n"));
                for i in items {
                    out.push_str(&format!("- {i}\n"));
                }
            }
        };
        list("Reasons", &self.reasons, &mut out);
        list("Evidence", &self.evidence, &mut out);
        list("Access points", &self.access, &mut out);
        list(
            "Credentials (vault references)",
            &self.credentials,
            &mut out,
        );
        out
    }
}

/// What the release says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReleaseState {
    None,
    Ready,
    Progressing,
    Failed,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Decode Helm's `release` field: base64 of gzip of JSON.
fn decode_helm_release(data: &[u8]) -> Option<Value> {
    use base64::Engine;
    use std::io::Read;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim_ascii())
        .ok()?;
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(64 * 1024 * 1024)
            .read_to_end(&mut out)
            .ok()?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).ok()
}

const BAD_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
    "OOMKilled",
    "Error",
];

const BAD_EVENTS: &[&str] = &[
    "BackOff",
    "Failed",
    "FailedMount",
    "FailedCreate",
    "FailedScheduling",
    "FailedAttachVolume",
    "InstallFailed",
    "UpgradeFailed",
];

/// What [`check`] gathers, step by step, before it decides.
struct Findings {
    degraded: Vec<String>,
    progressing: Vec<String>,
    evidence: Vec<String>,
    access: Vec<String>,
    /// Objects the block's health section names that do not exist.
    missing: Vec<String>,
    suspended: bool,
    state: ReleaseState,
    found_workloads: usize,
    all_pods_ready: bool,
    workload_names: Vec<String>,
}

/// Where a step looks, and when.
struct Look<'a> {
    cluster: &'a Cluster,
    ctx: &'a str,
    ns: &'a str,
    release: &'a str,
    now: jiff::Timestamp,
}

/// Collect the evidence and decide: the Flux HelmRelease, Helm's release records, the
/// workloads and their pods, Services and endpoints, Ingresses, recent warning events.
pub async fn check(
    cluster: &Cluster,
    b: &Block,
    env: Environment,
    ns: &str,
    release: &str,
) -> Result<Report, ToolError> {
    let env_s = env.to_string();
    let x = |t: &str| blocks::expand(t, &env_s, release, ns);
    let l = Look {
        cluster,
        ctx: &cluster.context,
        ns,
        release,
        now: jiff::Timestamp::now(),
    };
    let mut f = Findings {
        degraded: vec![],
        progressing: vec![],
        evidence: vec![],
        access: vec![],
        missing: vec![],
        suspended: false,
        state: ReleaseState::None,
        found_workloads: 0,
        all_pods_ready: true,
        workload_names: vec![],
    };
    let all = cluster.resources().await.map_err(k8s::failed)?;
    let served = |group: &str, kind: &str| {
        all.iter()
            .find(|(ar, _)| ar.group == group && ar.kind == kind)
            .map(|(ar, _)| ar.clone())
    };
    let hr_ar = served("helm.toolkit.fluxcd.io", "HelmRelease");
    if let Some(ar) = &hr_ar {
        flux_release(&l, ar, &mut f).await?;
    }
    helm_records(&l, &mut f).await?;
    let release_found = f.state != ReleaseState::None;
    for w in &b.def.health.workloads {
        workload(&l, &w.kind, x(&w.name), &mut f).await?;
    }
    for sref in &b.def.health.services {
        service(&l, sref, x(&sref.name), &mut f).await?;
    }
    let ing_ar = served("networking.k8s.io", "Ingress");
    for iname in &b.def.health.ingresses {
        ingress(&l, ing_ar.as_ref(), x(iname), &mut f).await?;
    }
    warning_events(&l, &mut f).await;
    if !f.missing.is_empty() && (release_found || f.found_workloads > 0) {
        let line = format!("missing: {}", f.missing.join(", "));
        if f.state == ReleaseState::Progressing {
            f.progressing.push(format!("{line} (not created yet)"));
        } else {
            f.degraded.push(format!(
                "{line} although the release is deployed or the workloads exist"
            ));
        }
    }

    let Findings {
        degraded,
        progressing,
        evidence,
        access,
        suspended,
        found_workloads,
        ..
    } = f;
    let ctxname = l.ctx;
    let found = release_found || found_workloads > 0;
    let (verdict, reasons) = if !found {
        (
            Verdict::Missing,
            vec![format!(
                "no HelmRelease for release {release} targeting namespace {ns}{}, no Helm release records (Secrets owner=helm,name={release}) in {ns}, and none of {} exist",
                if hr_ar.is_none() { " (the cluster serves no HelmRelease API)" } else { "" },
                b.def.health.workloads.iter().map(|w| format!("{} {}", w.kind, x(&w.name))).collect::<Vec<_>>().join(", ")
            )],
        )
    } else if !degraded.is_empty() {
        (Verdict::Degraded, degraded)
    } else if !progressing.is_empty() {
        (Verdict::Progressing, progressing)
    } else {
        (Verdict::Ready, vec!["release deployed, every workload available, every pod ready, every Service has endpoints".into()])
    };
    Ok(Report {
        header: format!(
            "Block: {} ({} {}), environment {env}, context {ctxname}, namespace {ns}, release {release}",
            b.def.id,
            b.def.name,
            b.def.version.clone().unwrap_or_default()
        ),
        verdict,
        suspended,
        reasons,
        evidence,
        access,
        credentials: b
            .credentials(&env_s, release, ns)
            .into_iter()
            .map(|(p, r)| format!("{p}: {r}"))
            .collect(),
    })
}

/// 1. A Flux HelmRelease for the release.
async fn flux_release(
    l: &Look<'_>,
    ar: &kube::discovery::ApiResource,
    f: &mut Findings,
) -> Result<(), ToolError> {
    let api: Api<DynamicObject> = Api::all_with(l.cluster.client.clone(), ar);
    let hrs = list_all(&api, ListParams::default(), 5_000, l.ctx).await?;
    let hr = hrs.into_iter().find(|o| {
        let d = &o.data;
        let rname = d.pointer("/spec/releaseName").and_then(Value::as_str);
        let name = o.metadata.name.as_deref().unwrap_or("");
        let target = d.pointer("/spec/targetNamespace").and_then(Value::as_str);
        let home = o.metadata.namespace.as_deref().unwrap_or("");
        rname.unwrap_or(name) == l.release && target.unwrap_or(home) == l.ns
    });
    if let Some(hr) = hr {
        let d = &hr.data;
        let id = format!(
            "HelmRelease {}/{}",
            hr.metadata.namespace.clone().unwrap_or_default(),
            hr.metadata.name.clone().unwrap_or_default()
        );
        f.suspended = d.pointer("/spec/suspend") == Some(&Value::Bool(true));
        let generation = hr.metadata.generation.unwrap_or(0);
        let observed = d
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        let version = s(d, "/spec/chart/spec/version");
        let stalled = condition(d, "Stalled").is_some_and(|c| s(c, "/status") == "True");
        match condition(d, "Ready") {
            _ if stalled => {
                let c = condition(d, "Stalled").cloned().unwrap_or(Value::Null);
                f.state = ReleaseState::Failed;
                f.degraded.push(format!(
                    "{id} Stalled: {} {}",
                    s(&c, "/reason"),
                    s(&c, "/message")
                ));
            }
            Some(c) if s(c, "/status") == "True" && observed >= generation => {
                f.state = ReleaseState::Ready;
                f.evidence.push(format!(
                    "{id} Ready=True {}: {} (chart {version})",
                    s(c, "/reason"),
                    s(c, "/message")
                ));
            }
            Some(c) if s(c, "/status") == "True" => {
                f.state = ReleaseState::Progressing;
                f.progressing.push(format!(
                    "{id} was Ready, but generation {generation} is not reconciled yet (observed {observed})"
                ));
            }
            Some(c)
                if s(c, "/status") == "False"
                    && !matches!(
                        s(c, "/reason"),
                        "Progressing"
                            | "DependencyNotReady"
                            | "ArtifactNotReady"
                            | "ReconciliationInProgress"
                    ) =>
            {
                f.state = ReleaseState::Failed;
                f.degraded.push(format!(
                    "{id} Ready=False, reason {}: {} (chart {version})",
                    s(c, "/reason"),
                    s(c, "/message")
                ));
            }
            Some(c) => {
                f.state = ReleaseState::Progressing;
                f.progressing.push(format!(
                    "{id} Ready={} {}: {}",
                    s(c, "/status"),
                    s(c, "/reason"),
                    s(c, "/message")
                ));
            }
            None => {
                f.state = ReleaseState::Progressing;
                f.progressing.push(format!(
                    "{id} has no Ready condition yet: Flux has not reconciled it (chart {version})"
                ));
            }
        }
        if f.suspended {
            f.evidence.push(format!("{id} is suspended"));
        }
    }
    Ok(())
}

/// 2. Helm's own release records (when there is no HelmRelease, or as extra evidence).
async fn helm_records(l: &Look<'_>, f: &mut Findings) -> Result<(), ToolError> {
    let release = l.release;
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        l.cluster.client.clone(),
        l.ns,
        &k8s::ar("", "v1", "Secret", "secrets"),
    );
    let records = list_all(
        &secrets,
        ListParams::default().labels(&format!("owner=helm,name={release}")),
        1_000,
        l.ctx,
    )
    .await?;
    let latest = records.iter().max_by_key(|o| {
        o.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("version"))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    });
    if let Some(rec) = latest {
        let labels = rec.metadata.labels.clone().unwrap_or_default();
        let status = labels.get("status").cloned().unwrap_or_default();
        let rev = labels.get("version").cloned().unwrap_or_default();
        let decoded = rec
            .data
            .pointer("/data/release")
            .and_then(Value::as_str)
            .and_then(|b64| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            })
            .and_then(|bytes| decode_helm_release(&bytes));
        let (chart, desc, deployed_at) = match &decoded {
            Some(r) => (
                format!(
                    "{}-{}",
                    s(r, "/chart/metadata/name"),
                    s(r, "/chart/metadata/version")
                ),
                s(r, "/info/description").to_string(),
                s(r, "/info/last_deployed").to_string(),
            ),
            None => (
                "(record not decodable)".into(),
                String::new(),
                String::new(),
            ),
        };
        let line = format!(
            "Helm release {release} revision {rev} {status} (chart {chart}){}",
            if desc.is_empty() {
                String::new()
            } else {
                format!(": {desc}")
            }
        );
        let age_min = deployed_at
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| (l.now.as_second() - t.as_second()) / 60)
            .unwrap_or(0);
        match status.as_str() {
            "deployed" => {
                if f.state == ReleaseState::None {
                    f.state = ReleaseState::Ready;
                }
                f.evidence.push(line);
            }
            "failed" => {
                f.state = ReleaseState::Failed;
                f.degraded.push(line);
            }
            s if s.starts_with("pending") && age_min > 15 => {
                f.state = ReleaseState::Failed;
                f.degraded.push(format!(
                    "{line} for {age_min} min: a stuck Helm operation (lock)"
                ));
            }
            s if s.starts_with("pending") || s == "uninstalling" => {
                if f.state != ReleaseState::Failed {
                    f.state = ReleaseState::Progressing;
                }
                f.progressing.push(line);
            }
            _ => f.evidence.push(line),
        }
    }
    Ok(())
}

/// 3. A workload and its pods.
async fn workload(
    l: &Look<'_>,
    kind: &str,
    name: String,
    f: &mut Findings,
) -> Result<(), ToolError> {
    f.workload_names.push(name.clone());
    let (ar, namespaced) = k8s::resolve_kind(l.cluster, kind).await?;
    let api = k8s::api(l.cluster, &ar, namespaced, l.ns);
    let Some(o) = api.get_opt(&name).await.map_err(|e| kube_err(e, l.ctx))? else {
        f.missing.push(format!("{} {name}", kind));
        return Ok(());
    };
    f.found_workloads += 1;
    let (done, stuck, st) = k8s::rollout_state(&ar.kind, &o.data);
    let line = format!("{} {name}: {st}", kind);
    if stuck {
        f.degraded.push(line);
    } else if done {
        f.evidence.push(line);
    } else {
        f.progressing.push(format!("{line} (rollout in progress)"));
    }
    // pods by the workload's selector
    let sel: Vec<String> = o
        .data
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if sel.is_empty() {
        return Ok(());
    }
    let pods_api: Api<DynamicObject> = Api::namespaced_with(
        l.cluster.client.clone(),
        l.ns,
        &k8s::ar("", "v1", "Pod", "pods"),
    );
    let pods = list_all(
        &pods_api,
        ListParams::default().labels(&sel.join(",")),
        2_000,
        l.ctx,
    )
    .await?;
    let mut ready = 0usize;
    let mut restarts = 0i64;
    for p in &pods {
        let d = &p.data;
        let pname = p.metadata.name.clone().unwrap_or_default();
        let is_ready = condition(d, "Ready").is_some_and(|c| s(c, "/status") == "True");
        if is_ready {
            ready += 1;
        } else {
            f.all_pods_ready = false;
        }
        let cs = d
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        restarts += cs
            .iter()
            .map(|c| c.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
            .sum::<i64>();
        let bad = cs.iter().find_map(|c| {
            let r = c
                .pointer("/state/waiting/reason")
                .or_else(|| c.pointer("/state/terminated/reason"))
                .and_then(Value::as_str)?;
            BAD_WAITING.contains(&r).then(|| {
                format!(
                    "pod {pname} {r} (restarts {}){}",
                    c.get("restartCount").and_then(Value::as_i64).unwrap_or(0),
                    c.pointer("/state/waiting/message")
                        .and_then(Value::as_str)
                        .map(|m| format!(": {}", compact::clip_line(m, 160)))
                        .unwrap_or_default()
                )
            })
        });
        if let Some(b) = bad {
            f.degraded.push(b);
        } else if !is_ready {
            let age_min = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| (l.now.as_second() - t.0.as_second()) / 60)
                .unwrap_or(0);
            let phase = s(d, "/status/phase");
            if phase == "Pending" && age_min >= 5 {
                f.degraded
                    .push(format!("pod {pname} Pending for {age_min} min"));
            }
        }
    }
    f.evidence.push(format!(
        "pods of {name}: {ready}/{} ready, {restarts} restarts",
        pods.len()
    ));
    Ok(())
}

/// 4. A Service and its endpoints; its ports are access points.
async fn service(
    l: &Look<'_>,
    sref: &blocks::ServiceRef,
    name: String,
    f: &mut Findings,
) -> Result<(), ToolError> {
    let ns = l.ns;
    let svc_api: Api<DynamicObject> = Api::namespaced_with(
        l.cluster.client.clone(),
        l.ns,
        &k8s::ar("", "v1", "Service", "services"),
    );
    let ep_api: Api<DynamicObject> = Api::namespaced_with(
        l.cluster.client.clone(),
        l.ns,
        &k8s::ar("", "v1", "Endpoints", "endpoints"),
    );
    let Some(svc) = svc_api
        .get_opt(&name)
        .await
        .map_err(|e| kube_err(e, l.ctx))?
    else {
        f.missing.push(format!("Service {name}"));
        return Ok(());
    };
    let ready_addrs = ep_api
        .get_opt(&name)
        .await
        .map_err(|e| kube_err(e, l.ctx))?
        .and_then(|e| e.data.get("subsets").and_then(Value::as_array).cloned())
        .map(|subs| {
            subs.iter()
                .map(|s| {
                    s.get("addresses")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                })
                .sum::<usize>()
        })
        .unwrap_or(0);
    let line = format!("Service {name}: {ready_addrs} ready endpoint(s)");
    if ready_addrs == 0 {
        if f.all_pods_ready && f.found_workloads > 0 && f.progressing.is_empty() {
            f.degraded.push(format!(
                "{line} although the pods are ready (selector or port mismatch?)"
            ));
        } else {
            f.progressing.push(line);
        }
    } else {
        f.evidence.push(line);
    }
    let d = &svc.data;
    let ports: Vec<i64> = d
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("port").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default();
    let purpose = sref
        .purpose
        .clone()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let lb = d.pointer("/status/loadBalancer/ingress/0").map(|i| {
        if s(i, "/ip").is_empty() {
            s(i, "/hostname").to_string()
        } else {
            s(i, "/ip").to_string()
        }
    });
    for p in ports {
        f.access.push(match &lb {
            Some(addr) if !addr.is_empty() => {
                format!("{addr}:{p}{purpose} (LoadBalancer, configured)")
            }
            _ => format!("{name}.{ns}.svc:{p}{purpose} (in-cluster)"),
        });
    }
    Ok(())
}

/// 5. An Ingress; its hosts are access points.
async fn ingress(
    l: &Look<'_>,
    ing_ar: Option<&kube::discovery::ApiResource>,
    name: String,
    f: &mut Findings,
) -> Result<(), ToolError> {
    let Some(ar) = ing_ar else {
        f.missing.push(format!(
            "Ingress {name} (the cluster serves no Ingress API)"
        ));
        return Ok(());
    };
    let api: Api<DynamicObject> = Api::namespaced_with(l.cluster.client.clone(), l.ns, ar);
    let Some(ing) = api.get_opt(&name).await.map_err(|e| kube_err(e, l.ctx))? else {
        f.missing.push(format!("Ingress {name}"));
        return Ok(());
    };
    let d = &ing.data;
    let tls_hosts: Vec<String> = d
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .flat_map(|t| {
                    t.get("hosts")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let addr = d.pointer("/status/loadBalancer/ingress/0").is_some();
    for r in d
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let host = s(&r, "/host");
        if host.is_empty() {
            return Ok(());
        }
        let scheme = if tls_hosts.iter().any(|h| h == host) {
            "https"
        } else {
            "http"
        };
        f.access.push(format!(
            "{scheme}://{host} (Ingress {name}, configured{})",
            if addr {
                ", has an address"
            } else {
                ", no address yet"
            }
        ));
    }
    if !addr {
        f.progressing
            .push(format!("Ingress {name} has no load-balancer address yet"));
    }
    Ok(())
}

/// 6. Recent warning events about the block's objects.
async fn warning_events(l: &Look<'_>, f: &mut Findings) {
    let evs = k8s::events(l.cluster, Some(l.ns), Some("type=Warning"))
        .await
        .unwrap_or_default();
    let recent: Vec<&DynamicObject> = evs
        .iter()
        .filter(|e| {
            k8s::event_time(e).is_some_and(|t| l.now.as_second() - t.as_second() <= 15 * 60)
        })
        .filter(|e| {
            let n = s(&e.data, "/involvedObject/name");
            n.starts_with(l.release) || f.workload_names.iter().any(|w| n.starts_with(w.as_str()))
        })
        .collect();
    if !recent.is_empty() {
        let mut by_reason: std::collections::BTreeMap<String, (i64, String)> = Default::default();
        for e in &recent {
            let entry = by_reason
                .entry(s(&e.data, "/reason").to_string())
                .or_insert((0, String::new()));
            entry.0 += e.data.get("count").and_then(Value::as_i64).unwrap_or(1);
            entry.1 = format!(
                "{}/{}: {}",
                s(&e.data, "/involvedObject/kind"),
                s(&e.data, "/involvedObject/name"),
                compact::clip_line(s(&e.data, "/message"), 140)
            );
        }
        for (reason, (n, last)) in by_reason {
            let line = format!("warning events (15 min): {reason} ×{n}, e.g. {last}");
            if BAD_EVENTS.iter().any(|b| reason.starts_with(b)) {
                f.degraded.push(line);
            } else {
                f.evidence.push(line);
            }
        }
    }
}

impl Tool for Blocks {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "The building-block catalog (MinIO, Kong, …) and a block's status in an environment."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let a = Self::parse(args)?;
        let op = match a.operation {
            Operation::List => "list",
            Operation::Show => "show",
            Operation::CheckStatus => "check_status",
        };
        let target = match (&a.block, &a.environment) {
            (Some(b), Some(e)) => format!("block {b} in {e}"),
            (Some(b), None) => format!("block {b}"),
            _ => "the block catalog".into(),
        };
        Ok(Invocation::read(op, target).with_scope(Scope {
            context: a
                .context
                .clone()
                .or_else(|| self.access.default_context.clone()),
            namespace: a.namespace.clone(),
            kinds: vec![],
            objects: vec![],
        }))
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let a = Self::parse(&call.args)?;
            let secs = a.timeout_seconds.unwrap_or(30).clamp(1, 600);
            tokio::time::timeout(Duration::from_secs(secs), self.run(a, ctx))
                .await
                .map_err(|_| ToolError::Timeout(secs))?
        })
    }
}
