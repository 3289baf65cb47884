//! Value types parsed once at the edge ("parse, don't validate"): phone numbers in E.164,
//! e-mail addresses, money in minor units, bounded text. Inside the domain only the parsed
//! types travel. Deserialising a stored event checks the shape but not the phone-number
//! metadata, so an event stays readable after the numbering plan changes.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// Why a raw value could not become a domain value.
///
/// ### Handling
/// Bad user input: report it to the caller as is (the message names the field); nothing was
/// decided and nothing appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid phone number {input:?}: {reason}")]
    Phone { input: String, reason: &'static str },
    #[error("invalid e-mail address {input:?}")]
    Email { input: String },
    #[error("invalid amount: {reason}")]
    Money { reason: &'static str },
    #[error("invalid currency {input:?}: expected an ISO 4217 code such as RUB")]
    Currency { input: String },
    #[error("{field} must not be empty")]
    TextEmpty { field: &'static str },
    #[error("{field} is {len} characters long, at most {max} are allowed")]
    TextTooLong {
        field: &'static str,
        max: usize,
        len: usize,
    },
    #[error("{field} contains control characters")]
    TextControl { field: &'static str },
    #[error("invalid {kind} {input:?}")]
    Id { kind: &'static str, input: String },
    #[error("invalid {kind} code {input:?}: use 1-64 characters of a-z, 0-9, '_' and '-'")]
    Code { kind: &'static str, input: String },
    /// A value with a shape of its own (a ticket reference, a read model's name).
    #[error("invalid {kind} {input:?}: {rule}")]
    Shape {
        kind: &'static str,
        input: String,
        rule: &'static str,
    },
}

impl ValueError {
    /// `raw`, owned, when `ok` says it has the shape of a `kind`; else the error giving the
    /// `rule` it breaks. What the shaped newtypes (a ticket reference, a read model's or a
    /// node's name) are parsed with.
    pub(crate) fn shaped(
        raw: &str,
        ok: bool,
        kind: &'static str,
        rule: &'static str,
    ) -> Result<String, ValueError> {
        if ok {
            Ok(raw.to_owned())
        } else {
            Err(ValueError::Shape {
                kind,
                input: raw.to_owned(),
                rule,
            })
        }
    }
}

/// A phone number in E.164 (`+79161234567`). Numbers without a country code are read as
/// Russian, the CRM's home market.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// What a number reads as once its data subject is erased.
    pub fn erased() -> Self {
        Self(crate::personal::ERASED.to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let err = |reason| ValueError::Phone {
            input: raw.to_owned(),
            reason,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(err("empty"));
        }
        if trimmed.len() > 40 {
            return Err(err("too long"));
        }
        let number = phonenumber::parse(Some(phonenumber::country::Id::RU), trimmed)
            .map_err(|_| err("not a phone number"))?;
        if phonenumber::is_valid(&number) {
            return Ok(Self(
                number.format().mode(phonenumber::Mode::E164).to_string(),
            ));
        }
        russian_8xx(trimmed)
            .map(Self)
            .ok_or_else(|| err("no such number in the numbering plan"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// phonenumber 0.3.10 strips the leading 8 of a Russian area code as if it were the national
/// trunk prefix, even after +7, so every number in the 8xx areas (St Petersburg 812, Kazan 843,
/// Krasnodar 861, Samara 846, ...) comes out nine digits long and invalid. Such a number is
/// +7 and ten digits starting with 8; accept exactly that shape, written as +7 8xx... or
/// 8 8xx..., and leave every other number to the crate.
fn russian_8xx(raw: &str) -> Option<String> {
    if raw
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-()".contains(c)))
    {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let national = match (raw.trim_start().starts_with('+'), digits.len()) {
        (true, 11) if digits.starts_with('7') => &digits[1..],
        (false, 11) if digits.starts_with('8') => &digits[1..],
        (false, 10) => &digits[..],
        _ => return None,
    };
    national.starts_with('8').then(|| format!("+7{national}"))
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // A stored number whose subject was erased reads as the marker.
        let well_formed = s == crate::personal::ERASED
            || s.len() > 2
                && s.len() <= 16
                && s.starts_with('+')
                && s[1..].bytes().all(|b| b.is_ascii_digit());
        if well_formed {
            Ok(Self(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "{s:?} is not an E.164 phone number"
            )))
        }
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address (RFC 5322 addr-spec, at most 254 characters). The domain part is
/// lower-cased so that contacts match.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// What an address reads as once its data subject is erased.
    pub fn erased() -> Self {
        Self(crate::personal::ERASED.to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let trimmed = raw.trim();
        let err = || ValueError::Email {
            input: raw.to_owned(),
        };
        if trimmed.len() > 254 {
            return Err(err());
        }
        let addr = email_address::EmailAddress::from_str(trimmed).map_err(|_| err())?;
        // A CRM e-mail is always "user@host.tld": reject display names and dotless hosts.
        if addr.email() != trimmed || !addr.domain().contains('.') {
            return Err(err());
        }
        Ok(Self(format!(
            "{}@{}",
            addr.local_part(),
            addr.domain().to_lowercase()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 currency code.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::Currency {
                input: raw.to_owned(),
            })
        }
    }

    pub fn rub() -> Self {
        Self("RUB".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount in minor units (kopecks, cents) with its currency; never a float.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// The largest amount accepted: ten trillion in major units.
    pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

    pub fn from_minor(minor: i64, currency: Currency) -> Result<Self, ValueError> {
        if minor < 0 {
            return Err(ValueError::Money {
                reason: "must not be negative",
            });
        }
        if minor > Self::MAX_MINOR {
            return Err(ValueError::Money {
                reason: "exceeds 10^13 in major units",
            });
        }
        Ok(Self { minor, currency })
    }

    /// Parses a decimal amount with at most two fraction digits, such as `"1500000.50"`.
    pub fn parse_decimal(raw: &str, currency: Currency) -> Result<Self, ValueError> {
        let bad = ValueError::Money {
            reason: "expected a decimal amount with at most 2 fraction digits",
        };
        let raw = raw.trim();
        let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 16 || frac.len() > 2 || !digits(int) || !digits(frac) {
            return Err(bad);
        }
        let int: i64 = int.parse().map_err(|_| bad.clone())?;
        let frac: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<2}").parse().map_err(|_| bad.clone())?
        };
        let minor = int
            .checked_mul(100)
            .and_then(|v| v.checked_add(frac))
            .ok_or(bad)?;
        Self::from_minor(minor, currency)
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

/// Trimmed, non-empty text of at most `MAX` characters with no control characters other than
/// line breaks and tabs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<const MAX: usize>(String);

/// A lead title, a person's or a company's name.
pub type Name = Text<200>;
/// Comments, notes, reasons.
pub type Comment = Text<4000>;
/// Short free references: region, industry, sales direction, need type.
pub type Short = Text<100>;

impl<const MAX: usize> Text<MAX> {
    /// What the text reads as once its data subject is erased.
    pub fn erased() -> Self {
        Self(crate::personal::ERASED.to_owned())
    }

    /// Parses `raw` for the field named `field` (the name appears in the error).
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValueError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ValueError::TextEmpty { field });
        }
        let len = trimmed.chars().count();
        if len > MAX {
            return Err(ValueError::TextTooLong {
                field,
                max: MAX,
                len,
            });
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(ValueError::TextControl { field });
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> JsonSchema for Text<MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Text{MAX}").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1, "maxLength": MAX })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_become_e164() {
        assert_eq!(
            Phone::parse("+7 916 123-45-67").unwrap().as_str(),
            "+79161234567"
        );
        assert_eq!(
            Phone::parse("8 (916) 123-45-67").unwrap().as_str(),
            "+79161234567"
        );
        assert_eq!(
            Phone::parse("+1 650 253 0000").unwrap().as_str(),
            "+16502530000"
        );
    }

    /// phonenumber 0.3.10 drops the 8 of Russian 8xx area codes (see `russian_8xx`).
    #[test]
    fn russian_numbers_in_8xx_areas_parse() {
        assert_eq!(
            Phone::parse("+7 812 504-61-13").unwrap().as_str(),
            "+78125046113"
        );
        assert_eq!(
            Phone::parse("8 (812) 504-61-13").unwrap().as_str(),
            "+78125046113"
        );
        assert_eq!(
            Phone::parse("+7 843 123 45 67").unwrap().as_str(),
            "+78431234567"
        );
        assert_eq!(
            Phone::parse("8 800 555-35-35").unwrap().as_str(),
            "+78005553535"
        );
        assert!(Phone::parse("+7 812 504").is_err());
        assert!(Phone::parse("+7 8125 0461 1399").is_err());
        assert!(
            Phone::parse("+1 812 504 6113").is_err(),
            "only +7 gets the workaround"
        );
    }

    #[test]
    fn bad_phones_are_rejected() {
        for raw in ["", "abc", "123", "+7 000", "+999 123 456 7890"] {
            assert!(
                matches!(Phone::parse(raw), Err(ValueError::Phone { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn emails_are_checked_and_domain_lowercased() {
        assert_eq!(
            Email::parse(" Ivan@Example.RU ").unwrap().as_str(),
            "Ivan@example.ru"
        );
        for raw in [
            "",
            "ivan",
            "ivan@",
            "@example.ru",
            "ivan@localhost",
            "Ivan <ivan@example.ru>",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn money_is_minor_units_and_bounded() {
        let rub = Currency::rub();
        assert_eq!(
            Money::parse_decimal("1500.5", rub.clone()).unwrap().minor(),
            150_050
        );
        assert_eq!(
            Money::parse_decimal("12", rub.clone()).unwrap().minor(),
            1200
        );
        assert!(Money::parse_decimal("1.234", rub.clone()).is_err());
        assert!(Money::parse_decimal("-5", rub.clone()).is_err());
        assert!(Money::parse_decimal("1e5", rub.clone()).is_err());
        assert!(Money::from_minor(-1, rub.clone()).is_err());
        assert!(Money::from_minor(Money::MAX_MINOR + 1, rub).is_err());
        assert!(Currency::parse("rub").is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(Name::parse("title", "  Hi ").unwrap().as_str(), "Hi");
        assert_eq!(
            Name::parse("title", "   "),
            Err(ValueError::TextEmpty { field: "title" })
        );
        let long = "я".repeat(201);
        assert_eq!(
            Name::parse("title", &long),
            Err(ValueError::TextTooLong {
                field: "title",
                max: 200,
                len: 201
            })
        );
        assert!(Name::parse("title", "a\u{0}b").is_err());
    }
}
