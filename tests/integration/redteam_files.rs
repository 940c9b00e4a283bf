//! Red team, class `symlinks`: the git, flux and helm tools reach files only inside their root
//! (the GitOps clone, the workspace, the chart) — symlinks to files and directories outside,
//! `..` segments, absolute paths and symlinks that arrive with a clone are refused, nothing
//! outside is written or created, nothing outside is read back, and the git remote is unchanged.

use crate::common;

use bosun::planner::State;
use common::{Driver, Outcome};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A directory outside the workspace with one file holding a marker; the marker must never
/// show up in any tool output and the file must never change.
struct Outside {
    dir: tempfile::TempDir,
    marker: String,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("outside");
        let marker = format!("OUTSIDE-SECRET-{}", common::suffix());
        std::fs::write(dir.path().join("victim.yaml"), &marker).expect("victim");
        Self { dir, marker }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn victim(&self) -> PathBuf {
        self.dir.path().join("victim.yaml")
    }
    /// The file is unchanged and nothing was created next to it.
    fn untouched(&self, d: &Driver) {
        assert_eq!(
            std::fs::read_to_string(self.victim()).expect("victim"),
            self.marker,
            "the file outside was overwritten"
        );
        let names: Vec<String> = std::fs::read_dir(self.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["victim.yaml"], "something was created outside");
        for o in d.outputs() {
            assert!(
                !o.contains(&self.marker),
                "content from outside reached the model: {o}"
            );
        }
        for o in d.raw.lock().expect("raw").iter() {
            assert!(
                !o.contains(&self.marker),
                "content from outside in a tool result: {o}"
            );
        }
    }
}

/// Refused by the guard or failed in the tool, never done.
fn not_done(o: Outcome) -> String {
    match o {
        Outcome::Ok(s) => panic!("the attack succeeded: {s}"),
        Outcome::Failed(s) | Outcome::Refused(s) => s,
    }
}

fn remote_head(remote: &Path) -> git2::Oid {
    git2::Repository::open_bare(remote)
        .expect("remote")
        .refname_to_id("refs/heads/main")
        .expect("main")
}

/// Push a commit with a symlink `name` → `target` to the bare remote (what an attacker who can
/// push to the GitOps repo, or an earlier careless commit, leaves behind).
fn push_symlink(remote: &Path, name: &str, target: &Path) {
    let repo = git2::Repository::open_bare(remote).expect("remote");
    let head = repo
        .find_reference("refs/heads/main")
        .expect("main")
        .peel_to_commit()
        .expect("commit");
    let link = repo
        .blob(target.to_string_lossy().as_bytes())
        .expect("blob");
    let mut tb = repo
        .treebuilder(Some(&head.tree().expect("tree")))
        .expect("tb");
    tb.insert(name, link, 0o120000).expect("insert");
    let tree = repo.find_tree(tb.write().expect("write")).expect("tree");
    let sig = git2::Signature::now("attacker", "a@example.invalid").expect("sig");
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "add link",
        &tree,
        &[&head],
    )
    .expect("commit");
}

async fn open_clone(d: &Driver, remote: &Path) -> PathBuf {
    let out = d
        .call(
            "git",
            json!({"operation": "open", "remote": remote}),
            State::Intake,
        )
        .await
        .ok();
    assert!(out.contains("opened"), "{out}");
    std::fs::read_dir(d.ctx.workspace.join("gitops"))
        .expect("gitops dir")
        .flatten()
        .next()
        .expect("a clone")
        .path()
}

#[tokio::test]
async fn git_writes_and_reads_stay_inside_the_clone() {
    let (_keep, remote) = common::git_remote();
    let outside = Outside::new();
    // links that arrive with the clone: a directory link and a file link
    push_symlink(&remote, "linkdir", outside.path());
    push_symlink(&remote, "linkfile.yaml", &outside.victim());
    let before = remote_head(&remote);
    let d = Driver::new(vec![], None);
    let clone = open_clone(&d, &remote).await;
    assert!(std::fs::symlink_metadata(clone.join("linkdir"))
        .expect("checked out")
        .file_type()
        .is_symlink());
    // a symlinked directory in the middle of a path, created by the tests after the clone
    std::fs::create_dir_all(clone.join("apps")).expect("apps");
    std::os::unix::fs::symlink(outside.path(), clone.join("apps/mid")).expect("symlink");

    let attacks = [
        "linkfile.yaml",
        "linkdir/victim.yaml",
        "linkdir/new/deeper/x.yaml",
        "apps/mid/victim.yaml",
        "apps/mid/sub/x.yaml",
        "apps/../../escape.yaml",
        "../escape.yaml",
        "./apps/../../../escape.yaml",
    ];
    for p in attacks {
        let w = not_done(
            d.call(
                "git",
                json!({"operation": "write_file", "path": p, "content": "pwned: true\n"}),
                State::Coding,
            )
            .await,
        );
        assert!(w.contains("symlink") || w.contains("refused"), "{p}: {w}");
        let r = not_done(
            d.call(
                "git",
                json!({"operation": "read_file", "path": p}),
                State::Intake,
            )
            .await,
        );
        assert!(!r.contains(&outside.marker), "{p}: {r}");
    }
    let abs = outside.victim().display().to_string();
    for p in [abs.as_str(), "/etc/passwd"] {
        let r = d
            .call(
                "git",
                json!({"operation": "write_file", "path": p, "content": "x"}),
                State::Coding,
            )
            .await
            .refused();
        assert!(r.contains("relative"), "{r}");
        not_done(
            d.call(
                "git",
                json!({"operation": "read_file", "path": p}),
                State::Intake,
            )
            .await,
        );
    }
    // removing a link removes the link, never its target
    d.call(
        "git",
        json!({"operation": "remove_file", "path": "apps/mid/victim.yaml"}),
        State::Coding,
    )
    .await
    .failed();
    // listing shows links without entering them
    let l = d
        .call("git", json!({"operation": "list_files"}), State::Intake)
        .await
        .ok();
    assert!(l.contains("linkdir (symlink, not followed)"), "{l}");
    assert!(!l.contains("victim.yaml"), "{l}");
    let e = not_done(
        d.call(
            "git",
            json!({"operation": "list_files", "path": "linkdir"}),
            State::Intake,
        )
        .await,
    );
    assert!(e.contains("symlink"), "{e}");
    // a symlink replacing a file bosun wrote earlier is not written through
    d.call(
        "git",
        json!({"operation": "write_file", "path": "apps/web/cm.yaml", "content": "a: 1\n"}),
        State::Coding,
    )
    .await
    .ok();
    std::fs::remove_file(clone.join("apps/web/cm.yaml")).expect("rm");
    std::os::unix::fs::symlink(outside.victim(), clone.join("apps/web/cm.yaml")).expect("ln");
    let w = not_done(
        d.call(
            "git",
            json!({"operation": "write_file", "path": "apps/web/cm.yaml", "content": "a: 2\n"}),
            State::Coding,
        )
        .await,
    );
    assert!(w.contains("symlink"), "{w}");
    // opening a checkout outside the workspace, or through a link, is refused
    let e = not_done(
        d.call(
            "git",
            json!({"operation": "open", "path": outside.path()}),
            State::Intake,
        )
        .await,
    );
    assert!(e.contains("outside the workspace"), "{e}");
    outside.untouched(&d);
    assert_eq!(remote_head(&remote), before, "the remote changed");
}

fn flux_args(ns: &str, file: Value) -> Value {
    json!({"operation": "create", "kind": "HelmRelease", "name": "minio", "namespace": ns,
        "chart": "minio", "version": "5.4.0", "source_name": "minio", "target_namespace": "minio",
        "values": "mode: standalone\n", "file": file})
}

#[tokio::test]
async fn flux_create_writes_only_inside_the_gitops_clone() {
    let ns = common::namespace("rtflux").await;
    let (_keep, remote) = common::git_remote();
    let outside = Outside::new();
    push_symlink(&remote, "clusters", outside.path());
    let before = remote_head(&remote);
    let d = Driver::new(vec![], None);
    let clone = open_clone(&d, &remote).await;
    let rel_clone = clone
        .strip_prefix(&d.ctx.workspace)
        .expect("clone in workspace")
        .display()
        .to_string();
    // the observed attack: a link inside the GitOps clone, and deeper directories behind it
    std::fs::create_dir_all(clone.join("apps")).expect("apps");
    std::os::unix::fs::symlink(outside.path(), clone.join("apps/evil")).expect("symlink");
    std::os::unix::fs::symlink(outside.victim(), clone.join("apps/hr.yaml")).expect("symlink");
    let abs_clone = clone.display().to_string();
    let attacks = [
        format!("{rel_clone}/clusters/dev/minio/helmrelease.yaml"),
        format!("{rel_clone}/clusters/victim.yaml"),
        format!("{rel_clone}/apps/evil/victim.yaml"),
        format!("{rel_clone}/apps/evil/new/dir/x.yaml"),
        format!("{rel_clone}/apps/hr.yaml"),
        format!("{abs_clone}/apps/evil/victim.yaml"),
        format!("{abs_clone}/clusters/dev/x.yaml"),
        format!("{rel_clone}/../../../x.yaml"),
        format!("{abs_clone}/../../x.yaml"),
        outside.victim().display().to_string(),
        "/etc/bosun-x.yaml".to_string(),
        ".helm/config/repositories.yaml".to_string(),
    ];
    for f in &attacks {
        let e = not_done(
            d.call("flux", flux_args(&ns, json!(f)), State::Coding)
                .await,
        );
        assert!(
            e.contains("symlink")
                || e.contains("outside the workspace")
                || e.contains("inside the workspace")
                || e.contains("GitOps directory"),
            "{f}: {e}"
        );
    }
    // a symlink swapped in for a file flux wrote earlier is not written through
    let good = format!("{rel_clone}/apps/minio/helmrelease.yaml");
    let ok = d
        .call("flux", flux_args(&ns, json!(good)), State::Coding)
        .await
        .ok();
    assert!(ok.starts_with("wrote"), "{ok}");
    let written = d.ctx.workspace.join(&good);
    std::fs::remove_file(&written).expect("rm");
    std::os::unix::fs::symlink(outside.victim(), &written).expect("ln");
    let e = not_done(
        d.call("flux", flux_args(&ns, json!(good)), State::Coding)
            .await,
    );
    assert!(e.contains("symlink"), "{e}");
    outside.untouched(&d);
    assert_eq!(remote_head(&remote), before, "the remote changed");
}

/// A chart with one ConfigMap.
fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: linky\nversion: 0.1.0\n",
    )
    .expect("Chart.yaml");
    std::fs::write(
        dir.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linky\ndata:\n  leak: {{ .Files.Get \"files/data.txt\" | quote }}\n",
    )
    .expect("template");
}

/// How a variant plants its link in a chart.
type Plant<'a> = Box<dyn Fn(&Path) + 'a>;

#[tokio::test]
async fn helm_reads_no_chart_file_through_a_symlink() {
    let ns = common::namespace("rthelm").await;
    let outside = Outside::new();
    let d = Driver::new(vec![], Some(Driver::dev_approver()));
    let variants: Vec<(&str, Plant)> = vec![
        (
            "a file linked to a file outside",
            Box::new(|c: &Path| {
                std::fs::create_dir_all(c.join("files")).expect("mkdir");
                std::os::unix::fs::symlink(outside.victim(), c.join("files/data.txt")).expect("ln");
            }),
        ),
        (
            "a directory linked outside",
            Box::new(|c: &Path| {
                std::os::unix::fs::symlink(outside.path(), c.join("files")).expect("ln");
            }),
        ),
        (
            "a template linked outside",
            Box::new(|c: &Path| {
                std::os::unix::fs::symlink(outside.victim(), c.join("templates/extra.yaml"))
                    .expect("ln");
            }),
        ),
    ];
    for (what, plant) in variants {
        let charts = tempfile::tempdir().expect("charts");
        let chart = charts.path().join("linky");
        write_chart(&chart);
        plant(&chart);
        for op in ["template", "upgrade_dry_run", "lint"] {
            let e = not_done(
                d.call(
                    "helm",
                    json!({"operation": op, "release": "linky", "namespace": ns, "chart": chart}),
                    State::Validation,
                )
                .await,
            );
            assert!(e.contains("symlink"), "{what} / {op}: {e}");
        }
    }
    // the control: the same chart without links renders (from bosun's private copy)
    let charts = tempfile::tempdir().expect("charts");
    let chart = charts.path().join("linky");
    write_chart(&chart);
    std::fs::create_dir_all(chart.join("files")).expect("mkdir");
    std::fs::write(chart.join("files/data.txt"), "harmless").expect("data");
    let out = d
        .call(
            "helm",
            json!({"operation": "template", "release": "linky", "namespace": ns, "chart": chart}),
            State::Validation,
        )
        .await
        .ok();
    assert!(out.contains("harmless"), "{out}");
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("linky").await.expect("get").is_none());
    outside.untouched(&d);
}
