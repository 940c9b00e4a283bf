//! Running external programs (helm, terraform, git, the opt-in shell tool) safely: explicit argv
//! (never `sh -c`), a timeout that stops the whole process group (interrupt first, then kill),
//! bounded output capture, an environment without bosun's own credentials, and compaction of
//! long output into something a model can afford to read.

use super::ToolError;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Bytes kept per output stream; the rest is read and dropped so the child never blocks.
const MAX_CAPTURE: usize = 16 * 1024 * 1024;

/// Environment variables bosun never hands to a child process: its own credentials.
pub const CREDENTIAL_VARS: &[&str] = &[
    "VAULT_TOKEN",
    "OPENAI_API_KEY",
    "BOSUN_API_KEY",
    "BOSUN_GIT_TOKEN",
];

/// A command to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    /// Start from an empty environment (then only `env` is set).
    pub clear_env: bool,
    pub env: Vec<(OsString, OsString)>,
    pub env_remove: Vec<OsString>,
    pub timeout: Duration,
    /// After the timeout: SIGINT (terraform releases its state lock on it), then SIGKILL after
    /// this grace period.
    pub grace: Duration,
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let mut env_remove: Vec<OsString> = CREDENTIAL_VARS.iter().map(OsString::from).collect();
        // no interactive prompts from any child
        env_remove.push("GIT_ASKPASS".into());
        Self {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            clear_env: false,
            env: vec![
                ("GIT_TERMINAL_PROMPT".into(), "0".into()),
                ("NO_COLOR".into(), "1".into()),
            ],
            env_remove,
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            stdin: None,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, it: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(it.into_iter().map(|s| s.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    pub fn cwd(mut self, d: impl Into<PathBuf>) -> Self {
        self.cwd = Some(d.into());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The program and arguments, for messages (no environment: it may hold secrets).
    pub fn display(&self) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut s = name;
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stderr then stdout, for error messages.
    pub fn combined(&self) -> String {
        let mut s = self.stderr.trim_end().to_string();
        if !self.stdout.trim().is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(self.stdout.trim_end());
        }
        s
    }
}

async fn capture<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if buf.len() < MAX_CAPTURE {
                    let take = n.min(MAX_CAPTURE - buf.len());
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
        }
    }
    buf
}

fn signal_group(pid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        if pid > 0 {
            // the child leads its own process group (process_group(0)): signal the group, so
            // grandchildren (terraform providers, helm plugins) stop too
            unsafe {
                libc::kill(-pid, sig);
            }
        }
    }
}

/// Run `cmd` to completion or until its timeout. A non-zero exit is not an error here (the
/// caller reads `Output::code`); failing to start is, and so is the timeout (after the process
/// group was stopped).
pub async fn run(cmd: &Cmd) -> Result<Output, ToolError> {
    let mut c = tokio::process::Command::new(&cmd.program);
    c.args(&cmd.args);
    if cmd.clear_env {
        c.env_clear();
    }
    for k in &cmd.env_remove {
        c.env_remove(k);
    }
    for (k, v) in &cmd.env {
        c.env(k, v);
    }
    if let Some(d) = &cmd.cwd {
        c.current_dir(d);
    }
    c.stdin(if cmd.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    let mut child = c
        .spawn()
        .map_err(|e| ToolError::Failed(format!("cannot start {}: {e}", cmd.program.display())))?;
    let pid = child.id();
    if let (Some(data), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            let _ = stdin.write_all(&data).await;
            let _ = stdin.shutdown().await;
        });
    }
    let out_task = child.stdout.take().map(|r| tokio::spawn(capture(r)));
    let err_task = child.stderr.take().map(|r| tokio::spawn(capture(r)));
    let status = match tokio::time::timeout(cmd.timeout, child.wait()).await {
        Ok(s) => {
            // whatever the program left running in its group goes with it (a pgid is not
            // reused while any member is alive, so this reaches only our own processes)
            signal_group(pid, libc::SIGKILL);
            s.map_err(|e| ToolError::Failed(format!("waiting for {}: {e}", cmd.display())))?
        }
        Err(_) => {
            signal_group(pid, libc::SIGINT);
            if tokio::time::timeout(cmd.grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            // members that ignore SIGINT (background jobs of a shell do) are killed now
            signal_group(pid, libc::SIGKILL);
            // reap and drop the pipes
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            tracing::warn!(command = %cmd.display(), secs = cmd.timeout.as_secs(), "command timed out; process group stopped");
            return Err(ToolError::Timeout(cmd.timeout.as_secs()));
        }
    };
    let collect = |t: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
        match t {
            Some(h) => tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let stdout = collect(out_task).await;
    let stderr = collect(err_task).await;
    Ok(Output {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

fn looks_important(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("error") || l.contains("fail") || l.contains("warning") || l.contains("denied")
}

/// Shorten long output for the model: the first `head` lines, every error/warning line after
/// them (up to 40), and the last `tail` lines, with "… N lines omitted" where lines were left
/// out. Long lines are clipped.
pub fn compact(text: &str, head: usize, tail: usize) -> String {
    const MAX_LINE: usize = 400;
    let clip = |l: &str| -> String {
        if l.chars().count() > MAX_LINE {
            let mut s: String = l.chars().take(MAX_LINE).collect();
            s.push('…');
            s
        } else {
            l.to_string()
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= head + tail {
        return lines.iter().map(|l| clip(l)).collect::<Vec<_>>().join("\n");
    }
    let mut out: Vec<String> = lines[..head].iter().map(|l| clip(l)).collect();
    let middle = &lines[head..lines.len() - tail];
    let mut omitted = 0usize;
    let mut kept = 0usize;
    for l in middle {
        if kept < 40 && looks_important(l) {
            if omitted > 0 {
                out.push(format!("… {omitted} lines omitted"));
                omitted = 0;
            }
            out.push(clip(l));
            kept += 1;
        } else {
            omitted += 1;
        }
    }
    if omitted > 0 {
        out.push(format!("… {omitted} lines omitted"));
    }
    out.extend(lines[lines.len() - tail..].iter().map(|l| clip(l)));
    out.join("\n")
}

/// The user's real home, for locating cloud credential files when a tool runs with its own HOME.
fn real_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Give a command its own HOME (under bosun's workspace, so it never writes to the user's home)
/// while keeping the user's cloud credentials usable by kubeconfig exec plugins and providers:
/// the credential file locations are passed explicitly when they exist and are not set.
pub fn private_home(mut cmd: Cmd, home: &Path) -> Cmd {
    let _ = std::fs::create_dir_all(home);
    if let Some(h) = real_home() {
        let forward: [(&str, &str); 6] = [
            ("AWS_CONFIG_FILE", ".aws/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            ("CLOUDSDK_CONFIG", ".config/gcloud"),
            ("AZURE_CONFIG_DIR", ".azure"),
            ("DOCKER_CONFIG", ".docker"),
            ("KUBECACHEDIR", ".kube/cache"),
        ];
        for (var, rel) in forward {
            let p = h.join(rel);
            if std::env::var_os(var).is_none() && p.exists() {
                cmd = cmd.env(var, p);
            }
        }
    }
    cmd.env("HOME", home)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_head_errors_and_tail() {
        let mut t: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        t[50] = "Error: something broke".into();
        let c = compact(&t.join("\n"), 5, 3);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[0], "line 0");
        assert!(lines.contains(&"Error: something broke"));
        assert!(lines.contains(&"… 45 lines omitted"), "{c}");
        assert_eq!(lines.last(), Some(&"line 99"));
        assert_eq!(compact("a\nb", 5, 3), "a\nb");
    }

    #[tokio::test]
    async fn timeout_stops_the_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("pid");
        // a grandchild that would outlive a plain kill of the direct child
        let cmd = Cmd::new("/bin/sh")
            .arg("-c")
            .arg(format!("sleep 30 & echo $! > {}; wait", marker.display()))
            .timeout(Duration::from_millis(500));
        let r = run(&Cmd {
            grace: Duration::from_millis(200),
            ..cmd
        })
        .await;
        assert!(matches!(r, Err(ToolError::Timeout(_))), "{r:?}");
        let pid: i32 = std::fs::read_to_string(&marker)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let alive = unsafe { libc::kill(pid, 0) } == 0
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false);
        assert!(!alive, "grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn credentials_are_not_inherited() {
        let out = run(&Cmd::new("/usr/bin/env").env("VAULT_TOKEN", "x"))
            .await
            .expect("env runs");
        assert!(out.stdout.contains("PATH="), "the rest is inherited");
        // an explicit env() wins over the removal list (the caller decided)
        assert!(out.stdout.contains("VAULT_TOKEN=x"));
        let out = run(&Cmd::new("/usr/bin/env")).await.expect("env runs");
        assert!(!out.stdout.contains("VAULT_TOKEN="));
        assert!(out.stdout.contains("GIT_TERMINAL_PROMPT=0"));
    }
}
