//! Segment names: what a user may call a named object.

use crate::error::{Error, Result};
use crate::sys;

/// Longest accepted name (NAME_MAX is 255; the `shmproc.` prefix takes 8).
pub(crate) const MAX_NAME_LEN: usize = 200;

/// Checks a user-chosen segment name: 1 to [`MAX_NAME_LEN`] bytes of ASCII
/// letters, digits, `.`, `_` and `-`, not starting with `.`.
pub(crate) fn validate(name: &str) -> Result<()> {
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

/// Removes the named segment `name` by hand (e.g. one created with `persist`).
///
/// # Errors
/// An invalid name, or the OS error (e.g. `ENOENT`) from `shm_unlink`.
///
/// # Examples
/// ```
/// let name = format!("doc-unlink-{}", std::process::id());
/// drop(shmproc::Lock::builder().name(&name).persist(true).create()?);
/// shmproc::unlink(&name)?;
/// assert!(shmproc::Lock::open(&name).is_err());
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn unlink(name: &str) -> Result<()> {
    validate(name)?;
    sys::shm::unlink_named(name)?;
    log::info!("shmproc: unlinked named segment {name}");
    Ok(())
}

/// A unique name for tests: prefix, pid and a counter.
#[cfg(test)]
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness matters, not ordering with other memory.
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", sys::task::pid())
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
