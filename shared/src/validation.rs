//! The contract's rules for usernames, emails, passwords, keys and values, and the reading of
//! request fields with the JSON type each must have.

use serde_json::Map;

type Json = serde_json::Value;

/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 255;
/// Longest value, in bytes of UTF-8.
pub const MAX_VALUE_BYTES: usize = 65_535;
/// Longest email, in characters, as stored: trimmed and lowercased.
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest password, in characters: register refuses longer ones, and a login with a longer
/// one is refused without hashing it.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest full name, in characters.
pub const MAX_FULL_NAME_CHARS: usize = 255;
/// Longest gender, in characters.
pub const MAX_GENDER_CHARS: usize = 32;

/// A field of a request body whose JSON type is not the documented one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

/// The string in `field`: `None` when absent or null, an error when of another JSON type.
pub fn optional_string<'a>(
    body: &'a Map<String, Json>,
    field: &str,
) -> Result<Option<&'a str>, WrongType> {
    match body.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => Ok(Some(text)),
        Some(_) => Err(WrongType),
    }
}

/// Whether the text is absent or only whitespace.
pub fn is_blank(text: Option<&str>) -> bool {
    text.is_none_or(|text| text.trim().is_empty())
}

/// 3 to 64 ASCII letters, digits, `_`, `.` or `-`.
pub fn is_valid_username(username: &str) -> bool {
    (3..=64).contains(&username.len())
        && username
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

/// The email trimmed and lower-cased, as stored; `None` when that stored form is not of the
/// form `local@domain.tld` (one `@`, no whitespace, a dot inside the domain) or is over
/// [`MAX_EMAIL_CHARS`] characters. Lowercasing can change the length ('İ' becomes two
/// characters, "i\u{307}"), so every check is of the lowercased text: the column holds at most
/// that many characters.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    if email.chars().count() > MAX_EMAIL_CHARS || email.chars().any(char::is_whitespace) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let dot_inside_domain = domain
        .split_once('.')
        .is_some_and(|(name, tld)| !name.is_empty() && !tld.is_empty());
    let valid = !local.is_empty()
        && !domain.contains('@')
        && dot_inside_domain
        && !domain.ends_with('.')
        && !domain.contains("..");
    valid.then_some(email)
}

/// 8 to 128 characters with a lowercase letter, an uppercase letter, a digit and a character
/// that is none of those.
pub fn is_valid_password(password: &str) -> bool {
    let length = password.chars().count();
    (8..=MAX_PASSWORD_CHARS).contains(&length)
        && password.chars().any(char::is_lowercase)
        && password.chars().any(char::is_uppercase)
        && password.chars().any(|c| c.is_ascii_digit())
        && password
            .chars()
            .any(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_ascii_digit())
}

/// The age when `value` is an integer from 1 to 150 written without fraction or exponent.
pub fn parse_age(value: &Json) -> Option<i64> {
    match value {
        // serde_json keeps `30.0` and `3e1` as floats, so only plain integers pass.
        Json::Number(number) => number.as_i64().filter(|age| (1..=150).contains(age)),
        _ => None,
    }
}

/// A key as the contract defines it: 1 to 255 characters, no control characters, not all
/// whitespace. Compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The key `text` spells, if it is a valid one.
    pub fn parse(text: String) -> Option<Key> {
        let length = text.chars().count();
        let valid = (1..=MAX_KEY_CHARS).contains(&length)
            && !text.chars().any(char::is_control)
            && !text.chars().all(char::is_whitespace);
        valid.then_some(Key(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A value as the contract defines it: 1 to 65,535 bytes of UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(String);

impl Value {
    /// The value `text` is, if it is a valid one.
    pub fn parse(text: String) -> Option<Value> {
        (1..=MAX_VALUE_BYTES)
            .contains(&text.len())
            .then_some(Value(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usernames() {
        for good in ["abc", "a_b.c-d", "ABC123", &"x".repeat(64)] {
            assert!(is_valid_username(good), "{good}");
        }
        for bad in [
            "ab",
            "a b",
            " abc",
            "abc ",
            "ab/c",
            "námé",
            &"x".repeat(65),
            "",
        ] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  John.Doe@Example.COM "),
            Some("john.doe@example.com".into())
        );
        assert_eq!(normalize_email("a@b.co"), Some("a@b.co".into()));
    }

    #[test]
    fn malformed_emails_are_refused() {
        let too_long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(too_long.len(), 255);
        for bad in [
            "plain",
            "a@b",
            "@b.com",
            "a@.com",
            "a@b.",
            "a@@b.com",
            "a@b@c.com",
            "a b@c.com",
            "a@b..com",
            too_long.as_str(),
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
        let longest = format!("{}@example.com", "a".repeat(242));
        assert!(normalize_email(&longest).is_some());
    }

    #[test]
    fn email_lengths_count_the_lowercased_text() {
        // 'İ' lowercases to two characters: 121 of them make 254 characters stored, 122 255.
        let fits = format!("{}@example.com", "\u{130}".repeat(121));
        let stored = normalize_email(&fits).unwrap();
        assert_eq!(stored, format!("{}@example.com", "i\u{307}".repeat(121)));
        assert_eq!(stored.chars().count(), MAX_EMAIL_CHARS);
        let over = format!("{}@example.com", "\u{130}".repeat(122));
        assert_eq!(over.chars().count(), 134);
        assert_eq!(normalize_email(&over), None);
        // The Kelvin sign lowercases to 'k', one character for one (and one byte for three).
        let kelvin = format!("{}@example.com", "\u{212a}".repeat(242));
        assert_eq!(
            normalize_email(&kelvin),
            Some(format!("{}@example.com", "k".repeat(242)))
        );
        let kelvin = format!("{}@example.com", "\u{212a}".repeat(243));
        assert_eq!(normalize_email(&kelvin), None);
    }

    #[test]
    fn passwords_need_four_kinds_of_character() {
        assert!(is_valid_password("Str0ng!Pass"));
        assert!(is_valid_password("Aa1 aaaa"));
        for bad in [
            "Sh0rt!",
            "alllower1!",
            "ALLUPPER1!",
            "NoDigits!!",
            "NoSpecial11",
        ] {
            assert!(!is_valid_password(bad), "{bad}");
        }
        assert!(is_valid_password(&format!("Aa1!{}", "x".repeat(124))));
        assert!(!is_valid_password(&format!("Aa1!{}", "x".repeat(125))));
    }

    #[test]
    fn ages_are_plain_integers_in_range() {
        assert_eq!(parse_age(&json!(30)), Some(30));
        assert_eq!(parse_age(&json!(1)), Some(1));
        assert_eq!(parse_age(&json!(150)), Some(150));
        for bad in [
            json!(0),
            json!(151),
            json!(-3),
            json!(30.0),
            json!("30"),
            json!(true),
        ] {
            assert_eq!(parse_age(&bad), None, "{bad}");
        }
        let exponent: Json = serde_json::from_str("3e1").unwrap();
        assert_eq!(parse_age(&exponent), None);
    }

    #[test]
    fn keys() {
        for good in ["k", "a/b c", "Foo", "ключ", ".", "..", &"é".repeat(255)] {
            assert_eq!(Key::parse(good.into()).unwrap().as_str(), good);
        }
        for bad in ["", "   ", "\t", "a\nb", "a\u{7f}", &"k".repeat(256)] {
            assert_eq!(Key::parse(bad.into()), None, "{bad:?}");
        }
    }

    #[test]
    fn values_are_measured_in_bytes() {
        assert!(Value::parse("v".into()).is_some());
        assert!(Value::parse("x".repeat(MAX_VALUE_BYTES)).is_some());
        assert!(Value::parse(String::new()).is_none());
        assert!(Value::parse("x".repeat(MAX_VALUE_BYTES + 1)).is_none());
        // 3 bytes each: 21,846 of them are 65,538 bytes.
        assert!(Value::parse("€".repeat(21_846)).is_none());
    }

    #[test]
    fn fields_of_the_wrong_type_are_told_apart_from_missing_ones() {
        let body = json!({"a": "text", "b": null, "c": 5});
        let body = body.as_object().unwrap();
        assert_eq!(optional_string(body, "a"), Ok(Some("text")));
        assert_eq!(optional_string(body, "b"), Ok(None));
        assert_eq!(optional_string(body, "missing"), Ok(None));
        assert_eq!(optional_string(body, "c"), Err(WrongType));
    }
}
