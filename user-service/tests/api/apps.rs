use converge_shared::token::TokenVerifier;
use jsonwebtoken::jwk::JwkSet;
use reqwest::StatusCode;
use serde_json::{Value, json};
use user_service::service::apps;

use crate::helpers::{TestApp, assert_error, on_both_backends};

async fn put_external(app: &TestApp, key: &str, external_id: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/apps/users/{external_id}")))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

on_both_backends! {
    async fn external_user_upsert_is_idempotent_and_yields_a_working_token(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, key) = apps::create(&app.context.db, "shop").await.unwrap();
        let body = json!({ "displayName": "Dana", "avatarUrl": "https://shop.example/dana.png" });

        let res = put_external(&app, &key, "customer-42", &body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let first: Value = res.json().await.unwrap();
        assert_eq!(first["created"], true);
        assert_eq!(first["user"]["externalId"], "customer-42");

        let res = put_external(&app, &key, "customer-42", &body).await;
        assert_eq!(res.status(), StatusCode::OK);
        let second: Value = res.json().await.unwrap();
        assert_eq!(second["created"], false);
        assert_eq!(second["user"]["id"], first["user"]["id"]);

        let renamed: Value = put_external(&app, &key, "customer-42", &json!({ "displayName": "Dana R." })).await.json().await.unwrap();
        assert_eq!(renamed["user"]["id"], first["user"]["id"]);
        assert_eq!(renamed["user"]["displayName"], "Dana R.");

        // Tokens carry the profile's version: the same profile again leaves it, a change moves it.
        let jwks: JwkSet = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        let profile_at = |answer: &Value| {
            let claims = TokenVerifier::from_jwks(&jwks).verify(answer["accessToken"].as_str().unwrap()).unwrap();
            claims.profile_at.expect("profile_at in an app's token")
        };
        assert_eq!(profile_at(&second), profile_at(&first), "the same profile is no change");
        assert!(profile_at(&renamed) > profile_at(&first), "a new name is");

        let me: Value = app.get_authed("/users/me", second["accessToken"].as_str().unwrap()).await.json().await.unwrap();
        assert_eq!(me["id"], first["user"]["id"]);

        let found: Value = app.client.get(app.url("/apps/users/customer-42")).header("x-api-key", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(found["id"], first["user"]["id"]);
    }

    async fn concurrent_upserts_of_one_external_id_create_one_user(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, key) = apps::create(&app.context.db, "shop").await.unwrap();
        let body = json!({ "displayName": "Dana" });
        let (a, b) = tokio::join!(put_external(&app, &key, "c-1", &body), put_external(&app, &key, "c-1", &body));
        let a: Value = a.json().await.unwrap();
        let b: Value = b.json().await.unwrap();
        assert_eq!(a["user"]["id"], b["user"]["id"], "{a} {b}");
        assert_ne!(a["created"], b["created"], "{a} {b}");
    }

    async fn external_ids_are_scoped_to_their_app(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, shop) = apps::create(&app.context.db, "shop").await.unwrap();
        let (_, forum) = apps::create(&app.context.db, "forum").await.unwrap();
        let body = json!({ "displayName": "Dana" });
        let a: Value = put_external(&app, &shop, "u1", &body).await.json().await.unwrap();
        let b: Value = put_external(&app, &forum, "u1", &body).await.json().await.unwrap();
        assert_ne!(a["user"]["id"], b["user"]["id"]);
        assert_error(app.client.get(app.url("/apps/users/u2")).header("x-api-key", &forum).send().await.unwrap(), 404, "not_found").await;
    }

    async fn bad_api_keys_and_bodies_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, key) = apps::create(&app.context.db, "shop").await.unwrap();
        let body = json!({ "displayName": "Dana" });
        assert_error(put_external(&app, "cvk_wrong", "u1", &body).await, 401, "invalid_api_key").await;
        let res = app.client.put(app.url("/apps/users/u1")).json(&body).send().await.unwrap();
        assert_error(res, 401, "unauthorized").await;
        assert_error(put_external(&app, &key, "u1", &json!({ "displayName": "" })).await, 422, "validation_failed").await;
        assert!(apps::create(&app.context.db, "shop").await.is_err(), "app names are unique");
    }
}
