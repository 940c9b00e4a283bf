//! The `terraform` tool: the real terraform (or OpenTofu) CLI with explicit argv, a timeout
//! (SIGINT first, so terraform releases its state lock), a CLI config file of bosun's own, and
//! HOME / TF_DATA_DIR / planfiles in the workspace.
//!
//! Nothing reaches infrastructure except a saved plan:
//! - `plan` (`destroy_plan`) runs `init` and `plan -out=<planfile>` into the workspace, summarises
//!   the plan from `show -json` (adds / changes / destroys / replaces by address; sensitive
//!   values registered with the redactor, never printed) and remembers the planfile's sha256 and
//!   the hash of the configuration it was made from;
//! - `apply` (`destroy`) applies exactly that planfile. Its change identity (target
//!   `dir=<dir>`, content = configuration hash + planfile name + plan kind) equals the plan's, so
//!   the guard refuses it when the configuration was edited after the plan; bosun also refuses
//!   in code when the planfile is missing or its bytes changed, and terraform itself refuses a
//!   stale plan. `apply` of a plan that deletes or replaces anything is classified `destroy`
//!   (destructive: it needs approval).
//!
//! What terraform may run is judged before it runs ([`check`]): a configuration with
//! provisioners, the `external` data source or a provider the policy does not allow
//! (`terraform: {providers: […]}` in policy.yaml) is refused before init/validate/plan, again
//! after init (lock file, fetched modules), on the saved plan's `show -json`, and once more just
//! before apply. terraform itself runs in bosun's bwrap sandbox ([`exec`]): it sees the root
//! directory, its working files in the workspace, the plugin cache and mirror — not bosun's
//! process, environment or state.
//!
//! Variables (`vars`, or a `var_file` in the root) may hold `vault:` references; they are resolved
//! inside the runtime into a var file (mode 0600 in the workspace, deleted after the plan), never
//! onto a command line. In an HCL `.tfvars` a reference must be a whole quoted string; the value
//! is written escaped.

mod check;

use super::exec::{self, Cmd};
use super::{Change, Invocation, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub const NAME: &str = "terraform";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("fmt_check", EffectClass::ReadOnly),
    ("validate", EffectClass::ReadOnly),
    ("output", EffectClass::ReadOnly),
    ("show", EffectClass::ReadOnly),
    ("plan", EffectClass::DryRun),
    ("destroy_plan", EffectClass::DryRun),
    ("apply", EffectClass::Mutating),
    ("destroy", EffectClass::Destructive),
];

const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    FmtCheck,
    Validate,
    Output,
    Show,
    Plan,
    DestroyPlan,
    Apply,
    Destroy,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::FmtCheck => "fmt_check",
            Self::Validate => "validate",
            Self::Output => "output",
            Self::Show => "show",
            Self::Plan => "plan",
            Self::DestroyPlan => "destroy_plan",
            Self::Apply => "apply",
            Self::Destroy => "destroy",
        }
    }

    /// The kind of plan this operation makes or applies.
    fn kind(self) -> Option<PlanKind> {
        match self {
            Self::Plan | Self::Apply => Some(PlanKind::Plan),
            Self::DestroyPlan | Self::Destroy => Some(PlanKind::Destroy),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlanKind {
    Plan,
    Destroy,
}

impl PlanKind {
    fn as_str(self) -> &'static str {
        match self {
            PlanKind::Plan => "plan",
            PlanKind::Destroy => "destroy",
        }
    }
}

// Arguments of the terraform tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    /// Root module directory.
    dir: String,
    /// Default bosun.tfplan (destroy.tfplan for destroy plans); show: null = the state.
    planfile: Option<String>,
    /// plan/destroy_plan: YAML map.
    vars: Option<String>,
    /// plan/destroy_plan: a .tfvars file in dir.
    var_file: Option<String>,
    timeout_seconds: Option<u64>,
}

/// What `plan` left behind for `apply`.
#[derive(Debug, Clone)]
struct PlanRecord {
    path: PathBuf,
    sha256: String,
    config_hash: String,
    inputs_hash: String,
    kind: PlanKind,
    /// Resources the plan deletes or replaces.
    deletes: usize,
    /// Variables came from vault: the summary names changed attributes without values.
    secret_inputs: bool,
}

/// Settings of the terraform tool.
#[derive(Debug, Clone, Default)]
pub struct TerraformSettings {
    /// The terraform (or tofu) binary.
    pub binary: Option<PathBuf>,
    /// A provider filesystem mirror (`provider_installation { filesystem_mirror }`) for offline use.
    pub plugin_mirror: Option<PathBuf>,
}

impl TerraformSettings {
    /// `BOSUN_TERRAFORM` (a name or path; default `terraform`) and `BOSUN_TF_PLUGIN_MIRROR`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let binary = match var("BOSUN_TERRAFORM") {
            Some(b) if b.contains('/') => Some(PathBuf::from(b)),
            Some(b) => crate::sandbox::find_binary(&b),
            None => crate::sandbox::find_binary("terraform"),
        };
        Self {
            binary,
            plugin_mirror: var("BOSUN_TF_PLUGIN_MIRROR").map(PathBuf::from),
        }
    }
}

/// Variables a terraform provider may need from bosun's environment (cloud credentials the
/// user set for terraform). Never `VAULT_*`: bosun's vault token is not terraform's.
const FORWARDED_PREFIXES: &[&str] = &["TF_VAR_", "AWS_", "ARM_", "AZURE_", "GOOGLE_", "CLOUDSDK_"];

/// The terraform tool.
pub struct Terraform {
    settings: TerraformSettings,
    /// Which providers a configuration may use (policy.yaml `terraform:`).
    providers: crate::policy::TerraformPolicy,
    plans: Mutex<HashMap<(PathBuf, String), PlanRecord>>,
}

struct Call {
    a: Args,
    op: Operation,
    dir: PathBuf,
    planfile: String,
    config_hash: String,
    /// Hash of the variables the plan was (or is to be) made with.
    inputs_hash: String,
}

fn valid_planfile(n: &str) -> bool {
    n.ends_with(".tfplan")
        && n.len() <= 100
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Hash the configuration in `dir`: every regular file (recursively), except terraform's own
/// working files (`.terraform/`, state, lock file, plan files) and hidden directories. The
/// root is read through [`confined::Root`](super::confined::Root) (cap-std): a symlink anywhere
/// in it is refused, so nothing outside the root is ever read as configuration.
pub fn config_hash(dir: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let root = super::confined::Root::open(dir).map_err(|e| e.to_string())?;
    let entries = root
        .list(Path::new(""), 100_000)
        .map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    let mut total = 0u64;
    for e in entries {
        let rel = &e.path;
        let hidden_dir = rel.parent().is_some_and(|p| {
            p.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        });
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let skip = hidden_dir
            || name.contains(".tfstate")
            || name == ".terraform.lock.hcl"
            || name.ends_with(".tfplan")
            || name.starts_with(".terraform");
        if skip {
            continue;
        }
        if e.kind == super::confined::EntryKind::Symlink {
            return Err(format!(
                "{} is a symbolic link; a terraform root may not contain links (they could reach files outside it) — copy the file into the root instead",
                dir.join(rel).display()
            ));
        }
        let b = root
            .read(rel, MAX_CONFIG_BYTES.saturating_sub(total))
            .map_err(|_| {
                format!(
                    "{} holds more than {} MiB of files",
                    dir.display(),
                    MAX_CONFIG_BYTES / 1024 / 1024
                )
            })?;
        total += b.len() as u64;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((b.len() as u64).to_le_bytes());
        h.update(&b);
    }
    Ok(format!("{:x}", h.finalize()))
}

impl Terraform {
    pub fn new(settings: TerraformSettings) -> Self {
        Self {
            settings,
            providers: Default::default(),
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// This tool with the provider allow-list of the agent's policy (`terraform:` in
    /// policy.yaml); without it, [`crate::policy::DEFAULT_PROVIDERS`].
    pub fn with_policy(mut self, policy: &crate::policy::TerraformPolicy) -> Self {
        self.providers = policy.clone();
        self
    }

    pub fn from_env() -> Self {
        Self::new(TerraformSettings::from_env())
    }

    fn plans(&self) -> std::sync::MutexGuard<'_, HashMap<(PathBuf, String), PlanRecord>> {
        match self.plans.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn parse(&self, args: &Value) -> Result<Call, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let op = a.operation;
        let bad = |m: String| Err(ToolError::InvalidArguments(m));
        let dir = std::fs::canonicalize(&a.dir)
            .map_err(|e| ToolError::InvalidArguments(format!("dir `{}`: {e}", a.dir)))?;
        if !dir.is_dir() {
            return bad(format!("dir `{}` is not a directory", a.dir));
        }
        let default = if op.kind() == Some(PlanKind::Destroy) {
            "destroy.tfplan"
        } else {
            "bosun.tfplan"
        };
        let planfile = a.planfile.clone().unwrap_or_else(|| default.into());
        if !valid_planfile(&planfile) {
            return bad(format!(
                "planfile `{planfile}` must be a file name ending in .tfplan (letters, digits, `-_.`), not a path"
            ));
        }
        if (a.vars.is_some() || a.var_file.is_some())
            && !matches!(op, Operation::Plan | Operation::DestroyPlan)
        {
            return bad("vars and var_file are taken only by plan and destroy_plan: a saved plan already holds its variables".into());
        }
        if let Some(vf) = &a.var_file {
            let p = Path::new(vf);
            if p.is_absolute()
                || p.components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return bad(format!("var_file `{vf}` must be a path inside dir"));
            }
        }
        let config_hash = if op.kind().is_some() {
            config_hash(&dir).map_err(ToolError::InvalidArguments)?
        } else {
            String::new()
        };
        // nothing that runs code at plan (or apply) gets to terraform: checked from the files
        // before init, validate or plan, and before an apply too (its plan was made from them)
        if matches!(op, Operation::Validate) || op.kind().is_some() {
            if let Some(why) = check::check_config(&dir).refusal(&self.providers) {
                return bad(why);
            }
        }
        // the plan's other inputs: for plan, the variables given now; for apply, those of the
        // saved plan (so a re-plan with other variables under the same name is a different
        // change, even from another session of this runtime)
        let inputs_hash = match op {
            Operation::Plan | Operation::DestroyPlan => {
                let vars: Value = match a.vars.as_deref().map(str::trim) {
                    None | Some("") => Value::Null,
                    Some(t) => serde_saphyr::from_str(t).map_err(|e| {
                        ToolError::InvalidArguments(format!("`vars` is not valid YAML: {e}"))
                    })?,
                };
                super::canonical_hash(&json!({"vars": vars, "var_file": a.var_file}))
            }
            Operation::Apply | Operation::Destroy => self
                .plans()
                .get(&(dir.clone(), planfile.clone()))
                .map(|r| r.inputs_hash.clone())
                .unwrap_or_else(|| "no saved plan".into()),
            _ => String::new(),
        };
        Ok(Call {
            a,
            op,
            dir,
            planfile,
            config_hash,
            inputs_hash,
        })
    }

    fn change(c: &Call) -> Option<Change> {
        let kind = c.op.kind()?;
        let hint = match kind {
            PlanKind::Plan => format!(
                "call terraform plan for this dir with planfile {}",
                c.planfile
            ),
            PlanKind::Destroy => format!(
                "call terraform destroy_plan for this dir with planfile {}",
                c.planfile
            ),
        };
        Some(Change {
            target: format!("dir={}", c.dir.display()),
            content_hash: super::canonical_hash(&json!({
                "kind": kind.as_str(),
                "config": c.config_hash,
                "inputs": c.inputs_hash,
                "planfile": c.planfile,
            })),
            dry_run_hint: hint,
        })
    }

    fn binary(&self) -> Result<&Path, ToolError> {
        self.settings.binary.as_deref().ok_or_else(|| {
            ToolError::Failed("terraform is not installed: put the terraform binary on PATH (or set BOSUN_TERRAFORM)".into())
        })
    }

    /// Where bosun keeps this dir's terraform files in the workspace.
    fn work(ctx: &ToolCtx, dir: &Path) -> PathBuf {
        let id = super::sha256_hex(dir.as_os_str().as_encoded_bytes());
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "root".into());
        ctx.workspace
            .join("terraform")
            .join(format!("{name}-{}", &id[..12]))
    }

    /// The CLI config: the user's `TF_CLI_CONFIG_FILE` when it exists, else bosun's own.
    fn cli_config(&self, ctx: &ToolCtx) -> Result<PathBuf, ToolError> {
        if let Some(p) = std::env::var_os("TF_CLI_CONFIG_FILE").map(PathBuf::from) {
            if p.is_file() {
                return Ok(p);
            }
        }
        let base = ctx.workspace.join("terraform");
        std::fs::create_dir_all(&base)
            .map_err(|e| ToolError::Failed(format!("creating {}: {e}", base.display())))?;
        let cache = crate::sandbox::cache_dir().join("terraform/plugin-cache");
        let mut text = String::new();
        if std::fs::create_dir_all(&cache).is_ok() {
            text.push_str(&format!(
                "plugin_cache_dir = {}\n",
                hcl_string(&cache.display().to_string())
            ));
        }
        if let Some(m) = &self.settings.plugin_mirror {
            // providers in the mirror come only from it; every other one from its registry
            let provided: Vec<String> = mirror_providers(m).iter().map(|p| hcl_string(p)).collect();
            text.push_str(&format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = {}\n    include = [{}]\n  }}\n  direct {{\n    exclude = [{}]\n  }}\n}}\n",
                hcl_string(&m.display().to_string()),
                provided.join(", "),
                provided.join(", ")
            ));
        }
        let p = base.join("terraformrc");
        std::fs::write(&p, text)
            .map_err(|e| ToolError::Failed(format!("writing {}: {e}", p.display())))?;
        Ok(p)
    }

    fn cmd(&self, ctx: &ToolCtx, dir: &Path, timeout: Duration) -> Result<Cmd, ToolError> {
        let bin = self.binary()?;
        let work = Self::work(ctx, dir);
        let mut cmd = Cmd::new(bin)
            .cwd(dir)
            .timeout(timeout)
            .env("TF_CLI_CONFIG_FILE", self.cli_config(ctx)?)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1");
        // an existing .terraform (e.g. a backend initialised with -backend-config) is used as
        // is; otherwise terraform's working files stay out of the user's directory
        if !dir.join(".terraform").exists() {
            cmd = cmd.env("TF_DATA_DIR", work.join("data"));
        }
        // the sandbox: the root (cwd) and bosun's working files for it read-write, the plugin
        // cache read-write, the CLI config and the mirror read-only
        std::fs::create_dir_all(&work)
            .map_err(|e| ToolError::Failed(format!("creating {}: {e}", work.display())))?;
        cmd = cmd.rw(&work).ro(self.cli_config(ctx)?);
        let cache = crate::sandbox::cache_dir().join("terraform/plugin-cache");
        if cache.is_dir() {
            cmd = cmd.rw(cache);
        }
        if let Some(m) = &self.settings.plugin_mirror {
            cmd = cmd.ro(m);
        }
        for (k, v) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if FORWARDED_PREFIXES.iter().any(|p| name.starts_with(p)) {
                cmd = cmd.env(&k, v);
            }
        }
        if let Some(kc) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            // for the kubernetes and helm providers
            for f in exec::kubeconfig_files(&kc) {
                cmd = cmd.credential(f);
            }
            cmd = cmd.env("KUBECONFIG", kc);
        }
        cmd.grace = Duration::from_secs(30);
        Ok(exec::private_home(cmd, &work.join("home")))
    }

    async fn tf(
        &self,
        ctx: &ToolCtx,
        dir: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<exec::Output, ToolError> {
        let cmd = self.cmd(ctx, dir, timeout)?.args(args);
        tracing::debug!(command = %cmd.display(), "running terraform");
        exec::run(&cmd).await
    }

    fn timeout(c: &Call, default: u64) -> Duration {
        Duration::from_secs(c.a.timeout_seconds.unwrap_or(default).clamp(10, 7200))
    }

    /// Where terraform keeps its working files for `dir` (see [`Terraform::cmd`]).
    fn data_dir(ctx: &ToolCtx, dir: &Path) -> PathBuf {
        if dir.join(".terraform").exists() {
            dir.join(".terraform")
        } else {
            Self::work(ctx, dir).join("data")
        }
    }

    /// `terraform init`, then the check of what it resolved and fetched (providers in the lock
    /// file, remote modules): before any command that starts providers or evaluates data sources.
    async fn init(&self, ctx: &ToolCtx, c: &Call, backend: bool) -> Result<(), ToolError> {
        let data_dir = Self::data_dir(ctx, &c.dir);
        let mut args = vec!["init", "-input=false", "-no-color"];
        if !backend {
            args.push("-backend=false");
        }
        let out = self.tf(ctx, &c.dir, &args, Self::timeout(c, 600)).await?;
        if !out.success() {
            return Err(fail("terraform init", &out));
        }
        match check::check_after_init(&c.dir, &data_dir).refusal(&self.providers) {
            Some(why) => Err(ToolError::Failed(why)),
            None => Ok(()),
        }
    }

    async fn run(&self, c: Call, ctx: &ToolCtx, effect: EffectClass) -> Result<String, ToolError> {
        match c.op {
            Operation::FmtCheck => {
                let out = self
                    .tf(
                        ctx,
                        &c.dir,
                        &["fmt", "-check", "-recursive", "-diff", "-no-color"],
                        Self::timeout(&c, 120),
                    )
                    .await?;
                match out.code {
                    Some(0) => Ok("all files are formatted".into()),
                    Some(3) => Ok(format!(
                        "files need formatting (fix them, then run fmt_check again):\n{}",
                        exec::compact(&out.stdout, 120, 10)
                    )),
                    _ => Err(fail("terraform fmt -check", &out)),
                }
            }
            Operation::Validate => {
                self.init(ctx, &c, false).await?;
                let out = self
                    .tf(
                        ctx,
                        &c.dir,
                        &["validate", "-json", "-no-color"],
                        Self::timeout(&c, 120),
                    )
                    .await?;
                let v: Value = serde_json::from_str(&out.stdout)
                    .map_err(|_| fail("terraform validate", &out))?;
                let diags = v
                    .get("diagnostics")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let lines: Vec<String> = diags.iter().map(diagnostic).collect();
                let valid = v.get("valid").and_then(Value::as_bool).unwrap_or(false);
                let text = format!(
                    "{} ({} error(s), {} warning(s))\n{}",
                    if valid {
                        "configuration is valid"
                    } else {
                        "configuration is invalid"
                    },
                    v.get("error_count").and_then(Value::as_u64).unwrap_or(0),
                    v.get("warning_count").and_then(Value::as_u64).unwrap_or(0),
                    lines.join("\n")
                );
                if valid {
                    Ok(text.trim_end().to_string())
                } else {
                    Err(ToolError::Failed(text.trim_end().to_string()))
                }
            }
            Operation::Output => {
                let out = self
                    .tf(
                        ctx,
                        &c.dir,
                        &["output", "-json", "-no-color"],
                        Self::timeout(&c, 120),
                    )
                    .await?;
                if !out.success() {
                    return Err(fail("terraform output", &out));
                }
                let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
                let Some(m) = v.as_object().filter(|m| !m.is_empty()) else {
                    return Ok(
                        "no outputs (nothing applied yet, or the root module has no outputs)"
                            .into(),
                    );
                };
                let mut lines = Vec::new();
                for (k, o) in m {
                    let val = o.get("value").cloned().unwrap_or(Value::Null);
                    if o.get("sensitive").and_then(Value::as_bool).unwrap_or(false) {
                        register_all(&val, ctx);
                        lines.push(format!("{k} = (sensitive; value hidden)"));
                    } else {
                        let s = val.to_string();
                        let s = if s.chars().count() > 300 {
                            format!(
                                "{}… ({} chars)",
                                s.chars().take(300).collect::<String>(),
                                s.chars().count()
                            )
                        } else {
                            s
                        };
                        lines.push(format!("{k} = {s}"));
                    }
                }
                Ok(lines.join("\n"))
            }
            Operation::Show => {
                if c.a.planfile.is_some() {
                    let rec = self.record(&c)?;
                    let v = self.show_json(ctx, &c, Some(&rec.path)).await?;
                    let s = summarise_plan(&v, ctx, !rec.secret_inputs);
                    return Ok(format!("plan {}:\n{}", c.planfile, s.text));
                }
                let v = self.show_json(ctx, &c, None).await?;
                Ok(summarise_state(&v, ctx))
            }
            Operation::Plan | Operation::DestroyPlan => self.make_plan(c, ctx).await,
            Operation::Apply | Operation::Destroy => self.apply_plan(c, ctx, effect).await,
        }
    }

    fn record(&self, c: &Call) -> Result<PlanRecord, ToolError> {
        self.plans()
            .get(&(c.dir.clone(), c.planfile.clone()))
            .cloned()
            .ok_or_else(|| {
                ToolError::Failed(format!(
                    "there is no saved plan `{}` for {} in this session; run plan first",
                    c.planfile,
                    c.dir.display()
                ))
            })
    }

    async fn show_json(
        &self,
        ctx: &ToolCtx,
        c: &Call,
        planfile: Option<&Path>,
    ) -> Result<Value, ToolError> {
        let mut args = vec!["show".to_string(), "-json".into(), "-no-color".into()];
        if let Some(p) = planfile {
            args.push(p.display().to_string());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.tf(ctx, &c.dir, &refs, Self::timeout(c, 300)).await?;
        if !out.success() {
            return Err(fail("terraform show -json", &out));
        }
        serde_json::from_str(out.stdout.trim())
            .map_err(|e| ToolError::Failed(format!("unexpected terraform show output: {e}")))
    }

    async fn make_plan(&self, c: Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        let kind = c.op.kind().unwrap_or(PlanKind::Plan);
        let work = Self::work(ctx, &c.dir);
        let plans_dir = work.join("plans");
        std::fs::create_dir_all(&plans_dir)
            .map_err(|e| ToolError::Failed(format!("creating {}: {e}", plans_dir.display())))?;
        set_mode(&work, 0o700);
        let planpath = plans_dir.join(&c.planfile);
        // a new plan replaces the old one under this name
        self.plans().remove(&(c.dir.clone(), c.planfile.clone()));
        let _ = std::fs::remove_file(&planpath);
        self.init(ctx, &c, true).await?;
        // variables: references resolved inside the runtime into a private file
        let mut var_tmp: Option<tempfile::NamedTempFile> = None;
        let mut args: Vec<String> = vec![
            "plan".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-lock-timeout=60s".into(),
            "-detailed-exitcode".into(),
            format!("-out={}", planpath.display()),
        ];
        if kind == PlanKind::Destroy {
            args.push("-destroy".into());
        }
        let mut resolved_var_file: Option<tempfile::NamedTempFile> = None;
        let mut secret_inputs = false;
        if let Some(vf) = &c.a.var_file {
            let p = c.dir.join(vf);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| ToolError::InvalidArguments(format!("var_file {vf}: {e}")))?;
            if crate::secrets::find_refs(&text).is_empty() {
                args.push(format!("-var-file={}", p.display()));
            } else {
                secret_inputs = true;
                // references resolved into a private copy; the file in the repo keeps them
                let json = vf.ends_with(".json");
                let resolved = if json {
                    let v: Value = serde_json::from_str(&text)
                        .map_err(|e| ToolError::InvalidArguments(format!("var_file {vf}: {e}")))?;
                    super::manifests::resolve_refs(&v, ctx.secrets.as_ref())
                        .await?
                        .0
                        .to_string()
                } else {
                    resolve_hcl_refs(&text, vf, ctx).await?
                };
                let f = private_file(
                    &work,
                    if json { ".tfvars.json" } else { ".tfvars" },
                    &resolved,
                )?;
                args.push(format!("-var-file={}", f.path().display()));
                resolved_var_file = Some(f);
            }
        }
        if let Some(t) = c.a.vars.as_deref().filter(|t| !t.trim().is_empty()) {
            let v: Value = serde_saphyr::from_str(t).map_err(|e| {
                ToolError::InvalidArguments(format!("`vars` is not valid YAML: {e}"))
            })?;
            if !v.is_object() {
                return Err(ToolError::InvalidArguments(
                    "`vars` must be a YAML map of variable: value".into(),
                ));
            }
            let (resolved, pairs) =
                super::manifests::resolve_refs(&v, ctx.secrets.as_ref()).await?;
            secret_inputs |= !pairs.is_empty();
            let f = private_file(&work, ".tfvars.json", &resolved.to_string())?;
            args.push(format!("-var-file={}", f.path().display()));
            var_tmp = Some(f);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.tf(ctx, &c.dir, &refs, Self::timeout(&c, 600)).await;
        drop(var_tmp);
        drop(resolved_var_file);
        let out = out?;
        if !matches!(out.code, Some(0) | Some(2)) {
            let _ = std::fs::remove_file(&planpath);
            return Err(fail("terraform plan", &out));
        }
        set_mode(&planpath, 0o600);
        let bytes = std::fs::read(&planpath)
            .map_err(|e| ToolError::Failed(format!("terraform wrote no planfile: {e}")))?;
        let v = self.show_json(ctx, &c, Some(&planpath)).await?;
        // terraform's own account of the plan is the authority: refuse what it shows
        if let Some(why) = check::check_plan(&v).refusal(&self.providers) {
            let _ = std::fs::remove_file(&planpath);
            return Err(ToolError::Failed(why));
        }
        let s = summarise_plan(&v, ctx, !secret_inputs);
        self.plans().insert(
            (c.dir.clone(), c.planfile.clone()),
            PlanRecord {
                path: planpath,
                sha256: super::sha256_hex(&bytes),
                config_hash: c.config_hash.clone(),
                inputs_hash: c.inputs_hash.clone(),
                kind,
                deletes: s.deletes,
                secret_inputs,
            },
        );
        let warnings: Vec<&str> = out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .filter(|l| l.starts_with("Warning:"))
            .take(10)
            .collect();
        let next = if s.changes == 0 {
            "no changes: there is nothing to apply".to_string()
        } else {
            match (kind, s.deletes) {
                (PlanKind::Destroy, _) => format!("destroy it with terraform destroy planfile={} (needs approval)", c.planfile),
                (PlanKind::Plan, 0) => format!("apply it with terraform apply planfile={}", c.planfile),
                (PlanKind::Plan, n) => format!("apply it with terraform apply planfile={} — it deletes or replaces {n} resource(s), so it counts as destructive and needs approval", c.planfile),
            }
        };
        let mut text = format!(
            "{} saved as {} for {}:\n{}",
            if kind == PlanKind::Destroy {
                "destroy plan"
            } else {
                "plan"
            },
            c.planfile,
            c.dir.display(),
            s.text
        );
        for w in warnings {
            text.push_str(&format!("{w}\n"));
        }
        text.push_str(&next);
        Ok(text)
    }

    /// The saved plan `rec` as terraform's `show -json` reads it: exactly the bytes plan wrote,
    /// made from the configuration as it is now, nothing bosun refuses in it. Returns how many
    /// resources it deletes or replaces.
    async fn judge_saved_plan(
        &self,
        ctx: &ToolCtx,
        c: &Call,
        rec: &PlanRecord,
    ) -> Result<usize, ToolError> {
        Self::intact(c, rec)?;
        let v = self.show_json(ctx, c, Some(&rec.path)).await?;
        if let Some(why) = check::check_plan(&v).refusal(&self.providers) {
            return Err(ToolError::Failed(why));
        }
        Ok(summarise_plan(&v, ctx, !rec.secret_inputs).deletes)
    }

    /// The planfile holds exactly the bytes plan wrote, from the configuration as it is now.
    fn intact(c: &Call, rec: &PlanRecord) -> Result<(), ToolError> {
        let bytes = std::fs::read(&rec.path).map_err(|e| {
            ToolError::Failed(format!(
                "the planfile {} is gone ({e}); run plan again",
                c.planfile
            ))
        })?;
        if super::sha256_hex(&bytes) != rec.sha256 {
            return Err(ToolError::Failed(format!(
                "the planfile {} changed after plan wrote it; bosun applies only the exact saved plan — run plan again",
                c.planfile
            )));
        }
        if rec.config_hash != c.config_hash {
            return Err(ToolError::Failed(
                "the configuration changed after the plan; run plan again and apply the new planfile".into(),
            ));
        }
        Ok(())
    }

    async fn apply_plan(
        &self,
        c: Call,
        ctx: &ToolCtx,
        effect: EffectClass,
    ) -> Result<String, ToolError> {
        let rec = self.record(&c)?;
        // judged again from the planfile itself, just before it runs
        let deletes = self.judge_saved_plan(ctx, &c, &rec).await?;
        if deletes > 0 && effect != EffectClass::Destructive {
            return Err(ToolError::Failed(format!(
                "the plan {} deletes or replaces {deletes} resource(s), but it was admitted as a non-destructive change; run plan again and apply it with approval",
                c.planfile
            )));
        }
        let path = rec.path.display().to_string();
        let out = self
            .tf(
                ctx,
                &c.dir,
                &[
                    "apply",
                    "-input=false",
                    "-no-color",
                    "-lock-timeout=60s",
                    &path,
                ],
                Self::timeout(&c, 600),
            )
            .await?;
        // a saved plan is applied at most once
        self.plans().remove(&(c.dir.clone(), c.planfile.clone()));
        let _ = std::fs::remove_file(&rec.path);
        let text = exec::compact(&out.combined(), 40, 20);
        if !out.success() {
            let hint = if text.contains("Saved plan is stale") {
                "\nthe state changed since this plan was made: run plan again, read it, apply the new planfile"
            } else {
                ""
            };
            return Err(ToolError::Failed(format!(
                "terraform apply of {} failed:\n{text}{hint}",
                c.planfile
            )));
        }
        // sensitive outputs: registered, so the apply log cannot echo them
        if let Ok(o) = self
            .tf(
                ctx,
                &c.dir,
                &["output", "-json", "-no-color"],
                Duration::from_secs(60),
            )
            .await
        {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(o.stdout.trim()) {
                for v in m.values() {
                    if v.get("sensitive").and_then(Value::as_bool) == Some(true) {
                        register_all(v.get("value").unwrap_or(&Value::Null), ctx);
                    }
                }
            }
        }
        let summary: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| {
                l.contains("complete after")
                    || l.starts_with("Apply complete!")
                    || l.starts_with("Destroy complete!")
            })
            .collect();
        Ok(format!(
            "applied {}:\n{}",
            c.planfile,
            if summary.is_empty() {
                text
            } else {
                summary.join("\n")
            }
        ))
    }
}

/// `host/namespace/type` of every provider in a filesystem mirror (unpacked or packed layout).
fn mirror_providers(mirror: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
            .collect()
    };
    for (host, hp) in dirs(mirror) {
        for (ns, np) in dirs(&hp) {
            for (ty, _) in dirs(&np) {
                out.push(format!("{host}/{ns}/{ty}"));
            }
        }
    }
    out.sort();
    out
}

/// A file only the user can read, in `dir`, deleted when dropped.
fn private_file(
    dir: &Path,
    suffix: &str,
    text: &str,
) -> Result<tempfile::NamedTempFile, ToolError> {
    let mut f = tempfile::Builder::new()
        .prefix("vars-")
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| ToolError::Failed(format!("creating a var file: {e}")))?;
    set_mode(f.path(), 0o600);
    use std::io::Write;
    f.write_all(text.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| ToolError::Failed(format!("writing the var file: {e}")))?;
    Ok(f)
}

/// Resolve references in an HCL `.tfvars` file. A reference must be a whole quoted string
/// (`password = "vault:kv/app#password"`); the value is written escaped, so it cannot break out
/// of the string. References anywhere else are refused.
async fn resolve_hcl_refs(text: &str, name: &str, ctx: &ToolCtx) -> Result<String, ToolError> {
    let mut out = text.to_string();
    for r in crate::secrets::find_refs(text) {
        let quoted = format!("\"{r}\"");
        let bare = text.matches(&r.to_string()).count();
        if text.matches(&quoted).count() != bare {
            return Err(ToolError::InvalidArguments(format!(
                "var_file {name}: {r} must stand alone as a quoted string (`key = \"{r}\"`); or pass the variable in `vars`"
            )));
        }
        let v = ctx
            .secrets
            .resolve(&r)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut esc = String::with_capacity(v.len() + 2);
        esc.push('"');
        for ch in v.chars() {
            match ch {
                '\\' => esc.push_str("\\\\"),
                '"' => esc.push_str("\\\""),
                '\n' => esc.push_str("\\n"),
                '\r' => esc.push_str("\\r"),
                '\t' => esc.push_str("\\t"),
                c if c.is_control() => esc.push_str(&format!("\\u{:04x}", c as u32)),
                c => esc.push(c),
            }
        }
        esc.push('"');
        // template sequences inside a string: `${` and `%{` are escaped by doubling
        let esc = esc.replace("${", "$${").replace("%{", "%%{");
        out = out.replace(&quoted, &esc);
    }
    Ok(out)
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

fn hcl_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn fail(what: &str, out: &exec::Output) -> ToolError {
    ToolError::Failed(format!(
        "{what} failed (exit {}):\n{}",
        out.code.map_or("signal".to_string(), |c| c.to_string()),
        exec::compact(&out.combined(), 30, 15)
    ))
}

fn diagnostic(d: &Value) -> String {
    let s = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or("");
    let at = match d.pointer("/range/start/line").and_then(Value::as_u64) {
        Some(l) => format!("{}:{l}: ", s("/range/filename")),
        None => String::new(),
    };
    format!("{at}{}: {} {}", s("/severity"), s("/summary"), s("/detail"))
        .trim_end()
        .to_string()
}

/// Register every string (and number) leaf of a sensitive value with the redactor.
fn register_all(v: &Value, ctx: &ToolCtx) {
    match v {
        Value::String(s) => ctx.redactor.register(s),
        Value::Number(n) => ctx.redactor.register(&n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| register_all(x, ctx)),
        Value::Object(m) => m.values().for_each(|x| register_all(x, ctx)),
        _ => {}
    }
}

/// Register the leaves of `v` that `mask` (terraform's `*_sensitive` mirror: `true`, or the same
/// shape with `true` at sensitive leaves) marks sensitive.
fn register_sensitive(v: &Value, mask: &Value, ctx: &ToolCtx) {
    match mask {
        Value::Bool(true) => register_all(v, ctx),
        Value::Object(mm) => {
            if let Value::Object(vm) = v {
                for (k, m) in mm {
                    if let Some(x) = vm.get(k) {
                        register_sensitive(x, m, ctx);
                    }
                }
            }
        }
        Value::Array(ma) => {
            if let Value::Array(va) = v {
                for (x, m) in va.iter().zip(ma) {
                    register_sensitive(x, m, ctx);
                }
            }
        }
        _ => {}
    }
}

fn is_marked(mask: Option<&Value>) -> bool {
    match mask {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(m)) => m.values().any(|x| is_marked(Some(x))),
        Some(Value::Array(a)) => a.iter().any(|x| is_marked(Some(x))),
        _ => false,
    }
}

struct PlanSummary {
    text: String,
    changes: usize,
    deletes: usize,
}

/// A plan as a model can read it: counts, then one line per resource change with the changed
/// attribute names (values only when short and not sensitive).
/// With `values` false (the plan's inputs came from vault), attribute values are not shown: a
/// configuration can transform a secret (`upper(var.pw)`) past the redactor.
fn summarise_plan(v: &Value, ctx: &ToolCtx, values: bool) -> PlanSummary {
    // variables declared sensitive, and every sensitive value anywhere, go to the redactor
    let sensitive_vars: Vec<String> = v
        .pointer("/configuration/root_module/variables")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, d)| d.get("sensitive").and_then(Value::as_bool) == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    if let Some(vars) = v.get("variables").and_then(Value::as_object) {
        for k in &sensitive_vars {
            if let Some(x) = vars.get(k).and_then(|x| x.get("value")) {
                register_all(x, ctx);
            }
        }
    }
    let (mut add, mut change, mut destroy, mut replace) = (0, 0, 0, 0);
    let mut lines = Vec::new();
    for rc in v
        .get("resource_changes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let addr = rc.get("address").and_then(Value::as_str).unwrap_or("?");
        let ch = rc.get("change").cloned().unwrap_or(Value::Null);
        let before = ch.get("before").cloned().unwrap_or(Value::Null);
        let after = ch.get("after").cloned().unwrap_or(Value::Null);
        let bs = ch.get("before_sensitive").cloned().unwrap_or(Value::Null);
        let as_ = ch.get("after_sensitive").cloned().unwrap_or(Value::Null);
        register_sensitive(&before, &bs, ctx);
        register_sensitive(&after, &as_, ctx);
        let actions: Vec<&str> = ch
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let (sym, counted) = match actions.as_slice() {
            ["create"] => {
                add += 1;
                ("+", true)
            }
            ["update"] => {
                change += 1;
                ("~", true)
            }
            ["delete"] => {
                destroy += 1;
                ("-", true)
            }
            ["delete", "create"] | ["create", "delete"] => {
                replace += 1;
                ("-/+", true)
            }
            ["read"] => ("<=", false),
            _ => ("", false),
        };
        if !counted && sym.is_empty() {
            continue;
        }
        let mut line = format!("{sym} {addr}");
        if sym == "~" || sym == "-/+" {
            let attrs = changed_attrs(&before, &after, &bs, &as_, ch.get("after_unknown"), values);
            if !attrs.is_empty() {
                line.push_str(&format!(": {}", attrs.join(", ")));
            }
            if let Some(r) = ch.get("replace_paths").and_then(Value::as_array) {
                let paths: Vec<String> = r
                    .iter()
                    .map(|p| {
                        p.as_array()
                            .map(|x| {
                                x.iter()
                                    .map(|s| {
                                        s.as_str()
                                            .map(str::to_string)
                                            .unwrap_or_else(|| s.to_string())
                                    })
                                    .collect::<Vec<_>>()
                                    .join(".")
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                if !paths.is_empty() {
                    line.push_str(&format!(" (replacement forced by {})", paths.join(", ")));
                }
            }
        }
        lines.push(line);
    }
    let mut outputs_changed: Vec<&str> = Vec::new();
    if let Some(oc) = v.get("output_changes").and_then(Value::as_object) {
        for (name, o) in oc {
            let noop = o.pointer("/actions/0").and_then(Value::as_str) == Some("no-op");
            if !noop {
                outputs_changed.push(name);
            }
            register_sensitive(
                o.get("after").unwrap_or(&Value::Null),
                o.get("after_sensitive").unwrap_or(&Value::Null),
                ctx,
            );
            register_sensitive(
                o.get("before").unwrap_or(&Value::Null),
                o.get("before_sensitive").unwrap_or(&Value::Null),
                ctx,
            );
        }
    }
    let total = lines.len();
    let mut text = format!(
        "Plan: {add} to add, {change} to change, {destroy} to destroy{}\n",
        if replace > 0 {
            format!(", {replace} to replace")
        } else {
            String::new()
        }
    );
    for l in lines.iter().take(200) {
        text.push_str(l);
        text.push('\n');
    }
    if total > 200 {
        text.push_str(&format!("… {} more resources\n", total - 200));
    }
    if !outputs_changed.is_empty() {
        text.push_str(&format!(
            "outputs changed: {}\n",
            outputs_changed.join(", ")
        ));
    }
    PlanSummary {
        text,
        changes: add + change + destroy + replace,
        deletes: destroy + replace,
    }
}

fn changed_attrs(
    before: &Value,
    after: &Value,
    bs: &Value,
    as_: &Value,
    unknown: Option<&Value>,
    values: bool,
) -> Vec<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let unknown_k = unknown
            .and_then(|u| u.get(k))
            .is_some_and(|u| u != &Value::Bool(false));
        let (x, y) = (b.get(k), a.get(k));
        if x == y && !unknown_k {
            continue;
        }
        let sensitive = is_marked(bs.get(k)) || is_marked(as_.get(k));
        let show = |v: Option<&Value>| {
            let s = v.map(Value::to_string).unwrap_or_else(|| "null".into());
            if s.chars().count() > 60 {
                "(long value)".to_string()
            } else {
                s
            }
        };
        let desc = if sensitive {
            format!("{k} (sensitive)")
        } else if !values {
            k.to_string()
        } else if unknown_k {
            format!("{k}: {} → (known after apply)", show(x))
        } else {
            format!("{k}: {} → {}", show(x), show(y))
        };
        out.push(desc);
        if out.len() >= 12 {
            out.push("…".into());
            break;
        }
    }
    out
}

/// The resources in state, by address (no attribute values).
fn summarise_state(v: &Value, ctx: &ToolCtx) -> String {
    let mut addrs = Vec::new();
    let mut stack: Vec<&Value> = v.pointer("/values/root_module").into_iter().collect();
    while let Some(m) = stack.pop() {
        for r in m
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            register_sensitive(
                r.get("values").unwrap_or(&Value::Null),
                r.get("sensitive_values").unwrap_or(&Value::Null),
                ctx,
            );
            if let Some(a) = r.get("address").and_then(Value::as_str) {
                addrs.push(a.to_string());
            }
        }
        for c in m
            .get("child_modules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            stack.push(c);
        }
    }
    if let Some(outs) = v.pointer("/values/outputs").and_then(Value::as_object) {
        for o in outs.values() {
            if o.get("sensitive").and_then(Value::as_bool) == Some(true) {
                register_all(o.get("value").unwrap_or(&Value::Null), ctx);
            }
        }
    }
    if addrs.is_empty() {
        return "the state is empty".into();
    }
    addrs.sort();
    format!("{} resources in state:\n{}", addrs.len(), addrs.join("\n"))
}

impl Tool for Terraform {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Terraform: fmt_check, validate, plan to a saved planfile, apply/destroy exactly that planfile, output, show."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let c = self.parse(args)?;
        let operation = c.op.as_str().to_string();
        let mut min_effect = None;
        let mut target = format!("dir={}", c.dir.display());
        if c.op.kind().is_some() || c.a.planfile.is_some() {
            target.push_str(&format!(" planfile={}", c.planfile));
        }
        if matches!(c.op, Operation::Apply | Operation::Destroy) {
            if let Some(rec) = self.plans().get(&(c.dir.clone(), c.planfile.clone())) {
                match (c.op, rec.kind) {
                    (Operation::Apply, PlanKind::Destroy) => {
                        return Err(ToolError::InvalidArguments(format!(
                            "{} is a destroy plan: apply it with operation destroy",
                            c.planfile
                        )))
                    }
                    (Operation::Destroy, PlanKind::Plan) => {
                        return Err(ToolError::InvalidArguments(format!(
                            "{} is not a destroy plan: apply it with operation apply, or make one with destroy_plan",
                            c.planfile
                        )))
                    }
                    (Operation::Apply, PlanKind::Plan) if rec.deletes > 0 => {
                        // a plan that deletes or replaces is as dangerous as a destroy
                        // (`resolve` confirms it from the planfile itself)
                        min_effect = Some(EffectClass::Destructive);
                        target.push_str(&format!(
                            " (deletes or replaces {} resource(s))",
                            rec.deletes
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(Invocation {
            min_effect,
            operation,
            target,
            change: Self::change(&c),
            dry_run: matches!(c.op, Operation::Plan | Operation::DestroyPlan),
            scope: Default::default(),
        })
    }

    /// What an apply really does, from terraform's own reading of the saved plan (`show -json`):
    /// refused when it holds provisioners, the `external` data source or a provider the policy
    /// does not allow, or when the planfile's bytes or the configuration moved since the plan;
    /// `destructive` when it deletes or replaces anything. (The configuration itself was checked
    /// by `plan`, before anything ran.)
    fn resolve<'a>(
        &'a self,
        mut inv: Invocation,
        args: &'a Value,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<Invocation, ToolError>> {
        Box::pin(async move {
            let c = self.parse(args)?;
            if !matches!(c.op, Operation::Apply | Operation::Destroy) {
                return Ok(inv);
            }
            let rec = self
                .plans()
                .get(&(c.dir.clone(), c.planfile.clone()))
                .cloned();
            // no saved plan: nothing to read; the guard refuses the apply for want of a dry-run
            let Some(rec) = rec else { return Ok(inv) };
            // a moved planfile or configuration: `execute` refuses it and says why
            if Self::intact(&c, &rec).is_err() {
                return Ok(inv);
            }
            let deletes = self.judge_saved_plan(ctx, &c, &rec).await?;
            if deletes > 0 {
                inv.min_effect = Some(EffectClass::Destructive);
            }
            Ok(inv)
        })
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let c = self.parse(&call.args)?;
            call.still_the_same(Self::change(&c).as_ref(), "configuration", "plan again")?;
            self.run(c, ctx, call.effect).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_apply_share_an_identity_that_covers_the_configuration() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            d.path().join("main.tf"),
            "resource \"terraform_data\" \"a\" {}\n",
        )
        .expect("write");
        let t = Terraform::new(TerraformSettings::default());
        let plan_args =
            json!({"operation": "plan", "dir": d.path(), "planfile": "x.tfplan", "vars": "a: 1"});
        let p = t.plan(&plan_args).expect("plan");
        assert!(p.dry_run);
        let apply = json!({"operation": "apply", "dir": d.path(), "planfile": "x.tfplan"});
        // no saved plan yet: nothing an apply could match
        assert_ne!(t.plan(&apply).expect("apply").change, p.change);
        // what a successful plan records
        let record = |vars: &str| {
            let mut args = plan_args.clone();
            args["vars"] = json!(vars);
            let c = t.parse(&args).expect("parse");
            t.plans().insert(
                (c.dir.clone(), c.planfile.clone()),
                PlanRecord {
                    path: PathBuf::new(),
                    sha256: String::new(),
                    config_hash: c.config_hash.clone(),
                    inputs_hash: c.inputs_hash.clone(),
                    kind: PlanKind::Plan,
                    deletes: 0,
                    secret_inputs: false,
                },
            );
        };
        record("{a: 1}");
        let a = t.plan(&apply).expect("apply");
        assert_eq!(p.change, a.change);
        // re-planned under the same name with other variables (e.g. by another session)
        record("a: 2");
        assert_ne!(t.plan(&apply).expect("apply").change, p.change);
        record("a: 1");
        // a destroy plan is a different change
        let dp = t
            .plan(&json!({"operation": "destroy_plan", "dir": d.path(), "planfile": "x.tfplan", "vars": "a: 1"}))
            .expect("destroy plan");
        assert_ne!(dp.change, p.change);
        // state and terraform's own files do not count; configuration does
        std::fs::write(d.path().join("terraform.tfstate"), "{}").expect("write");
        std::fs::create_dir_all(d.path().join(".terraform")).expect("mkdir");
        let a2 = t
            .plan(&json!({"operation": "apply", "dir": d.path(), "planfile": "x.tfplan"}))
            .expect("apply");
        assert_eq!(a2.change, p.change);
        std::fs::write(
            d.path().join("main.tf"),
            "resource \"terraform_data\" \"b\" {}\n",
        )
        .expect("write");
        let a3 = t
            .plan(&json!({"operation": "apply", "dir": d.path(), "planfile": "x.tfplan"}))
            .expect("apply");
        assert_ne!(a3.change, p.change);
    }

    struct Tricky;
    impl crate::secrets::SecretResolver for Tricky {
        fn resolve<'a>(
            &'a self,
            _r: &'a crate::secrets::VaultRef,
        ) -> futures::future::BoxFuture<'a, Result<String, crate::secrets::SecretError>> {
            Box::pin(async { Ok("a\"b\\c ${x} %{y}\nz".to_string()) })
        }
    }

    #[tokio::test]
    async fn hcl_var_files_get_escaped_values_and_only_whole_string_references() {
        let mut ctx = ToolCtx::new(std::env::temp_dir());
        ctx.secrets = std::sync::Arc::new(Tricky);
        let out = resolve_hcl_refs("pw = \"vault:kv/a#p\"\n", "x.tfvars", &ctx)
            .await
            .expect("resolves");
        assert_eq!(out, "pw = \"a\\\"b\\\\c $${x} %%{y}\\nz\"\n");
        let e = resolve_hcl_refs("pw = \"x-vault:kv/a#p\"\n", "x.tfvars", &ctx)
            .await
            .expect_err("embedded");
        assert!(e.to_string().contains("must stand alone"), "{e}");
    }

    #[test]
    fn the_external_data_source_and_provisioners_are_refused_before_any_plan() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("modules/x")).expect("mkdir");
        std::fs::write(
            d.path().join("main.tf"),
            "module \"x\" {\n  source = \"./modules/x\"\n}\n",
        )
        .expect("write");
        std::fs::write(
            d.path().join("modules/x/main.tf"),
            "data   \"external\" \"e\" {\n  program = [\"sh\", \"-c\", \"id\"]\n}\n",
        )
        .expect("write");
        let t = Terraform::new(TerraformSettings::default());
        for op in ["plan", "validate", "destroy_plan", "apply"] {
            let e = t
                .plan(&json!({"operation": op, "dir": d.path()}))
                .expect_err("refused");
            assert!(
                e.to_string()
                    .contains("the `external` data source, which runs a program during plan: modules/x/main.tf: data.external.e"),
                "{e}"
            );
        }
        std::fs::write(
            d.path().join("modules/x/main.tf"),
            "resource \"terraform_data\" \"a\" {\n  provisioner \"local-exec\" {\n    command = \"id\"\n  }\n}\n",
        )
        .expect("write");
        let e = t
            .plan(&json!({"operation": "plan", "dir": d.path()}))
            .expect_err("refused");
        assert!(e.to_string().contains("provisioner \"local-exec\""), "{e}");
    }

    #[test]
    fn paths_and_misplaced_arguments_are_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let t = Terraform::new(TerraformSettings::default());
        for a in [
            json!({"operation": "plan", "dir": d.path(), "planfile": "../x.tfplan"}),
            json!({"operation": "plan", "dir": d.path(), "planfile": "x.plan"}),
            json!({"operation": "plan", "dir": d.path(), "var_file": "/etc/passwd"}),
            json!({"operation": "plan", "dir": d.path(), "var_file": "../x.tfvars"}),
            json!({"operation": "apply", "dir": d.path(), "vars": "a: 1"}),
            json!({"operation": "plan", "dir": "/nonexistent/dir"}),
        ] {
            assert!(t.plan(&a).is_err(), "{a}");
        }
    }

    #[test]
    fn sensitive_plan_values_are_registered_not_printed() {
        let ctx = ToolCtx::new(std::env::temp_dir());
        let plan = json!({
            "resource_changes": [{"address": "x.a", "change": {"actions": ["update"],
                "before": {"pw": "old-secret-1", "name": "a"}, "after": {"pw": "new-secret-2", "name": "b"},
                "before_sensitive": {"pw": true}, "after_sensitive": {"pw": true}}},
              {"address": "x.b", "change": {"actions": ["delete", "create"], "before": {}, "after": {}}}],
            "configuration": {"root_module": {"variables": {"token": {"sensitive": true}}}},
            "variables": {"token": {"value": "tok-value-3"}}
        });
        let s = summarise_plan(&plan, &ctx, true);
        assert!(summarise_plan(&plan, &ctx, false)
            .text
            .contains("~ x.a: name, pw (sensitive)"));
        assert!(
            s.text
                .starts_with("Plan: 0 to add, 1 to change, 0 to destroy, 1 to replace"),
            "{}",
            s.text
        );
        assert!(
            s.text
                .contains("~ x.a: name: \"a\" → \"b\", pw (sensitive)"),
            "{}",
            s.text
        );
        assert!(!s.text.contains("secret"));
        assert_eq!(s.deletes, 1);
        assert_eq!(
            ctx.redactor.redact("old-secret-1 new-secret-2 tok-value-3"),
            "[REDACTED] [REDACTED] [REDACTED]"
        );
    }
}
