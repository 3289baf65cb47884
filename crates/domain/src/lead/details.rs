//! The descriptive fields of a lead (SPEC 3.2) and the per-field changes that edit them.
//! A change is one variant per field, so an update event lists exactly what changed and a
//! projection can apply it without knowing the rest of the card.

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{ChannelCode, DepartmentId, SourceCode, UserId};
use crate::values::{Comment, Email, Money, Name, Phone, Short};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum InquiryType {
    Call,
    MissedCall,
    WebRequest,
    ManualRequest,
    Chat,
    Email,
    Import,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CallDirection {
    In,
    Out,
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CallResult {
    Answered,
    NoAnswer,
    Busy,
}

/// The call an inquiry came from (seed 004).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallInfo {
    pub direction: CallDirection,
    pub duration_secs: u32,
    pub result: CallResult,
    pub recording: Option<Short>,
}

crate::stage::named! {
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum Quality {
    Target,
    NonTarget,
    Repeat,
    Unverified,
    #[default]
    Unsorted,
}
}

/// Everything a lead says about the inquiry and the customer; the process fields (stage,
/// maturity, responsible, links) live on [`crate::Lead`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadDetails {
    pub title: Name,
    pub budget: Option<Money>,
    pub contact_name: Option<Name>,
    pub phones: Vec<Phone>,
    pub emails: Vec<Email>,
    pub account_name: Option<Name>,
    pub industry: Option<Short>,
    pub business_region: Option<Short>,
    pub website: Option<Short>,
    pub region: Option<Short>,
    pub source: Option<SourceCode>,
    pub channel: Option<ChannelCode>,
    pub inquiry_type: Option<InquiryType>,
    pub call: Option<CallInfo>,
    pub department: Option<DepartmentId>,
    pub office: Option<Short>,
    pub quality: Quality,
    pub advertising: bool,
    pub comment: Option<Comment>,
    pub need_type: Option<Short>,
    pub external_ref: Option<Short>,
    pub object: Option<Short>,
    pub taken_by: Option<UserId>,
    pub taken_at: Option<DateTime<Utc>>,
}

impl LeadDetails {
    /// A lead with a title and nothing else: advertising, quality not yet sorted.
    pub fn titled(title: Name) -> Self {
        Self {
            title,
            budget: None,
            contact_name: None,
            phones: Vec::new(),
            emails: Vec::new(),
            account_name: None,
            industry: None,
            business_region: None,
            website: None,
            region: None,
            source: None,
            channel: None,
            inquiry_type: None,
            call: None,
            department: None,
            office: None,
            quality: Quality::Unsorted,
            advertising: true,
            comment: None,
            need_type: None,
            external_ref: None,
            object: None,
            taken_by: None,
            taken_at: None,
        }
    }

    /// Someone to reach: a contact name with a phone or an e-mail, or an account name.
    pub fn is_reachable(&self) -> bool {
        (self.contact_name.is_some() && (!self.phones.is_empty() || !self.emails.is_empty()))
            || self.account_name.is_some()
    }
}

/// What handoff fills in (seed 002); stays editable in AwaitingSale.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandoffDetails {
    pub sales_direction: Option<Short>,
    pub meeting_at: Option<DateTime<Utc>>,
    pub decision_at: Option<DateTime<Utc>>,
}

/// One field's new value (`None` clears an optional field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "field", content = "value", rename_all = "camelCase")]
pub enum DetailChange {
    Title(Name),
    Budget(Option<Money>),
    ContactName(Option<Name>),
    Phones(Vec<Phone>),
    Emails(Vec<Email>),
    AccountName(Option<Name>),
    Industry(Option<Short>),
    BusinessRegion(Option<Short>),
    Website(Option<Short>),
    Region(Option<Short>),
    Source(Option<SourceCode>),
    Channel(Option<ChannelCode>),
    InquiryType(Option<InquiryType>),
    Call(Option<CallInfo>),
    Department(Option<DepartmentId>),
    Office(Option<Short>),
    Quality(Quality),
    Advertising(bool),
    Comment(Option<Comment>),
    NeedType(Option<Short>),
    ExternalRef(Option<Short>),
    Object(Option<Short>),
    SalesDirection(Option<Short>),
    MeetingAt(Option<DateTime<Utc>>),
    DecisionAt(Option<DateTime<Utc>>),
}

impl DetailChange {
    /// The field's name as the API spells it; two changes to one field in a command are refused.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Title(_) => "title",
            Self::Budget(_) => "budget",
            Self::ContactName(_) => "contactName",
            Self::Phones(_) => "phones",
            Self::Emails(_) => "emails",
            Self::AccountName(_) => "accountName",
            Self::Industry(_) => "industry",
            Self::BusinessRegion(_) => "businessRegion",
            Self::Website(_) => "website",
            Self::Region(_) => "region",
            Self::Source(_) => "source",
            Self::Channel(_) => "channel",
            Self::InquiryType(_) => "inquiryType",
            Self::Call(_) => "call",
            Self::Department(_) => "department",
            Self::Office(_) => "office",
            Self::Quality(_) => "quality",
            Self::Advertising(_) => "advertising",
            Self::Comment(_) => "comment",
            Self::NeedType(_) => "needType",
            Self::ExternalRef(_) => "externalRef",
            Self::Object(_) => "object",
            Self::SalesDirection(_) => "salesDirection",
            Self::MeetingAt(_) => "meetingAt",
            Self::DecisionAt(_) => "decisionAt",
        }
    }

    /// Writes the new value into the card.
    pub fn apply(&self, d: &mut LeadDetails, h: &mut HandoffDetails) {
        match self.clone() {
            Self::Title(v) => d.title = v,
            Self::Budget(v) => d.budget = v,
            Self::ContactName(v) => d.contact_name = v,
            Self::Phones(v) => d.phones = v,
            Self::Emails(v) => d.emails = v,
            Self::AccountName(v) => d.account_name = v,
            Self::Industry(v) => d.industry = v,
            Self::BusinessRegion(v) => d.business_region = v,
            Self::Website(v) => d.website = v,
            Self::Region(v) => d.region = v,
            Self::Source(v) => d.source = v,
            Self::Channel(v) => d.channel = v,
            Self::InquiryType(v) => d.inquiry_type = v,
            Self::Call(v) => d.call = v,
            Self::Department(v) => d.department = v,
            Self::Office(v) => d.office = v,
            Self::Quality(v) => d.quality = v,
            Self::Advertising(v) => d.advertising = v,
            Self::Comment(v) => d.comment = v,
            Self::NeedType(v) => d.need_type = v,
            Self::ExternalRef(v) => d.external_ref = v,
            Self::Object(v) => d.object = v,
            Self::SalesDirection(v) => h.sales_direction = v,
            Self::MeetingAt(v) => h.meeting_at = v,
            Self::DecisionAt(v) => h.decision_at = v,
        }
    }
}
