//! Input types and their parsing into domain values: every raw string becomes a phone, an
//! e-mail, money, bounded text or a catalog code here, once, or the request fails with
//! `BAD_USER_INPUT` naming the field.

use async_graphql::{Enum, InputObject, MaybeUndefined, ID};
use chrono::{DateTime, Utc};

use leadflow_domain::details::{DetailChange, LeadDetails};
use leadflow_domain::values::{Comment, Currency, Email, Money, Name, Phone, Short, Text};
use leadflow_domain::{ChannelCode, DepartmentId, LeadId, SourceCode, UserId};
use leadflow_projections::query::{LeadFilter, Sort, SortField};

use crate::error::ApiError;
use crate::types::{InquiryType, Maturity, Quality, Stage};

pub type Parsed<T> = Result<T, ApiError>;

pub fn uuid_of(kind: &str, id: &ID) -> Parsed<uuid::Uuid> {
    uuid::Uuid::parse_str(id.as_str())
        .map_err(|_| ApiError::BadUserInput(format!("invalid {kind} id {:?}", id.as_str())))
}

pub fn lead_id(id: &ID) -> Parsed<LeadId> {
    uuid_of("lead", id).map(LeadId::from_uuid)
}

pub fn user_id(id: &ID) -> Parsed<UserId> {
    uuid_of("user", id).map(UserId::from_uuid)
}

pub fn text<const N: usize>(field: &'static str, raw: &str) -> Parsed<Text<N>> {
    Ok(Text::parse(field, raw)?)
}

pub fn opt_text<const N: usize>(
    field: &'static str,
    raw: &Option<String>,
) -> Parsed<Option<Text<N>>> {
    raw.as_deref().map(|r| text(field, r)).transpose()
}

/// An amount in major units as a decimal string, and its currency.
#[derive(InputObject, Clone, Debug)]
pub struct MoneyInput {
    /// A decimal amount such as "1500000.50".
    pub amount: String,
    #[graphql(default = "RUB")]
    pub currency: String,
}

pub fn money(m: &MoneyInput) -> Parsed<Money> {
    Ok(Money::parse_decimal(
        &m.amount,
        Currency::parse(&m.currency)?,
    )?)
}

fn phones(raw: &[String]) -> Parsed<Vec<Phone>> {
    raw.iter()
        .map(|p| Phone::parse(p).map_err(Into::into))
        .collect()
}

fn emails(raw: &[String]) -> Parsed<Vec<Email>> {
    raw.iter()
        .map(|e| Email::parse(e).map_err(Into::into))
        .collect()
}

fn source(raw: &str) -> Parsed<SourceCode> {
    Ok(SourceCode::parse(raw)?)
}

fn channel(raw: &str) -> Parsed<ChannelCode> {
    Ok(ChannelCode::parse(raw)?)
}

/// The fields of a new lead.
#[derive(InputObject, Clone, Debug, Default)]
pub struct RegisterLeadInput {
    /// Defaults to the registry's default funnel.
    pub funnel: Option<String>,
    /// Defaults to the user registering the lead, unless `unassigned`.
    pub responsible_id: Option<ID>,
    /// Web forms, calls and imports arrive without a responsible.
    #[graphql(default)]
    pub unassigned: bool,
    pub title: String,
    pub budget: Option<MoneyInput>,
    pub contact_name: Option<String>,
    #[graphql(default)]
    pub phones: Vec<String>,
    #[graphql(default)]
    pub emails: Vec<String>,
    pub account_name: Option<String>,
    pub industry: Option<String>,
    pub business_region: Option<String>,
    pub website: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    pub channel: Option<String>,
    pub inquiry_type: Option<InquiryType>,
    pub department: Option<String>,
    pub office: Option<String>,
    pub quality: Option<Quality>,
    pub advertising: Option<bool>,
    pub comment: Option<String>,
    pub need_type: Option<String>,
    pub external_ref: Option<String>,
    pub object: Option<String>,
}

impl RegisterLeadInput {
    pub fn details(&self) -> Parsed<LeadDetails> {
        Ok(LeadDetails {
            budget: self.budget.as_ref().map(money).transpose()?,
            contact_name: opt_text("contactName", &self.contact_name)?,
            phones: phones(&self.phones)?,
            emails: emails(&self.emails)?,
            account_name: opt_text("accountName", &self.account_name)?,
            industry: opt_text("industry", &self.industry)?,
            business_region: opt_text("businessRegion", &self.business_region)?,
            website: opt_text("website", &self.website)?,
            region: opt_text("region", &self.region)?,
            source: self.source.as_deref().map(source).transpose()?,
            channel: self.channel.as_deref().map(channel).transpose()?,
            inquiry_type: self.inquiry_type.map(Into::into),
            call: None,
            department: self
                .department
                .as_deref()
                .map(DepartmentId::parse)
                .transpose()?,
            office: opt_text("office", &self.office)?,
            quality: self.quality.map(Into::into).unwrap_or_default(),
            advertising: self.advertising.unwrap_or(true),
            comment: opt_text("comment", &self.comment)?,
            need_type: opt_text("needType", &self.need_type)?,
            external_ref: opt_text("externalRef", &self.external_ref)?,
            object: opt_text("object", &self.object)?,
            taken_by: None,
            taken_at: None,
            ..LeadDetails::titled(text("title", &self.title)?)
        })
    }
}

/// Fields to change: an absent field stays as it is, `null` clears it.
#[derive(InputObject, Clone, Debug, Default)]
pub struct LeadDetailsInput {
    pub title: Option<String>,
    pub budget: MaybeUndefined<MoneyInput>,
    pub contact_name: MaybeUndefined<String>,
    pub phones: Option<Vec<String>>,
    pub emails: Option<Vec<String>>,
    pub account_name: MaybeUndefined<String>,
    pub industry: MaybeUndefined<String>,
    pub business_region: MaybeUndefined<String>,
    pub website: MaybeUndefined<String>,
    pub region: MaybeUndefined<String>,
    pub source: MaybeUndefined<String>,
    pub channel: MaybeUndefined<String>,
    pub inquiry_type: MaybeUndefined<InquiryType>,
    pub department: MaybeUndefined<String>,
    pub office: MaybeUndefined<String>,
    pub quality: Option<Quality>,
    pub advertising: Option<bool>,
    pub comment: MaybeUndefined<String>,
    pub need_type: MaybeUndefined<String>,
    pub external_ref: MaybeUndefined<String>,
    pub object: MaybeUndefined<String>,
    pub sales_direction: MaybeUndefined<String>,
    pub meeting_at: MaybeUndefined<DateTime<Utc>>,
    pub decision_at: MaybeUndefined<DateTime<Utc>>,
}

/// `Some(change)` when the field was given (a value or null).
fn maybe<T, U>(
    m: &MaybeUndefined<T>,
    parse: impl Fn(&T) -> Parsed<U>,
    make: impl Fn(Option<U>) -> DetailChange,
) -> Parsed<Option<DetailChange>> {
    Ok(match m {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(make(None)),
        MaybeUndefined::Value(v) => Some(make(Some(parse(v)?))),
    })
}

impl LeadDetailsInput {
    pub fn changes(&self) -> Parsed<Vec<DetailChange>> {
        let s = |f: &'static str| move |v: &String| text::<100>(f, v);
        let n = |f: &'static str| move |v: &String| text::<200>(f, v);
        let c = |f: &'static str| move |v: &String| text::<4000>(f, v);
        let mut out: Vec<Option<DetailChange>> = vec![
            self.title
                .as_deref()
                .map(|t| text("title", t).map(DetailChange::Title))
                .transpose()?,
            maybe(&self.budget, money, DetailChange::Budget)?,
            maybe(
                &self.contact_name,
                n("contactName"),
                DetailChange::ContactName,
            )?,
            self.phones
                .as_deref()
                .map(phones)
                .transpose()?
                .map(DetailChange::Phones),
            self.emails
                .as_deref()
                .map(emails)
                .transpose()?
                .map(DetailChange::Emails),
            maybe(
                &self.account_name,
                n("accountName"),
                DetailChange::AccountName,
            )?,
            maybe(&self.industry, s("industry"), DetailChange::Industry)?,
            maybe(
                &self.business_region,
                s("businessRegion"),
                DetailChange::BusinessRegion,
            )?,
            maybe(&self.website, s("website"), DetailChange::Website)?,
            maybe(&self.region, s("region"), DetailChange::Region)?,
            maybe(&self.source, |v: &String| source(v), DetailChange::Source)?,
            maybe(
                &self.channel,
                |v: &String| channel(v),
                DetailChange::Channel,
            )?,
            maybe(
                &self.inquiry_type,
                |v: &InquiryType| Ok((*v).into()),
                DetailChange::InquiryType,
            )?,
            maybe(
                &self.department,
                |v: &String| Ok(DepartmentId::parse(v)?),
                DetailChange::Department,
            )?,
            maybe(&self.office, s("office"), DetailChange::Office)?,
            self.quality.map(|q| DetailChange::Quality(q.into())),
            self.advertising.map(DetailChange::Advertising),
            maybe(&self.comment, c("comment"), DetailChange::Comment)?,
            maybe(&self.need_type, s("needType"), DetailChange::NeedType)?,
            maybe(
                &self.external_ref,
                s("externalRef"),
                DetailChange::ExternalRef,
            )?,
            maybe(&self.object, s("object"), DetailChange::Object)?,
            maybe(
                &self.sales_direction,
                s("salesDirection"),
                DetailChange::SalesDirection,
            )?,
            maybe(
                &self.meeting_at,
                |v: &DateTime<Utc>| Ok(*v),
                DetailChange::MeetingAt,
            )?,
            maybe(
                &self.decision_at,
                |v: &DateTime<Utc>| Ok(*v),
                DetailChange::DecisionAt,
            )?,
        ];
        let changes: Vec<DetailChange> = out.drain(..).flatten().collect();
        if changes.is_empty() {
            return Err(ApiError::BadUserInput(
                "no field to change was given".to_owned(),
            ));
        }
        Ok(changes)
    }
}

/// Budget and sales direction, for a deal.
#[derive(InputObject, Clone, Debug)]
pub struct SaleTermsInput {
    pub budget: MoneyInput,
    pub sales_direction: String,
}

pub fn sale_terms(t: &SaleTermsInput) -> Parsed<leadflow_domain::commands::SaleTerms> {
    Ok(leadflow_domain::commands::SaleTerms {
        budget: money(&t.budget)?,
        sales_direction: text::<100>("salesDirection", &t.sales_direction)?,
    })
}

pub fn comment(field: &'static str, raw: &Option<String>) -> Parsed<Option<Comment>> {
    opt_text(field, raw)
}

pub fn short(field: &'static str, raw: &str) -> Parsed<Short> {
    text(field, raw)
}

pub fn name(field: &'static str, raw: &str) -> Parsed<Name> {
    text(field, raw)
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct StageFilter {
    pub eq: Option<Stage>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<Stage>>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct StringFilter {
    pub eq: Option<String>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<String>>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct IdFilter {
    pub eq: Option<ID>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<ID>>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct MaturityFilter {
    pub eq: Option<Maturity>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<Maturity>>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct QualityFilter {
    pub eq: Option<Quality>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<Quality>>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct MoneyRange {
    /// At least this amount (decimal, base currency).
    pub gte: Option<String>,
    pub lte: Option<String>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct DateTimeRange {
    pub gte: Option<DateTime<Utc>>,
    pub lt: Option<DateTime<Utc>>,
}

/// A filter on every column of the registry table.
#[derive(InputObject, Clone, Debug, Default)]
pub struct LeadFilterInput {
    pub stage: Option<StageFilter>,
    pub responsible: Option<IdFilter>,
    pub source: Option<StringFilter>,
    pub channel: Option<StringFilter>,
    pub maturity: Option<MaturityFilter>,
    pub region: Option<StringFilter>,
    pub quality: Option<QualityFilter>,
    pub advertising: Option<bool>,
    pub budget: Option<MoneyRange>,
    pub created_at: Option<DateTimeRange>,
    pub updated_at: Option<DateTimeRange>,
    /// Case-insensitive substring of the title, contact name, phone or e-mail.
    pub text: Option<String>,
    /// Hide Disqualified, NeedAbsent and NeedSatisfied.
    #[graphql(default)]
    pub hide_closed: bool,
}

fn list<T: Clone, U>(
    eq: &Option<T>,
    in_: &Option<Vec<T>>,
    f: impl Fn(&T) -> Parsed<U>,
) -> Parsed<Vec<U>> {
    eq.iter().chain(in_.iter().flatten()).map(f).collect()
}

fn minor(field: &str, raw: &Option<String>, currency: &Currency) -> Parsed<Option<i64>> {
    raw.as_deref()
        .map(|r| {
            Money::parse_decimal(r, currency.clone())
                .map(|m| m.minor())
                .map_err(|e| ApiError::BadUserInput(format!("{field}: {e}")))
        })
        .transpose()
}

impl LeadFilterInput {
    pub fn to_filter(&self, funnel: Option<String>, currency: &Currency) -> Parsed<LeadFilter> {
        let name = |s: &Stage| Ok(leadflow_domain::Stage::from(*s).to_string());
        let mut stages = match &self.stage {
            Some(f) => list(&f.eq, &f.in_, name)?,
            None => Vec::new(),
        };
        if self.hide_closed {
            let open: Vec<String> = leadflow_domain::Stage::ALL
                .iter()
                .filter(|s| !s.is_closed())
                .map(|s| s.to_string())
                .collect();
            stages = if stages.is_empty() {
                open
            } else {
                stages.into_iter().filter(|s| open.contains(s)).collect()
            };
            if stages.is_empty() {
                stages.push("none".to_owned());
            }
        }
        let strings = |f: &Option<StringFilter>| match f {
            Some(f) => list(&f.eq, &f.in_, |s: &String| Ok(s.clone())),
            None => Ok(Vec::new()),
        };
        Ok(LeadFilter {
            funnel,
            // The caller narrows it to the actor's scope.
            owner: None,
            stages,
            responsible: match &self.responsible {
                Some(f) => list(&f.eq, &f.in_, |id: &ID| user_id(id).map(|u| u.to_string()))?,
                None => Vec::new(),
            },
            sources: strings(&self.source)?,
            channels: strings(&self.channel)?,
            regions: strings(&self.region)?,
            maturities: match &self.maturity {
                Some(f) => list(&f.eq, &f.in_, |m: &Maturity| {
                    Ok(leadflow_domain::Maturity::from(*m).to_string())
                })?,
                None => Vec::new(),
            },
            qualities: match &self.quality {
                Some(f) => list(&f.eq, &f.in_, |q: &Quality| {
                    Ok(format!("{:?}", leadflow_domain::details::Quality::from(*q)))
                })?,
                None => Vec::new(),
            },
            advertising: self.advertising,
            budget_min: minor(
                "budget.gte",
                &self.budget.as_ref().and_then(|b| b.gte.clone()),
                currency,
            )?,
            budget_max: minor(
                "budget.lte",
                &self.budget.as_ref().and_then(|b| b.lte.clone()),
                currency,
            )?,
            created_from: self
                .created_at
                .as_ref()
                .and_then(|r| r.gte)
                .map(leadflow_projections::micros),
            created_to: self
                .created_at
                .as_ref()
                .and_then(|r| r.lt)
                .map(leadflow_projections::micros),
            updated_from: self
                .updated_at
                .as_ref()
                .and_then(|r| r.gte)
                .map(leadflow_projections::micros),
            updated_to: self
                .updated_at
                .as_ref()
                .and_then(|r| r.lt)
                .map(leadflow_projections::micros),
            text: match self.text.as_deref() {
                Some(t) if t.chars().count() > 200 => {
                    return Err(ApiError::BadUserInput(
                        "text filter is longer than 200 characters".into(),
                    ))
                }
                other => other.map(str::to_owned),
            },
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum LeadSortField {
    Title,
    Stage,
    Maturity,
    Responsible,
    Source,
    Channel,
    Region,
    Budget,
    ContactName,
    CreatedAt,
    UpdatedAt,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum SortDirection {
    #[default]
    Asc,
    Desc,
}

#[derive(InputObject, Clone, Copy, Debug)]
pub struct LeadOrderBy {
    pub field: LeadSortField,
    #[graphql(default)]
    pub direction: SortDirection,
}

pub fn sorts(order: &[LeadOrderBy]) -> Parsed<Vec<Sort>> {
    if order.len() > 6 {
        return Err(ApiError::BadUserInput("at most 6 orderBy entries".into()));
    }
    let sorts: Vec<Sort> = order
        .iter()
        .map(|o| Sort {
            field: match o.field {
                LeadSortField::Title => SortField::Title,
                LeadSortField::Stage => SortField::Stage,
                LeadSortField::Maturity => SortField::Maturity,
                LeadSortField::Responsible => SortField::Responsible,
                LeadSortField::Source => SortField::Source,
                LeadSortField::Channel => SortField::Channel,
                LeadSortField::Region => SortField::Region,
                LeadSortField::Budget => SortField::Budget,
                LeadSortField::ContactName => SortField::ContactName,
                LeadSortField::CreatedAt => SortField::CreatedAt,
                LeadSortField::UpdatedAt => SortField::UpdatedAt,
            },
            descending: o.direction == SortDirection::Desc,
        })
        .collect();
    Ok(if sorts.is_empty() {
        vec![Sort {
            field: SortField::UpdatedAt,
            descending: true,
        }]
    } else {
        sorts
    })
}
