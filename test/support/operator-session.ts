/**
 * An operator over plain HTTP, as a browser would be: follow the one-time setup link (or
 * log in) through the real forms with their form tokens, then call the API with the
 * session cookie and its CSRF token.
 */
export const TEST_OPERATOR = { username: 'ops', password: 'a long test password' } as const;

export interface OperatorClient {
  cookie: string;
  csrfToken: string;
  get(path: string): Promise<Response>;
  /** A state change: JSON body, the session's CSRF token, and an action id when given. */
  post(path: string, body?: unknown, options?: { actionId?: string; csrfToken?: string | null }): Promise<Response>;
}

/** The form's hidden token and the cookie it is bound to, from GET of a form page. */
export async function openForm(url: string): Promise<{ cookie: string; formToken: string; html: string; status: number }> {
  const response = await fetch(url, { redirect: 'manual' });
  const html = await response.text();
  const cookie = cookieOf(response, 'mb_form') ?? '';
  const formToken = /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
  return { cookie, formToken, html, status: response.status };
}

export function cookieOf(response: Response, name: string): string | undefined {
  return response.headers.getSetCookie().map((c) => c.split(';')[0]!).find((c) => c.startsWith(`${name}=`) && c.length > name.length + 1);
}

export async function postForm(url: string, cookie: string, fields: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body: new URLSearchParams(fields).toString() });
}

/** Creates the first operator through the setup link; returns a logged-in client. */
export async function setUpOperator(setupLink: string, operator: { username: string; password: string } = TEST_OPERATOR): Promise<OperatorClient> {
  const url = new URL(setupLink);
  const form = await openForm(setupLink);
  const response = await postForm(`${url.origin}/setup`, form.cookie, { _csrf: form.formToken, token: url.searchParams.get('token') ?? '', username: operator.username, password: operator.password });
  if (response.status !== 303) throw new Error(`setup failed with ${response.status}: ${await response.text()}`);
  return clientFor(url.origin, cookieOf(response, 'mb_session')!);
}

/** Logs in through the login form; the response is returned when it did not work. */
export async function logIn(baseUrl: string, operator: { username: string; password: string } = TEST_OPERATOR): Promise<OperatorClient | Response> {
  const form = await openForm(`${baseUrl}/login`);
  const response = await postForm(`${baseUrl}/login`, form.cookie, { _csrf: form.formToken, username: operator.username, password: operator.password });
  const session = cookieOf(response, 'mb_session');
  return response.status === 303 && session ? clientFor(baseUrl, session) : response;
}

export async function clientFor(baseUrl: string, cookie: string): Promise<OperatorClient> {
  const session = (await (await fetch(`${baseUrl}/api/session`, { headers: { cookie } })).json()) as { csrfToken: string };
  return {
    cookie,
    csrfToken: session.csrfToken,
    get: (path) => fetch(`${baseUrl}${path}`, { headers: { cookie }, redirect: 'manual' }),
    post: (path, body, options = {}) => {
      const headers: Record<string, string> = { cookie, 'content-type': 'application/json' };
      const csrf = options.csrfToken === undefined ? session.csrfToken : options.csrfToken;
      if (csrf !== null) headers['x-csrf-token'] = csrf;
      if (options.actionId) headers['x-action-id'] = options.actionId;
      return fetch(`${baseUrl}${path}`, { method: 'POST', headers, body: JSON.stringify(body ?? {}), redirect: 'manual' });
    },
  };
}
