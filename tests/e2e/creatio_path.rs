//! The Creatio lead path by GraphQL, step by step: register unassigned, qualify (to
//! Distribution), assign, start the handoff, complete the handoff task with "transfer to
//! sale", submit the handoff details (to AwaitingSale with a deal), record the deal won. After
//! each step, read at the mutation's position, the board's counts and sums, the card, the
//! history feed and, at the key steps, the registry table and the reports show the change.
//! A second lead is disqualified with a reason for the reasons report.

use serde_json::json;

use leadflow_testkit::api::{counts, ops};
use leadflow_testkit::{spawn_app_on, Backend};

use crate::{manual_lead, web_form_lead};

async fn a_web_lead_walks_the_whole_creatio_path_and_every_view_follows_it(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let olga = app.token("olga.supervisor");
    let ivan = app.token("ivan.manager");

    // 1. The web form's lead arrives without a responsible, in Qualification.
    let registered = app
        .register_lead(&olga, web_form_lead("Warehouse racks", "1500000"))
        .await;
    let lead = registered.id().to_owned();
    let at = registered.at();
    assert!(!registered.replayed);
    let board = app.board(&olga, at).await;
    assert_eq!(board.occupied(), [("QUALIFICATION", 1)]);
    assert_eq!(board.budget("QUALIFICATION"), "1500000.00");
    assert_eq!(board.column("QUALIFICATION").name, "Qualification");
    assert_eq!(
        (board.total_count, board.total_budget.amount.as_str()),
        (1, "1500000.00")
    );
    let card = app.lead(&olga, &lead, at).await.expect("the card");
    assert_eq!(
        (card.stage.as_str(), card.maturity.as_str()),
        ("QUALIFICATION", "UNKNOWN")
    );
    assert_eq!(card.responsible_name(), None);
    assert_eq!(card.created_by.name, "olga.supervisor");
    assert!(card.open_tasks.is_empty());
    assert!(card.allows("QUALIFY_LEAD") && card.allows("DISQUALIFY_LEAD"));
    assert!(!card.allows("DISTRIBUTE") && !card.allows("RECORD_DEAL_WON"));
    let history = app.history(&olga, &lead, at).await;
    assert_eq!(history.event_types(), ["LeadRegistered"]);
    assert_eq!(history.newest().actor.name, "olga.supervisor");
    assert_eq!(
        history.newest().summary,
        "Registered “Warehouse racks” in funnel Sales, responsible nobody"
    );
    let by_manager = app.report(&olga, "BY_MANAGER", None, at).await;
    assert_eq!(counts(&by_manager), [("none", 1)]);
    assert_eq!(by_manager[0].key, None);

    // A manager's own lead and a lead that will be disqualified share the registry.
    let chairs = app.register_lead(&ivan, manual_lead("Office chairs")).await;
    assert_eq!(chairs.lead.responsible_name(), Some("ivan.manager"));
    let spam = app
        .register_lead(
            &olga,
            json!({ "unassigned": true, "title": "Cheap SEO offer", "source": "exhibition" }),
        )
        .await;

    // 2. Qualified with no responsible: to Distribution, with the supervisors' task.
    let qualified = app.must(&olga, ops::QUALIFY, json!({ "lead": lead })).await;
    let at = qualified.at();
    let card = app.lead(&olga, &lead, at).await.expect("the card");
    assert_eq!(card.stage, "DISTRIBUTION");
    assert_eq!(card.stage_name.as_deref(), Some("Distribution"));
    assert!(card.contact_id.is_some(), "qualifying created the contact");
    assert_eq!(card.task_kinds(), ["Distribution"]);
    assert!(card.task("Distribution").assignee.is_none());
    assert!(card.allows("DISTRIBUTE") && card.allows("ASSIGN_RESPONSIBLE"));
    assert!(!card.allows("QUALIFY_LEAD"));
    let board = app.board(&olga, at).await;
    assert_eq!(
        board.occupied(),
        [("QUALIFICATION", 2), ("DISTRIBUTION", 1)]
    );
    assert_eq!(board.budget("DISTRIBUTION"), "1500000.00");
    assert_eq!(board.budget("QUALIFICATION"), "0.00");
    let history = app.history(&olga, &lead, at).await;
    assert_eq!(
        history.event_types(),
        [
            "SystemTaskOpened",
            "LeadStageChanged",
            "LeadQualified",
            "LeadRegistered"
        ],
        "newest first"
    );
    assert_eq!(
        history.nodes[1].summary,
        "Stage Qualification → Distribution (qualified)"
    );
    assert_eq!(
        history.nodes[2].summary,
        "Qualified: contact Pyotr Sidorov created, account Stroymash created"
    );
    assert!(history
        .newest()
        .summary
        .starts_with("Task for the supervisors, due "));

    // The second lead is disqualified with a reason.
    let junk = app
        .must(
            &olga,
            ops::DISQUALIFY,
            json!({ "lead": spam.id(), "reason": "no-budget", "comment": "Budget frozen until next year" }),
        )
        .await;
    let card = app
        .lead(&olga, spam.id(), junk.at())
        .await
        .expect("the card");
    assert_eq!(card.stage, "DISQUALIFIED");
    let reason = card.disqualification.expect("a disqualification");
    assert_eq!(
        (reason.reason.as_str(), reason.reason_name.as_str()),
        ("no-budget", "No budget")
    );
    assert_eq!(
        reason.comment.as_deref(),
        Some("Budget frozen until next year")
    );
    assert_eq!(card.allowed_commands, ["REOPEN_LEAD"]);
    let reasons = app
        .report(&olga, "DISQUALIFICATION_REASONS", None, junk.at())
        .await;
    assert_eq!(counts(&reasons), [("No budget", 1)]);
    assert_eq!(reasons[0].key.as_deref(), Some("no-budget"));
    let history = app.history(&olga, spam.id(), junk.at()).await;
    assert_eq!(
        history.nodes[1].summary,
        "Disqualified: No budget: Budget frozen until next year"
    );

    // 3. Assigned to Ivan: still in Distribution, now his.
    let assigned = app
        .must(
            &olga,
            ops::ASSIGN,
            json!({ "lead": lead, "to": app.user_id("ivan.manager") }),
        )
        .await;
    let at = assigned.at();
    let card = app.lead(&olga, &lead, at).await.expect("the card");
    assert_eq!(
        (card.stage.as_str(), card.responsible_name()),
        ("DISTRIBUTION", Some("ivan.manager"))
    );
    let history = app.history(&olga, &lead, at).await;
    assert_eq!(
        history.newest().summary,
        "Responsible nobody → ivan.manager"
    );
    assert_eq!(history.newest().actor.name, "olga.supervisor");
    let by_manager = app.report(&olga, "BY_MANAGER", None, at).await;
    assert_eq!(counts(&by_manager), [("ivan.manager", 2), ("none", 1)]);
    assert_eq!(by_manager[0].budget.amount, "1500000.00");
    assert_eq!(
        by_manager[0].key.as_deref(),
        Some(app.user_id("ivan.manager").as_str())
    );

    // 4. Ivan starts the handoff: to Handoff, with his handoff task.
    let distributed = app
        .must(
            &ivan,
            ops::DISTRIBUTE,
            json!({ "lead": lead, "input": { "decision": "START_HANDOFF" } }),
        )
        .await;
    let at = distributed.at();
    let card = app.lead(&ivan, &lead, at).await.expect("the card");
    assert_eq!(card.stage, "HANDOFF");
    assert_eq!(card.task_kinds(), ["Handoff"]);
    assert_eq!(
        card.task("Handoff")
            .assignee
            .as_ref()
            .map(|a| a.name.as_str()),
        Some("ivan.manager")
    );
    assert!(card.allows("COMPLETE_HANDOFF_TASK") && !card.allows("DISTRIBUTE"));
    // The whole funnel is the supervisor's board; ivan's holds only his leads (SPEC 3.7): the
    // chairs he created and the racks he is now responsible for, not the disqualified spam.
    let board = app.board(&olga, at).await;
    assert_eq!(
        board.occupied(),
        [("QUALIFICATION", 1), ("HANDOFF", 1), ("DISQUALIFIED", 1)]
    );
    assert_eq!(
        app.board(&ivan, at).await.occupied(),
        [("QUALIFICATION", 1), ("HANDOFF", 1)]
    );
    assert_eq!(board.budget("HANDOFF"), "1500000.00");
    let history = app.history(&ivan, &lead, at).await;
    assert_eq!(
        &history.event_types()[..4],
        [
            "SystemTaskOpened",
            "LeadStageChanged",
            "LeadDistributed",
            "SystemTaskCompleted"
        ]
    );
    assert_eq!(history.nodes[2].summary, "Distributed: start handoff");
    assert_eq!(history.nodes[2].actor.name, "ivan.manager");

    // The table at this point: filters, sort, and cursor pages.
    let open_by_budget = json!({
        "filter": { "stage": { "in": ["QUALIFICATION", "HANDOFF"] } },
        "orderBy": [{ "field": "BUDGET", "direction": "DESC" }],
        "first": 1,
        "at": at,
    });
    let page = app.leads(&ivan, open_by_budget.clone()).await;
    assert_eq!(
        (page.total_count, page.titles()),
        (2, vec!["Warehouse racks"])
    );
    assert!(page.page_info.has_next_page && !page.page_info.has_previous_page);
    let mut next = open_by_budget;
    next["after"] = json!(page.page_info.end_cursor);
    let page = app.leads(&ivan, next).await;
    assert_eq!(page.titles(), ["Office chairs"]);
    assert!(!page.page_info.has_next_page && page.page_info.has_previous_page);
    let page = app
        .leads(
            &ivan,
            json!({ "filter": { "stage": { "eq": "HANDOFF" } }, "at": at }),
        )
        .await;
    assert_eq!(page.titles(), ["Warehouse racks"]);
    assert_eq!(page.nodes[0].stage.as_deref(), Some("HANDOFF"));
    assert_eq!(
        page.nodes[0].maturity, "UNKNOWN",
        "rows use the card's enums"
    );
    let page = app
        .leads(
            &ivan,
            json!({
                "filter": { "responsible": { "eq": app.user_id("ivan.manager") } },
                "orderBy": [{ "field": "TITLE" }],
                "at": at,
            }),
        )
        .await;
    assert_eq!(page.titles(), ["Office chairs", "Warehouse racks"]);
    let page = app
        .leads(
            &ivan,
            json!({ "filter": { "text": "SIDOROV", "hideClosed": true }, "at": at }),
        )
        .await;
    assert_eq!(
        page.titles(),
        ["Warehouse racks"],
        "text search is case-insensitive"
    );
    let page = app
        .leads(
            &ivan,
            json!({ "filter": { "budget": { "gte": "1000000" } }, "at": at }),
        )
        .await;
    assert_eq!(page.titles(), ["Warehouse racks"]);
    let by_title = json!({ "orderBy": [{ "field": "TITLE", "direction": "ASC" }], "at": at });
    let page = app.leads(&olga, by_title.clone()).await;
    assert_eq!(
        page.titles(),
        ["Cheap SEO offer", "Office chairs", "Warehouse racks"]
    );
    // ivan's registry is his scope (SPEC 3.7): not olga's unassigned spam.
    let page = app.leads(&ivan, by_title).await;
    assert_eq!(page.titles(), ["Office chairs", "Warehouse racks"]);

    // 5. The handoff task's result: transfer to sale, which asks for the handoff details.
    let handoff_task = card.task("Handoff").id.clone();
    let completed = app
        .must(
            &ivan,
            ops::COMPLETE_HANDOFF_TASK,
            json!({ "lead": lead, "input": {
                "taskId": handoff_task, "result": "TRANSFER_TO_SALE",
                "comment": "Needs racks for two warehouses, budget confirmed",
            }}),
        )
        .await;
    let at = completed.at();
    let card = app.lead(&ivan, &lead, at).await.expect("the card");
    assert_eq!(
        (card.stage.as_str(), card.maturity.as_str()),
        ("HANDOFF", "UNKNOWN")
    );
    assert_eq!(card.task_kinds(), ["HandoffDetails"]);
    let history = app.history(&ivan, &lead, at).await;
    assert_eq!(
        &history.event_types()[..2],
        ["SystemTaskOpened", "SystemTaskCompleted"]
    );
    assert_eq!(
        history.nodes[1].summary,
        "Handoff task result: transfer to sale: Needs racks for two warehouses, budget confirmed"
    );
    assert_eq!(app.board(&ivan, at).await.count("HANDOFF"), 1);

    // 6. The handoff details: to AwaitingSale, ready for sale, with a sale deal and the new budget.
    let details_task = card.task("HandoffDetails").id.clone();
    let submitted = app
        .must(
            &ivan,
            ops::SUBMIT_HANDOFF_DETAILS,
            json!({ "lead": lead, "input": {
                "taskId": details_task,
                "budget": { "amount": "1750000.50" },
                "salesDirection": "Warehouse equipment",
                "meetingAt": "2030-05-14T10:00:00Z",
                "decisionAt": "2030-06-01T00:00:00Z",
            }}),
        )
        .await;
    let at = submitted.at();
    let card = app.lead(&ivan, &lead, at).await.expect("the card");
    assert_eq!(
        (card.stage.as_str(), card.maturity.as_str()),
        ("AWAITING_SALE", "READY_FOR_SALE")
    );
    assert_eq!(
        card.budget.as_ref().map(|b| b.amount.as_str()),
        Some("1750000.50")
    );
    assert!(card.open_tasks.is_empty());
    let deal = card.deal.clone().expect("a deal");
    assert_eq!(deal.kind, "SALE");
    assert!(card.allows("RECORD_DEAL_WON") && card.allows("RECORD_DEAL_LOST"));
    assert!(!card.allows("COMPLETE_HANDOFF_TASK"));
    let board = app.board(&olga, at).await;
    assert_eq!(
        board.occupied(),
        [
            ("QUALIFICATION", 1),
            ("AWAITING_SALE", 1),
            ("DISQUALIFIED", 1)
        ]
    );
    assert_eq!(board.budget("AWAITING_SALE"), "1750000.50");
    assert_eq!(board.budget("HANDOFF"), "0.00");
    assert_eq!(board.total_budget.amount, "1750000.50");
    let history = app.history(&ivan, &lead, at).await;
    assert_eq!(
        &history.event_types()[..5],
        [
            "DealOpened",
            "LeadStageChanged",
            "MaturityChanged",
            "HandoffDetailsRecorded",
            "SystemTaskCompleted"
        ]
    );
    assert_eq!(
        history.newest().summary,
        "Deal opened (Sale), budget 1 750 000.50 RUB"
    );
    assert_eq!(
        history.nodes[3].summary,
        "Handoff details: budget 1 750 000.50 RUB, sales direction Warehouse equipment"
    );

    // 7. The deal is won: NeedSatisfied, satisfied, closed.
    let won = app
        .must(
            &ivan,
            ops::RECORD_DEAL_WON,
            json!({ "lead": lead, "deal": deal.id }),
        )
        .await;
    let at = won.at();
    let card = app.lead(&ivan, &lead, at).await.expect("the card");
    assert_eq!(
        (card.stage.as_str(), card.maturity.as_str()),
        ("NEED_SATISFIED", "SATISFIED")
    );
    assert_eq!(card.stage_name.as_deref(), Some("Won"));
    assert_eq!(card.allowed_commands, ["REOPEN_LEAD"]);
    let board = app.board(&olga, at).await;
    assert_eq!(
        board.occupied(),
        [
            ("QUALIFICATION", 1),
            ("DISQUALIFIED", 1),
            ("NEED_SATISFIED", 1)
        ]
    );
    assert_eq!(board.budget("NEED_SATISFIED"), "1750000.50");
    let open = app
        .board_of(&ivan, json!({ "hideClosed": true, "at": at }))
        .await;
    assert_eq!(open.occupied(), [("QUALIFICATION", 1)]);
    assert_eq!(open.total_count, 1, "the header counts the shown columns");
    let history = app.history(&ivan, &lead, at).await;
    assert_eq!(
        &history.event_types()[..3],
        ["LeadStageChanged", "MaturityChanged", "DealWon"]
    );
    assert_eq!(
        history.newest().summary,
        "Stage AwaitingSale → NeedSatisfied (dealWon)"
    );
    assert_eq!(history.total_count, history.nodes.len() as i64);
    let page = app
        .leads(&ivan, json!({ "filter": { "hideClosed": true }, "at": at }))
        .await;
    assert_eq!(page.titles(), ["Office chairs"]);

    // The whole feed, paged five entries at a time, is the same feed.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .history_page(&ivan, &lead, 5, after.as_deref(), at)
            .await;
        assert_eq!(page.total_count, history.total_count);
        assert!(page.nodes.len() <= 5);
        paged.extend(page.nodes.into_iter().map(|e| e.position));
        if !page.page_info.has_next_page {
            break;
        }
        after = page.page_info.end_cursor;
    }
    let whole: Vec<String> = history.nodes.iter().map(|e| e.position.clone()).collect();
    assert_eq!(paged, whole);
    let numbers: Vec<u64> = whole
        .iter()
        .map(|p| p.parse().expect("a position"))
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] > w[1]),
        "newest first: {numbers:?}"
    );

    // The reports at the end of the path: the supervisor's cover every lead, ivan's his own
    // (SPEC 3.7), without olga's disqualified spam.
    let mine = app.report(&ivan, "BY_STAGE", Some("default"), at).await;
    let mut mine = counts(&mine);
    mine.sort();
    assert_eq!(mine, [("Qualification", 1), ("Won", 1)]);
    let by_stage = app.report(&olga, "BY_STAGE", Some("default"), at).await;
    let mut stages = counts(&by_stage);
    stages.sort();
    assert_eq!(stages, [("Junk", 1), ("Qualification", 1), ("Won", 1)]);
    let won_row = by_stage
        .iter()
        .find(|r| r.label == "Won")
        .expect("a Won row");
    assert_eq!(
        (won_row.key.as_deref(), won_row.budget.amount.as_str()),
        (Some("NeedSatisfied"), "1750000.50")
    );
    let by_source = app.report(&olga, "BY_SOURCE", None, at).await;
    let mut sources = counts(&by_source);
    sources.sort();
    assert_eq!(
        sources,
        [("Exhibition", 1), ("Referral", 1), ("Website", 1)]
    );
    let by_manager = app.report(&olga, "BY_MANAGER", None, at).await;
    assert_eq!(counts(&by_manager), [("ivan.manager", 2), ("none", 1)]);
    let reasons = app
        .report(&olga, "DISQUALIFICATION_REASONS", None, at)
        .await;
    assert_eq!(counts(&reasons), [("No budget", 1)]);
}

on_both_backends!(a_web_lead_walks_the_whole_creatio_path_and_every_view_follows_it,);
