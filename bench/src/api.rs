//! Provisioning through the public APIs: users from user-service's app API (no password hashing,
//! so thousands take seconds), group chats from chat-service's `POST /chats`.

use anyhow::{Context, Result, bail};
use converge_shared::dto::{ChatDto, ChatKind, CreateChatRequest, ExternalUserRequest, ExternalUserResponse};
use futures_util::{StreamExt, TryStreamExt, stream};
use uuid::Uuid;

/// A provisioned user and an access token to connect as them.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

pub struct Api {
    http: reqwest::Client,
    user_service: String,
    chat_service: String,
    api_key: String,
}

impl Api {
    pub fn new(user_service: &str, chat_service: &str, api_key: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        Ok(Self {
            http,
            user_service: user_service.trim_end_matches('/').to_owned(),
            chat_service: chat_service.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        })
    }

    /// The HTTP client, for reading the services' other endpoints (`/metrics`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Creates (or refreshes) `count` app users named `{prefix}-{i}`, `concurrency` requests at a time.
    pub async fn users(&self, prefix: &str, count: usize, concurrency: usize) -> Result<Vec<User>> {
        stream::iter(0..count)
            .map(|i| self.user(format!("{prefix}-{i}"), format!("bench {i}")))
            .buffered(concurrency)
            .try_collect()
            .await
    }

    async fn user(&self, external_id: String, display_name: String) -> Result<User> {
        let url = format!("{}/apps/users/{external_id}", self.user_service);
        let body = ExternalUserRequest { display_name, avatar_url: None };
        let response = self.http.put(&url).header("x-api-key", &self.api_key).json(&body).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("PUT {url}: {status}: {}", response.text().await.unwrap_or_default());
        }
        let user: ExternalUserResponse = response.json().await.context("reading an app user")?;
        Ok(User { id: user.user.id, token: user.access_token })
    }

    /// Creates one group per member list (the first member creates it), `concurrency` at a time.
    pub async fn groups(&self, members: Vec<Vec<&User>>, concurrency: usize) -> Result<Vec<Uuid>> {
        stream::iter(members.into_iter().enumerate())
            .map(|(i, members)| async move { self.group(&format!("bench {i}"), &members).await })
            .buffered(concurrency)
            .try_collect()
            .await
    }

    async fn group(&self, title: &str, members: &[&User]) -> Result<Uuid> {
        let (owner, others) = members.split_first().context("a group needs members")?;
        let body = CreateChatRequest {
            kind: ChatKind::Group,
            title: Some(title.to_owned()),
            participant_ids: others.iter().map(|u| u.id).collect(),
        };
        let url = format!("{}/chats", self.chat_service);
        let response = self.http.post(&url).bearer_auth(&owner.token).json(&body).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("POST {url}: {status}: {}", response.text().await.unwrap_or_default());
        }
        let chat: ChatDto = response.json().await.context("reading a created chat")?;
        Ok(chat.id)
    }
}
