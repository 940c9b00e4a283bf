//! One [`Runtime`] per (mode, context, namespace): a task's mode and scope are runtime settings
//! (they decide the tools offered and the system prompt), so the server builds a runtime for
//! each combination it is asked for, once, from the same agent, model and options.

use crate::agent::Agent;
use crate::model::ModelClient;
use crate::scope::Mode;
use crate::session::{Runtime, RuntimeError, RuntimeOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a session is confined to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TaskSpec {
    pub mode: Mode,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// Builds and caches runtimes by [`TaskSpec`].
pub struct Runtimes {
    agent: Agent,
    model: Arc<dyn ModelClient>,
    opts: RuntimeOptions,
    cache: Mutex<HashMap<TaskSpec, Arc<Runtime>>>,
}

impl Runtimes {
    /// From the loaded agent, the model and the options every runtime starts from (their mode
    /// and scope are the defaults of a session that names none).
    pub fn new(agent: Agent, model: Arc<dyn ModelClient>, opts: RuntimeOptions) -> Self {
        Self {
            agent,
            model,
            opts,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The agent's id.
    pub fn agent_id(&self) -> String {
        self.agent.def.id.clone()
    }

    /// The default spec: the options' mode and scope.
    pub fn default_spec(&self) -> TaskSpec {
        let scope = self.opts.guard.scope.clone().unwrap_or_default();
        TaskSpec {
            mode: self.opts.guard.mode,
            context: scope.context,
            namespace: scope.namespace,
        }
    }

    /// The runtime for `spec`, built on first use.
    pub fn get(&self, spec: &TaskSpec) -> Result<Arc<Runtime>, RuntimeError> {
        // built under the lock: a burst of first requests builds it once, not once each
        let mut cache = self.lock();
        if let Some(rt) = cache.get(spec) {
            return Ok(rt.clone());
        }
        let mut opts = self.opts.clone();
        opts.guard.mode = spec.mode;
        if spec.context.is_some() {
            opts.kube.context = spec.context.clone();
        }
        opts.guard.scope = crate::scope::task_scope(
            opts.kube.kubeconfig.as_deref(),
            spec.context.clone(),
            spec.namespace.clone(),
        );
        let (rt, _warnings) = Runtime::new(self.agent.clone(), self.model.clone(), opts)?;
        let rt = Arc::new(rt);
        cache.insert(spec.clone(), rt.clone());
        Ok(rt)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskSpec, Arc<Runtime>>> {
        match self.cache.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        }
    }
}
