//! A batch on PostgreSQL: one statement in autocommit, so one round trip whatever its size.
//!
//! The statement locks the batch's chats, decides every send, numbers the ones to store, raises
//! the senders' watermarks and inserts the messages; its commit is the statement's end. Chat row
//! locks are held for the statement alone, not across round trips to this process, so the
//! instances' writers wait on each other for as long as PostgreSQL takes to do the work.
//!
//! The batch's values travel as arrays (`unnest($2::uuid[], …)`), so the text is the same for two
//! sends or 256: each connection prepares it once. A batch of one send — nearly every batch below
//! a thousand messages a second, and the large group's — has a statement of its own
//! ([`STORE_ONE`]): the general one's window functions, sorts and aggregates cost PostgreSQL
//! 2 – 2.5× the CPU of the one-send statement for one send (`bench/statement-cpu`), and a commit on
//! a busy box waits for that CPU. The writer's connections also plan each statement once
//! (`converge_migrations::connect_with_generic_plans`): planned at every execution, planning cost
//! more than the work. A test below checks the plans such a connection makes on an empty database.
//!
//! Each send is decided, by either statement, as [`super::plan`] decides it for the portable path
//! (SQLite, the replay), in the same order: no such chat, not a participant, a retry of a stored
//! message, a `replyTo` that is not an earlier message, a retry of an earlier send of the same
//! batch, else stored with the chat's next seq. The unit test of `plan` and the API tests (run on
//! both databases) hold the statements and the portable path to the same answers, and
//! `a_send_alone_is_decided_as_in_a_batch` the two statements to each other.
//!
//! Lock order: the chats (in id order), then the participant rows whose watermarks rise (in
//! (chat, user) order), as the delivery receipts lock them. The participant rows are locked from
//! the numbered sends, which exist only once every chat row is locked (the numbering is a window
//! over the whole batch), so the order holds inside the one statement.
//!
//! Membership and earlier sends are read from the statement's snapshot, taken before any wait for
//! a chat lock: a retry of the same `clientMsgId` committed by another instance during that wait is
//! not seen, so the insert fails on the unique index, nothing is written, and the batch is
//! replayed send by send, which finds it. Earlier sends and memberships are looked up per send
//! (`LATERAL … LIMIT 1`), and the participant rows whose watermarks rise only among the batch's
//! chats and senders (`$8`, `$10`): planned with a fresh database's statistics (empty tables),
//! a plain join read every message, or every participant, at each batch — a plan each connection
//! then kept while the tables grew.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::MessageDto;
use converge_shared::entities::chat::message;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QueryResult,
    Statement, Value,
};
use uuid::Uuid;

use super::{Failed, Pending, Step, Stored, answers, invalid_reply_to, new_message, stored_now};
use crate::service::{chat_not_found, forbidden};

const STORE: &str = "WITH locked AS ( \
       SELECT id, last_seq FROM chats WHERE id = ANY($8) ORDER BY id FOR UPDATE), \
     s AS ( \
       SELECT chat_id, sender_id, client_msg_id, content, CASE WHEN is_reply THEN reply_to END AS reply_to, id, n, \
         CASE WHEN image_width > 0 THEN attachment_id END AS attachment_id, \
         NULLIF(image_width, 0) AS image_width, NULLIF(image_height, 0) AS image_height \
       FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], $9::boolean[], $7::uuid[], \
           $11::uuid[], $12::integer[], $13::integer[]) \
         WITH ORDINALITY AS s(chat_id, sender_id, client_msg_id, content, reply_to, is_reply, id, \
           attachment_id, image_width, image_height, n)), \
     checked AS ( \
       SELECT s.*, l.last_seq AS base, e.id AS existing, \
         CASE WHEN l.id IS NULL THEN 'not_found' \
           WHEN p.member IS NULL THEN 'forbidden' \
           WHEN e.id IS NOT NULL THEN 'existing' \
           WHEN s.reply_to IS NOT NULL AND (s.reply_to < 1 OR s.reply_to > l.last_seq) THEN 'invalid_seq' \
           ELSE 'store' END AS outcome \
       FROM s LEFT JOIN locked l ON l.id = s.chat_id \
       LEFT JOIN LATERAL ( \
         SELECT true AS member FROM chat_participants p \
         WHERE p.chat_id = s.chat_id AND p.user_id = s.sender_id LIMIT 1) p ON true \
       LEFT JOIN LATERAL ( \
         SELECT id FROM messages m \
         WHERE m.chat_id = s.chat_id AND m.sender_id = s.sender_id AND m.client_msg_id = s.client_msg_id LIMIT 1) e \
         ON true), \
     firsts AS ( \
       SELECT c.*, min(n) FILTER (WHERE outcome = 'store') \
         OVER (PARTITION BY chat_id, sender_id, client_msg_id) AS first_n \
       FROM checked c), \
     numbered AS ( \
       SELECT f.*, CASE WHEN outcome = 'store' AND n = first_n THEN base + count(*) \
           FILTER (WHERE outcome = 'store' AND n = first_n) OVER (PARTITION BY chat_id ORDER BY n) END AS seq \
       FROM firsts f), \
     fresh AS (SELECT * FROM numbered WHERE seq IS NOT NULL), \
     bumped AS ( \
       UPDATE chats AS c SET last_seq = f.last_seq, last_message_at = $1 \
       FROM (SELECT chat_id, max(seq) AS last_seq FROM fresh GROUP BY chat_id) f \
       WHERE c.id = ANY($8) AND c.id = f.chat_id), \
     senders AS ( \
       SELECT p.chat_id, p.user_id, f.seq FROM chat_participants p \
       JOIN (SELECT chat_id, sender_id, max(seq) AS seq FROM fresh GROUP BY chat_id, sender_id) f \
         ON p.chat_id = f.chat_id AND p.user_id = f.sender_id \
       WHERE p.chat_id = ANY($8) AND p.user_id = ANY($10) \
       ORDER BY p.chat_id, p.user_id FOR UPDATE OF p), \
     raised AS ( \
       UPDATE chat_participants AS p SET last_read_seq = GREATEST(p.last_read_seq, r.seq), \
         last_delivered_seq = GREATEST(p.last_delivered_seq, r.seq) \
       FROM senders r WHERE p.chat_id = ANY($8) AND p.user_id = ANY($10) \
         AND p.chat_id = r.chat_id AND p.user_id = r.user_id), \
     inserted AS ( \
       INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, content, reply_to, created_at, \
         attachment_id, image_width, image_height) \
       SELECT id, chat_id, seq, sender_id, client_msg_id, content, reply_to, $1, attachment_id, image_width, image_height \
       FROM fresh) \
     SELECT n, outcome, seq, first_n, existing FROM numbered ORDER BY n";

/// [`STORE`] for a batch of one send, with scalar parameters ($1 the stamp, $2 the chat, $3 the
/// sender, $4 the `clientMsgId`, $5 the content, $6 `replyTo`, $7 the message id, $8 – $10 the
/// image's attachment, width and height) and the same
/// result columns. With one send there is no numbering to do and no earlier send of the batch to
/// find, so no window, sort or aggregate; the locks are taken in the same order (the chat, then
/// the sender's row).
const STORE_ONE: &str = "WITH locked AS (SELECT id, last_seq FROM chats WHERE id = $2 FOR UPDATE), \
     checked AS ( \
       SELECT l.last_seq AS base, e.id AS existing, \
         CASE WHEN l.id IS NULL THEN 'not_found' \
           WHEN NOT EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = $2 AND p.user_id = $3) \
             THEN 'forbidden' \
           WHEN e.id IS NOT NULL THEN 'existing' \
           WHEN $6::bigint IS NOT NULL AND ($6 < 1 OR $6 > l.last_seq) THEN 'invalid_seq' \
           ELSE 'store' END AS outcome \
       FROM (SELECT) one LEFT JOIN locked l ON true \
       LEFT JOIN LATERAL ( \
         SELECT id FROM messages m WHERE m.chat_id = $2 AND m.sender_id = $3 AND m.client_msg_id = $4 LIMIT 1) e \
         ON true), \
     fresh AS (SELECT base + 1 AS seq FROM checked WHERE outcome = 'store'), \
     bumped AS (UPDATE chats AS c SET last_seq = f.seq, last_message_at = $1 FROM fresh f WHERE c.id = $2), \
     raised AS ( \
       UPDATE chat_participants AS p SET last_read_seq = GREATEST(p.last_read_seq, f.seq), \
         last_delivered_seq = GREATEST(p.last_delivered_seq, f.seq) \
       FROM fresh f WHERE p.chat_id = $2 AND p.user_id = $3), \
     inserted AS ( \
       INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, content, reply_to, created_at, \
         attachment_id, image_width, image_height) \
       SELECT $7, $2, seq, $3, $4, $5, $6, $1, $8::uuid, $9::integer, $10::integer FROM fresh) \
     SELECT 1::bigint AS n, outcome, CASE WHEN outcome = 'store' THEN base + 1 END AS seq, 1::bigint AS first_n, existing \
     FROM checked";

pub(super) async fn store_batch(db: &DatabaseConnection, sends: &[Pending]) -> Result<Vec<ApiResult<Stored>>, Failed> {
    let now = stored_now();
    // Every send gets its message drafted (an id, its content); the statement gives the seqs.
    let drafts: Vec<Option<MessageDto>> = sends.iter().map(|s| Some(new_message(s, 0, now))).collect();
    let statement = match (sends, drafts.as_slice()) {
        ([send], [Some(draft)]) => Statement::from_sql_and_values(
            DbBackend::Postgres,
            STORE_ONE,
            [
                now.into(),
                send.chat_id.into(),
                send.sender.into(),
                send.request.client_msg_id.clone().into(),
                send.request.content.clone().into(),
                send.request.reply_to.into(),
                draft.id.into(),
                send.image.as_ref().map(|i| i.id).into(),
                send.image.as_ref().map(|i| i.width).into(),
                send.image.as_ref().map(|i| i.height).into(),
            ],
        ),
        _ => Statement::from_sql_and_values(DbBackend::Postgres, STORE, batch_values(sends, &drafts, now)),
    };
    // The round trip alone (execution, the commit's WAL flush, the rows back), apart from the
    // batch's whole time, to tell the database's share from this process's.
    let sent = std::time::Instant::now();
    let rows = db.query_all_raw(statement).await;
    metrics::histogram!("message_batch_statement_seconds").record(sent.elapsed().as_secs_f64());
    let rows = rows.map_err(|e| match e {
        // Nothing reached the database: every send gets this answer.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Failed::Unchecked(e.into()),
        // The statement failed and was rolled back (a racing retry, a deadlock, a lost link after
        // the commit): the replay sorts it out send by send.
        e => Failed::Write(e.into()),
    })?;
    // The batch is committed from here on: a failure must not replay it (the replay would find
    // every message stored and announce none); the sends are answered with an error and their
    // retries by clientMsgId return what was stored.
    let Decided { mut steps, stored, retries } = decide(&rows, drafts).map_err(|e| Failed::Unchecked(e.into()))?;
    // Retries are rare: their originals are read only when there are some.
    if !retries.is_empty() {
        match message::Entity::find().filter(message::Column::Id.is_in(retries.keys().copied())).all(db).await {
            Ok(originals) => {
                for original in originals {
                    for index in retries.get(&original.id).into_iter().flatten() {
                        steps[*index] = Step::Answer(Box::new(Ok(Stored { message: original.to_dto(), fresh: false })));
                    }
                }
            }
            Err(e) => {
                let error = ApiError::from(e);
                for index in retries.values().flatten() {
                    steps[*index] = Step::Answer(Box::new(Err(error.duplicate())));
                }
            }
        }
    }
    Ok(answers(steps, stored))
}

/// [`STORE`]'s parameters: the batch's values as arrays, one element per send.
fn batch_values(sends: &[Pending], drafts: &[Option<MessageDto>], now: DateTime<Utc>) -> Vec<Value> {
    let distinct = |mut ids: Vec<Uuid>| {
        ids.sort();
        ids.dedup();
        ids
    };
    let chat_ids = distinct(sends.iter().map(|s| s.chat_id).collect());
    let senders = distinct(sends.iter().map(|s| s.sender).collect());
    vec![
        now.into(),
        sends.iter().map(|s| s.chat_id).collect::<Vec<_>>().into(),
        sends.iter().map(|s| s.sender).collect::<Vec<_>>().into(),
        sends.iter().map(|s| s.request.client_msg_id.clone()).collect::<Vec<_>>().into(),
        sends.iter().map(|s| s.request.content.clone()).collect::<Vec<_>>().into(),
        // The driver binds arrays without NULLs: whether a send replies travels beside its seq.
        sends.iter().map(|s| s.request.reply_to.unwrap_or(0)).collect::<Vec<_>>().into(),
        drafts.iter().flatten().map(|m| m.id).collect::<Vec<_>>().into(),
        chat_ids.into(),
        sends.iter().map(|s| s.request.reply_to.is_some()).collect::<Vec<_>>().into(),
        senders.into(),
        // Without NULLs again: a width of 0 stands for "no image".
        sends.iter().map(|s| s.image.as_ref().map_or(Uuid::nil(), |i| i.id)).collect::<Vec<_>>().into(),
        sends.iter().map(|s| s.image.as_ref().map_or(0, |i| i.width)).collect::<Vec<_>>().into(),
        sends.iter().map(|s| s.image.as_ref().map_or(0, |i| i.height)).collect::<Vec<_>>().into(),
    ]
}

/// What the statement did with a batch.
struct Decided {
    /// Each send's step.
    steps: Vec<Step>,
    /// The stored messages, in step order.
    stored: Vec<MessageDto>,
    /// Retries of stored messages: the original's id → the indexes of the sends retrying it.
    retries: HashMap<Uuid, Vec<usize>>,
}

fn decide(rows: &[QueryResult], mut drafts: Vec<Option<MessageDto>>) -> anyhow::Result<Decided> {
    anyhow::ensure!(rows.len() == drafts.len(), "{} of {} sends decided", rows.len(), drafts.len());
    let mut steps = Vec::with_capacity(rows.len());
    let mut stored = Vec::new();
    let mut retries: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        let outcome: String = row.try_get("", "outcome")?;
        let step = match outcome.as_str() {
            "not_found" => Step::Answer(Box::new(Err(chat_not_found()))),
            "forbidden" => Step::Answer(Box::new(Err(forbidden()))),
            "invalid_seq" => Step::Answer(Box::new(Err(invalid_reply_to()))),
            "existing" => {
                retries.entry(row.try_get::<Uuid>("", "existing")?).or_default().push(index);
                // Replaced by the original once it is read.
                Step::Answer(Box::new(Err(anyhow::anyhow!("the original of a retry went missing").into())))
            }
            "store" => match row.try_get::<Option<i64>>("", "seq")? {
                Some(seq) => {
                    let mut message = drafts[index].take().ok_or_else(|| anyhow::anyhow!("a send decided twice"))?;
                    message.seq = seq;
                    stored.push(message);
                    Step::Store
                }
                // WITH ORDINALITY counts from 1.
                None => Step::SameAs(usize::try_from(row.try_get::<i64>("", "first_n")? - 1)?),
            },
            other => anyhow::bail!("unknown outcome {other:?}"),
        };
        steps.push(step);
    }
    Ok(Decided { steps, stored, retries })
}

#[cfg(test)]
mod tests {
    use converge_migrations::{ServiceDb, connect_with_generic_plans};
    use converge_shared::entities::chat::participant;
    use sea_orm::TransactionTrait;

    use super::*;

    /// The writer's connections plan each statement once and keep the plan. Made on a new database,
    /// whose empty tables make reading them whole the cheapest plan, it must still find every row
    /// by an index: otherwise each send would read every chat and participant until the plan is
    /// replaced. Planned twice: with the tables never analyzed, and analyzed while empty (as
    /// autovacuum leaves a new deployment's), which PostgreSQL estimates differently.
    #[tokio::test]
    async fn the_statements_planned_once_on_an_empty_database_read_rows_by_index() {
        let db = connect_with_generic_plans(&converge_testkit::fresh_postgres_database().await, 1).await.unwrap();
        ServiceDb::Chat.migrate_up(&db).await.unwrap();
        let txn = db.begin().await.unwrap();
        let show = Statement::from_string(DbBackend::Postgres, "SHOW plan_cache_mode");
        let mode = txn.query_one_raw(show).await.unwrap().unwrap().try_get_by_index::<String>(0).unwrap();
        assert_eq!(mode, "force_generic_plan", "the writer's connections plan once");
        let statements = [
            (
                "store",
                STORE,
                "timestamptz, uuid[], uuid[], text[], text[], bigint[], uuid[], uuid[], boolean[], uuid[], uuid[], \
                 integer[], integer[]",
            ),
            ("store_one", STORE_ONE, "timestamptz, uuid, uuid, text, text, bigint, uuid, uuid, integer, integer"),
        ];
        let nil = "'00000000-0000-0000-0000-000000000000'";
        let executions = [
            "EXECUTE store(now(), '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')".to_owned(),
            format!("EXECUTE store_one(now(), {nil}, {nil}, 'a', 'b', NULL, {nil}, NULL, NULL, NULL)"),
        ];
        for statistics in ["never analyzed", "analyzed empty"] {
            if statistics == "analyzed empty" {
                txn.execute_unprepared(
                    "ANALYZE chats, chat_participants, messages; DEALLOCATE store; DEALLOCATE store_one",
                )
                .await
                .unwrap();
            }
            for ((name, statement, parameters), execution) in statements.iter().zip(&executions) {
                txn.execute_unprepared(&format!("PREPARE {name}({parameters}) AS {statement}")).await.unwrap();
                let explain = Statement::from_string(DbBackend::Postgres, format!("EXPLAIN {execution}"));
                let rows = txn.query_all_raw(explain).await.unwrap();
                let plan: Vec<String> = rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect();
                let whole = whole_index_reads(&plan);
                let plan = plan.join("\n");
                let name = format!("{name}, {statistics}");
                assert!(plan.contains("chats_pkey") && plan.contains("chat_participants"), "{name}: {plan}");
                assert!(!plan.contains("Seq Scan"), "{name}: no table is read whole:\n{plan}");
                // With sequential scans off, a whole table is read through its index instead.
                assert!(whole.is_empty(), "{name}: {whole:?} read a whole index:\n{plan}");
            }
        }
    }

    /// The index scans of an `EXPLAIN` that have no `Index Cond` among their details: they read the
    /// whole index.
    fn whole_index_reads(plan: &[String]) -> Vec<&str> {
        let indent = |line: &str| line.len() - line.trim_start().len();
        plan.iter()
            .enumerate()
            .filter(|(_, node)| node.contains("Index Scan") || node.contains("Index Only Scan"))
            .filter(|(at, node)| {
                let column = node.find("->").unwrap_or_else(|| indent(node));
                !plan[at + 1..]
                    .iter()
                    .take_while(|detail| indent(detail) > column && !detail.contains("->"))
                    .any(|detail| detail.contains("Index Cond"))
            })
            .map(|(_, node)| node.trim())
            .collect()
    }

    /// A send alone ([`STORE_ONE`]) is decided as the same send in a batch ([`STORE`]): two chats in
    /// the same state get the same sends, one by one in the first, each beside another chat's send
    /// in the second, and end with the same messages and the same watermarks.
    #[tokio::test]
    async fn a_send_alone_is_decided_as_in_a_batch() {
        let db = connect_with_generic_plans(&converge_testkit::fresh_postgres_database().await, 1).await.unwrap();
        ServiceDb::Chat.migrate_up(&db).await.unwrap();
        let (alone, batched, beside) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (ana, bob, eve) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for chat in [alone, batched, beside] {
            let setup = format!(
                "INSERT INTO chats (id, kind, title, created_by, created_at, last_seq) VALUES ('{chat}', 'group', 't', '{ana}', now(), 0); \
                 INSERT INTO chat_participants (chat_id, user_id, role, joined_at) \
                   VALUES ('{chat}', '{ana}', 'owner', now()), ('{chat}', '{bob}', 'member', now())"
            );
            db.execute_unprepared(&setup).await.unwrap();
        }
        // What a result says, without the ids and stamps each store draws afresh.
        let outcome = |result: &ApiResult<Stored>| match result {
            Ok(s) => Ok((s.message.seq, s.fresh, s.message.client_msg_id.clone(), s.message.reply_to)),
            Err(_) => Err(super::super::tests::code(result)),
        };
        let cases: [(Uuid, Option<Uuid>, &str, Option<i64>); 8] = [
            (ana, None, "first", None),
            (ana, None, "first", None),
            (eve, None, "stranger", None),
            (ana, Some(Uuid::now_v7()), "nowhere", None),
            (bob, None, "reply", Some(1)),
            (ana, None, "reply-to-nothing", Some(9)),
            (ana, None, "reply-to-zero", Some(0)),
            (bob, None, "second", None),
        ];
        for (n, (sender, missing_chat, client_msg_id, reply_to)) in cases.into_iter().enumerate() {
            let send = |chat| super::super::tests::send(missing_chat.unwrap_or(chat), sender, client_msg_id, reply_to);
            let one = store_batch(&db, &[send(alone)]).await.unwrap_or_else(|_| panic!("case {n} alone failed"));
            let companion = super::super::tests::send(beside, ana, &format!("beside-{n}"), None);
            let two = store_batch(&db, &[send(batched), companion])
                .await
                .unwrap_or_else(|_| panic!("case {n} in a batch failed"));
            assert_eq!(two.len(), 2);
            assert_eq!(outcome(&one[0]), outcome(&two[0]), "case {n}: {client_msg_id}");
            assert!(two[1].is_ok(), "case {n}: the companion is stored");
        }
        let stored = |chat: Uuid| {
            let db = &db;
            async move {
                let mut messages =
                    message::Entity::find().filter(message::Column::ChatId.eq(chat)).all(db).await.unwrap();
                messages.sort_by_key(|m| m.seq);
                messages.into_iter().map(|m| (m.seq, m.sender_id, m.client_msg_id, m.reply_to)).collect::<Vec<_>>()
            }
        };
        let in_alone = stored(alone).await;
        assert_eq!(in_alone, stored(batched).await, "the same rows, in the same order");
        let seqs: Vec<i64> = in_alone.iter().map(|m| m.0).collect();
        assert_eq!(seqs, vec![1, 2, 3], "first, reply and second, gap-free");
        // A sender's own messages count as read and delivered to them, alone as in a batch.
        let marks = |chat: Uuid| {
            let db = &db;
            async move {
                let mut marks: Vec<(Uuid, i64, i64)> = participant::Entity::find()
                    .filter(participant::Column::ChatId.eq(chat))
                    .all(db)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|p| (p.user_id, p.last_read_seq, p.last_delivered_seq))
                    .collect();
                marks.sort();
                marks
            }
        };
        let mut expected = vec![(ana, 1, 1), (bob, 3, 3)];
        expected.sort();
        assert_eq!(marks(alone).await, expected, "one by one");
        assert_eq!(marks(batched).await, expected, "in batches");
    }
}
