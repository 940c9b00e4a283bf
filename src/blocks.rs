//! The building-block catalog: `blocks/<id>.md` in Druppie's block format (frontmatter `id`,
//! `name`, `type: block`, `description`, `capabilities`, `version`), extended with what bosun
//! needs to deploy and check a block: `deploy` (chart source and pinned version, namespace,
//! release, default values) and `health` (the workloads, services and ingresses that make it
//! ready, and the vault references of its credentials). Problems are [`Diagnostic`]s with
//! file:line:col, like the agent loader's.

use crate::diag::{Diagnostic, Diagnostics};
use crate::document::{frontmatter, yaml};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `version:` as a string or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Version {
    Text(String),
    Number(f64),
}

fn de_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Version>::deserialize(d)?.map(|v| match v {
        Version::Text(s) => s,
        Version::Number(n) => n.to_string(),
    }))
}

/// Where the chart comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    /// Helm repository URL (`https://…` or `oci://…`).
    pub repository: String,
    pub name: String,
    /// A pinned chart version.
    #[serde(deserialize_with = "de_version_req")]
    pub version: String,
}

fn de_version_req<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Version::deserialize(d)? {
        Version::Text(s) => s,
        Version::Number(n) => n.to_string(),
    })
}

/// How the block is deployed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub chart: Chart,
    /// Default namespace.
    pub namespace: String,
    /// Default Helm release name (default: the block id).
    #[serde(default)]
    pub release: Option<String>,
    /// Default chart values; `{environment}`, `{release}` and `{namespace}` are substituted.
    /// Secrets only as `vault:` references.
    #[serde(default)]
    pub values: Option<Value>,
}

/// A workload that must be available.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: String,
    /// Name; `{release}` is substituted.
    pub name: String,
}

/// A Service that must have ready endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    pub name: String,
    /// What the port is for, e.g. `S3 API`.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// A credential of the block, as a vault reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub purpose: String,
    /// `vault:<mount>/<path>#<key>`; `{environment}` is substituted.
    pub reference: String,
}

/// What makes the block "ready".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default)]
    pub workloads: Vec<WorkloadRef>,
    #[serde(default)]
    pub services: Vec<ServiceRef>,
    /// Ingress names; `{release}` is substituted.
    #[serde(default)]
    pub ingresses: Vec<String>,
    #[serde(default)]
    pub credentials: Vec<Credential>,
}

/// The frontmatter of a block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockDef {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub description: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, deserialize_with = "de_version")]
    pub version: Option<String>,
    pub deploy: Deploy,
    pub health: Health,
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
}

const BLOCK_KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "description",
    "capabilities",
    "version",
    "deploy",
    "health",
    "metadata",
];

/// A loaded block.
#[derive(Debug, Clone)]
pub struct Block {
    pub def: BlockDef,
    /// The markdown body: what the block is, how it is used.
    pub body: String,
    pub path: PathBuf,
}

/// Substitute `{environment}`, `{release}`, `{namespace}`.
pub fn expand(s: &str, environment: &str, release: &str, namespace: &str) -> String {
    s.replace("{environment}", environment)
        .replace("{release}", release)
        .replace("{namespace}", namespace)
}

fn expand_value(v: &Value, env: &str, release: &str, ns: &str) -> Value {
    match v {
        Value::String(s) => Value::String(expand(s, env, release, ns)),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| expand_value(x, env, release, ns))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), expand_value(x, env, release, ns)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Block {
    pub fn id(&self) -> &str {
        &self.def.id
    }

    /// The default release name.
    pub fn release(&self) -> String {
        self.def
            .deploy
            .release
            .clone()
            .unwrap_or_else(|| self.def.id.clone())
    }

    /// The chart values for an environment, release and namespace.
    pub fn values(&self, environment: &str, release: &str, namespace: &str) -> Option<Value> {
        self.def
            .deploy
            .values
            .as_ref()
            .map(|v| expand_value(v, environment, release, namespace))
    }

    /// The credential references for an environment.
    pub fn credentials(
        &self,
        environment: &str,
        release: &str,
        namespace: &str,
    ) -> Vec<(String, String)> {
        self.def
            .health
            .credentials
            .iter()
            .map(|c| {
                (
                    c.purpose.clone(),
                    expand(&c.reference, environment, release, namespace),
                )
            })
            .collect()
    }
}

/// Paths of values whose key looks sensitive and whose value is a literal, not a vault reference.
pub fn literal_secret_paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
        const SENSITIVE: &[&str] = &[
            "password",
            "secret",
            "token",
            "apikey",
            "privatekey",
            "accesskey",
            "secretkey",
        ];
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let lk = k.to_ascii_lowercase().replace(['-', '_'], "");
                    // a reference to an existing Secret by name is fine
                    let names_a_secret = lk.starts_with("existing")
                        || lk.ends_with("secretname")
                        || lk.ends_with("secretref");
                    if let Some(s) = x.as_str() {
                        if !names_a_secret
                            && SENSITIVE.iter().any(|w| lk.contains(w))
                            && !s.trim().is_empty()
                            && crate::secrets::VaultRef::parse(&expand(s.trim(), "dev", "x", "x"))
                                .is_none()
                        {
                            out.push(p.clone());
                        }
                    }
                    walk(x, &p, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

fn pinned(version: &str) -> bool {
    let v = version.trim();
    !v.is_empty()
        && v != "latest"
        && v != "*"
        && !v.contains(['*', '^', '~', '>', '<', ' ', 'x'])
        && v.chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == 'v')
}

/// Load one block file.
pub fn load_block(path: &Path, warnings: &mut Vec<Diagnostic>) -> Result<Block, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::error(
            path,
            0,
            0,
            format!("cannot read block: {e}"),
        )]
    })?;
    let doc = frontmatter::split(path, &text).map_err(|d| vec![d])?;
    let (def, w): (BlockDef, _) =
        yaml::parse(path, doc.yaml, doc.yaml_line_offset, BLOCK_KEYS).map_err(|d| vec![d])?;
    warnings.extend(w);
    // the position of a nested key, e.g. `deploy.chart.version`: each part is searched after
    // the line of its parent; a key written inline (`chart: {version: …}`) gets its parent's line
    let pos = |key: &str| {
        let lines: Vec<&str> = doc.yaml.lines().collect();
        let mut start = 0usize;
        let mut found = (1usize, 1usize);
        for part in key.split('.') {
            let hit = lines.iter().enumerate().skip(start).find_map(|(i, l)| {
                let t = l.trim_start().trim_start_matches("- ");
                t.strip_prefix(part)
                    .is_some_and(|r| r.starts_with(':'))
                    .then(|| (i, l.len() - l.trim_start().len() + 1))
            });
            match hit {
                Some((i, c)) => {
                    found = (i + 1, c);
                    start = i + 1;
                }
                None => break,
            }
        }
        (found.0 + doc.yaml_line_offset, found.1)
    };
    let mut errors = Vec::new();
    let mut err = |key: &str, msg: String| {
        let (l, c) = pos(key);
        errors.push(Diagnostic::error(path, l, c, msg));
    };
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if def.id != stem {
        err(
            "id",
            format!("id `{}` must equal the file name `{stem}.md`", def.id),
        );
    }
    if !def
        .id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || def.id.is_empty()
    {
        err(
            "id",
            format!(
                "id `{}` may only contain letters, digits, `-` and `_`",
                def.id
            ),
        );
    }
    if def.kind != "block" {
        err(
            "type",
            format!("type is `{}`; a building block has `type: block`", def.kind),
        );
    }
    for (key, v) in [("name", &def.name), ("description", &def.description)] {
        if v.trim().is_empty() {
            err(key, format!("`{key}` must not be empty"));
        }
    }
    let chart = &def.deploy.chart;
    if !pinned(&chart.version) {
        err("deploy.chart.version",
            format!(
                "deploy.chart.version `{}` is not a pinned version; write an exact chart version such as 5.4.0",
                chart.version
            ),
        );
    }
    if !(chart.repository.starts_with("https://") || chart.repository.starts_with("oci://")) {
        err(
            "deploy.chart.repository",
            format!(
                "deploy.chart.repository `{}` must be an https:// or oci:// URL",
                chart.repository
            ),
        );
    }
    if let Some(values) = &def.deploy.values {
        if !values.is_object() {
            err("deploy.values", "deploy.values must be a mapping".into());
        }
        let lit = literal_secret_paths(values);
        if !lit.is_empty() {
            err("deploy.values",
                format!(
                    "deploy.values {} hold literal secrets; use vault references `vault:<mount>/<path>#<key>` or an existing Secret",
                    lit.join(", ")
                ),
            );
        }
    }
    if def.health.workloads.is_empty() {
        err(
            "health.workloads",
            "health.workloads must name at least one Deployment, StatefulSet or DaemonSet".into(),
        );
    }
    for w in &def.health.workloads {
        if !matches!(w.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
            err(
                "health.workloads",
                format!(
                    "health.workloads kind `{}` must be Deployment, StatefulSet or DaemonSet",
                    w.kind
                ),
            );
        }
    }
    for c in &def.health.credentials {
        let r = expand(&c.reference, "dev", "x", "x");
        if crate::secrets::VaultRef::parse(&r).is_none() {
            err("health.credentials",
                format!(
                    "credential `{}` reference `{}` is not a vault reference `vault:<mount>/<path>#<key>`",
                    c.purpose, c.reference
                ),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Block {
        def,
        body: doc.body.trim().to_string(),
        path: path.to_path_buf(),
    })
}

/// Load every `*.md` in `dir`, sorted by id. A missing directory is an empty catalog with a
/// warning.
pub fn load_catalog(dir: &Path) -> Result<(Vec<Block>, Vec<Diagnostic>), Diagnostics> {
    let mut warnings = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) => {
            warnings.push(Diagnostic::warning(
                dir,
                0,
                0,
                "no blocks/ directory: the building-block catalog is empty",
            ));
            return Ok((Vec::new(), warnings));
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    paths.sort();
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_block(&p, &mut warnings) {
            Ok(b) => blocks.push(b),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        errors.extend(warnings);
        return Err(Diagnostics(errors));
    }
    blocks.sort_by(|a, b| a.def.id.cmp(&b.def.id));
    Ok((blocks, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---\nid: demo\nname: Demo\ntype: block\ndescription: A demo.\ncapabilities: [x]\nversion: 1.0.0\ndeploy:\n  chart: {repository: https://charts.example.com, name: demo, version: 1.2.3}\n  namespace: demo\n  values:\n    auth:\n      existingSecret: demo-root\n      rootPassword: vault:kv/platform/{environment}/demo#root\nhealth:\n  workloads: [{kind: Deployment, name: \"{release}\"}]\n  credentials: [{purpose: root, reference: \"vault:kv/platform/{environment}/demo#root\"}]\n---\n# Demo\n";

    fn load(text: &str, name: &str) -> Result<Block, Vec<Diagnostic>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        load_block(&p, &mut Vec::new())
    }

    #[test]
    fn a_good_block_loads_and_expands_per_environment() {
        let b = load(GOOD, "demo.md").expect("loads");
        assert_eq!(b.release(), "demo");
        assert_eq!(
            b.credentials("prod", "demo", "demo"),
            vec![(
                "root".to_string(),
                "vault:kv/platform/prod/demo#root".to_string()
            )]
        );
        let v = b.values("tier", "demo", "demo").expect("values");
        assert_eq!(
            v["auth"]["rootPassword"],
            "vault:kv/platform/tier/demo#root"
        );
    }

    #[test]
    fn problems_have_positions() {
        let e = load(
            &GOOD.replace("version: 1.2.3", "version: latest"),
            "demo.md",
        )
        .expect_err("unpinned");
        assert!(e[0].message.contains("not a pinned version"), "{e:?}");
        assert_eq!(e[0].line, 9, "{e:?}");
        let e = load(GOOD, "other.md").expect_err("id mismatch");
        assert!(e[0].message.contains("must equal the file name"), "{e:?}");
        assert_eq!((e[0].line, e[0].col), (2, 1));
        let e = load(
            &GOOD.replace("vault:kv/platform/{environment}/demo#root\n", "hunter2\n"),
            "demo.md",
        )
        .expect_err("literal");
        assert!(
            e.iter()
                .any(|d| d.message.contains("auth.rootPassword hold literal secrets")),
            "{e:?}"
        );
        let e = load(
            &GOOD.replace("  namespace: demo\n", "  namespace: demo\n  nmespace: x\n"),
            "demo.md",
        )
        .expect_err("unknown nested key");
        assert!(e[0].message.contains("nmespace"), "{e:?}");
        assert_eq!(e[0].line, 11, "{e:?}");
    }
}
