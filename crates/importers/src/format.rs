//! The closed list of result formats and their wire names. It knows names only, never content.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A scanner result format, by its wire name (`sarif`, `checkmarx-one`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Sarif,
    CheckmarxOne,
    CheckmarxSast,
    Snyk,
    Sonatype,
    PrismaCloud,
    Fortify,
    Blackduck,
    Trivy,
    Grype,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::Sarif,
        Format::CheckmarxOne,
        Format::CheckmarxSast,
        Format::Snyk,
        Format::Sonatype,
        Format::PrismaCloud,
        Format::Fortify,
        Format::Blackduck,
        Format::Trivy,
        Format::Grype,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sarif => "sarif",
            Format::CheckmarxOne => "checkmarx-one",
            Format::CheckmarxSast => "checkmarx-sast",
            Format::Snyk => "snyk",
            Format::Sonatype => "sonatype",
            Format::PrismaCloud => "prisma-cloud",
            Format::Fortify => "fortify",
            Format::Blackduck => "blackduck",
            Format::Trivy => "trivy",
            Format::Grype => "grype",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown scan format {0:?}")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>().unwrap(), format);
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{}\"", format.as_str()));
        }
        assert!("cobol".parse::<Format>().is_err());
    }
}
