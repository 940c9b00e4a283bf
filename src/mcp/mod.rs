//! MCP (Model Context Protocol, crate `rmcp`) in both directions.
//!
//! - [`server`]: bosun as an MCP server (`bosun mcp`, over stdio or streamable HTTP). It offers the
//!   agent as one tool, `run_<agent id>` (task → report), and — with `expose_tools` — the guarded
//!   tools themselves, annotated from their effect classes. A direct call passes the same
//!   [`Guard::admit`](crate::guard::Guard::admit) as a model's call, with one guard per MCP
//!   connection.
//! - [`client`]: MCP servers listed in the agent's frontmatter (`mcp_servers:`) become bosun
//!   tools named `<server>__<tool>`, classified from their annotations, behind the same guard.
//!
//! ```yaml
//! mcp_servers:
//!   - name: docs                         # letters, digits, - and _ (no `__`)
//!     command: [python3, server.py]      # a child process speaking MCP on stdio (cwd: the agent dir)
//!     env: {DOCS_TOKEN: "${DOCS_TOKEN}"} # the child gets PATH, HOME, LANG and only these
//!     timeout_secs: 60                   # per call (default 120)
//!   - name: search
//!     url: http://127.0.0.1:8931/mcp     # streamable HTTP
//! ```

pub mod client;
pub mod server;

pub use crate::agent::mcp_servers::{
    check_servers, client_tool_name, run_tool_name, McpError, McpServerDef, MAX_TOOL_NAME,
    NAME_SEPARATOR,
};
