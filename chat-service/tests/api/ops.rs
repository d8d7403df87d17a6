//! Operations endpoints: health, readiness and metrics.

use serde_json::Value;

use crate::helpers::{TestStack, metric, on_both_backends};

async fn metrics(stack: &TestStack) -> String {
    stack.client.get(format!("{}/metrics", stack.chat_url)).send().await.unwrap().text().await.unwrap()
}

on_both_backends! {
    async fn metrics_count_messages_fan_out_connections_and_errors_by_code(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        let mut bob_ws = stack.connect(&bob).await;
        let before = metrics(&stack).await;

        for i in 0..3 {
            assert_eq!(ana_ws.send_message(chat, &format!("m{i}"), "counted").await["type"], "ack");
        }
        bob_ws.collect_seqs(chat, 3).await;
        let refused = ana_ws.send_message(chat, "empty", "  ").await;
        assert_eq!(refused["code"], "empty_message");

        let after = metrics(&stack).await;
        assert!(metric(&after, "chat_messages_total") >= metric(&before, "chat_messages_total") + 3.0, "{after}");
        assert!(metric(&after, "fanout_deliveries_total") >= metric(&before, "fanout_deliveries_total") + 6.0);
        assert!(metric(&after, "fanout_latency_seconds_count") >= metric(&before, "fanout_latency_seconds_count") + 3.0);
        let errors = r#"ws_errors_total{code="empty_message"}"#;
        assert!(metric(&after, errors) >= metric(&before, errors) + 1.0, "{after}");
        // A gauge set by each instance: in this process other tests' instances set it too.
        assert!(after.lines().any(|line| line.starts_with("ws_connections ")), "{after}");
    }

    async fn the_openapi_document_names_the_server_errors_of_every_route(backend) {
        let stack = TestStack::spawn(backend).await;
        let doc: Value =
            stack.client.get(format!("{}/openapi.json", stack.chat_url)).send().await.unwrap().json().await.unwrap();
        converge_testkit::assert_server_errors_documented(&doc);
        let history = &doc["paths"]["/chats/{id}/messages"]["get"]["responses"];
        assert_eq!(history["503"]["$ref"], "#/components/responses/Unavailable", "{history}");
    }

    async fn health_and_readiness_answer(backend) {
        let stack = TestStack::spawn(backend).await;
        let health = stack.client.get(format!("{}/health", stack.chat_url)).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let ready = stack.client.get(format!("{}/ready", stack.chat_url)).send().await.unwrap();
        assert_eq!(ready.status().as_u16(), 200);
        let body: Value = ready.json().await.unwrap();
        assert_eq!((body["database"].as_str(), body["relay"].as_str()), (Some("up"), Some("local")), "{body}");
    }
}
