//! `bosun validate` and `bosun tools` on the shipped agent and on broken copies.

mod common;

use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).expect("copy");
        }
    }
}

/// A copy of the shipped agent in a temp dir.
fn agent_copy() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let root = common::repo_root();
    std::fs::copy(root.join("agent.md"), d.path().join("agent.md")).expect("agent.md");
    for sub in ["skills", "tools", "prompts"] {
        copy_dir(&root.join(sub), &d.path().join(sub));
    }
    d
}

fn validate(dir: &Path) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .arg("--agent")
        .arg(dir)
        .arg("validate")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn the_shipped_agent_validates() {
    let (code, out, err) = validate(&common::repo_root());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("agent `infrastructure-engineer` (5 skills, 7 tool manifests"),
        "{out}"
    );
    assert!(!err.contains("error:"), "{err}");
}

#[test]
fn bad_yaml_is_reported_with_file_line_and_column() {
    let d = agent_copy();
    let manifest = d.path().join("tools/kubectl.yaml");
    let text = std::fs::read_to_string(&manifest).expect("read");
    // break line 3: a mapping value where none is allowed
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "broken: value: x");
    std::fs::write(&manifest, lines.join("\n")).expect("write");
    let (code, _, err) = validate(d.path());
    assert_eq!(code, 1, "{err}");
    let want = format!(
        "{}:3:14: error: invalid YAML: mapping values are not allowed",
        manifest.display()
    );
    assert!(err.contains(&want), "expected {want} in:\n{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn a_missing_skill_names_the_expected_path() {
    let d = agent_copy();
    std::fs::remove_dir_all(d.path().join("skills/iac")).expect("rm");
    let (code, _, err) = validate(d.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("skills/iac/SKILL.md"), "{err}");
    assert!(err.contains("skills/iac.md"), "{err}");
    assert!(err.contains("names skill `iac`"), "{err}");
}

#[test]
fn errors_are_all_reported_at_once() {
    let d = agent_copy();
    std::fs::remove_dir_all(d.path().join("skills/iac")).expect("rm");
    std::fs::remove_file(d.path().join("tools/helm.yaml")).expect("rm");
    let (code, _, err) = validate(d.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("skills/iac/SKILL.md") && err.contains("tools/helm.yaml"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn a_manifest_may_tighten_an_effect_class() {
    let d = agent_copy();
    let manifest = d.path().join("tools/kubectl.yaml");
    let text = std::fs::read_to_string(&manifest).expect("read");
    let stricter = text.replacen(
        "  api_resources:\n    effect: read_only",
        "  api_resources:\n    effect: mutating",
        1,
    );
    assert_ne!(stricter, text, "manifest layout changed; update this test");
    std::fs::write(&manifest, &stricter).expect("write");
    let (code, _, err) = validate(d.path());
    assert_eq!(code, 0, "stricter is allowed: {err}");
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .arg("--agent")
        .arg(d.path())
        .arg("tools")
        .output()
        .expect("run");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.contains("api_resources") && l.contains("mutating")),
        "{listing}"
    );
}

#[test]
fn druppie_flat_skills_sub_agents_and_unknown_keys() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path();
    std::fs::create_dir_all(p.join("skills")).expect("mkdir");
    std::fs::create_dir_all(p.join("tools")).expect("mkdir");
    std::fs::create_dir_all(p.join("prompts")).expect("mkdir");
    std::fs::write(
        p.join("agent.md"),
        "---\nid: tiny\nname: Tiny\ndescription: A tiny agent\ntype: agent\nversion: 1.0\nskills: [triage]\nsub_agents: [helper]\ntools: [kubectl]\ncolour: blue\n---\nYou triage.\n",
    )
    .expect("agent");
    std::fs::write(
        p.join("skills/triage.md"),
        "---\nid: triage\nname: Triage\ndescription: Use when triaging\nsystem_prompt: Look at events first.\nallowed_tools: [kubectl]\n---\nThen pods.\n",
    )
    .expect("skill");
    std::fs::write(
        p.join("tools/kubectl.yaml"),
        "name: kubectl\ndescription: k8s\noperations:\n  get: {effect: read_only}\n",
    )
    .expect("tool");
    std::fs::write(
        p.join("prompts/system.md.j2"),
        "{{ role }} {% for s in skills %}{{ s.name }}{% endfor %}",
    )
    .expect("prompt");
    // a named subagent must exist
    let e = bosun::agent::Agent::load(p).expect_err("agents/helper.md is missing");
    assert!(
        e.to_string().contains("names subagent `helper`")
            && e.to_string().contains("agents/helper.md"),
        "{e}"
    );
    std::fs::create_dir_all(p.join("agents")).expect("mkdir");
    std::fs::write(
        p.join("agents/helper.md"),
        "---\nid: helper\nname: Helper\ndescription: helps\ntools: [kubectl]\n---\nYou help.\n",
    )
    .expect("helper");
    let loaded = bosun::agent::Agent::load(p).expect("loads");
    assert_eq!(loaded.agent.def.subagents, vec!["helper".to_string()]);
    assert_eq!(loaded.agent.subagents[0].role, "You help.");
    assert_eq!(loaded.agent.def.version.as_deref(), Some("1"));
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("unknown key `colour`") && w.contains("agent.md:10:")),
        "{w:?}"
    );
    let skill = loaded.agent.skill("triage").expect("skill");
    let body = skill.body().expect("body");
    assert!(
        body.starts_with("Look at events first.") && body.contains("Then pods."),
        "{body}"
    );
    let (code, out, err) = validate(p);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("agent `tiny` (1 skills, 1 tool manifests"),
        "{out}"
    );
}

#[test]
fn tools_json_schemas_are_strict() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["tools", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let tools = v.as_array().expect("array");
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"kubectl") && names.contains(&"activate_skill"),
        "{names:?}"
    );
    for t in tools {
        assert_eq!(t["function"]["strict"], true);
        let v = bosun::tools::schema::violations(&t["function"]["parameters"]);
        assert!(v.is_empty(), "{}: {v:?}", t["function"]["name"]);
    }
    let kubectl = tools
        .iter()
        .find(|t| t["function"]["name"] == "kubectl")
        .expect("kubectl");
    // only implemented operations are offered
    assert_eq!(
        kubectl["function"]["parameters"]["properties"]["operation"]["enum"],
        serde_json::json!([
            "get",
            "describe",
            "logs",
            "events",
            "rollout_status",
            "auth_can_i",
            "api_resources",
            "wait",
            "apply_dry_run",
            "diff",
            "apply",
            "scale",
            "rollout_restart",
            "rollout_undo",
            "annotate",
            "label",
            "delete",
            "drain"
        ])
    );
}
