//! Push webhooks from GitHub, GitLab and Gitea. Each proves it knows the
//! component's secret its own way: GitHub and Gitea sign the body with
//! HMAC-SHA256, GitLab sends the secret itself. Every comparison is
//! constant-time, and nothing in the body is trusted before it passes.

use crate::error::{Error, Result};
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Debug, PartialEq)]
pub enum Delivery {
    /// The forge checking the hook works.
    Ping,
    Push {
        reference: String,
        pusher: String,
    },
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn signature_matches(secret: &str, body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Checks the delivery's proof and reads what was pushed.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<Delivery> {
    let rejected = || {
        Error::Forbidden(
            "the webhook signature or token does not match this component's secret".into(),
        )
    };
    let event = if let Some(sig) = header(headers, "x-hub-signature-256") {
        let hex_sig = sig.strip_prefix("sha256=").ok_or_else(rejected)?;
        if !signature_matches(secret, body, hex_sig) {
            return Err(rejected());
        }
        header(headers, "x-github-event")
            .or_else(|| header(headers, "x-gitea-event"))
            .unwrap_or("push")
    } else if let Some(sig) = header(headers, "x-gitea-signature") {
        if !signature_matches(secret, body, sig) {
            return Err(rejected());
        }
        header(headers, "x-gitea-event").unwrap_or("push")
    } else if let Some(token) = header(headers, "x-gitlab-token") {
        if !bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(rejected());
        }
        header(headers, "x-gitlab-event").unwrap_or("Push Hook")
    } else {
        return Err(rejected());
    };
    match event {
        "ping" => return Ok(Delivery::Ping),
        "push" | "Push Hook" | "Tag Push Hook" => {}
        other => {
            return Err(Error::Invalid(vec![format!(
                "`{other}` deliveries are not handled; send push events"
            )]))
        }
    }
    #[derive(serde::Deserialize)]
    struct Payload {
        #[serde(rename = "ref")]
        reference: String,
        #[serde(default)]
        pusher: Option<Pusher>,
        #[serde(default)]
        user_username: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Pusher {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        login: Option<String>,
        #[serde(default)]
        username: Option<String>,
    }
    let p: Payload = serde_json::from_slice(body)
        .map_err(|e| Error::Invalid(vec![format!("not a push payload: {e}")]))?;
    let pusher = p
        .pusher
        .and_then(|u| u.login.or(u.username).or(u.name))
        .or(p.user_username)
        .unwrap_or_else(|| "unknown".into());
    Ok(Delivery::Push {
        reference: p.reference,
        pusher,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"ref":"refs/heads/main","pusher":{"name":"ada"}}"#;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn github_signed_push_is_accepted_and_a_forged_one_is_not() {
        let good = headers(&[
            (
                "x-hub-signature-256",
                format!("sha256={}", sign("s3cret", BODY)),
            ),
            ("x-github-event", "push".into()),
        ]);
        assert_eq!(
            verify(&good, BODY, "s3cret").unwrap(),
            Delivery::Push {
                reference: "refs/heads/main".into(),
                pusher: "ada".into()
            }
        );
        let forged = headers(&[
            (
                "x-hub-signature-256",
                format!("sha256={}", sign("guess", BODY)),
            ),
            ("x-github-event", "push".into()),
        ]);
        assert!(matches!(
            verify(&forged, BODY, "s3cret"),
            Err(Error::Forbidden(_))
        ));
        // A valid signature of another body proves nothing about this one.
        let other = headers(&[(
            "x-hub-signature-256",
            format!("sha256={}", sign("s3cret", b"{}")),
        )]);
        assert!(matches!(
            verify(&other, BODY, "s3cret"),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn gitea_and_gitlab_proofs_are_checked() {
        let gitea = headers(&[
            ("x-gitea-signature", sign("s3cret", BODY)),
            ("x-gitea-event", "push".into()),
        ]);
        assert!(matches!(
            verify(&gitea, BODY, "s3cret"),
            Ok(Delivery::Push { .. })
        ));
        let gitlab = headers(&[
            ("x-gitlab-token", "s3cret".into()),
            ("x-gitlab-event", "Push Hook".into()),
        ]);
        assert!(matches!(
            verify(&gitlab, BODY, "s3cret"),
            Ok(Delivery::Push { .. })
        ));
        let wrong = headers(&[("x-gitlab-token", "s3cre".into())]);
        assert!(matches!(
            verify(&wrong, BODY, "s3cret"),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn unsigned_deliveries_and_other_events_are_refused() {
        assert!(matches!(
            verify(&HeaderMap::new(), BODY, "s"),
            Err(Error::Forbidden(_))
        ));
        let issue = headers(&[
            ("x-hub-signature-256", format!("sha256={}", sign("s", BODY))),
            ("x-github-event", "issues".into()),
        ]);
        assert!(matches!(verify(&issue, BODY, "s"), Err(Error::Invalid(_))));
        let ping = headers(&[
            (
                "x-hub-signature-256",
                format!("sha256={}", sign("s", b"{}")),
            ),
            ("x-github-event", "ping".into()),
        ]);
        assert_eq!(verify(&ping, b"{}", "s").unwrap(), Delivery::Ping);
    }
}
