//! `bosun validate` and `bosun tools` on the shipped agent and on broken copies.

use crate::common;

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

/// Rename skill `iac` and tool `helm` in the copy's agent.md to names bosun has no built-in for.
fn rename_in_agent_md(dir: &Path, from: &str, to: &str) {
    let p = dir.join("agent.md");
    let text = std::fs::read_to_string(&p).expect("read");
    let renamed = text.replacen(&format!("\"{from}\""), &format!("\"{to}\""), 1);
    assert_ne!(
        renamed, text,
        "agent.md has no \"{from}\"; update this test"
    );
    std::fs::write(&p, renamed).expect("write");
}

#[test]
fn a_missing_skill_names_the_expected_path() {
    let d = agent_copy();
    rename_in_agent_md(d.path(), "iac", "no-such-skill");
    let (code, _, err) = validate(d.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("skills/no-such-skill/SKILL.md"), "{err}");
    assert!(err.contains("skills/no-such-skill.md"), "{err}");
    assert!(err.contains("names skill `no-such-skill`"), "{err}");
    assert!(err.contains("no built-in skill of that name"), "{err}");
}

#[test]
fn errors_are_all_reported_at_once() {
    let d = agent_copy();
    rename_in_agent_md(d.path(), "iac", "no-such-skill");
    rename_in_agent_md(d.path(), "helm", "no-such-tool");
    let (code, _, err) = validate(d.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("skills/no-such-skill/SKILL.md") && err.contains("tools/no-such-tool.yaml"),
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
            "restore",
            "delete",
            "drain"
        ])
    );
}

// ---- the built-in defaults: tools, skills and prompt compiled in; `bosun init` ----

/// An empty directory holding only the seed agent (Druppie's infrastructure engineer, unchanged).
fn seed_alone() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let seed = common::repo_root().join("src/defaults/seed.agent.md");
    let text = std::fs::read_to_string(&seed).expect("seed");
    assert_eq!(text, bosun::defaults::SEED_AGENT);
    std::fs::write(d.path().join("agent.md"), text).expect("agent.md");
    d
}

/// Load `dir` and build its registry over every implementation this bosun ships.
fn registry(dir: &Path) -> Result<bosun::tools::Registry, String> {
    let loaded = bosun::agent::Agent::load(dir).map_err(|d| d.to_string())?;
    let impls =
        bosun::tools::implementations(&loaded.agent, &bosun::kube_client::KubeTarget::default());
    bosun::tools::Registry::build(&loaded.agent, impls)
        .map(|(r, _)| r)
        .map_err(|d| {
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
}

/// Every built-in implementation, keyed by name (no agent directory needed to make them).
fn code_operations() -> std::collections::BTreeMap<String, Vec<(String, bosun::effect::EffectClass)>>
{
    let d = seed_alone();
    let agent = bosun::agent::Agent::load(d.path())
        .expect("seed loads")
        .agent;
    bosun::tools::implementations(&agent, &bosun::kube_client::KubeTarget::default())
        .into_iter()
        .map(|t| {
            let ops = t
                .operations()
                .iter()
                .map(|(o, e)| (o.to_string(), *e))
                .collect();
            (t.name().to_string(), ops)
        })
        .collect()
}

#[test]
fn the_seed_alone_in_an_empty_dir_validates_and_offers_its_tools() {
    let d = seed_alone();
    let (code, out, err) = validate(d.path());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("error:"), "{err}");
    assert!(
        out.contains("agent `infrastructure-engineer` (5 skills, 5 tool manifests"),
        "{out}"
    );
    let reg = registry(d.path()).expect("registry");
    let names: Vec<&str> = reg.names().collect();
    assert_eq!(
        names,
        [
            "activate_skill",
            "flux",
            "hashicorp-vault",
            "helm",
            "kubectl",
            "terraform",
        ]
    );
    // every operation the code implements is offered, at the default manifest's class
    let code = code_operations();
    for tool in ["flux", "hashicorp-vault", "helm", "kubectl", "terraform"] {
        let r = reg.get(tool).expect("offered");
        let offered: Vec<&String> = r.operations.keys().collect();
        let mut implemented: Vec<&String> = code[tool].iter().map(|(o, _)| o).collect();
        implemented.sort();
        assert_eq!(offered, implemented, "{tool}");
    }
    let kubectl = reg.get("kubectl").expect("kubectl");
    use bosun::effect::EffectClass::*;
    assert_eq!(kubectl.operations["get"], ReadOnly);
    assert_eq!(kubectl.operations["apply_dry_run"], DryRun);
    assert_eq!(kubectl.operations["delete"], Destructive);
    assert_eq!(
        reg.get("flux").expect("flux").operations["create"],
        WorkspaceWrite
    );
    // the default descriptions are listed (the schema carries only an agent's own words)
    assert!(kubectl.descriptions["apply"].starts_with(
        "Server-side apply of manifests identical to those that passed apply_dry_run"
    ));
    // the built-in skills load their bodies from the binary
    let agent = bosun::agent::Agent::load(d.path()).expect("loads").agent;
    let body = agent
        .skill("kubernetes")
        .expect("skill")
        .body()
        .expect("body");
    assert!(!body.trim().is_empty());
}

#[test]
fn every_code_operation_is_in_the_default_manifest_at_the_same_or_a_stricter_class() {
    let code = code_operations();
    for name in bosun::defaults::manifest_names() {
        let m = bosun::agent::manifest::builtin(name)
            .expect("built-in")
            .unwrap_or_else(|d| panic!("{d}"));
        let ops = code
            .get(name)
            .unwrap_or_else(|| panic!("default manifest `{name}` has no implementation"));
        for (op, class) in ops {
            let spec = m.operations.get(op).unwrap_or_else(|| {
                panic!("tools/{name}.yaml lacks operation `{op}` that the code implements")
            });
            assert!(
                spec.effect >= *class,
                "tools/{name}.yaml: `{op}` is {} but the code says {class}",
                spec.effect
            );
            assert!(
                !spec.description.trim().is_empty(),
                "tools/{name}.yaml: `{op}` has no description"
            );
        }
        for op in m.operations.keys() {
            assert!(
                ops.iter().any(|(o, _)| o == op),
                "tools/{name}.yaml lists `{op}`, which the code does not implement"
            );
        }
    }
    // every tool with operations of its own (not a planner verb) has a default manifest
    for name in code.keys() {
        if !bosun::tools::BUILTIN_TOOL_NAMES.contains(&name.as_str()) {
            assert!(
                bosun::defaults::manifest_text(name).is_some(),
                "tool `{name}` has no compiled-in manifest"
            );
        }
    }
}

#[test]
fn a_manifest_in_the_agent_dir_tightens_the_default() {
    let d = seed_alone();
    std::fs::create_dir_all(d.path().join("tools")).expect("mkdir");
    std::fs::write(
        d.path().join("tools/kubectl.yaml"),
        "name: kubectl\noperations:\n  get: {effect: read_only}\n  describe: {effect: mutating, description: \"Describe carefully\"}\n",
    )
    .expect("write");
    let reg = registry(d.path()).expect("tightening is allowed");
    let k = reg.get("kubectl").expect("kubectl");
    use bosun::effect::EffectClass::*;
    assert_eq!(
        k.operations
            .iter()
            .map(|(o, e)| (o.as_str(), *e))
            .collect::<Vec<_>>(),
        [("describe", Mutating), ("get", ReadOnly)]
    );
    assert_eq!(
        k.spec.parameters["properties"]["operation"]["enum"],
        serde_json::json!(["get", "describe"])
    );
    // the file's description wins and reaches the model; an operation without one keeps the
    // default's
    assert_eq!(k.descriptions["describe"], "Describe carefully");
    let op_desc = k.spec.parameters["properties"]["operation"]["description"]
        .as_str()
        .expect("operation description");
    assert!(
        op_desc.contains("describe: Describe carefully"),
        "{op_desc}"
    );
    assert!(!op_desc.contains("get: "), "{op_desc}");
    assert!(k.descriptions["get"].starts_with("List or fetch objects"));
    // the tool's description falls back to the default manifest's
    assert!(
        k.description.starts_with("Read, dry-run, apply"),
        "{}",
        k.description
    );
    // the other tools keep their defaults
    assert_eq!(
        reg.get("helm").expect("helm").operations["uninstall"],
        Destructive
    );
}

#[test]
fn a_loosening_manifest_is_an_error_at_its_line() {
    let d = seed_alone();
    std::fs::create_dir_all(d.path().join("tools")).expect("mkdir");
    let helm = d.path().join("tools/helm.yaml");
    std::fs::write(
        &helm,
        "name: helm\noperations:\n  status: {effect: read_only}\n  upgrade: {effect: read_only}\n",
    )
    .expect("write");
    // looser than the default manifest, though as loose as the code: still an error
    let flux = d.path().join("tools/flux.yaml");
    std::fs::write(
        &flux,
        "name: flux\noperations:\n  create: {effect: read_only}\n",
    )
    .expect("write");
    let (code, _, err) = validate(d.path());
    assert_eq!(code, 1, "{err}");
    let want = format!(
        "{}:4:3: error: operation `upgrade` is declared `read_only` but bosun classifies it as `mutating`",
        helm.display()
    );
    assert!(err.contains(&want), "expected {want} in:\n{err}");
    let want = format!(
        "{}:3:3: error: operation `create` is declared `read_only` but bosun classifies it as `workspace_write`",
        flux.display()
    );
    assert!(err.contains(&want), "expected {want} in:\n{err}");
    assert!(err.contains("write `effect: mutating`"), "{err}");
}

#[test]
fn tools_manifest_prints_the_compiled_default() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .args(["tools", "--manifest", "kubectl"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let printed =
        bosun::agent::manifest::parse(Path::new("stdout"), &text, "kubectl", &mut Vec::new())
            .unwrap_or_else(|d| panic!("{d}"));
    let builtin = bosun::agent::manifest::builtin("kubectl")
        .expect("built-in")
        .expect("parses");
    assert_eq!(
        serde_json::to_value(&printed).expect("json"),
        serde_json::to_value(&builtin).expect("json")
    );
    let ops: Vec<&String> = printed.operations.keys().collect();
    assert!(ops.len() >= 18, "{ops:?}");
    let out = common::bosun_cmd(home.path())
        .args(["tools", "--manifest", "kubectll"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no built-in tool `kubectll`") && err.contains("kubectl"),
        "{err}"
    );
}

#[test]
fn init_scaffolds_an_agent_that_validates_and_never_overwrites() {
    let home = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("new-agent");
    let out = common::bosun_cmd(home.path())
        .arg("init")
        .arg(&dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "agent.md",
        "policy.yaml",
        "prompts/system.md.j2",
        "skills/kubernetes/SKILL.md",
        "skills/check-block-status/SKILL.md",
        "tools/kubectl.yaml",
        "tools/hashicorp-vault.yaml",
        "tools/git.yaml",
    ] {
        assert!(dir.join(f).is_file(), "{f} not written");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("agent.md")).expect("agent.md"),
        bosun::defaults::SEED_AGENT
    );
    let (code, out, err) = validate(&dir);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("error:"), "{err}");
    // a second init refuses, names what exists, and changes nothing
    std::fs::write(
        dir.join("tools/kubectl.yaml"),
        "name: kubectl\noperations:\n  get: {effect: read_only}\n",
    )
    .expect("edit");
    let out = common::bosun_cmd(home.path())
        .arg("init")
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&dir.join("agent.md").display().to_string())
            && err.contains("never overwrites"),
        "{err}"
    );
    assert!(std::fs::read_to_string(dir.join("tools/kubectl.yaml"))
        .expect("kept")
        .contains("get: {effect: read_only}"));
    // one existing file is enough to refuse: nothing else is written
    let partial = root.path().join("partial");
    std::fs::create_dir_all(&partial).expect("mkdir");
    std::fs::write(partial.join("policy.yaml"), "rules: []\n").expect("policy");
    let out = common::bosun_cmd(home.path())
        .arg("init")
        .arg(&partial)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy.yaml"));
    assert!(
        !partial.join("agent.md").exists(),
        "init wrote despite refusing"
    );
}
