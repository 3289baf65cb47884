//! Which fields of the events can hold a person's data (SPEC 3.8). Every string field of every
//! event is classified here, by event type and path; `tests/schemas.rs` fails on a string field
//! that is in neither list, marks each one in `schemas/events/` (`"x-personal": true | false`),
//! and fails on an entry that names no field. The codec seals the personal ones under the data
//! subject's key (issue 20).
//!
//! A path names a field from the payload's root: `details.title`, `details.phones[]` (each
//! item of an array), `changes[]<field=title>.value` (the `value` of a change whose `field` is `title`).
//!
//! Personal: a contact's or client's name, phones, e-mails, websites and call recordings, and
//! every free text (titles, comments, reasons written by hand, needs, objects). Not personal:
//! codes and ids from the catalog, currencies, texts the product itself writes, and everything
//! of the catalog: staff records are employment data kept for the audit trail (docs/privacy.md).

/// What a personal field reads as once its subject's key is destroyed (erased on request):
/// every read model, export and query shows this instead of the value.
pub const ERASED: &str = "[erased]";

/// Whether a field can hold a data subject's personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Personal,
    NotPersonal,
}

use Class::{NotPersonal as N, Personal as P};

/// Every string field of every event: `(event type, path, class)`.
pub const FIELDS: &[(&str, &str, Class)] = &[
    // The lead.
    ("LeadRegistered", "funnel", N),
    ("LeadRegistered", "details.title", P),
    ("LeadRegistered", "details.contactName", P),
    ("LeadRegistered", "details.phones[]", P),
    ("LeadRegistered", "details.emails[]", P),
    ("LeadRegistered", "details.accountName", P),
    ("LeadRegistered", "details.website", P),
    ("LeadRegistered", "details.comment", P),
    ("LeadRegistered", "details.needType", P),
    ("LeadRegistered", "details.object", P),
    ("LeadRegistered", "details.call.recording", P),
    ("LeadRegistered", "details.externalRef", N),
    ("LeadRegistered", "details.industry", N),
    ("LeadRegistered", "details.businessRegion", N),
    ("LeadRegistered", "details.region", N),
    ("LeadRegistered", "details.office", N),
    ("LeadRegistered", "details.department", N),
    ("LeadRegistered", "details.source", N),
    ("LeadRegistered", "details.channel", N),
    ("LeadRegistered", "details.budget.currency", N),
    ("LeadDetailsUpdated", "changes[]<field=title>.value", P),
    (
        "LeadDetailsUpdated",
        "changes[]<field=contactName>.value",
        P,
    ),
    ("LeadDetailsUpdated", "changes[]<field=phones>.value[]", P),
    ("LeadDetailsUpdated", "changes[]<field=emails>.value[]", P),
    (
        "LeadDetailsUpdated",
        "changes[]<field=accountName>.value",
        P,
    ),
    ("LeadDetailsUpdated", "changes[]<field=website>.value", P),
    ("LeadDetailsUpdated", "changes[]<field=comment>.value", P),
    ("LeadDetailsUpdated", "changes[]<field=needType>.value", P),
    ("LeadDetailsUpdated", "changes[]<field=object>.value", P),
    (
        "LeadDetailsUpdated",
        "changes[]<field=call>.value.recording",
        P,
    ),
    (
        "LeadDetailsUpdated",
        "changes[]<field=externalRef>.value",
        N,
    ),
    ("LeadDetailsUpdated", "changes[]<field=industry>.value", N),
    (
        "LeadDetailsUpdated",
        "changes[]<field=businessRegion>.value",
        N,
    ),
    ("LeadDetailsUpdated", "changes[]<field=region>.value", N),
    ("LeadDetailsUpdated", "changes[]<field=office>.value", N),
    ("LeadDetailsUpdated", "changes[]<field=department>.value", N),
    ("LeadDetailsUpdated", "changes[]<field=source>.value", N),
    ("LeadDetailsUpdated", "changes[]<field=channel>.value", N),
    (
        "LeadDetailsUpdated",
        "changes[]<field=salesDirection>.value",
        N,
    ),
    (
        "LeadDetailsUpdated",
        "changes[]<field=budget>.value.currency",
        N,
    ),
    ("LeadQualified", "contact.name", P),
    ("LeadQualified", "account.name", P),
    ("LeadConverted", "contact.name", P),
    ("LeadConverted", "account.name", P),
    ("LeadDisqualified", "reason", N),
    ("LeadDisqualified", "comment", P),
    (
        "LeadDistributed",
        "decision<decision=needAbsent>.comment",
        P,
    ),
    (
        "LeadDistributed",
        "decision<decision=continueNurturing>.strategy",
        P,
    ),
    ("LeadStageChanged", "via<kind=jump>.reason", P),
    ("LeadReopened", "comment", P),
    ("SystemTaskOpened", "text", N),
    (
        "SystemTaskCompleted",
        "result<result=placeOrder>.comment",
        P,
    ),
    (
        "SystemTaskCompleted",
        "result<result=transferToSale>.comment",
        P,
    ),
    (
        "SystemTaskCompleted",
        "result<result=returnToDistribution>.comment",
        P,
    ),
    ("SystemTaskCompleted", "result<result=postponed>.comment", P),
    (
        "SystemTaskCompleted",
        "result<result=noInterest>.comment",
        P,
    ),
    ("HandoffDetailsRecorded", "comment", P),
    ("HandoffDetailsRecorded", "needType", P),
    ("HandoffDetailsRecorded", "salesDirection", N),
    ("HandoffDetailsRecorded", "budget.currency", N),
    ("DealOpened", "salesDirection", N),
    ("DealOpened", "budget.currency", N),
    ("DealLost", "reason", P),
    // The catalog: staff and settings, none of it a data subject's.
    ("UserCreated", "login", N),
    ("UserCreated", "displayName", N),
    ("UserCreated", "department", N),
    ("UserCreated", "office", N),
    ("UserCreated", "email", N),
    ("UserUpdated", "login", N),
    ("UserUpdated", "displayName", N),
    ("UserUpdated", "department", N),
    ("UserUpdated", "office", N),
    ("UserUpdated", "email", N),
    ("DepartmentDefined", "department", N),
    ("DepartmentDefined", "name", N),
    ("OfficeDefined", "office", N),
    ("OfficeDefined", "name", N),
    ("FunnelDefined", "funnel", N),
    ("FunnelDefined", "name", N),
    ("FunnelDefined", "stages[].key", N),
    ("FunnelDefined", "stages[].name", N),
    ("FunnelDefined", "stages[].colour", N),
    ("DefaultFunnelSet", "funnel", N),
    ("SourceDefined", "code", N),
    ("SourceDefined", "name", N),
    ("SourceDefined", "group", N),
    ("SourceDefined", "tags[]", N),
    ("ListEntryDefined", "code", N),
    ("ListEntryDefined", "name", N),
    ("SettingsChanged", "settings.baseCurrency", N),
    ("SettingsChanged", "settings.automation[].key", N),
    ("SettingsChanged", "settings.automation[].textRu", N),
    ("SettingsChanged", "settings.automation[].textEn", N),
    // A data subject's stream: codes and references, never a value about the person.
    ("PersonalDataErased", "ticket", N),
    ("PersonalDataExported", "ticket", N),
    // What operators did to the read models: names, codes and references, never free text.
    ("ReadModelPaused", "model", N),
    ("ReadModelPaused", "node", N),
    ("ReadModelPaused", "why.ticket", N),
    ("ReadModelResumed", "model", N),
    ("ReadModelResumed", "node", N),
    ("ReadModelResumed", "why.ticket", N),
    ("ReadModelRetried", "model", N),
    ("ReadModelRetried", "node", N),
    ("ReadModelRetried", "why.ticket", N),
    ("ReadModelEventSkipped", "model", N),
    ("ReadModelEventSkipped", "node", N),
    ("ReadModelEventSkipped", "why.ticket", N),
    ("ReadModelRebuildStarted", "model", N),
    ("ReadModelRebuildStarted", "node", N),
    ("ReadModelRebuildStarted", "why.ticket", N),
    ("ReadModelRolledBack", "model", N),
    ("ReadModelRolledBack", "node", N),
    ("ReadModelRolledBack", "why.ticket", N),
];

/// The class of the field at `path` of `event_type`, if it is classified.
pub fn class_of(event_type: &str, path: &str) -> Option<Class> {
    FIELDS
        .iter()
        .find(|(e, p, _)| *e == event_type && *p == path)
        .map(|(_, _, c)| *c)
}

/// The personal fields of `event_type`.
pub fn personal_fields(event_type: &str) -> impl Iterator<Item = &'static str> + '_ {
    FIELDS
        .iter()
        .filter(move |(e, _, c)| *e == event_type && *c == Class::Personal)
        .map(|(_, p, _)| *p)
}
