//! Input rules for names people choose. Errors say what is allowed.

use crate::error::{Error, Result};

/// A DNS-1123 label (the datacenter's rule: names end up in hostnames and
/// Kubernetes object names).
pub fn dns_label(what: &str, name: &str) -> Result<()> {
    datacenter::validate::dns_label(&format!("The {what} name"), name)
        .map_err(|m| Error::Invalid(format!("{m}.")))
}

pub fn username(name: &str) -> Result<()> {
    let ok = (2..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "The username “{}” is not valid: use 2–32 lowercase letters, digits, dots, dashes or underscores, starting with a letter or digit.",
            truncate(name)
        )))
    }
}

/// Free text shown to people (display names, token names): bounded, printable.
pub fn label(what: &str, text: &str, max: usize) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Invalid(format!("The {what} may not be empty.")));
    }
    if text.chars().count() > max {
        return Err(Error::Invalid(format!(
            "The {what} may have at most {max} characters."
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "The {what} may not contain control characters."
        )));
    }
    Ok(text.to_string())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["a", "acme", "team-1", "0day", &"a".repeat(63)] {
            assert!(dns_label("team", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Acme",
            "a_b",
            "a.b",
            "ünï",
            &"a".repeat(64),
            "../x",
        ] {
            assert!(dns_label("team", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames() {
        assert!(username("admin").is_ok());
        assert!(username("jane.doe_2").is_ok());
        for bad in ["a", "Admin", ".x", "with space", &"x".repeat(33)] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(label("name", "  CI  ", 10).unwrap(), "CI");
        assert!(label("name", "   ", 10).is_err());
        assert!(label("name", "x\u{7}", 10).is_err());
        assert!(label("name", &"x".repeat(11), 10).is_err());
    }
}
