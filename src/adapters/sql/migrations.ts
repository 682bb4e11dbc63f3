import type { SqlClient } from './client.ts';

/**
 * Versioned migrations of a service's schema, applied in order at start-up; each runs once,
 * in a transaction, and is recorded in `<schema>.migrations`.
 */
const migrations: readonly ((s: string) => string)[] = [
  (s) => `
    create table ${s}.docs (key text primary key, version int not null, doc jsonb not null);
    create table ${s}.inbox (id text primary key, at timestamptz not null default now());
    create index on ${s}.inbox (at);
    create table ${s}.outbox (seq bigserial primary key, id text not null unique, envelope jsonb not null);
    create table ${s}.dead_letters (id text primary key, consumer text not null, envelope jsonb not null, error text not null, at timestamptz not null default now());
  `,
  // Room in every page, so an update can stay on its page without touching the index (HOT).
  (s) => `alter table ${s}.docs set (fillfactor = 60)`,
  // Several consumers may give up on the same message.
  (s) => `alter table ${s}.dead_letters drop constraint dead_letters_pkey, add primary key (id, consumer)`,
  // A commit is one statement; this makes it fail as a whole when something it read changed
  // (a serialization failure, which the store retries).
  (s) => `
    create function ${s}.unless_changed(unchanged boolean) returns boolean language plpgsql as $$
    begin
      if not unchanged then
        raise exception 'orderly: a document or inbox entry changed since it was read' using errcode = '40001';
      end if;
      return true;
    end $$;
  `,
  // Keys and ids compare as bytes: faster than any locale, and the order Redis keeps too.
  (s) => `
    alter table ${s}.docs alter column key type text collate "C";
    alter table ${s}.inbox alter column id type text collate "C";
    alter table ${s}.outbox alter column id type text collate "C";
  `,
  // Fewer indexes to keep up at every message: the outbox is found by id (sweeps sort the few
  // rows it holds), and the inbox's time, only used to prune it, grows with its rows (BRIN).
  (s) => `
    alter table ${s}.outbox drop constraint outbox_pkey, drop constraint outbox_id_key, add primary key (id);
    drop index ${s}.inbox_at_idx;
    create index inbox_at_brin on ${s}.inbox using brin (at);
  `,
];

export async function migrate(client: SqlClient, schema: string): Promise<void> {
  await client.transaction(async (tx) => {
    // One migrator at a time per schema, even with several replicas starting together
    // (concurrent `create … if not exists` can still collide in PostgreSQL).
    await tx.query('select pg_advisory_xact_lock(hashtext($1))', [`orderly:migrate:${schema}`]);
    await tx.exec(`create schema if not exists ${schema}; create table if not exists ${schema}.migrations (version int primary key, at timestamptz not null default now())`);
    const { rows } = await tx.query<{ version: number }>(`select coalesce(max(version), 0) as version from ${schema}.migrations`);
    const current = rows[0]?.version ?? 0;
    for (let v = current; v < migrations.length; v++) {
      await tx.exec(migrations[v]!(schema));
      await tx.query(`insert into ${schema}.migrations (version) values ($1)`, [v + 1]);
    }
  });
}
