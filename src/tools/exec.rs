//! Running external programs (helm, terraform, git, the opt-in shell tool) safely: explicit argv
//! (never `sh -c`), a timeout that stops the whole process group (interrupt first, then kill),
//! bounded output capture, an environment without bosun's own credentials, and compaction of
//! long output into something a model can afford to read.
//!
//! Every child runs under bubblewrap (`bwrap`): new PID, mount, IPC and UTS namespaces, a fresh
//! `/proc` (the bosun process and its `/proc/<pid>/environ` are not there), no capabilities
//! (`--cap-drop ALL`, also when bosun runs as root), `--die-with-parent`,
//! an environment built from nothing (an allow-list plus what the tool sets), a tmpfs HOME and
//! `/tmp`, the system directories read-only, and only the paths the call needs: read-write the
//! directories it works in ([`Cmd::rw`]), read-only its inputs ([`Cmd::ro`]) and the credential
//! files the tool needs ([`Cmd::credential`]). bosun's own state (sessions, audit logs, the
//! sandbox state with its vault token, its config) is never bound. The network is shared: helm,
//! kubectl and terraform providers reach the API server and vault as before. Without `bwrap`
//! nothing runs (no unsandboxed fallback).
//!
//! Why bubblewrap and not hand-written namespace code: it is the Debian-packaged, audited tool
//! Flatpak uses for exactly this; Landlock + seccomp would need a crate stack and still no fresh
//! `/proc`.

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
    /// What the sandboxed child sees of the file system besides the system directories.
    pub mounts: Mounts,
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
            mounts: Mounts::default(),
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

    /// Let the child read and write `p` (a directory the call works in).
    pub fn rw(mut self, p: impl Into<PathBuf>) -> Self {
        self.mounts.rw.push(p.into());
        self
    }

    /// Let the child read `p` (an input of the call: a chart, a plugin mirror).
    pub fn ro(mut self, p: impl Into<PathBuf>) -> Self {
        self.mounts.ro.push(p.into());
        self
    }

    /// Let the child read the credential file `p` the tool needs (a kubeconfig and the files it
    /// names). Unlike [`Cmd::ro`], this may lie inside bosun's state (the sandbox's CA), so only
    /// tools pass it, from their configuration — never a path from the model's arguments.
    pub fn credential(mut self, p: impl Into<PathBuf>) -> Self {
        self.mounts.credentials.push(p.into());
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

/// SIGKILL to a child's process group when dropped before the child was waited for (the future
/// of [`run`] dropped mid-run); disarmed (`None`) once [`run`] stopped the group itself.
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

fn signal_group(pid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        if pid > 0 {
            // the child leads its own session and process group (setsid): signal the group, so
            // grandchildren (terraform providers, helm plugins) stop too
            unsafe {
                libc::kill(-pid, sig);
            }
        }
    }
}

/// Run `cmd` in the sandbox to completion or until its timeout. A non-zero exit is not an error
/// here (the caller reads `Output::code`); failing to start is, and so is the timeout (after the
/// process group was stopped).
pub async fn run(cmd: &Cmd) -> Result<Output, ToolError> {
    let bwrap = bwrap()?;
    let (argv, env) = sandbox_argv(cmd)?;
    let mut c = tokio::process::Command::new(bwrap);
    c.args(&argv);
    // the environment reaches the child through bwrap's own (not its argv, which `ps` shows)
    c.env_clear();
    c.envs(env);
    c.current_dir("/");
    // a session of its own: no controlling terminal to inject input into (TIOCSTI), and a
    // process group for the timeout to stop (it crosses the PID namespace)
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.stdin(if cmd.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = c
        .spawn()
        .map_err(|e| ToolError::Failed(format!("cannot start {}: {e}", cmd.program.display())))?;
    let pid = child.id();
    // a call cancelled mid-run (Ctrl-C on a read or dry-run: its future is dropped) takes its
    // whole process group with it, not only bwrap (which `kill_on_drop` reaches)
    let mut group = KillGroupOnDrop(pid);
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
            group.0 = None;
            s.map_err(|e| ToolError::Failed(format!("waiting for {}: {e}", cmd.display())))?
        }
        Err(_) => {
            signal_group(pid, libc::SIGINT);
            if tokio::time::timeout(cmd.grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            // members that ignore SIGINT (background jobs of a shell do) are killed now
            signal_group(pid, libc::SIGKILL);
            group.0 = None;
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

/// Paths the child may see besides the read-only system directories.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    pub rw: Vec<PathBuf>,
    pub ro: Vec<PathBuf>,
    pub credentials: Vec<PathBuf>,
}

/// Variables a child inherits from bosun when set (locale, time zone, proxies, CA bundles);
/// everything else it gets is set by the tool. `Cmd::clear_env` inherits none of these.
pub const INHERITED_VARS: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// The bwrap binary (`BOSUN_BWRAP`, else `/usr/bin/bwrap`, else PATH), or the error that says
/// how to install it.
pub fn bwrap() -> Result<PathBuf, ToolError> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            std::env::var_os("BOSUN_BWRAP")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]
                        .iter()
                        .map(PathBuf::from)
                        .find(|p| p.is_file())
                })
                .or_else(|| crate::sandbox::find_binary("bwrap"))
        })
        .clone()
        .ok_or_else(|| {
            ToolError::Failed(
                "bubblewrap (bwrap) is not installed: bosun runs every helm, terraform, git and shell process in a bwrap sandbox and runs none without it; install it with `apt-get install bubblewrap` (or scripts/install-deps.sh)".into(),
            )
        })
}

/// Directories holding bosun's own state, which no child may see: the sandbox state (CA key,
/// vault token), sessions and audit logs, bosun's config.
pub fn protected_dirs() -> Vec<PathBuf> {
    let home = real_home();
    let xdg = |var: &str, rel: &str| -> Option<PathBuf> {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(rel)))
            .map(|d| d.join("bosun"))
    };
    let mut out = vec![
        crate::sandbox::default_dir(),
        crate::sandbox::cache_dir().join("sandbox"),
    ];
    out.extend(xdg("XDG_STATE_HOME", ".local/state"));
    out.extend(xdg("XDG_CONFIG_HOME", ".config"));
    for v in ["BOSUN_TEST_SANDBOX_DIR", "BOSUN_SANDBOX_DIR"] {
        if let Some(d) = std::env::var_os(v).filter(|v| !v.is_empty()) {
            out.push(PathBuf::from(d));
        }
    }
    out.into_iter()
        .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
        .collect()
}

/// `p` is `q` or inside it (by components).
fn within(p: &Path, q: &Path) -> bool {
    p.starts_with(q)
}

/// Refuse to show a directory that is, holds or lies inside bosun's state.
fn check_bind(p: &Path, protected: &[PathBuf], program: &str) -> Result<(), ToolError> {
    for q in protected {
        if within(p, q) || within(q, p) {
            return Err(ToolError::Failed(format!(
                "refusing to show {} to {program}: it is or contains bosun's own state ({}); use a directory in the workspace",
                p.display(),
                q.display()
            )));
        }
    }
    Ok(())
}

/// The system directories every child sees read-only.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Files under `/etc` that are nobody's business (masked with an empty file).
const MASKED: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
];

/// Environment variables, in order.
type Env = Vec<(OsString, OsString)>;

/// The bwrap arguments and the environment for `cmd`.
fn sandbox_argv(cmd: &Cmd) -> Result<(Vec<OsString>, Env), ToolError> {
    let program = cmd
        .program
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let protected = protected_dirs();
    // the environment: an allow-list from bosun's own, then the tool's; removals last
    let mut env: Env = Vec::new();
    let set = |k: &OsStr, v: &OsStr, env: &mut Env| {
        env.retain(|(x, _)| x != k);
        env.push((k.to_os_string(), v.to_os_string()));
    };
    if !cmd.clear_env {
        for k in INHERITED_VARS {
            if let Some(v) = std::env::var_os(k) {
                set(OsStr::new(k), &v, &mut env);
            }
        }
    }
    for (k, v) in &cmd.env {
        set(k, v, &mut env);
    }
    let explicit: Vec<&OsString> = cmd.env.iter().map(|(k, _)| k).collect();
    env.retain(|(k, _)| !cmd.env_remove.contains(k) || explicit.contains(&k));
    let home = env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| PathBuf::from(v))
        .filter(|h| h.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/home/tool"));
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home.clone().into_os_string()));
    }

    let mut a: Vec<OsString> = Vec::new();
    let mut push = |xs: &[&OsStr]| a.extend(xs.iter().map(|x| x.to_os_string()));
    push(&[
        "--unshare-pid".as_ref(),
        "--unshare-ipc".as_ref(),
        "--unshare-uts".as_ref(),
        "--unshare-cgroup-try".as_ref(),
        "--die-with-parent".as_ref(),
        // bosun may run as root, and bwrap keeps root's capabilities unless told: with
        // CAP_DAC_READ_SEARCH a child could open host files by handle past its mount view
        "--cap-drop".as_ref(),
        "ALL".as_ref(),
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--tmpfs".as_ref(),
        "/tmp".as_ref(),
        "--tmpfs".as_ref(),
        "/var/tmp".as_ref(),
    ]);
    for d in SYSTEM_DIRS {
        let p = Path::new(d);
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(t) = std::fs::read_link(p) {
                    push(&["--symlink".as_ref(), t.as_os_str(), p.as_os_str()]);
                }
            }
            Ok(m) if m.is_dir() => push(&["--ro-bind".as_ref(), p.as_os_str(), p.as_os_str()]),
            _ => {}
        }
    }
    for m in MASKED {
        if Path::new(m).exists() {
            push(&["--ro-bind".as_ref(), "/dev/null".as_ref(), m.as_ref()]);
        }
    }
    // /etc/resolv.conf may point into /run (systemd-resolved)
    if let Ok(r) = std::fs::canonicalize("/etc/resolv.conf") {
        if !r.starts_with("/etc") {
            push(&["--ro-bind".as_ref(), r.as_os_str(), r.as_os_str()]);
        }
    }

    // (dest, source, kind): kind 0 = ro, 1 = rw, 2 = tmpfs
    type Binds = Vec<(PathBuf, PathBuf, u8)>;
    let mut binds: Binds = Vec::new();
    fn add(
        binds: &mut Binds,
        dest: &Path,
        kind: u8,
        protected: Option<(&[PathBuf], &str)>,
    ) -> Result<(), ToolError> {
        if !dest.is_absolute() {
            return Ok(());
        }
        let Ok(src) = std::fs::canonicalize(dest) else {
            return Ok(()); // absent: nothing to show
        };
        if let Some((dirs, program)) = protected {
            check_bind(&src, dirs, program)?;
        }
        // already visible, read-only, through the system directories and their symlinks
        if kind == 0 && ["/usr", "/etc"].iter().any(|d| src.starts_with(d)) {
            return Ok(());
        }
        binds.push((dest.to_path_buf(), src, kind));
        Ok(())
    }
    let checked = Some((protected.as_slice(), program.as_str()));
    // the program itself and the PATH directories it may run (plugins, credential helpers);
    // a PATH entry that would show bosun's state (`/`, HOME, …) is left out
    // (bound and run at its real path: a symlink such as ~/.cache/bosun/bin/helm would point
    // at nothing inside, and its directory may already be bound read-only)
    let program_path = std::fs::canonicalize(&cmd.program).unwrap_or_else(|_| cmd.program.clone());
    add(&mut binds, &program_path, 0, None)?;
    if let Some(path) = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
    {
        for d in std::env::split_paths(&path) {
            let _ = add(&mut binds, &d, 0, checked);
        }
    }
    for p in &cmd.mounts.ro {
        add(&mut binds, p, 0, checked)?;
    }
    for p in &cmd.mounts.rw {
        add(&mut binds, p, 1, checked)?;
    }
    if let Some(d) = &cmd.cwd {
        add(&mut binds, d, 1, checked)?;
    }
    for p in &cmd.mounts.credentials {
        add(&mut binds, p, 0, None)?;
    }
    binds.push((home.clone(), home.clone(), 2));
    // parents before children, so a later mount is not hidden by an earlier one; at equal depth
    // tmpfs (HOME) first, then what is bound into it
    binds.sort_by_key(|(d, _, k)| (d.components().count(), u8::from(*k != 2)));
    binds.dedup_by(|x, y| x.0 == y.0 && x.2 == y.2);
    for (dest, src, kind) in &binds {
        let flag = match kind {
            0 => "--ro-bind",
            1 => "--bind",
            _ => "--tmpfs",
        };
        if *kind == 2 {
            push(&[flag.as_ref(), dest.as_os_str()]);
        } else {
            push(&[flag.as_ref(), src.as_os_str(), dest.as_os_str()]);
        }
    }
    // the working directory must exist inside; HOME is a tmpfs
    if let Some(d) = &cmd.cwd {
        push(&["--chdir".as_ref(), d.as_os_str()]);
    }
    push(&["--".as_ref(), program_path.as_os_str()]);
    a.extend(cmd.args.iter().cloned());
    Ok((a, env))
}

/// The files a kubeconfig names (CA, client certificate and key, token file, an absolute exec
/// plugin): the credentials a Kubernetes tool needs read-only, besides the kubeconfig itself.
/// `kubeconfig` may be a `:`-separated list, as in `KUBECONFIG`.
pub fn kubeconfig_files(kubeconfig: &OsStr) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kc in std::env::split_paths(kubeconfig) {
        let Ok(text) = std::fs::read_to_string(&kc) else {
            continue;
        };
        out.push(kc.clone());
        let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let base = kc.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut stack = vec![&v];
        while let Some(x) = stack.pop() {
            match x {
                serde_json::Value::Object(m) => {
                    for (k, y) in m {
                        let file_key = matches!(
                            k.as_str(),
                            "certificate-authority"
                                | "client-certificate"
                                | "client-key"
                                | "tokenFile"
                        ) || (k == "command"
                            && y.as_str().is_some_and(|c| c.starts_with('/')));
                        match (file_key, y.as_str()) {
                            (true, Some(f)) => out.push(base.join(f)),
                            _ => stack.push(y),
                        }
                    }
                }
                serde_json::Value::Array(xs) => stack.extend(xs),
                _ => {}
            }
        }
    }
    out
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

/// Give a command its own HOME (a tmpfs in the sandbox, at a path under bosun's workspace, so it
/// never writes to the user's home) while keeping the user's cloud credentials usable by kubeconfig exec plugins and providers:
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
                cmd = cmd.env(var, &p).credential(p);
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

    /// Host pids whose command line is exactly `argv`.
    fn host_pids_running(argv: &[&str]) -> Vec<i32> {
        let want: Vec<u8> = argv
            .iter()
            .flat_map(|a| [a.as_bytes(), b"\0"].concat())
            .collect();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want)
                    && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| !s.contains(") Z "))
            })
            .collect()
    }

    #[tokio::test]
    async fn timeout_stops_the_process_group() {
        // a grandchild that would outlive a plain kill of the direct child (a unique duration
        // finds it on the host: inside the sandbox it has another pid)
        let secs = format!("3{}.5", std::process::id() % 1000);
        let cmd = Cmd::new("/bin/sh")
            .arg("-c")
            .arg(format!("sleep {secs} & wait"))
            .timeout(Duration::from_millis(800));
        let r = run(&Cmd {
            grace: Duration::from_millis(200),
            ..cmd
        })
        .await;
        assert!(matches!(r, Err(ToolError::Timeout(_))), "{r:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let alive = host_pids_running(&["sleep", &secs]);
        assert!(
            alive.is_empty(),
            "grandchild {alive:?} survived the timeout"
        );
    }

    #[tokio::test]
    async fn the_sandbox_shows_no_bosun_process_state_or_unbound_paths() {
        let shown = tempfile::tempdir().expect("tempdir");
        let hidden = tempfile::tempdir().expect("tempdir");
        std::fs::write(hidden.path().join("secret"), "top").expect("write");
        let script = format!(
            "echo pids=$(ls /proc | grep -c '^[0-9]'); cat /proc/1/cmdline | tr '\\0' ' '; echo; \
             echo ok > {shown}/w && echo wrote; cat {hidden}/secret || echo hidden-gone; \
             ls $HOME | wc -l; touch /usr/x 2>/dev/null || echo usr-ro; grep CapEff /proc/self/status; env",
            shown = shown.path().display(),
            hidden = hidden.path().display()
        );
        let out = run(&Cmd::new("/bin/sh").arg("-c").arg(&script).rw(shown.path()))
            .await
            .expect("runs");
        let o = out.stdout;
        let pids: usize = o
            .lines()
            .find_map(|l| l.strip_prefix("pids="))
            .and_then(|n| n.trim().parse().ok())
            .expect("pid count");
        assert!(pids <= 6, "{o}");
        assert!(
            o.contains("wrote") && o.contains("hidden-gone") && o.contains("usr-ro"),
            "{o}"
        );
        assert!(!o.contains("top"), "{o}");
        assert!(
            o.contains("CapEff:\t0000000000000000"),
            "capabilities kept: {o}"
        );
        assert!(!o.contains("CARGO"), "bosun's environment leaked: {o}");
        // bosun's state and anything holding it cannot be bound
        for p in [
            crate::sandbox::cache_dir().join("sandbox"),
            crate::sandbox::default_dir(),
            PathBuf::from("/"),
        ] {
            let _ = std::fs::create_dir_all(&p);
            let e = run(&Cmd::new("/bin/true").ro(&p))
                .await
                .expect_err("refused");
            assert!(e.to_string().contains("bosun's own state"), "{e}");
        }
        // a credential file the tool names is shown, read-only
        let cred = hidden.path().join("secret");
        let out = run(&Cmd::new("/bin/cat").arg(&cred).credential(&cred))
            .await
            .expect("runs");
        assert_eq!(out.stdout, "top");
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
