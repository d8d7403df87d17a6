use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::{Context, ErrorExtensions, Object, Result, ResultExt};
use converge_shared::api_error::ApiError;
use converge_shared::dto::{ChatDto, MessageDto, MessagesQuery, SearchQuery, SearchResults};
use uuid::Uuid;

use super::{app, caller};
use crate::service::{chats, messages, search};

/// Messages per page when neither `first` nor `last` is given, and the most in one page.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: i32 = 200;

pub struct Query;

#[Object]
impl Query {
    /// My chats, most recently active first, with the last message and unread count.
    async fn chats(&self, ctx: &Context<'_>) -> Result<Vec<ChatDto>> {
        chats::list(app(ctx), caller(ctx)?.user_id).await.extend()
    }

    /// One of my chats.
    async fn chat(&self, ctx: &Context<'_>, id: Uuid) -> Result<ChatDto> {
        chats::get(app(ctx), caller(ctx)?.user_id, id).await.extend()
    }

    /// Messages of my chats (or of `chatId`'s) whose text contains `query` (ignoring case), newest
    /// first; `before` (the id of the last message of the previous page) pages back.
    async fn search_messages(
        &self,
        ctx: &Context<'_>,
        query: String,
        chat_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: Option<u64>,
    ) -> Result<SearchResults> {
        let query = SearchQuery { q: query, chat_id, before, limit };
        search::messages(app(ctx), caller(ctx)?.user_id, query).await.extend()
    }

    /// A chat's history as a connection whose cursors are seqs. `first`/`after` pages forward from a
    /// seq; `last`/`before` pages back (the newest messages when no cursor is given). Edges are in
    /// ascending seq either way.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Connection<i64, MessageDto, EmptyFields, EmptyFields>> {
        let (app, viewer) = (app(ctx), caller(ctx)?.user_id);
        // Checked here so the errors name the arguments a GraphQL client sent, with a code.
        for (name, cursor) in [("after", &after), ("before", &before)] {
            if cursor.as_deref().is_some_and(|c| c.parse::<i64>().map_or(true, |seq| seq < 0)) {
                return Err(ApiError::field(name, "must be a cursor of this connection").extend());
            }
        }
        for (name, size) in [("first", first), ("last", last)] {
            if size.is_some_and(|n| !(1..=MAX_PAGE).contains(&n)) {
                return Err(ApiError::field(name, format!("must be between 1 and {MAX_PAGE}")).extend());
            }
        }
        query(after, before, first, last, |after: Option<i64>, before: Option<i64>, first, last| async move {
            let forward = after.is_some() || first.is_some();
            let limit = first.or(last).unwrap_or(DEFAULT_PAGE) as u64;
            let request = if forward {
                MessagesQuery { after: Some(after.unwrap_or(0)), before: None, limit: Some(limit) }
            } else {
                MessagesQuery { after: None, before, limit: Some(limit) }
            };
            let page = messages::page(app, viewer, chat_id, request).await.extend()?;
            let (has_previous, has_next) =
                if forward { (after.unwrap_or(0) > 0, page.has_more) } else { (page.has_more, before.is_some()) };
            let mut connection = Connection::new(has_previous, has_next);
            connection.edges.extend(page.messages.into_iter().map(|m| Edge::new(m.seq, m)));
            Ok::<_, async_graphql::Error>(connection)
        })
        .await
    }
}
