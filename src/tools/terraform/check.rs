//! What a terraform configuration may contain before bosun lets terraform run it, and what a
//! saved plan may contain before bosun applies it: no provisioners (`local-exec`, `remote-exec`,
//! `file`, any other), no `external` data source, and only providers the policy allows.
//!
//! Three checks, because code runs at three moments:
//! - [`check_config`] reads the `.tf` / `.tf.json` files (and local modules) *before* init, validate
//!   or plan: `data "external"` and every provider run during plan, so they must be refused
//!   before terraform evaluates anything. `.tf` files are parsed with `hcl-rs` (a maintained HCL
//!   parser) rather than matched as text, so spacing, comments or `check {}` nesting cannot hide a
//!   block; a file it cannot parse is refused.
//! - [`check_after_init`] reads what `terraform init` resolved and fetched: the lock file's
//!   providers and every module directory in `modules.json` (remote modules are only visible
//!   after init; init downloads but runs nothing).
//! - [`check_plan`] judges terraform's own `show -json` of the saved plan: its configuration's
//!   provisioners, data sources and providers — the authority at plan time and again just before
//!   apply.

use crate::policy::{TerraformPolicy, BUILTIN_PROVIDER};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the checks found that bosun refuses; empty when the configuration may run.
#[derive(Debug, Default)]
pub struct Findings {
    pub provisioners: Vec<String>,
    pub external: Vec<String>,
    pub providers: BTreeSet<String>,
    /// Files that could not be read or parsed, modules outside the root.
    pub problems: Vec<String>,
}

impl Findings {
    /// The refusal for the model, or `None`. `policy` judges the providers found.
    pub fn refusal(&self, policy: &TerraformPolicy) -> Option<String> {
        let mut why = Vec::new();
        if !self.problems.is_empty() {
            why.push(format!(
                "bosun could not check the configuration before running it: {} (fix these files; terraform would not run them either)",
                self.problems.join("; ")
            ));
        }
        if !self.provisioners.is_empty() {
            why.push(format!(
                "it has provisioners, which run commands on this machine or on hosts: {} — remove them; describe the work as resources of an allowed provider, or ask a human to run the command",
                self.provisioners.join(", ")
            ));
        }
        if !self.external.is_empty() {
            why.push(format!(
                "it uses the `external` data source, which runs a program during plan: {} — remove it; read the data with a data source of an allowed provider, or pass it in as a variable",
                self.external.join(", ")
            ));
        }
        let refused: Vec<&String> = self
            .providers
            .iter()
            .filter(|p| !policy.allows(p))
            .collect();
        if !refused.is_empty() {
            why.push(format!(
                "it uses providers the policy does not allow: {} (allowed: {}) — use an allowed provider, or ask the platform team to add it under `terraform: {{providers: […]}}` in policy.yaml",
                refused
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                policy.describe()
            ));
        }
        if why.is_empty() {
            None
        } else {
            Some(format!(
                "bosun refuses this terraform configuration: {}",
                why.join("; ")
            ))
        }
    }
}

/// The full provider address for a local name, given a module's `required_providers`.
fn provider_for(local: &str, required: &BTreeMap<String, String>) -> String {
    if let Some(src) = required.get(local) {
        return crate::policy::provider_address(src)
            .unwrap_or_else(|_| format!("(unreadable source `{src}`)"));
    }
    if local == "terraform" {
        return BUILTIN_PROVIDER.into();
    }
    format!(
        "registry.terraform.io/hashicorp/{}",
        local.to_ascii_lowercase()
    )
}

/// The implied provider local name of a resource type: the part before the first `_`.
fn implied_local(ty: &str) -> &str {
    ty.split('_').next().unwrap_or(ty)
}

/// One module directory's blocks, as the checks need them.
#[derive(Default)]
struct Module {
    required: BTreeMap<String, String>,
    /// Local provider names used (provider blocks, resources, data sources, `provider =`).
    used: BTreeSet<String>,
    local_sources: Vec<String>,
}

/// The root name of a `provider = aws.west` expression.
fn traversal_root(e: &hcl::Expression) -> Option<String> {
    match e {
        hcl::Expression::Variable(v) => Some(v.as_str().to_string()),
        hcl::Expression::Traversal(t) => traversal_root(&t.expr),
        _ => None,
    }
}

fn expr_str(e: &hcl::Expression) -> Option<String> {
    match e {
        hcl::Expression::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Walk a parsed `.tf` body: every block at every depth (provisioners hide in resources and in
/// `removed`, data sources in `check`).
fn walk_hcl(body: &hcl::Body, file: &str, top: bool, m: &mut Module, f: &mut Findings) {
    for b in body.blocks() {
        let id = b.identifier.as_str();
        let labels: Vec<&str> = b.labels.iter().map(|l| l.as_str()).collect();
        match (id, labels.as_slice()) {
            ("provisioner", [kind, ..]) => {
                f.provisioners
                    .push(format!("{file}: provisioner \"{kind}\""));
            }
            ("provisioner", _) => f.provisioners.push(format!("{file}: provisioner")),
            ("data", [ty, name, ..]) if *ty == "external" => {
                f.external.push(format!("{file}: data.external.{name}"));
            }
            ("terraform", _) if top => {
                for rp in b
                    .body
                    .blocks()
                    .filter(|x| x.identifier.as_str() == "required_providers")
                {
                    for a in rp.body.attributes() {
                        let src = match &a.expr {
                            hcl::Expression::Object(o) => o
                                .iter()
                                .find(|(k, _)| match k {
                                    hcl::ObjectKey::Identifier(i) => i.as_str() == "source",
                                    hcl::ObjectKey::Expression(e) => {
                                        expr_str(e).as_deref() == Some("source")
                                    }
                                    _ => false,
                                })
                                .and_then(|(_, v)| expr_str(v)),
                            _ => None,
                        };
                        let local = a.key.as_str().to_string();
                        let src = src.unwrap_or_else(|| format!("hashicorp/{local}"));
                        m.required.insert(local, src);
                    }
                }
            }
            ("provider", [local, ..]) => {
                m.used.insert(local.to_string());
            }
            ("module", [_name, ..]) => {
                if let Some(src) = b
                    .body
                    .attributes()
                    .find(|a| a.key.as_str() == "source")
                    .and_then(|a| expr_str(&a.expr))
                {
                    if src.starts_with("./") || src.starts_with("../") {
                        m.local_sources.push(src);
                    }
                }
            }
            _ => {}
        }
        if matches!(id, "resource" | "data" | "ephemeral" | "list" | "action") {
            let explicit = b
                .body
                .attributes()
                .find(|a| a.key.as_str() == "provider")
                .and_then(|a| traversal_root(&a.expr));
            match (explicit, labels.first()) {
                (Some(p), _) => {
                    m.used.insert(p);
                }
                (None, Some(ty)) => {
                    m.used.insert(implied_local(ty).to_string());
                }
                _ => {}
            }
        }
        walk_hcl(&b.body, file, false, m, f);
    }
}

/// Walk a `.tf.json` document: any `provisioner` key anywhere, `data.external`, providers.
fn walk_json(v: &Value, file: &str, m: &mut Module, f: &mut Findings) {
    fn any_provisioner(v: &Value) -> bool {
        match v {
            Value::Object(o) => o
                .iter()
                .any(|(k, x)| k == "provisioner" || any_provisioner(x)),
            Value::Array(a) => a.iter().any(any_provisioner),
            _ => false,
        }
    }
    if any_provisioner(v) {
        f.provisioners.push(format!("{file}: provisioner"));
    }
    // blocks may be objects or arrays of objects in the JSON syntax
    let objects = |x: Option<&Value>| -> Vec<serde_json::Map<String, Value>> {
        match x {
            Some(Value::Object(o)) => vec![o.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|y| y.as_object().cloned()).collect(),
            _ => Vec::new(),
        }
    };
    for kind in ["resource", "data", "ephemeral"] {
        for o in objects(v.get(kind)) {
            for (ty, instances) in o {
                if kind == "data" && ty == "external" {
                    f.external.push(format!("{file}: data.external"));
                }
                let explicit = instances.as_object().and_then(|i| {
                    i.values().find_map(|b| {
                        b.get("provider")
                            .and_then(Value::as_str)
                            .map(|p| p.split('.').next().unwrap_or(p).to_string())
                    })
                });
                m.used
                    .insert(explicit.unwrap_or_else(|| implied_local(&ty).to_string()));
            }
        }
    }
    for o in objects(v.get("provider")) {
        m.used.extend(o.keys().cloned());
    }
    for t in objects(v.get("terraform")) {
        for rp in objects(t.get("required_providers")) {
            for (local, spec) in rp {
                let src = spec
                    .get("source")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("hashicorp/{local}"));
                m.required.insert(local, src);
            }
        }
    }
    for o in objects(v.get("module")) {
        for call in o.values() {
            if let Some(src) = call.get("source").and_then(Value::as_str) {
                if src.starts_with("./") || src.starts_with("../") {
                    m.local_sources.push(src.to_string());
                }
            }
        }
    }
}

/// Check one module directory (its `.tf` and `.tf.json` files, not subdirectories); returns
/// the local module directories it calls.
fn check_module(dir: &Path, root: &Path, f: &mut Findings) -> Vec<PathBuf> {
    let mut m = Module::default();
    // the module's own files, through cap-std: a symlink is refused, never followed — and in
    // the root, a symlink anywhere (terraform's own .terraform/ aside), used or not
    use super::super::confined::{EntryKind, Root};
    let entries = match Root::open(dir).and_then(|r| r.list(Path::new(""), 10_000)) {
        Ok(entries) => entries,
        Err(e) => {
            f.problems.push(format!("{}: {e}", dir.display()));
            Vec::new()
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for e in entries {
        let top = e.path.components().count() == 1;
        let own = e.path.starts_with(".terraform");
        let n = e.path.to_string_lossy().to_string();
        let tf = n.ends_with(".tf") || n.ends_with(".tf.json");
        if e.kind == EntryKind::Symlink && !own && (top || dir == root) {
            let shown = dir.join(&e.path);
            f.problems.push(format!(
                "{} is a symbolic link; a terraform root may not contain links (they could reach files outside it) — copy the file in",
                shown.strip_prefix(root).unwrap_or(&shown).display()
            ));
            continue;
        }
        if top && tf {
            files.push(dir.join(&e.path));
        }
    }
    for p in files {
        let shown = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        let text = match super::super::confined::Root::open(dir)
            .and_then(|r| r.read(Path::new(p.file_name().unwrap_or_default()), 16 << 20))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
        {
            Ok(t) => t,
            Err(e) => {
                f.problems.push(format!("{shown}: {e}"));
                continue;
            }
        };
        if shown.ends_with(".json") {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => walk_json(&v, &shown, &mut m, f),
                Err(e) => f.problems.push(format!("{shown}: {e}")),
            }
        } else {
            match hcl::parse(&text) {
                Ok(body) => walk_hcl(&body, &shown, true, &mut m, f),
                Err(e) => f.problems.push(format!(
                    "{shown}: {}",
                    e.to_string().lines().next().unwrap_or("")
                )),
            }
        }
    }
    for local in &m.used {
        f.providers.insert(provider_for(local, &m.required));
    }
    for src in m.required.values() {
        if let Ok(a) = crate::policy::provider_address(src) {
            f.providers.insert(a);
        }
    }
    let mut out = Vec::new();
    for src in m.local_sources {
        match std::fs::canonicalize(dir.join(&src)) {
            Ok(p) if p.starts_with(root) => out.push(p),
            Ok(p) => f.problems.push(format!(
                "module source `{src}` ({}) lies outside the root directory, which is all terraform can see in bosun's sandbox; move the module into the root",
                p.display()
            )),
            Err(e) => f.problems.push(format!("module source `{src}`: {e}")),
        }
    }
    out
}

/// The static check of `root` and its local modules, before terraform runs anything.
pub fn check_config(root: &Path) -> Findings {
    let mut f = Findings::default();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if seen.insert(d.clone()) {
            stack.extend(check_module(&d, root, &mut f));
        }
    }
    f
}

/// After `terraform init`: the providers in the lock file, and every module init fetched
/// (`<data dir>/modules/modules.json`).
pub fn check_after_init(root: &Path, data_dir: &Path) -> Findings {
    let mut f = check_config(root);
    let lock = root.join(".terraform.lock.hcl");
    if let Ok(text) = std::fs::read_to_string(&lock) {
        match hcl::parse(&text) {
            Ok(body) => {
                for b in body
                    .blocks()
                    .filter(|b| b.identifier.as_str() == "provider")
                {
                    if let Some(l) = b.labels.first() {
                        f.providers.insert(l.as_str().to_ascii_lowercase());
                    }
                }
            }
            Err(e) => f.problems.push(format!(".terraform.lock.hcl: {e}")),
        }
    }
    let modules = data_dir.join("modules").join("modules.json");
    if let Ok(text) = std::fs::read_to_string(&modules) {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        for m in v
            .get("Modules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(d) = m.get("Dir").and_then(Value::as_str) {
                let p = root.join(d);
                let p = std::fs::canonicalize(&p).unwrap_or(p);
                // fetched modules live in the data dir: check each one's files
                check_module(&p, &p, &mut f);
            }
        }
    }
    f
}

/// Judge a saved plan from terraform's `show -json`.
pub fn check_plan(v: &Value) -> Findings {
    let mut f = Findings::default();
    if let Some(pc) = v
        .pointer("/configuration/provider_config")
        .and_then(Value::as_object)
    {
        for p in pc.values() {
            if let Some(n) = p.get("full_name").and_then(Value::as_str) {
                f.providers.insert(n.to_ascii_lowercase());
            }
        }
    }
    for rc in v
        .get("resource_changes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = rc.get("provider_name").and_then(Value::as_str) {
            f.providers.insert(n.to_ascii_lowercase());
        }
        if rc.get("mode").and_then(Value::as_str) == Some("data")
            && rc.get("type").and_then(Value::as_str) == Some("external")
        {
            let a = rc.get("address").and_then(Value::as_str).unwrap_or("?");
            f.external.push(a.to_string());
        }
    }
    let mut stack: Vec<(String, &Value)> = v
        .pointer("/configuration/root_module")
        .map(|m| (String::new(), m))
        .into_iter()
        .collect();
    while let Some((prefix, m)) = stack.pop() {
        for r in m
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let addr = r.get("address").and_then(Value::as_str).unwrap_or("?");
            for p in r
                .get("provisioners")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("?");
                f.provisioners.push(format!("{prefix}{addr} ({kind})"));
            }
            if r.get("mode").and_then(Value::as_str) == Some("data")
                && r.get("type").and_then(Value::as_str) == Some("external")
            {
                f.external.push(format!("{prefix}{addr}"));
            }
        }
        if let Some(calls) = m.get("module_calls").and_then(Value::as_object) {
            for (name, call) in calls {
                if let Some(child) = call.get("module") {
                    stack.push((format!("{prefix}module.{name}."), child));
                }
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }

    #[test]
    fn provisioners_external_and_providers_are_found_however_written() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(d.path()).expect("canonical");
        write(
            &root,
            "main.tf",
            "resource \"terraform_data\" \"a\" {\n  # a comment\n  provisioner   \"local-exec\" {\n    command = \"id\"\n  }\n}\nmodule \"m\" {\n  source = \"./mods/m\"\n}\n",
        );
        write(
            &root,
            "mods/m/x.tf",
            "check \"c\" {\n  data \"external\" \"e\" {\n    program = [\"sh\"]\n  }\n}\nremoved {\n  from = null_resource.x\n  provisioner \"remote-exec\" {\n    when = destroy\n  }\n}\nterraform {\n  required_providers {\n    evil = { source = \"Evil/Thing\" }\n  }\n}\nresource \"evil_x\" \"y\" {}\n",
        );
        write(
            &root,
            "j.tf.json",
            r#"{"resource": {"null_resource": {"n": {"provisioner": {"file": {}}}}}}"#,
        );
        let f = check_config(&root);
        assert_eq!(f.provisioners.len(), 3, "{f:?}");
        assert_eq!(f.external, vec!["mods/m/x.tf: data.external.e"], "{f:?}");
        assert!(
            f.providers.contains("registry.terraform.io/evil/thing"),
            "{f:?}"
        );
        assert!(f.providers.contains(BUILTIN_PROVIDER), "{f:?}");
        assert!(
            f.providers.contains("registry.terraform.io/hashicorp/null"),
            "{f:?}"
        );
        let r = f.refusal(&TerraformPolicy::default()).expect("refused");
        assert!(
            r.contains("provisioners") && r.contains("external") && r.contains("evil/thing"),
            "{r}"
        );
    }

    #[test]
    fn a_clean_configuration_passes_and_unparsable_or_escaping_ones_do_not() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(d.path())
            .expect("canonical")
            .join("root");
        write(&root, "main.tf", "resource \"terraform_data\" \"a\" {}\n");
        assert!(check_config(&root)
            .refusal(&TerraformPolicy::default())
            .is_none());
        write(&root, "bad.tf", "resource \"x\" {\n");
        assert!(check_config(&root)
            .refusal(&TerraformPolicy::default())
            .is_some());
        std::fs::remove_file(root.join("bad.tf")).expect("rm");
        write(
            &root,
            "m.tf",
            "module \"m\" {\n  source = \"../elsewhere\"\n}\n",
        );
        std::fs::create_dir_all(root.parent().expect("parent").join("elsewhere")).expect("mkdir");
        let r = check_config(&root)
            .refusal(&TerraformPolicy::default())
            .expect("refused");
        assert!(r.contains("outside the root"), "{r}");
    }

    #[test]
    fn the_plan_json_is_judged() {
        let v = serde_json::json!({
            "configuration": {
                "provider_config": {"x": {"full_name": "registry.terraform.io/acme/x"}},
                "root_module": {"module_calls": {"m": {"module": {"resources": [
                    {"address": "terraform_data.a", "mode": "managed", "type": "terraform_data",
                     "provisioners": [{"type": "local-exec"}]}]}}}}
            }
        });
        let f = check_plan(&v);
        assert_eq!(
            f.provisioners,
            vec!["module.m.terraform_data.a (local-exec)"]
        );
        let r = f.refusal(&TerraformPolicy::default()).expect("refused");
        assert!(r.contains("acme/x"), "{r}");
    }
}
