//! [`Sha256`]: a digest value with a lower-case hex form, used in configs,
//! manifests and bmap files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex characters, for log lines and version ids.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a sha256 (expected 64 hex digits)")]
pub struct Sha256ParseError {
    /// What was given (cut to 80 characters).
    pub input: String,
}

impl FromStr for Sha256 {
    type Err = Sha256ParseError;

    /// Accepts 64 hex digits, optionally prefixed `sha256:`; any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix("sha256:").unwrap_or(t);
        let err = || Sha256ParseError { input: s.chars().take(80).collect() };
        if t.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(t, &mut out).map_err(|_| err())?;
        Ok(Sha256(out))
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn round_trips_hex() {
        let d: Sha256 = EMPTY.parse().expect("valid");
        assert_eq!(d.to_hex(), EMPTY);
        assert_eq!(format!("sha256:{}", EMPTY.to_uppercase()).parse::<Sha256>(), Ok(d));
        assert_eq!(d.short(), "e3b0c44298fc");
    }

    #[test]
    fn rejects_non_digests() {
        for bad in ["", "abc", &EMPTY[1..], &format!("{EMPTY}00"), &EMPTY.replace('e', "g")] {
            assert!(bad.parse::<Sha256>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_as_string() {
        let d: Sha256 = EMPTY.parse().expect("valid");
        let json = serde_json::to_string(&d).expect("serialise");
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).expect("parse"), d);
    }
}
