//! The guard, at its historical path: see [`crate::call::guard`] (it lives with the tool
//! contract, which it is the only way through).

pub use crate::call::guard::*;
