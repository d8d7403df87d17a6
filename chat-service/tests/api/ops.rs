//! Operations endpoints: health, readiness and metrics.

use serde_json::Value;

use crate::helpers::{TestStack, on_both_backends};

/// The value of the first sample whose line starts with `series` (name and labels), or 0.
/// Metrics are process-wide and tests run in parallel, so tests compare before and after.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(stack: &TestStack) -> String {
    stack.client.get(format!("{}/metrics", stack.chat_url)).send().await.unwrap().text().await.unwrap()
}

on_both_backends! {
    async fn metrics_count_messages_fan_out_connections_and_errors_by_code(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let chat = stack.direct(&ana, &bob).await;
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
        assert!(sample(&after, "chat_messages_total") >= sample(&before, "chat_messages_total") + 3.0, "{after}");
        assert!(sample(&after, "fanout_deliveries_total") >= sample(&before, "fanout_deliveries_total") + 6.0);
        assert!(sample(&after, "fanout_latency_seconds_count") >= sample(&before, "fanout_latency_seconds_count") + 3.0);
        let errors = r#"ws_errors_total{code="empty_message"}"#;
        assert!(sample(&after, errors) >= sample(&before, errors) + 1.0, "{after}");
        // A gauge set by each instance: in this process other tests' instances set it too.
        assert!(after.lines().any(|line| line.starts_with("ws_connections ")), "{after}");
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
