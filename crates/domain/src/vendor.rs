//! Vendors and the connector archetype each belongs to.
//!
//! Vendor-specific behaviour is looked up through this registry, never by branching on vendor
//! names elsewhere: a new vendor is one new variant here plus its module in the crate that
//! implements its archetype.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of external system an integration is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Archetype {
    /// Receives CI events; triggers pipelines; SCM ones post statuses and PR comments.
    CiWebhook,
    /// Pulls project-level scan results on a schedule or on demand.
    PullOnly,
    /// Launches scans on a vendor engine and imports them when done.
    RemoteScanner,
    /// Tickets.
    Itsm,
    /// Messages.
    Notification,
}

impl Archetype {
    pub fn as_str(self) -> &'static str {
        match self {
            Archetype::CiWebhook => "ci_webhook",
            Archetype::PullOnly => "pull_only",
            Archetype::RemoteScanner => "remote_scanner",
            Archetype::Itsm => "itsm",
            Archetype::Notification => "notification",
        }
    }
}

macro_rules! vendors {
    ($($variant:ident => $name:literal, $archetype:ident;)*) => {
        /// Every vendor PMAP knows, by its wire name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Vendor {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl Vendor {
            pub const ALL: &'static [Vendor] = &[$(Vendor::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Vendor::$variant => $name,)*
                }
            }

            pub fn archetype(self) -> Archetype {
                match self {
                    $(Vendor::$variant => Archetype::$archetype,)*
                }
            }
        }

        impl FromStr for Vendor {
            type Err = UnknownVendor;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Vendor::$variant),)*
                    _ => Err(UnknownVendor(s.to_owned())),
                }
            }
        }
    };
}

vendors! {
    Github => "github", CiWebhook;
    Gitlab => "gitlab", CiWebhook;
    Jenkins => "jenkins", CiWebhook;
    AzureDevops => "azure-devops", CiWebhook;
    Bamboo => "bamboo", CiWebhook;
    Bitbucket => "bitbucket", CiWebhook;
    CheckmarxOne => "checkmarx-one", PullOnly;
    CheckmarxSast => "checkmarx-sast", PullOnly;
    Snyk => "snyk", PullOnly;
    Blackduck => "blackduck", PullOnly;
    Sonatype => "sonatype", PullOnly;
    PrismaCloud => "prisma-cloud", PullOnly;
    Fortify => "fortify", PullOnly;
    Tenable => "tenable", RemoteScanner;
    Qualys => "qualys", RemoteScanner;
    Jira => "jira", Itsm;
    Servicenow => "servicenow", Itsm;
    Slack => "slack", Notification;
    Teams => "teams", Notification;
    Smtp => "smtp", Notification;
}

impl Vendor {
    /// SCM vendors can receive commit statuses and PR comments themselves.
    pub fn is_scm(self) -> bool {
        matches!(
            self,
            Vendor::Github | Vendor::Gitlab | Vendor::AzureDevops | Vendor::Bitbucket
        )
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown vendor {0:?}")]
pub struct UnknownVendor(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in Vendor::ALL {
            assert_eq!(v.as_str().parse::<Vendor>().unwrap(), *v);
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
        }
        assert_eq!(Vendor::ALL.len(), 20);
        assert_eq!(Vendor::AzureDevops.archetype(), Archetype::CiWebhook);
        assert!("circleci".parse::<Vendor>().is_err());
    }
}
