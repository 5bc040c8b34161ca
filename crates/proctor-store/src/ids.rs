//! Typed ids: a job id cannot be passed where an account id is wanted.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> $name {
                $name(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<$name, uuid::Error> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

uuid_id!(
    /// An account.
    AccountId
);
uuid_id!(
    /// An API token (not its secret).
    TokenId
);
uuid_id!(
    /// A registered model.
    ModelId
);
uuid_id!(
    /// A job.
    JobId
);
uuid_id!(
    /// A grant: a vendor's permission to evaluate one of its models.
    GrantId
);
uuid_id!(
    /// A block of budget a job leased from its grant for its model queries.
    BlockId
);
uuid_id!(
    /// A usage alert.
    AlertId
);
uuid_id!(
    /// An identity alert: a model answered unlike its fingerprint.
    IdentityAlertId
);
