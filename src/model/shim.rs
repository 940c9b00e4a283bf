//! The tool-use shim: recognise tool calls that a model wrote as text.
//!
//! Small and local models often answer a tool-calling request with the call in `content` instead
//! of `tool_calls` (measured: Qwen2.5-Coder 0.5B/1.5B behind llama.cpp with the GGUF's own chat
//! template, 0 of 6 calls structured). The shapes seen and handled:
//!
//! - a fenced block: ```` ```json {"name": "kubectl", "arguments": {…}} ``` ```` (or a fence with
//!   no language, or `tool_call`);
//! - Hermes / Qwen tags: `<tool_call>{"name": …, "arguments": …}</tool_call>` (the closing tag may
//!   be missing at the very end);
//! - a bare JSON object (or array of them) anywhere in the text (texts up to 32 KB);
//! - inside any of these: `{"name", "arguments"}`, `{"name", "parameters"}`,
//!   `{"function": {"name", "arguments"}}`, `{"function": "name", "arguments"}`,
//!   `{"tool_calls": [...]}`, a list of calls, arguments given as a JSON string, and — in a fence
//!   or tag only — arguments flattened next to `name`.
//!
//! Only names of offered tools count; a `tool.operation` name (`kubectl.get`) is read as the tool
//! with that `operation` when the tool's schema offers it, and a bare operation name (`scale`) as
//! the one tool that offers it (an operation two tools offer is not a call). The shim only *produces*
//! [`ToolCall`]s: the session still sends every one through the guard, which checks the
//! arguments against the tool's schema before anything runs.

use super::{ChatResponse, FinishReason, ToolCall, ToolSpec};
use serde_json::{Map, Value};

/// Calls recognised in a model's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The calls, in the order they appear. Ids are `shim_0`, `shim_1`, … (callers that need ids
    /// unique across turns renumber them).
    pub calls: Vec<ToolCall>,
    /// The text before the first call, trimmed; `None` if there is none. Text after a call is
    /// dropped: small models tend to follow a call with an invented result.
    pub content: Option<String>,
}

/// Where a candidate JSON value came from; fences and tags are explicit, bare objects are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Explicit,
    Bare,
}

/// A candidate region of the text: its byte span and the JSON text inside it.
struct Region<'a> {
    start: usize,
    end: usize,
    json: &'a str,
    source: Source,
}

/// Recognise tool calls written as text. Returns `None` when `content` holds no call to an
/// offered tool.
pub fn extract_calls(content: &str, offered: &[ToolSpec]) -> Option<Extracted> {
    if offered.is_empty() || !content.contains('{') {
        return None;
    }
    let mut regions = tagged(content);
    regions.extend(fenced(content));
    regions.sort_by_key(|r| r.start);
    // a fence inside a tag (or a tag inside a fence) is one region, the outer one
    let mut kept: Vec<Region<'_>> = Vec::with_capacity(regions.len());
    for r in regions {
        if kept.last().is_some_and(|k| r.start < k.end) {
            continue;
        }
        kept.push(r);
    }
    let regions = kept;
    // explicit regions first; bare JSON only where no fence or tag holds a call
    let mut calls = Vec::new();
    let mut first_start: Option<usize> = None;
    for r in &regions {
        let found = calls_in(r.json, r.source, offered);
        if !found.is_empty() {
            first_start.get_or_insert(r.start);
            calls.extend(found);
        }
    }
    if calls.is_empty() {
        for r in bare(content) {
            let found = calls_in(r.json, r.source, offered);
            if !found.is_empty() {
                first_start.get_or_insert(r.start);
                calls.extend(found);
            }
        }
    }
    let start = first_start?;
    for (i, c) in calls.iter_mut().enumerate() {
        c.id = format!("shim_{i}");
    }
    let before = content[..start].trim();
    // an unclosed fence opener or tag right before the call is not content
    let before = before
        .strip_suffix("<tool_call>")
        .unwrap_or(before)
        .trim_end();
    Some(Extracted {
        calls,
        content: (!before.is_empty()).then(|| before.to_string()),
    })
}

/// Apply the shim to a response: if it has no structured calls and its text holds calls to
/// offered tools, move them into `tool_calls` (ids `shim_<n>` from `next_id`).
pub fn apply(
    resp: &mut ChatResponse,
    offered: &[ToolSpec],
    mut next_id: impl FnMut() -> u64,
) -> bool {
    if !resp.tool_calls.is_empty() {
        return false;
    }
    let Some(text) = resp.content.as_deref() else {
        return false;
    };
    let Some(ex) = extract_calls(text, offered) else {
        return false;
    };
    resp.tool_calls = ex
        .calls
        .into_iter()
        .map(|mut c| {
            c.id = format!("shim_{}", next_id());
            c
        })
        .collect();
    resp.content = ex.content;
    if resp.finish_reason == FinishReason::Stop {
        resp.finish_reason = FinishReason::ToolCalls;
    }
    true
}

/// `<tool_call>…</tool_call>` regions; an unclosed last tag runs to the end of the text.
fn tagged(s: &str) -> Vec<Region<'_>> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = s[at..].find(OPEN) {
        let start = at + i;
        let body = start + OPEN.len();
        let (json_end, end) = match s[body..].find(CLOSE) {
            Some(j) => (body + j, body + j + CLOSE.len()),
            None => (s.len(), s.len()),
        };
        out.push(Region {
            start,
            end,
            json: strip_inner_fence(&s[body..json_end]),
            source: Source::Explicit,
        });
        at = end;
    }
    out
}

/// A fence inside a tag: `<tool_call>```json … ```</tool_call>`.
fn strip_inner_fence(s: &str) -> &str {
    let t = s.trim();
    match t.strip_prefix("```") {
        Some(rest) => {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
            rest.strip_suffix("```").unwrap_or(rest).trim()
        }
        None => t,
    }
}

/// Fenced code blocks whose language is json, tool_call, or none. An unclosed fence at the end
/// (a truncated answer) is still a region: its JSON simply fails to parse.
fn fenced(s: &str) -> Vec<Region<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = s[at..].find("```") {
        let start = at + i;
        let info_start = start + 3;
        let line_end = s[info_start..]
            .find('\n')
            .map_or(s.len(), |j| info_start + j);
        let line = &s[info_start..line_end];
        // the info string may be followed by the JSON on the same line: ```json {"name": …}
        let (lang, inline) = match line.find('{') {
            Some(b) => (line[..b].trim(), Some(info_start + b)),
            None => (line.trim(), None),
        };
        let body = inline.unwrap_or_else(|| (line_end + 1).min(s.len()));
        let (json_end, end) = match s[body..].find("```") {
            Some(j) => (body + j, body + j + 3),
            None => (s.len(), s.len()),
        };
        let lang = lang.to_ascii_lowercase();
        if matches!(
            lang.as_str(),
            "" | "json" | "json5" | "tool_call" | "tool_code" | "javascript"
        ) {
            out.push(Region {
                start,
                end,
                json: s[body..json_end].trim(),
                source: Source::Explicit,
            });
        }
        at = end.max(start + 3);
    }
    out
}

/// Bare JSON is looked for only in texts up to this size, and from at most this many openings:
/// each failed attempt parses to the end of the text, so a long answer full of braces would
/// otherwise cost quadratic time.
const BARE_MAX_BYTES: usize = 32 * 1024;
const BARE_MAX_ATTEMPTS: usize = 256;

/// Complete top-level JSON objects or arrays anywhere in the text.
fn bare(s: &str) -> Vec<Region<'_>> {
    let mut out = Vec::new();
    if s.len() > BARE_MAX_BYTES {
        return out;
    }
    let mut at = 0;
    let mut attempts = 0;
    while at < s.len() && attempts < BARE_MAX_ATTEMPTS {
        attempts += 1;
        let Some(i) = s[at..].find(['{', '[']) else {
            break;
        };
        let start = at + i;
        let mut it = serde_json::Deserializer::from_str(&s[start..]).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) if v.is_object() || v.is_array() => {
                let end = start + it.byte_offset();
                out.push(Region {
                    start,
                    end,
                    json: &s[start..end],
                    source: Source::Bare,
                });
                at = end;
            }
            _ => at = start + 1,
        }
    }
    out
}

/// The calls a JSON text holds.
fn calls_in(json: &str, source: Source, offered: &[ToolSpec]) -> Vec<ToolCall> {
    let json = json.trim();
    if json.is_empty() {
        return Vec::new();
    }
    let values: Vec<Value> = match serde_json::from_str::<Value>(json) {
        Ok(v) => vec![v],
        // several objects one after another (one per line, as Hermes-style models do)
        Err(_) => serde_json::Deserializer::from_str(json)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .collect(),
    };
    let mut out = Vec::new();
    for v in values {
        collect(&v, source, offered, &mut out, 0);
    }
    out
}

fn collect(v: &Value, source: Source, offered: &[ToolSpec], out: &mut Vec<ToolCall>, depth: u8) {
    if depth > 3 {
        return;
    }
    match v {
        Value::Array(items) => {
            for i in items {
                collect(i, source, offered, out, depth + 1);
            }
        }
        Value::Object(o) => {
            if let Some(Value::Array(calls)) = o.get("tool_calls") {
                for c in calls {
                    collect(c, source, offered, out, depth + 1);
                }
                return;
            }
            if let Some(c) = call_of(o, source, offered) {
                out.push(c);
            }
        }
        _ => {}
    }
}

/// One call object in any of the known layouts.
fn call_of(o: &Map<String, Value>, source: Source, offered: &[ToolSpec]) -> Option<ToolCall> {
    // {"function": {"name", "arguments"}} or {"function": "name", "arguments"}
    let (name, args_holder) = match o.get("function") {
        Some(Value::Object(f)) => (f.get("name")?.as_str()?, f),
        Some(Value::String(n)) => (n.as_str(), o),
        _ => (
            o.get("name")
                .or_else(|| o.get("tool"))
                .or_else(|| o.get("tool_name"))?
                .as_str()?,
            o,
        ),
    };
    let explicit_args = ["arguments", "parameters", "args", "input"]
        .iter()
        .find_map(|k| args_holder.get(*k));
    let mut args = match explicit_args {
        Some(a) => arguments_value(a),
        None if source == Source::Explicit => {
            // flattened: {"name": "kubectl", "operation": "get", "kind": "pods"}
            let rest: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "name" | "tool" | "tool_name" | "function" | "id" | "type"
                    )
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(rest)
        }
        // a bare object must say `arguments` (or a synonym) to count as a call
        None => return None,
    };
    let tool = resolve_name(name.trim(), &mut args, offered)?;
    let arguments = match &args {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(ToolCall {
        id: String::new(),
        name: tool,
        arguments,
    })
}

/// Arguments as a JSON value: objects as they are, a JSON string holding an object parsed, any
/// other string kept verbatim (the guard will say it is not valid JSON).
fn arguments_value(a: &Value) -> Value {
    match a {
        Value::Null => Value::Object(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ if s.trim().is_empty() => Value::Object(Map::new()),
            _ => Value::String(s.clone()),
        },
        other => other.clone(),
    }
}

/// The offered tool a name refers to. `kubectl.get` / `kubectl_get` become `kubectl` with
/// `operation: get` when the schema offers that operation and the arguments do not name one.
fn resolve_name(name: &str, args: &mut Value, offered: &[ToolSpec]) -> Option<String> {
    if offered.iter().any(|t| t.name == name) {
        return Some(name.to_string());
    }
    for sep in ['.', ':', '/'] {
        let Some((tool, op)) = name.split_once(sep) else {
            continue;
        };
        let Some(spec) = offered.iter().find(|t| t.name == tool) else {
            continue;
        };
        let offers_op = spec
            .parameters
            .pointer("/properties/operation/enum")
            .and_then(Value::as_array)
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some(op)));
        if let (true, Value::Object(m)) = (offers_op, &mut *args) {
            m.entry("operation")
                .or_insert_with(|| Value::String(op.to_string()));
            return Some(tool.to_string());
        }
    }
    // a bare operation name (`scale`) that exactly one tool offers: that tool, that operation
    // (seen: Qwen2.5-Coder 0.5B writes `{"name": "scale", "arguments": {...}}`)
    let offering: Vec<&ToolSpec> = offered
        .iter()
        .filter(|t| {
            t.parameters
                .pointer("/properties/operation/enum")
                .and_then(Value::as_array)
                .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some(name)))
        })
        .collect();
    if let ([spec], Value::Object(m)) = (offering.as_slice(), &mut *args) {
        if m.get("operation").is_none_or(Value::is_null) {
            m.insert("operation".into(), Value::String(name.to_string()));
            return Some(spec.name.clone());
        }
    }
    None
}

/// A strict tool schema made easy for small models: optional properties are left out of
/// `required` and lose their `null` type, so a model can omit them instead of filling every
/// field (measured: Qwen2.5-Coder 0.5B given bosun's strict kubectl schema filled `context`,
/// `name` and `label_selector` with invented values on every call). The guard still checks the
/// arguments with the tool's own parser, where a missing optional field is `None`.
pub fn relax_schema(schema: &Value) -> Value {
    relax(schema, 0)
}

fn nullable(v: &Value) -> bool {
    match v.get("type") {
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        Some(Value::String(t)) => t == "null",
        _ => v
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|alts| {
                alts.iter()
                    .any(|a| a.get("type").is_some_and(|t| t == "null"))
            }),
    }
}

fn relax(v: &Value, depth: u8) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    if depth > 16 {
        return v.clone();
    }
    let mut out = Map::new();
    for (k, val) in m {
        let nv = match k.as_str() {
            "properties" => match val {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(pk, pv)| (pk.clone(), relax(pv, depth + 1)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "required" => {
                let props = m.get("properties").and_then(Value::as_object);
                Value::Array(
                    val.as_array()
                        .map(|r| {
                            r.iter()
                                .filter(|name| {
                                    name.as_str()
                                        .and_then(|n| props.and_then(|p| p.get(n)))
                                        .is_none_or(|p| !nullable(p))
                                })
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            }
            "type" => match val {
                Value::Array(ts) => {
                    let rest: Vec<Value> = ts.iter().filter(|t| *t != "null").cloned().collect();
                    match rest.as_slice() {
                        [one] => one.clone(),
                        [] => val.clone(),
                        _ => Value::Array(rest),
                    }
                }
                other => other.clone(),
            },
            "anyOf" => match val {
                Value::Array(alts) => Value::Array(
                    alts.iter()
                        .filter(|a| a.get("type").is_none_or(|t| t != "null"))
                        .map(|a| relax(a, depth + 1))
                        .collect(),
                ),
                other => other.clone(),
            },
            "enum" | "const" | "description" => val.clone(),
            _ => relax(val, depth + 1),
        };
        out.insert(k.clone(), nv);
    }
    // an anyOf left with one alternative is that alternative
    if let Some(Value::Array(alts)) = out.get("anyOf") {
        if let [only] = alts.as_slice() {
            let only = only.clone();
            out.remove("anyOf");
            if let Value::Object(o) = only {
                for (k, v) in o {
                    out.entry(k).or_insert(v);
                }
            }
        }
    }
    // an enum that allowed null no longer does
    if let Some(Value::Array(vals)) = out.get_mut("enum") {
        vals.retain(|x| !x.is_null());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "kubectl".into(),
                description: String::new(),
                parameters: json!({"type": "object", "properties": {
                    "operation": {"type": "string", "enum": ["get", "api_resources"]},
                    "kind": {"type": ["string", "null"]}}}),
            },
            ToolSpec {
                name: "activate_skill".into(),
                description: String::new(),
                parameters: json!({"type": "object", "properties": {"name": {"type": "string"}}}),
            },
        ]
    }

    fn args(c: &ToolCall) -> Value {
        serde_json::from_str(&c.arguments).expect("arguments are JSON")
    }

    #[test]
    fn a_bare_operation_name_offered_by_one_tool_is_that_tools_call() {
        let mut offered = tools();
        offered.push(ToolSpec {
            name: "helm".into(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {
                "operation": {"type": "string", "enum": ["status", "upgrade"]}}}),
        });
        offered[0].parameters["properties"]["operation"]["enum"] =
            json!(["get", "scale", "status"]);
        let ex = extract_calls(
            "```json\n{\"name\": \"scale\", \"arguments\": {\"kind\": \"deployment\", \"replicas\": 3}}\n```",
            &offered,
        )
        .expect("a call");
        assert_eq!(ex.calls[0].name, "kubectl");
        assert_eq!(args(&ex.calls[0])["operation"], "scale");
        assert_eq!(args(&ex.calls[0])["replicas"], 3);
        // offered by two tools: ambiguous, not a call
        assert!(extract_calls(
            "```json\n{\"name\": \"status\", \"arguments\": {}}\n```",
            &offered
        )
        .is_none_or(|e| e.calls.is_empty()));
    }

    #[test]
    fn fenced_json_with_text_before_and_after() {
        let t = "I will list the pods.\n```json\n{\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"pods\"}}\n```\nThe pods are: web-1 (made up)";
        let ex = extract_calls(t, &tools()).expect("a call");
        assert_eq!(ex.calls.len(), 1);
        assert_eq!(ex.calls[0].name, "kubectl");
        assert_eq!(ex.calls[0].id, "shim_0");
        assert_eq!(
            args(&ex.calls[0]),
            json!({"operation": "get", "kind": "pods"})
        );
        assert_eq!(ex.content.as_deref(), Some("I will list the pods."));
    }

    #[test]
    fn fence_without_language_and_inline_fence() {
        for t in [
            "```\n{\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"ns\"}}\n```",
            "```json {\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"ns\"}}```",
        ] {
            let ex = extract_calls(t, &tools()).expect(t);
            assert_eq!(args(&ex.calls[0])["kind"], "ns", "{t}");
            assert_eq!(ex.content, None);
        }
    }

    #[test]
    fn tool_call_tags_several_and_unclosed() {
        let t = "<tool_call>\n{\"name\": \"activate_skill\", \"arguments\": {\"name\": \"kubernetes\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"pods\"}}";
        let ex = extract_calls(t, &tools()).expect("calls");
        let names: Vec<&str> = ex.calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["activate_skill", "kubectl"]);
        assert_eq!(ex.calls[1].id, "shim_1");
    }

    #[test]
    fn a_fence_inside_a_tag_is_one_call() {
        let t = "<tool_call>\n```json\n{\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"pods\"}}\n```\n</tool_call>";
        let ex = extract_calls(t, &tools()).expect("call");
        assert_eq!(ex.calls.len(), 1);
    }

    #[test]
    fn bare_object_and_variants() {
        let cases = [
            r#"{"name": "kubectl", "arguments": {"operation": "get", "kind": "pods"}}"#,
            r#"{"name": "kubectl", "parameters": {"operation": "get", "kind": "pods"}}"#,
            r#"{"function": {"name": "kubectl", "arguments": "{\"operation\":\"get\",\"kind\":\"pods\"}"}}"#,
            r#"{"type": "function", "function": "kubectl", "arguments": {"operation": "get", "kind": "pods"}}"#,
            r#"{"tool_calls": [{"function": {"name": "kubectl", "arguments": {"operation": "get", "kind": "pods"}}}]}"#,
            r#"Sure: [{"name": "kubectl", "arguments": {"operation": "get", "kind": "pods"}}]"#,
            r#"{"name": "kubectl.get", "arguments": {"kind": "pods"}}"#,
        ];
        for t in cases {
            let ex = extract_calls(t, &tools()).unwrap_or_else(|| panic!("no call in {t}"));
            assert_eq!(ex.calls.len(), 1, "{t}");
            assert_eq!(ex.calls[0].name, "kubectl", "{t}");
            assert_eq!(
                args(&ex.calls[0]),
                json!({"operation": "get", "kind": "pods"}),
                "{t}"
            );
        }
    }

    #[test]
    fn flattened_arguments_count_only_in_a_fence() {
        let fenced =
            "```json\n{\"name\": \"kubectl\", \"operation\": \"get\", \"kind\": \"pods\"}\n```";
        let ex = extract_calls(fenced, &tools()).expect("fenced flattened");
        assert_eq!(
            args(&ex.calls[0]),
            json!({"operation": "get", "kind": "pods"})
        );
        let bare = "{\"name\": \"kubectl\", \"operation\": \"get\"}";
        assert_eq!(extract_calls(bare, &tools()), None);
    }

    #[test]
    fn unknown_tools_prose_and_manifests_are_not_calls() {
        for t in [
            "There are 3 pods in namespace shop.",
            r#"{"name": "rm_rf", "arguments": {}}"#,
            "```json\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"kubectl\"}}\n```",
            "```yaml\nname: kubectl\narguments: {operation: get}\n```",
            r#"{"name": "kubectl.delete", "arguments": {"kind": "pods"}}"#,
            "```json\n{\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"po",
        ] {
            assert_eq!(extract_calls(t, &tools()), None, "{t}");
        }
        assert_eq!(
            extract_calls(r#"{"name":"kubectl","arguments":{}}"#, &[]),
            None
        );
    }

    #[test]
    fn arguments_that_are_not_json_are_kept_for_the_guard() {
        let t = r#"{"name": "kubectl", "arguments": "get pods -n shop"}"#;
        let ex = extract_calls(t, &tools()).expect("call");
        assert_eq!(ex.calls[0].arguments, "get pods -n shop");
    }

    #[test]
    fn relaxed_schemas_make_nullable_properties_optional() {
        let strict = json!({"type": "object", "additionalProperties": false,
            "properties": {
                "operation": {"type": "string", "enum": ["get"]},
                "kind": {"type": ["string", "null"], "description": "Kind"},
                "mode": {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},
                "level": {"type": ["string", "null"], "enum": ["x", null]},
                "nested": {"type": "object", "properties": {"n": {"type": ["integer", "null"]}}, "required": ["n"]}
            },
            "required": ["operation", "kind", "mode", "level", "nested"]});
        let r = relax_schema(&strict);
        assert_eq!(r["required"], json!(["operation", "nested"]));
        assert_eq!(
            r["properties"]["kind"],
            json!({"type": "string", "description": "Kind"})
        );
        assert_eq!(
            r["properties"]["mode"],
            json!({"type": "string", "enum": ["a", "b"]})
        );
        assert_eq!(r["properties"]["level"]["enum"], json!(["x"]));
        assert_eq!(r["properties"]["nested"]["required"], json!([]));
        assert_eq!(r["additionalProperties"], json!(false));
    }

    #[test]
    fn apply_leaves_structured_calls_alone_and_numbers_ids() {
        let mut n = 10;
        let mut next = || {
            n += 1;
            n
        };
        let mut r = ChatResponse {
            content: Some("```json\n{\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"ns\"}}\n```".into()),
            tool_calls: vec![],
            finish_reason: FinishReason::Stop,
            usage: Default::default(),
        };
        assert!(apply(&mut r, &tools(), &mut next));
        assert_eq!(r.tool_calls[0].id, "shim_11");
        assert_eq!(r.content, None);
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        let mut structured = ChatResponse {
            content: Some("{\"name\": \"kubectl\", \"arguments\": {}}".into()),
            tool_calls: vec![ToolCall {
                id: "a".into(),
                name: "kubectl".into(),
                arguments: "{}".into(),
            }],
            finish_reason: FinishReason::ToolCalls,
            usage: Default::default(),
        };
        assert!(!apply(&mut structured, &tools(), &mut next));
        assert_eq!(structured.tool_calls.len(), 1);
    }
}
