//! Model endpoint configuration.
//!
//! Precedence, highest first: command-line flags, environment (`OPENAI_BASE_URL`,
//! `OPENAI_API_KEY`, `BOSUN_MODEL`), `./bosun.toml`, `~/.config/bosun/config.toml`
//! (`$XDG_CONFIG_HOME/bosun/config.toml`), the agent's `model:` field, built-in defaults.
//!
//! ```toml
//! [model]
//! base_url = "http://127.0.0.1:8080/v1"
//! model = "qwen2.5-coder"
//! api_key = "..."          # prefer OPENAI_API_KEY in the environment
//! timeout_secs = 120
//! stream = false
//! temperature = 0.0
//! max_tokens = 2048
//! shim = true              # tool-use shim: read calls written as text; default: on unless api.openai.com
//! strict_tools = false     # OpenAI strict schemas; default: only for api.openai.com (others get relaxed ones)
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The default model name when nothing else says.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// A fully resolved model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: String,
    pub timeout_secs: u64,
    pub stream: bool,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// The tool-use shim ([`crate::model::shim`]): `Some(true)` on, `Some(false)` off, `None`
    /// auto — on unless the base URL's host is `api.openai.com`. See [`ModelConfig::shim_enabled`].
    pub shim: Option<bool>,
    /// Send tool schemas in OpenAI strict mode (every property required, optional ones
    /// nullable, `strict: true`) or relaxed (optional properties optional). `None`: strict only
    /// for api.openai.com. See [`ModelConfig::strict_tools_enabled`].
    pub strict_tools: Option<bool>,
}

impl ModelConfig {
    /// Whether the base URL is OpenAI's own API.
    pub fn is_openai(&self) -> bool {
        let host = self
            .base_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        host.as_deref() == Some("api.openai.com")
    }

    /// This configuration as a `bosun.toml`, without the API key (pass that in `OPENAI_API_KEY`):
    /// how a parent process hands its resolved settings to a child `bosun run`.
    pub fn to_file_text(&self) -> String {
        #[derive(serde::Serialize)]
        struct File<'a> {
            model: &'a ModelSection,
        }
        let section = ModelSection {
            base_url: self.base_url.clone(),
            api_key: None,
            model: Some(self.model.clone()),
            timeout_secs: Some(self.timeout_secs),
            stream: Some(self.stream),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            shim: self.shim,
            strict_tools: self.strict_tools,
        };
        toml::to_string(&File { model: &section }).unwrap_or_default()
    }

    /// Whether the tool-use shim is on: as configured, else on for every endpoint that is not
    /// OpenAI's own (local and self-hosted servers are the ones that write calls as text).
    pub fn shim_enabled(&self) -> bool {
        self.shim.unwrap_or_else(|| !self.is_openai())
    }

    /// Whether tool schemas go out in strict mode: as configured, else only to OpenAI. Small
    /// models given strict schemas fill every optional field with invented values.
    pub fn strict_tools_enabled(&self) -> bool {
        self.strict_tools.unwrap_or_else(|| self.is_openai())
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: DEFAULT_MODEL.into(),
            timeout_secs: 120,
            stream: false,
            temperature: None,
            max_tokens: None,
            shim: None,
            strict_tools: None,
        }
    }
}

/// Values given on the command line; `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct ModelOverrides {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    pub stream: Option<bool>,
    /// `Some(Some(b))` forces the shim on/off; `Some(None)` forces auto; `None`: not given.
    pub shim: Option<Option<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    model: ModelSection,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    base_url: Option<String>,
    api_key: Option<String>,
    model: Option<String>,
    timeout_secs: Option<u64>,
    stream: Option<bool>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    shim: Option<bool>,
    strict_tools: Option<bool>,
}

/// A config file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn read_file(path: &Path) -> Result<Option<ModelSection>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read: {e}"),
            })
        }
    };
    let fc: FileConfig = toml::from_str(&text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| line_col(&text, s.start))
            .unwrap_or((1, 1));
        ConfigError {
            path: format!("{}:{line}:{col}", path.display()),
            message: format!(
                "{} (expected a [model] table with base_url, api_key, model, timeout_secs, stream, temperature, max_tokens, shim, strict_tools)",
                e.message()
            ),
        }
    })?;
    Ok(Some(fc.model))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The user-level config file path.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("bosun/config.toml"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/bosun/config.toml"))
}

/// Resolve the configuration. `cwd` is where `bosun.toml` is looked for; `agent_model` is the
/// agent's own `model:` field.
pub fn resolve(
    overrides: &ModelOverrides,
    cwd: &Path,
    agent_model: Option<&str>,
) -> Result<ModelConfig, ConfigError> {
    let mut cfg = ModelConfig::default();
    if let Some(m) = agent_model {
        cfg.model = m.to_string();
    }
    let mut files = Vec::new();
    if let Some(p) = user_config_path() {
        files.push(p);
    }
    files.push(cwd.join("bosun.toml"));
    for path in files {
        if let Some(s) = read_file(&path)? {
            apply(&mut cfg, s);
        }
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(v) = env("OPENAI_BASE_URL") {
        cfg.base_url = Some(v);
    }
    if let Some(v) = env("OPENAI_API_KEY") {
        cfg.api_key = Some(v);
    }
    if let Some(v) = env("BOSUN_MODEL") {
        cfg.model = v;
    }
    if let Some(v) = &overrides.base_url {
        cfg.base_url = Some(v.clone());
    }
    if let Some(v) = &overrides.api_key {
        cfg.api_key = Some(v.clone());
    }
    if let Some(v) = &overrides.model {
        cfg.model = v.clone();
    }
    if let Some(v) = overrides.stream {
        cfg.stream = v;
    }
    if let Some(v) = overrides.shim {
        cfg.shim = v;
    }
    Ok(cfg)
}

fn apply(cfg: &mut ModelConfig, s: ModelSection) {
    if s.base_url.is_some() {
        cfg.base_url = s.base_url;
    }
    if s.api_key.is_some() {
        cfg.api_key = s.api_key;
    }
    if let Some(m) = s.model {
        cfg.model = m;
    }
    if let Some(t) = s.timeout_secs {
        cfg.timeout_secs = t;
    }
    if let Some(v) = s.stream {
        cfg.stream = v;
    }
    if s.temperature.is_some() {
        cfg.temperature = s.temperature;
    }
    if s.max_tokens.is_some() {
        cfg.max_tokens = s.max_tokens;
    }
    if s.shim.is_some() {
        cfg.shim = s.shim;
    }
    if s.strict_tools.is_some() {
        cfg.strict_tools = s.strict_tools;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_round_trips_through_its_file_text_without_the_key() {
        let cfg = ModelConfig {
            base_url: Some("http://127.0.0.1:8091/v1".into()),
            api_key: Some("sk-secret".into()),
            model: "qwen".into(),
            timeout_secs: 600,
            stream: false,
            temperature: Some(0.0),
            max_tokens: Some(1024),
            shim: Some(true),
            strict_tools: None,
        };
        let text = cfg.to_file_text();
        assert!(!text.contains("sk-secret"), "{text}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bosun.toml"), &text).expect("write");
        let section = read_file(&dir.path().join("bosun.toml"))
            .expect("parses")
            .expect("present");
        let mut back = ModelConfig::default();
        apply(&mut back, section);
        assert_eq!(
            back,
            ModelConfig {
                api_key: None,
                ..cfg
            }
        );
    }

    #[test]
    fn bad_toml_reports_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bosun.toml"), "[model]\nbase_url = \n").expect("write");
        let err = read_file(&dir.path().join("bosun.toml")).expect_err("must fail");
        assert!(err.path.ends_with("bosun.toml:2:12"), "{}", err.path);
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("bosun.toml"),
            "[model]\nbase_url = \"http://file\"\nmodel = \"from-file\"\ntimeout_secs = 7\n",
        )
        .expect("write");
        let s = read_file(&dir.path().join("bosun.toml"))
            .expect("ok")
            .expect("some");
        let mut cfg = ModelConfig::default();
        apply(&mut cfg, s);
        assert_eq!(cfg.base_url.as_deref(), Some("http://file"));
        assert_eq!(cfg.model, "from-file");
        assert_eq!(cfg.timeout_secs, 7);
    }

    #[test]
    fn shim_is_auto_on_except_for_openai() {
        let with = |url: &str, shim: Option<bool>| ModelConfig {
            base_url: Some(url.into()),
            shim,
            ..Default::default()
        };
        assert!(with("http://127.0.0.1:8081/v1", None).shim_enabled());
        assert!(with("http://localhost:11434/v1", None).shim_enabled());
        assert!(!with("https://api.openai.com/v1", None).shim_enabled());
        assert!(!with("https://API.OpenAI.com/v1/", None).shim_enabled());
        assert!(with("https://api.openai.com/v1", Some(true)).shim_enabled());
        assert!(!with("http://127.0.0.1:8081/v1", Some(false)).shim_enabled());
        assert!(with("https://api.openai.com/v1", None).strict_tools_enabled());
        assert!(!with("http://127.0.0.1:8081/v1", None).strict_tools_enabled());
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bosun.toml"), "[model]\nshim = false\n").expect("write");
        let s = read_file(&dir.path().join("bosun.toml"))
            .expect("ok")
            .expect("some");
        let mut cfg = with("http://127.0.0.1:1/v1", None);
        apply(&mut cfg, s);
        assert!(!cfg.shim_enabled());
    }
}
