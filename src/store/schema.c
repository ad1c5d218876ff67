/* schema.c - the store's schema as numbered migrations.
 *
 * Each migration runs once, in order, inside the transaction store_open() holds, and its
 * version is then recorded in schema_version. Never edit a migration that has shipped:
 * add the next one; versions only increase (new tables such as jobs, secrets or session
 * tokens; new columns with ALTER TABLE ... ADD COLUMN). Tables are STRICT so a wrong type is an error, not a silent
 * conversion. Columns that mean "not set" (revoked_at, stopped_at) are NULL rather than 0
 * so partial indexes can skip them; the C side maps NULL to 0.
 *
 * Enumerations (status, role, isolation) carry no CHECK constraint on purpose: SQLite can
 * only change a CHECK by rebuilding the table, and new values are expected.
 */
#include "store_internal.h"

static const char migration_1[] =
        "CREATE TABLE orgs ("
        "  id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
        "  name       TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"

        "CREATE TABLE api_keys ("
        "  id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
        "  org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
        "  name       TEXT NOT NULL,"
        "  prefix     TEXT NOT NULL,"
        "  hash       BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)," /* SHA-256 of the key */
        "  role       TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL,"
        "  revoked_at INTEGER" /* NULL while the key is valid */
        ") STRICT;"
        "CREATE INDEX api_keys_org ON api_keys (org_id);"

        "CREATE TABLE sandboxes ("
        "  id             TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
        "  org_id         TEXT NOT NULL REFERENCES orgs(id),"
        "  status         TEXT NOT NULL,"
        "  template       TEXT NOT NULL,"
        "  isolation      TEXT NOT NULL,"
        "  cpu_millis     INTEGER NOT NULL,"
        "  memory_bytes   INTEGER NOT NULL,"
        "  disk_bytes     INTEGER NOT NULL,"
        "  pids_limit     INTEGER NOT NULL,"
        "  timeout_s      INTEGER NOT NULL,"
        "  created_at     INTEGER NOT NULL,"
        "  expires_at     INTEGER NOT NULL,"
        "  stopped_at     INTEGER," /* NULL unless stopped */
        "  uid_base       INTEGER NOT NULL CHECK (uid_base >= 0 AND uid_base <= 4294967295),"
        "  init_pid       INTEGER NOT NULL DEFAULT 0,"
        "  init_starttime INTEGER NOT NULL DEFAULT 0,"
        "  env_json       TEXT,"
        "  error          TEXT,"
        "  node_id        TEXT" /* cluster mode: the node that holds it; NULL = this host */
        ") STRICT;"
        /* Listing an org's sandboxes newest first, with and without a status filter. */
        "CREATE INDEX sandboxes_org_created ON sandboxes (org_id, created_at DESC);"
        "CREATE INDEX sandboxes_org_status_created"
        "  ON sandboxes (org_id, status, created_at DESC);"
        /* Adoption at start (status != 'stopped') and retention (stopped_at). */
        "CREATE INDEX sandboxes_status ON sandboxes (status);"
        "CREATE INDEX sandboxes_stopped_at ON sandboxes (stopped_at)"
        "  WHERE stopped_at IS NOT NULL;"
        /* Two sandboxes on one host sharing a host uid range could reach each other's files
         * and processes: refuse a second row with the same uid_base on the same node. 0 is
         * never a valid base (it would map to host root) and stays free for placeholders. */
        "CREATE UNIQUE INDEX sandboxes_node_uid"
        "  ON sandboxes (coalesce(node_id, ''), uid_base) WHERE uid_base > 0;"
        "CREATE INDEX sandboxes_uid_base ON sandboxes (uid_base);";

/* Jobs: every background process and terminal of a sandbox (the daemon's job model). The
 * output itself is a file in the sandbox's state directory; log_end is where it ended. */
static const char migration_2[] =
        "CREATE TABLE jobs ("
        "  id          INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
        "  command     TEXT NOT NULL," /* JSON array: argv */
        "  state       TEXT NOT NULL," /* running, exited, killed, timed_out, failed */
        "  pid         INTEGER NOT NULL DEFAULT 0,"
        "  exit_code   INTEGER,"
        "  started_at  INTEGER NOT NULL," /* epoch ms */
        "  ended_at    INTEGER,"
        "  pty         INTEGER NOT NULL DEFAULT 0,"
        "  stdin       INTEGER NOT NULL DEFAULT 0,"
        "  max_run_after_disconnect INTEGER NOT NULL DEFAULT 0,"
        "  log_end     INTEGER NOT NULL DEFAULT 0,"
        "  error       TEXT"
        ") STRICT;"
        "CREATE INDEX jobs_sandbox ON jobs (sandbox_id, id);"
        "CREATE INDEX jobs_running ON jobs (state) WHERE state = 'running';";

/* Secrets (secrets.c in the daemon seals them; the store sees ciphertext only) and, per
 * sandbox, which of its organisation's secrets its commands get. */
static const char migration_4[] =
        "CREATE TABLE secrets ("
        "  org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
        "  name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
        "  key_id     BLOB NOT NULL CHECK (length(key_id) = 8)," /* which master key sealed it */
        "  nonce      BLOB NOT NULL CHECK (length(nonce) = 12),"
        "  ciphertext BLOB NOT NULL CHECK (length(ciphertext) >= 16)," /* value + GCM tag */
        "  created_at INTEGER NOT NULL,"
        "  updated_at INTEGER NOT NULL,"
        "  PRIMARY KEY (org_id, name)"
        ") STRICT;"
        /* A repeated nonce under one key would void GCM's guarantees: should the RNG ever
         * repeat one, the write fails instead. */
        "CREATE UNIQUE INDEX secrets_nonce ON secrets (nonce);"
        /* No row: the sandbox gets no secrets (warm-pool sandboxes, rows older than this
         * table). names_json NULL: every secret its organisation has when a command starts;
         * otherwise a JSON array of the names it gets. */
        "CREATE TABLE sandbox_secrets ("
        "  sandbox_id TEXT PRIMARY KEY NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
        "  names_json TEXT"
        ") STRICT;";

/* Identity: users (registration), the operator's ("system") organisation, session tokens
 * (one sandbox each) and magic links. Tokens and links die with their sandbox and with the
 * key that minted them (ON DELETE CASCADE; a revoked key is also refused by the lookups).
 * Existing databases get the system flag on their first organisation named "admin" (the
 * one the first start created). */
static const char migration_3[] =
        "ALTER TABLE orgs ADD COLUMN is_system INTEGER NOT NULL DEFAULT 0;"
        "UPDATE orgs SET is_system = 1 WHERE id = ("
        "  SELECT id FROM orgs WHERE name = 'admin' ORDER BY created_at, rowid LIMIT 1);"

        "CREATE TABLE users ("
        "  id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
        "  org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
        "  email      TEXT NOT NULL UNIQUE COLLATE NOCASE,"
        "  first_name TEXT NOT NULL,"
        "  last_name  TEXT NOT NULL,"
        "  role       TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX users_org ON users (org_id);"

        "CREATE TABLE session_tokens ("
        "  id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
        "  org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
        "  sandbox_id   TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
        "  key_id       TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,"
        "  hash         BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
        "  description  TEXT NOT NULL,"
        "  created_at   INTEGER NOT NULL,"
        "  expires_at   INTEGER NOT NULL,"
        "  last_used_at INTEGER" /* NULL until first used */
        ") STRICT;"
        "CREATE INDEX session_tokens_sandbox ON session_tokens (sandbox_id, created_at);"
        "CREATE INDEX session_tokens_key ON session_tokens (key_id);"

        "CREATE TABLE magic_links ("
        "  id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
        "  org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
        "  sandbox_id   TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
        "  key_id       TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,"
        "  hash         BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"
        "  redirect_url TEXT NOT NULL,"
        "  created_at   INTEGER NOT NULL,"
        "  expires_at   INTEGER NOT NULL,"
        "  used_at      INTEGER" /* NULL until redeemed: a link works once */
        ") STRICT;"
        "CREATE INDEX magic_links_sandbox ON magic_links (sandbox_id);"
        "CREATE INDEX magic_links_key ON magic_links (key_id);"
        "CREATE INDEX magic_links_expires ON magic_links (expires_at);";

/* Network uplinks (`network: egress`): one row per sandbox that has one. addr is the
 * sandbox's IPv4 address (host byte order) while it runs, NULL once stopped so the address
 * can go to another sandbox; policy_json is the canonical egress policy. */
static const char migration_5[] =
        "CREATE TABLE sandbox_net ("
        "  sandbox_id  TEXT PRIMARY KEY NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
        "  mode        TEXT NOT NULL,"
        "  addr        INTEGER CHECK (addr IS NULL OR (addr > 0 AND addr <= 4294967295)),"
        "  policy_json TEXT NOT NULL"
        ") STRICT;"
        /* Two running sandboxes with one address would receive each other's traffic. */
        "CREATE UNIQUE INDEX sandbox_net_addr ON sandbox_net (addr) WHERE addr IS NOT NULL;";

const struct store_migration store_migrations[] = {
        { 1, migration_1 },
        { 2, migration_2 },
        { 3, migration_3 },
        { 4, migration_4 },
        { 5, migration_5 },
};

const size_t store_n_migrations = sizeof(store_migrations) / sizeof(store_migrations[0]);
