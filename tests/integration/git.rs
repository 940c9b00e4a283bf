//! The git tool on real repositories and a real bare remote, through the real guard: files are
//! written only inside the clone, the commit's manifests are checked and server-side dry-run
//! against the sandbox, and only the exact tree that passed is committed and pushed.

use crate::common;

use bosun::planner::State;
use common::{Driver, Outcome};
use serde_json::json;
use std::path::Path;

const V: State = State::Validation;
const D: State = State::Deployment;

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  greeting: hello\n";

fn deployment(ns: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: {image}\n          resources:\n            requests: {{cpu: 50m, memory: 64Mi}}\n            limits: {{cpu: 100m, memory: 128Mi}}\n"
    )
}

fn remote_file(remote: &Path, branch: &str, path: &str) -> Option<String> {
    let bare = git2::Repository::open_bare(remote).expect("open remote");
    let c = bare
        .find_reference(&format!("refs/heads/{branch}"))
        .ok()?
        .peel_to_commit()
        .ok()?;
    let entry = c.tree().ok()?.get_path(Path::new(path)).ok()?;
    let blob = bare.find_blob(entry.id()).ok()?;
    Some(String::from_utf8_lossy(blob.content()).to_string())
}

fn remote_head_message(remote: &Path) -> String {
    let bare = git2::Repository::open_bare(remote).expect("open remote");
    let c = bare
        .find_reference("refs/heads/main")
        .expect("main")
        .peel_to_commit()
        .expect("commit");
    c.message().expect("utf8").to_string()
}

#[tokio::test]
async fn write_dry_run_commit_push_and_revert_on_a_bare_remote() {
    let ns = common::namespace("gitops").await;
    let (_keep, remote) = common::git_remote();
    let d = Driver::new(vec![], None);
    let opened = d
        .call(
            "git",
            json!({"operation": "open", "remote": remote}),
            State::Intake,
        )
        .await
        .ok();
    assert!(
        opened.contains("branch main at") && opened.contains("up to date with origin/main"),
        "{opened}"
    );

    // files are written only inside the clone
    for bad in [
        "../escape.yaml",
        "/tmp/escape.yaml",
        ".git/hooks/pre-commit",
        "apps/../../x.yaml",
    ] {
        let r = d
            .call(
                "git",
                json!({"operation": "write_file", "path": bad, "content": "x"}),
                State::Coding,
            )
            .await
            .refused();
        assert!(r.contains("is refused"), "{bad}: {r}");
    }
    // a symlink inside the repository that points outside it is not followed
    let outside = tempfile::tempdir().expect("tempdir");
    let clone_dir = d.ctx.workspace.join("gitops");
    let clone = std::fs::read_dir(&clone_dir)
        .expect("clone dir")
        .flatten()
        .next()
        .expect("one clone")
        .path();
    std::os::unix::fs::symlink(outside.path(), clone.join("evil")).expect("symlink");
    let f = d
        .call(
            "git",
            json!({"operation": "write_file", "path": "evil/x.yaml", "content": "x"}),
            State::Coding,
        )
        .await
        .failed();
    assert!(f.contains("symlink"), "{f}");
    std::os::unix::fs::symlink(outside.path().join("file.yaml"), clone.join("evil.yaml"))
        .expect("symlink");
    let f = d
        .call(
            "git",
            json!({"operation": "write_file", "path": "evil.yaml", "content": "x"}),
            State::Coding,
        )
        .await
        .failed();
    assert!(f.contains("symlink"), "{f}");
    assert_eq!(
        std::fs::read_dir(outside.path()).expect("dir").count(),
        0,
        "nothing written outside"
    );
    std::fs::remove_file(clone.join("evil")).expect("rm");
    std::fs::remove_file(clone.join("evil.yaml")).expect("rm");

    let w = d
        .call("git", json!({"operation": "write_file", "path": "apps/web/configmap.yaml", "content": CONFIGMAP}), State::Coding)
        .await
        .ok();
    assert!(w.starts_with("created apps/web/configmap.yaml"), "{w}");
    // a plaintext Secret fails the platform checks in the dry-run
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2hunter2\n";
    d.call(
        "git",
        json!({"operation": "write_file", "path": "apps/web/secret.yaml", "content": secret}),
        State::Coding,
    )
    .await
    .ok();
    let dry = json!({"operation": "commit_push", "dry_run": true, "namespace": ns});
    let f = d.call("git", dry.clone(), V).await.failed();
    assert!(f.contains("stringData.password is a literal value"), "{f}");
    d.call(
        "git",
        json!({"operation": "remove_file", "path": "apps/web/secret.yaml"}),
        State::Coding,
    )
    .await
    .ok();

    // no push without a dry-run of this exact tree
    let push = json!({"operation": "commit_push", "message": "feat(dev/web): add web config"});
    let r = d.call("git", push.clone(), D).await.refused();
    assert!(
        r.contains("no successful dry-run") && r.contains("dry_run: true"),
        "{r}"
    );
    let ok = d.call("git", dry.clone(), V).await.ok();
    assert!(
        ok.contains("A apps/web/configmap.yaml") && ok.contains("1 ok, 0 rejected"),
        "{ok}"
    );
    // the server-side dry-run persisted nothing
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("web-config").await.expect("get").is_none());
    // a file written after the dry-run changes the tree: refused
    d.call(
        "git",
        json!({"operation": "write_file", "path": "NOTES.md", "content": "# notes\n"}),
        State::Coding,
    )
    .await
    .ok();
    let r = d.call("git", push.clone(), D).await.refused();
    assert!(r.contains("no successful dry-run"), "{r}");
    d.call(
        "git",
        json!({"operation": "remove_file", "path": "NOTES.md"}),
        State::Coding,
    )
    .await
    .ok();
    let st = d
        .call("git", json!({"operation": "status"}), State::Intake)
        .await
        .ok();
    assert!(st.contains("A apps/web/configmap.yaml"), "{st}");
    let df = d
        .call("git", json!({"operation": "diff"}), State::Intake)
        .await
        .ok();
    assert!(df.contains("+  greeting: hello"), "{df}");

    let pushed = d.call("git", push.clone(), D).await.ok();
    assert!(
        pushed.contains("pushed to") && pushed.contains("feat(dev/web): add web config"),
        "{pushed}"
    );
    assert_eq!(
        remote_file(&remote, "main", "apps/web/configmap.yaml").as_deref(),
        Some(CONFIGMAP)
    );
    assert_eq!(
        remote_head_message(&remote),
        "feat(dev/web): add web config"
    );
    let log = d
        .call("git", json!({"operation": "log"}), State::Intake)
        .await
        .ok();
    let sha = log
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("a commit row")
        .to_string();
    assert!(log.contains("feat(dev/web): add web config"), "{log}");
    let full = git2::Repository::open_bare(&remote)
        .expect("remote")
        .revparse_single(&sha)
        .expect("sha")
        .id()
        .to_string();

    // roll back with a revert: same dry-run, same push
    let rv = d
        .call(
            "git",
            json!({"operation": "revert", "commit": full}),
            State::Coding,
        )
        .await
        .ok();
    assert!(rv.contains("reverted"), "{rv}");
    let ok = d.call("git", dry.clone(), V).await.ok();
    assert!(
        ok.contains("D apps/web/configmap.yaml") && ok.contains("ConfigMap/web-config"),
        "{ok}"
    );
    d.call(
        "git",
        json!({"operation": "commit_push", "message": "revert: web config"}),
        D,
    )
    .await
    .ok();
    assert_eq!(
        remote_file(&remote, "main", "apps/web/configmap.yaml"),
        None
    );
}

#[tokio::test]
async fn the_api_server_rejection_fails_the_dry_run_and_a_rejected_push_is_undone() {
    let ns = common::namespace("gitbad").await;
    let (_keep, remote) = common::git_remote();
    let d = Driver::new(vec![], None);
    d.call(
        "git",
        json!({"operation": "open", "remote": remote}),
        State::Intake,
    )
    .await
    .ok();
    // a Deployment without a selector: the API server rejects it
    let bad = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bad, namespace: {ns}}}\nspec:\n  template:\n    metadata: {{labels: {{app: bad}}}}\n    spec: {{containers: [{{name: c, image: 'nginx:1.27.2', resources: {{requests: {{cpu: 1m, memory: 1Mi}}, limits: {{cpu: 1m, memory: 1Mi}}}}}}]}}\n"
    );
    d.call(
        "git",
        json!({"operation": "write_file", "path": "apps/bad.yaml", "content": bad}),
        State::Coding,
    )
    .await
    .ok();
    let f = d
        .call(
            "git",
            json!({"operation": "commit_push", "dry_run": true}),
            V,
        )
        .await
        .failed();
    assert!(
        f.contains("rejected by the API server") && f.contains("selector"),
        "{f}"
    );
    let r = d
        .call(
            "git",
            json!({"operation": "commit_push", "message": "bad"}),
            D,
        )
        .await
        .refused();
    assert!(r.contains("no successful dry-run"), "{r}");

    // a good change, but the remote moves on before the push
    d.call("git", json!({"operation": "write_file", "path": "apps/bad.yaml", "content": deployment(&ns, "nginx:1.27.2")}), State::Coding)
        .await
        .ok();
    let ok = d
        .call(
            "git",
            json!({"operation": "commit_push", "dry_run": true}),
            V,
        )
        .await
        .ok();
    assert!(ok.contains("1 ok, 0 rejected"), "{ok}");
    let other = tempfile::tempdir().expect("tempdir");
    let repo =
        git2::Repository::clone(remote.to_str().expect("utf8"), other.path()).expect("clone");
    std::fs::write(other.path().join("other.txt"), "x").expect("write");
    let mut idx = repo.index().expect("index");
    idx.add_path(Path::new("other.txt")).expect("add");
    idx.write().expect("write");
    let tree = repo
        .find_tree(idx.write_tree().expect("tree"))
        .expect("tree");
    let sig = git2::Signature::now("someone", "someone@example.invalid").expect("sig");
    let parent = repo.head().expect("head").peel_to_commit().expect("commit");
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        "concurrent change",
        &tree,
        &[&parent],
    )
    .expect("commit");
    repo.find_remote("origin")
        .expect("origin")
        .push(&["refs/heads/main:refs/heads/main"], None)
        .expect("push");

    let f = d
        .call(
            "git",
            json!({"operation": "commit_push", "message": "feat: web"}),
            D,
        )
        .await
        .failed();
    assert!(
        f.contains("push to") && f.contains("failed") && f.contains("commit was undone"),
        "{f}"
    );
    assert_eq!(remote_head_message(&remote), "concurrent change");
    let st = d
        .call("git", json!({"operation": "status"}), State::Intake)
        .await
        .ok();
    assert!(
        st.contains("A apps/bad.yaml"),
        "the change is kept in the working tree: {st}"
    );
    // open again: fetch and fast-forward, keeping the change; then dry-run and push succeed
    let o = d
        .call(
            "git",
            json!({"operation": "open", "remote": remote}),
            State::Intake,
        )
        .await
        .ok();
    assert!(
        o.contains("\"concurrent change\"") && o.contains("up to date with origin/main"),
        "{o}"
    );
    d.call(
        "git",
        json!({"operation": "commit_push", "dry_run": true}),
        V,
    )
    .await
    .ok();
    d.call(
        "git",
        json!({"operation": "commit_push", "message": "feat: web"}),
        D,
    )
    .await
    .ok();
    assert_eq!(remote_head_message(&remote), "feat: web");
    assert!(remote_file(&remote, "main", "other.txt").is_some());
    assert!(remote_file(&remote, "main", "apps/bad.yaml").is_some());
}

#[tokio::test]
async fn a_file_url_remote_goes_through_the_git_cli() {
    let (_keep, remote) = common::git_remote();
    let url = format!("file://{}", remote.display());
    let d = Driver::new(vec![], None);
    let o = d
        .call(
            "git",
            json!({"operation": "open", "remote": url}),
            State::Intake,
        )
        .await
        .ok();
    assert!(o.contains("branch main"), "{o}");
    d.call(
        "git",
        json!({"operation": "branch", "branch": "feature-x"}),
        State::Coding,
    )
    .await
    .ok();
    d.call("git", json!({"operation": "write_file", "path": "scripts/hello.sh", "content": "#!/usr/bin/env bash\necho hi\n", "executable": true}), State::Coding)
        .await
        .ok();
    let ok = d
        .call(
            "git",
            json!({"operation": "commit_push", "dry_run": true}),
            V,
        )
        .await
        .ok();
    assert!(ok.contains("no Kubernetes objects"), "{ok}");
    let p = d
        .call("git", json!({"operation": "commit_push", "message": "chore: add hello script", "branch": "feature-x"}), D)
        .await;
    let Outcome::Ok(p) = p else {
        panic!("push: {p:?}")
    };
    assert!(
        p.contains("on feature-x") && p.contains("pushed to file://"),
        "{p}"
    );
    assert!(remote_file(&remote, "feature-x", "scripts/hello.sh").is_some());
    assert!(remote_file(&remote, "main", "scripts/hello.sh").is_none());
    let bare = git2::Repository::open_bare(&remote).expect("remote");
    let c = bare
        .find_reference("refs/heads/feature-x")
        .expect("branch")
        .peel_to_commit()
        .expect("commit");
    let mode = c
        .tree()
        .expect("tree")
        .get_path(Path::new("scripts/hello.sh"))
        .expect("entry")
        .filemode();
    assert_eq!(mode, 0o100755, "executable bit committed");
}
