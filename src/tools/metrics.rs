//! The `metrics` tool: PromQL against a Prometheus HTTP API, read-only, compacted for the model.
//!
//! - `query` (read_only): an instant query; the result as a table (labels, value), the
//!   series with the largest values first when it does not fit.
//! - `query_range` (read_only): a range query over the last `range_seconds`; per series the
//!   min / max / last value and the number of samples (never every sample).
//! - `check` (read_only): does a PromQL condition hold, now and for `samples` evaluations
//!   `interval_seconds` apart? The condition holds when the query returns a non-empty result —
//!   Prometheus' own convention for alerting rules, inverted: write a filtering comparison such
//!   as `sum(rate(errors[1m])) / sum(rate(requests[1m])) < 0.05`. An empty result (including
//!   "no data") fails the check, and a failed check is a failed tool call: as a verification
//!   follow-up (see [`MetricCheck`] and the policy's `verification.metrics`) it fails the
//!   verification gate, which rolls the change back.
//!
//! The endpoint is never an argument (the model cannot point bosun at another host): it is
//! `$BOSUN_PROMETHEUS_URL` (`bosun sandbox env` exports the sandbox's). No crate offers a
//! maintained Prometheus HTTP API client for reqwest 0.13 (`prometheus-http-query` pins its own
//! reqwest and TLS stack), and the API is two GET endpoints, so they are called directly.

use super::{FollowUp, Invocation, Tool, ToolCtx, ToolError};
use crate::compact;
use crate::effect::EffectClass;
use crate::guard::Admitted;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub const NAME: &str = "metrics";

/// The environment variable naming the Prometheus endpoint.
pub const URL_ENV: &str = crate::sandbox::PROMETHEUS_URL_ENV;

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("query", EffectClass::ReadOnly),
    ("query_range", EffectClass::ReadOnly),
    ("check", EffectClass::ReadOnly),
];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Query,
    QueryRange,
    Check,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::QueryRange => "query_range",
            Self::Check => "check",
        }
    }
}

// Arguments of the metrics tool. `name`, `step_seconds` and `timeout_seconds` are accepted but
// kept out of the schema (the prompt budget): the policy's checks pass them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    /// check: holds if non-empty
    query: String,
    // query_range: how far back (default 600)
    range_seconds: Option<u64>,
    // check: evaluations that must all hold (default 1), `interval_seconds` apart (default 10)
    samples: Option<u32>,
    interval_seconds: Option<u64>,
    #[schemars(skip)]
    step_seconds: Option<u64>,
    #[schemars(skip)]
    name: Option<String>,
    #[schemars(skip)]
    timeout_seconds: Option<u64>,
}

pub use crate::policy::MetricCheck;

/// The `metrics check` call that verifies a change in `namespace` against the policy's
/// `check` (`$namespace` in its query replaced).
pub fn check_follow_up(check: &MetricCheck, namespace: Option<&str>) -> FollowUp {
    let query = match namespace {
        Some(ns) => check.query.replace("$namespace", ns),
        None => check.query.clone(),
    };
    let secs = u64::from(check.samples.max(1)) * check.interval_seconds + 30;
    FollowUp {
        tool: NAME.into(),
        arguments: json!({
            "operation": "check",
            "query": query,
            "name": check.name,
            "samples": check.samples.max(1),
            "interval_seconds": check.interval_seconds,
            "timeout_seconds": secs.min(3600),
        }),
    }
}

/// The metrics tool.
pub struct Metrics {
    url: Option<String>,
    http: reqwest::Client,
}

impl Metrics {
    /// A tool querying the Prometheus at `url` (`None`: every call fails saying how to set it).
    pub fn new(url: Option<String>) -> Self {
        Self {
            url: url
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The endpoint from `$BOSUN_PROMETHEUS_URL`.
    pub fn from_env() -> Self {
        Self::new(std::env::var(URL_ENV).ok())
    }

    fn parse(args: &Value) -> Result<Args, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        if a.query.trim().is_empty() {
            return Err(ToolError::InvalidArguments("`query` is empty".into()));
        }
        if a.samples == Some(0) {
            return Err(ToolError::InvalidArguments(
                "`samples` must be at least 1".into(),
            ));
        }
        Ok(a)
    }

    fn endpoint(&self, path: &str, params: &[(&str, String)]) -> Result<reqwest::Url, ToolError> {
        let base = self.url.as_deref().ok_or_else(|| {
            ToolError::Failed(format!(
                "no Prometheus endpoint: set {URL_ENV} (`eval \"$(bosun sandbox env)\"` for the sandbox's; the sandbox starts one when the `prometheus` binary is installed — scripts/install-deps.sh)"
            ))
        })?;
        let mut u = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| ToolError::Failed(format!("{URL_ENV} is not a URL: {e}")))?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    /// One API request; the `data` of a successful answer.
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, ToolError> {
        let url = self.endpoint(path, params)?;
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ToolError::Failed(format!("Prometheus unreachable: {e}")))?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| {
            ToolError::Failed(format!("Prometheus answered {status} with no JSON: {e}"))
        })?;
        if body["status"] != "success" {
            return Err(ToolError::Failed(format!(
                "Prometheus: {} ({})",
                body["error"].as_str().unwrap_or("query failed"),
                body["errorType"].as_str().unwrap_or("error")
            )));
        }
        Ok(body["data"].clone())
    }

    async fn instant(&self, query: &str) -> Result<Value, ToolError> {
        self.get("/api/v1/query", &[("query", query.to_string())])
            .await
    }

    async fn run(&self, a: &Args, max_tokens: usize) -> Result<String, ToolError> {
        match a.operation {
            Operation::Query => Ok(render_instant(
                &a.query,
                &self.instant(&a.query).await?,
                max_tokens,
            )),
            Operation::QueryRange => {
                let range = a.range_seconds.unwrap_or(600).clamp(1, 7 * 86_400);
                let step = a.step_seconds.unwrap_or((range / 60).max(1)).max(1);
                let end = jiff::Timestamp::now().as_second();
                let data = self
                    .get(
                        "/api/v1/query_range",
                        &[
                            ("query", a.query.clone()),
                            ("start", (end - range as i64).to_string()),
                            ("end", end.to_string()),
                            ("step", step.to_string()),
                        ],
                    )
                    .await?;
                Ok(render_range(&a.query, range, step, &data, max_tokens))
            }
            Operation::Check => self.check(a, max_tokens).await,
        }
    }

    async fn check(&self, a: &Args, max_tokens: usize) -> Result<String, ToolError> {
        let samples = a.samples.unwrap_or(1).max(1);
        let interval = a.interval_seconds.unwrap_or(10);
        let name = a.name.as_deref().unwrap_or(&a.query);
        let mut last = Value::Null;
        for i in 0..samples {
            if i > 0 {
                tokio::time::sleep(Duration::from_secs(interval)).await;
            }
            last = self.instant(&a.query).await?;
            if result_len(&last) == 0 {
                return Err(ToolError::Failed(format!(
                    "metric check failed: `{name}` does not hold (sample {} of {samples}: `{}` returned no result)",
                    i + 1,
                    a.query
                )));
            }
        }
        Ok(format!(
            "metric check passed: `{name}` held for {samples} sample(s) {interval} s apart\n{}",
            render_instant(&a.query, &last, max_tokens / 2)
        ))
    }
}

fn result_len(data: &Value) -> usize {
    match data["resultType"].as_str() {
        Some("vector") | Some("matrix") => data["result"].as_array().map_or(0, Vec::len),
        Some("scalar") | Some("string") => 1,
        _ => 0,
    }
}

/// `{a="b", c="d"}` of a series' metric labels.
fn labels(metric: &Value) -> String {
    let Some(m) = metric.as_object() else {
        return "{}".into();
    };
    let name = m.get("__name__").and_then(Value::as_str).unwrap_or("");
    let rest: Vec<String> = m
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

fn fmt_num(x: f64) -> String {
    if x.is_finite() && x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.4}")
    }
}

/// An instant result: a scalar, or one line per series (largest values first) fitted to the
/// token budget.
fn render_instant(query: &str, data: &Value, max_tokens: usize) -> String {
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            format!("{query} = {}\n", data["result"][1].as_str().unwrap_or(""))
        }
        Some("vector") => {
            let mut rows: Vec<(f64, String)> = data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let v = num(&s["value"][1]);
                    (v, format!("{} {}", labels(&s["metric"]), fmt_num(v)))
                })
                .collect();
            rows.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut out = format!("{query}: {} series\n", rows.len());
            for (_, l) in rows {
                out.push_str(&l);
                out.push('\n');
            }
            compact::fit_budget(&out, max_tokens)
        }
        other => format!("{query}: unexpected result type {other:?}\n"),
    }
}

/// A range result: per series min / max / last and the sample count.
fn render_range(query: &str, range: u64, step: u64, data: &Value, max_tokens: usize) -> String {
    let series = data["result"].as_array().cloned().unwrap_or_default();
    let mut rows: Vec<(f64, String)> = series
        .iter()
        .map(|s| {
            let vals: Vec<f64> = s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| num(&p[1]))
                .collect();
            let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let last = vals.last().copied().unwrap_or(f64::NAN);
            (
                max,
                format!(
                    "{} min={} max={} last={} samples={}",
                    labels(&s["metric"]),
                    fmt_num(min),
                    fmt_num(max),
                    fmt_num(last),
                    vals.len()
                ),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = format!(
        "{query} over the last {range} s (step {step} s): {} series\n",
        rows.len()
    );
    for (_, l) in rows {
        out.push_str(&l);
        out.push('\n');
    }
    compact::fit_budget(&out, max_tokens)
}

impl Tool for Metrics {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Run PromQL against the platform's Prometheus: instant and range queries, and checks that a condition holds."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let a = Self::parse(args)?;
        let q = compact::clip_line(a.query.trim(), 200);
        let target = match a.operation {
            Operation::Query => format!("PromQL {q}"),
            Operation::QueryRange => format!(
                "PromQL {q} over the last {} s",
                a.range_seconds.unwrap_or(600)
            ),
            Operation::Check => format!(
                "check PromQL {q} holds for {} sample(s)",
                a.samples.unwrap_or(1)
            ),
        };
        Ok(Invocation::read(a.operation.as_str(), target))
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let a = Self::parse(&call.args)?;
            let default = match a.operation {
                Operation::Check => {
                    u64::from(a.samples.unwrap_or(1)) * a.interval_seconds.unwrap_or(10) + 30
                }
                _ => 30,
            };
            let secs = a.timeout_seconds.unwrap_or(default).clamp(1, 3600);
            tokio::time::timeout(
                Duration::from_secs(secs),
                self.run(&a, ctx.max_result_tokens),
            )
            .await
            .map_err(|_| ToolError::Timeout(secs))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_never_an_argument() {
        let m = Metrics::new(None);
        let e = m
            .plan(&json!({"operation": "query", "query": "up", "url": "http://evil"}))
            .expect_err("unknown field");
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn a_policy_check_becomes_a_check_call_in_the_changes_namespace() {
        let c = MetricCheck {
            name: "errors".into(),
            query: "sum(rate(e{namespace=\"$namespace\"}[1m])) < 1".into(),
            samples: 3,
            interval_seconds: 5,
        };
        let f = check_follow_up(&c, Some("shop"));
        assert_eq!(f.tool, "metrics");
        assert_eq!(
            f.arguments["query"],
            "sum(rate(e{namespace=\"shop\"}[1m])) < 1"
        );
        assert_eq!(f.arguments["samples"], 3);
        Metrics::new(None).plan(&f.arguments).expect("plans");
    }

    #[test]
    fn empty_vectors_fail_and_scalars_hold() {
        assert_eq!(
            result_len(&json!({"resultType": "vector", "result": []})),
            0
        );
        assert_eq!(
            result_len(&json!({"resultType": "scalar", "result": [1, "1"]})),
            1
        );
        let out = render_instant(
            "up",
            &json!({"resultType": "vector", "result": [
                {"metric": {"__name__": "up", "job": "a"}, "value": [1, "0"]},
                {"metric": {"__name__": "up", "job": "b"}, "value": [1, "1"]}]}),
            1000,
        );
        assert!(
            out.starts_with("up: 2 series\nup{job=\"b\"} 1\nup{job=\"a\"} 0"),
            "{out}"
        );
    }
}
