use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, on_both_backends};

on_both_backends! {
    async fn pagination_walks_every_user_exactly_once(backend) {
        let app = TestApp::spawn(backend).await;
        let mut registered = HashSet::new();
        let mut token = String::new();
        for i in 0..8 {
            let body = app.register(&format!("user{i}")).await;
            registered.insert(body["user"]["id"].as_str().unwrap().to_owned());
            token = body["accessToken"].as_str().unwrap().to_owned();
        }

        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/users?limit=3&cursor={c}"),
                None => "/users?limit=3".to_owned(),
            };
            let page: Value = app.get_authed(&path, &token).await.json().await.unwrap();
            pages += 1;
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 3);
            seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 8, "no user twice");
        assert_eq!(seen.into_iter().collect::<HashSet<_>>(), registered);
    }

    async fn search_matches_username_or_display_name_case_insensitively(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        app.register("bob").await;
        let mut body = crate::helpers::register_body("carol");
        body["displayName"] = json!("Anabel Lee");
        assert_eq!(app.post("/auth/register", &body).await.status(), StatusCode::CREATED);

        let page: Value = app.get_authed("/users?q=ANA", &token).await.json().await.unwrap();
        let mut names: Vec<_> = page["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["ana", "carol"]);

        // LIKE wildcards are taken literally.
        let page: Value = app.get_authed("/users?q=%25", &token).await.json().await.unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 0);
    }

    async fn bad_listing_parameters_are_rejected(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        assert_error(app.get_authed("/users?limit=0", &token).await, 422, "validation_failed").await;
        assert_error(app.get_authed("/users?limit=abc", &token).await, 422, "validation_failed").await;
        assert_error(app.get_authed("/users?cursor=nope", &token).await, 422, "validation_failed").await;
        assert_error(app.client.get(app.url("/users")).send().await.unwrap(), 401, "unauthorized").await;
    }

    async fn a_user_is_found_by_id(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        let bob = app.register("bob").await;
        let id = bob["user"]["id"].as_str().unwrap();
        let found: Value = app.get_authed(&format!("/users/{id}"), &token).await.json().await.unwrap();
        assert_eq!(found["username"], "bob");
        assert!(found.get("email").is_none(), "other users' emails stay private");

        let missing = uuid::Uuid::now_v7();
        assert_error(app.get_authed(&format!("/users/{missing}"), &token).await, 404, "not_found").await;
        assert_error(app.get_authed("/users/not-a-uuid", &token).await, 400, "bad_request").await;
    }

    async fn profile_update_changes_only_given_fields_and_bad_input_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.token_for("ana").await;
        let patch = |body: Value| app.client.patch(app.url("/users/me")).bearer_auth(&token).json(&body).send();

        let res = patch(json!({ "displayName": "Ana B.", "avatarUrl": "https://example.com/ana.png" })).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["displayName"], "Ana B.");
        assert_eq!(me["avatarUrl"], "https://example.com/ana.png");

        let res = patch(json!({ "displayName": "Ana C.", "avatarUrl": "not a url" })).await.unwrap();
        assert_error(res, 422, "validation_failed").await;
        let me: Value = app.get_authed("/users/me", &token).await.json().await.unwrap();
        assert_eq!(me["displayName"], "Ana B.", "a rejected update changes nothing");

        let res = patch(json!({ "avatarUrl": "" })).await.unwrap();
        let me: Value = res.json().await.unwrap();
        assert!(me.get("avatarUrl").is_none());
        assert_eq!(me["displayName"], "Ana B.");
    }
}
