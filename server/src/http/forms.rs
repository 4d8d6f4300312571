//! Plain HTML form endpoints for signing in and out, so the login page works
//! without JavaScript and always ends in a full page load with fresh state.

use super::AppState;
use crate::console::port::{client_address, session_of};
use crate::error::Error;
use app::model::Credentials;
use axum::extract::FromRequest;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

#[derive(serde::Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(Form(form)) =
        Form::<LoginForm>::from_request(Request::from_parts(parts.clone(), body), &()).await
    else {
        return Redirect::to("/login?error=invalid").into_response();
    };
    let session = match session_of(&parts) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let creds = Credentials {
        username: form.username,
        password: form.password,
    };
    match state
        .console
        .login(session, &client_address(&parts), creds)
        .await
    {
        Ok(_) => {
            // Only local paths, so the form cannot be used as an open redirect.
            let next = form
                .next
                .filter(|n| n.starts_with('/') && !n.starts_with("//"))
                .unwrap_or_else(|| "/".into());
            Redirect::to(&next).into_response()
        }
        Err(Error::RateLimited { retry_after }) => {
            Redirect::to(&format!("/login?error=rate_limited&retry={retry_after}")).into_response()
        }
        Err(Error::Unauthorized) => Redirect::to("/login?error=invalid").into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn logout(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let actor = state.console.authenticate(&parts).await.ok();
    match session_of(&parts) {
        Ok(session) => match state.console.logout(session, actor.as_ref()).await {
            Ok(()) => Redirect::to("/login?signed_out=1").into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}
