//! The people and companies of the demo: Russian names with their Latin transliteration (for
//! e-mail addresses and web sites), client companies, regions with their telephone codes, and
//! the phone numbers and e-mail addresses built from them.
//!
//! Everything here is drawn from the lead's own random stream, so a lead's customer is a
//! function of (seed, lead index). It deliberately knows nothing of leads or commands: the
//! card (`card.rs`) decides which of these a lead carries.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use leadflow_domain::values::{Email, Phone};

/// (male form, Latin) of first names; female names are listed separately because their
/// forms do not follow a rule.
const MALE_NAMES: &[(&str, &str)] = &[
    ("Александр", "alexander"),
    ("Алексей", "alexey"),
    ("Андрей", "andrey"),
    ("Артём", "artem"),
    ("Виктор", "viktor"),
    ("Владимир", "vladimir"),
    ("Дмитрий", "dmitry"),
    ("Евгений", "evgeny"),
    ("Игорь", "igor"),
    ("Илья", "ilya"),
    ("Константин", "konstantin"),
    ("Максим", "maxim"),
    ("Михаил", "mikhail"),
    ("Николай", "nikolay"),
    ("Олег", "oleg"),
    ("Роман", "roman"),
    ("Сергей", "sergey"),
    ("Юрий", "yury"),
];

const FEMALE_NAMES: &[(&str, &str)] = &[
    ("Анастасия", "anastasia"),
    ("Анна", "anna"),
    ("Валентина", "valentina"),
    ("Галина", "galina"),
    ("Дарья", "darya"),
    ("Екатерина", "ekaterina"),
    ("Елена", "elena"),
    ("Ирина", "irina"),
    ("Марина", "marina"),
    ("Наталья", "natalya"),
    ("Ольга", "olga"),
    ("Светлана", "svetlana"),
    ("Татьяна", "tatyana"),
    ("Юлия", "yulia"),
];

/// Patronymics as (male, female): «Иванович» / «Ивановна».
const PATRONYMICS: &[(&str, &str)] = &[
    ("Александрович", "Александровна"),
    ("Андреевич", "Андреевна"),
    ("Викторович", "Викторовна"),
    ("Владимирович", "Владимировна"),
    ("Дмитриевич", "Дмитриевна"),
    ("Иванович", "Ивановна"),
    ("Михайлович", "Михайловна"),
    ("Николаевич", "Николаевна"),
    ("Петрович", "Петровна"),
    ("Сергеевич", "Сергеевна"),
    ("Юрьевич", "Юрьевна"),
];

/// Surnames ending in -ов/-ев/-ин, whose female form adds «а» (and "a" in Latin).
const SURNAMES: &[(&str, &str)] = &[
    ("Иванов", "ivanov"),
    ("Смирнов", "smirnov"),
    ("Кузнецов", "kuznetsov"),
    ("Попов", "popov"),
    ("Васильев", "vasilyev"),
    ("Петров", "petrov"),
    ("Соколов", "sokolov"),
    ("Михайлов", "mikhailov"),
    ("Новиков", "novikov"),
    ("Фёдоров", "fedorov"),
    ("Морозов", "morozov"),
    ("Волков", "volkov"),
    ("Алексеев", "alekseev"),
    ("Лебедев", "lebedev"),
    ("Семёнов", "semenov"),
    ("Егоров", "egorov"),
    ("Павлов", "pavlov"),
    ("Козлов", "kozlov"),
    ("Степанов", "stepanov"),
    ("Никитин", "nikitin"),
    ("Орлов", "orlov"),
    ("Зайцев", "zaytsev"),
    ("Соловьёв", "solovyev"),
    ("Белов", "belov"),
    ("Гусев", "gusev"),
    ("Калинин", "kalinin"),
];

/// Regions of the lead and of the account, with a landline area code each. The regions whose
/// codes start with 8 have none: `Phone::parse` refuses every `+7 8xx` number (the
/// `phonenumber` crate, 0.3.10, strips that 8 as if it were the national trunk prefix), so
/// their customers call from mobiles until that is fixed.
const REGIONS: &[(&str, Option<&str>)] = &[
    ("Москва", Some("495")),
    ("Московская область", Some("496")),
    ("Санкт-Петербург", None),
    ("Ленинградская область", None),
    ("Новосибирская область", Some("383")),
    ("Свердловская область", Some("343")),
    ("Республика Татарстан", None),
    ("Краснодарский край", None),
    ("Нижегородская область", None),
    ("Самарская область", None),
    ("Ростовская область", None),
    ("Челябинская область", Some("351")),
    ("Пермский край", Some("342")),
    ("Воронежская область", Some("473")),
    ("Республика Башкортостан", Some("347")),
];

/// Mobile operator prefixes in use (all of them pass `Phone::parse`, see the tests).
const MOBILE_PREFIXES: &[&str] = &[
    "903", "905", "906", "909", "910", "912", "915", "916", "917", "919", "920", "921", "925",
    "926", "929", "950", "951", "952", "960", "961", "962", "963", "965", "977", "985", "999",
];

const FREE_MAIL: &[&str] = &[
    "mail.ru",
    "yandex.ru",
    "gmail.com",
    "bk.ru",
    "inbox.ru",
    "list.ru",
    "rambler.ru",
];

/// Company name stems (Cyrillic, Latin), joined in pairs: «Агро» + «снаб» = «Агроснаб».
const STEMS: &[(&str, &str)] = &[
    ("Агро", "agro"),
    ("Техно", "tekhno"),
    ("Строй", "stroy"),
    ("Пром", "prom"),
    ("Энерго", "energo"),
    ("Сиб", "sib"),
    ("Урал", "ural"),
    ("Волга", "volga"),
    ("Нева", "neva"),
    ("Балт", "balt"),
    ("Дон", "don"),
    ("Кама", "kama"),
];

const SUFFIXES: &[(&str, &str)] = &[
    ("снаб", "snab"),
    ("сервис", "servis"),
    ("ресурс", "resurs"),
    ("комплект", "komplekt"),
    ("инвест", "invest"),
    ("маш", "mash"),
    ("трейд", "trade"),
    ("холод", "kholod"),
    ("молоко", "moloko"),
    ("логистик", "logistik"),
];

const INDUSTRIES: &[&str] = &[
    "Сельское хозяйство",
    "Пищевое производство",
    "Строительство",
    "Логистика и склады",
    "Розничная торговля",
    "Машиностроение",
    "Медицина",
    "Гостиницы и рестораны",
    "Образование",
    "Энергетика",
];

/// A contact person: the full name as a Russian CRM writes it (surname, name, patronymic)
/// and a Latin handle for the e-mail address.
pub struct Person {
    /// What the lead's card shows: sometimes only the first name a web form gave.
    pub full_name: String,
    /// Surname, name and patronymic, as documents write it.
    pub formal_name: String,
    pub first_latin: &'static str,
    pub surname_latin: String,
}

pub fn person(rng: &mut ChaCha8Rng) -> Person {
    let female = rng.random_bool(0.45);
    let &(surname, surname_latin) = SURNAMES.choose(rng).expect("not empty");
    let &(male_patronymic, female_patronymic) = PATRONYMICS.choose(rng).expect("not empty");
    let names = if female { FEMALE_NAMES } else { MALE_NAMES };
    let &(first, first_latin) = names.choose(rng).expect("not empty");
    let (surname, surname_latin, patronymic) = if female {
        (
            format!("{surname}а"),
            format!("{surname_latin}a"),
            female_patronymic,
        )
    } else {
        (
            surname.to_owned(),
            surname_latin.to_owned(),
            male_patronymic,
        )
    };
    // Web forms and chats often carry only a first name; calls and meetings the full one.
    let formal_name = format!("{surname} {first} {patronymic}");
    let full_name = if rng.random_bool(0.2) {
        first.to_owned()
    } else {
        formal_name.clone()
    };
    Person {
        full_name,
        formal_name,
        first_latin,
        surname_latin,
    }
}

/// A client company: its registered name, its web site's host, and its industry.
pub struct Company {
    pub name: String,
    pub host: String,
    pub industry: &'static str,
}

pub fn company(rng: &mut ChaCha8Rng, owner: &Person) -> Company {
    let industry = *INDUSTRIES.choose(rng).expect("not empty");
    let roll = rng.random_range(0..100);
    if roll < 8 {
        // A sole trader trades under the owner's own name.
        let host = format!("ip-{}.ru", owner.surname_latin);
        let name = format!("ИП {}", owner.formal_name);
        return Company {
            name,
            host,
            industry,
        };
    }
    let &(stem, stem_latin) = STEMS.choose(rng).expect("not empty");
    let &(suffix, suffix_latin) = SUFFIXES.choose(rng).expect("not empty");
    let form = match roll {
        8..=69 => "ООО",
        70..=84 => "АО",
        85..=92 => "ГК",
        _ => "ПАО",
    };
    let number = if rng.random_bool(0.15) {
        format!("-{}", rng.random_range(1..=9))
    } else {
        String::new()
    };
    Company {
        name: format!("{form} «{stem}{suffix}{number}»"),
        host: format!("{stem_latin}{suffix_latin}{number}.ru"),
        industry,
    }
}

/// A region and its landline code, if its numbers parse.
pub fn region(rng: &mut ChaCha8Rng) -> (&'static str, Option<&'static str>) {
    *REGIONS.choose(rng).expect("not empty")
}

/// A mobile number, or when asked for (companies call from those) and the region has one, a
/// landline in the region's area code.
pub fn phone(rng: &mut ChaCha8Rng, area_code: Option<&str>, landline: bool) -> Phone {
    let prefix = match area_code {
        Some(code) if landline => code,
        _ => MOBILE_PREFIXES.choose(rng).expect("not empty"),
    };
    // Subscriber numbers never start with 0 or 1 in these ranges.
    let subscriber = rng.random_range(2_000_000..10_000_000u32);
    let raw = format!("+7 {prefix} {subscriber}");
    Phone::parse(&raw).expect("demo phone ranges are valid numbers, see the tests")
}

/// An e-mail address: at the company's host when there is one, else at a free mail service.
pub fn email(rng: &mut ChaCha8Rng, person: &Person, host: Option<&str>) -> Email {
    let first_letter = &person.first_latin[..1];
    let local = match rng.random_range(0..4) {
        0 => format!("{}.{}", person.first_latin, person.surname_latin),
        1 => format!("{first_letter}.{}", person.surname_latin),
        2 => format!("{}{}", person.surname_latin, rng.random_range(70..100)),
        _ => format!("{}_{}", person.first_latin, rng.random_range(1..1000)),
    };
    let host = match host {
        Some(h) if rng.random_bool(0.7) => h,
        _ => FREE_MAIL.choose(rng).expect("not empty"),
    };
    Email::parse(&format!("{local}@{host}")).expect("demo e-mail addresses are valid")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_prefix_and_area_code_makes_valid_phones() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            for prefix in MOBILE_PREFIXES {
                let raw = format!("+7 {prefix} {}", rng.random_range(2_000_000..10_000_000));
                assert!(Phone::parse(&raw).is_ok(), "{raw}");
            }
            for (region, code) in REGIONS.iter().filter_map(|(r, c)| Some((r, (*c)?))) {
                let raw = format!("+7 {code} {}", rng.random_range(2_000_000..10_000_000));
                assert!(Phone::parse(&raw).is_ok(), "{region}: {raw}");
            }
        }
    }

    #[test]
    fn people_and_companies_make_valid_addresses() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..500 {
            let p = person(&mut rng);
            let c = company(&mut rng, &p);
            email(&mut rng, &p, Some(&c.host));
            assert!(c.name.chars().count() < 100);
        }
    }
}
