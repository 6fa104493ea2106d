//! The status line's message: its text and how serious it is, so the window can draw a
//! notice quietly, a warning in amber and an error in red that stays until dismissed.

/// How serious a status message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Severity {
    /// Progress and results ("saved …", "wrote …", "cancelled").
    #[default]
    Info,
    /// Something the user asked for did not happen, for a reason they can fix.
    Warning,
    /// A job or an edit failed.
    Error,
}

/// One message for the status line. Derefs to its text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusMessage {
    pub text: String,
    pub severity: Severity,
}

impl StatusMessage {
    pub fn info(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            severity: Severity::Info,
        }
    }

    pub fn warning(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            severity: Severity::Warning,
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            severity: Severity::Error,
        }
    }
}

impl std::ops::Deref for StatusMessage {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for StatusMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which message the status line keeps when `new` arrives while `current` is shown: an error
/// stays until the user dismisses it (a later notice or warning goes to the log only);
/// anything else is replaced.
pub fn keeps_current(current: Option<&StatusMessage>, new: &StatusMessage) -> bool {
    current.is_some_and(|c| c.severity == Severity::Error && new.severity != Severity::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_outlives_later_notices_but_not_later_errors() {
        let error = StatusMessage::error("could not read ct.nii.gz");
        assert!(keeps_current(Some(&error), &StatusMessage::info("saved")));
        assert!(keeps_current(
            Some(&error),
            &StatusMessage::warning("pick two")
        ));
        assert!(!keeps_current(Some(&error), &StatusMessage::error("again")));
        let notice = StatusMessage::info("saved");
        assert!(!keeps_current(Some(&notice), &StatusMessage::warning("w")));
        assert!(!keeps_current(None, &notice));
        assert_eq!(&*error, "could not read ct.nii.gz");
    }
}
