//! `mcp_servers:` in agent.md: the MCP servers whose tools the agent uses, as written, and the
//! loader's checks of them (names, one transport each). Connecting is [`crate::mcp::client`]'s.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Separates the server name from the remote tool name in a bosun tool name.
pub const NAME_SEPARATOR: &str = "__";

/// Longest tool name bosun offers a model (OpenAI's function-name limit).
pub const MAX_TOOL_NAME: usize = 64;

/// One MCP server the agent uses (an entry of `mcp_servers:` in agent.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerDef {
    /// Prefix of this server's tools: `<name>__<tool>`.
    pub name: String,
    /// A command that speaks MCP on stdio: program and arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// A streamable-HTTP endpoint, e.g. `http://127.0.0.1:8931/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Environment of the child process, on top of PATH, HOME, LANG, LC_ALL, TMPDIR. A value
    /// `${NAME}` is taken from bosun's own environment; nothing else of it is passed on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the child process (relative to the agent directory; default: it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Timeout of one tool call in seconds (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl McpServerDef {
    /// What bosun would connect to, for `bosun validate` and error messages.
    pub fn describe(&self) -> String {
        match (&self.url, self.command.is_empty()) {
            (Some(u), _) => format!("streamable HTTP {u}"),
            (None, false) => format!("command `{}`", self.command.join(" ")),
            (None, true) => "nothing (no command or url)".into(),
        }
    }
}

/// Errors of the MCP server and client.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("mcp server `{server}` ({what}): {message}")]
    Connect {
        server: String,
        what: String,
        message: String,
    },
    #[error("mcp server `{server}`: listing its tools failed: {message}")]
    List { server: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("the MCP transport failed: {0}")]
    Transport(String),
    #[error("tool name `{0}` is offered twice; rename the agent or the MCP server")]
    DuplicateTool(String),
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Problems with the `mcp_servers:` entries (empty when they are fine).
pub fn check_servers(servers: &[McpServerDef]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in servers {
        let n = &s.name;
        if n.is_empty() || !n.chars().all(valid_name_char) || n.contains(NAME_SEPARATOR) {
            out.push(format!(
                "mcp_servers: name `{n}` may only contain letters, digits, `-` and `_`, and not `{NAME_SEPARATOR}`"
            ));
        }
        if !seen.insert(n.as_str()) {
            out.push(format!("mcp_servers: server `{n}` is listed twice"));
        }
        match (&s.url, s.command.is_empty()) {
            (Some(_), false) => out.push(format!(
                "mcp_servers: server `{n}` has both `command` and `url`; give one"
            )),
            (None, true) => out.push(format!(
                "mcp_servers: server `{n}` needs `command: [program, args…]` (stdio) or `url:` (streamable HTTP)"
            )),
            (Some(u), true) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                out.push(format!(
                    "mcp_servers: server `{n}`: url `{u}` must start with http:// or https://"
                ))
            }
            _ => {}
        }
        if s.url.is_some() && (!s.env.is_empty() || s.cwd.is_some()) {
            out.push(format!(
                "mcp_servers: server `{n}`: `env` and `cwd` apply to `command` servers only"
            ));
        }
        if s.command.first().is_some_and(|p| p.trim().is_empty()) {
            out.push(format!("mcp_servers: server `{n}`: the program is empty"));
        }
        for k in s.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                out.push(format!(
                    "mcp_servers: server `{n}`: `{k}` is not an environment variable name"
                ));
            }
        }
        if s.timeout_secs == Some(0) {
            out.push(format!(
                "mcp_servers: server `{n}`: timeout_secs must be at least 1"
            ));
        }
    }
    out
}

/// The MCP tool name of the agent: `run_<agent id>` with `-` → `_`.
pub fn run_tool_name(agent_id: &str) -> String {
    format!("run_{}", agent_id.replace('-', "_"))
}

/// The bosun tool name of remote tool `tool` of server `server`: `<server>__<tool>`, with
/// characters a model's function name cannot carry replaced by `_`. `None` when too long.
pub fn client_tool_name(server: &str, tool: &str) -> Option<String> {
    let tool: String = tool
        .chars()
        .map(|c| if valid_name_char(c) { c } else { '_' })
        .collect();
    let name = format!("{server}{NAME_SEPARATOR}{tool}");
    (!tool.is_empty() && name.len() <= MAX_TOOL_NAME).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(yaml: &str) -> Vec<McpServerDef> {
        serde_saphyr::from_str(yaml).expect("yaml")
    }

    #[test]
    fn server_entries_are_checked() {
        assert!(check_servers(&def("- {name: docs, command: [python3, s.py]}\n")).is_empty());
        assert!(check_servers(&def("- {name: web, url: 'http://127.0.0.1:1/mcp'}\n")).is_empty());
        let bad = def(concat!(
            "- {name: 'a__b', command: [x]}\n",
            "- {name: c, command: [x], url: 'http://x'}\n",
            "- {name: c}\n",
            "- {name: d, url: 'ftp://x'}\n",
        ));
        let p = check_servers(&bad);
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p[0].contains("not `__`"));
        assert!(p[1].contains("both"));
        assert!(p[2].contains("listed twice"));
        assert!(p[3].contains("needs `command"));
        assert!(p[4].contains("http://"));
        assert!(serde_saphyr::from_str::<Vec<McpServerDef>>("- {name: x, comand: [y]}\n").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            run_tool_name("infrastructure-engineer"),
            "run_infrastructure_engineer"
        );
        assert_eq!(
            client_tool_name("docs", "search.v2").as_deref(),
            Some("docs__search_v2")
        );
        assert_eq!(client_tool_name("docs", &"x".repeat(80)), None);
        assert_eq!(client_tool_name("docs", ""), None);
    }
}
