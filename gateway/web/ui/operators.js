/** Inviting another operator, and the audit log of every action. */

import { $, el, show, table, when, whenText, badge, renderInto } from './dom.js';
import { api } from './gateway-api.js';
import { confirmAction } from './confirm-dialog.js';
import { showSecret } from './secret-dialog.js';

export function setUpOperators() {
  $('invite').addEventListener('click', () => confirmAction({
    title: 'Invite an operator',
    lines: ['Make an invitation link. Whoever opens it within 24 hours chooses a user name and password and can then do everything you can here.', 'The link works once and is shown only now: send it over a channel you trust.'],
    confirmLabel: 'Make link',
    url: '/api/invites',
    success: () => 'Invitation link made.',
    done: (a) => showSecret({
      title: 'Invitation link',
      warning: `Shown only now. It works once${a.expiresAt ? `, until ${whenText(a.expiresAt)}` : ''}.`,
      items: [{ label: 'Link', value: a.link, testid: 'invite-link' }],
    }),
  }));
  $('audit-refresh').addEventListener('click', () => void loadAudit());
}

export async function loadAudit() {
  const result = await api('GET', '/api/audit');
  if (!result.ok) {
    renderInto($('audit'), { error: result.error }, () => el('p', { class: 'form-error', text: `Cannot load the audit log: ${result.error}` }));
    return;
  }
  const entries = result.data?.entries ?? [];
  renderInto($('audit'), entries, () => table({
    caption: 'Audit log, newest first',
    headings: ['When', 'Who', 'Action', 'Target', 'Outcome'],
    empty: 'No actions yet.',
    rows: entries.map((e) => ({
      props: { testid: `audit-row-${e.auditNo ?? ''}` },
      cells: [when(e.at), e.by, e.action, e.target ?? '',
        el('span', null, badge(show(e.outcome), e.outcome === 'ok' ? 'ok' : 'bad'), e.detail ? el('span', { class: 'muted', text: ` ${show(e.detail)}` }) : null)],
    })),
  }));
}
