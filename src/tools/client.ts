import { Pool } from 'undici';

export type Answer = Readonly<{ status: number; body: unknown }>;

/** A keep-alive HTTP client for the course API, for tests, the bench and the checks. */
export class CourseClient {
  readonly #pool: Pool;
  readonly #headers: Readonly<Record<string, string>>;

  /** `headers` go with every request (an operator's `authorization`, say). */
  constructor(baseUrl: string, connections = 128, headers: Readonly<Record<string, string>> = {}) {
    this.#pool = new Pool(baseUrl, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
    this.#headers = headers;
  }

  async call(method: 'GET' | 'POST', path: string, headers: Record<string, string> = {}, json?: unknown): Promise<Answer> {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const sent = { ...this.#headers, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const res = await this.#pool.request({ method, path, headers: sent, body, headersTimeout: 120_000, bodyTimeout: 120_000 });
    const text = await res.body.text();
    return { status: res.statusCode, body: text.length > 0 && text[0] === '{' ? JSON.parse(text) : text };
  }

  async post<T = Record<string, unknown>>(path: string): Promise<T> {
    return expect2xx<T>('POST', path, await this.call('POST', path));
  }

  async get<T = Record<string, unknown>>(path: string): Promise<T> {
    return expect2xx<T>('GET', path, await this.call('GET', path));
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

function expect2xx<T>(method: string, path: string, answer: Answer): T {
  if (answer.status < 200 || answer.status >= 300) throw new Error(`${method} ${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body as T;
}

/** Runs `task` over `items` with at most `concurrency` at once; results in input order. */
export async function mapLimit<I, O>(items: readonly I[], concurrency: number, task: (item: I, index: number) => Promise<O>): Promise<O[]> {
  const results = new Array<O>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
