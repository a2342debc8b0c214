//! Typed ids. Every id is a UUID; time-ordered (v7) ones sort by creation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// One configured external system.
    IntegrationId
);
id_type!(
    /// One stored delivery (accepted or rejected) in the CI event audit.
    CiEventId
);
id_type!(
    /// One API token.
    TokenId
);
id_type!(
    /// One entry of the platform-event log.
    PlatformEventId
);
id_type!(
    /// One imported scan.
    ScanId
);
id_type!(
    /// One finding: a problem in one repository, as one tool reports it.
    FindingId
);
id_type!(
    /// One asset (today: a repository).
    AssetId
);
id_type!(
    /// One finding rule.
    FindingRuleId
);
id_type!(
    /// One comment on a finding.
    CommentId
);
id_type!(
    /// One runbook.
    RunbookId
);
id_type!(
    /// One execution of a runbook, for one platform event.
    ExecutionId
);
