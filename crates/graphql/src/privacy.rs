//! Personal data on request (issue 20): erasing a data subject, for admins. Erasure is
//! crypto-shredding: the subject's key is destroyed, after which every personal field sealed
//! with it reads as `[erased]` in every read model, export and answer; the process history
//! (stages, times, amounts, who acted) stays whole.

use async_graphql::{Context, Enum, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

use leadflow_codec::seal::matching;
use leadflow_domain::{ErasureReason, Role, SubjectCommand, SubjectId, TicketRef};
use leadflow_engine::{CommandMeta, OutcomeKind};

use crate::error::ApiError;
use crate::types::LogPosition;
use crate::{actor, AppState};

/// Why a person's data is erased: a fixed list, never free text (the log keeps it forever).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ErasureReasonCode {
    /// The person asked (152-FZ art. 21, GDPR art. 17).
    Request,
    /// The retention period ran out.
    Retention,
    /// A duplicate record of a person kept elsewhere.
    Duplicate,
    Other,
}

impl From<ErasureReasonCode> for ErasureReason {
    fn from(r: ErasureReasonCode) -> Self {
        match r {
            ErasureReasonCode::Request => ErasureReason::Request,
            ErasureReasonCode::Retention => ErasureReason::Retention,
            ErasureReasonCode::Duplicate => ErasureReason::Duplicate,
            ErasureReasonCode::Other => ErasureReason::Other,
        }
    }
}

#[derive(SimpleObject)]
pub struct ErasurePayload {
    pub subject: ID,
    /// False when the subject was erased before (erasing again changes nothing).
    pub erased_now: bool,
    /// Where the erasure sits in the log: pass it as `consistency` to read models that show it.
    pub position: Option<LogPosition>,
}

/// One personal value held for a subject, and where it came from.
#[derive(SimpleObject)]
pub struct PersonalValue {
    pub lead: ID,
    pub event_type: String,
    pub position: LogPosition,
    pub occurred_at: DateTime<Utc>,
    /// The field's path in the event (`details.phones[]`).
    pub field: String,
    pub value: String,
}

/// A subject's personal data, as handed out on request.
#[derive(SimpleObject)]
pub struct PersonalDataExport {
    pub subject: ID,
    pub values: Vec<PersonalValue>,
    /// Where the export itself is recorded in the log (who, when, how many values).
    pub recorded_at: Option<LogPosition>,
}

fn ticket_ref(raw: Option<String>) -> Result<Option<TicketRef>, ApiError> {
    raw.map(|t| TicketRef::parse(&t).map_err(|e| ApiError::BadUserInput(e.to_string())))
        .transpose()
}

fn subject_id(raw: &ID) -> Result<SubjectId, ApiError> {
    SubjectId::parse(raw).map_err(|e| ApiError::BadUserInput(e.to_string()))
}

/// Personal data on request: admins only.
#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Erases a data subject (a lead's `subject`): destroys their key, so every personal field
    /// of theirs reads as `[erased]` everywhere from now on, and records who did it, why (a
    /// code) and under which ticket. Erasing an erased subject again changes nothing.
    async fn erase_personal_data(
        &self,
        ctx: &Context<'_>,
        subject: ID,
        reason_code: ErasureReasonCode,
        ticket: Option<String>,
    ) -> Result<ErasurePayload> {
        let actor = actor(ctx)?;
        // Only admins: refused before the input is judged, so others learn nothing from it.
        if actor.role != Role::Admin {
            return Err(
                ApiError::Forbidden("only an admin may erase a person's data".to_owned()).into(),
            );
        }
        let command = SubjectCommand::Erase {
            subject: subject_id(&subject)?,
            reason: reason_code.into(),
            ticket: ticket_ref(ticket)?,
        };
        let state = ctx.data_unchecked::<AppState>();
        let out = state
            .engine
            .execute_subject(command, CommandMeta::by(actor))
            .await
            .map_err(ApiError::from)?;
        Ok(ErasurePayload {
            subject,
            erased_now: out.kind == OutcomeKind::Appended,
            position: out.position.map(LogPosition),
        })
    }
}

/// A data subject found by a value, with the leads that hold it.
#[derive(SimpleObject)]
pub struct SubjectMatch {
    pub subject: ID,
    pub leads: Vec<ID>,
}

/// Personal data on request: admins only.
#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// The data subjects holding any of the values given (a phone in any usual form, an
    /// e-mail, a contact's name), found through the read model's blind index: it keeps HMAC
    /// tokens of these values under a secret derived from the master key, never the values
    /// in a searchable form. For requests about a person (export, erasure); admins only.
    /// `consistency`: wait until the read model has what a mutation's position says.
    async fn personal_data_subjects(
        &self,
        ctx: &Context<'_>,
        phone: Option<String>,
        email: Option<String>,
        name: Option<String>,
        consistency: Option<LogPosition>,
    ) -> Result<Vec<SubjectMatch>> {
        let actor = actor(ctx)?;
        if actor.role != Role::Admin {
            return Err(
                ApiError::Forbidden("only an admin may look a person up".to_owned()).into(),
            );
        }
        let state = ctx.data_unchecked::<AppState>();
        let blind = state
            .engine
            .keyring()
            .and_then(|k| k.blind_index().ok())
            .ok_or_else(|| ApiError::Internal("personal data keys are not configured".into()))?;
        let mut tokens = Vec::new();
        if let Some(raw) = phone {
            let phone = leadflow_domain::values::Phone::parse(&raw)
                .map_err(|e| ApiError::BadUserInput(e.to_string()))?;
            tokens.push(blind.digest_of(matching::PHONE, phone.as_str()));
        }
        if let Some(raw) = email {
            tokens.push(blind.digest_of(matching::EMAIL, &raw));
        }
        if let Some(raw) = name {
            tokens.push(blind.digest_of(matching::NAME, &raw));
        }
        if tokens.is_empty() {
            return Err(ApiError::BadUserInput("give a phone, an e-mail or a name".into()).into());
        }
        crate::consistent(state, consistency).await?;
        let found = state
            .reads
            .read(leadflow_projections::LEADS, move |c| {
                leadflow_projections::privacy::subjects_matching(c, &tokens)
            })
            .await
            .map_err(ApiError::from)?;
        Ok(found
            .into_iter()
            .map(|(subject, leads)| SubjectMatch {
                subject: ID(subject.to_string()),
                leads: leads.into_iter().map(|l| ID(l.to_string())).collect(),
            })
            .collect())
    }

    /// Every personal value held for a data subject (a lead's `subject`), with where it came
    /// from: the lead, the event, its position and time, the field. Reading it is recorded in
    /// the log (`PersonalDataExported`: who, when, how many values, the ticket; no value). An
    /// erased subject has none left.
    async fn personal_data(
        &self,
        ctx: &Context<'_>,
        subject: ID,
        ticket: Option<String>,
    ) -> Result<PersonalDataExport> {
        let actor = actor(ctx)?;
        if actor.role != Role::Admin {
            return Err(
                ApiError::Forbidden("only an admin may export a person's data".to_owned()).into(),
            );
        }
        let id = subject_id(&subject)?;
        let ticket = ticket_ref(ticket)?;
        let state = ctx.data_unchecked::<AppState>();
        let keys = state
            .engine
            .keyring()
            .ok_or_else(|| ApiError::Internal("personal data keys are not configured".into()))?;
        let leads = state
            .reads
            .read(leadflow_projections::LEADS, move |c| {
                leadflow_projections::privacy::leads_of(c, id)
            })
            .await
            .map_err(ApiError::from)?;
        let values =
            leadflow_projections::privacy::export(state.reads.log().as_ref(), keys, id, &leads)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        let recorded = state
            .engine
            .execute_subject(
                SubjectCommand::RecordExport {
                    subject: id,
                    values: values.len() as u32,
                    ticket,
                },
                CommandMeta::by(actor),
            )
            .await
            .map_err(ApiError::from)?;
        Ok(PersonalDataExport {
            subject,
            recorded_at: recorded.position.map(LogPosition),
            values: values
                .into_iter()
                .map(|v| PersonalValue {
                    lead: ID(v.lead.to_string()),
                    event_type: v.event_type,
                    position: LogPosition(leadflow_store::Position(v.position)),
                    occurred_at: v.occurred_at,
                    field: v.field,
                    value: v.value,
                })
                .collect(),
        })
    }
}
