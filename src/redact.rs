//! The redactor: one place where every value known to be secret is masked before text reaches
//! the model, a log line, the audit log, an event or a transcript.
//!
//! Values are registered when the runtime learns them (a resolved vault reference, a Secret's
//! data, a terraform sensitive output, a kubeconfig token). Redaction replaces every occurrence —
//! and the base64 form, since Kubernetes Secrets carry values base64-encoded — with
//! `[REDACTED]`.

use std::sync::RwLock;

/// What replaces a secret value.
pub const MASK: &str = "[REDACTED]";

/// Values shorter than this are not registered: masking "a" or "1" everywhere would destroy
/// every output while protecting nothing.
pub const MIN_SECRET_LEN: usize = 4;

/// A set of secret values. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Redactor {
    values: RwLock<Vec<String>>,
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a secret value (and its base64 form). Short values are ignored.
    pub fn register(&self, value: &str) {
        let v = value.trim();
        if v.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let mut vals = match self.values.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for form in [v.to_string(), b64(v)] {
            if !vals.contains(&form) {
                vals.push(form);
            }
        }
        // longest first, so a secret containing another is masked whole
        vals.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Number of registered forms.
    pub fn len(&self) -> usize {
        self.values.read().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `text` with every registered value masked.
    pub fn redact(&self, text: &str) -> String {
        let vals = match self.values.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut out = text.to_string();
        for v in vals.iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_and_base64_forms_longest_first() {
        let r = Redactor::new();
        r.register("hunter2-secret");
        r.register("hunter2-secret-longer");
        r.register("ab"); // too short: ignored
        let t = "pw=hunter2-secret-longer other=hunter2-secret b64=aHVudGVyMi1zZWNyZXQ= ab";
        assert_eq!(
            r.redact(t),
            "pw=[REDACTED] other=[REDACTED] b64=[REDACTED] ab"
        );
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(b64("s3cr3t"), "czNjcjN0");
        assert_eq!(b64("ab"), "YWI=");
        assert_eq!(b64("abcd"), "YWJjZA==");
    }
}
