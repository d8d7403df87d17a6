use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, on_both_backends, register_body};

on_both_backends! {
    async fn register_then_login_by_username_or_email(backend) {
        let app = TestApp::spawn(backend).await;
        let registered = app.register("ana").await;
        assert_eq!(registered["user"]["username"], "ana");
        assert_eq!(registered["user"]["email"], "ana@example.com");
        assert_eq!(registered["tokenType"], "Bearer");
        assert!(registered["refreshToken"].as_str().is_some_and(|t| t.len() >= 40));

        for login in ["ana", "ANA", "Ana@Example.com"] {
            let res = app.login(login, PASSWORD).await;
            assert_eq!(res.status(), StatusCode::OK, "login as {login}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["user"]["id"], registered["user"]["id"]);
            let me = app.get_authed("/users/me", body["accessToken"].as_str().unwrap()).await;
            assert_eq!(me.json::<Value>().await.unwrap()["username"], "ana");
        }
    }

    async fn duplicate_username_in_another_case_is_a_conflict_and_creates_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        let mut body = register_body("ANA");
        body["email"] = json!("other@example.com");
        assert_error(app.post("/auth/register", &body).await, 409, "username_taken").await;

        let users: Value = app.get_authed("/users", &token).await.json().await.unwrap();
        assert_eq!(users["items"].as_array().unwrap().len(), 1);
    }

    async fn duplicate_email_in_another_case_is_a_conflict(backend) {
        let app = TestApp::spawn(backend).await;
        app.register("ana").await;
        let mut body = register_body("bob");
        body["email"] = json!("ANA@example.COM");
        assert_error(app.post("/auth/register", &body).await, 409, "email_taken").await;
    }

    async fn wrong_password_and_unknown_account_answer_alike(backend) {
        let app = TestApp::spawn(backend).await;
        app.register("ana").await;
        let wrong = assert_error(app.login("ana", "not the password").await, 401, "invalid_credentials").await;
        let unknown = assert_error(app.login("nobody", PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(wrong, unknown);
    }

    async fn invalid_registration_names_each_bad_field(backend) {
        let app = TestApp::spawn(backend).await;
        let body = json!({
            "username": "a b",
            "email": "not-an-email",
            "displayName": "",
            "password": "short",
            "avatarUrl": "javascript:alert(1)",
        });
        let err = assert_error(app.post("/auth/register", &body).await, 422, "validation_failed").await;
        for field in ["username", "email", "displayName", "password", "avatarUrl"] {
            assert!(err["error"]["fields"][field].is_string(), "{field} is reported in {err}");
        }
    }

    async fn password_equal_to_username_is_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let mut body = register_body("longusername");
        body["password"] = json!("LongUserName");
        let err = assert_error(app.post("/auth/register", &body).await, 422, "validation_failed").await;
        assert!(err["error"]["fields"]["password"].is_string());
    }

    async fn login_is_rate_limited_per_ip(backend) {
        let app = TestApp::spawn_with(backend, |c| c.auth_rate_limit_per_ip = 3).await;
        for _ in 0..3 {
            assert_eq!(app.login("nobody", "whatever1").await.status(), StatusCode::UNAUTHORIZED);
        }
        let res = app.login("someone-else", "whatever1").await;
        let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        assert_error(res, 429, "rate_limited").await;
    }

    async fn login_is_rate_limited_per_account(backend) {
        let app = TestApp::spawn_with(backend, |c| c.auth_rate_limit_per_account = 2).await;
        app.register("ana").await;
        for _ in 0..2 {
            assert_eq!(app.login("ana", "wrong password").await.status(), StatusCode::UNAUTHORIZED);
        }
        // Even the right password waits: the account is under attack.
        assert_error(app.login("ANA", PASSWORD).await, 429, "rate_limited").await;
        // Other accounts from the same address are unaffected.
        app.register("bob").await;
        assert_eq!(app.login("bob", PASSWORD).await.status(), StatusCode::OK);
    }

    async fn login_limit_counts_the_username_and_the_email_as_one_account(backend) {
        let app = TestApp::spawn_with(backend, |c| c.auth_rate_limit_per_account = 2).await;
        app.register("ana").await;
        assert_eq!(app.login("ana", "wrong password").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.login("Ana@Example.com", "wrong password").await.status(), StatusCode::UNAUTHORIZED);
        // Switching between the two names of one account does not buy more guesses.
        assert_error(app.login("ana@example.com", PASSWORD).await, 429, "rate_limited").await;
        assert_error(app.login("ana", PASSWORD).await, 429, "rate_limited").await;
    }

    async fn deactivated_account_can_neither_log_in_nor_refresh(backend) {
        let app = TestApp::spawn(backend).await;
        let registered = app.register("ana").await;
        let token = registered["accessToken"].as_str().unwrap();
        let res = app.post_authed("/users/me/deactivate", token, &json!({})).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);

        assert_error(app.login("ana", PASSWORD).await, 403, "account_deactivated").await;
        let refresh = json!({ "refreshToken": registered["refreshToken"] });
        assert_error(app.post("/auth/refresh", &refresh).await, 401, "invalid_refresh_token").await;
        // The access token of its session is refused at once, not when it expires: the deactivation
        // ended every session.
        assert_error(app.get_authed("/users/me", token).await, 401, "invalid_token").await;
        assert_error(app.post_authed("/auth/logout-all", token, &json!({})).await, 401, "invalid_token").await;
    }
}
