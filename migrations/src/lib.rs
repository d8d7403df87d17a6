//! # converge-migrations
//!
//! The schema of each Converge database, as sea-orm migrations, and how a service connects to it.
//! Each service owns one database and never reads another's tables:
//!
//! - [`ServiceDb::Users`]: `converge_users`, owned by user-service ([`users`]).
//! - [`ServiceDb::Chat`]: `converge_chat`, owned by chat-service ([`chat`]).
//!
//! Every database keeps its own migration table (`seaql_migrations_<service>`), so the embedded
//! launcher can also point both services at one database without their histories colliding.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, TransactionTrait};
use sea_orm_migration::MigratorTrait;

pub mod chat;
pub mod users;

pub use sea_orm_migration;

/// The databases of Converge, one per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceDb {
    Users,
    Chat,
}

impl ServiceDb {
    /// The SQLite file of the embedded default, under the data directory.
    pub fn sqlite_file(self) -> &'static str {
        match self {
            ServiceDb::Users => "users.db",
            ServiceDb::Chat => "chat.db",
        }
    }

    /// A key for `pg_advisory_xact_lock`, distinct per database, so replicas starting together
    /// migrate one at a time.
    fn lock_key(self) -> i64 {
        match self {
            ServiceDb::Users => 0x636f_6e76_0001,
            ServiceDb::Chat => 0x636f_6e76_0002,
        }
    }

    /// The database URL to use: `configured` (from `DATABASE_URL`) when set, otherwise the embedded
    /// SQLite file under `data_dir`.
    pub fn url(self, configured: Option<&str>, data_dir: &str) -> String {
        match configured {
            Some(url) if !url.trim().is_empty() => url.to_owned(),
            _ => format!("sqlite://{}/{}?mode=rwc", data_dir.trim_end_matches('/'), self.sqlite_file()),
        }
    }

    /// Applies every pending migration. On PostgreSQL the migrations run in one transaction under an
    /// advisory lock, so replicas that start at once wait for the first and then find nothing to do.
    pub async fn migrate_up(self, db: &DatabaseConnection) -> Result<(), DbErr> {
        match self {
            ServiceDb::Users => up::<users::Migrator>(db, self.lock_key()).await,
            ServiceDb::Chat => up::<chat::Migrator>(db, self.lock_key()).await,
        }
    }

    /// Runs a `migrate` CLI command against this database.
    pub async fn run(self, db: &DatabaseConnection, command: Command) -> Result<(), DbErr> {
        match self {
            ServiceDb::Users => run::<users::Migrator>(db, command, self.lock_key()).await,
            ServiceDb::Chat => run::<chat::Migrator>(db, command, self.lock_key()).await,
        }
    }
}

/// What the `migrate` CLI can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Apply pending migrations (all, or the next `n`).
    Up(Option<u32>),
    /// Roll back the last `n` migrations (default 1).
    Down(Option<u32>),
    /// Print applied and pending migrations.
    Status,
    /// Drop every table and apply all migrations again.
    Fresh,
}

/// Applies pending migrations in one transaction (both databases have transactional DDL): no
/// connection ever sees half a schema — a SQLite connection that read the tables before their
/// unique indexes existed would refuse `ON CONFLICT` on them — and on PostgreSQL an advisory lock
/// makes replicas that start together migrate one at a time.
async fn up<M: MigratorTrait>(db: &DatabaseConnection, lock_key: i64) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({lock_key})")).await?;
    }
    M::up(&txn, None).await?;
    txn.commit().await
}

async fn run<M: MigratorTrait>(db: &DatabaseConnection, command: Command, lock_key: i64) -> Result<(), DbErr> {
    match command {
        Command::Up(None) => up::<M>(db, lock_key).await,
        Command::Up(Some(n)) => M::up(db, Some(n)).await,
        Command::Down(n) => M::down(db, Some(n.unwrap_or(1))).await,
        Command::Status => M::status(db).await,
        Command::Fresh => M::fresh(db).await,
    }
}

/// Connects to a database. For SQLite, creates the file's directory and turns on WAL with
/// `synchronous=NORMAL` (durable across process crashes, fast) and a busy timeout, so that
/// concurrent writers wait for each other instead of failing.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    Database::connect(options(url, max_connections)?).await
}

/// Connects like [`connect`]; on PostgreSQL each prepared statement is planned once per connection
/// and the plan reused (`plan_cache_mode = force_generic_plan`). For a pool that runs a few fixed
/// statements so often that planning them at every execution (what PostgreSQL chooses for
/// statements with array parameters) costs more than running them.
///
/// A plan made once is made with the statistics of that moment: on a new database (empty tables)
/// the cheapest plan reads whole tables. So these connections never scan a table whole where an
/// index serves (`enable_seqscan = off`), and are replaced every few minutes, so plans follow
/// the statistics as the tables grow.
pub async fn connect_with_generic_plans(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = options(url, max_connections)?;
    // Set on each new connection rather than as startup `options`, which connection poolers such as
    // PgBouncer refuse unless configured to pass them.
    options.max_lifetime(PLAN_LIFETIME).map_sqlx_postgres_pool_opts(|pool| {
        pool.after_connect(|conn, _| {
            Box::pin(async move {
                let settings = "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off";
                sea_orm::sqlx::raw_sql(settings).execute(conn).await.map(|_| ())
            })
        })
    });
    Database::connect(options).await
}

/// How long a connection of [`connect_with_generic_plans`] keeps its plans.
const PLAN_LIFETIME: Duration = Duration::from_secs(300);

fn options(url: &str, max_connections: u32) -> Result<ConnectOptions, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        if let Some(dir) = sqlite_dir(url) {
            std::fs::create_dir_all(dir).map_err(|e| DbErr::Custom(format!("cannot create {dir}: {e}")))?;
        }
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    }
    Ok(options)
}

/// The directory of a `sqlite://dir/file.db?…` URL, if it names one.
fn sqlite_dir(url: &str) -> Option<&str> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next()?;
    if path.starts_with(":memory:") {
        return None;
    }
    let dir = &path[..path.rfind('/')?];
    (!dir.is_empty()).then_some(dir)
}

#[cfg(test)]
mod tests {
    use sea_orm::Statement;

    use super::*;

    #[test]
    fn default_url_is_sqlite_under_data_dir() {
        assert_eq!(ServiceDb::Users.url(None, "./data/"), "sqlite://./data/users.db?mode=rwc");
        assert_eq!(ServiceDb::Users.url(Some(" "), "d"), "sqlite://d/users.db?mode=rwc");
        assert_eq!(ServiceDb::Users.url(Some("postgres://x/y"), "d"), "postgres://x/y");
    }

    /// Every connection to PostgreSQL sends what it writes at once (`TCP_NODELAY`). Under Nagle's
    /// algorithm, a request written in two pieces — over TLS, any statement longer than one record
    /// (16 KiB), such as a large batch of messages — held its second piece until the server
    /// acknowledged the first, which the server delays by up to 40 ms: the writer fell behind and
    /// stayed behind (docs/benchmarks-history.md). sqlx 0.9.0 stopped setting the option; 0.9.1
    /// sets it again.
    #[tokio::test]
    async fn connections_to_postgres_send_without_waiting_to_fill_packets() {
        let url = converge_testkit::fresh_postgres_database().await;
        for (kind, db) in [
            ("connect", connect(&url, 1).await.unwrap()),
            ("connect_with_generic_plans", connect_with_generic_plans(&url, 1).await.unwrap()),
        ] {
            // The port the server sees this (the pool's only) connection come from.
            let client_port = Statement::from_string(DbBackend::Postgres, "SELECT inet_client_port()");
            let row = db.query_one_raw(client_port).await.unwrap().unwrap();
            let port = u16::try_from(row.try_get_by_index::<i32>(0).unwrap()).unwrap();
            let nodelay = converge_testkit::tcp_nodelay_of_sockets(|local, _| local.port() == port);
            assert_eq!(nodelay, [true], "{kind}: TCP_NODELAY on the socket from port {port}");
        }
    }

    #[test]
    fn sqlite_dir_is_found() {
        assert_eq!(sqlite_dir("sqlite://./data/users.db?mode=rwc"), Some("./data"));
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("sqlite://users.db"), None);
    }
}
