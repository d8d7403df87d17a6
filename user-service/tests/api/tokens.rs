use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use converge_shared::token::{AUDIENCE, AccessClaims, ISSUER, TokenVerifier};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use user_service::keys;

use crate::helpers::{Device, RACE_ROUNDS, TestApp, assert_error, on_both_backends};

fn claims_for(user_id: &str, nbf_offset: i64, exp_offset: i64) -> AccessClaims {
    let now = Utc::now().timestamp();
    AccessClaims {
        sub: user_id.parse().unwrap(),
        sid: None,
        name: "Ana".into(),
        profile_at: None,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        iat: now,
        nbf: now + nbf_offset,
        exp: now + exp_offset,
    }
}

fn sign_eddsa(key: &ed25519_dalek::SigningKey, claims: &AccessClaims) -> String {
    let keys = keys::SigningKeys::new(key.clone(), vec![]).unwrap();
    keys.sign(claims).unwrap()
}

on_both_backends! {
    async fn issued_tokens_verify_with_the_published_jwks(backend) {
        let app = TestApp::spawn(backend).await;
        let registered = app.register("ana").await;
        let jwks: JwkSet = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        let claims = TokenVerifier::from_jwks(&jwks).verify(registered["accessToken"].as_str().unwrap()).unwrap();
        assert_eq!(claims.sub.to_string(), registered["user"]["id"].as_str().unwrap());
        assert_eq!(claims.exp - claims.iat, 15 * 60);
        assert!(claims.sid.is_some());
    }

    async fn tokens_carry_the_profile_version_and_a_change_moves_it(backend) {
        let app = TestApp::spawn(backend).await;
        let registered = app.register("ana").await;
        let jwks: JwkSet = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        let verifier = TokenVerifier::from_jwks(&jwks);
        let token = registered["accessToken"].as_str().unwrap().to_owned();
        let before = verifier.verify(&token).unwrap().profile_at.expect("profile_at in a new user's token");

        let changed = app.client.patch(app.url("/users/me")).bearer_auth(&token)
            .json(&json!({ "displayName": "Ana Changed" })).send().await.unwrap();
        assert_eq!(changed.status().as_u16(), 200);
        let login: Value = app.login("ana", crate::helpers::PASSWORD).await.json().await.unwrap();
        let claims = verifier.verify(login["accessToken"].as_str().unwrap()).unwrap();
        assert_eq!(claims.name, "Ana Changed");
        assert!(claims.profile_at.expect("profile_at") > before, "{:?} after {before}", claims.profile_at);
    }

    async fn every_unacceptable_token_is_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let registered = app.register("ana").await;
        let user_id = registered["user"]["id"].as_str().unwrap();
        let kid = keys::SigningKeys::new(app.signing_key.clone(), vec![]).unwrap().kid().to_owned();

        // A control: a token we forge exactly like the service does is accepted.
        let valid = sign_eddsa(&app.signing_key, &claims_for(user_id, 0, 60));
        assert_eq!(app.get_authed("/users/me", &valid).await.status(), StatusCode::OK);

        let expired = sign_eddsa(&app.signing_key, &claims_for(user_id, -120, -60));
        assert_error(app.get_authed("/users/me", &expired).await, 401, "token_expired").await;

        let not_yet_valid = sign_eddsa(&app.signing_key, &claims_for(user_id, 600, 1200));
        assert_error(app.get_authed("/users/me", &not_yet_valid).await, 401, "invalid_token").await;

        let other_key = sign_eddsa(&keys::generate(), &claims_for(user_id, 0, 60));
        assert_error(app.get_authed("/users/me", &other_key).await, 401, "invalid_token").await;

        let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT", "kid": kid }).to_string());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims_for(user_id, 0, 60)).unwrap());
        let alg_none = format!("{header}.{payload}.");
        assert_error(app.get_authed("/users/me", &alg_none).await, 401, "invalid_token").await;

        // HS256 "signed" with the public key, hoping the verifier uses it as an HMAC secret.
        let public = app.signing_key.verifying_key().to_bytes();
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.kid = Some(kid.clone());
        let hs256 = jsonwebtoken::encode(&hs_header, &claims_for(user_id, 0, 60), &EncodingKey::from_secret(&public)).unwrap();
        assert_error(app.get_authed("/users/me", &hs256).await, 401, "invalid_token").await;

        // Same key, another audience.
        let mut foreign = claims_for(user_id, 0, 60);
        foreign.aud = "someone-else".into();
        let wrong_audience = sign_eddsa(&app.signing_key, &foreign);
        assert_error(app.get_authed("/users/me", &wrong_audience).await, 401, "invalid_token").await;

        assert_error(app.get_authed("/users/me", "garbage").await, 401, "invalid_token").await;
        let res = app.client.get(app.url("/users/me")).send().await.unwrap();
        assert_error(res, 401, "unauthorized").await;
    }

    async fn refresh_rotates_and_reuse_revokes_the_whole_session(backend) {
        let app = TestApp::spawn(backend).await;
        let registered = app.register("ana").await;
        let first = registered["refreshToken"].as_str().unwrap().to_owned();

        let res = app.post("/auth/refresh", &json!({ "refreshToken": first })).await;
        assert_eq!(res.status(), StatusCode::OK);
        let rotated: Value = res.json().await.unwrap();
        let second = rotated["refreshToken"].as_str().unwrap().to_owned();
        assert_ne!(first, second);
        assert_eq!(app.get_authed("/users/me", rotated["accessToken"].as_str().unwrap()).await.status(), StatusCode::OK);

        // Replaying the spent token is taken as theft: the session dies, including the new token.
        assert_error(app.post("/auth/refresh", &json!({ "refreshToken": first })).await, 401, "refresh_token_reused").await;
        assert_error(app.post("/auth/refresh", &json!({ "refreshToken": second })).await, 401, "invalid_refresh_token").await;
    }

    async fn concurrent_refreshes_with_one_token_yield_one_winner(backend) {
        let app = TestApp::spawn(backend).await;
        let registered = app.register("ana").await;
        let body = json!({ "refreshToken": registered["refreshToken"] });
        let (a, b) = tokio::join!(app.post("/auth/refresh", &body), app.post("/auth/refresh", &body));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 401]);
    }

    async fn a_refresh_underway_during_logout_does_not_outlive_it(backend) {
        let app = TestApp::spawn(backend).await;
        for round in 0..RACE_ROUNDS {
            // Logging out with the session's first token: any token of a session ends all of it.
            let session = app.register(&format!("ana{round}")).await;
            let device = Device::Refreshing(session["refreshToken"].clone());
            let body = json!({ "refreshToken": session["refreshToken"] });
            let logout = app.post("/auth/logout", &body);
            app.assert_ends_session_kept_up(round, device, logout).await;
        }
    }

    async fn a_refresh_underway_during_logout_all_does_not_outlive_it(backend) {
        let app = TestApp::spawn(backend).await;
        let body = json!({});
        for round in 0..RACE_ROUNDS {
            let name = format!("ana{round}");
            let this = app.register(&name).await;
            let other: Value = app.login(&name, crate::helpers::PASSWORD).await.json().await.unwrap();
            let device = Device::Refreshing(other["refreshToken"].clone());
            let logout_all = app.post_authed("/auth/logout-all", this["accessToken"].as_str().unwrap(), &body);
            app.assert_ends_session_kept_up(round, device, logout_all).await;
        }
    }

    async fn logout_ends_one_session_and_logout_all_ends_every_session(backend) {
        let app = TestApp::spawn(backend).await;
        let first = app.register("ana").await;
        let second: Value = app.login("ana", crate::helpers::PASSWORD).await.json().await.unwrap();
        let third: Value = app.login("ana", crate::helpers::PASSWORD).await.json().await.unwrap();

        let res = app.post("/auth/logout", &json!({ "refreshToken": first["refreshToken"] })).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_error(app.post("/auth/refresh", &json!({ "refreshToken": first["refreshToken"] })).await, 401, "invalid_refresh_token").await;
        let res = app.post("/auth/refresh", &json!({ "refreshToken": second["refreshToken"] })).await;
        assert_eq!(res.status(), StatusCode::OK, "the other sessions live on");
        let second: Value = res.json().await.unwrap();

        let res = app.post_authed("/auth/logout-all", third["accessToken"].as_str().unwrap(), &json!({})).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        for session in [&second, &third] {
            let res = app.post("/auth/refresh", &json!({ "refreshToken": session["refreshToken"] })).await;
            assert_error(res, 401, "invalid_refresh_token").await;
        }
    }
}

/// Replicas of user-service on one Redis: a session ended through one is refused by the other at
/// once, as by chat-service, not when its access token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_through_one_replica_is_refused_by_the_other() {
    let redis_url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let first = TestApp::spawn_with(crate::helpers::Backend::Postgres, |c| {
        c.redis_url = Some(redis_url.clone());
        c.redis_prefix = prefix.clone();
    })
    .await;
    let second = first.replica().await;
    // Both replicas listen (Redis counts the subscribers): what is announced from now on is heard.
    let channel = converge_shared::sessions::channel(&prefix);
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.expect("Redis at TEST_REDIS_URL");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let counts: Vec<(String, i64)> =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut conn).await.unwrap();
        if counts[0].1 >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "both replicas subscribe: {counts:?}");
        tokio::task::yield_now().await;
    }

    let ana = first.register("ana").await;
    let token = ana["accessToken"].as_str().unwrap();
    assert_eq!(second.get_authed("/users/me", token).await.status(), StatusCode::OK);
    let res = first.post("/auth/logout", &json!({ "refreshToken": ana["refreshToken"] })).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_error(first.get_authed("/users/me", token).await, 401, "invalid_token").await;
    // The second replica hears it a moment later: asked until it refuses, within a deadline.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while second.get_authed("/users/me", token).await.status() == StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "the second replica never heard of the logout");
        tokio::task::yield_now().await;
    }
    assert_error(second.get_authed("/users/me", token).await, 401, "invalid_token").await;
}
