//! Entity tags of entries, and the `If-Match` and `If-None-Match` conditions that test them.

use axum::http::HeaderValue;
use axum::http::header::GetAll;

/// The entity tag of an entry, as stored: 32 lowercase hex digits, 128 random bits chosen at
/// each write, so that no later version of a key (nor a key deleted and stored again) shares
/// an earlier one's tag. [`EntityTag::quoted`] is its HTTP form, in double quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag(String);

impl EntityTag {
    /// A fresh random tag.
    pub fn generate() -> EntityTag {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
        let mut hex = String::with_capacity(32);
        for byte in bytes {
            hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap());
            hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap());
        }
        EntityTag(hex)
    }

    /// A tag as the database holds it.
    pub fn from_stored(opaque: String) -> EntityTag {
        EntityTag(opaque)
    }

    /// The tag as the database holds it, without quotes.
    pub fn as_stored(&self) -> &str {
        &self.0
    }

    /// The tag in its HTTP form, in double quotes.
    pub fn quoted(&self) -> String {
        let mut quoted = String::with_capacity(self.0.len() + 2);
        quoted.push('"');
        quoted.push_str(&self.0);
        quoted.push('"');
        quoted
    }

    /// The `ETag` header carrying this tag.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::try_from(self.quoted()).expect("hex digits in quotes are a valid header")
    }
}

/// The tags an `If-Match` or `If-None-Match` header lists: `*`, or entity tags separated by
/// commas, over one or more header lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    Any,
    /// Each listed tag: its opaque part (between the quotes) and whether it was weak (`W/`).
    Tags(Vec<(String, bool)>),
}

impl TagCondition {
    /// The condition of every line of one header, or `None` when the header is absent. A list
    /// member that is not an entity tag matches nothing.
    pub fn from_headers(lines: GetAll<'_, HeaderValue>) -> Option<TagCondition> {
        let mut tags = Vec::new();
        let mut present = false;
        for line in lines {
            present = true;
            let Ok(line) = line.to_str() else { continue };
            for member in line.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                if member == "*" {
                    return Some(TagCondition::Any);
                }
                let (weak, quoted) = match member.strip_prefix("W/") {
                    Some(rest) => (true, rest),
                    None => (false, member),
                };
                if let Some(opaque) = quoted
                    .strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                {
                    tags.push((opaque.to_owned(), weak));
                }
            }
        }
        present.then_some(TagCondition::Tags(tags))
    }

    /// `If-Match`'s test: strong comparison, so a weak tag never matches.
    pub fn matches_strongly(&self, tag: &EntityTag) -> bool {
        match self {
            TagCondition::Any => true,
            TagCondition::Tags(tags) => tags.iter().any(|(opaque, weak)| !weak && *opaque == tag.0),
        }
    }

    /// `If-None-Match`'s test: weak comparison, so `W/"x"` matches `"x"`.
    pub fn matches_weakly(&self, tag: &EntityTag) -> bool {
        match self {
            TagCondition::Any => true,
            TagCondition::Tags(tags) => tags.iter().any(|(opaque, _)| *opaque == tag.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use axum::http::header::IF_MATCH;

    use super::*;

    fn condition(lines: &[&str]) -> Option<TagCondition> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(IF_MATCH, HeaderValue::from_str(line).unwrap());
        }
        TagCondition::from_headers(headers.get_all(IF_MATCH))
    }

    #[test]
    fn generated_tags_are_32_hex_digits_and_differ() {
        let first = EntityTag::generate();
        let second = EntityTag::generate();
        assert_eq!(first.as_stored().len(), 32);
        assert!(first.as_stored().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, second);
        assert_eq!(first.quoted(), format!("\"{}\"", first.as_stored()));
    }

    #[test]
    fn lists_over_several_lines_are_read_whole() {
        let tag = EntityTag::from_stored("abc".into());
        let listed = condition(&["\"x\", \"y\"", " \"abc\" "]).unwrap();
        assert!(listed.matches_strongly(&tag));
        assert!(listed.matches_weakly(&tag));
        assert!(!condition(&["\"x\""]).unwrap().matches_strongly(&tag));
    }

    #[test]
    fn weak_tags_match_only_weakly() {
        let tag = EntityTag::from_stored("abc".into());
        let weak = condition(&["W/\"abc\""]).unwrap();
        assert!(!weak.matches_strongly(&tag));
        assert!(weak.matches_weakly(&tag));
    }

    #[test]
    fn star_matches_any_tag_and_garbage_matches_none() {
        let tag = EntityTag::from_stored("abc".into());
        assert_eq!(condition(&["*"]), Some(TagCondition::Any));
        let garbage = condition(&["abc, 'abc', \"abc"]).unwrap();
        assert!(!garbage.matches_strongly(&tag) && !garbage.matches_weakly(&tag));
        assert_eq!(condition(&[]), None);
    }
}
