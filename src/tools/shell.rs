//! The `shell` tool: run one program with an argv array. Off unless the agent lists `shell` in
//! its tools; always destructive (a dry-run, then a human approval for every run). No shell
//! interpolation (the argv goes to `execve` as given), an environment with only PATH, HOME and
//! LANG (no credentials), a timeout that stops the whole process group.
//!
//! The dry-run resolves the program and shows exactly what would run. The change identity covers
//! the argv, the working directory and the content of every argument that names a file there (a
//! script edited after its dry-run is a different change).

use super::exec::{self, Cmd};
use super::{Change, Invocation, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const NAME: &str = "shell";

const OPERATIONS: &[(&str, EffectClass)] = &[("run", EffectClass::Destructive)];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Run,
}

// Arguments of the shell tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    /// `run`: needs a run with dry_run: true and a human approval, every time.
    operation: Operation,
    /// Program and arguments, e.g. ["bash", "scripts/rotate-keys.sh", "--dry-run"]. No shell: `$`, `;`, `|` are plain text.
    argv: Vec<String>,
    /// Absolute working directory (default: where bosun runs), e.g. the GitOps repo.
    cwd: Option<String>,
    /// Timeout in seconds (default 60, at most 3600).
    timeout_seconds: Option<u64>,
    /// true only shows what would run.
    dry_run: Option<bool>,
}

/// The shell tool.
#[derive(Debug, Default)]
pub struct Shell;

struct Call {
    a: Args,
    cwd: PathBuf,
    /// sha256 of each argument that names a file in cwd.
    files: Vec<(String, String)>,
}

fn parse(args: &Value) -> Result<Call, ToolError> {
    let a: Args = serde_json::from_value(args.clone())
        .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
    let bad = |m: &str| Err(ToolError::InvalidArguments(m.to_string()));
    if a.argv.first().is_none_or(|p| p.trim().is_empty()) {
        return bad("`argv` needs at least the program, e.g. [\"bash\", \"scripts/x.sh\"]");
    }
    if a.argv.iter().any(|x| x.contains('\0') || x.len() > 8192) || a.argv.len() > 256 {
        return bad(
            "argv elements must be at most 8192 characters without NUL bytes, at most 256 of them",
        );
    }
    let cwd = match &a.cwd {
        Some(c) if Path::new(c).is_absolute() => PathBuf::from(c),
        Some(_) => return bad("`cwd` must be an absolute path"),
        None => std::env::current_dir()
            .map_err(|e| ToolError::InvalidArguments(format!("no current directory: {e}")))?,
    };
    let cwd = std::fs::canonicalize(&cwd)
        .map_err(|e| ToolError::InvalidArguments(format!("cwd {}: {e}", cwd.display())))?;
    let mut files = Vec::new();
    for x in &a.argv {
        let p = cwd.join(x);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.is_file() && m.len() <= 16 * 1024 * 1024 {
                if let Ok(b) = std::fs::read(&p) {
                    files.push((x.clone(), super::sha256_hex(&b)));
                }
            }
        }
    }
    Ok(Call { a, cwd, files })
}

fn change(c: &Call) -> Change {
    Change {
        target: format!("cwd={}", c.cwd.display()),
        content_hash: super::canonical_hash(&json!({
            "argv": c.a.argv,
            "files": c.files.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        })),
        dry_run_hint: "call shell run with the same argv and cwd and dry_run: true".into(),
    }
}

/// Where `prog` would be found: a path (relative to cwd), or a PATH lookup.
fn resolve(prog: &str, cwd: &Path) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        })
    };
    if prog.contains('/') {
        let p = cwd.join(prog);
        return is_exec(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(prog))
            .find(|p| is_exec(p))
    })
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Tool for Shell {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Run one program (argv, no shell) with a clean environment; each run needs a dry-run and a human approval."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let c = parse(args)?;
        let shown: Vec<String> = c.a.argv.iter().map(|x| quote(x)).collect();
        let operation = match c.a.operation {
            Operation::Run => "run",
        };
        Ok(Invocation {
            min_effect: None,
            operation: operation.into(),
            target: format!("{} (in {})", shown.join(" "), c.cwd.display()),
            change: Some(change(&c)),
            dry_run: c.a.dry_run == Some(true),
            scope: Default::default(),
        })
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let c = parse(&call.args)?;
            if Some(change(&c)) != call.change {
                return Err(ToolError::Failed(
                    "a file named in argv changed after the call was admitted; dry-run again"
                        .into(),
                ));
            }
            let prog = &c.a.argv[0];
            let resolved = resolve(prog, &c.cwd).ok_or_else(|| {
                ToolError::Failed(format!(
                    "`{prog}` is not an executable on PATH or in {}",
                    c.cwd.display()
                ))
            })?;
            let secs = c.a.timeout_seconds.unwrap_or(60).clamp(1, 3600);
            let shown: Vec<String> = c.a.argv.iter().map(|x| quote(x)).collect();
            if c.a.dry_run == Some(true) {
                let files: Vec<String> = c
                    .files
                    .iter()
                    .map(|(f, h)| format!("{f} (sha256 {})", &h[..12]))
                    .collect();
                return Ok(format!(
                    "dry-run: would run {} as {} in {}, environment PATH HOME LANG only, timeout {secs} s{}. Running it needs a human approval.",
                    shown.join(" "),
                    resolved.display(),
                    c.cwd.display(),
                    if files.is_empty() { String::new() } else { format!("; files: {}", files.join(", ")) }
                ));
            }
            let mut cmd = Cmd::new(&resolved)
                .args(&c.a.argv[1..])
                .cwd(&c.cwd)
                .timeout(Duration::from_secs(secs));
            cmd.clear_env = true;
            cmd.env.clear();
            for k in ["PATH", "HOME", "LANG"] {
                if let Some(v) = std::env::var_os(k) {
                    cmd = cmd.env(k, v);
                }
            }
            let out = exec::run(&cmd).await?;
            let body = exec::compact(&out.combined(), 60, 40);
            let code = out
                .code
                .map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
            if out.success() {
                Ok(format!("{code}\n{body}"))
            } else {
                Err(ToolError::Failed(format!(
                    "{} failed ({code}):\n{body}",
                    shown.join(" ")
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_and_cwd_are_validated_and_scripts_are_part_of_the_identity() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("s.sh"), "echo 1\n").expect("write");
        let s = Shell;
        assert!(s.plan(&json!({"operation": "run", "argv": []})).is_err());
        assert!(s
            .plan(&json!({"operation": "run", "argv": ["ls"], "cwd": "relative"}))
            .is_err());
        let a = json!({"operation": "run", "argv": ["bash", "s.sh"], "cwd": d.path()});
        let c1 = s.plan(&a).expect("plan").change;
        std::fs::write(d.path().join("s.sh"), "echo 2\n").expect("write");
        let c2 = s.plan(&a).expect("plan").change;
        assert_ne!(c1, c2, "an edited script is a different change");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("--x=1"), "--x=1");
    }
}
