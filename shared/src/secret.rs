//! A string that cannot be printed, logged or serialized by accident.

use std::fmt;

use subtle::ConstantTimeEq;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value: only for calling the provider or comparing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a value a request carried.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }

    /// `text` with every occurrence of this secret replaced by `****` (provider error messages may echo
    /// the credential they refused).
    pub fn redacted(&self, text: &str) -> String {
        if self.0.is_empty() { text.to_owned() } else { text.replace(&self.0, "****") }
    }

    /// What an API response may show: the last 4 characters at most, and nothing of a short secret.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "****".to_owned();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    }

    /// A fresh random secret of `len` characters from `A-Z a-z 0-9` (valid as a Telegram secret_token and
    /// in a URL path).
    pub fn generate(len: usize) -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        Self((0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_more_than_the_last_four() {
        assert_eq!(Secret::new("123456:ABCDEFGHIJKLmnop").masked(), "****mnop");
        assert_eq!(Secret::new("short").masked(), "****");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(****)");
    }

    #[test]
    fn compares_and_generates() {
        let s = Secret::generate(32);
        assert_eq!(s.expose().len(), 32);
        assert!(s.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(s.matches(s.expose()));
        assert!(!s.matches("nope"));
        assert_ne!(Secret::generate(32), s);
    }
}
