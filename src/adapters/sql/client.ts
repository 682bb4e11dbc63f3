/** The little of a PostgreSQL driver the store needs; PGlite and node-postgres both fit. */
export interface SqlClient {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[]; rowCount: number }>;
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  /** Runs several statements (migrations). */
  exec(sql: string): Promise<void>;
}
