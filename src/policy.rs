//! Environments and the policy that maps kube contexts to them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The seed agent's environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    Tier,
    Prod,
}

impl Environment {
    /// The default mapping when the policy does not name a context: a context whose name
    /// contains `prod` is prod, one containing `tier`, `stag` or `test` is tier, anything else dev.
    pub fn guess_from_context(context: &str) -> Self {
        let c = context.to_ascii_lowercase();
        if c.contains("prod") {
            Self::Prod
        } else if c.contains("tier") || c.contains("stag") || c.contains("test") {
            Self::Tier
        } else {
            Self::Dev
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dev => "dev",
            Self::Tier => "tier",
            Self::Prod => "prod",
        })
    }
}

use crate::diag::Diagnostic;
use crate::effect::EffectClass;
use std::collections::BTreeMap;
use std::path::Path;

/// What a rule does with a call it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Run it (still subject to the dry-run rule; destructive calls and prod changes still need approval).
    Allow,
    /// Run it only with a human approval.
    Approve,
    /// Never run it.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Approve => "approve",
            Self::Deny => "deny",
        })
    }
}

/// One value or several; `*` matches anything, `prefix*` and `*suffix` match by prefix/suffix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pattern {
    One(String),
    Many(Vec<String>),
}

impl Pattern {
    fn matches(&self, v: &str) -> bool {
        let one = |p: &str| {
            if p == "*" {
                true
            } else if let Some(s) = p.strip_prefix('*') {
                v.ends_with(s)
            } else if let Some(s) = p.strip_suffix('*') {
                v.starts_with(s)
            } else {
                p == v
            }
        };
        match self {
            Self::One(p) => one(p),
            Self::Many(ps) => ps.iter().any(|p| one(p)),
        }
    }
}

/// What a rule matches on. Absent fields match anything; a field present in the rule but unknown
/// for the call (e.g. `namespace` for a terraform call) does not match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub tool: Option<Pattern>,
    pub operation: Option<Pattern>,
    pub context: Option<Pattern>,
    pub namespace: Option<Pattern>,
    pub kind: Option<Pattern>,
    pub environment: Option<Pattern>,
    /// Effect classes, e.g. `[mutating, destructive]`.
    pub effect: Option<Vec<EffectClass>>,
}

/// The facts about a call that rules match on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallFacts {
    pub tool: String,
    pub operation: String,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub environment: Option<Environment>,
    pub effect: EffectClass,
}

impl Match {
    fn matches(&self, c: &CallFacts) -> bool {
        let opt = |p: &Option<Pattern>, v: Option<&str>| match (p, v) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(p), Some(v)) => p.matches(v),
        };
        opt(&self.tool, Some(&c.tool))
            && opt(&self.operation, Some(&c.operation))
            && opt(&self.context, c.context.as_deref())
            && opt(&self.namespace, c.namespace.as_deref())
            && opt(
                &self.environment,
                c.environment.map(|e| e.to_string()).as_deref(),
            )
            && match &self.kind {
                None => true,
                Some(p) => c.kinds.iter().any(|k| p.matches(k)),
            }
            && self.effect.as_ref().is_none_or(|es| es.contains(&c.effect))
    }
}

/// A rule: first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    #[serde(rename = "match", default)]
    pub when: Match,
    /// Told to the model when the rule refuses a call.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A call the policy must decide a certain way; checked when the policy loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub call: CallFacts,
    pub expect: Action,
}

/// What to do when the checks a change declares fail after it was applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// Roll the change back automatically (its undo call: dry-run first, then the real one).
    #[serde(default)]
    pub rollback: bool,
}

/// The terraform section: which providers a terraform configuration may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerraformPolicy {
    /// Provider source addresses (`registry.terraform.io/hashicorp/null`, short `hashicorp/null`,
    /// or every provider of a namespace: `hashicorp/*`). Absent: [`DEFAULT_PROVIDERS`]. Terraform's
    /// built-in provider (`terraform_data`) is always allowed.
    #[serde(default)]
    pub providers: Option<Vec<String>>,
}

/// The providers allowed when the policy names none: HashiCorp's own (from the Terraform or the
/// OpenTofu registry), except `hashicorp/external`, whose one data source runs a program at plan.
pub const DEFAULT_PROVIDERS: &[&str] = &[
    "registry.terraform.io/hashicorp/*",
    "registry.opentofu.org/hashicorp/*",
];

/// Providers never allowed, whatever the list says: they exist to run programs.
pub const REFUSED_PROVIDERS: &[&str] = &[
    "registry.terraform.io/hashicorp/external",
    "registry.opentofu.org/hashicorp/external",
];

/// Terraform itself (`terraform_data`, `terraform_remote_state`).
pub const BUILTIN_PROVIDER: &str = "terraform.io/builtin/terraform";

/// A provider source address in its full form `host/namespace/type` (lower case): `ns/type` is on
/// registry.terraform.io; `*` as the type stands for every provider of the namespace.
pub fn provider_address(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    let parts: Vec<&str> = s.split('/').collect();
    let (host, ns, ty) = match parts.as_slice() {
        [ns, ty] => ("registry.terraform.io", *ns, *ty),
        [h, ns, ty] => (*h, *ns, *ty),
        _ => {
            return Err(format!(
                "`{s}` is not a provider source address: write namespace/type (hashicorp/null) or host/namespace/type"
            ))
        }
    };
    let name = |x: &str| {
        !x.is_empty()
            && x.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c));
    if !host_ok || !name(ns) || !(name(ty) || ty == "*") {
        return Err(format!(
            "`{s}` is not a provider source address: write namespace/type (hashicorp/null), host/namespace/type, or namespace/* for a whole namespace"
        ));
    }
    Ok(format!("{host}/{ns}/{ty}"))
}

impl TerraformPolicy {
    /// Whether a provider (full address, as terraform writes it) may be used.
    pub fn allows(&self, provider: &str) -> bool {
        let p = provider.to_ascii_lowercase();
        if p == BUILTIN_PROVIDER {
            return true;
        }
        if REFUSED_PROVIDERS.contains(&p.as_str()) {
            return false;
        }
        let listed = |pat: &str| match pat.strip_suffix("/*") {
            Some(ns) => p
                .strip_prefix(ns)
                .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/')),
            None => pat == p,
        };
        match &self.providers {
            Some(list) => list
                .iter()
                .filter_map(|x| provider_address(x).ok())
                .any(|x| listed(&x)),
            None => DEFAULT_PROVIDERS.iter().any(|x| listed(x)),
        }
    }

    /// What the policy allows, for messages.
    pub fn describe(&self) -> String {
        match &self.providers {
            Some(l) if l.is_empty() => "none but terraform's built-in provider".into(),
            Some(l) => l.join(", "),
            None => format!("{} (the default)", DEFAULT_PROVIDERS.join(", ")),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    terraform: TerraformPolicy,
    #[serde(default)]
    environments: BTreeMap<Environment, Vec<String>>,
    #[serde(default)]
    verification: Verification,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    examples: Vec<Example>,
}

/// The agent's policy: `policy.yaml` in the agent directory, plus built-in rules that apply
/// after the file's own (so a file can override them explicitly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// kube context → environment.
    pub environments: BTreeMap<String, Environment>,
    pub rules: Vec<Rule>,
    /// The verification gate's behaviour on failure.
    pub verification: Verification,
    /// Which terraform providers are allowed.
    pub terraform: TerraformPolicy,
}

/// Rules every policy ends with.
pub fn builtin_rules() -> Vec<Rule> {
    vec![Rule {
        name: "builtin: kube-system is not for agents".into(),
        action: Action::Deny,
        when: Match {
            namespace: Some(Pattern::Many(vec!["kube-system".into(), "kube-public".into(), "kube-node-lease".into()])),
            effect: Some(vec![EffectClass::Mutating, EffectClass::Destructive]),
            ..Default::default()
        },
        reason: Some("changes in kube-system (and the other kube-* namespaces) are denied by policy; do not attempt them — report that the request needs a cluster administrator".into()),
    }]
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            environments: BTreeMap::new(),
            rules: builtin_rules(),
            verification: Verification::default(),
            terraform: TerraformPolicy::default(),
        }
    }
}

/// The file name of the policy in an agent directory.
pub const POLICY_FILE: &str = "policy.yaml";

impl Policy {
    /// Load `<dir>/policy.yaml` if it exists (else the default policy). Every example is checked:
    /// an example the rules decide differently is an error pointing at the example.
    pub fn load(dir: &Path) -> Result<Self, Diagnostic> {
        let path = dir.join(POLICY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Diagnostic::error(&path, 0, 0, format!("cannot read: {e}"))),
        };
        let (file, _warnings): (PolicyFile, _) = crate::document::yaml::parse(
            &path,
            &text,
            0,
            &[
                "environments",
                "rules",
                "examples",
                "verification",
                "terraform",
            ],
        )?;
        for p in file.terraform.providers.iter().flatten() {
            if let Err(e) = provider_address(p) {
                let (l, col) = crate::diag::find_key_line(&text, "providers").unwrap_or((1, 1));
                return Err(Diagnostic::error(
                    &path,
                    l,
                    col,
                    format!("terraform.providers: {e}"),
                ));
            }
        }
        let mut environments = BTreeMap::new();
        for (env, contexts) in file.environments {
            for c in contexts {
                if let Some(prev) = environments.insert(c.clone(), env) {
                    let (l, col) =
                        crate::diag::find_key_line(&text, "environments").unwrap_or((1, 1));
                    return Err(Diagnostic::error(
                        &path,
                        l,
                        col,
                        format!("context `{c}` is listed under both {prev} and {env}"),
                    ));
                }
            }
        }
        let mut rules = file.rules;
        rules.extend(builtin_rules());
        let policy = Self {
            environments,
            rules,
            verification: file.verification,
            terraform: file.terraform,
        };
        // examples are checked when the policy loads, as Codex does for its exec policy
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("- call:"))
            .map(|(i, _)| i + 1)
            .collect();
        for (i, ex) in file.examples.iter().enumerate() {
            let mut facts = ex.call.clone();
            if facts.environment.is_none() {
                facts.environment = facts.context.as_deref().map(|c| policy.environment(c));
            }
            let (got, rule) = policy.decide(&facts);
            if got != ex.expect {
                return Err(Diagnostic::error(
                    &path,
                    lines.get(i).copied().unwrap_or(1),
                    1,
                    format!(
                        "example {} expects `{}` but the policy decides `{got}` ({}); fix the rules or the example",
                        i + 1,
                        ex.expect,
                        rule.map_or("no rule matched: default allow".to_string(), |r| format!("rule `{}`", r.name))
                    ),
                ));
            }
        }
        Ok(policy)
    }

    /// The environment of a kube context: from the policy, else guessed from its name.
    pub fn environment(&self, context: &str) -> Environment {
        self.environments
            .get(context)
            .copied()
            .unwrap_or_else(|| Environment::guess_from_context(context))
    }

    /// The action for a call, and the rule that decided it (none: default allow).
    pub fn decide(&self, c: &CallFacts) -> (Action, Option<&Rule>) {
        match self.rules.iter().find(|r| r.when.matches(c)) {
            Some(r) => (r.action, Some(r)),
            None => (Action::Allow, None),
        }
    }

    /// Decide several facts of one call (one per object it touches): the strictest action
    /// wins (deny over approve over allow), with the rule that decided it.
    pub fn decide_all<'a>(&'a self, all: &[CallFacts]) -> (Action, Option<&'a Rule>) {
        let rank = |a: Action| match a {
            Action::Allow => 0,
            Action::Approve => 1,
            Action::Deny => 2,
        };
        let mut best = (Action::Allow, None);
        for c in all {
            let d = self.decide(c);
            if rank(d.0) > rank(best.0) {
                best = d;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ns: &str, effect: EffectClass) -> CallFacts {
        CallFacts {
            tool: "kubectl".into(),
            operation: "apply".into(),
            context: Some("dev".into()),
            namespace: Some(ns.into()),
            kinds: vec!["Deployment".into()],
            environment: Some(Environment::Dev),
            effect,
        }
    }

    #[test]
    fn kube_system_writes_are_denied_by_default_reads_are_not() {
        let p = Policy::default();
        assert_eq!(
            p.decide(&facts("kube-system", EffectClass::Mutating)).0,
            Action::Deny
        );
        assert_eq!(
            p.decide(&facts("kube-system", EffectClass::ReadOnly)).0,
            Action::Allow
        );
        assert_eq!(
            p.decide(&facts("shop", EffectClass::Destructive)).0,
            Action::Allow
        );
    }

    #[test]
    fn terraform_providers_are_allow_listed_strictly() {
        let d = TerraformPolicy::default();
        assert!(d.allows("registry.terraform.io/hashicorp/null"));
        assert!(d.allows(BUILTIN_PROVIDER));
        assert!(!d.allows("registry.terraform.io/hashicorp/external"));
        assert!(!d.allows("registry.terraform.io/evil/null"));
        assert!(!d.allows("registry.terraform.io/hashicorp/x/y"));
        let p = TerraformPolicy {
            providers: Some(vec!["hashicorp/null".into(), "example.com/acme/*".into()]),
        };
        assert!(p.allows("registry.terraform.io/hashicorp/null"));
        assert!(!p.allows("registry.terraform.io/hashicorp/aws"));
        assert!(p.allows("example.com/acme/thing"));
        assert!(!p.allows("example.com/acmex/thing"));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(POLICY_FILE),
            "terraform:\n  providers: [hashicorp/null, \"not an address\"]\n",
        )
        .expect("write");
        let e = Policy::load(dir.path()).expect_err("bad address");
        assert!(e.message.contains("not a provider source address"), "{e}");
        std::fs::write(
            dir.path().join(POLICY_FILE),
            "terraform:\n  provider: [hashicorp/null]\n",
        )
        .expect("write");
        assert!(Policy::load(dir.path()).is_err(), "unknown keys are errors");
        std::fs::write(
            dir.path().join(POLICY_FILE),
            "terraform:\n  providers: [hashicorp/null]\n",
        )
        .expect("write");
        let p = Policy::load(dir.path()).expect("loads");
        assert!(!p.terraform.allows("registry.terraform.io/hashicorp/aws"));
    }

    #[test]
    fn examples_are_checked_on_load_with_their_line() {
        let d = tempfile::tempdir().expect("tempdir");
        let policy = "environments:\n  prod: [prod-eu]\nrules:\n  - name: secrets need approval\n    action: approve\n    match: {kind: Secret, effect: [mutating]}\nexamples:\n  - call: {tool: kubectl, operation: apply, context: prod-eu, namespace: a, kinds: [Secret], effect: mutating}\n    expect: approve\n  - call: {tool: kubectl, operation: apply, context: dev, namespace: kube-system, kinds: [Pod], effect: mutating}\n    expect: allow\n";
        std::fs::write(d.path().join(POLICY_FILE), policy).expect("write");
        let e = Policy::load(d.path()).expect_err("second example is wrong");
        assert_eq!(e.line, 10);
        assert!(
            e.message
                .contains("example 2 expects `allow` but the policy decides `deny`"),
            "{e}"
        );
        std::fs::write(
            d.path().join(POLICY_FILE),
            policy.replace("expect: allow", "expect: deny"),
        )
        .expect("write");
        let p = Policy::load(d.path()).expect("loads");
        assert_eq!(p.environment("prod-eu"), Environment::Prod);
        assert_eq!(p.environment("kind-dev"), Environment::Dev);
    }
}
