//! Environments and the policy that maps kube contexts to them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The seed agent's environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    Tier,
    Prod,
}

impl Environment {
    /// The default mapping when the policy does not name a context: a context whose name
    /// contains `prod` is prod, one containing `tier`, `stag` or `test` is tier, anything else dev.
    pub fn guess_from_context(context: &str) -> Self {
        let c = context.to_ascii_lowercase();
        if c.contains("prod") {
            Self::Prod
        } else if c.contains("tier") || c.contains("stag") || c.contains("test") {
            Self::Tier
        } else {
            Self::Dev
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dev => "dev",
            Self::Tier => "tier",
            Self::Prod => "prod",
        })
    }
}
