//! The terraform tool on the real terraform binary, through the real guard: plan → apply of the
//! saved plan; an edited configuration, an edited planfile and a stale plan are refused; destroy
//! only through a destroy plan; sensitive values never printed. One test uses a real provider
//! (hashicorp/aws from the local mirror) against a moto server on loopback.

use crate::common;

use bosun::planner::State;
use bosun::tools::terraform::{Terraform, TerraformSettings};
use common::Driver;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const V: State = State::Validation;
const D: State = State::Deployment;

fn terraform(mirror: Option<PathBuf>) -> Arc<Terraform> {
    let binary = bosun::sandbox::find_binary("terraform").unwrap_or_else(|| {
        panic!("terraform is not installed (see README.md: it must be on PATH)")
    });
    Arc::new(Terraform::new(TerraformSettings {
        binary: Some(binary),
        plugin_mirror: mirror,
    }))
}

const MAIN_TF: &str = r#"variable "name" {
  type = string
}

variable "token" {
  type      = string
  sensitive = true
}

resource "terraform_data" "marker" {
  input = var.name
}

output "marker" {
  value = terraform_data.marker.output
}

output "token" {
  value     = var.token
  sensitive = true
}
"#;

fn find_planfile(ws: &Path, name: &str) -> PathBuf {
    let base = ws.join("terraform");
    for e in std::fs::read_dir(&base).expect("terraform dir").flatten() {
        let p = e.path().join("plans").join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("no planfile {name} under {}", base.display());
}

#[tokio::test]
async fn plan_apply_the_saved_plan_refuse_edits_and_destroy_via_a_destroy_plan() {
    let ws = tempfile::tempdir().expect("workspace");
    let d = Driver::offline(
        vec![terraform(None)],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("marker");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let token = format!("tok-{}-{}", common::suffix(), common::suffix());
    let vars = format!("name: one\ntoken: {token}");
    let a = |op: &str, extra: serde_json::Value| {
        let mut v = json!({"operation": op, "dir": dir});
        for (k, x) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = x;
        }
        v
    };

    // fmt_check finds a badly formatted file; validate checks the configuration
    std::fs::write(
        dir.join("main.tf"),
        MAIN_TF.replace("  type = string", "type=string"),
    )
    .expect("write");
    let f = d
        .call("terraform", a("fmt_check", json!({})), State::Intake)
        .await
        .ok();
    assert!(
        f.contains("files need formatting") && f.contains("main.tf"),
        "{f}"
    );
    std::fs::write(dir.join("main.tf"), MAIN_TF).expect("write");
    let f = d
        .call("terraform", a("fmt_check", json!({})), State::Intake)
        .await
        .ok();
    assert_eq!(f, "all files are formatted");
    let v = d
        .call("terraform", a("validate", json!({})), State::Intake)
        .await
        .ok();
    assert!(v.starts_with("configuration is valid"), "{v}");

    // no apply without a plan; a plan is a dry-run
    let r = d
        .call("terraform", a("apply", json!({})), D)
        .await
        .refused();
    assert!(
        r.contains("no successful dry-run") && r.contains("terraform plan"),
        "{r}"
    );
    let p = d
        .call("terraform", a("plan", json!({"vars": vars})), V)
        .await
        .ok();
    assert!(
        p.contains("Plan: 1 to add, 0 to change, 0 to destroy")
            && p.contains("+ terraform_data.marker"),
        "{p}"
    );
    assert!(
        p.contains("apply it with terraform apply planfile=bosun.tfplan"),
        "{p}"
    );
    let planfile = find_planfile(ws.path(), "bosun.tfplan");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&planfile)
            .expect("planfile")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the planfile holds variables: private to the user"
        );
    }
    // the var file with the resolved values is gone after the plan
    let leftovers: Vec<_> = walk(ws.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("vars-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // apply is not allowed in validation; in deployment it applies the saved plan
    let r = d
        .call("terraform", a("apply", json!({})), V)
        .await
        .refused();
    assert!(r.contains("not allowed in the validation state"), "{r}");
    let ap = d.call("terraform", a("apply", json!({})), D).await.ok();
    assert!(
        ap.contains("Apply complete! Resources: 1 added, 0 changed, 0 destroyed."),
        "{ap}"
    );
    assert!(!planfile.exists(), "a saved plan is applied at most once");
    let out = d
        .call("terraform", a("output", json!({})), State::Intake)
        .await
        .ok();
    assert!(
        out.contains("marker = \"one\"") && out.contains("token = (sensitive; value hidden)"),
        "{out}"
    );
    let st = d
        .call("terraform", a("show", json!({})), State::Intake)
        .await
        .ok();
    assert!(
        st.contains("1 resources in state") && st.contains("terraform_data.marker"),
        "{st}"
    );

    // an edited configuration with the old plan: refused by the guard
    let vars2 = format!("name: two\ntoken: {token}");
    d.call("terraform", a("plan", json!({"vars": vars2})), V)
        .await
        .ok();
    std::fs::write(dir.join("extra.tf"), "output \"extra\" {\n  value = 1\n}\n").expect("edit");
    let r = d
        .call("terraform", a("apply", json!({})), D)
        .await
        .refused();
    assert!(
        r.contains("no successful dry-run of this exact change"),
        "{r}"
    );
    std::fs::remove_file(dir.join("extra.tf")).expect("undo");

    // an edited planfile: refused by bosun
    let p = d
        .call(
            "terraform",
            a("plan", json!({"vars": vars2, "planfile": "edited.tfplan"})),
            V,
        )
        .await
        .ok();
    assert!(
        p.contains("1 to change") || p.contains("1 to replace"),
        "{p}"
    );
    let pf = find_planfile(ws.path(), "edited.tfplan");
    let mut bytes = std::fs::read(&pf).expect("planfile");
    bytes.push(0);
    std::fs::write(&pf, bytes).expect("tamper");
    let f = d
        .call(
            "terraform",
            a("apply", json!({"planfile": "edited.tfplan"})),
            D,
        )
        .await
        .failed();
    assert!(f.contains("changed after plan wrote it"), "{f}");

    // a stale plan: two plans of the same state, the second applied after the first — terraform refuses
    d.call(
        "terraform",
        a("plan", json!({"vars": vars2, "planfile": "first.tfplan"})),
        V,
    )
    .await
    .ok();
    d.call(
        "terraform",
        a("plan", json!({"vars": vars2, "planfile": "second.tfplan"})),
        V,
    )
    .await
    .ok();
    let ap = d
        .call(
            "terraform",
            a("apply", json!({"planfile": "first.tfplan"})),
            D,
        )
        .await
        .ok();
    assert!(ap.contains("Apply complete!"), "{ap}");
    let f = d
        .call(
            "terraform",
            a("apply", json!({"planfile": "second.tfplan"})),
            D,
        )
        .await
        .failed();
    assert!(
        f.contains("Saved plan is stale") && f.contains("run plan again"),
        "{f}"
    );
    let out = d
        .call("terraform", a("output", json!({})), State::Intake)
        .await
        .ok();
    assert!(out.contains("marker = \"two\""), "{out}");

    // destroy: only through a destroy plan, only with the destroy operation
    let dp = d
        .call("terraform", a("destroy_plan", json!({"vars": vars2})), V)
        .await
        .ok();
    assert!(
        dp.contains("Plan: 0 to add, 0 to change, 1 to destroy")
            && dp.contains("- terraform_data.marker"),
        "{dp}"
    );
    let r = d
        .call(
            "terraform",
            a("apply", json!({"planfile": "destroy.tfplan"})),
            D,
        )
        .await
        .refused();
    assert!(r.contains("is a destroy plan"), "{r}");
    let ds = d.call("terraform", a("destroy", json!({})), D).await.ok();
    assert!(
        ds.contains("Resources: 0 added, 0 changed, 1 destroyed."),
        "{ds}"
    );
    let st = d
        .call("terraform", a("show", json!({})), State::Intake)
        .await
        .ok();
    assert_eq!(st, "the state is empty");

    // the sensitive variable never reached any output
    for t in d.outputs() {
        assert!(!t.contains(&token), "sensitive value leaked: {t}");
    }
}

#[tokio::test]
async fn a_plan_that_deletes_needs_approval() {
    let ws = tempfile::tempdir().expect("workspace");
    // no approver: destructive changes are refused
    let d = Driver::offline(vec![terraform(None)], None, ws.path().to_path_buf());
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_path_buf();
    std::fs::write(
        dir.join("main.tf"),
        "resource \"terraform_data\" \"a\" {}\nresource \"terraform_data\" \"b\" {}\n",
    )
    .expect("write");
    let a = |op: &str| json!({"operation": op, "dir": dir});
    d.call("terraform", a("plan"), V).await.ok();
    assert!(d
        .call("terraform", a("apply"), D)
        .await
        .ok()
        .contains("2 added"));
    // removing a resource from the configuration: the plan deletes it
    std::fs::write(
        dir.join("main.tf"),
        "resource \"terraform_data\" \"a\" {}\n",
    )
    .expect("write");
    let p = d.call("terraform", a("plan"), V).await.ok();
    assert!(
        p.contains("1 to destroy") && p.contains("needs approval"),
        "{p}"
    );
    let r = d.call("terraform", a("apply"), D).await.refused();
    assert!(r.contains("needs human approval"), "{r}");
}

/// Each apply's result ends with the plan that would undo it, computed from the applied plan's
/// JSON; the audit log keeps it next to the change, and the report (`changes[].undo`, read with
/// `audit::read_changes`) lists it: a create is undone by a destroy, an update by the prior
/// values, a delete by a re-create.
#[tokio::test]
async fn an_apply_is_reported_with_the_plan_that_would_undo_it() {
    let ws = tempfile::tempdir().expect("workspace");
    let d = Driver::offline(
        vec![terraform(None)],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    let logs = tempfile::tempdir().expect("audit dir");
    let log = bosun::audit::AuditLog::open(logs.path(), "tf-undo").expect("audit log");
    let env = bosun::dispatch::CallEnv {
        audit: Some(&log),
        ..d.env()
    };
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_path_buf();
    let mut n = 0;
    let mut call = |op: &'static str, state: State| {
        n += 1;
        let c = bosun::model::ToolCall {
            id: format!("call-{n}"),
            name: "terraform".into(),
            arguments: json!({"operation": op, "dir": dir}).to_string(),
        };
        let env = &env;
        async move {
            let r = env.call(&c, state).await;
            assert!(r.ok, "{op}: {}", r.output);
            r.output
        }
    };
    std::fs::write(
        dir.join("main.tf"),
        "resource \"terraform_data\" \"a\" {\n  input = \"one\"\n}\nresource \"terraform_data\" \"b\" {}\n",
    )
    .expect("write");
    call("plan", V).await;
    let first = call("apply", D).await;
    assert!(
        first.contains("what would undo it:") && first.contains("2 to destroy"),
        "{first}"
    );
    // a changes in place, b is removed
    std::fs::write(
        dir.join("main.tf"),
        "resource \"terraform_data\" \"a\" {\n  input = \"two\"\n}\n",
    )
    .expect("write");
    call("plan", V).await;
    call("apply", D).await;

    let (changes, _) = bosun::audit::read_changes(log.path());
    let applies: Vec<_> = changes.iter().filter(|c| c.operation == "apply").collect();
    assert_eq!(applies.len(), 2, "{changes:#?}");
    let undo = |i: usize| applies[i].undo.clone().unwrap_or_default();
    assert!(
        undo(0).contains("2 to destroy, 0 to change back, 0 to re-create")
            && undo(0).contains("- terraform_data.a (created by this apply: would be destroyed)")
            && undo(0).contains("- terraform_data.b (created by this apply"),
        "{}",
        undo(0)
    );
    assert!(
        undo(1).contains("0 to destroy, 1 to change back, 1 to re-create")
            && undo(1).contains(
                "~ terraform_data.a (back to its prior values): input: \"two\" → \"one\""
            )
            && undo(1).contains("+ terraform_data.b (deleted by this apply"),
        "{}",
        undo(1)
    );
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A moto server on a free loopback port, stopped on drop.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let bin = bosun::sandbox::find_binary("moto_server").unwrap_or_else(|| {
        panic!("moto_server is not installed: run scripts/install-deps.sh (pip install 'moto[server]')")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start moto_server");
    let m = Moto { child, port };
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .is_ok()
        {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start on port {port}");
}

#[tokio::test]
async fn a_real_provider_creates_and_destroys_an_s3_bucket_on_moto() {
    let mirror = std::env::var_os("BOSUN_TF_PLUGIN_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tf-plugins"));
    assert!(
        mirror.join("registry.terraform.io/hashicorp/aws").is_dir(),
        "the hashicorp/aws provider mirror is missing at {} (set BOSUN_TF_PLUGIN_MIRROR)",
        mirror.display()
    );
    let m = moto().await;
    let ws = tempfile::tempdir().expect("workspace");
    let d = Driver::offline(
        vec![terraform(Some(mirror))],
        Some(Driver::dev_approver()),
        ws.path().to_path_buf(),
    );
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_path_buf();
    let bucket = format!("bosun-{}", common::suffix());
    std::fs::write(
        dir.join("main.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "5.100.0"
    }}
  }}
}}

provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  endpoints {{
    s3 = "http://127.0.0.1:{port}"
  }}
}}

resource "aws_s3_bucket" "b" {{
  bucket = "{bucket}"
}}
"#,
            port = m.port
        ),
    )
    .expect("main.tf");
    let a = |op: &str| json!({"operation": op, "dir": dir, "timeout_seconds": 300});
    let p = d.call("terraform", a("plan"), V).await.ok();
    assert!(
        p.contains("Plan: 1 to add") && p.contains("+ aws_s3_bucket.b"),
        "{p}"
    );
    let ap = d.call("terraform", a("apply"), D).await.ok();
    assert!(ap.contains("Apply complete! Resources: 1 added"), "{ap}");
    let list = reqwest::get(format!("http://127.0.0.1:{}/", m.port))
        .await
        .expect("list buckets")
        .text()
        .await
        .expect("body");
    assert!(list.contains(&bucket), "the bucket exists in moto: {list}");
    let dp = d.call("terraform", a("destroy_plan"), V).await.ok();
    assert!(dp.contains("1 to destroy"), "{dp}");
    let ds = d.call("terraform", a("destroy"), D).await.ok();
    assert!(
        ds.contains("Resources: 0 added, 0 changed, 1 destroyed."),
        "{ds}"
    );
    let list = reqwest::get(format!("http://127.0.0.1:{}/", m.port))
        .await
        .expect("list buckets")
        .text()
        .await
        .expect("body");
    assert!(!list.contains(&bucket), "the bucket is gone: {list}");
}
