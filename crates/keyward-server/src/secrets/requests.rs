//! What the secrets API accepts: the bodies of writes, undeletes and
//! destroys, validated into what the service writes. Values are held in
//! zeroizing types and never echoed in an error.

use crate::error::{Code, Error, Result};
use keyward_core::duration;
use keyward_core::secret::{SecretData, SecretValue, check_field_name};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;

/// Secret fields from JSON: string values only, duplicate names refused.
pub(super) struct Fields(pub(super) SecretData);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Fields, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(k) = m.next_key::<String>()? {
                    let v: String = m.next_value()?;
                    if out.insert(k.clone(), SecretValue::new(v)).is_some() {
                        return Err(serde::de::Error::custom(format_args!("duplicate key {k:?} in data")));
                    }
                }
                Ok(Fields(SecretData(out)))
            }
        }
        d.deserialize_map(V)
    }
}

/// Body of a secret write.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutRequest {
    /// Field name → value (strings).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    data: Fields,
    #[serde(rename = "type")]
    kind: Option<String>,
    cas: Option<u64>,
    rotation_period: Option<String>,
}

impl fmt::Debug for PutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutRequest")
            .field("data", &"[redacted]")
            .field("kind", &self.kind)
            .field("cas", &self.cas)
            .field("rotation_period", &self.rotation_period)
            .finish()
    }
}

/// A validated write: the new version's fields and what to set with it.
#[derive(Debug)]
pub(crate) struct NewSecret {
    /// Fields (zeroized when dropped).
    pub data: SecretData,
    /// Type to set; `None` keeps the stored one.
    pub kind: Option<String>,
    /// Check-and-set: the version expected to be current.
    pub cas: Option<u64>,
    /// Rotation period to set.
    pub rotation_period_s: Option<i64>,
}

pub(super) fn check_type(kind: &str) -> Result<()> {
    let ok = (1..=32).contains(&kind.len())
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::new(Code::InvalidType, "type must be 1 to 32 lower-case letters, digits, '-' or '_'"))
    }
}

impl PutRequest {
    /// Validates field names, type and rotation period.
    pub(crate) fn plan(self) -> Result<NewSecret> {
        let data = self.data.0;
        if data.0.is_empty() {
            return Err(Error::new(Code::InvalidField, "a secret needs at least one field"));
        }
        for name in data.0.keys() {
            check_field_name(name)?;
        }
        if let Some(k) = &self.kind {
            check_type(k)?;
        }
        let rotation_period_s =
            self.rotation_period.as_deref().map(duration::parse_secs).transpose()?.map(|s| s as i64);
        Ok(NewSecret { data, kind: self.kind, cas: self.cas, rotation_period_s })
    }
}

/// Body of undelete and destroy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionsRequest {
    /// Versions; empty means the current one (undelete).
    #[serde(default)]
    pub versions: Vec<u64>,
    /// Destroy every version and the metadata.
    #[serde(default)]
    pub all: bool,
}

/// `1,2,3` → versions, each from 1.
pub(crate) fn parse_versions(s: &str) -> Result<Vec<u64>> {
    s.split(',')
        .map(|p| p.trim().parse::<u64>().ok().filter(|v| *v > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::new(Code::InvalidQuery, "versions must be a comma-separated list of numbers from 1"))
}
