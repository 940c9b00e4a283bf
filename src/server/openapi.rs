//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand (the API is small, and a
//! generator such as utoipa would add a derive to every view type of the library for nine
//! routes). A unit test checks it lists exactly the routes the server answers.

use serde_json::{json, Value};

fn err(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok_json(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn html(description: &str) -> Value {
    json!({"description": description, "content": {"text/html": {"schema": {"type": "string"}}}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "the session id"})
}

fn fp_param() -> Value {
    json!({"name": "fingerprint", "in": "path", "required": true, "schema": {"type": "string"},
           "description": "the fingerprint of the pending change (from `pending_approvals[].fingerprint`)"})
}

/// The document.
pub fn document() -> Value {
    let answer_responses = |verb: &str| {
        json!({
            "200": ok_json(&format!("{verb}; the session as it is now"), "Session"),
            "400": err("the body is neither empty nor {\"reason\": …}"),
            "401": err("missing or wrong bearer token"),
            "404": err("no such session"),
            "409": err("no change with this fingerprint is pending (the message lists what is), or the session has ended"),
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "bosun serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sessions of a bosun agent over HTTP: create one with a task, follow its events, approve or deny pending changes by fingerprint. Authentication: `Authorization: Bearer <token>` when the server has a token."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "CreateSession": {"type": "object", "required": ["task"], "additionalProperties": false, "properties": {
                    "task": {"type": "string", "description": "what the agent should do"},
                    "mode": {"type": "string", "enum": ["apply", "read-only"], "description": "as `bosun run --mode`"},
                    "namespace": {"type": "string", "description": "confine changes to this namespace (as `bosun run -n`)"},
                    "context": {"type": "string", "description": "the kube context (as `bosun run --context`)"}}},
                "Answer": {"type": "object", "additionalProperties": false, "properties": {"reason": {"type": "string"}}},
                "PendingApproval": {"type": "object", "properties": {
                    "fingerprint": {"type": "string"}, "tool": {"type": "string"}, "operation": {"type": "string"},
                    "effect": {"type": "string"}, "target": {"type": "string"},
                    "environment": {"type": ["string", "null"], "enum": ["dev", "tier", "prod", null]},
                    "reason": {"type": "string"}, "objects": {"type": "array", "items": {"type": "object"}},
                    "dry_run_evidence": {"type": ["string", "null"], "description": "the successful dry-run of this same change (diff, plan)"},
                    "requested_at": {"type": "string"}}},
                "Outcome": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["success", "failed", "needs_approval"]},
                    "verdict": {"type": "string"}, "answer": {"type": "string"}, "turns": {"type": "integer"},
                    "tool_calls": {"type": "integer"}, "usage": {"type": "object"}, "report": {"type": ["string", "null"]}}},
                "Session": {"type": "object", "properties": {
                    "id": {"type": "string"}, "task": {"type": "string"}, "mode": {"type": "string"},
                    "namespace": {"type": "string"}, "context": {"type": "string"}, "created": {"type": "string"},
                    "status": {"type": "string", "enum": ["running", "waiting_for_approval", "completed", "failed", "cancelled"]},
                    "state": {"type": "string", "description": "the planner state"},
                    "outcome": {"oneOf": [{"$ref": "#/components/schemas/Outcome"}, {"type": "null"}]},
                    "error": {"type": ["string", "null"]},
                    "pending_approvals": {"type": "array", "items": {"$ref": "#/components/schemas/PendingApproval"}},
                    "events": {"type": "integer", "description": "events so far"}}},
                "SessionList": {"type": "object", "properties": {"sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}}}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "the OpenAPI document"}}}},
            "/v1/sessions": {
                "get": {"summary": "list sessions, newest first", "responses": {"200": ok_json("the sessions", "SessionList"), "401": err("missing or wrong bearer token")}},
                "post": {"summary": "start a session with a task",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateSession"}}}},
                    "responses": {"201": ok_json("started; `Location` names it", "Session"), "400": err("bad request"),
                        "401": err("missing or wrong bearer token"), "413": err("the body is too large"),
                        "415": err("not application/json"), "429": err("too many sessions are running; retry after `Retry-After` seconds")}}
            },
            "/v1/sessions/{id}": {"get": {"summary": "one session: status, planner state, outcome, pending approvals",
                "parameters": [id_param()], "responses": {"200": ok_json("the session", "Session"), "404": err("no such session")}}},
            "/v1/sessions/{id}/events": {"get": {"summary": "the session's events as server-sent events",
                "description": "Each SSE message has `id` (the event number), `event` (its type) and `data` {seq, at_us, event, summary}. Replays from `Last-Event-ID` or `after`, then follows live; ends with an `end` event once the session has ended.",
                "parameters": [id_param(), {"name": "after", "in": "query", "required": false, "schema": {"type": "integer"}, "description": "only events numbered above this"}],
                "responses": {"200": {"description": "the event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, "404": err("no such session")}}},
            "/v1/sessions/{id}/approvals/{fingerprint}/approve": {"post": {"summary": "approve the pending change with this fingerprint",
                "parameters": [id_param(), fp_param()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}}},
                "responses": answer_responses("approved")}},
            "/v1/sessions/{id}/approvals/{fingerprint}/deny": {"post": {"summary": "deny the pending change with this fingerprint",
                "parameters": [id_param(), fp_param()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}}},
                "responses": answer_responses("denied")}},
            "/v1/sessions/{id}/cancel": {"post": {"summary": "stop the task at its next safe point and end the session (pending approvals are denied)",
                "parameters": [id_param()],
                "responses": {"202": ok_json("cancelling", "Session"), "404": err("no such session"), "409": err("the session has already ended")}}},
            "/": {"get": {"summary": "the approvals inbox (HTML)", "tags": ["inbox"], "responses": {"200": html("the inbox")}}},
            "/ui/sessions": {"post": {"summary": "start a session from the inbox form", "tags": ["inbox"],
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["form_token", "task"]}}}},
                "responses": {"303": {"description": "to the session page"}}}},
            "/ui/sessions/{id}": {"get": {"summary": "a session page following its events live (HTML)", "tags": ["inbox"],
                "parameters": [id_param()], "responses": {"200": html("the session page"), "404": html("no such session")}}},
            "/ui/sessions/{id}/approvals/{fingerprint}": {"post": {"summary": "approve or deny from the inbox form", "tags": ["inbox"],
                "parameters": [id_param(), fp_param()],
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["form_token", "decision"],
                    "properties": {"decision": {"enum": ["approve", "deny"]}, "reason": {"type": "string"}}}}}},
                "responses": {"303": {"description": "to the session page"}, "403": html("stale form token"), "409": html("not pending")}}},
            "/login": {
                "get": {"summary": "the inbox sign-in form", "tags": ["inbox"], "security": [], "responses": {"200": html("the form")}},
                "post": {"summary": "sign in: sets the inbox cookie (HttpOnly, SameSite=Strict)", "tags": ["inbox"], "security": [],
                    "responses": {"303": {"description": "signed in"}, "401": html("wrong token")}}
            },
            "/ui/app.js": {"get": {"summary": "the session page's script", "tags": ["inbox"], "responses": {"200": {"description": "JavaScript"}}}},
            "/ui/style.css": {"get": {"summary": "the inbox stylesheet", "tags": ["inbox"], "security": [], "responses": {"200": {"description": "CSS"}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_exactly_the_routes() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let routes = crate::server::routes();
        let mut served = std::collections::BTreeSet::new();
        for (method, path, _) in &routes {
            let m = method.as_str().to_ascii_lowercase();
            assert!(
                paths.get(*path).and_then(|p| p.get(&m)).is_some(),
                "{method} {path} is served but not in the OpenAPI document"
            );
            served.insert((m, path.to_string()));
        }
        for (path, ops) in paths {
            for m in ops.as_object().expect("operations").keys() {
                assert!(
                    served.contains(&(m.clone(), path.clone())),
                    "{m} {path} is documented but not served"
                );
            }
        }
    }
}
