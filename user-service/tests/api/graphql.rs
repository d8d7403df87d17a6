use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, on_both_backends};

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { accessToken refreshToken user { id username email } } }";
const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken user { id } } }";

const CHANGE_PASSWORD: &str =
    "mutation($current: String!, $new: String!) { changePassword(currentPassword: $current, newPassword: $new) }";

fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("an error code in {body}"))
}

on_both_backends! {
    async fn register_login_and_me_over_graphql(backend) {
        let app = TestApp::spawn(backend).await;
        let input = json!({ "username": "ana", "email": "ana@example.com", "displayName": "Ana", "password": PASSWORD });
        let registered = app.graphql(REGISTER, json!({ "input": input }), None).await;
        assert!(registered["errors"].is_null(), "{registered}");
        let id = registered["data"]["register"]["user"]["id"].clone();

        let logged_in = app.graphql(LOGIN, json!({ "input": { "login": "ANA@example.com", "password": PASSWORD } }), None).await;
        assert_eq!(logged_in["data"]["login"]["user"]["id"], id);
        let token = logged_in["data"]["login"]["accessToken"].as_str().unwrap();

        let me = app.graphql("{ me { id username displayName email } }", json!({}), Some(token)).await;
        assert_eq!(me["data"]["me"]["id"], id);
        assert_eq!(me["data"]["me"]["email"], "ana@example.com");

        let refreshed = app.graphql(
            "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }",
            json!({ "t": logged_in["data"]["login"]["refreshToken"] }),
            None,
        ).await;
        assert!(refreshed["data"]["refreshToken"]["refreshToken"].is_string(), "{refreshed}");
    }

    async fn graphql_errors_carry_the_same_codes_as_rest(backend) {
        let app = TestApp::spawn(backend).await;
        app.register("ana").await;
        let dup = json!({ "username": "Ana", "email": "x@example.com", "displayName": "A", "password": PASSWORD });
        assert_eq!(error_code(&app.graphql(REGISTER, json!({ "input": dup }), None).await), "username_taken");

        let bad = json!({ "username": "a", "email": "x", "displayName": "A", "password": "p" });
        let body = app.graphql(REGISTER, json!({ "input": bad }), None).await;
        assert_eq!(error_code(&body), "validation_failed");
        assert!(body["errors"][0]["extensions"]["fields"]["email"].is_string());

        let wrong = app.graphql(LOGIN, json!({ "input": { "login": "ana", "password": "wrong-password" } }), None).await;
        assert_eq!(error_code(&wrong), "invalid_credentials");
        assert_eq!(error_code(&app.graphql("{ me { id } }", json!({}), None).await), "unauthorized");
        assert_eq!(error_code(&app.graphql("{ me { id } }", json!({}), Some("garbage")).await), "invalid_token");

        let malformed = app.client.post(app.url("/graphql")).header("content-type", "application/json").body("not json").send().await.unwrap();
        assert_eq!(malformed.status().as_u16(), 400);
        assert_eq!(malformed.json::<serde_json::Value>().await.unwrap()["error"]["code"], "bad_request");
    }

    async fn users_connection_pages_through_everyone(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        app.register("bob").await;
        app.register("carol").await;
        let query = "query($after: String) { users(first: 2, after: $after) { edges { cursor node { username } } pageInfo { hasNextPage } } }";
        let first = app.graphql(query, json!({}), Some(&token)).await;
        let edges = first["data"]["users"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 2);
        assert_eq!(first["data"]["users"]["pageInfo"]["hasNextPage"], true);
        let after = edges[1]["cursor"].clone();
        let second = app.graphql(query, json!({ "after": after }), Some(&token)).await;
        let rest: Vec<_> = second["data"]["users"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["username"].clone()).collect();
        assert_eq!(rest, [json!("carol")]);
        assert_eq!(second["data"]["users"]["pageInfo"]["hasNextPage"], false);
    }

    async fn profile_update_over_graphql(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        let body = app.graphql(
            "mutation { updateProfile(input: { displayName: \"Ana Q\" }) { displayName } }",
            json!({}),
            Some(&token),
        ).await;
        assert_eq!(body["data"]["updateProfile"]["displayName"], "Ana Q");
    }

    async fn password_change_over_graphql(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        let new = "purple monkey dishwasher";

        let wrong = app.graphql(CHANGE_PASSWORD, json!({ "current": "not the password", "new": new }), Some(&token)).await;
        assert_eq!(error_code(&wrong), "validation_failed");
        assert!(wrong["errors"][0]["extensions"]["fields"]["currentPassword"].is_string(), "{wrong}");

        let changed = app.graphql(CHANGE_PASSWORD, json!({ "current": PASSWORD, "new": new }), Some(&token)).await;
        assert_eq!(changed["data"]["changePassword"], true, "{changed}");
        assert_eq!(app.login("ana", new).await.status().as_u16(), 200);
        assert_eq!(app.login("ana", PASSWORD).await.status().as_u16(), 401);
    }
}
