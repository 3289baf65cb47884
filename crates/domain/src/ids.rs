//! Typed identifiers. Entity ids are UUIDs; catalog items are short codes. Ids the domain
//! itself must mint (the contact, account, deal and system tasks a lead opens) are derived
//! deterministically from the lead id, so deciding twice gives the same ids and no random
//! source is needed.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::ValueError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an already-parsed UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses a UUID in any of its textual forms.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                Uuid::parse_str(raw.trim()).map(Self).map_err(|_| ValueError::Id {
                    kind: $kind,
                    input: raw.to_owned(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A lead: the stream `lead-{id}`.
    LeadId, "lead id"
);
uuid_id!(
    /// A user of the CRM (from the catalog).
    UserId, "user id"
);
uuid_id!(
    /// A contact person, created or linked at qualification or conversion.
    ContactId, "contact id"
);
uuid_id!(
    /// An account (client company).
    AccountId, "account id"
);
uuid_id!(
    /// The deal opened when a lead reaches AwaitingSale.
    DealId, "deal id"
);
uuid_id!(
    /// A data subject: a person outside the company whose personal data the CRM holds (a
    /// lead's contact). Its key seals every personal field about them; erasing them destroys
    /// it (issue 20).
    SubjectId, "subject id"
);
uuid_id!(
    /// A task, including the system tasks the stage machine opens.
    TaskId, "task id"
);

impl UserId {
    /// A stable id for a named catalog user, so the default catalog is the same everywhere.
    pub fn named(name: &str) -> Self {
        Self(Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("leadflow/user/{name}").as_bytes(),
        ))
    }
}

impl ContactId {
    /// The contact a lead creates from its own data.
    pub fn for_lead(lead: LeadId) -> Self {
        Self(Uuid::new_v5(&lead.0, b"contact"))
    }
}

impl SubjectId {
    /// The subject minted when `lead` is registered with contact data of its own. (Stored
    /// leads from before subjects existed read as this subject too.) It is the lead's id
    /// marked as a subject's (UUID version 8): as time-ordered as lead ids are, so the store
    /// files keys in the order leads arrive rather than at random places of its index.
    pub fn for_lead(lead: LeadId) -> Self {
        let mut bytes = *lead.0.as_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(Uuid::from_bytes(bytes))
    }
}

impl AccountId {
    /// The account a lead creates from its own data.
    pub fn for_lead(lead: LeadId) -> Self {
        Self(Uuid::new_v5(&lead.0, b"account"))
    }
}

impl DealId {
    /// The `n`-th deal a lead opens (a lost deal sends the lead back, a later one is new).
    pub fn for_lead(lead: LeadId, n: u32) -> Self {
        Self(Uuid::new_v5(&lead.0, format!("deal/{n}").as_bytes()))
    }
}

impl TaskId {
    /// The `n`-th system task a lead opens.
    pub fn for_lead(lead: LeadId, n: u32) -> Self {
        Self(Uuid::new_v5(&lead.0, format!("task/{n}").as_bytes()))
    }
}

macro_rules! code_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a code: 1-64 characters of `a-z`, `0-9`, `_` and `-`.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                let ok = !raw.is_empty()
                    && raw.len() <= 64
                    && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
                if ok {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(ValueError::Code { kind: $kind, input: raw.to_owned() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_id!(
    /// A sales funnel of the catalog.
    FunnelId, "funnel"
);
code_id!(
    /// A stage of a funnel, as the funnel names it (the funnel maps it onto a [`crate::Stage`]).
    StageKey, "stage"
);
code_id!(
    /// A disqualification reason of the catalog.
    ReasonCode, "disqualification reason"
);
code_id!(
    /// A lead source of the catalog.
    SourceCode, "source"
);
code_id!(
    /// An intake channel (the integration a lead came through).
    ChannelCode, "channel"
);
code_id!(
    /// A department of the catalog.
    DepartmentId, "department"
);
code_id!(
    /// An office of the catalog.
    OfficeId, "office"
);
code_id!(
    /// An entry of a plain catalog list (sales direction, industry, business region), or an
    /// automation rule's key.
    EntryCode, "list entry"
);

/// A user's login (`olga.supervisor`): 1-64 characters of `a-z`, `0-9`, `.`, `_` and `-`,
/// starting with a letter. The user's id derives from it ([`UserId::named`]).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Login(String);

impl Login {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let ok = raw.len() <= 64
            && raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::Code {
                kind: "login",
                input: raw.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the user with this login.
    pub fn user_id(&self) -> UserId {
        UserId::named(&self.0)
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_deterministic_and_distinct() {
        let lead = LeadId::from_uuid(Uuid::from_u128(42));
        assert_eq!(ContactId::for_lead(lead), ContactId::for_lead(lead));
        assert_ne!(
            ContactId::for_lead(lead).as_uuid(),
            AccountId::for_lead(lead).as_uuid()
        );
        assert_ne!(TaskId::for_lead(lead, 1), TaskId::for_lead(lead, 2));
        // A subject is not its lead, and subjects of later leads sort later.
        assert_ne!(SubjectId::for_lead(lead).as_uuid(), lead.as_uuid());
        let (a, b) = (
            LeadId::from_uuid(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)),
            LeadId::from_uuid(Uuid::from_u128(0x0190_0000_0001_7000_8000_0000_0000_0000)),
        );
        assert!(SubjectId::for_lead(a) < SubjectId::for_lead(b));
        assert_eq!(SubjectId::for_lead(a).as_uuid().get_version_num(), 8);
    }

    #[test]
    fn logins_allow_dots_but_start_with_a_letter() {
        assert!(Login::parse("olga.supervisor").is_ok());
        assert!(Login::parse(".olga").is_err());
        assert!(Login::parse("Olga").is_err());
        assert!(Login::parse("").is_err());
        assert_eq!(
            Login::parse("admin").unwrap().user_id(),
            UserId::named("admin")
        );
    }

    #[test]
    fn codes_reject_spaces_and_capitals() {
        assert!(FunnelId::parse("default").is_ok());
        assert!(FunnelId::parse("Default").is_err());
        assert!(FunnelId::parse("a b").is_err());
        assert!(FunnelId::parse("").is_err());
    }
}
