//! Typed views of what the GraphQL API answers (the payload of a mutation, the card, the
//! board, a table page, the history feed, report rows, a refusal) and the documents the tests
//! send, so a test reads as its steps and its checks rather than as JSON plumbing.
//!
//! The views mirror the API's field names and hold only what the tests look at; they parse
//! answers, they never decide what is right. Every query helper takes the `consistency`
//! position the last mutation returned (`None`: read whatever the models have now).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::TestApp;

/// The card fields every mutation and `lead` query select.
pub const CARD_FIELDS: &str = "
fragment card on LeadCard {
  id stage stageName maturity title
  budget { amount currency }
  responsible { name }
  createdBy { name }
  contactId
  deal { id kind }
  disqualification { reason reasonName comment }
  openTasks { id kind assignee { name } }
  allowedCommands
}";

const PAYLOAD_FIELDS: &str = "
fragment payload on LeadPayload { position replayed lead { ...card } }";

/// Mutation documents; each selects `...payload` and takes an optional `$key`
/// (the idempotency key).
pub mod ops {
    pub const REGISTER: &str = "mutation($input: RegisterLeadInput!, $key: String) {
        registerLead(input: $input, idempotencyKey: $key) { ...payload } }";
    pub const QUALIFY: &str = "mutation($lead: ID!, $key: String) {
        qualifyLead(lead: $lead, idempotencyKey: $key) { ...payload } }";
    pub const DISQUALIFY: &str = "mutation($lead: ID!, $reason: String!, $comment: String, $key: String) {
        disqualifyLead(lead: $lead, reason: $reason, comment: $comment, idempotencyKey: $key) { ...payload } }";
    pub const ASSIGN: &str = "mutation($lead: ID!, $to: ID!, $key: String) {
        assignResponsible(lead: $lead, to: $to, idempotencyKey: $key) { ...payload } }";
    pub const DISTRIBUTE: &str = "mutation($lead: ID!, $input: DistributeInput!, $key: String) {
        distributeLead(lead: $lead, input: $input, idempotencyKey: $key) { ...payload } }";
    pub const COMPLETE_HANDOFF_TASK: &str =
        "mutation($lead: ID!, $input: HandoffResultInput!, $key: String) {
        completeHandoffTask(lead: $lead, input: $input, idempotencyKey: $key) { ...payload } }";
    pub const SUBMIT_HANDOFF_DETAILS: &str =
        "mutation($lead: ID!, $input: HandoffDetailsInput!, $key: String) {
        submitHandoffDetails(lead: $lead, input: $input, idempotencyKey: $key) { ...payload } }";
    pub const RECORD_DEAL_WON: &str = "mutation($lead: ID!, $deal: ID!, $key: String) {
        recordDealWon(lead: $lead, deal: $deal, idempotencyKey: $key) { ...payload } }";
    pub const UPDATE_DETAILS: &str =
        "mutation($lead: ID!, $input: LeadDetailsInput!, $key: String) {
        updateLeadDetails(lead: $lead, input: $input, idempotencyKey: $key) { ...payload } }";
    pub const JUMP: &str = "mutation($lead: ID!, $stage: String!, $reason: String!, $key: String) {
        jumpToStage(lead: $lead, stage: $stage, reason: $reason, idempotencyKey: $key) { ...payload } }";
    pub const CONVERT: &str = "mutation($lead: ID!, $input: ConvertInput!, $key: String) {
        convertLead(lead: $lead, input: $input, idempotencyKey: $key) { ...payload } }";
    pub const REOPEN: &str = "mutation($lead: ID!, $comment: String, $key: String) {
        reopenLead(lead: $lead, comment: $comment, idempotencyKey: $key) { ...payload } }";
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Money {
    pub amount: String,
    pub currency: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Named {
    pub name: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Task {
    pub id: String,
    pub kind: String,
    pub assignee: Option<Named>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Deal {
    pub id: String,
    pub kind: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disqualification {
    pub reason: String,
    pub reason_name: String,
    pub comment: Option<String>,
}

/// The lead card (`LeadCard`), as far as the tests look.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    pub id: String,
    pub stage: String,
    pub stage_name: Option<String>,
    pub maturity: String,
    pub title: String,
    pub budget: Option<Money>,
    pub responsible: Option<Named>,
    pub created_by: Named,
    pub contact_id: Option<String>,
    pub deal: Option<Deal>,
    pub disqualification: Option<Disqualification>,
    pub open_tasks: Vec<Task>,
    pub allowed_commands: Vec<String>,
}

impl Card {
    /// The open task of `kind` (`Handoff`, `HandoffDetails`, `Distribution`).
    pub fn task(&self, kind: &str) -> &Task {
        self.open_tasks
            .iter()
            .find(|t| t.kind == kind)
            .unwrap_or_else(|| panic!("no open {kind} task on {:#?}", self.open_tasks))
    }

    pub fn task_kinds(&self) -> Vec<&str> {
        self.open_tasks.iter().map(|t| t.kind.as_str()).collect()
    }

    pub fn allows(&self, command: &str) -> bool {
        self.allowed_commands.iter().any(|c| c == command)
    }

    pub fn responsible_name(&self) -> Option<&str> {
        self.responsible.as_ref().map(|r| r.name.as_str())
    }
}

/// What a mutation answered (`LeadPayload`).
#[derive(Clone, Debug, Deserialize)]
pub struct Payload {
    pub position: Option<String>,
    pub replayed: bool,
    pub lead: Card,
}

impl Payload {
    /// The position to pass as `consistency`; a mutation that changed something has one.
    pub fn at(&self) -> Option<&str> {
        Some(
            self.position
                .as_deref()
                .expect("the mutation returned no position"),
        )
    }

    pub fn id(&self) -> &str {
        &self.lead.id
    }
}

/// A refused request: the first error of the answer.
#[derive(Clone, Debug)]
pub struct ApiFailure {
    pub code: String,
    pub rule: Option<String>,
    pub message: String,
    /// Every error of the answer, as sent.
    pub errors: Vec<Value>,
}

impl ApiFailure {
    /// The failure of an answer with `errors`, if it has any.
    pub fn of(answer: &Value) -> Option<Self> {
        let errors = answer.get("errors")?.as_array()?.clone();
        let first = errors.first()?;
        let ext = first.get("extensions");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            code: text(ext.and_then(|e| e.get("code"))).unwrap_or_default(),
            rule: text(ext.and_then(|e| e.get("rule"))),
            message: text(first.get("message")).unwrap_or_default(),
            errors,
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Column {
    pub stage: String,
    pub name: String,
    pub count: i64,
    pub budget: Money,
}

/// The kanban header (`Board`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Board {
    pub total_count: i64,
    pub total_budget: Money,
    pub columns: Vec<Column>,
}

impl Board {
    pub fn column(&self, stage: &str) -> &Column {
        self.columns
            .iter()
            .find(|c| c.stage == stage)
            .unwrap_or_else(|| panic!("no column {stage} on the board"))
    }

    pub fn count(&self, stage: &str) -> i64 {
        self.column(stage).count
    }

    /// The column's budget sum, e.g. `"1500000.00"`.
    pub fn budget(&self, stage: &str) -> &str {
        &self.column(stage).budget.amount
    }

    /// `(stage, count)` of every column with a lead, in funnel order.
    pub fn occupied(&self) -> Vec<(&str, i64)> {
        self.columns
            .iter()
            .filter(|c| c.count != 0)
            .map(|c| (c.stage.as_str(), c.count))
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub id: String,
    pub title: String,
    pub stage: Option<String>,
    pub maturity: String,
    pub budget: Option<Money>,
    pub responsible: Option<Named>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub end_cursor: Option<String>,
}

/// A page of the registry table (`leads`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadPage {
    pub total_count: i64,
    pub page_info: PageInfo,
    pub nodes: Vec<Row>,
}

impl LeadPage {
    pub fn titles(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.title.as_str()).collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub position: String,
    pub event_type: String,
    pub actor: Named,
    pub summary: String,
}

/// The history feed of a lead (`leadHistory`), newest first.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub total_count: i64,
    pub page_info: PageInfo,
    pub nodes: Vec<Entry>,
}

impl History {
    pub fn event_types(&self) -> Vec<&str> {
        self.nodes.iter().map(|e| e.event_type.as_str()).collect()
    }

    pub fn newest(&self) -> &Entry {
        self.nodes.first().expect("an empty history")
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReportRow {
    pub key: Option<String>,
    pub label: String,
    pub count: i64,
    pub budget: Money,
}

/// `(label, count)` of every row, in the report's order.
pub fn counts(rows: &[ReportRow]) -> Vec<(&str, i64)> {
    rows.iter().map(|r| (r.label.as_str(), r.count)).collect()
}

fn parse<T: DeserializeOwned>(answer: &Value, field: &str) -> T {
    if let Some(failure) = ApiFailure::of(answer) {
        panic!("{field} failed: {failure:#?}");
    }
    let data = answer
        .pointer(&format!("/data/{field}"))
        .unwrap_or_else(|| panic!("no data.{field} in {answer:#}"));
    serde_json::from_value(data.clone())
        .unwrap_or_else(|e| panic!("data.{field} does not parse ({e}): {data:#}"))
}

impl TestApp {
    /// Runs one of [`ops`] (or any mutation whose single root field selects `...payload`).
    pub async fn command(
        &self,
        token: &str,
        mutation: &str,
        variables: Value,
    ) -> Result<Payload, ApiFailure> {
        let document = format!("{mutation}\n{PAYLOAD_FIELDS}\n{CARD_FIELDS}");
        let answer = self.graphql(Some(token), &document, variables).await;
        if let Some(failure) = ApiFailure::of(&answer) {
            return Err(failure);
        }
        let data = answer
            .get("data")
            .and_then(Value::as_object)
            .filter(|d| d.len() == 1)
            .and_then(|d| d.values().next())
            .unwrap_or_else(|| panic!("a mutation answers one root field: {answer:#}"));
        Ok(serde_json::from_value(data.clone())
            .unwrap_or_else(|e| panic!("the payload does not parse ({e}): {data:#}")))
    }

    /// Like [`TestApp::command`], for steps that must succeed.
    pub async fn must(&self, token: &str, mutation: &str, variables: Value) -> Payload {
        self.command(token, mutation, variables)
            .await
            .unwrap_or_else(|f| panic!("the command was refused: {f:#?}"))
    }

    /// Registers a lead from a `RegisterLeadInput`.
    pub async fn register_lead(&self, token: &str, input: Value) -> Payload {
        self.must(token, ops::REGISTER, json!({ "input": input }))
            .await
    }

    /// The lead card, or `None` when the read model has no such lead.
    pub async fn lead(&self, token: &str, id: &str, at: Option<&str>) -> Option<Card> {
        let query = format!(
            "query($id: ID!, $at: Position) {{ lead(id: $id, consistency: $at) {{ ...card }} }}\n{CARD_FIELDS}"
        );
        let answer = self
            .graphql(Some(token), &query, json!({ "id": id, "at": at }))
            .await;
        parse(&answer, "lead")
    }

    /// The default funnel's board.
    pub async fn board(&self, token: &str, at: Option<&str>) -> Board {
        self.board_of(token, json!({ "at": at })).await
    }

    /// A board with any of `board`'s arguments (`funnel`, `hideClosed`) beside `at`.
    pub async fn board_of(&self, token: &str, variables: Value) -> Board {
        let query = "query($funnel: String, $hideClosed: Boolean! = false, $at: Position) {
            board(funnel: $funnel, hideClosed: $hideClosed, consistency: $at) {
              totalCount totalBudget { amount currency }
              columns { stage name count budget { amount currency } } } }";
        parse(&self.graphql(Some(token), query, variables).await, "board")
    }

    /// A page of the registry table; `variables` may hold `filter`, `orderBy`, `first`,
    /// `after` and `at`.
    pub async fn leads(&self, token: &str, variables: Value) -> LeadPage {
        let query = "query($filter: LeadFilterInput, $orderBy: [LeadOrderBy!]! = [], $first: Int,
                          $after: String, $at: Position) {
            leads(filter: $filter, orderBy: $orderBy, first: $first, after: $after, consistency: $at) {
              totalCount
              pageInfo { hasNextPage hasPreviousPage endCursor }
              nodes { id title stage maturity budget { amount currency } responsible { name } } } }";
        parse(&self.graphql(Some(token), query, variables).await, "leads")
    }

    /// A lead's history feed, newest first (the first 50 entries).
    pub async fn history(&self, token: &str, lead: &str, at: Option<&str>) -> History {
        self.history_page(token, lead, 50, None, at).await
    }

    /// `first` entries of a lead's history feed after cursor `after`, newest first.
    pub async fn history_page(
        &self,
        token: &str,
        lead: &str,
        first: i32,
        after: Option<&str>,
        at: Option<&str>,
    ) -> History {
        let query = "query($lead: ID!, $first: Int, $after: String, $at: Position) {
            leadHistory(lead: $lead, first: $first, after: $after, consistency: $at) {
              totalCount
              pageInfo { hasNextPage hasPreviousPage endCursor }
              nodes { position eventType actor { name } summary } } }";
        let variables = json!({ "lead": lead, "first": first, "after": after, "at": at });
        parse(
            &self.graphql(Some(token), query, variables).await,
            "leadHistory",
        )
    }

    /// A report (`BY_STAGE`, `BY_MANAGER`, `BY_SOURCE`, `DISQUALIFICATION_REASONS`) over every
    /// funnel, or over `funnel`.
    pub async fn report(
        &self,
        token: &str,
        kind: &str,
        funnel: Option<&str>,
        at: Option<&str>,
    ) -> Vec<ReportRow> {
        let query = "query($kind: ReportKind!, $filter: ReportFilterInput, $at: Position) {
            report(kind: $kind, filter: $filter, consistency: $at) {
              key label count budget { amount currency } } }";
        let filter = funnel.map(|f| json!({ "funnel": f }));
        let answer = self
            .graphql(
                Some(token),
                query,
                json!({ "kind": kind, "filter": filter, "at": at }),
            )
            .await;
        parse(&answer, "report")
    }
}
