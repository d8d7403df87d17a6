use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Device, PASSWORD, RACE_ROUNDS, TestApp, assert_error, on_both_backends, register_body};

const NEW_PASSWORD: &str = "purple monkey dishwasher";

on_both_backends! {
    async fn password_change_keeps_this_session_and_ends_the_others(backend) {
        let app = TestApp::spawn(backend).await;
        let this: Value = app.register("ana").await;
        let other: Value = app.login("ana", PASSWORD).await.json().await.unwrap();
        let token = this["accessToken"].as_str().unwrap();

        let res = app.change_password(token, PASSWORD, NEW_PASSWORD).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);

        assert_error(app.login("ana", PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.login("ana", NEW_PASSWORD).await.status(), StatusCode::OK);
        assert_eq!(app.refresh(&this["refreshToken"]).await.status(), StatusCode::OK, "this session stays");
        assert_error(app.refresh(&other["refreshToken"]).await, 401, "invalid_refresh_token").await;
    }

    async fn a_refresh_underway_during_a_password_change_does_not_outlive_it(backend) {
        let app = TestApp::spawn(backend).await;
        for round in 0..RACE_ROUNDS {
            let name = format!("ana{round}");
            let this = app.register(&name).await;
            let other: Value = app.login(&name, PASSWORD).await.json().await.unwrap();
            let device = Device::Refreshing(other["refreshToken"].clone());
            let change = app.change_password(this["accessToken"].as_str().unwrap(), PASSWORD, NEW_PASSWORD);
            app.assert_ends_session_kept_up(round, device, change).await;
        }
    }

    async fn a_login_underway_during_a_password_change_does_not_outlive_it(backend) {
        let app = TestApp::spawn(backend).await;
        for round in 0..RACE_ROUNDS {
            let name = format!("ana{round}");
            let this = app.register(&name).await;
            let device = Device::LoggingIn(name);
            let change = app.change_password(this["accessToken"].as_str().unwrap(), PASSWORD, NEW_PASSWORD);
            app.assert_ends_session_kept_up(round, device, change).await;
        }
    }

    async fn of_two_changes_at_once_from_the_same_password_one_wins(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        // Both confirm the same current password (verified on the blocking pool side by side);
        // only one may replace it, or the first device's new password is silently lost.
        let (first, second) = tokio::join!(
            app.change_password(&token, PASSWORD, NEW_PASSWORD),
            app.change_password(&token, PASSWORD, "another new password"),
        );
        let mut statuses = [first.status(), second.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::UNPROCESSABLE_ENTITY]);
        let winner = if first.status() == StatusCode::NO_CONTENT { NEW_PASSWORD } else { "another new password" };
        assert_eq!(app.login("ana", winner).await.status(), StatusCode::OK);
    }

    async fn wrong_current_password_is_a_field_error_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let this = app.register("ana").await;
        let other: Value = app.login("ana", PASSWORD).await.json().await.unwrap();

        let res = app.change_password(this["accessToken"].as_str().unwrap(), "not the password", NEW_PASSWORD).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(err["error"]["fields"]["currentPassword"].is_string(), "{err}");

        assert_eq!(app.login("ana", PASSWORD).await.status(), StatusCode::OK);
        assert_error(app.login("ana", NEW_PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.refresh(&other["refreshToken"]).await.status(), StatusCode::OK, "other sessions stay");
    }

    async fn new_password_breaking_the_registration_rules_is_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let registered: Value = app.post("/auth/register", &register_body("longusername")).await.json().await.unwrap();
        let token = registered["accessToken"].as_str().unwrap();

        for weak in ["short", &"x".repeat(129), "LongUserName", "LONGUSERNAME@example.com"] {
            let err = assert_error(app.change_password(token, PASSWORD, weak).await, 422, "validation_failed").await;
            assert!(err["error"]["fields"]["newPassword"].is_string(), "{weak}: {err}");
        }
        assert_eq!(app.login("longusername", PASSWORD).await.status(), StatusCode::OK);
    }

    async fn new_password_equal_to_the_current_one_is_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        let err = assert_error(app.change_password(&token, PASSWORD, PASSWORD).await, 422, "validation_failed").await;
        assert!(err["error"]["fields"]["newPassword"].is_string(), "{err}");
    }

    async fn password_change_needs_an_access_token(backend) {
        let app = TestApp::spawn(backend).await;
        app.register("ana").await;
        let body = json!({ "currentPassword": PASSWORD, "newPassword": NEW_PASSWORD });
        assert_error(app.post("/users/me/password", &body).await, 401, "unauthorized").await;
        assert_eq!(app.login("ana", PASSWORD).await.status(), StatusCode::OK);
    }

    async fn password_change_attempts_count_against_the_login_limit(backend) {
        let app = TestApp::spawn_with(backend, |c| c.auth_rate_limit_per_account = 2).await;
        let token = app.token_for("ana").await;
        for _ in 0..2 {
            let res = app.change_password(&token, "not the password", NEW_PASSWORD).await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        }

        // Even the right password waits, and so does logging in: the account is under attack.
        let res = app.change_password(&token, PASSWORD, NEW_PASSWORD).await;
        let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        assert_error(res, 429, "rate_limited").await;
        assert_error(app.login("ana", PASSWORD).await, 429, "rate_limited").await;
    }

    async fn deactivated_account_cannot_change_its_password(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        let res = app.post_authed("/users/me/deactivate", &token, &json!({})).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        // Its session ended with the deactivation: the token is refused before the password is looked at.
        assert_error(app.change_password(&token, PASSWORD, NEW_PASSWORD).await, 401, "invalid_token").await;
    }
}
