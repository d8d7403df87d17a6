//! Request and response bodies of the public APIs (camelCase JSON).
//!
//! Validation rules live on the request types, so REST and GraphQL, which both build these types,
//! enforce exactly the same rules.

pub mod auth;
pub mod chat;
pub mod page;
pub mod user;

pub use auth::*;
pub use chat::*;
pub use page::*;
pub use user::*;

use crate::error::FieldErrors;

/// Flattens validator's errors into the envelope's `fields`: camelCase field name → first message.
pub fn field_errors(errors: &validator::ValidationErrors) -> FieldErrors {
    errors
        .field_errors()
        .into_iter()
        .map(|(field, errs)| {
            let message = errs
                .first()
                .map(|e| e.message.as_deref().map(str::to_owned).unwrap_or_else(|| e.code.to_string()))
                .unwrap_or_else(|| "is invalid".to_owned());
            (camel_case(&field), message)
        })
        .collect()
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Passwords, when registering and when changing one: 8 to 128 characters. (That a password is not
/// the account's username or email is checked by the service, which knows the account.)
pub(crate) fn password_rule(password: &str) -> Result<(), validator::ValidationError> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(validator::ValidationError::new("length").with_message("must be 8 to 128 characters".into()))
    }
}

/// Avatar and image links: an absolute `http(s)://` URL, or empty (meaning "none").
pub(crate) fn http_url(url: &str) -> Result<(), validator::ValidationError> {
    let valid = url.is_empty()
        || ((url.starts_with("https://") || url.starts_with("http://"))
            && validator::ValidateUrl::validate_url(&url)
            && !url.chars().any(char::is_whitespace));
    if valid {
        Ok(())
    } else {
        Err(validator::ValidationError::new("url").with_message("must be an http:// or https:// URL".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_converts_snake_names() {
        assert_eq!(camel_case("display_name"), "displayName");
        assert_eq!(camel_case("q"), "q");
    }

    #[test]
    fn http_url_accepts_only_web_links() {
        assert!(http_url("https://example.com/a.png").is_ok());
        assert!(http_url("").is_ok());
        assert!(http_url("javascript:alert(1)").is_err());
        assert!(http_url("ftp://example.com").is_err());
        assert!(http_url("https://exa mple.com").is_err());
    }
}
