/**
 * The pages before a session: login, first-run setup and accepting an invitation. Plain
 * server-rendered forms (they work without JavaScript); each carries a form token bound to
 * a cookie of its own (auth-routes.ts), and its style comes from /pages/forms.css, so the
 * content security policy needs no inline style.
 */
import { escapeHtml } from '../settlement/statement.ts';

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>meterbridge · ${escapeHtml(title)}</title><link rel="stylesheet" href="/pages/forms.css"></head><body><main>
${body}
</main></body></html>`;
}

const message = (text: string | undefined): string => (text ? `<p class="bad" role="alert">${escapeHtml(text)}</p>` : '');

export function renderLogin(formToken: string, options: { message?: string; username?: string } = {}): string {
  return page('log in', `<h1>meterbridge operator login</h1>
${message(options.message)}
<form method="post" action="/login">
<input type="hidden" name="_csrf" value="${escapeHtml(formToken)}">
<label for="username">User</label><input id="username" name="username" autocomplete="username" value="${escapeHtml(options.username ?? '')}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button></form>
<p class="note">No account yet? The first operator uses the setup link the gateway printed when it first started; later operators are invited by an operator. <code>meterbridge gateway --reset-login</code> removes every account and prints a new setup link.</p>`);
}

/** First-run setup (`kind: 'setup'`) or an invitation (`kind: 'invite'`): choose a user name and password. */
export function renderAccountForm(kind: 'setup' | 'invite', formToken: string, linkToken: string, options: { message?: string; username?: string } = {}): string {
  const title = kind === 'setup' ? 'Set up the first operator' : 'Accept the invitation';
  return page(title, `<h1>${title}</h1>
${message(options.message)}
<form method="post" action="/${kind}">
<input type="hidden" name="_csrf" value="${escapeHtml(formToken)}">
<input type="hidden" name="token" value="${escapeHtml(linkToken)}">
<label for="username">User name (a-z, 0-9, . _ -)</label><input id="username" name="username" autocomplete="username" value="${escapeHtml(options.username ?? '')}" required maxlength="32">
<label for="password">Password (at least 12 characters)</label><input id="password" name="password" type="password" autocomplete="new-password" required minlength="12" maxlength="256">
<button type="submit">${kind === 'setup' ? 'Create the operator account' : 'Create my account'}</button></form>
<p class="note">This link works once. The password is stored only as an scrypt hash.</p>`);
}

export function renderLinkProblem(text: string): string {
  return page('link', `<h1>This link does not work</h1>${message(text)}<p><a href="/login">Log in</a></p>`);
}
