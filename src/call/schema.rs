//! Post-processing JSON schemas from schemars into what OpenAI strict function calling accepts
//! (and what small models read best): every object closed (`additionalProperties: false`) with all
//! properties required (optional ones are nullable), `$ref`s inlined, no `$schema` / `title` /
//! `format` / `default` / `minimum: 0`, `oneOf` turned into `anyOf`.

use serde_json::{Map, Value};

/// Make `schema` strict. If the top-level object has an `operation` enum, only `offered`
/// operations stay in it.
pub fn strict(schema: Value, offered: &[&str]) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut out = walk(schema, &defs, 0);
    if let Some(Value::Object(op)) = out.pointer_mut("/properties/operation") {
        if let Some(Value::Array(vals)) = op.get_mut("enum") {
            vals.retain(|v| v.as_str().is_some_and(|s| offered.contains(&s)));
        }
    }
    out
}

fn walk(v: Value, defs: &Value, depth: usize) -> Value {
    match v {
        Value::Object(mut m) => {
            if depth < 16 {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let name = r.rsplit('/').next().unwrap_or_default();
                    if let Some(target) = defs.get(name).cloned() {
                        let mut inlined = walk(target, defs, depth + 1);
                        // keep a description written at the reference site
                        if let (Some(d), Value::Object(im)) =
                            (m.remove("description"), &mut inlined)
                        {
                            im.insert("description".into(), d);
                        }
                        return inlined;
                    }
                }
            }
            for k in [
                "$schema",
                "title",
                "format",
                "default",
                "$defs",
                "definitions",
                "examples",
            ] {
                m.remove(k);
            }
            // schemars's marker of an unsigned integer: the tool's parsing rejects negatives
            if m.get("minimum").and_then(Value::as_f64) == Some(0.0) {
                m.remove("minimum");
            }
            if let Some(one) = m.remove("oneOf") {
                m.insert("anyOf".into(), one);
            }
            let mut out = Map::new();
            for (k, v) in m {
                let v = match k.as_str() {
                    // property names are not schemas; descend into their values only
                    "properties" => match v {
                        Value::Object(props) => Value::Object(
                            props
                                .into_iter()
                                .map(|(pk, pv)| (pk, walk(pv, defs, depth + 1)))
                                .collect(),
                        ),
                        other => other,
                    },
                    "enum" | "const" | "required" | "description" => v,
                    _ => walk(v, defs, depth + 1),
                };
                out.insert(k, v);
            }
            let is_object = out.get("type").and_then(Value::as_str) == Some("object")
                || out.contains_key("properties");
            if is_object {
                let keys: Vec<Value> = out
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().map(Value::String).collect())
                    .unwrap_or_default();
                out.insert("required".into(), Value::Array(keys));
                out.insert("additionalProperties".into(), Value::Bool(false));
                out.entry("type").or_insert(Value::String("object".into()));
                out.entry("properties").or_insert(Value::Object(Map::new()));
            }
            // a nullable enum: schemars writes {"anyOf":[{"$ref"..},{"type":"null"}]} — fine as is.
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| walk(x, defs, depth + 1)).collect()),
        other => other,
    }
}

/// Check that a schema obeys the strict-mode rules; returns the violations (for tests and
/// `bosun validate`).
pub fn violations(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, "$", &mut out);
    out
}

fn check(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for k in ["$schema", "title", "format", "default", "oneOf", "$ref"] {
                if m.contains_key(k) {
                    out.push(format!("{at}: has `{k}`"));
                }
            }
            if let Some(props) = m.get("properties").and_then(Value::as_object) {
                if m.get("additionalProperties") != Some(&Value::Bool(false)) {
                    out.push(format!("{at}: object without additionalProperties: false"));
                }
                let req: Vec<&str> = m
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (k, pv) in props {
                    if !req.contains(&k.as_str()) {
                        out.push(format!("{at}.{k}: not in required"));
                    }
                    check(pv, &format!("{at}.{k}"), out);
                }
            }
            if m.get("type").and_then(Value::as_str) == Some("object")
                && !m.contains_key("properties")
            {
                out.push(format!("{at}: free-form object"));
            }
            for (k, sub) in m {
                if k != "properties" && k != "enum" && k != "required" {
                    check(sub, at, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| check(x, at, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;

    #[derive(JsonSchema, serde::Deserialize)]
    #[allow(dead_code)]
    enum Op {
        #[serde(rename = "get")]
        Get,
        #[serde(rename = "apply")]
        Apply,
    }

    #[derive(JsonSchema, serde::Deserialize)]
    #[allow(dead_code)]
    struct Args {
        /// what to do
        operation: Op,
        /// optional
        namespace: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
        nested: Option<Inner>,
    }

    #[derive(JsonSchema, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        a: String,
    }

    #[test]
    fn schemars_output_becomes_strict() {
        let raw = schemars::schema_for!(Args).to_value();
        assert!(
            !violations(&raw).is_empty(),
            "raw schemars output is not strict"
        );
        let s = strict(raw, &["get"]);
        assert_eq!(violations(&s), Vec::<String>::new(), "{s:#}");
        assert_eq!(
            s["properties"]["operation"]["enum"],
            serde_json::json!(["get"])
        );
        assert_eq!(s["properties"]["operation"]["description"], "what to do");
    }
}
