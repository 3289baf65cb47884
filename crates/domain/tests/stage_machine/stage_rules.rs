//! Which command runs in which stage: SPEC 3.3's "allowed in" column as a table, and the
//! rejection every other stage gives.

use super::*;

#[test]
fn awaiting_sale_accepts_only_detail_updates_reassignment_and_deal_outcomes() {
    use CommandName::*;
    for command in one_command_of_each_kind() {
        let name = command.name();
        let outcome = LeadSpec::new()
            .given(awaiting_sale())
            .by("admin")
            .when(command);
        match name {
            UpdateLeadDetails | AssignResponsible | RecordDealWon | RecordDealLost => {
                outcome.then_matches(|events| !events.is_empty());
            }
            RegisterLead => {
                outcome.then_rejects(Rejection::AlreadyRegistered { lead: lead_id() });
            }
            _ => outcome
                .then_rejects(Rejection::NotAllowedInStage {
                    command: name,
                    stage: Stage::AwaitingSale,
                })
                .saying(&format!(
                    "cannot {} a lead in stage AwaitingSale",
                    name.verb()
                )),
        }
    }
}

/// SPEC 3.3's "allowed in" column, written out.
fn spec_allows(command: CommandName, stage: Stage) -> bool {
    use CommandName::*;
    use Stage::*;
    let stages: &[Stage] = match command {
        RegisterLead => &[],
        UpdateLeadDetails | AssignResponsible => {
            &[Qualification, Distribution, Handoff, AwaitingSale]
        }
        QualifyLead => &[Qualification],
        DisqualifyLead | ConvertLead | JumpToStage => &[Qualification, Distribution, Handoff],
        Distribute => &[Distribution],
        CompleteHandoffTask | SubmitHandoffDetails | ScheduleHandoffTask => &[Handoff],
        RecordDealWon | RecordDealLost => &[AwaitingSale],
        ReopenLead => &[Disqualified, NeedAbsent, NeedSatisfied],
    };
    stages.contains(&stage)
}

#[test]
fn the_stage_rule_of_every_command_follows_the_spec_table() {
    for command in one_command_of_each_kind() {
        for stage in Stage::ALL {
            assert_eq!(
                allowed_in(command.name(), stage),
                spec_allows(command.name(), stage),
                "{} in {stage}",
                command.name()
            );
        }
    }
}

#[test]
fn every_command_outside_its_stages_is_rejected_naming_the_command_and_the_stage() {
    for (stage, history) in one_lead_per_stage() {
        assert_eq!(state_of(&history).stage, stage, "fixture for {stage}");
        for command in one_command_of_each_kind().into_iter().skip(1) {
            let name = command.name();
            if spec_allows(name, stage) {
                continue;
            }
            LeadSpec::new()
                .given(history.clone())
                .by("admin")
                .when(command)
                .then_rejects(Rejection::NotAllowedInStage {
                    command: name,
                    stage,
                })
                .saying(&format!("cannot {} a lead in stage {stage}", name.verb()));
        }
    }
}
