//! The `git` tool: the GitOps repository, through git2 (libgit2). The repository is cloned into
//! the workspace (or a local checkout under the workspace or the current directory is opened in
//! place); files are read and written only through `confined::Root` on the clone (cap-std: no
//! symlink is followed at any depth, `..` and absolute paths cannot leave it; `.git` is refused).
//!
//! In GitOps mode the "apply" of a change is `commit_push`; its dry-run (`dry_run: true`) renders
//! what the commit-to-be contains — the Kubernetes objects in its added and changed YAML files —
//! runs the platform checks on them and a server-side dry-run (`dryRun=All`) against the given
//! context. Change identity: target `remote=<url> branch=<b>`, content = the git tree id of the
//! commit-to-be and its parent commit.
//!
//! Remotes given as local paths use libgit2's local transport; network URLs (`https://`,
//! `ssh://`, `git@host:…`, `file://`) go through the `git` CLI (explicit argv, no prompts, a
//! timeout), so the user's credential helpers and ssh-agent work.

use super::confined::{self, EntryKind, Root};
use super::exec::{self, Cmd};
use super::{manifests, Change, Invocation, Scope, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::kube_client::{Clusters, KubeTarget};
use futures::future::BoxFuture;
use git2::{IndexAddOption, Oid, Repository, StatusOptions};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub const NAME: &str = "git";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("open", EffectClass::ReadOnly),
    ("status", EffectClass::ReadOnly),
    ("diff", EffectClass::ReadOnly),
    ("log", EffectClass::ReadOnly),
    ("read_file", EffectClass::ReadOnly),
    ("list_files", EffectClass::ReadOnly),
    ("write_file", EffectClass::WorkspaceWrite),
    ("remove_file", EffectClass::WorkspaceWrite),
    ("branch", EffectClass::ReadOnly),
    ("revert", EffectClass::WorkspaceWrite),
    ("commit_push", EffectClass::Mutating),
];

/// Largest file write_file accepts / read_file shows.
const MAX_FILE: usize = 1024 * 1024;

/// Files that must never be committed.
const NEVER_COMMIT: &[&str] = &[".tfstate", ".tfplan", ".terraform/"];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Open,
    Status,
    Diff,
    Log,
    ReadFile,
    ListFiles,
    WriteFile,
    RemoveFile,
    Branch,
    Revert,
    CommitPush,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Status => "status",
            Self::Diff => "diff",
            Self::Log => "log",
            Self::ReadFile => "read_file",
            Self::ListFiles => "list_files",
            Self::WriteFile => "write_file",
            Self::RemoveFile => "remove_file",
            Self::Branch => "branch",
            Self::Revert => "revert",
            Self::CommitPush => "commit_push",
        }
    }
}

// Arguments of the git tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    /// open: URL or path to clone (default $BOSUN_GITOPS_REMOTE).
    remote: Option<String>,
    /// The opened repo's directory.
    repo: Option<String>,
    /// File path in the repo; open: an existing checkout.
    path: Option<String>,
    content: Option<String>,
    /// write_file: chmod +x.
    executable: Option<bool>,
    /// open: to check out; branch: to create or switch to; commit_push: the current one.
    branch: Option<String>,
    message: Option<String>,
    /// commit_push: only these.
    paths: Option<Vec<String>>,
    /// revert: sha.
    commit: Option<String>,
    /// commit_push dry-run: kube context.
    context: Option<String>,
    /// commit_push dry-run: for objects without one.
    namespace: Option<String>,
    /// commit_push: true = validate only, needed first.
    dry_run: Option<bool>,
}

/// An opened repository.
#[derive(Debug, Clone)]
struct RepoInfo {
    remote: String,
}

/// The git tool.
pub struct Git {
    kube: KubeTarget,
    clusters: Clusters,
    default_remote: Option<String>,
    repos: Mutex<BTreeMap<PathBuf, RepoInfo>>,
    last: Mutex<Option<PathBuf>>,
}

struct Call {
    a: Args,
    op: Operation,
    /// The repository (canonical work dir), for every operation but open.
    repo: Option<PathBuf>,
    /// commit_push: the change.
    push: Option<PushPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PushPlan {
    remote: String,
    branch: String,
    tree: Oid,
    parent: Option<Oid>,
    context: Option<String>,
}

fn gerr(e: git2::Error) -> ToolError {
    ToolError::Failed(format!("git: {}", e.message()))
}

/// A path inside the repository: relative, no `..`, no `.git`, no glob characters. Argument
/// parsing only — confinement is `confined::Root`'s.
fn rel_path(p: &str) -> Result<PathBuf, ToolError> {
    let bad = |why: &str| {
        Err(ToolError::InvalidArguments(format!(
            "path `{p}` is refused: {why}"
        )))
    };
    if p.len() > 1024 {
        return bad("too long");
    }
    if p.contains(['*', '?', '[', ']', '\\']) {
        return bad("no glob characters or backslashes");
    }
    let out = confined::relative(p)?;
    if out.components().any(|c| c.as_os_str() == ".git") {
        return bad("`.git` is git's own directory");
    }
    Ok(out)
}

/// The directory of a local checkout named by `p`: below the workspace or the current
/// directory, reached from that root through `confined::Root` (no symlink, no `..`).
fn checkout_dir(p: &str, workspace: &Path) -> Result<PathBuf, ToolError> {
    let outside = || {
        ToolError::InvalidArguments(format!(
            "{p} is outside the workspace and the current directory; clone it with `remote` instead"
        ))
    };
    let path = Path::new(p);
    let cwd = std::env::current_dir().ok();
    let mut bases: Vec<PathBuf> = Vec::new();
    for b in [Some(workspace.to_path_buf()), cwd].into_iter().flatten() {
        if let Ok(c) = std::fs::canonicalize(&b) {
            bases.push(c);
        }
        bases.push(b);
    }
    let (base, rel) = if path.is_absolute() {
        bases
            .iter()
            .find_map(|b| {
                path.strip_prefix(b)
                    .ok()
                    .map(|r| (b.clone(), r.to_path_buf()))
            })
            .ok_or_else(outside)?
    } else {
        let cwd = std::env::current_dir()
            .map_err(|e| ToolError::Failed(format!("current directory: {e}")))?;
        (cwd, path.to_path_buf())
    };
    let root = Root::open(&base)?;
    let rel_s = rel.to_string_lossy();
    if rel_s.is_empty() || rel_s == "." {
        return Ok(std::fs::canonicalize(&base).unwrap_or(base));
    }
    let rel = confined::relative(&rel_s)?;
    root.subdir(&rel)?;
    Ok(std::fs::canonicalize(&base).unwrap_or(base).join(rel))
}

/// Whether a remote is a local path (libgit2 transport) rather than a URL (git CLI).
fn is_local(remote: &str) -> bool {
    if remote.contains("://") {
        return false;
    }
    // scp-like `user@host:path` or `host:path`
    match remote.find(':') {
        Some(i) => remote[..i].contains('/'),
        None => true,
    }
}

fn author(repo: &Repository) -> Result<git2::Signature<'static>, ToolError> {
    if let Some(a) = std::env::var("BOSUN_GIT_AUTHOR")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        if let Some((name, rest)) = a.split_once('<') {
            let email = rest.trim_end().trim_end_matches('>');
            if let Ok(s) = git2::Signature::now(name.trim(), email.trim()) {
                return Ok(s);
            }
        }
        tracing::warn!("BOSUN_GIT_AUTHOR is not `name <email>`; ignored");
    }
    if let Ok(s) = repo.signature() {
        return Ok(s);
    }
    git2::Signature::now("bosun", "bosun@localhost").map_err(gerr)
}

impl Git {
    pub fn new(kube: &KubeTarget) -> Self {
        Self {
            kube: kube.clone(),
            clusters: Clusters::default(),
            default_remote: std::env::var("BOSUN_GITOPS_REMOTE")
                .ok()
                .filter(|s| !s.trim().is_empty()),
            repos: Mutex::new(BTreeMap::new()),
            last: Mutex::new(None),
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        match m.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn repo_dir(&self, a: &Args) -> Result<PathBuf, ToolError> {
        let repos = Self::lock(&self.repos);
        match &a.repo {
            Some(r) => {
                let c = std::fs::canonicalize(r).map_err(|e| {
                    ToolError::InvalidArguments(format!("repo `{r}`: {e}"))
                })?;
                if repos.contains_key(&c) {
                    Ok(c)
                } else {
                    Err(ToolError::InvalidArguments(format!(
                        "repo `{r}` was not opened with git open; open it first"
                    )))
                }
            }
            None => Self::lock(&self.last).clone().ok_or_else(|| {
                ToolError::InvalidArguments(
                    "no repository is open: call git open (remote defaults to $BOSUN_GITOPS_REMOTE) first".into(),
                )
            }),
        }
    }

    fn parse(&self, args: &Value) -> Result<Call, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let op = a.operation;
        let bad = |m: &str| Err(ToolError::InvalidArguments(m.to_string()));
        if matches!(
            op,
            Operation::ReadFile | Operation::WriteFile | Operation::RemoveFile
        ) {
            match &a.path {
                Some(p) => {
                    rel_path(p)?;
                }
                None => return bad("`path` is required: a path relative to the repository root"),
            }
        }
        if op == Operation::WriteFile && a.content.is_none() {
            return bad("write_file needs `content`: the full file text");
        }
        if op == Operation::Branch && a.branch.is_none() {
            return bad("branch needs `branch`: the branch name");
        }
        if let Some(b) = &a.branch {
            if git2::Branch::name_is_valid(b).ok() != Some(true) || b.starts_with('-') {
                return bad("invalid branch name");
            }
        }
        if op == Operation::Revert
            && a.commit
                .as_deref()
                .is_none_or(|c| Oid::from_str(c).is_err())
        {
            return bad("revert needs `commit`: a commit sha (see log)");
        }
        if op == Operation::Open {
            return Ok(Call {
                a,
                op,
                repo: None,
                push: None,
            });
        }
        let dir = self.repo_dir(&a)?;
        let push = if op == Operation::CommitPush {
            if a.dry_run != Some(true) && a.message.as_deref().is_none_or(|m| m.trim().is_empty()) {
                return bad("commit_push needs `message` (see the gitops skill for the format)");
            }
            Some(self.push_plan(&dir, &a)?)
        } else {
            None
        };
        Ok(Call {
            a,
            op,
            repo: Some(dir),
            push,
        })
    }

    fn remote_of(&self, dir: &Path) -> String {
        Self::lock(&self.repos)
            .get(dir)
            .map(|r| r.remote.clone())
            .unwrap_or_default()
    }

    /// The commit-to-be: the tree of HEAD plus the working-tree changes (or only `paths`).
    fn push_plan(&self, dir: &Path, a: &Args) -> Result<PushPlan, ToolError> {
        let repo = Repository::open(dir).map_err(gerr)?;
        let head = repo.head().ok();
        let current = head
            .as_ref()
            .and_then(|h| h.shorthand().ok().map(str::to_string))
            .or_else(|| {
                // unborn branch: HEAD points at refs/heads/<b>
                repo.find_reference("HEAD").ok().and_then(|r| {
                    r.symbolic_target()
                        .ok()
                        .flatten()
                        .map(|t| t.trim_start_matches("refs/heads/").to_string())
                })
            })
            .ok_or_else(|| {
                ToolError::InvalidArguments(
                    "HEAD is detached; switch to a branch with git branch".into(),
                )
            })?;
        if head.as_ref().is_some_and(|h| !h.is_branch()) {
            return Err(ToolError::InvalidArguments(
                "HEAD is detached; switch to a branch with git branch".into(),
            ));
        }
        if let Some(b) = &a.branch {
            if b != &current {
                return Err(ToolError::InvalidArguments(format!(
                    "the current branch is `{current}`, not `{b}`: switch with git branch first"
                )));
            }
        }
        let (tree, parent) = tree_to_be(&repo, a.paths.as_deref())?;
        let parent_tree = match parent {
            Some(p) => Some(repo.find_commit(p).map_err(gerr)?.tree_id()),
            None => None,
        };
        if parent_tree == Some(tree) {
            return Err(ToolError::InvalidArguments(
                "nothing to commit: the working tree matches HEAD (write files first)".into(),
            ));
        }
        let context = a
            .context
            .clone()
            .or_else(|| self.kube.context.clone())
            .or_else(|| super::helm::current_context(self.kube.kubeconfig.as_deref()));
        Ok(PushPlan {
            remote: self.remote_of(dir),
            branch: current,
            tree,
            parent,
            context,
        })
    }

    fn change(c: &Call) -> Option<Change> {
        let p = c.push.as_ref()?;
        Some(Change {
            target: format!("remote={} branch={}", p.remote, p.branch),
            content_hash: super::canonical_hash(&json!({
                "tree": p.tree.to_string(),
                "parent": p.parent.map(|x| x.to_string()),
            })),
            dry_run_hint: "call git commit_push with dry_run: true and the same paths (after your last file change)".into(),
        })
    }

    async fn run(&self, c: Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        if c.op == Operation::Open {
            return self.open(&c.a, ctx).await;
        }
        let dir = c.repo.clone().unwrap_or_default();
        match c.op {
            Operation::Status => status(&dir),
            Operation::Diff => diff(&dir),
            Operation::Log => log(&dir),
            Operation::ReadFile => {
                let rel = rel_path(c.a.path.as_deref().unwrap_or_default())?;
                let bytes = Root::open(&dir)?.read(&rel, MAX_FILE as u64)?;
                let text = String::from_utf8_lossy(&bytes);
                Ok(exec::compact(&text, 400, 20))
            }
            Operation::ListFiles => list_files(&dir, c.a.path.as_deref()),
            Operation::WriteFile => self.write_file(&dir, &c.a, ctx),
            Operation::RemoveFile => {
                let rel = rel_path(c.a.path.as_deref().unwrap_or_default())?;
                Root::open(&dir)?.remove_file(&rel)?;
                Ok(format!("removed {}", rel.display()))
            }
            Operation::Branch => branch(&dir, c.a.branch.as_deref().unwrap_or_default()),
            Operation::Revert => revert(&dir, c.a.commit.as_deref().unwrap_or_default()),
            Operation::CommitPush => {
                let Some(plan) = c.push.clone() else {
                    return Err(ToolError::Failed("no commit plan".into()));
                };
                if c.a.dry_run == Some(true) {
                    self.dry_run(&dir, &c.a, &plan, ctx).await
                } else {
                    self.commit_push(&dir, &c.a, &plan).await
                }
            }
            Operation::Open => Err(ToolError::Failed("unreachable".into())),
        }
    }

    async fn open(&self, a: &Args, ctx: &ToolCtx) -> Result<String, ToolError> {
        let (dir, remote) = match (&a.path, a.remote.clone().or_else(|| self.default_remote.clone())) {
            (Some(p), _) => {
                // a local checkout, used in place: only under the workspace or the current
                // directory, reached from there without following a symlink
                let canon = checkout_dir(p, &ctx.workspace)?;
                let repo = Repository::open(&canon).map_err(gerr)?;
                let wd = repo
                    .workdir()
                    .ok_or_else(|| ToolError::InvalidArguments(format!("{p} is a bare repository")))?
                    .to_path_buf();
                let remote = repo
                    .find_remote("origin")
                    .ok()
                    .and_then(|r| r.url().ok().map(str::to_string))
                    .unwrap_or_default();
                let wd = std::fs::canonicalize(&wd).unwrap_or(wd);
                (wd, remote)
            }
            (None, Some(remote)) => {
                if remote.starts_with('-') || remote.trim().is_empty() {
                    return Err(ToolError::InvalidArguments(format!("invalid remote `{remote}`")));
                }
                let name = remote
                    .trim_end_matches('/')
                    .rsplit(['/', ':'])
                    .next()
                    .unwrap_or("repo")
                    .trim_end_matches(".git")
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                    .collect::<String>();
                let id = super::sha256_hex(remote.as_bytes());
                let base = ctx.workspace.join("gitops");
                std::fs::create_dir_all(&base)
                    .map_err(|e| ToolError::Failed(format!("creating {}: {e}", base.display())))?;
                let dest = base.join(format!("{}-{}", if name.is_empty() { "repo" } else { &name }, &id[..8]));
                if dest.join(".git").exists() {
                    fetch(&dest, &remote).await?;
                    fast_forward(&dest)?;
                } else {
                    clone(&remote, &dest, a.branch.as_deref()).await?;
                }
                let dest = std::fs::canonicalize(&dest).unwrap_or(dest);
                (dest, remote)
            }
            (None, None) => {
                return Err(ToolError::InvalidArguments(
                    "open needs `remote` (URL or path of the GitOps repo) or `path` (a local checkout); BOSUN_GITOPS_REMOTE is not set".into(),
                ))
            }
        };
        if let Some(b) = &a.branch {
            branch(&dir, b)?;
        }
        Self::lock(&self.repos).insert(
            dir.clone(),
            RepoInfo {
                remote: remote.clone(),
            },
        );
        *Self::lock(&self.last) = Some(dir.clone());
        let repo = Repository::open(&dir).map_err(gerr)?;
        let head = match repo.head() {
            Ok(h) => {
                let c = h.peel_to_commit().map_err(gerr)?;
                format!(
                    "branch {} at {} \"{}\"",
                    h.shorthand().unwrap_or("?"),
                    short(c.id()),
                    c.summary().ok().flatten().unwrap_or("")
                )
            }
            Err(_) => "an empty repository (no commits yet)".into(),
        };
        let files = count_files(&dir);
        let upstream = ahead_behind(&repo).unwrap_or_default();
        Ok(format!(
            "opened {} (remote {}): {head}{upstream}; {files} files. Pass repo={} only if you open several repositories.",
            dir.display(),
            if remote.is_empty() { "none" } else { &remote },
            dir.display()
        ))
    }

    fn write_file(&self, dir: &Path, a: &Args, ctx: &ToolCtx) -> Result<String, ToolError> {
        let rel = rel_path(a.path.as_deref().unwrap_or_default())?;
        let content = a.content.clone().unwrap_or_default();
        if content.len() > MAX_FILE {
            return Err(ToolError::InvalidArguments(format!(
                "content is larger than {} KiB",
                MAX_FILE / 1024
            )));
        }
        // files in the repo hold references, never secret values
        if ctx.redactor.redact(&content) != content {
            return Err(ToolError::InvalidArguments(
                "the content contains a secret value; write a vault reference vault:<mount>/<path>#<key> instead".into(),
            ));
        }
        let mode = if a.executable == Some(true) {
            0o755
        } else {
            0o644
        };
        let existed = Root::open(dir)?.write(&rel, content.as_bytes(), mode)?;
        Ok(format!(
            "{} {} ({} bytes, {} lines)",
            if existed { "updated" } else { "created" },
            rel.display(),
            content.len(),
            content.lines().count()
        ))
    }

    async fn dry_run(
        &self,
        dir: &Path,
        a: &Args,
        plan: &PushPlan,
        ctx: &ToolCtx,
    ) -> Result<String, ToolError> {
        let (files, objects, removed) = {
            let repo = Repository::open(dir).map_err(gerr)?;
            changed_content(&repo, plan)?
        };
        let mut problems: Vec<String> = Vec::new();
        for (path, status, text) in &files {
            if NEVER_COMMIT.iter().any(|n| path.contains(n)) {
                problems.push(format!("{path}: terraform state, plans and .terraform/ are never committed; remove it or add it to .gitignore"));
            }
            if let Some(t) = text {
                if ctx.redactor.redact(t) != *t {
                    problems.push(format!(
                        "{path}: contains a secret value; use a vault reference"
                    ));
                }
            }
            let _ = status;
        }
        let context = plan.context.clone().unwrap_or_default();
        let env = ctx.environment(&context);
        let docs: Vec<Value> = objects.iter().map(|(_, o)| o.clone()).collect();
        let findings = crate::checks::check_manifests(&docs, env);
        let mut text = format!(
            "commit-to-be on branch {} (tree {}, parent {}), pushed to {}:\n",
            plan.branch,
            short(plan.tree),
            plan.parent.map(short).unwrap_or_else(|| "none".into()),
            if plan.remote.is_empty() {
                "(no remote)"
            } else {
                &plan.remote
            }
        );
        for (path, status, _) in &files {
            text.push_str(&format!("  {status} {path}\n"));
        }
        if !removed.is_empty() {
            text.push_str(&format!(
                "objects removed from the repo (Flux prunes them if its Kustomization has prune: true): {}\n",
                removed.join(", ")
            ));
        }
        let mut report = manifests::DryRunReport::default();
        if !docs.is_empty() {
            let target = KubeTarget {
                kubeconfig: self.kube.kubeconfig.clone(),
                context: plan.context.clone(),
            };
            let cluster =
                self.clusters.get(&target).await.map_err(|e| {
                    ToolError::Failed(format!("server-side dry-run impossible: {e}"))
                })?;
            let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
            report = manifests::server_dry_run(&cluster, &docs, &ns).await;
            text.push_str(&format!(
                "server-side dry-run (context {}, env {env}): {} ok, {} rejected, {} skipped\n",
                cluster.context,
                report.ok.len(),
                report.errors.len(),
                report.skipped.len()
            ));
        } else {
            text.push_str(
                "no Kubernetes objects in the changed files: nothing to dry-run on the server\n",
            );
        }
        for e in &report.errors {
            text.push_str(&format!("  rejected: {e}\n"));
        }
        for s in &report.skipped {
            text.push_str(&format!("  skipped: {s}\n"));
        }
        for f in &findings {
            text.push_str(&format!("  {f}\n"));
        }
        for p in &problems {
            text.push_str(&format!("  error: {p}\n"));
        }
        if !report.errors.is_empty() || crate::checks::has_errors(&findings) || !problems.is_empty()
        {
            return Err(ToolError::Failed(format!(
                "dry-run failed; fix the files and dry-run again\n{text}"
            )));
        }
        text.push_str("dry-run ok: now commit_push with the same paths and a message (dry_run false); any file change needs a new dry-run");
        Ok(text)
    }

    async fn commit_push(
        &self,
        dir: &Path,
        a: &Args,
        plan: &PushPlan,
    ) -> Result<String, ToolError> {
        let message = a.message.clone().unwrap_or_default();
        let (commit_id, files) = {
            let repo = Repository::open(dir).map_err(gerr)?;
            let mut index = repo.index().map_err(gerr)?;
            stage(&mut index, a.paths.as_deref())?;
            let tree_id = index.write_tree().map_err(gerr)?;
            if tree_id != plan.tree {
                return Err(ToolError::Failed(
                    "the files changed after the call was admitted; dry-run again".into(),
                ));
            }
            index.write().map_err(gerr)?;
            let tree = repo.find_tree(tree_id).map_err(gerr)?;
            let sig = author(&repo)?;
            let parents: Vec<git2::Commit> = match plan.parent {
                Some(p) => vec![repo.find_commit(p).map_err(gerr)?],
                None => Vec::new(),
            };
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            let id = repo
                .commit(Some("HEAD"), &sig, &sig, &message, &tree, &refs)
                .map_err(gerr)?;
            let files = match (plan.parent, repo.find_commit(id)) {
                (_, Ok(c)) => {
                    let old = parents.first().and_then(|p| p.tree().ok());
                    repo.diff_tree_to_tree(old.as_ref(), Some(&c.tree().map_err(gerr)?), None)
                        .map(|d| d.deltas().len())
                        .unwrap_or(0)
                }
                (_, Err(e)) => return Err(gerr(e)),
            };
            (id, files)
        };
        if plan.remote.is_empty() {
            return Ok(format!(
                "committed {} on {} ({files} files); the repository has no remote, nothing pushed",
                short(commit_id),
                plan.branch
            ));
        }
        match push(dir, &plan.remote, &plan.branch).await {
            Ok(()) => Ok(format!(
                "committed {} on {} ({files} files) and pushed to {}: {}",
                short(commit_id),
                plan.branch,
                plan.remote,
                message.lines().next().unwrap_or("")
            )),
            Err(e) => {
                // undo the local commit, keep the changes in the working tree
                if let Ok(repo) = Repository::open(dir) {
                    let target = plan.parent.and_then(|p| repo.find_object(p, None).ok());
                    match target {
                        Some(obj) => {
                            let _ = repo.reset(&obj, git2::ResetType::Mixed, None);
                        }
                        None => {
                            // first commit: delete the branch ref again
                            if let Ok(mut r) =
                                repo.find_reference(&format!("refs/heads/{}", plan.branch))
                            {
                                let _ = r.delete();
                            }
                        }
                    }
                }
                Err(ToolError::Failed(format!(
                    "push to {} failed, the commit was undone (changes kept in the working tree): {e}. If the remote moved on, open the repo again (fetches), re-apply your change, dry-run and push again",
                    plan.remote
                )))
            }
        }
    }
}

fn short(id: Oid) -> String {
    id.to_string().chars().take(8).collect()
}

fn stage(index: &mut git2::Index, paths: Option<&[String]>) -> Result<(), ToolError> {
    let specs: Vec<String> = match paths {
        Some(ps) if !ps.is_empty() => {
            let mut v = Vec::new();
            for p in ps {
                v.push(rel_path(p)?.to_string_lossy().to_string());
            }
            v
        }
        _ => vec!["*".to_string()],
    };
    index
        .add_all(specs.iter(), IndexAddOption::DEFAULT, None)
        .map_err(gerr)?;
    index.update_all(specs.iter(), None).map_err(gerr)?;
    Ok(())
}

/// The tree of the commit-to-be (objects written to the object store; the index file untouched).
fn tree_to_be(
    repo: &Repository,
    paths: Option<&[String]>,
) -> Result<(Oid, Option<Oid>), ToolError> {
    let mut index = repo.index().map_err(gerr)?;
    stage(&mut index, paths)?;
    let tree = index.write_tree().map_err(gerr)?;
    let parent = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id());
    Ok((tree, parent))
}

type Changed = (
    Vec<(String, char, Option<String>)>,
    Vec<(String, Value)>,
    Vec<String>,
);

/// Files of the commit-to-be that differ from its parent, the Kubernetes objects in the added
/// and modified YAML files, and the objects of deleted files.
fn changed_content(repo: &Repository, plan: &PushPlan) -> Result<Changed, ToolError> {
    let new_tree = repo.find_tree(plan.tree).map_err(gerr)?;
    let old_tree = match plan.parent {
        Some(p) => Some(repo.find_commit(p).map_err(gerr)?.tree().map_err(gerr)?),
        None => None,
    };
    let d = repo
        .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None)
        .map_err(gerr)?;
    let mut files = Vec::new();
    let mut objects = Vec::new();
    let mut removed = Vec::new();
    let blob_text = |id: Oid| -> Option<String> {
        repo.find_blob(id)
            .ok()
            .filter(|b| !b.is_binary() && b.size() <= MAX_FILE)
            .map(|b| String::from_utf8_lossy(b.content()).to_string())
    };
    let is_yaml = |p: &str| p.ends_with(".yaml") || p.ends_with(".yml");
    for delta in d.deltas() {
        let path = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        let status = match delta.status() {
            git2::Delta::Added => 'A',
            git2::Delta::Deleted => 'D',
            git2::Delta::Renamed => 'R',
            _ => 'M',
        };
        if status == 'D' {
            if is_yaml(&path) {
                if let Some(t) = blob_text(delta.old_file().id()) {
                    for o in manifests::parse_docs(&t).unwrap_or_default() {
                        if is_k8s(&o) {
                            removed.push(manifests::object_key(&o));
                        }
                    }
                }
            }
            files.push((path, status, None));
            continue;
        }
        let text = blob_text(delta.new_file().id());
        if is_yaml(&path) {
            if let Some(t) = &text {
                match manifests::parse_docs(t) {
                    Ok(docs) => {
                        for o in docs.into_iter().filter(is_k8s) {
                            objects.push((path.clone(), o));
                        }
                    }
                    Err(e) => {
                        return Err(ToolError::Failed(format!(
                            "dry-run failed: {path} is not valid YAML: {e}"
                        )))
                    }
                }
            }
        }
        files.push((path, status, text));
    }
    Ok((files, objects, removed))
}

/// A Kubernetes object (not a kustomize or Helm config file).
fn is_k8s(o: &Value) -> bool {
    let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    o.get("kind").and_then(Value::as_str).is_some()
        && !api.is_empty()
        && !api.starts_with("kustomize.config.k8s.io")
        && o.pointer("/metadata/name").is_some()
}

fn count_files(dir: &Path) -> usize {
    Root::open(dir)
        .and_then(|r| r.list(Path::new(""), 100_000))
        .map_or(0, |v| v.len())
}

fn list_files(dir: &Path, under: Option<&str>) -> Result<String, ToolError> {
    let start = match under.filter(|u| !u.is_empty() && *u != ".") {
        Some(u) => rel_path(u)?,
        None => PathBuf::new(),
    };
    let mut files: Vec<String> = Root::open(dir)?
        .list(&start, 2000)?
        .into_iter()
        .map(|e| match e.kind {
            EntryKind::File => e.path.to_string_lossy().to_string(),
            EntryKind::Symlink => format!("{} (symlink, not followed)", e.path.to_string_lossy()),
        })
        .collect();
    files.sort();
    let n = files.len();
    let mut out = format!("{n} files:\n");
    for f in files.iter().take(300) {
        out.push_str(f);
        out.push('\n');
    }
    if n > 300 {
        out.push_str(&format!(
            "… {} more (list a subdirectory with path)\n",
            n - 300
        ));
    }
    Ok(out)
}

/// Move the current branch to its fetched upstream when it is only behind (like
/// `git merge --ff-only`); uncommitted changes to other files are kept, conflicting ones refuse.
fn fast_forward(dir: &Path) -> Result<(), ToolError> {
    let repo = Repository::open(dir).map_err(gerr)?;
    let Ok(head) = repo.head() else { return Ok(()) };
    let (Ok(name), Some(local)) = (head.shorthand().map(str::to_string), head.target()) else {
        return Ok(());
    };
    let Some(up) = repo
        .find_reference(&format!("refs/remotes/origin/{name}"))
        .ok()
        .and_then(|r| r.target())
    else {
        return Ok(());
    };
    let (ahead, behind) = repo.graph_ahead_behind(local, up).map_err(gerr)?;
    if behind == 0 || ahead > 0 {
        return Ok(());
    }
    let target = repo.find_commit(up).map_err(gerr)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.safe();
    repo.checkout_tree(target.as_object(), Some(&mut co))
        .map_err(|e| {
            ToolError::Failed(format!(
                "cannot fast-forward {name} to origin/{name}: {} (your uncommitted changes conflict with the remote's; see status)",
                e.message()
            ))
        })?;
    repo.find_reference(&format!("refs/heads/{name}"))
        .and_then(|mut r| r.set_target(up, "bosun: fast-forward").map(|_| ()))
        .map_err(gerr)?;
    Ok(())
}

fn ahead_behind(repo: &Repository) -> Option<String> {
    let head = repo.head().ok()?;
    let name = head.shorthand().ok()?.to_string();
    let local = head.target()?;
    let up = repo
        .find_reference(&format!("refs/remotes/origin/{name}"))
        .ok()?
        .target()?;
    let (ahead, behind) = repo.graph_ahead_behind(local, up).ok()?;
    if ahead == 0 && behind == 0 {
        Some(format!(", up to date with origin/{name}"))
    } else {
        Some(format!(", {ahead} ahead and {behind} behind origin/{name}"))
    }
}

fn status(dir: &Path) -> Result<String, ToolError> {
    let repo = Repository::open(dir).map_err(gerr)?;
    let branch = repo
        .head()
        .ok()
        .and_then(|h| h.shorthand().ok().map(str::to_string))
        .unwrap_or_else(|| "(no commits yet)".into());
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let st = repo.statuses(Some(&mut opts)).map_err(gerr)?;
    let mut lines = Vec::new();
    for e in st.iter() {
        let s = e.status();
        let code = if s.is_wt_new() || s.is_index_new() {
            "A"
        } else if s.is_wt_deleted() || s.is_index_deleted() {
            "D"
        } else if s.is_wt_renamed() || s.is_index_renamed() {
            "R"
        } else if s.is_ignored() {
            continue;
        } else {
            "M"
        };
        lines.push(format!("  {code} {}", e.path().unwrap_or("?")));
    }
    let up = ahead_behind(&repo).unwrap_or_default();
    if lines.is_empty() {
        return Ok(format!("on branch {branch}{up}; no changes"));
    }
    let n = lines.len();
    lines.truncate(200);
    Ok(format!(
        "on branch {branch}{up}; {n} changed files (not committed):\n{}",
        lines.join("\n")
    ))
}

fn diff(dir: &Path) -> Result<String, ToolError> {
    let repo = Repository::open(dir).map_err(gerr)?;
    let head_tree = repo.head().ok().and_then(|h| h.peel_to_tree().ok());
    let mut opts = git2::DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true)
        .context_lines(2);
    let d = repo
        .diff_tree_to_workdir_with_index(head_tree.as_ref(), Some(&mut opts))
        .map_err(gerr)?;
    let mut text = String::new();
    d.print(git2::DiffFormat::Patch, |_delta, _hunk, line| {
        match line.origin() {
            '+' | '-' | ' ' => text.push(line.origin()),
            _ => {}
        }
        text.push_str(&String::from_utf8_lossy(line.content()));
        true
    })
    .map_err(gerr)?;
    if text.trim().is_empty() {
        return Ok("no changes against HEAD".into());
    }
    Ok(exec::compact(&text, 300, 20))
}

fn log(dir: &Path) -> Result<String, ToolError> {
    let repo = Repository::open(dir).map_err(gerr)?;
    let mut walk = repo.revwalk().map_err(gerr)?;
    if walk.push_head().is_err() {
        return Ok("no commits yet".into());
    }
    let mut rows = Vec::new();
    for id in walk.take(15).flatten() {
        if let Ok(c) = repo.find_commit(id) {
            let t = jiff::Timestamp::from_second(c.time().seconds())
                .map(|t| t.to_string().chars().take(16).collect::<String>())
                .unwrap_or_default();
            rows.push(vec![
                short(id),
                t,
                c.author().name().unwrap_or("?").to_string(),
                c.summary().ok().flatten().unwrap_or("").to_string(),
            ]);
        }
    }
    Ok(super::table::render(
        &["COMMIT", "DATE", "AUTHOR", "SUMMARY"],
        &rows,
        15,
    ))
}

fn branch(dir: &Path, name: &str) -> Result<String, ToolError> {
    let repo = Repository::open(dir).map_err(gerr)?;
    let head = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let existing = repo.find_branch(name, git2::BranchType::Local).ok();
    let remote = repo
        .find_reference(&format!("refs/remotes/origin/{name}"))
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let what = match (existing, remote, head) {
        (Some(b), _, _) => {
            let target = b.get().peel_to_commit().map_err(gerr)?;
            let mut co = git2::build::CheckoutBuilder::new();
            co.safe();
            repo.checkout_tree(target.as_object(), Some(&mut co))
                .map_err(gerr)?;
            "switched to"
        }
        (None, Some(c), _) | (None, None, Some(c)) => {
            let mut co = git2::build::CheckoutBuilder::new();
            co.safe();
            repo.checkout_tree(c.as_object(), Some(&mut co))
                .map_err(gerr)?;
            repo.branch(name, &c, false).map_err(gerr)?;
            "created and switched to"
        }
        (None, None, None) => "set the unborn",
    };
    repo.set_head(&format!("refs/heads/{name}")).map_err(gerr)?;
    Ok(format!("{what} branch {name}"))
}

fn revert(dir: &Path, sha: &str) -> Result<String, ToolError> {
    let repo = Repository::open(dir).map_err(gerr)?;
    let id = Oid::from_str(sha).map_err(gerr)?;
    let c = repo
        .find_commit(id)
        .or_else(|_| repo.revparse_single(sha).and_then(|o| o.peel_to_commit()))
        .map_err(gerr)?;
    repo.revert(&c, None).map_err(gerr)?;
    let conflicts = repo.index().map(|i| i.has_conflicts()).unwrap_or(false);
    // leave no half-finished revert state behind: the change is in the working tree
    let _ = repo.cleanup_state();
    if conflicts {
        return Err(ToolError::Failed(format!(
            "reverting {} conflicts with later changes; fix the conflicting files (see status/diff) by hand",
            short(c.id())
        )));
    }
    Ok(format!(
        "reverted {} \"{}\" in the working tree; dry-run and commit_push it with a message like `revert: …`",
        short(c.id()),
        c.summary().ok().flatten().unwrap_or("")
    ))
}

/// Run the git CLI in bosun's sandbox. `remote`: the URL the command talks to, and whether it
/// writes there (push); a `file://` remote is shown to git (read-only unless it is pushed to).
async fn git_cli(
    args: Vec<String>,
    cwd: Option<&Path>,
    secs: u64,
    remote: (&str, bool),
) -> Result<(), ToolError> {
    let bin = crate::sandbox::find_binary("git").ok_or_else(|| {
        ToolError::Failed("the git binary is needed for network remotes; install git".into())
    })?;
    let mut cmd = Cmd::new(bin).args(&args).timeout(Duration::from_secs(secs));
    if let Some(d) = cwd {
        cmd = cmd.cwd(d);
    }
    // clone: the destination's parent is written
    if args.first().map(String::as_str) == Some("clone") {
        if let Some(dest) = args.last().map(Path::new) {
            if let Some(parent) = dest.parent() {
                cmd = cmd.rw(parent);
            }
        }
    }
    if let Some(p) = remote.0.strip_prefix("file://") {
        cmd = if remote.1 { cmd.rw(p) } else { cmd.ro(p) };
    }
    // the user's git and ssh credentials, read-only, at their usual place in a tmpfs HOME
    if let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from) {
        for rel in [".gitconfig", ".config/git", ".git-credentials", ".ssh"] {
            cmd = cmd.credential(home.join(rel));
        }
        cmd = cmd.env("HOME", home);
    }
    if let Some(sock) = std::env::var_os("SSH_AUTH_SOCK") {
        cmd = cmd
            .credential(std::path::PathBuf::from(&sock))
            .env("SSH_AUTH_SOCK", sock);
    }
    let out = exec::run(&cmd).await?;
    if out.success() {
        Ok(())
    } else {
        Err(ToolError::Failed(format!(
            "git {} failed: {}",
            args.first().map(String::as_str).unwrap_or(""),
            exec::compact(&out.combined(), 20, 5)
        )))
    }
}

async fn clone(remote: &str, dest: &Path, branch: Option<&str>) -> Result<(), ToolError> {
    if is_local(remote) {
        let remote = remote.to_string();
        let dest = dest.to_path_buf();
        let branch = branch.map(str::to_string);
        return tokio::task::spawn_blocking(move || {
            let mut b = git2::build::RepoBuilder::new();
            if let Some(br) = &branch {
                b.branch(br);
            }
            b.clone(&remote, &dest).map(|_| ()).map_err(gerr)
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    }
    let mut args = vec!["clone".to_string()];
    if let Some(b) = branch {
        args.extend(["--branch".to_string(), b.to_string()]);
    }
    args.extend([
        "--".to_string(),
        remote.to_string(),
        dest.display().to_string(),
    ]);
    git_cli(args, None, 300, (remote, false)).await
}

async fn fetch(dir: &Path, remote: &str) -> Result<(), ToolError> {
    if is_local(remote) {
        let dir = dir.to_path_buf();
        return tokio::task::spawn_blocking(move || {
            let repo = Repository::open(&dir).map_err(gerr)?;
            let mut r = repo.find_remote("origin").map_err(gerr)?;
            r.fetch::<&str>(&[], None, None).map_err(gerr)
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    }
    git_cli(
        vec!["fetch".into(), "origin".into()],
        Some(dir),
        300,
        (remote, false),
    )
    .await
}

async fn push(dir: &Path, remote: &str, branch: &str) -> Result<(), ToolError> {
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    if is_local(remote) {
        let dir = dir.to_path_buf();
        return tokio::task::spawn_blocking(move || {
            let repo = Repository::open(&dir).map_err(gerr)?;
            let mut r = repo.find_remote("origin").map_err(gerr)?;
            let rejected: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
            {
                let mut cb = git2::RemoteCallbacks::new();
                cb.push_update_reference(|name, status| {
                    if let Some(s) = status {
                        *rejected.borrow_mut() = Some(format!("{name}: {s}"));
                    }
                    Ok(())
                });
                let mut po = git2::PushOptions::new();
                po.remote_callbacks(cb);
                r.push(&[refspec.as_str()], Some(&mut po)).map_err(gerr)?;
            }
            match rejected.into_inner() {
                Some(why) => Err(ToolError::Failed(format!(
                    "the remote rejected the push ({why})"
                ))),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    }
    git_cli(
        vec!["push".into(), "origin".into(), refspec],
        Some(dir),
        300,
        (remote, true),
    )
    .await
}

impl Tool for Git {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "The GitOps repository: open/clone, read and write files inside it, diff, branch, revert, commit_push (after its dry-run)."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let c = self.parse(args)?;
        let target = match (&c.repo, &c.push) {
            (_, Some(p)) => format!("remote={} branch={}", p.remote, p.branch),
            (Some(r), None) => match &c.a.path {
                Some(p) => format!("{} in {}", p, r.display()),
                None => r.display().to_string(),
            },
            (None, None) => format!(
                "open {}",
                c.a.remote
                    .clone()
                    .or_else(|| c.a.path.clone())
                    .or_else(|| self.default_remote.clone())
                    .unwrap_or_default()
            ),
        };
        Ok(Invocation {
            min_effect: None,
            operation: c.op.as_str().to_string(),
            target,
            change: Self::change(&c),
            dry_run: c.op == Operation::CommitPush && c.a.dry_run == Some(true),
            scope: Scope {
                context: c.push.as_ref().and_then(|p| p.context.clone()),
                namespace: c.a.namespace.clone(),
                kinds: Vec::new(),
                objects: Vec::new(),
            },
        })
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let c = self.parse(&call.args)?;
            call.still_the_same(Self::change(&c).as_ref(), "repository", "dry-run again")?;
            self.run(c, ctx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_repository() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            ".git/hooks/pre-commit",
            "a/.git/config",
            "",
            "a/*",
        ] {
            assert!(rel_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            rel_path("./apps/web/x.yaml").expect("ok"),
            PathBuf::from("apps/web/x.yaml")
        );
    }

    #[test]
    fn local_and_network_remotes() {
        assert!(is_local("/srv/git/platform.git"));
        assert!(is_local("./x.git"));
        assert!(!is_local("https://github.com/o/r.git"));
        assert!(!is_local("git@github.com:o/r.git"));
        assert!(!is_local("file:///srv/git/x.git"));
    }
}
