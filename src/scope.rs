//! What a task may touch: its [`Mode`] (apply, suggest or read-only) and its [`TaskScope`] (the kube
//! context and namespace writes are confined to). The guard enforces both (`check_mode`,
//! `check_scope`); this module also decides what the model is offered and told.

use crate::effect::EffectClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How far a task may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Reads, dry-runs and (after a matching dry-run) changes: the default.
    #[default]
    Apply,
    /// Only `read_only` operations are offered and admitted; nothing is dry-run or changed.
    ReadOnly,
    /// Reads and dry-runs run; every change is offered but never applied: the guard judges it
    /// as it would in apply mode (scope, state, policy, a matching dry-run) and then refuses it
    /// as [`crate::guard::RefusalKind::Proposed`] — the session records it in a change proposal
    /// that `bosun apply` replays later.
    Suggest,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::ReadOnly => "read-only",
            Self::Suggest => "suggest",
        }
    }

    /// The strictest effect class this mode lets run.
    pub fn max_effect(self) -> EffectClass {
        match self {
            Self::Apply => EffectClass::Destructive,
            Self::ReadOnly => EffectClass::ReadOnly,
            Self::Suggest => EffectClass::DryRun,
        }
    }

    /// Whether an operation of class `effect` may run in this mode.
    pub fn allows(self, effect: EffectClass) -> bool {
        effect <= self.max_effect()
    }

    /// Whether an operation of class `effect` is offered to the model in this mode: in suggest
    /// mode changes are offered too (calling one is how the model proposes it), though none runs.
    pub fn offers(self, effect: EffectClass) -> bool {
        match self {
            Self::Suggest => true,
            m => m.allows(effect),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a task may write. Reads are not confined. `None` fields do not confine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskScope {
    /// The kube context every change must act in (the CLI fills in the kubeconfig's current
    /// context when only a namespace is given, so a call cannot escape to another cluster).
    pub context: Option<String>,
    /// The namespace every object a change touches must be in (cluster-scoped objects are
    /// outside every namespace).
    pub namespace: Option<String>,
}

impl TaskScope {
    /// Whether the scope confines anything.
    pub fn is_empty(&self) -> bool {
        self.context.is_none() && self.namespace.is_none()
    }
}

impl fmt::Display for TaskScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.namespace, &self.context) {
            (Some(n), Some(c)) => write!(f, "namespace `{n}` in context `{c}`"),
            (Some(n), None) => write!(f, "namespace `{n}`"),
            (None, Some(c)) => write!(f, "context `{c}`"),
            (None, None) => f.write_str("everything"),
        }
    }
}

/// The scope of a task confined to `namespace` and/or `context`; `None` when neither is given.
/// With only a namespace, the context is the kubeconfig's current one (`kubeconfig`, else
/// `$KUBECONFIG` / `~/.kube/config`), so writes cannot escape to another cluster by naming one.
pub fn task_scope(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
    namespace: Option<String>,
) -> Option<TaskScope> {
    if namespace.is_none() && context.is_none() {
        return None;
    }
    let context = context.or_else(|| {
        let kc = match kubeconfig {
            Some(p) => kube::config::Kubeconfig::read_from(p),
            None => kube::config::Kubeconfig::read(),
        };
        // unreadable: the preflight says so before the model is asked anything
        kc.ok()?.current_context.filter(|c| !c.is_empty())
    });
    Some(TaskScope { context, namespace })
}

/// Facts for the system prompt's environment: the mode (when not the default) and the scope.
pub fn prompt_facts(mode: Mode, scope: Option<&TaskScope>) -> BTreeMap<String, String> {
    let mut facts = BTreeMap::new();
    if mode == Mode::ReadOnly {
        facts.insert(
            "mode".into(),
            "read-only: only read operations are offered and allowed; do not dry-run or change anything — answer from what you read, and describe any change you would recommend instead of making it".into(),
        );
    }
    if mode == Mode::Suggest {
        facts.insert(
            "mode".into(),
            "suggest: nothing is applied in this task. Work exactly as you would to make the change — read, dry-run, move to deployment and call the change itself with the same arguments — and the guard records each change whose dry-run passed as a proposal instead of applying it (it answers `recorded as a proposal`). Do not retry a proposed change; once every change is proposed, move on to verification and completion and summarise the proposal for a human, who applies it with `bosun apply`".into(),
        );
    }
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        let mut text =
            format!("this task is scoped to {s}: every dry-run and change must act only there");
        if let Some(n) = &s.namespace {
            text.push_str(&format!(
                " (pass namespace `{n}` explicitly; cluster-scoped objects are out of scope)"
            ));
        }
        text.push_str(
            ". The guard refuses writes outside it; reads elsewhere are allowed. Only a human can re-scope the task.",
        );
        facts.insert("scope".into(), text);
        if let Some(n) = &s.namespace {
            facts.insert("namespace".into(), n.clone());
        }
        if let Some(c) = &s.context {
            facts.insert("context".into(), c.clone());
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_allows_only_reads() {
        assert!(Mode::ReadOnly.allows(EffectClass::ReadOnly));
        assert!(!Mode::ReadOnly.allows(EffectClass::DryRun));
        assert!(Mode::Apply.allows(EffectClass::Destructive));
        assert!(Mode::Suggest.allows(EffectClass::DryRun));
        assert!(!Mode::Suggest.allows(EffectClass::Mutating));
        assert!(Mode::Suggest.offers(EffectClass::Destructive));
        assert!(!Mode::ReadOnly.offers(EffectClass::DryRun));
    }

    #[test]
    fn facts_name_the_scope() {
        let s = TaskScope {
            context: Some("dev".into()),
            namespace: Some("shop".into()),
        };
        let f = prompt_facts(Mode::ReadOnly, Some(&s));
        assert!(f["scope"].contains("namespace `shop` in context `dev`"));
        assert!(f["mode"].starts_with("read-only"));
        assert!(prompt_facts(Mode::Apply, None).is_empty());
    }
}
