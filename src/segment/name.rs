//! Segment names: what a user may call a named object.

use crate::error::{Error, Result};

/// Longest accepted name (NAME_MAX is 255; the `shmproc.` prefix takes 8).
///
/// # Examples
/// ```
/// use shmproc::segment::name::{validate, MAX_NAME_LEN};
/// assert!(validate(&"a".repeat(MAX_NAME_LEN)).is_ok());
/// assert!(validate(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
/// ```
pub const MAX_NAME_LEN: usize = 200;

/// Checks a user-chosen segment name: 1 to [`MAX_NAME_LEN`] bytes of ASCII
/// letters, digits, `.`, `_` and `-`, not starting with `.`.
///
/// # Examples
/// ```
/// use shmproc::segment::name::validate;
/// assert!(validate("jobs-1.q").is_ok());
/// assert!(validate("../etc").is_err());
/// ```
pub fn validate(name: &str) -> Result<()> {
    let expected = "1 to 200 ASCII letters, digits, '.', '_' or '-', not starting with '.'";
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            "segment name",
            expected,
            format!("{} bytes", name.len()),
        ));
    }
    if name.starts_with('.') {
        return Err(Error::invalid(
            "segment name",
            expected,
            format!("{name:?}"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::invalid(
            "segment name",
            expected,
            format!("{name:?} (contains {bad:?})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for n in ["jobs", "a", "q-1.x_y", &"n".repeat(MAX_NAME_LEN)] {
            validate(n).unwrap();
        }
    }

    #[test]
    fn rejects_bad_names() {
        for n in [
            "",
            "a/b",
            ".hidden",
            "sp ace",
            "nul\0",
            "é",
            &"n".repeat(MAX_NAME_LEN + 1),
        ] {
            let e = validate(n).unwrap_err().to_string();
            assert!(e.contains("segment name"), "{e}");
        }
    }
}
