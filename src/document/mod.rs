//! Text documents with positions: YAML frontmatter split from markdown (`frontmatter`), YAML
//! parsed with line:col and unknown-key warnings (`yaml`). A leaf: the agent loader, the policy
//! and the block catalog read their files through it.

pub mod frontmatter;
pub mod yaml;
