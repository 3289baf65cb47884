//! How a lead arrives: the intake (web form, call, missed call, chat, e-mail, import, manual
//! entry), who registers it, whether it comes with a responsible, and the card it carries.
//! Inbound leads from integrations and imports arrive without a responsible and unsorted;
//! calls and manual entries come from a manager (or a supervisor hands them to one).
//!
//! It builds values only; registering them is the script's job.

use chrono::{DateTime, Utc};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use leadflow_domain::commands::ResponsibleChoice;
use leadflow_domain::details::{
    CallDirection, CallInfo, CallResult, InquiryType, LeadDetails, Quality,
};
use leadflow_domain::values::{Currency, Money, Text};
use leadflow_domain::{Actor, ChannelCode, SourceCode};

use crate::cast::{integration, Cast, Team};
use crate::people::{self, Company, Person};
use crate::texts::{self, Offer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intake {
    WebForm,
    MissedCall,
    Call,
    ColdCall,
    Chat,
    Email,
    Import,
    Manual,
}

impl Intake {
    /// Inbound leads nobody has taken yet: they go to Distribution on qualification.
    pub fn is_unassigned(self) -> bool {
        matches!(
            self,
            Self::WebForm | Self::MissedCall | Self::Chat | Self::Email | Self::Import
        )
    }

    fn draw(rng: &mut ChaCha8Rng, partners: bool) -> Self {
        use Intake::*;
        let weights: &[(Intake, u32)] = if partners {
            &[
                (Email, 20),
                (WebForm, 10),
                (Import, 10),
                (Call, 15),
                (Manual, 45),
            ]
        } else {
            &[
                (WebForm, 22),
                (MissedCall, 8),
                (Chat, 8),
                (Email, 6),
                (Import, 8),
                (Call, 18),
                (ColdCall, 8),
                (Manual, 22),
            ]
        };
        weights.choose_weighted(rng, |w| w.1).expect("weights").0
    }
}

/// A new lead before registration, and what the story keeps of its customer for later steps.
pub struct Card {
    pub intake: Intake,
    pub registrar: Actor,
    pub responsible: ResponsibleChoice,
    pub details: LeadDetails,
    pub offer: &'static Offer,
    pub person: Person,
    pub company: Option<Company>,
    /// The landline code of the customer's region, if its numbers parse.
    pub area_code: Option<&'static str>,
}

/// Parses demo text, which is fixed data within every bound (the tests run all of it).
pub fn text<const N: usize>(field: &'static str, raw: &str) -> Text<N> {
    Text::parse(field, raw).expect("demo texts are valid")
}

/// An amount in roubles' minor units (kopecks).
pub fn rub(minor: i64) -> Money {
    Money::from_minor(minor, Currency::rub()).expect("demo budgets fit")
}

fn code<T>(parse: fn(&str) -> Result<T, leadflow_domain::ValueError>, raw: &str) -> T {
    parse(raw).expect("catalog codes checked by Cast::from_catalog")
}

/// Draws the intake and card of lead `index` arriving at `at`.
pub fn draw(
    rng: &mut ChaCha8Rng,
    cast: &Cast,
    team: &Team,
    seed: u64,
    index: u64,
    at: DateTime<Utc>,
) -> Card {
    let partners = team.funnel.as_str() == "partners";
    let intake = Intake::draw(rng, partners);
    let manager = *team.managers.choose(rng).expect("a team has managers");
    let (registrar, responsible) = match intake {
        Intake::WebForm => (integration("web-form"), ResponsibleChoice::Unassigned),
        Intake::MissedCall => (integration("telephony"), ResponsibleChoice::Unassigned),
        Intake::Chat => (integration("chat"), ResponsibleChoice::Unassigned),
        Intake::Email => (integration("email"), ResponsibleChoice::Unassigned),
        Intake::Import => (cast.admin, ResponsibleChoice::Unassigned),
        Intake::Call | Intake::ColdCall => (manager, ResponsibleChoice::Creator),
        // Key accounts: the supervisor registers the request and hands it to a manager.
        Intake::Manual if rng.random_bool(0.35) => {
            (team.supervisor, ResponsibleChoice::User(manager.user))
        }
        Intake::Manual => (manager, ResponsibleChoice::Creator),
    };
    let offer = texts::OFFERS.choose(rng).expect("offers");
    let person = people::person(rng);
    let (region, area_code) = people::region(rng);
    let b2b = matches!(intake, Intake::Import | Intake::Manual | Intake::ColdCall)
        || partners
        || rng.random_bool(0.6);
    let company = b2b.then(|| people::company(rng, &person));
    let business_region = if rng.random_bool(0.8) {
        region
    } else {
        people::region(rng).0
    };
    let host = company.as_ref().map(|c| c.host.as_str());

    let phoned = matches!(intake, Intake::Call | Intake::ColdCall | Intake::MissedCall);
    let phones = if phoned || rng.random_bool(0.7) {
        let landline = rng.random_bool(0.35);
        vec![people::phone(rng, area_code, landline)]
    } else {
        Vec::new()
    };
    let emails = if intake == Intake::Email || phones.is_empty() || rng.random_bool(0.5) {
        vec![people::email(rng, &person, host)]
    } else {
        Vec::new()
    };
    let phrase = texts::offer_title(rng, offer);
    let partner = texts::pick(rng, texts::PARTNERS);
    let title = match intake {
        _ if partners => format!("{partner}: {phrase}"),
        Intake::WebForm => format!("Заявка с сайта: {phrase}"),
        Intake::MissedCall => format!("Пропущенный звонок {}", phones[0]),
        Intake::Call => format!("Входящий звонок: {phrase}"),
        Intake::ColdCall => match &company {
            Some(c) => format!("Холодный звонок: {}", c.name),
            None => format!("Холодный звонок: {phrase}"),
        },
        Intake::Chat => format!("Чат на сайте: {phrase}"),
        Intake::Email => format!("Письмо: {phrase}"),
        Intake::Import | Intake::Manual => match &company {
            Some(c) => format!("{phrase} — {}", c.name),
            None => phrase.clone(),
        },
    };
    let (source, channel, inquiry) = match intake {
        _ if partners && intake != Intake::WebForm => (
            if rng.random_bool(0.8) {
                "partner"
            } else {
                "referral"
            },
            match intake {
                Intake::Email => "email",
                Intake::Import => "import",
                Intake::Call => "telephony",
                _ => "manual",
            },
            match intake {
                Intake::Email => InquiryType::Email,
                Intake::Import => InquiryType::Import,
                Intake::Call => InquiryType::Call,
                _ => InquiryType::ManualRequest,
            },
        ),
        Intake::WebForm => (
            *["website", "advertising"].choose(rng).expect("sources"),
            "web-form",
            InquiryType::WebRequest,
        ),
        Intake::MissedCall => ("advertising", "telephony", InquiryType::MissedCall),
        Intake::Call => (
            *["advertising", "website", "referral"]
                .choose(rng)
                .expect("sources"),
            "telephony",
            InquiryType::Call,
        ),
        Intake::ColdCall => ("cold-call", "telephony", InquiryType::Call),
        Intake::Chat => ("website", "chat", InquiryType::Chat),
        Intake::Email => ("website", "email", InquiryType::Email),
        Intake::Import => ("exhibition", "import", InquiryType::Import),
        Intake::Manual => (
            *["exhibition", "referral", "referral", "internal"]
                .choose(rng)
                .expect("sources"),
            "manual",
            InquiryType::ManualRequest,
        ),
    };
    let call = phoned.then(|| CallInfo {
        direction: if intake == Intake::ColdCall {
            CallDirection::Out
        } else {
            CallDirection::In
        },
        duration_secs: if intake == Intake::MissedCall {
            0
        } else {
            rng.random_range(40..900)
        },
        result: if intake == Intake::MissedCall {
            CallResult::NoAnswer
        } else {
            CallResult::Answered
        },
        recording: (intake != Intake::MissedCall).then(|| {
            text(
                "recording",
                &format!(
                    "rec/{}/{:06}.mp3",
                    at.format("%Y-%m-%d"),
                    rng.random_range(0..1_000_000)
                ),
            )
        }),
    });
    let external_ref = match intake {
        Intake::WebForm => Some(format!("form-{seed}-{index}")),
        Intake::Import => Some(format!("import-{}-{seed}-{index}", at.format("%Y%m%d"))),
        Intake::Email => Some(format!("msg-{seed}-{index}")),
        _ => None,
    };
    let details = LeadDetails {
        title: text("title", &title),
        budget: rng
            .random_bool(0.35)
            .then(|| rub(texts::budget_minor(rng, offer))),
        // A missed call is a number and nothing else until someone calls back.
        contact_name: (intake != Intake::MissedCall).then(|| text("contact", &person.full_name)),
        phones,
        emails,
        account_name: company.as_ref().map(|c| text("account", &c.name)),
        industry: company.as_ref().map(|c| text("industry", c.industry)),
        business_region: company
            .as_ref()
            .map(|_| text("business region", business_region)),
        website: company
            .as_ref()
            .filter(|_| rng.random_bool(0.6))
            .map(|c| text("website", &format!("https://{}", c.host))),
        region: Some(text("region", region)),
        source: Some(code(SourceCode::parse, source)),
        channel: Some(code(ChannelCode::parse, channel)),
        inquiry_type: Some(inquiry),
        call,
        department: Some(team.department.clone()),
        office: Some(text("office", texts::pick(rng, team.offices))),
        // Inbound inquiries wait to be sorted; a manager's own entries are target leads.
        quality: if intake.is_unassigned() {
            Quality::Unsorted
        } else if rng.random_bool(0.1) {
            Quality::Repeat
        } else {
            Quality::Target
        },
        // Outgoing calls are not advertising inquiries (SPEC 3.5).
        advertising: intake != Intake::ColdCall,
        comment: rng
            .random_bool(0.7)
            .then(|| text::<4000>("comment", texts::pick(rng, texts::INQUIRY_COMMENTS))),
        need_type: rng
            .random_bool(0.3)
            .then(|| text("need type", offer.need_type)),
        external_ref: external_ref.map(|r| text::<100>("external reference", &r)),
        object: (intake == Intake::WebForm)
            .then(|| text("object", texts::pick(rng, texts::WEB_PAGES))),
        taken_by: None,
        taken_at: None,
    };
    Card {
        intake,
        registrar,
        responsible,
        details,
        offer,
        person,
        company,
        area_code,
    }
}
